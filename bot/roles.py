"""Who may do what: everyone < analyst < admin, decided from settings on every call (never cached)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from bot.i18n import t
from framewatch.config import TelegramSettings


class Role(IntEnum):
    EVERYONE = 0
    ANALYST = 1
    ADMIN = 2


def role_of(user_id: int | None, settings: TelegramSettings) -> Role:
    if user_id is None:
        return Role.EVERYONE
    if user_id in settings.admins:
        return Role.ADMIN
    if settings.analysts == "*" or user_id in settings.analysts:
        return Role.ANALYST
    return Role.EVERYONE


def may_subscribe(user_id: int | None, settings: TelegramSettings) -> bool:
    """Open bots take anyone; closed ones their allowlist plus staff."""
    if settings.open_subscriptions:
        return True
    return user_id is not None and (user_id in settings.allowlist or role_of(user_id, settings) > Role.EVERYONE)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    role: Role
    usage: str  # syntax, the same in every language


COMMANDS: tuple[Command, ...] = (
    Command("start", Role.EVERYONE, "/start"),
    Command("help", Role.EVERYONE, "/help"),
    Command("subscribe", Role.EVERYONE, "/subscribe [frame…] [source:NAME] [min:0.7] [+word] [-word] [lang:ru]"),
    Command("unsubscribe", Role.EVERYONE, "/unsubscribe [all|frame]"),
    Command("mysubs", Role.EVERYONE, "/mysubs"),
    Command("digest", Role.EVERYONE, "/digest off|hourly|daily"),
    Command("lang", Role.EVERYONE, "/lang en|ru|uk"),
    Command("frames", Role.ANALYST, "/frames [24h|7d|30d]"),
    Command("search", Role.ANALYST, "/search QUERY"),
    Command("post", Role.ANALYST, "/post ID"),
    Command("trend", Role.ANALYST, "/trend FRAME [7d|30d]"),
    Command("sources", Role.ANALYST, "/sources"),
    Command("label", Role.ADMIN, "/label POST_ID frame1,frame2|none"),
    Command("retrain", Role.ADMIN, "/retrain"),
    Command("model", Role.ADMIN, "/model"),
    Command("rollback", Role.ADMIN, "/rollback"),
    Command("addsource", Role.ADMIN, "/addsource rss URL [name] | /addsource telegram CHANNEL [name]"),
    Command("disable", Role.ADMIN, "/disable NAME"),
    Command("enable", Role.ADMIN, "/enable NAME"),
    Command("stats", Role.ADMIN, "/stats"),
)
BY_NAME = {c.name: c for c in COMMANDS}


def commands_for(role: Role) -> tuple[Command, ...]:
    return tuple(c for c in COMMANDS if c.role <= role)


def usage(name: str) -> str:
    return BY_NAME[name].usage


def help_sections(role: Role, lang: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section title, [(usage, description)])] — only the sections this role may use."""
    titles = {Role.EVERYONE: "help_everyone", Role.ANALYST: "help_analysts", Role.ADMIN: "help_admins"}
    sections = []
    for level in Role:
        if level > role:
            break
        items = [(c.usage, t(lang, f"cmd_{c.name}")) for c in COMMANDS if c.role == level]
        sections.append((t(lang, titles[level]), items))
    return sections
