"""Read-only aggregates for analysts and admins: frame counts, trends, posts per day, delivery health."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Outbox, Post, PostFrame, Source


@dataclass(frozen=True, slots=True)
class FrameStat:
    frame_id: str
    count: int
    previous: int
    top_sources: tuple[tuple[str, int], ...]


def _frame_counts(session: Session, since: datetime, until: datetime) -> dict[str, int]:
    stmt = (
        select(PostFrame.frame_id, sa.func.count())
        .join(Post, col(Post.id) == col(PostFrame.post_id))
        .where(col(Post.published_at) >= since, col(Post.published_at) < until)
        .group_by(col(PostFrame.frame_id))
    )
    return {str(f): int(n) for f, n in session.exec(stmt)}


def frame_summary(*, session: Session, now: datetime, period: timedelta, top: int = 3) -> list[FrameStat]:
    """Tagged posts per frame in the last `period`, the period before it, and the top sources."""
    current = _frame_counts(session, now - period, now)
    previous = _frame_counts(session, now - 2 * period, now - period)
    stmt = (
        select(PostFrame.frame_id, Source.name, sa.func.count())
        .join(Post, col(Post.id) == col(PostFrame.post_id))
        .join(Source, col(Source.id) == col(Post.source_id))
        .where(col(Post.published_at) >= now - period, col(Post.published_at) < now)
        .group_by(col(PostFrame.frame_id), col(Source.name))
    )
    by_frame: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for frame_id, source, n in session.exec(stmt):
        by_frame[str(frame_id)].append((str(source), int(n)))
    out = [
        FrameStat(
            frame_id,
            count,
            previous.get(frame_id, 0),
            tuple(sorted(by_frame[frame_id], key=lambda s: (-s[1], s[0]))[:top]),
        )
        for frame_id, count in current.items()
    ]
    return sorted(out, key=lambda s: (-s.count, s.frame_id))


def frame_daily_counts(frame_id: str, *, session: Session, now: datetime, days: int) -> list[tuple[date, int]]:
    """Tagged posts per UTC day for one frame, oldest first, zero-filled, ending today."""
    start_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(start_day, datetime.min.time(), tzinfo=now.tzinfo)
    stmt = (
        select(Post.published_at)
        .join(PostFrame, col(PostFrame.post_id) == col(Post.id))
        .where(
            col(PostFrame.frame_id) == frame_id,
            col(Post.published_at) >= since,
            col(Post.published_at) <= now,
        )
    )
    counts: dict[date, int] = defaultdict(int)
    for (published,) in session.execute(stmt):
        counts[published.date()] += 1
    return [(start_day + timedelta(days=i), counts.get(start_day + timedelta(days=i), 0)) for i in range(days)]


def _utc_day(column: sa.ColumnElement[datetime], dialect: str) -> sa.ColumnElement[str]:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", column)  # SQLite stores UTC already


def posts_per_day(*, session: Session, now: datetime, days: int = 7) -> list[tuple[str, int]]:
    """Posts fetched per UTC day (what ingestion actually did), oldest first, zero-filled."""
    start_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(start_day, datetime.min.time(), tzinfo=now.tzinfo)
    day = _utc_day(col(Post.fetched_at), session.get_bind().dialect.name)
    stmt = select(day, sa.func.count()).where(col(Post.fetched_at) >= since).group_by(day)
    found = {str(d): int(n) for d, n in session.execute(stmt)}
    days_list = [(start_day + timedelta(days=i)).isoformat() for i in range(days)]
    return [(d, found.get(d, 0)) for d in days_list]


def alerts_sent(*, session: Session, since: datetime | None = None) -> int:
    stmt = (
        select(sa.func.count())
        .select_from(Outbox)
        .where(col(Outbox.status) == "sent", col(Outbox.kind).in_(["alert", "digest"]))
    )
    if since is not None:
        stmt = stmt.where(col(Outbox.sent_at) >= since)
    return int(session.exec(stmt).one())


def source_errors(*, session: Session, limit: int = 5) -> list[tuple[str, str, datetime | None]]:
    """(source, last error, last attempt) for the sources that most recently failed."""
    stmt = (
        select(Source.name, Source.last_error, Source.last_attempt_at)
        .where(col(Source.last_error).is_not(None))
        .order_by(col(Source.last_attempt_at).desc().nulls_last())
        .limit(limit)
    )
    return [(str(n), str(e), a) for n, e, a in session.exec(stmt)]
