"""Subscriber and subscription rows: who gets alerts, for what, in which language and how often."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Outbox, Subscriber, Subscription


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What a user asked for; every field empty means "every frame, every source, every language"."""

    frames: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    include_keywords: tuple[str, ...] = ()
    exclude_keywords: tuple[str, ...] = ()
    min_score: float = 0.0


@dataclass(frozen=True, slots=True)
class ActiveSubscription:
    """A detached (subscriber, subscription) pair for matching without holding rows."""

    subscriber_id: int
    chat_id: int
    language: str
    digest: str
    spec: SubscriptionSpec


def spec_of(row: Subscription) -> SubscriptionSpec:
    return SubscriptionSpec(
        frames=tuple(row.frames),
        sources=tuple(row.sources),
        languages=tuple(row.languages),
        include_keywords=tuple(row.include_keywords),
        exclude_keywords=tuple(row.exclude_keywords),
        min_score=row.min_score,
    )


def get_subscriber(chat_id: int, *, session: Session) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.chat_id == chat_id)).first()


def ensure_subscriber(
    chat_id: int, *, session: Session, now: datetime, user_id: int | None = None, language: str | None = None
) -> Subscriber:
    """Create the subscriber for `chat_id`, or reactivate it (a user who /starts again unblocked us)."""
    row = get_subscriber(chat_id, session=session)
    if row is None:
        row = Subscriber(chat_id=chat_id, user_id=user_id, language=language or "en", created_at=now)
    elif not row.active:
        row.active, row.deactivated_reason, row.consecutive_failures = True, None, 0
    session.add(row)
    session.flush()
    return row


def add_subscription(
    subscriber_id: int, spec: SubscriptionSpec, *, session: Session, now: datetime
) -> tuple[Subscription, bool]:
    """Add `spec` unless an identical one exists; returns (row, created)."""
    for row in list_subscriptions(subscriber_id, session=session):
        if spec_of(row) == spec:
            return row, False
    row = Subscription(
        subscriber_id=subscriber_id,
        frames=list(spec.frames),
        sources=list(spec.sources),
        languages=list(spec.languages),
        include_keywords=list(spec.include_keywords),
        exclude_keywords=list(spec.exclude_keywords),
        min_score=spec.min_score,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, True


def list_subscriptions(subscriber_id: int, *, session: Session) -> list[Subscription]:
    stmt = select(Subscription).where(Subscription.subscriber_id == subscriber_id).order_by(col(Subscription.id))
    return list(session.exec(stmt))


def remove_subscriptions(subscriber_id: int, *, session: Session, frame: str | None = None) -> int:
    """Remove every subscription (frame None) or take one frame out of each; a subscription left
    without frames that named only that frame is removed rather than widened to "every frame"."""
    removed = 0
    for row in list_subscriptions(subscriber_id, session=session):
        if frame is None:
            session.delete(row)
            removed += 1
        elif frame in row.frames:
            remaining = [f for f in row.frames if f != frame]
            if remaining:
                row.frames = remaining
                session.add(row)
            else:
                session.delete(row)
            removed += 1
    session.flush()
    return removed


def set_language(chat_id: int, language: str, *, session: Session) -> None:
    session.execute(sa.update(Subscriber).where(col(Subscriber.chat_id) == chat_id).values(language=language))


def set_digest(chat_id: int, mode: str, *, session: Session, now: datetime) -> None:
    """Switch digest mode; the digest period starts now, so the first digest is one full period away."""
    session.execute(
        sa.update(Subscriber).where(col(Subscriber.chat_id) == chat_id).values(digest=mode, last_digest_at=now)
    )


def active_subscriptions(*, session: Session) -> list[ActiveSubscription]:
    stmt = (
        select(Subscriber, Subscription)
        .join(Subscription, col(Subscription.subscriber_id) == col(Subscriber.id))
        .where(col(Subscriber.active).is_(True))
        .order_by(col(Subscriber.id), col(Subscription.id))
    )
    out: list[ActiveSubscription] = []
    for subscriber, subscription in session.exec(stmt):
        assert subscriber.id is not None
        out.append(
            ActiveSubscription(
                subscriber.id,
                subscriber.chat_id,
                subscriber.language,
                subscriber.digest,
                spec_of(subscription),
            )
        )
    return out


def record_delivery_success(subscriber_id: int, *, session: Session) -> None:
    session.execute(
        sa.update(Subscriber)
        .where(col(Subscriber.id) == subscriber_id, col(Subscriber.consecutive_failures) != 0)
        .values(consecutive_failures=0)
    )


def record_delivery_failure(subscriber_id: int, reason: str, *, session: Session, deactivate_after: int) -> bool:
    """Count a permanent-looking failure (blocked, chat not found); returns True if this deactivated them.

    Deactivation also fails their queued alerts, which could otherwise only fail again one by one.
    """
    row = session.get(Subscriber, subscriber_id, with_for_update=True)
    if row is None or not row.active:
        return False
    row.consecutive_failures += 1
    if row.consecutive_failures < deactivate_after:
        session.add(row)
        return False
    row.active, row.deactivated_reason = False, reason[:500]
    session.add(row)
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.subscriber_id) == subscriber_id, col(Outbox.status).in_(["pending", "digest"]))
        .values(status="failed", last_error=f"subscriber deactivated: {reason[:400]}")
    )
    return True


def migrate_chat(old_chat_id: int, new_chat_id: int, *, session: Session) -> None:
    """A group became a supergroup: follow it (its subscriber row and every queued message)."""
    taken = get_subscriber(new_chat_id, session=session)
    old = get_subscriber(old_chat_id, session=session)
    if old is not None and taken is None:
        old.chat_id = new_chat_id
        session.add(old)
    elif old is not None and taken is not None and old.id != taken.id:
        old.active, old.deactivated_reason = False, f"migrated to chat {new_chat_id}"
        session.add(old)
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.chat_id) == old_chat_id, col(Outbox.status).in_(["pending", "digest", "sending"]))
        .values(chat_id=new_chat_id)
    )
    session.flush()


def subscribers_by_ids(ids: Sequence[int], *, session: Session) -> dict[int, Subscriber]:
    if not ids:
        return {}
    return {s.id: s for s in session.exec(select(Subscriber).where(col(Subscriber.id).in_(list(ids)))) if s.id}


def count_subscribers(*, session: Session) -> tuple[int, int]:
    """(active, inactive)."""
    rows = session.exec(select(Subscriber.active, sa.func.count()).group_by(col(Subscriber.active)))
    counts = {bool(active): int(n) for active, n in rows}
    return counts.get(True, 0), counts.get(False, 0)
