"""Commands for everyone: /start /help /subscribe /unsubscribe /mysubs /digest /lang."""

from __future__ import annotations

import logging

from sqlmodel import Session
from telegram import Update
from telegram.ext import BaseHandler

from bot.commands_parse import DIGEST_MODES, parse_choice, parse_subscribe, parse_unsubscribe
from bot.context import BotContext
from bot.handling import Request, command, reply
from bot.i18n import LANGUAGES
from bot.render import Html, esc, fit_lines, th
from bot.roles import help_sections, may_subscribe
from storage import subscribers
from storage.models import Subscriber, Subscription
from storage.sources import list_sources
from storage.subscribers import SubscriptionSpec

log = logging.getLogger("bot.commands")
MAX_SUBSCRIPTIONS = 50  # every subscription is checked against every new post


def describe(spec: SubscriptionSpec, *, lang: str, names: dict[str, str]) -> str:
    """One subscription as HTML: frames (by name), then the filters that narrow it."""
    parts = [", ".join(f"<b>{esc(names.get(f, f))}</b>" for f in spec.frames) if spec.frames else th(lang, "sub_any")]
    if spec.sources:
        parts.append(f"{th(lang, 'desc_sources')}: {esc(', '.join(spec.sources))}")
    if spec.languages:
        parts.append(f"{th(lang, 'desc_langs')}: {esc(', '.join(spec.languages))}")
    if spec.min_score:
        parts.append(th(lang, "desc_min", min=f"{spec.min_score:g}"))
    if spec.include_keywords:
        parts.append(f"{th(lang, 'desc_include')}: " + ", ".join(f"«{esc(k)}»" for k in spec.include_keywords))
    if spec.exclude_keywords:
        parts.append(f"{th(lang, 'desc_exclude')}: " + ", ".join(f"«{esc(k)}»" for k in spec.exclude_keywords))
    return "; ".join(parts)


async def _allowed_subscriber(update: Update, context: BotContext, req: Request) -> Subscriber | None:
    """The caller's subscriber row (created on first use), or None after a polite refusal."""
    services = context.services
    if not may_subscribe(req.user_id, services.settings.telegram):
        log.info("refused /%s for user %s: not on the allowlist", req.name, req.user_id)
        await reply(update, th(req.lang, "private_bot"))
        return None
    return await services.db(
        subscribers.ensure_subscriber,
        req.chat_id,
        now=services.clock(),
        user_id=req.user_id,
        language=req.lang,
    )


async def start(update: Update, context: BotContext, req: Request) -> None:
    if await _allowed_subscriber(update, context, req) is None:
        return
    ids = context.services.frame_order
    example = "military_rift" if "military_rift" in ids else ids[0]
    await reply(update, th(req.lang, "welcome", example=example))


async def help_(update: Update, context: BotContext, req: Request) -> None:
    blocks = []
    for title, items in help_sections(req.role, req.lang):
        lines = [f"<b>{esc(title)}</b>"] + [f"<code>{esc(u)}</code> — {esc(d)}" for u, d in items]
        blocks.append("\n".join(lines))
    await reply(update, "\n\n".join(blocks))


def _source_names(*, session: Session) -> list[str]:
    return [s.name for s in list_sources(session=session)]


async def subscribe(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    if not may_subscribe(req.user_id, services.settings.telegram):
        log.info("refused /subscribe for user %s: not on the allowlist", req.user_id)
        await reply(update, th(req.lang, "private_bot"))
        return
    sources = await services.read(_source_names)
    spec = parse_subscribe(req.args, frames=services.frame_order, sources=sources)
    sub = await _allowed_subscriber(update, context, req)
    if sub is None or sub.id is None:
        return
    existing = await services.read(subscribers.list_subscriptions, sub.id)
    if len(existing) >= MAX_SUBSCRIPTIONS and subscribers.spec_of(existing[0]) != spec:
        await reply(update, th(req.lang, "sub_limit", n=MAX_SUBSCRIPTIONS))
        return
    _, created = await services.db(subscribers.add_subscription, sub.id, spec, now=services.clock())
    desc = Html(describe(spec, lang=req.lang, names=services.frame_names))
    await reply(update, th(req.lang, "sub_added" if created else "sub_exists", desc=desc))


async def _existing(context: BotContext, req: Request) -> Subscriber | None:
    return await context.services.read(subscribers.get_subscriber, req.chat_id)


async def unsubscribe(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    frame = parse_unsubscribe(req.args, frames=services.frame_order)
    sub = await _existing(context, req)
    removed = 0
    if sub is not None and sub.id is not None:
        removed = await services.db(subscribers.remove_subscriptions, sub.id, frame=frame)
    await reply(update, th(req.lang, "unsub_done", n=removed) if removed else th(req.lang, "unsub_none"))


async def mysubs(update: Update, context: BotContext, req: Request) -> None:
    services = context.services
    sub = await _existing(context, req)
    rows: list[Subscription] = []
    if sub is not None and sub.id is not None:
        rows = await services.read(subscribers.list_subscriptions, sub.id)
    if sub is None or not rows:
        await reply(update, th(req.lang, "mysubs_none"))
        return
    names = services.frame_names
    lines = [f"<b>{th(req.lang, 'mysubs_title')}</b>"]
    lines += [f"{i}. {describe(subscribers.spec_of(r), lang=req.lang, names=names)}" for i, r in enumerate(rows, 1)]
    lines.append(th(req.lang, "mysubs_digest", mode=th(req.lang, f"mode_{sub.digest}")))
    await reply(update, fit_lines(lines))


async def digest(update: Update, context: BotContext, req: Request) -> None:
    mode = parse_choice(req.args, DIGEST_MODES)
    if await _allowed_subscriber(update, context, req) is None:
        return
    services = context.services
    await services.db(subscribers.set_digest, req.chat_id, mode, now=services.clock())
    await reply(update, th(req.lang, "digest_set", mode=th(req.lang, f"mode_{mode}")))


async def lang(update: Update, context: BotContext, req: Request) -> None:
    chosen = parse_choice(req.args, LANGUAGES)
    services = context.services
    await services.db(subscribers.set_language, req.chat_id, chosen)
    if context.chat_data is not None:
        context.chat_data["lang"] = chosen
    await reply(update, th(chosen, "lang_set"))


def handlers() -> list[BaseHandler[Update, BotContext, None]]:
    return [
        command("start", start),
        command("help", help_),
        command("subscribe", subscribe),
        command("unsubscribe", unsubscribe),
        command("mysubs", mysubs),
        command("digest", digest),
        command("lang", lang),
    ]
