"""Outbox crash safety with real processes: SIGKILL between match and send, restart, count deliveries.

The test process runs the fake Bot API; this same file, run as `python -m tests.test_bot_crash`, is the
worker process that gets killed (match mode: queue alerts then stall; worker mode: deliver until empty).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from storage.models import Outbox, utcnow
from tests.fakebotapi import FakeBotAPI
from tests.test_bot_support import TOKEN, add_post, add_source, add_subscriber, db, make_settings

ROOT = Path(__file__).resolve().parents[1]
BATCH = 4


def _seed(engine: sa.Engine, chats: list[int]) -> int:
    with db(engine) as session:
        src = add_source(session, "wire")
        for chat in chats:
            add_subscriber(session, chat, frames=["military_rift"])
        post = add_post(session, src, published_at=utcnow() - timedelta(minutes=1))
        assert post.id is not None
        return post.id


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.test_bot_crash", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _run(*args: str, timeout: float = 60) -> None:
    proc = await _spawn(*args)
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()[-3000:]


def _outbox(engine: sa.Engine) -> list[Outbox]:
    with db(engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)))


async def test_killed_after_match_before_send(engine: sa.Engine, database_url: str) -> None:
    post_id = _seed(engine, [10])
    async with FakeBotAPI(TOKEN) as fake:
        proc = await _spawn("match", database_url, str(post_id))
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"MATCHED"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        (row,) = _outbox(engine)
        assert row.status == "pending"
        # After the restart the pipeline may match the same post again: still one alert.
        await _run("match", database_url, str(post_id), "--no-stall")
        await _run("worker", database_url, fake.base_url, "2")
        assert len(fake.sent(10)) == 1 and not fake.violations
    (row,) = _outbox(engine)
    assert row.status == "sent" and row.telegram_message_id == fake.sent(10)[0].result["message_id"]


async def test_killed_during_the_api_call(engine: sa.Engine, database_url: str) -> None:
    """Killed while the request is in flight (Telegram has not accepted it): resent once, after the lease."""
    post_id = _seed(engine, [10])
    with db(engine) as session:
        from bot.alerts import enqueue_alerts

        enqueue_alerts([post_id], session=session, now=utcnow(), settings=make_settings())
    async with FakeBotAPI(TOKEN) as fake:
        fake.add_fault("hang", method="sendMessage", hang_seconds=30)
        proc = await _spawn("worker", database_url, fake.base_url, "2")
        await fake.wait_for(lambda: fake.calls_to("sendMessage"), timeout=60)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        (row,) = _outbox(engine)
        assert row.status == "sending" and row.lease_owner and row.telegram_message_id is None
        await _run("worker", database_url, fake.base_url, "2")
        assert len(fake.sent(10)) == 1
    (row,) = _outbox(engine)
    assert row.status == "sent" and row.attempts == 2


@pytest.mark.slow
async def test_random_kills_lose_nothing(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    """Kill the worker at random points of a 40-message fan-out, three times, then let it finish.

    Nothing may be lost. A kill that lands after Telegram accepted a message but before its commit
    resends that message (the documented window); the worker keeps at most BATCH sends in flight, so
    duplicates are bounded by kills × BATCH. The kill points here are deliberately close to acceptances.
    """
    url = sqlite_engine.url.render_as_string(hide_password=False)
    chats = list(range(100, 140))
    post_id = _seed(sqlite_engine, chats)
    await _run("match", url, str(post_id), "--no-stall")
    rng = random.Random(4)
    kills = 0
    async with FakeBotAPI(TOKEN, latency=0.02) as fake:
        for _ in range(3):
            target = len(fake.sent()) + rng.randint(1, 8)
            proc = await _spawn("worker", url, fake.base_url, "1")
            with contextlib.suppress(TimeoutError):  # the worker may finish first
                await fake.wait_for(lambda t=target: len(fake.sent()) >= t, timeout=60)
            await asyncio.sleep(rng.random() * 0.1)
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await proc.wait()
        await _run("worker", url, fake.base_url, "1")
        per_chat = {c: len(fake.sent(c)) for c in chats}
    assert min(per_chat.values()) >= 1, "an alert was lost"
    duplicates = sum(n - 1 for n in per_chat.values())
    assert duplicates <= kills * BATCH
    assert all(r.status == "sent" for r in _outbox(sqlite_engine))


def _main(argv: list[str]) -> int:
    """Subprocess entry: `match URL POST_ID [--no-stall]` or `worker URL BASE_URL LEASE_SECONDS`."""
    from bot.alerts import enqueue_alerts
    from storage.db import create_engine, session_scope

    mode, url = argv[0], argv[1]
    engine = create_engine(url)
    if mode == "match":
        with session_scope(engine) as session:
            enqueue_alerts([int(argv[2])], session=session, now=utcnow(), settings=make_settings())
        print("MATCHED", flush=True)
        if "--no-stall" not in argv:
            time.sleep(120)  # the crash point: matched and committed, nothing sent
        return 0
    return asyncio.run(_worker(engine, argv[2], float(argv[3])))


async def _worker(engine: sa.Engine, base_url: str, lease: float) -> int:
    from telegram.ext import AIORateLimiter, ExtBot

    from bot.delivery import DeliveryWorker
    from classifiers.taxonomy import load_taxonomy
    from storage.db import session_scope

    tax = load_taxonomy()
    bot = ExtBot(TOKEN, base_url=base_url, rate_limiter=AIORateLimiter())
    deadline = time.monotonic() + 45
    async with bot:
        worker = DeliveryWorker(
            engine=engine,
            bot=bot,
            settings=make_settings(),
            frame_names={f.id: f.name for f in tax.frames},
            frame_order=tax.ids,
            lease=timedelta(seconds=lease),
            batch_size=BATCH,
            private_chat_interval=0,
        )
        while time.monotonic() < deadline:
            await worker.drain()
            with session_scope(engine) as session:
                open_rows = session.exec(
                    select(sa.func.count()).select_from(Outbox).where(Outbox.status.in_(["pending", "sending"]))  # type: ignore[attr-defined]
                ).one()
            if not open_rows:
                return 0
            await asyncio.sleep(0.2)
    return 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
