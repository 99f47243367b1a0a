"""The outbox: messages owed to chats, claimed under a lease, finished with the Telegram message id.

Status flow: pending → sending (leased) → sent | pending (retry later) | failed;
digest (waiting for the subscriber's digest) → batched (folded into a kind="digest" row).
A "sending" row whose lease expired without a message id is claimable again: the sender died before
Telegram's answer was recorded (see docs/bot.md for the at-least-once window this leaves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.models import Outbox, Post, PostFrame, Source, Subscriber

OPEN_STATUSES = ("pending", "digest", "sending")


@dataclass(frozen=True, slots=True)
class NewMessage:
    chat_id: int
    dedup_key: str
    kind: str = "alert"
    subscriber_id: int | None = None
    post_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"


def enqueue(messages: Sequence[NewMessage], *, session: Session, now: datetime) -> set[str]:
    """Insert messages whose dedup_key is new; returns the keys actually inserted.

    ON CONFLICT DO NOTHING makes a re-run (re-tagging, a retried batch, two workers) harmless.
    """
    if not messages:
        return set()
    rows = [
        {
            "subscriber_id": m.subscriber_id,
            "chat_id": m.chat_id,
            "post_id": m.post_id,
            "kind": m.kind,
            "dedup_key": m.dedup_key,
            "payload": m.payload,
            "status": m.status,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for m in messages
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Outbox).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(col(Outbox.dedup_key))
    inserted: set[str] = set()
    for start in range(0, len(rows), 1000):
        inserted.update(key for (key,) in session.execute(stmt, rows[start : start + 1000]))
    return inserted


def by_dedup_keys(keys: Sequence[str], *, session: Session) -> dict[str, Outbox]:
    out: dict[str, Outbox] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        for row in session.exec(select(Outbox).where(col(Outbox.dedup_key).in_(chunk))):
            out[row.dedup_key] = row
    return out


def note_also_in(row: Outbox, source_name: str, *, session: Session) -> bool:
    """Add "also in: source" to an alert not yet sent; returns False if it is too late (sent/failed)."""
    if row.status not in ("pending", "digest"):
        return False
    also = list(row.payload.get("also_in", []))
    if source_name not in also and source_name != row.payload.get("source"):
        also.append(source_name)
        row.payload = {**row.payload, "also_in": also}
        session.add(row)
    return True


def claim(*, session: Session, now: datetime, owner: str, lease: timedelta, limit: int) -> list[Outbox]:
    """Lease up to `limit` due rows to `owner` and mark them "sending" (committed before any API call).

    FOR UPDATE SKIP LOCKED lets several workers share PostgreSQL; SQLite ignores it and relies on its
    single writer. Claiming counts an attempt, so a row that kills its worker every time ends as failed.
    """
    due = sa.or_(
        sa.and_(
            col(Outbox.status) == "pending",
            sa.or_(col(Outbox.next_attempt_at).is_(None), col(Outbox.next_attempt_at) <= now),
        ),
        sa.and_(
            col(Outbox.status) == "sending",
            col(Outbox.lease_expires_at) < now,
            col(Outbox.telegram_message_id).is_(None),
        ),
    )
    stmt = select(Outbox).where(due).order_by(col(Outbox.id)).limit(limit).with_for_update(skip_locked=True)
    rows = list(session.exec(stmt))
    for row in rows:
        row.status, row.lease_owner, row.lease_expires_at = "sending", owner, now + lease
        row.attempts += 1
        session.add(row)
    session.flush()
    return rows


def _owned(outbox_id: int, owner: str) -> Any:
    return sa.and_(col(Outbox.id) == outbox_id, col(Outbox.lease_owner) == owner, col(Outbox.status) == "sending")


def mark_sent(outbox_id: int, *, session: Session, now: datetime, owner: str, message_id: int) -> bool:
    """Record delivery and end the lease in one statement; False means our lease was lost meanwhile."""
    result = session.execute(
        sa.update(Outbox)
        .where(_owned(outbox_id, owner))
        .values(
            status="sent",
            telegram_message_id=message_id,
            sent_at=now,
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_retry(
    outbox_id: int,
    *,
    session: Session,
    owner: str,
    error: str,
    next_attempt_at: datetime,
    count_attempt: bool = True,
) -> bool:
    values: dict[str, Any] = {
        "status": "pending",
        "next_attempt_at": next_attempt_at,
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": error[:1000],
    }
    if not count_attempt:  # e.g. RetryAfter: Telegram asked us to wait, the message was fine
        values["attempts"] = col(Outbox.attempts) - 1
    result = session.execute(sa.update(Outbox).where(_owned(outbox_id, owner)).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_failed(outbox_id: int, *, session: Session, owner: str, error: str) -> bool:
    result = session.execute(
        sa.update(Outbox)
        .where(_owned(outbox_id, owner))
        .values(status="failed", lease_owner=None, lease_expires_at=None, last_error=error[:1000])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(outbox_ids: Sequence[int], *, session: Session, owner: str) -> None:
    """Give back rows we claimed but never tried (shutdown): pending again, attempt not counted."""
    if not outbox_ids:
        return
    session.execute(
        sa.update(Outbox)
        .where(
            col(Outbox.id).in_(list(outbox_ids)),
            col(Outbox.lease_owner) == owner,
            col(Outbox.status) == "sending",
        )
        .values(status="pending", lease_owner=None, lease_expires_at=None, attempts=col(Outbox.attempts) - 1)
    )


def retarget_chat(outbox_id: int, new_chat_id: int, *, session: Session) -> None:
    session.execute(sa.update(Outbox).where(col(Outbox.id) == outbox_id).values(chat_id=new_chat_id))


# -- what alerts are made of ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostBundle:
    post: Post
    source_name: str
    frames: tuple[PostFrame, ...]


def post_bundles(post_ids: Sequence[int], *, session: Session) -> dict[int, PostBundle]:
    """Posts with their source name and frame tags (strongest first), in two queries."""
    ids = sorted(set(post_ids))
    if not ids:
        return {}
    frames: dict[int, list[PostFrame]] = {}
    posts: list[tuple[Post, str]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        stmt = select(Post, Source.name).join(Source, col(Source.id) == col(Post.source_id))
        posts.extend(session.exec(stmt.where(col(Post.id).in_(chunk))))
        tags = select(PostFrame).where(col(PostFrame.post_id).in_(chunk)).order_by(col(PostFrame.score).desc())
        for tag in session.exec(tags):
            frames.setdefault(tag.post_id, []).append(tag)
    return {
        post.id: PostBundle(post, name, tuple(frames.get(post.id, ()))) for post, name in posts if post.id is not None
    }


# -- stories: which earlier post a new one repeats (alerts dedup across channels) -----------------------


def earliest_same_story(post: Post, *, session: Session, since: datetime) -> int | None:
    """The first earlier post with the same canonical URL, or the same content hash within the window."""
    assert post.id is not None
    if post.canonical_url:
        first = session.exec(
            select(sa.func.min(Post.id)).where(col(Post.canonical_url) == post.canonical_url, col(Post.id) < post.id)
        ).one()
        if first is not None:
            return int(first)
    if post.content_hash:
        first = session.exec(
            select(sa.func.min(Post.id)).where(
                col(Post.content_hash) == post.content_hash,
                col(Post.id) < post.id,
                sa.or_(col(Post.published_at).is_(None), col(Post.published_at) >= since),
            )
        ).one()
        if first is not None:
            return int(first)
    return None


def alertable_posts_since(
    *, session: Session, since: datetime, before_id: int, limit: int = 5000, chars: int = 1000
) -> list[tuple[int, str, str]]:
    """(id, title, start of text) of recent tagged, non-backfill posts: near-duplicate candidates."""
    stmt = (
        select(Post.id, Post.title, sa.func.substr(Post.text, 1, chars))
        .where(col(Post.published_at) >= since, col(Post.id) < before_id, col(Post.from_backfill).is_(False))
        .where(sa.exists().where(col(PostFrame.post_id) == col(Post.id)))
        .order_by(col(Post.id).desc())
        .limit(limit)
    )
    return [(int(i), str(t or ""), str(x or "")) for i, t, x in session.exec(stmt)]


# -- digests -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestDue:
    subscriber_id: int
    chat_id: int
    language: str
    mode: str


def digests_due(*, session: Session, now: datetime, periods: dict[str, timedelta]) -> list[DigestDue]:
    """Subscribers holding digest rows whose period has elapsed (or who switched digests off)."""
    stmt = (
        select(Subscriber)
        .where(col(Subscriber.active).is_(True))
        .where(sa.exists().where(col(Outbox.subscriber_id) == col(Subscriber.id), col(Outbox.status) == "digest"))
    )
    out: list[DigestDue] = []
    for sub in session.exec(stmt):
        assert sub.id is not None
        period = periods.get(sub.digest)
        last = sub.last_digest_at or sub.created_at
        if period is None or last is None or last + period <= now:
            out.append(DigestDue(sub.id, sub.chat_id, sub.language, sub.digest))
    return out


def take_digest_rows(subscriber_id: int, *, session: Session, limit: int = 500) -> list[Outbox]:
    stmt = (
        select(Outbox)
        .where(col(Outbox.subscriber_id) == subscriber_id, col(Outbox.status) == "digest")
        .order_by(col(Outbox.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(stmt))


def mark_batched(outbox_ids: Sequence[int], digest_key: str, *, session: Session) -> None:
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(list(outbox_ids)), col(Outbox.status) == "digest")
        .values(status="batched", last_error=f"in digest {digest_key}"[:1000])
    )


def set_last_digest(subscriber_id: int, *, session: Session, now: datetime) -> None:
    session.execute(sa.update(Subscriber).where(col(Subscriber.id) == subscriber_id).values(last_digest_at=now))


# -- reporting ---------------------------------------------------------------------------------------


def status_counts(*, session: Session) -> dict[str, int]:
    rows = session.exec(select(Outbox.status, sa.func.count()).group_by(col(Outbox.status)))
    return {str(status): int(n) for status, n in rows}


def recent_errors(*, session: Session, limit: int = 5) -> list[tuple[int, str]]:
    stmt = (
        select(Outbox.id, Outbox.last_error)
        .where(col(Outbox.last_error).is_not(None))
        .order_by(col(Outbox.id).desc())
        .limit(limit)
    )
    return [(int(i), str(e)) for i, e in session.exec(stmt)]


def was_delivered(post_id: int, chat_id: int, *, session: Session) -> bool:
    """Did this chat get an alert about this post? (Who may give feedback on it.)"""
    stmt = (
        select(sa.func.count())
        .select_from(Outbox)
        .where(
            col(Outbox.post_id) == post_id,
            col(Outbox.chat_id) == chat_id,
            col(Outbox.kind) == "alert",
            col(Outbox.status) == "sent",
        )
    )
    return bool(session.exec(stmt).one())
