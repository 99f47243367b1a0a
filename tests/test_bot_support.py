"""Shared pieces of the bot tests: settings, seeded rows, a PTB bot/Application against the fake Bot API.

Rows are inserted directly with SQLModel (what ingest and the classifier would have stored), so the bot
tests depend only on the tables, not on the other packages' code paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from telegram.ext import AIORateLimiter, Application, ExtBot

from classifiers.corpus import Example
from classifiers.taxonomy import Frame, Taxonomy, load_taxonomy
from framewatch.config import Settings
from storage.db import session_scope
from storage.models import Post, PostFrame, Source, Subscriber, Subscription
from storage.posts import content_hash
from tests.fakebotapi import FakeBotAPI, check_telegram_html

# Shaped like a real token (so the generic token pattern would also catch it) but never valid anywhere.
TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijkl"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# Ten-digit ids like today's accounts (past 2**31: an INTEGER column lost such an admin's labels).
ADMIN, ANALYST, USER, STRANGER = 5_100_000_001, 2002, 6_300_000_003, 4004


def make_settings(fake: FakeBotAPI | None = None, **telegram: Any) -> Settings:
    tg: dict[str, Any] = {"token": TOKEN, "admins": [ADMIN], "analysts": [ANALYST]}
    if fake is not None:
        tg["api_base_url"] = fake.base_url
        tg["base_file_url"] = fake.base_file_url
    tg.update(telegram)
    return Settings(telegram=tg)


def taxonomy() -> Taxonomy:
    return load_taxonomy()


def frame_names(tax: Taxonomy) -> dict[str, str]:
    return {f.id: f.name for f in tax.frames}


def add_source(session: Session, name: str = "wire", *, kind: str = "rss", **kw: Any) -> Source:
    source = Source(
        name=name,
        kind=kind,
        url=kw.pop("url", f"https://example.org/{name}.xml" if kind == "rss" else None),
        channel=kw.pop("channel", name if kind == "telegram" else None),
        created_at=kw.pop("created_at", NOW - timedelta(days=30)),
        **kw,
    )
    session.add(source)
    session.flush()
    return source


_external = iter(range(1, 10**9))


def add_post(
    session: Session,
    source: Source,
    *,
    text: str = "Prigozhin says the Defence Ministry withheld ammunition from Wagner units near Bakhmut.",
    title: str = "",
    frames: Mapping[str, float] | None = None,
    evidence: Mapping[str, list[str]] | None = None,
    published_at: datetime | None = None,
    url: str | None = None,
    canonical_url: str | None = None,
    duplicate_of_id: int | None = None,
    from_backfill: bool = False,
    language: str | None = "en",
) -> Post:
    assert source.id is not None
    n = next(_external)
    post = Post(
        source_id=source.id,
        external_id=f"ext-{n}",
        url=url or f"https://example.org/{source.name}/{n}",
        canonical_url=canonical_url,
        title=title,
        text=text,
        language=language,
        published_at=published_at or NOW - timedelta(minutes=5),
        fetched_at=NOW - timedelta(minutes=1),
        content_hash=content_hash(title, text),
        duplicate_of_id=duplicate_of_id,
        from_backfill=from_backfill,
        classified_version="test-model",
    )
    session.add(post)
    session.flush()
    assert post.id is not None
    for frame_id, score in (frames if frames is not None else {"military_rift": 0.9}).items():
        session.add(
            PostFrame(
                post_id=post.id,
                frame_id=frame_id,
                score=score,
                model_version="test-model",
                evidence=list((evidence or {}).get(frame_id, ["ammunition", "Wagner"])),
                tagged_at=NOW,
            )
        )
    session.flush()
    return post


def add_subscriber(
    session: Session,
    chat_id: int,
    *,
    frames: list[str] | None = None,
    language: str = "en",
    digest: str = "off",
    **spec: Any,
) -> Subscriber:
    sub = Subscriber(chat_id=chat_id, user_id=chat_id if chat_id > 0 else None, language=language, digest=digest)
    sub.created_at = NOW - timedelta(days=1)
    sub.last_digest_at = NOW - timedelta(days=1)
    session.add(sub)
    session.flush()
    assert sub.id is not None
    session.add(Subscription(subscriber_id=sub.id, frames=frames or [], **spec))
    session.flush()
    return sub


@contextlib.contextmanager
def db(engine: sa.Engine) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


def tiny_taxonomy() -> Taxonomy:
    return Taxonomy((Frame("rift", "Rift"), Frame("denial", "Denial")))


def tiny_corpus() -> list[Example]:
    """Enough distinct, separable texts to train the two-frame taxonomy in well under a second."""
    words = {
        "rift": "wagner prigozhin ministry shells betrayed generals",
        "denial": "deny fake staged hoax lies",
    }
    filler = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    out = []
    for i in range(40):
        frames = ("rift",) if i % 3 == 0 else ("denial",) if i % 3 == 1 else ()
        base = words[frames[0]] if frames else "weather football concert market prices"
        out.append(Example(f"{base} {filler[i % 10]} {filler[(i // 10) % 10]} {filler[(i * 3) % 10]}", frames))
    return out


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(TOKEN) as fake:
        yield fake
        assert not fake.violations, fake.violations


@contextlib.asynccontextmanager
async def running_bot(
    engine: sa.Engine,
    fake: FakeBotAPI,
    *,
    models: Any = None,
    on_model_change: Any = None,
    clock: Any = None,
    taxonomy: Taxonomy | None = None,
    digest_interval: float = 60.0,
    **telegram: Any,
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """The real Application from build_application, polling the fake Bot API."""
    from bot.app import build_application

    settings = make_settings(fake, **telegram)
    extra = {"clock": clock} if clock is not None else {}
    app = build_application(
        settings,
        engine=engine,
        taxonomy=taxonomy,
        models=models,
        on_model_change=on_model_change,
        delivery_interval=0.1,
        digest_interval=digest_interval,
        **extra,
    )
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


async def ask(fake: FakeBotAPI, user_id: int, text: str, *, chat_id: int | None = None, timeout: float = 10) -> str:
    """Send `text` as `user_id` and return the bot's next message (text or photo caption) to that chat."""
    chat = chat_id if chat_id is not None else user_id
    before = len(fake.sent(chat))
    fake.push_text(user_id, text, chat_id=chat)
    sent = await fake.wait_for(lambda: len(fake.sent(chat)) > before and fake.sent(chat), timeout)
    call = sent[before]
    return str(call.params.get("text") or call.params.get("caption") or "")


def visible(markup: str) -> str:
    """What the user reads, after checking the markup is Telegram-valid HTML."""
    error, text = check_telegram_html(markup)
    assert error is None, (error, markup)
    return text


def make_bot(fake: FakeBotAPI, *, max_retries: int = 0) -> ExtBot[Any]:
    return ExtBot(
        TOKEN,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        rate_limiter=AIORateLimiter(max_retries=max_retries),
    )
