"""Wiring for the long-running commands: builds the parts from settings and runs them on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from sqlmodel import Session

from framewatch.config import Settings
from framewatch.wiring import open_database, sync_configured_sources
from ingest.fetch import build_fetcher
from ingest.http import make_client
from ingest.pipeline import Ingestor, NewPostsHook, PollReport, SourceDisabledHook
from ingest.scheduler import add_ingest_job
from storage.db import read_scope, session_scope
from storage.models import Source

log = logging.getLogger(__name__)


class FollowingTagger:
    """The active model, re-read when another process or /retrain or /rollback activates a new one.

    Checking the pointer file before each batch costs one small read and means `framewatch model use`
    in a shell takes effect in a running service without a restart."""

    def __init__(self, settings: Settings, console: Console | None = None) -> None:
        self._settings = settings
        self._console = console
        self._lock = threading.Lock()
        self._tagger = load_tagger(settings, console)

    @property
    def version(self) -> str:
        return self._tagger.version

    def classify(self, texts: Sequence[str]) -> list:  # type: ignore[type-arg]
        with self._lock:
            if not self._tagger.is_current(self._settings.classifier.models_dir):
                try:
                    self._tagger = load_tagger(self._settings, self._console)
                    log.info("switched to model %s", self._tagger.version)
                except Exception:  # a broken new model must not stop ingestion: keep the loaded one
                    log.exception("could not load the newly activated model; keeping %s", self._tagger.version)
            tagger = self._tagger
        return tagger.classify(texts)


def load_tagger(settings: Settings, console: Console | None = None):  # type: ignore[no-untyped-def]
    """The active model, or one trained from the shipped corpus on first use (offline, with a progress line)."""
    from classifiers.service import load_tagger as _load

    say = (lambda m: console.print(escape(m), highlight=False)) if console else log.warning
    return _load(settings.classifier.models_dir, now=datetime.now(UTC), progress=say)


async def ingest_once(
    settings: Settings, *, names: Sequence[str] = (), console: Console | None = None
) -> list[PollReport]:
    engine = open_database(settings)
    try:
        sync_configured_sources(settings, engine)
        _check_names(engine, names)
        tagger = load_tagger(settings, console)
        async with make_client(settings.ingest) as client:
            ingestor = _ingestor(settings, engine, client, tagger)
            if console is not None and console.is_terminal:
                with Progress(console=console, transient=True) as bar:
                    task = bar.add_task("polling sources", total=None)

                    def advance(total: int, report: PollReport) -> None:
                        bar.update(task, total=total, advance=1, description=f"polled {report.source}")

                    reports = await ingestor.run_once(names, progress=advance)
            else:
                reports = await ingestor.run_once(names)
        reports += _not_polled(engine, names, {r.source for r in reports})
    finally:
        engine.dispose()
    return reports


def _ingestor(settings: Settings, engine: sa.Engine, client, tagger) -> Ingestor:  # type: ignore[no-untyped-def]
    """framewatch's fetchers and hooks around one engine and HTTP client: a one-off pass or the service.
    Both queue the same outbox rows (alerts, the admins' "source disabled" notice), so a source that a
    cron-driven `ingest --once` gives up on is reported like one the service gives up on."""
    return Ingestor(
        engine=engine,
        settings=settings.ingest,
        client=client,
        fetch=build_fetcher(settings.telegram.telethon),
        tagger=tagger,
        on_new_posts=_alert_hook(settings),
        on_source_disabled=_disabled_hook(settings),
    )


def _check_names(engine: sa.Engine, names: Sequence[str]) -> None:
    """A name that matches no source at all is a typo, not a source to skip: refuse before polling any."""
    from storage.sources import SourceError, list_sources

    if not names:
        return
    with read_scope(engine) as session:
        known = [s.name for s in list_sources(session=session)]
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        listed = ", ".join(known[:20]) + (", …" if len(known) > 20 else "") if known else "none yet"
        raise SourceError(f"no source named {', '.join(map(repr, unknown))} (sources: {listed})")


def _not_polled(engine: sa.Engine, names: Sequence[str], polled: set[str]) -> list[PollReport]:
    """A "skipped" row for every asked-for (or enabled) source that was not polled, saying why: disabled,
    or another process holding its lease (a running `framewatch run`, or one killed less than a lease ago)."""
    from storage.sources import list_sources

    with read_scope(engine) as session:  # a read: on SQLite it must not take the write lock
        sources = list_sources(session=session)
    leases = {s.name: s.lease_expires_at for s in sources if s.enabled}
    wanted = list(names) or list(leases)
    out = []
    for name in (n for n in wanted if n not in polled):
        if name not in leases:
            out.append(PollReport(name, "skipped", error="source is disabled (framewatch sources enable NAME)"))
            continue
        lease = leases[name]
        until = f" (its lease ends {lease:%H:%M:%S} UTC)" if lease is not None else ""
        out.append(PollReport(name, "skipped", error=f"being polled by another process{until}"))
    return out


def _alert_hook(settings: Settings) -> NewPostsHook | None:
    """Matching subscriptions writes outbox rows in the same transaction as the posts (exactly-once)."""
    try:
        from bot.alerts import enqueue_alerts
    except ImportError:
        return None

    def hook(posts: Sequence[int], *, session: Session, now: datetime) -> None:
        enqueue_alerts(list(posts), session=session, now=now, settings=settings)

    return hook


def reclassify_posts(
    settings: Settings, *, since: datetime | None, batch_size: int, console: Console | None = None
) -> tuple[int, str]:
    from ingest.pipeline import post_text
    from storage.posts import iter_post_batches, save_classifications

    engine = open_database(settings)
    tagger = load_tagger(settings, console)
    version = getattr(tagger, "version", "?")
    done = 0
    with session_scope(engine) as reader:
        for batch in iter_post_batches(session=reader, since=since, batch_size=batch_size):
            results = tagger.classify([post_text(p.title, p.text) for p in batch])
            with session_scope(engine) as writer:  # one short write transaction per batch
                save_classifications(
                    list(zip([p.id for p in batch], results, strict=True)), session=writer, now=datetime.now(UTC)
                )
            done += len(batch)
            if console:
                console.print(f"  {done} posts re-tagged", highlight=False)
    engine.dispose()
    return done, version


async def run_service(settings: Settings, *, role: str, console: Console) -> None:
    """Run until SIGINT/SIGTERM. Shutdown lets in-flight polls commit rather than leave half a poll."""
    import logging as _logging

    _logging.getLogger().setLevel(settings.logging.level)
    engine = open_database(settings, role=role)
    sync_configured_sources(settings, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console_mode = settings.telegram.token is None
    outbox_changed = asyncio.Event()  # ingest → delivery in this process: new posts may have queued alerts
    scheduler = AsyncIOScheduler(timezone=UTC)
    ingestor: Ingestor | None = None
    async with make_client(settings.ingest) as client:
        if role in ("all", "ingest"):
            tagger = await asyncio.to_thread(FollowingTagger, settings, console)
            ingestor = _ingestor(settings, engine, client, tagger)
            if console_mode and role == "all":
                from framewatch.console import console_alert_printer

                ingestor.on_committed = console_alert_printer(
                    engine, console, max_age=settings.alerts.max_age, clock=lambda: datetime.now(UTC)
                )
            elif role == "all":
                ingestor.on_committed = lambda _report: outbox_changed.set()
            add_ingest_job(scheduler, ingestor, settings.ingest)
            scheduler.add_job(
                _report_silent_sources,
                "interval",
                hours=1,
                args=(settings, engine),
                id="silent-sources",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC) + timedelta(minutes=5),
            )
        scheduler.start()
        console.print(f"framewatch running (role {role}); Ctrl-C to stop")
        try:
            if console_mode or role == "ingest":
                if console_mode and role != "ingest":
                    console.print("no Telegram token configured: console mode, alerts are printed here")
                await stop.wait()
            else:
                await _run_bot(
                    settings, role=role, engine=engine, stop=stop, console=console, outbox_changed=outbox_changed
                )
        finally:
            scheduler.shutdown(wait=False)
            if ingestor is not None:
                await ingestor.drain(timeout=settings.ingest.timeout.total_seconds())
    engine.dispose()
    console.print("stopped")


async def _report_silent_sources(settings: Settings, engine) -> None:  # type: ignore[no-untyped-def]
    await asyncio.to_thread(report_silent_sources, settings, engine, datetime.now(UTC))


def report_silent_sources(settings: Settings, engine, now: datetime) -> int:  # type: ignore[no-untyped-def]
    """Admins hear once per silence (keyed by the last post's time) when a source goes unusually quiet."""
    from storage.sources import silent_sources

    try:
        from bot.alerts import notify_admins
    except ImportError:
        return 0
    with session_scope(engine) as session:
        quiet = silent_sources(session=session, now=now)
        for s in quiet:
            hours = (now - s.last_post_at).total_seconds() / 3600
            notify_admins(
                f"source {s.name} has been silent for {hours:.1f} h (it usually posts every "
                f"{s.usual_gap.total_seconds() / 60:.0f} min)",
                session=session,
                now=now,
                settings=settings,
                key=f"silent:{s.name}:{s.last_post_at.isoformat()}",
            )
    return len(quiet)


def _disabled_hook(settings: Settings) -> SourceDisabledHook | None:
    """Tell admins (through the outbox) when ingest gives up on a source."""
    try:
        from bot.alerts import notify_admins
    except ImportError:
        return None

    def hook(source: Source, *, session: Session, now: datetime) -> None:
        notify_admins(
            f"source {source.name} was disabled: {source.disabled_reason}",
            session=session,
            now=now,
            settings=settings,
        )

    return hook


async def _run_bot(  # type: ignore[no-untyped-def]
    settings: Settings, *, role: str, engine, stop: asyncio.Event, console: Console, outbox_changed: asyncio.Event
) -> None:
    """Polling runs in exactly one process: others wait on a PostgreSQL advisory lock and take over when
    its holder dies. A holder whose lock vanished (database restart) stops polling and queues up again, so
    two pollers never run at once. Webhook mode needs no lock (any number behind a load balancer)."""
    from bot.app import run_bot_until
    from storage.locks import RoleLock

    if not (role in ("all", "bot") and settings.telegram.mode == "polling"):
        await run_bot_until(settings, engine=engine, stop=stop, role=role, outbox_changed=outbox_changed)
        return
    lock = RoleLock(engine, "telegram-poller")
    while not stop.is_set():
        if not await asyncio.to_thread(lock.try_acquire):
            console.print("another process is polling Telegram; waiting to take over")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=10)
            continue
        session_stop = asyncio.Event()
        watchdog = asyncio.create_task(_watch_lock(lock, stop, session_stop))
        try:
            await run_bot_until(settings, engine=engine, stop=session_stop, role=role, outbox_changed=outbox_changed)
        finally:
            watchdog.cancel()
            await asyncio.to_thread(lock.release)


async def _watch_lock(lock, stop: asyncio.Event, session_stop: asyncio.Event, every: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set() or not await asyncio.to_thread(lock.still_held):
            if not stop.is_set():
                log.warning("lost the Telegram poller lock (database restart?); stopping polling to re-queue")
            break
    session_stop.set()
