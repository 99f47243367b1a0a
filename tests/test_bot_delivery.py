"""The delivery worker against the fake Bot API: success, Telegram's failures, leases between workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from bot.alerts import enqueue_alerts, notify_admins
from bot.delivery import DeliveryWorker, backoff
from storage import outbox
from storage.models import Outbox, Subscriber
from tests.fakebotapi import FakeBotAPI
from tests.test_bot_support import (
    ADMIN,
    NOW,
    TOKEN,
    add_post,
    add_source,
    add_subscriber,
    db,
    fake_api,
    frame_names,
    make_bot,
    make_settings,
    taxonomy,
)

__all__ = ["fake_api"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def worker(engine: sa.Engine, bot: Any, clock: Clock, **kw: Any) -> DeliveryWorker:
    tax = taxonomy()
    return DeliveryWorker(
        engine=engine,
        bot=bot,
        settings=kw.pop("settings", make_settings()),
        frame_names=frame_names(tax),
        frame_order=tax.ids,
        clock=clock,
        private_chat_interval=0,
        **kw,
    )


def seed_alerts(engine: sa.Engine, chats: list[int], **post: Any) -> int:
    with db(engine) as session:
        src = add_source(session, "wire")
        for chat in chats:
            add_subscriber(session, chat, frames=["military_rift"])
        p = add_post(session, src, **post)
        assert p.id is not None
        enqueue_alerts([p.id], session=session, now=NOW, settings=make_settings())
        return p.id


def rows(engine: sa.Engine) -> list[Outbox]:
    with db(engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)))


async def test_alert_is_sent_and_recorded(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    post_id = seed_alerts(engine, [10, 11], title="Rift <deepens>")
    async with make_bot(fake_api) as bot:
        stats = await worker(engine, bot, Clock(NOW)).drain()
    assert stats.sent == 2
    sent = {int(c.params["chat_id"]): c for c in fake_api.sent()}
    assert set(sent) == {10, 11}
    text = str(sent[10].params["text"])
    assert "Rift &lt;deepens&gt;" in text and f"#{post_id}" in text and "<b>ammunition</b>" in text
    buttons = [b["callback_data"] for b in sent[10].params["reply_markup"]["inline_keyboard"][0]]
    assert buttons[0].startswith(f"fb:c:{post_id}:")
    for row in rows(engine):
        assert row.status == "sent" and row.lease_owner is None
        assert row.telegram_message_id == sent[row.chat_id].result["message_id"]


async def test_retry_after_waits_and_then_sends_once(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed_alerts(engine, [10])
    fake_api.add_fault("429", method="sendMessage", retry_after=7)
    clock = Clock(NOW)
    async with make_bot(fake_api) as bot:
        w = worker(engine, bot, clock)
        assert (await w.drain()).retried == 1
        (row,) = rows(engine)
        assert row.status == "pending" and row.next_attempt_at == NOW + timedelta(seconds=7.5)
        assert row.attempts == 0  # Telegram asked us to wait; the message itself was fine
        assert (await w.drain()).sent == 0  # not due yet
        clock.advance(8)
        assert (await w.drain()).sent == 1
    assert len(fake_api.sent(10)) == 1


async def test_rate_limiter_retries_429_itself(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed_alerts(engine, [10])
    fake_api.add_fault("429", method="sendMessage", retry_after=1)
    async with make_bot(fake_api, max_retries=2) as bot:
        stats = await worker(engine, bot, Clock(NOW)).drain()
    assert stats.sent == 1 and fake_api.rate_limited == 1 and len(fake_api.sent(10)) == 1


@pytest.mark.parametrize("fault", ["5xx", "drop"])
async def test_server_errors_and_drops_are_retried_with_backoff(
    engine: sa.Engine, fake_api: FakeBotAPI, fault: str
) -> None:
    seed_alerts(engine, [10])
    fake_api.add_fault(fault, method="sendMessage", count=2)
    clock = Clock(NOW)
    async with make_bot(fake_api) as bot:
        w = worker(engine, bot, clock)
        for attempt in (1, 2):
            assert (await w.drain()).retried == attempt
            (row,) = rows(engine)
            assert row.status == "pending" and row.attempts == attempt and row.last_error
            assert NOW + timedelta(seconds=backoff(attempt, rng=lambda: 0)) <= row.next_attempt_at
            clock.advance(backoff(attempt, rng=lambda: 1) + 1)
        assert (await w.drain()).sent == 1
    assert len(fake_api.sent(10)) == 1


async def test_gives_up_after_max_attempts(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed_alerts(engine, [10])
    fake_api.add_fault("5xx", method="sendMessage", count=None)
    settings = make_settings()
    settings.alerts.max_attempts = 3
    clock = Clock(NOW)
    async with make_bot(fake_api) as bot:
        w = worker(engine, bot, clock, settings=settings)
        for _ in range(5):
            await w.drain()
            clock.advance(3600)
    (row,) = rows(engine)
    assert row.status == "failed" and row.attempts == 3 and "gave up" in (row.last_error or "")
    assert len(fake_api.calls_to("sendMessage")) == 3


async def test_timeout_is_retried(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed_alerts(engine, [10])
    fake_api.add_fault("hang", method="sendMessage", hang_seconds=5)
    clock = Clock(NOW)
    request = HTTPXRequest(read_timeout=0.5, connection_pool_size=8)
    bot = ExtBot(TOKEN, base_url=fake_api.base_url, request=request, rate_limiter=AIORateLimiter())
    async with bot:
        w = worker(engine, bot, clock)
        stats = await w.drain()
        assert stats.retried == 1 and "TimedOut" in (rows(engine)[0].last_error or "")
        clock.advance(60)
        assert (await w.drain()).sent == 1
    assert len(fake_api.sent(10)) == 1


@pytest.mark.parametrize("fault", ["blocked", "chat_not_found"])
async def test_blocked_subscriber_is_deactivated_after_repeated_failures(
    engine: sa.Engine, fake_api: FakeBotAPI, fault: str
) -> None:
    settings = make_settings()
    settings.alerts.deactivate_after_failures = 2
    with db(engine) as session:
        src = add_source(session, "wire")
        add_subscriber(session, 10)
        add_subscriber(session, 11)
        posts = [add_post(session, src, text=f"story {i} " * 20) for i in range(4)]
        enqueue_alerts([p.id for p in posts], session=session, now=NOW, settings=settings)
    fake_api.add_fault(fault, method="sendMessage", chat_id=10, count=None)
    async with make_bot(fake_api) as bot:
        w = worker(engine, bot, Clock(NOW), settings=settings, batch_size=1)
        stats = await w.drain()
    assert stats.deactivated == 1 and len(fake_api.sent(11)) == 4
    with db(engine) as session:
        blocked = session.exec(select(Subscriber).where(Subscriber.chat_id == 10)).one()
        assert not blocked.active and blocked.deactivated_reason
    mine = [r for r in rows(engine) if r.chat_id == 10]
    assert all(r.status == "failed" for r in mine)
    # Two tries hit Telegram; the rest were failed without another request once they were deactivated.
    assert len([c for c in fake_api.calls_to("sendMessage") if c.params["chat_id"] == "10"]) == 2


async def test_chat_migration_is_followed(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed_alerts(engine, [-500])
    fake_api.add_fault("migrate", method="sendMessage", chat_id=-500, migrate_to=-1009999)
    async with make_bot(fake_api) as bot:
        stats = await worker(engine, bot, Clock(NOW)).drain()
    assert stats.sent == 1 and stats.migrated == 1
    assert len(fake_api.sent(-1009999)) == 1 and fake_api.sent(-500) == []
    with db(engine) as session:
        assert session.exec(select(Subscriber.chat_id)).all() == [-1009999]
    assert rows(engine)[0].chat_id == -1009999


async def test_admin_notice_is_escaped(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    with db(engine) as session:
        notify_admins("source <evil> & co disabled", session=session, now=NOW, settings=make_settings())
    async with make_bot(fake_api) as bot:
        await worker(engine, bot, Clock(NOW)).drain()
    assert "source &lt;evil&gt; &amp; co disabled" in fake_api.last_text(ADMIN)


async def test_answer_lost_after_acceptance_is_the_documented_duplicate(
    engine: sa.Engine, fake_api: FakeBotAPI
) -> None:
    """Telegram took the message but the answer never came back: we cannot know, so we send again.
    This is the at-least-once window docs/bot.md describes; it must stay exactly this narrow."""
    seed_alerts(engine, [10])
    fake_api.add_fault("drop_after", method="sendMessage")
    clock = Clock(NOW)
    async with make_bot(fake_api) as bot:
        w = worker(engine, bot, clock)
        await w.drain()
        clock.advance(3600)
        await w.drain()
        await w.drain()
    assert len(fake_api.sent(10)) == 2
    assert rows(engine)[0].status == "sent"


def test_leases_split_rows_between_workers(engine: sa.Engine) -> None:
    seed_alerts(engine, list(range(10, 20)))
    lease = timedelta(minutes=2)
    with db(engine) as session:
        a = outbox.claim(session=session, now=NOW, owner="a", lease=lease, limit=6)
    with db(engine) as session:
        b = outbox.claim(session=session, now=NOW, owner="b", lease=lease, limit=6)
    assert len(a) == 6 and len(b) == 4 and not {r.id for r in a} & {r.id for r in b}
    with db(engine) as session:
        assert outbox.mark_sent(a[0].id, session=session, now=NOW, owner="a", message_id=1)
        assert not outbox.mark_sent(b[0].id, session=session, now=NOW, owner="a", message_id=2)
    later = NOW + lease + timedelta(seconds=1)
    with db(engine) as session:  # a died: its unsent rows (no message id) come back; the sent one does not
        c = outbox.claim(session=session, now=later, owner="c", lease=lease, limit=100)
    assert sorted(r.id for r in c) == sorted(r.id for r in [*a[1:], *b])
    assert all(r.attempts == 2 for r in c)


def test_concurrent_claims_never_overlap(engine: sa.Engine) -> None:
    """Several threads claiming at once (PostgreSQL: SKIP LOCKED; SQLite: one writer at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    seed_alerts(engine, list(range(100, 160)))

    def grab(owner: str) -> list[int]:
        got: list[int] = []
        while True:
            with db(engine) as session:
                rows_ = outbox.claim(session=session, now=NOW, owner=owner, lease=timedelta(minutes=1), limit=3)
                if not rows_:
                    return got
                got.extend(r.id for r in rows_ if r.id is not None)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(grab, ["w1", "w2", "w3", "w4"]))
    flat = [i for r in results for i in r]
    assert len(flat) == len(set(flat)) == 60
