"""Tables. Every timestamp is UTC; SQLite stores it naive, PostgreSQL as timestamptz, both read back aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Refuses naive datetimes on the way in and hands back aware UTC on the way out, on both backends."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _json(default_factory: Any = list) -> Any:
    return Field(default_factory=default_factory, sa_type=sa.JSON, nullable=False)


class Source(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    kind: str = Field(max_length=20)  # rss | telegram | telethon
    url: str | None = None  # feed URL (rss) or None
    channel: str | None = Field(default=None, max_length=200)  # telegram channel username
    interval_seconds: int = 600
    enabled: bool = True
    language: str | None = Field(default=None, max_length=8)
    fetch_full_text: bool = False
    # Polling state
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None  # last seen message id for t.me/s
    backfilled: bool = False
    last_attempt_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    last_post_at: datetime | None = _ts()
    last_error: str | None = None
    consecutive_failures: int = 0
    next_poll_at: datetime | None = _ts(index=True)
    disabled_reason: str | None = None
    # Lease: who is fetching this source right now and until when (multi-worker on PostgreSQL).
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = _ts()
    created_at: datetime | None = _ts()


class Post(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("source_id", "external_id", name="uq_post_source_external"),
        sa.Index("ix_post_published_at_id", "published_at", "id"),
        sa.Index("ix_post_source_published", "source_id", "published_at", "id"),
        sa.Index("ix_post_language_published", "language", "published_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True)
    external_id: str = Field(max_length=500)
    url: str | None = None
    canonical_url: str | None = Field(default=None, index=True)
    title: str = ""
    text: str = ""
    language: str | None = Field(default=None, max_length=8, index=True)
    published_at: datetime | None = _ts()
    fetched_at: datetime | None = _ts(index=True)  # /stats counts what ingestion fetched per day
    views: int | None = None
    forwarded_from: str | None = None
    link_title: str | None = None
    media: list[str] = _json()
    content_hash: str = Field(default="", max_length=64, index=True)
    edited: bool = False
    edited_at: datetime | None = _ts()
    # Same story seen earlier (same canonical URL from another source): linked, not stored twice.
    duplicate_of_id: int | None = Field(default=None, foreign_key="post.id", index=True)
    # Stored during a source's first backfill: tagged but never alerted.
    from_backfill: bool = False
    classified_version: str | None = Field(default=None, max_length=64)


class PostFrame(SQLModel, table=True):
    """A frame tag on a post, from one model version."""

    post_id: int = Field(foreign_key="post.id", primary_key=True, ondelete="CASCADE")
    frame_id: str = Field(primary_key=True, max_length=64, index=True)
    score: float
    model_version: str = Field(max_length=64)
    evidence: list[str] = _json()
    tagged_at: datetime | None = _ts(index=True)


class Label(SQLModel, table=True):
    """A human judgement of a post's frames; admins weigh more than subscriber feedback."""

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True, ondelete="CASCADE")
    frames: list[str] = _json()
    user_id: int | None = Field(default=None, sa_type=sa.BigInteger)  # Telegram ids pass 2**31
    kind: str = Field(default="admin", max_length=20)  # admin | feedback
    weight: float = 1.0
    created_at: datetime | None = _ts()


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_type=sa.BigInteger, unique=True, index=True)
    user_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    language: str = Field(default="en", max_length=8)
    digest: str = Field(default="off", max_length=10)  # off | hourly | daily
    active: bool = True
    consecutive_failures: int = 0
    deactivated_reason: str | None = None
    last_digest_at: datetime | None = _ts()
    created_at: datetime | None = _ts()


class Subscription(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    frames: list[str] = _json()  # empty: any frame
    sources: list[str] = _json()
    languages: list[str] = _json()
    include_keywords: list[str] = _json()
    exclude_keywords: list[str] = _json()
    min_score: float = 0.0
    created_at: datetime | None = _ts()


class Outbox(SQLModel, table=True):
    """One message owed to one chat. Matching inserts; delivery claims, sends and records the message id."""

    __table_args__ = (sa.UniqueConstraint("dedup_key", name="uq_outbox_dedup"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True)
    chat_id: int = Field(sa_type=sa.BigInteger)
    post_id: int | None = Field(default=None, foreign_key="post.id")
    kind: str = Field(default="alert", max_length=20)  # alert | digest | admin
    dedup_key: str = Field(max_length=200)
    payload: dict[str, Any] = _json(dict)
    status: str = Field(default="pending", max_length=20, index=True)  # pending|digest|sent|failed
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(index=True)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = _ts()
    telegram_message_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_error: str | None = None
    created_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
