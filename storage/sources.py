"""Source rows: configuration, polling state and leases. Policy (backoff, when to disable) lives in ingest/."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.locks import lock_key
from storage.models import Source


class SourceSpec(Protocol):
    """What a configured source looks like (framewatch.config.SourceSettings satisfies it)."""

    name: str
    kind: str
    url: str | None
    channel: str | None
    interval: timedelta | None
    fetch_full_text: bool
    enabled: bool
    language: str | None


class SourceError(ValueError):
    """A source operation that cannot be done (unknown name, duplicate name); message is user-facing."""


@dataclass(frozen=True, slots=True)
class SourceState:
    """A detached copy of what a poll needs, so fetching never holds a session or a row."""

    id: int
    name: str
    kind: str
    url: str | None
    channel: str | None
    interval: timedelta
    fetch_full_text: bool
    language: str | None
    etag: str | None
    last_modified: str | None
    cursor: str | None
    backfilled: bool
    consecutive_failures: int


def _state(source: Source) -> SourceState:
    assert source.id is not None
    return SourceState(
        id=source.id,
        name=source.name,
        kind=source.kind,
        url=source.url,
        channel=source.channel,
        interval=timedelta(seconds=source.interval_seconds),
        fetch_full_text=source.fetch_full_text,
        language=source.language,
        etag=source.etag,
        last_modified=source.last_modified,
        cursor=source.cursor,
        backfilled=source.backfilled,
        consecutive_failures=source.consecutive_failures,
    )


def get_source_by_name(name: str, *, session: Session) -> Source | None:
    return session.exec(select(Source).where(Source.name == name)).first()


def list_sources(*, session: Session) -> list[Source]:
    return list(session.exec(select(Source).order_by(col(Source.name))))


def _apply_spec(source: Source, spec: SourceSpec, default_interval: timedelta) -> None:
    source.kind = spec.kind
    source.url = spec.url
    source.channel = spec.channel
    source.interval_seconds = max(1, int((spec.interval or default_interval).total_seconds()))
    source.fetch_full_text = spec.fetch_full_text
    source.language = spec.language


def add_source(
    spec: SourceSpec, *, session: Session, now: datetime, default_interval: timedelta = timedelta(minutes=10)
) -> Source:
    if get_source_by_name(spec.name, session=session) is not None:
        raise SourceError(f"a source named {spec.name!r} already exists")
    source = Source(name=spec.name, kind=spec.kind, enabled=spec.enabled, created_at=now, next_poll_at=now)
    _apply_spec(source, spec, default_interval)
    session.add(source)
    session.flush()
    return source


def sync_sources(
    specs: Sequence[SourceSpec], *, session: Session, now: datetime, default_interval: timedelta
) -> list[Source]:
    """Make the configured sources exist with their configured settings.

    Sources added at run time (bot, CLI) are left alone. A source the config disables is disabled; one
    that ingest auto-disabled stays disabled until an operator enables it, so a restart can't hide a fault.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Workers started together would all insert the same new sources and all but one would die on
        # the unique name; one syncs at a time, the others then find the rows and insert nothing.
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("sync-sources")})
    out = []
    for spec in specs:
        source = get_source_by_name(spec.name, session=session)
        if source is None:
            out.append(add_source(spec, session=session, now=now, default_interval=default_interval))
            continue
        _apply_spec(source, spec, default_interval)
        if not spec.enabled:
            source.enabled = False
        elif source.disabled_reason is None:
            source.enabled = True
        session.add(source)
        out.append(source)
    session.flush()
    return out


def set_source_enabled(name: str, enabled: bool, *, session: Session, now: datetime) -> Source:
    source = get_source_by_name(name, session=session)
    if source is None:
        raise SourceError(f"no source named {name!r}")
    source.enabled = enabled
    if enabled:
        source.disabled_reason = None
        source.consecutive_failures = 0
        source.next_poll_at = now
    else:
        source.disabled_reason = source.disabled_reason or "disabled by operator"
    session.add(source)
    session.flush()
    return source


def claim_due_sources(
    *, session: Session, now: datetime, owner: str, lease: timedelta, limit: int, names: Sequence[str] = ()
) -> list[SourceState]:
    """Lease up to `limit` due sources to `owner`.

    On PostgreSQL, FOR UPDATE SKIP LOCKED lets any number of workers claim concurrently without two
    taking the same source; an expired lease (dead worker) is simply claimable again. SQLite ignores the
    locking clause and relies on its single writer (BEGIN IMMEDIATE in storage.db).
    """
    stmt = (
        select(Source)
        .where(col(Source.enabled).is_(True))
        .where(sa.or_(col(Source.next_poll_at).is_(None), col(Source.next_poll_at) <= now))
        .where(sa.or_(col(Source.lease_expires_at).is_(None), col(Source.lease_expires_at) < now))
        .order_by(col(Source.next_poll_at).asc().nulls_first(), col(Source.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if names:
        stmt = stmt.where(col(Source.name).in_(list(names)))
    claimed = list(session.exec(stmt))
    for source in claimed:
        source.lease_owner = owner
        source.lease_expires_at = now + lease
        source.last_attempt_at = now
        session.add(source)
    session.flush()
    return [_state(s) for s in claimed]


def lease_sources_by_name(
    names: Sequence[str], *, session: Session, now: datetime, owner: str, lease: timedelta
) -> list[SourceState]:
    """`ingest --once`: poll the named (or all enabled) sources now, due or not, unless another worker has them."""
    stmt = (
        select(Source)
        .where(col(Source.enabled).is_(True))
        .where(sa.or_(col(Source.lease_expires_at).is_(None), col(Source.lease_expires_at) < now))
        .order_by(col(Source.id))
        .with_for_update(skip_locked=True)
    )
    if names:
        stmt = stmt.where(col(Source.name).in_(list(names)))
    claimed = list(session.exec(stmt))
    for source in claimed:
        source.lease_owner, source.lease_expires_at, source.last_attempt_at = owner, now + lease, now
        session.add(source)
    session.flush()
    return [_state(s) for s in claimed]


def _owned(source_id: int, owner: str, session: Session) -> Source | None:
    source = session.get(Source, source_id, with_for_update=True)
    if source is None or (source.lease_owner is not None and source.lease_owner != owner):
        return None  # our lease expired and another worker took over: its result wins
    return source


def record_success(
    source_id: int,
    *,
    session: Session,
    now: datetime,
    owner: str,
    etag: str | None,
    last_modified: str | None,
    cursor: str | None,
    got_posts: bool,
) -> bool:
    source = _owned(source_id, owner, session)
    if source is None:
        return False
    source.etag, source.last_modified = etag, last_modified
    if cursor is not None:
        source.cursor = cursor
    source.backfilled = True
    source.last_success_at = now
    if got_posts:
        source.last_post_at = now
    source.consecutive_failures = 0
    source.last_error = None
    source.next_poll_at = now + timedelta(seconds=source.interval_seconds)
    source.lease_owner = source.lease_expires_at = None
    session.add(source)
    return True


def record_failure(
    source_id: int,
    *,
    session: Session,
    now: datetime,
    owner: str,
    error: str,
    next_poll_at: datetime,
    disable_reason: str | None,
) -> Source | None:
    """Store a failed poll. Returns the source if this call disabled it (so admins can be told)."""
    source = _owned(source_id, owner, session)
    if source is None:
        return None
    source.consecutive_failures += 1
    source.last_error = error[:1000]
    source.next_poll_at = next_poll_at
    source.lease_owner = source.lease_expires_at = None
    disabled_now = None
    if disable_reason and source.enabled:
        source.enabled = False
        source.disabled_reason = disable_reason[:1000]
        disabled_now = source
    session.add(source)
    return disabled_now


def release_lease(source_id: int, *, session: Session, owner: str) -> None:
    """Give a source back untouched (shutdown mid-poll) so the next tick can take it immediately."""
    source = _owned(source_id, owner, session)
    if source is not None:
        source.lease_owner = source.lease_expires_at = None
        session.add(source)


@dataclass(frozen=True, slots=True)
class Silence:
    name: str
    last_post_at: datetime
    usual_gap: timedelta


def silent_sources(
    *, session: Session, now: datetime, factor: float = 5.0, floor: timedelta = timedelta(hours=6), sample: int = 20
) -> list[Silence]:
    """Enabled sources quiet for much longer than their own usual gap between posts.

    "Usual" is the mean gap over the source's last `sample` posts, so a channel that posts every ten
    minutes is flagged after an hour-ish of silence (bounded below by `floor`), a weekly feed not for weeks.
    """
    from storage.models import Post

    out = []
    for source in session.exec(select(Source).where(col(Source.enabled).is_(True))):
        times = list(
            session.exec(
                select(Post.published_at)
                .where(Post.source_id == source.id, col(Post.published_at).is_not(None))
                .order_by(col(Post.published_at).desc())
                .limit(sample + 1)
            )
        )
        if len(times) < 5 or times[0] is None or times[-1] is None:
            continue  # too little history to know what "usual" is
        gap = (times[0] - times[-1]) / (len(times) - 1)
        if now - times[0] > max(floor, gap * factor):
            out.append(Silence(source.name, times[0], gap))
    return out
