"""Everyone's commands through the real Application and the fake Bot API; role refusals; command menus."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from sqlmodel import select

from storage.models import Subscriber, Subscription
from tests.fakebotapi import FakeBotAPI
from tests.test_bot_support import (
    ADMIN,
    ANALYST,
    STRANGER,
    USER,
    add_source,
    ask,
    db,
    fake_api,
    running_bot,
    visible,
)

__all__ = ["fake_api"]


def subscriber(engine: sa.Engine, chat_id: int) -> Subscriber | None:
    with db(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.chat_id == chat_id)).first()


def subscriptions(engine: sa.Engine, chat_id: int) -> list[Subscription]:
    with db(engine) as session:
        sub = session.exec(select(Subscriber).where(Subscriber.chat_id == chat_id)).one()
        return list(session.exec(select(Subscription).where(Subscription.subscriber_id == sub.id)))


async def test_start_subscribe_mysubs_unsubscribe(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    with db(engine) as session:
        add_source(session, "wire")
    async with running_bot(engine, fake_api):
        assert "/subscribe military_rift" in visible(await ask(fake_api, USER, "/start"))
        assert subscriber(engine, USER) is not None
        text = visible(
            await ask(fake_api, USER, "/subscribe military_rift source:WIRE min:0.7 +Wagner -moscow lang:ru")
        )
        assert text.startswith("Subscribed: Military rift") and "«Wagner»" in text and "score ≥ 0.7" in text
        (sub,) = subscriptions(engine, USER)
        assert (sub.frames, sub.sources, sub.min_score) == (["military_rift"], ["wire"], 0.7)
        assert (sub.include_keywords, sub.exclude_keywords, sub.languages) == (["Wagner"], ["moscow"], ["ru"])
        again = visible(
            await ask(fake_api, USER, "/subscribe military_rift source:wire min:0.7 +Wagner -moscow lang:ru")
        )
        assert again.startswith("You already have this subscription")
        await ask(fake_api, USER, "/subscribe denial victory_claim")
        listing = visible(await ask(fake_api, USER, "/mysubs"))
        assert "1. Military rift" in listing and "2. Denial of involvement, Victory claim" in listing
        assert "Delivery: one by one" in listing
        assert visible(await ask(fake_api, USER, "/unsubscribe denial")) == "Removed 1 subscription(s)."
        assert [s.frames for s in subscriptions(engine, USER)] == [["military_rift"], ["victory_claim"]]
        assert visible(await ask(fake_api, USER, "/unsubscribe all")) == "Removed 2 subscription(s)."
        assert visible(await ask(fake_api, USER, "/mysubs")).startswith("You have no subscriptions")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/subscribe no_such_frame", ["Unknown frame(s): no_such_frame.", "military_rift — Military rift"]),
        ("/subscribe source:nowhere", ["Unknown source(s): nowhere.", "Valid choices: wire"]),
        ("/subscribe min:1.5", ["min: needs a number from 0 to 1"]),
        ("/subscribe min:nan", ["min: needs a number from 0 to 1"]),
        ("/subscribe lang:russian", ["lang: needs a language code"]),
        ("/subscribe <b>", ["I did not understand “<b>”."]),
        ("/digest weekly", ["Valid choices: off, hourly, daily"]),
        ("/digest", ["Usage: /digest off|hourly|daily"]),
        ("/lang fr", ["Valid choices: en, ru, uk"]),
        ("/unsubscribe nothing", ["Unknown frame(s): nothing."]),
        ("/subscribe " + "x" * 4000, ["That is too long (at most 1000 characters)."]),
        ("/subscribe " + "a " * 40, ["Too many arguments (at most 30)."]),
    ],
)
async def test_bad_arguments_get_the_valid_choices(
    engine: sa.Engine, fake_api: FakeBotAPI, command: str, expected: list[str]
) -> None:
    with db(engine) as session:
        add_source(session, "wire")
    async with running_bot(engine, fake_api):
        text = visible(await ask(fake_api, USER, command))
    for part in expected:
        assert part in text
    assert "Usage:" in text


async def test_digest_and_language(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    async with running_bot(engine, fake_api):
        assert visible(await ask(fake_api, USER, "/digest daily")) == "Delivery: daily digest."
        sub = subscriber(engine, USER)
        assert sub is not None and sub.digest == "daily"
        assert visible(await ask(fake_api, USER, "/lang ru")) == "Язык: русский."
        assert visible(await ask(fake_api, USER, "/help")).startswith("Команды\n/start — Начать")
        assert "Доставка: дайджест раз в день" in visible(await ask(fake_api, USER, "/digest daily"))
        assert visible(await ask(fake_api, USER, "/lang uk")) == "Мова: українська."
        assert visible(await ask(fake_api, USER, "/frames")) == "Вибачте, ця команда вам недоступна."
    sub = subscriber(engine, USER)
    assert sub is not None and sub.language == "uk"


async def test_help_shows_only_what_each_role_may_use(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    async with running_bot(engine, fake_api):
        user = visible(await ask(fake_api, USER, "/help"))
        analyst = visible(await ask(fake_api, ANALYST, "/help"))
        admin = visible(await ask(fake_api, ADMIN, "/help"))
    assert "/subscribe" in user and "/search" not in user and "Admin" not in user and "/label" not in user
    assert "/search QUERY" in analyst and "/trend" in analyst and "/label" not in analyst and "/stats" not in analyst
    for command in (
        "/label",
        "/retrain",
        "/model",
        "/rollback",
        "/addsource",
        "/disable",
        "/enable",
        "/stats",
    ):
        assert command in admin


ANALYST_COMMANDS = ["/frames", "/search wagner", "/post 1", "/trend military_rift", "/sources"]
ADMIN_COMMANDS = [
    "/label 1 none",
    "/retrain",
    "/model",
    "/rollback",
    "/addsource rss https://example.org/feed.xml",
    "/disable wire",
    "/enable wire",
    "/stats",
]


async def test_every_restricted_command_refuses_politely_and_logs(
    engine: sa.Engine, fake_api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.commands")
    with db(engine) as session:
        add_source(session, "wire")
    async with running_bot(engine, fake_api):
        for command in ANALYST_COMMANDS + ADMIN_COMMANDS:
            assert visible(await ask(fake_api, STRANGER, command)) == "Sorry, this command is not available to you."
        for command in ADMIN_COMMANDS:
            assert visible(await ask(fake_api, ANALYST, command)) == "Sorry, this command is not available to you."
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused /")]
    assert len(refusals) == len(ANALYST_COMMANDS) + 2 * len(ADMIN_COMMANDS)
    assert "refused /stats for user 2002 (role analyst)" in refusals
    with db(engine) as session:  # nothing happened
        assert session.exec(select(sa.func.count()).select_from(Subscriber)).one() == 0


async def test_role_is_checked_on_every_call(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    """Demoting someone in the settings takes effect on their very next command."""
    async with running_bot(engine, fake_api) as app:
        assert "Statistics" in visible(await ask(fake_api, ADMIN, "/stats"))
        app.bot_data.services.settings.telegram.admins = []  # type: ignore[union-attr]
        assert visible(await ask(fake_api, ADMIN, "/stats")) == "Sorry, this command is not available to you."


async def test_closed_bot_takes_only_its_allowlist(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    async with running_bot(engine, fake_api, open_subscriptions=False, allowlist=[USER]):
        assert "this bot is private" in visible(await ask(fake_api, STRANGER, "/start"))
        assert "this bot is private" in visible(await ask(fake_api, STRANGER, "/subscribe military_rift"))
        assert "Hello!" in visible(await ask(fake_api, USER, "/start"))
        assert "Hello!" in visible(await ask(fake_api, ANALYST, "/start"))
    assert subscriber(engine, STRANGER) is None


async def test_unknown_command_and_command_menus(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    async with running_bot(engine, fake_api):
        assert "I do not know that command" in visible(await ask(fake_api, USER, "/nonsense"))
        await fake_api.wait_for(lambda: len(fake_api.calls_to("setMyCommands")) >= 9)
    menus = {}
    for call in fake_api.calls_to("setMyCommands"):
        scope = call.params.get("scope") or {"type": "default"}
        key = (scope["type"], scope.get("chat_id"), call.params.get("language_code"))
        menus[key] = [c["command"] for c in call.params["commands"]]
    assert menus[("default", None, None)] == [
        "start",
        "help",
        "subscribe",
        "unsubscribe",
        "mysubs",
        "digest",
        "lang",
    ]
    assert "frames" in menus[("chat", ANALYST, None)] and "stats" not in menus[("chat", ANALYST, None)]
    assert "stats" in menus[("chat", ADMIN, "ru")] and "label" in menus[("chat", ADMIN, "uk")]
    assert len(menus) == 9  # default + analyst + admin, in en/ru/uk


async def test_everyone_analyst_menu_when_analysts_is_star(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    async with running_bot(engine, fake_api, analysts="*"):
        assert "/search QUERY" in visible(await ask(fake_api, STRANGER, "/help"))
        assert "Sorry" in visible(await ask(fake_api, STRANGER, "/stats"))
        await fake_api.wait_for(lambda: len(fake_api.calls_to("setMyCommands")) >= 6)
    default = [c for c in fake_api.calls_to("setMyCommands") if c.params["scope"]["type"] == "default"]
    assert len(default) == 3
    assert all("search" in [x["command"] for x in c.params["commands"]] for c in default)
