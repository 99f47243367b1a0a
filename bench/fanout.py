"""Alert fan-out: one alert to N subscribers through the outbox worker and PTB's AIORateLimiter, against
the fake Bot API enforcing Telegram's ~30 messages/s (token bucket, 429 + retry_after beyond it).

Measured per run: time to match and queue N outbox rows; delivery wall time; achieved messages/s at the
server (first to last accepted message); 429s the server had to send; alerts lost (a subscriber with no
message) and duplicated (a subscriber with more than one). Same-run baseline: the same bot and rate
limiter sending the same message in a bare loop (no database, no outbox, no leases) — the ratio shows
what the crash-safe bookkeeping costs in throughput.

    python bench/fanout.py                        # 10,000 subscribers, 1 run (~6 minutes)
    python bench/fanout.py --subscribers 1000 --runs 3
    python bench/fanout.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_description, median, print_table
from bot.alerts import enqueue_alerts
from bot.delivery import DeliveryWorker, rate_limiter
from classifiers.taxonomy import load_taxonomy
from framewatch.config import Settings
from storage.db import create_engine, session_scope
from storage.migrate import upgrade
from storage.models import Outbox, Post, PostFrame, Source, Subscriber, Subscription
from tests.fakebotapi import FakeBotAPI

TOKEN = "123456789:AAFakeTokenForTheFanoutBenchmark_xyz"
FIRST_CHAT = 10_000_000


class ServerThread:
    """The fake Bot API on its own event loop and thread, as a remote server would be."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.fake: FakeBotAPI | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self.fake = FakeBotAPI(TOKEN, rate_limit=self.rate)
            await self.fake.start()

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> FakeBotAPI:
        self._thread.start()
        self._ready.wait(30)
        assert self.fake is not None
        return self.fake

    def __exit__(self, *exc: object) -> None:
        assert self.fake is not None
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@contextmanager
def database(postgres: str | None) -> Iterator[sa.Engine]:
    if postgres is None:
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_engine(f"sqlite:///{tmp}/fanout.db")
            upgrade(engine)
            yield engine
            engine.dispose()
        return
    url = make_url(postgres)
    name = f"framewatch_fanout_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = create_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def seed(engine: sa.Engine, n: int, now: datetime) -> int:
    with session_scope(engine) as session:
        source = Source(name="wire", kind="rss", url="https://example.org/feed.xml", created_at=now)
        session.add(source)
        session.flush()
        post = Post(
            source_id=source.id or 0,
            external_id="1",
            url="https://example.org/1",
            title="Prigozhin: the Defence Ministry withheld ammunition",
            text="Wagner's chief says the Defence Ministry withheld ammunition from his units near Bakhmut. " * 4,
            language="en",
            published_at=now - timedelta(minutes=1),
            fetched_at=now,
            content_hash="bench",
        )
        session.add(post)
        session.flush()
        session.add(
            PostFrame(
                post_id=post.id or 0,
                frame_id="military_rift",
                score=0.93,
                model_version="bench",
                evidence=["ammunition", "Defence Ministry"],
                tagged_at=now,
            )
        )
        chats = range(FIRST_CHAT, FIRST_CHAT + n)
        session.execute(
            sa.insert(Subscriber),
            [{"chat_id": c, "user_id": c, "language": "en", "digest": "off", "created_at": now} for c in chats],
        )
        ids = session.execute(sa.select(Subscriber.id)).scalars().all()  # type: ignore[call-overload]
        session.execute(
            sa.insert(Subscription),
            [{"subscriber_id": i, "frames": ["military_rift"], "created_at": now} for i in ids],
        )
        return post.id or 0


async def deliver(engine: sa.Engine, fake: FakeBotAPI, settings: Settings, n: int) -> float:
    from telegram.ext import ExtBot

    tax = load_taxonomy()
    bot = ExtBot(TOKEN, base_url=fake.base_url, rate_limiter=rate_limiter())
    started = time.perf_counter()
    last_report = started
    async with bot:
        worker = DeliveryWorker(
            engine=engine,
            bot=bot,
            settings=settings,
            frame_names={f.id: f.name for f in tax.frames},
            frame_order=tax.ids,
        )
        while True:
            await worker.drain()
            with session_scope(engine) as session:
                left = session.execute(
                    sa.select(sa.func.count()).select_from(Outbox).where(Outbox.status.in_(["pending", "sending"]))  # type: ignore[attr-defined]
                ).scalar_one()
            if not left:
                break
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                print(f"  … {n - left}/{n} sent", file=sys.stderr, flush=True)
            await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def bare_loop(fake: FakeBotAPI, text: str, n: int) -> None:
    from telegram.ext import ExtBot

    bot = ExtBot(TOKEN, base_url=fake.base_url, rate_limiter=rate_limiter())
    sem = asyncio.Semaphore(60)

    async def one(chat: int) -> None:
        async with sem:
            await bot.send_message(chat, text, parse_mode="HTML")

    async with bot:
        await asyncio.gather(*(one(FIRST_CHAT * 2 + i) for i in range(n)))


def rate(calls: list[Any], burst: int = 30) -> float:
    """Steady-state messages/s at the server: after the first `burst` (a full bucket lets those through
    at once, which would flatter short runs), up to the last accepted message."""
    times = sorted(c.at for c in calls)[burst:]
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


def one_run(args: argparse.Namespace) -> dict[str, float]:
    now = datetime.now(UTC)
    settings = Settings(telegram={"token": TOKEN})
    with database(args.postgres) as engine, ServerThread(args.rate) as fake:
        post_id = seed(engine, args.subscribers, now)
        t0 = time.perf_counter()
        with session_scope(engine) as session:
            report = enqueue_alerts([post_id], session=session, now=now, settings=settings)
        match_s = time.perf_counter() - t0
        assert report.queued == args.subscribers, report
        seconds = asyncio.run(deliver(engine, fake, settings, args.subscribers))
        sent = fake.sent()
        per_chat = Counter(int(c.params["chat_id"]) for c in sent)
        rate_429 = fake.rate_limited
        worker_rate = rate(sent)
        with session_scope(engine) as session:
            unsent = session.execute(
                sa.select(sa.func.count()).select_from(Outbox).where(Outbox.telegram_message_id.is_(None))  # type: ignore[union-attr]
            ).scalar_one()
        text = str(sent[0].params["text"])
        time.sleep(args.rate and 30 / args.rate + 0.5)  # let the server's bucket refill: a fresh start for both
        before, before_429 = len(fake.sent()), fake.rate_limited
        asyncio.run(bare_loop(fake, text, args.baseline_messages))
        baseline = rate(fake.sent()[before:])
        baseline_429 = fake.rate_limited - before_429
        violations = len(fake.violations)
    return {
        "match_s": match_s,
        "deliver_s": seconds,
        "rate": worker_rate,
        "baseline": baseline,
        "429": float(rate_429),
        "baseline_429": float(baseline_429),
        "lost": float(args.subscribers - len(per_chat)),
        "duplicated": float(sum(n - 1 for n in per_chat.values())),
        "unrecorded": float(unsent),
        "violations": float(violations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=30.0, help="the server's limit, messages/s")
    parser.add_argument("--baseline-messages", type=int, default=600)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a throwaway database is created)")
    args = parser.parse_args()
    print("### Machine\n")
    for key, value in machine_description():
        print(f"- {key}: {value}")
    results = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}: {args.subscribers} subscribers", file=sys.stderr, flush=True)
        results.append(one_run(args))
    m = {key: median([r[key] for r in results]) for key in results[0]}
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print_table(
        f"Fan-out: one alert to {args.subscribers:,} subscribers ({backend}, server limit {args.rate:g} msg/s, "
        f"median of {args.runs} run(s))",
        ["measure", "outbox worker", "bare send loop (baseline)", "ratio"],
        [
            ["match + queue outbox rows", f"{m['match_s']:.2f} s", "—", "—"],
            ["delivery wall time", f"{m['deliver_s']:.1f} s", "—", "—"],
            [
                "achieved msg/s at the server (steady state)",
                f"{m['rate']:.2f}",
                f"{m['baseline']:.2f}",
                f"{m['rate'] / m['baseline']:.3f}",
            ],
            ["429 responses", f"{m['429']:.0f}", f"{m['baseline_429']:.0f}", "—"],
            ["alerts lost", f"{m['lost']:.0f}", "—", "—"],
            ["alerts duplicated", f"{m['duplicated']:.0f}", "—", "—"],
            ["rows without message id", f"{m['unrecorded']:.0f}", "—", "—"],
            ["HTML/limit violations", f"{m['violations']:.0f}", "—", "—"],
        ],
        note="Baseline: the same PTB bot and AIORateLimiter sending the same text in a plain loop "
        f"({args.baseline_messages} messages, no database). Both pace at bot.delivery.MESSAGES_PER_SECOND "
        "and retry 429s in PTB's limiter.",
    )


if __name__ == "__main__":
    main()
