"""Wiring for the long-running commands: builds the parts from settings and runs them on one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from rich.console import Console
from rich.progress import Progress
from sqlmodel import Session

from framewatch.config import Settings
from framewatch.wiring import open_database
from ingest.fetch import build_fetcher
from ingest.http import make_client
from ingest.pipeline import Ingestor, NewPostsHook, PollReport, Tagger
from ingest.scheduler import add_ingest_job
from storage.db import session_scope
from storage.sources import sync_sources

log = logging.getLogger(__name__)


def load_tagger(settings: Settings, console: Console | None = None) -> Tagger:
    """The active model, or one trained from the shipped corpus on first use (offline, with a progress line)."""
    from classifiers.service import load_tagger as _load

    say = (lambda m: console.print(m, highlight=False)) if console else log.warning
    return _load(settings.classifier.models_dir, now=datetime.now(UTC), progress=say)


def _sync_configured_sources(settings: Settings, engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        sync_sources(
            settings.sources,
            session=session,
            now=datetime.now(UTC),
            default_interval=settings.ingest.default_interval,
        )


async def ingest_once(
    settings: Settings, *, names: Sequence[str] = (), console: Console | None = None
) -> list[PollReport]:
    engine = open_database(settings)
    _sync_configured_sources(settings, engine)
    tagger = load_tagger(settings, console)
    async with make_client(settings.ingest) as client:
        ingestor = Ingestor(
            engine=engine,
            settings=settings.ingest,
            client=client,
            fetch=build_fetcher(settings.telegram.telethon),
            tagger=tagger,
            on_new_posts=_alert_hook(settings),
        )
        if console is not None and console.is_terminal:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("polling sources", total=None)

                def advance(total: int, report: PollReport) -> None:
                    bar.update(task, total=total, advance=1, description=f"polled {report.source}")

                reports = await ingestor.run_once(names, progress=advance)
        else:
            reports = await ingestor.run_once(names)
    known = {r.source for r in reports}
    missing = [n for n in names if n not in known]
    reports += [PollReport(n, "skipped", error="no such enabled source") for n in missing]
    engine.dispose()
    return reports


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
    engine = open_database(settings, pool_size=settings.database.pool_size)
    _sync_configured_sources(settings, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console_mode = settings.telegram.token is None
    scheduler = AsyncIOScheduler(timezone=UTC)
    ingestor: Ingestor | None = None
    async with make_client(settings.ingest) as client:
        if role in ("all", "ingest"):
            tagger = await asyncio.to_thread(load_tagger, settings, console)
            ingestor = Ingestor(
                engine=engine,
                settings=settings.ingest,
                client=client,
                fetch=build_fetcher(settings.telegram.telethon),
                tagger=tagger,
                on_new_posts=_alert_hook(settings),
                on_source_disabled=_disabled_hook(settings),
            )
            if console_mode and role == "all":
                from framewatch.console import console_alert_printer

                ingestor.on_committed = console_alert_printer(
                    engine, console, max_age=settings.alerts.max_age, clock=lambda: datetime.now(UTC)
                )
            add_ingest_job(scheduler, ingestor, settings.ingest)
        scheduler.start()
        console.print(f"framewatch running (role {role}); Ctrl-C to stop")
        try:
            if console_mode or role == "ingest":
                if console_mode and role != "ingest":
                    console.print("no Telegram token configured: console mode, alerts are printed here")
                await stop.wait()
            else:
                await _run_bot(settings, role=role, engine=engine, stop=stop, console=console)
        finally:
            scheduler.shutdown(wait=False)
            if ingestor is not None:
                await ingestor.drain(timeout=settings.ingest.timeout.total_seconds())
    engine.dispose()
    console.print("stopped")


def _disabled_hook(settings: Settings):  # type: ignore[no-untyped-def]
    """Tell admins (through the outbox) when ingest gives up on a source."""
    try:
        from bot.alerts import notify_admins
    except ImportError:
        return None

    def hook(source, *, session: Session, now: datetime) -> None:  # type: ignore[no-untyped-def]
        notify_admins(
            f"source {source.name} was disabled: {source.disabled_reason}",
            session=session,
            now=now,
            settings=settings,
        )

    return hook


async def _run_bot(settings: Settings, *, role: str, engine, stop: asyncio.Event, console: Console) -> None:  # type: ignore[no-untyped-def]
    """Polling runs in exactly one process: others wait on a PostgreSQL advisory lock (webhook mode
    needs no lock; any number of processes can sit behind the load balancer)."""
    from bot.app import run_bot_until
    from storage.locks import RoleLock

    lock = RoleLock(engine, "telegram-poller")
    needs_lock = role in ("all", "bot") and settings.telegram.mode == "polling"
    if needs_lock:
        while not lock.try_acquire():
            console.print("another process is polling Telegram; waiting to take over")
            try:
                await asyncio.wait_for(stop.wait(), timeout=10)
                return
            except TimeoutError:
                continue
    try:
        await run_bot_until(settings, engine=engine, stop=stop, role=role)
    finally:
        lock.release()
