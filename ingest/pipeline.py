"""One poll of one source: fetch → store → tag → hand new posts on, all-or-nothing per poll.

Fetching is async and holds no database session. Everything a poll writes (posts, tags, alert rows via
`on_new_posts`, the source's new state) commits in one transaction in a worker thread, so a crash or a
kill at any point leaves either the whole poll or none of it, and the next poll simply repeats it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from classifiers.types import Classification
from framewatch.config import IngestSettings
from ingest.health import plan_failure
from ingest.types import FetchResult, FetchStatus
from storage.db import read_scope, session_scope
from storage.models import Source
from storage.posts import StoredPost, changed_items, save_classifications, store_posts
from storage.sources import (
    SourceState,
    claim_due_sources,
    lease_sources_by_name,
    record_failure,
    record_success,
    release_lease,
)

log = logging.getLogger(__name__)


class Tagger(Protocol):
    def classify(self, texts: Sequence[str]) -> list[Classification]: ...


class NewPostsHook(Protocol):
    """Called inside the poll's transaction with the ids of posts that are new or edited (alerts)."""

    def __call__(self, posts: Sequence[int], *, session: Session, now: datetime) -> None: ...


class SourceDisabledHook(Protocol):
    def __call__(self, source: Source, *, session: Session, now: datetime) -> None: ...


Fetcher = Callable[[httpx.AsyncClient, SourceState, IngestSettings], Awaitable[FetchResult]]


@dataclass(frozen=True, slots=True)
class PollReport:
    source: str
    status: str  # new | unchanged | not_modified | error | skipped
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    pages: int = 0
    error: str | None = None
    disabled: bool = False
    seconds: float = 0.0
    new_post_ids: tuple[int, ...] = ()


def post_text(title: str, text: str) -> str:
    """What the classifier reads: title and body, as a reader sees them."""
    return f"{title}\n{text}".strip() if title and not text.startswith(title) else text


@dataclass
class Ingestor:
    """Polls sources; owns the per-host limits so one slow host cannot starve the rest."""

    engine: sa.Engine
    settings: IngestSettings
    client: httpx.AsyncClient
    fetch: Fetcher
    tagger: Tagger | None = None
    on_new_posts: NewPostsHook | None = None
    on_source_disabled: SourceDisabledHook | None = None
    # After a poll's transaction committed (console mode prints alerts from here).
    on_committed: Callable[[PollReport], None] | None = None
    owner: str = field(default_factory=lambda: f"ingest-{uuid.uuid4().hex[:12]}")
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _global: asyncio.Semaphore | None = None
    _hosts: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _inflight: dict[int, asyncio.Task[PollReport]] = field(default_factory=dict)
    _tagging: ThreadPoolExecutor | None = None

    @property
    def lease(self) -> timedelta:
        # Longer than the slowest legitimate poll (every backfill page timing out), so a live worker
        # never loses its lease; short enough that a dead worker's sources come back within minutes.
        if self.settings.lease is not None:
            return self.settings.lease
        return self.settings.timeout * (self.settings.backfill_pages + 2) + timedelta(seconds=30)

    def _host_semaphore(self, state: SourceState) -> asyncio.Semaphore:
        host = urlsplit(state.url or self.settings.telegram_web_base).hostname or "?"
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self.settings.per_host_concurrency)
        return self._hosts[host]

    async def poll(self, state: SourceState) -> PollReport:
        if self._global is None:
            self._global = asyncio.Semaphore(self.settings.concurrency)
        started = time.perf_counter()
        try:
            async with self._global, self._host_semaphore(state):
                result = await self._fetch(state)
            ready = await self._classify_ahead(state, result)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._release, state))
            raise
        report = _timed(await asyncio.to_thread(self._commit, state, result, ready), time.perf_counter() - started)
        if self.on_committed is not None and report.new_post_ids:
            self.on_committed(report)
        return report

    async def _fetch(self, state: SourceState) -> FetchResult:
        try:
            return await self.fetch(self.client, state, self.settings)
        except Exception as exc:  # a fetcher bug must cost one source one poll, not the scheduler
            log.exception("fetcher crashed for source %s", state.name)
            return FetchResult(FetchStatus.ERROR, error=f"internal error: {type(exc).__name__}")

    def _release(self, state: SourceState) -> None:
        with session_scope(self.engine) as session:
            release_lease(state.id, session=session, owner=self.owner)

    def _commit(self, state: SourceState, result: FetchResult, ready: dict[str, Classification]) -> PollReport:
        now = self.clock()
        with session_scope(self.engine) as session:
            if result.status is FetchStatus.ERROR:
                return self._commit_failure(state, result, session, now)
            if result.status is FetchStatus.NOT_MODIFIED:
                record_success(
                    state.id,
                    session=session,
                    now=now,
                    owner=self.owner,
                    etag=result.etag or state.etag,
                    last_modified=result.last_modified or state.last_modified,
                    cursor=None,
                    got_posts=False,
                )
                return PollReport(state.name, "not_modified", pages=result.pages)
            stored = store_posts(state.id, result.posts, session=session, now=now, from_backfill=not state.backfilled)
            self._tag(stored.changed, ready, session, now)
            changed_ids = [p.id for p in stored.changed]
            if changed_ids and self.on_new_posts is not None:
                self.on_new_posts(changed_ids, session=session, now=now)
            record_success(
                state.id,
                session=session,
                now=now,
                owner=self.owner,
                etag=result.etag,
                last_modified=result.last_modified,
                cursor=result.cursor,
                got_posts=bool(stored.new),
            )
            return PollReport(
                state.name,
                "new" if changed_ids else "unchanged",
                new=len(stored.new),
                updated=len(stored.updated),
                unchanged=stored.unchanged,
                pages=result.pages,
                new_post_ids=tuple(changed_ids),
            )

    async def _classify_ahead(self, state: SourceState, result: FetchResult) -> dict[str, Classification]:
        """Classifications of the fetched posts that storing will insert or edit, keyed by classifier text.

        Run before the write transaction: on SQLite the model would otherwise run while holding the
        database's only write lock, and every other source's commit would wait behind it. And always in
        the same thread: each batch allocates tens of MiB of feature matrices, and from a different worker
        thread each time they landed in a different malloc arena, each arena keeping its high-water mark
        (a 20k-post backfill peaked at 414 MiB that way, 308 MiB in one thread, at the same speed).
        """
        if self.tagger is None or result.status is not FetchStatus.OK or not result.posts:
            return {}
        if self._tagging is None:
            self._tagging = ThreadPoolExecutor(max_workers=1, thread_name_prefix="framewatch-tagger")
        return await asyncio.get_running_loop().run_in_executor(self._tagging, self._classify_pending, state, result)

    def _classify_pending(self, state: SourceState, result: FetchResult) -> dict[str, Classification]:
        assert self.tagger is not None
        with read_scope(self.engine) as session:
            pending = changed_items(state.id, result.posts, session=session)
        texts = list(dict.fromkeys(post_text(p.title, p.text) for p in pending))
        return dict(zip(texts, self.tagger.classify(texts), strict=True)) if texts else {}

    def _tag(self, posts: list[StoredPost], ready: dict[str, Classification], session: Session, now: datetime) -> None:
        if not posts or self.tagger is None:
            return
        texts = [post_text(p.title, p.text) for p in posts]
        # Only a post that changed between the read and the write (another worker, an edit) is classified
        # here, inside the transaction.
        missing = [t for t in dict.fromkeys(texts) if t not in ready]
        if missing:
            ready = {**ready, **dict(zip(missing, self.tagger.classify(missing), strict=True))}
        save_classifications([(p.id, ready[t]) for p, t in zip(posts, texts, strict=True)], session=session, now=now)

    def _commit_failure(self, state: SourceState, result: FetchResult, session: Session, now: datetime) -> PollReport:
        error = result.error or "unknown error"
        plan = plan_failure(
            failures_before=state.consecutive_failures,
            now=now,
            interval=state.interval,
            cap=self.settings.max_backoff,
            disable_after=self.settings.disable_after_failures,
            error=error,
            retry_after_seconds=result.retry_after_seconds,
            permanent=result.permanent,
        )
        disabled = record_failure(
            state.id,
            session=session,
            now=now,
            owner=self.owner,
            error=error,
            next_poll_at=plan.next_poll_at,
            disable_reason=plan.disable_reason,
        )
        if disabled is not None:
            log.warning("source %s disabled: %s", state.name, disabled.disabled_reason)
            if self.on_source_disabled is not None:
                self.on_source_disabled(disabled, session=session, now=now)
        else:
            log.info("source %s failed (%s); next poll at %s", state.name, error, plan.next_poll_at)
        return PollReport(state.name, "error", error=error, disabled=disabled is not None)

    # -- driving many polls ------------------------------------------------------------------

    async def run_once(
        self, names: Sequence[str] = (), *, progress: Callable[[int, PollReport], None] | None = None
    ) -> list[PollReport]:
        """Poll the named sources (all enabled ones if none) now, whether due or not; wait for all.

        `progress(total, report)` is called as each source finishes (the CLI's progress bar)."""
        now = self.clock()
        states = await asyncio.to_thread(self._lease_named, names, now)
        tasks = [asyncio.create_task(self.poll(s)) for s in states]
        for done in asyncio.as_completed(tasks):
            report = await done
            if progress is not None:
                progress(len(tasks), report)
        return [t.result() for t in tasks]

    def _lease_named(self, names: Sequence[str], now: datetime) -> list[SourceState]:
        with session_scope(self.engine) as session:
            return lease_sources_by_name(names, session=session, now=now, owner=self.owner, lease=self.lease)

    def _claim_due(self, now: datetime, limit: int) -> list[SourceState]:
        with session_scope(self.engine) as session:
            return claim_due_sources(session=session, now=now, owner=self.owner, lease=self.lease, limit=limit)

    async def tick(self) -> int:
        """Scheduler job: start polls for due sources without waiting for them, so a slow source never
        holds back the next tick. Returns how many polls it started."""
        self._inflight = {k: t for k, t in self._inflight.items() if not t.done()}
        room = self.settings.concurrency * 2 - len(self._inflight)
        if room <= 0:
            return 0
        try:
            states = await asyncio.to_thread(self._claim_due, self.clock(), room)
        except sa.exc.OperationalError as exc:
            # The database is restarting or unreachable: one line per tick instead of a traceback; the
            # pool pings and reconnects on a later tick, and expired leases bring back cut-off polls.
            reason = str(exc.orig or exc).strip().splitlines()
            log.warning("cannot claim due sources, database unavailable: %s", reason[0] if reason else "?")
            return 0
        except asyncio.CancelledError:
            # APScheduler cancels a running job when it shuts down. The job is the whole task, so ending it
            # here is the cancellation, without a "raised an exception" traceback; leases this claim may
            # still take in its thread lapse on their own, like a killed worker's.
            log.info("tick cancelled by scheduler shutdown while claiming sources")
            return 0
        for state in states:
            task = asyncio.create_task(self.poll(state), name=f"poll:{state.name}")
            task.add_done_callback(_log_task_failure)
            self._inflight[state.id] = task
        return len(states)

    async def drain(self, timeout: float) -> None:
        """Shutdown: let running polls finish their transaction, cancel what is still fetching."""
        tasks = [t for t in self._inflight.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._tagging is not None:
            self._tagging.shutdown(wait=False)  # idle by now; a classification still running ends on its own
            self._tagging = None


def _timed(report: PollReport, seconds: float) -> PollReport:
    return replace(report, seconds=seconds)


def _log_task_failure(task: asyncio.Task[PollReport]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("poll task %s failed", task.get_name(), exc_info=task.exception())
