"""The scheduler tick with real sources: a slow or failing source never holds back the others."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import Session, select

from framewatch.config import IngestSettings, SourceSettings
from framewatch.localserver import LocalServer, Reply
from ingest.fetch import fetch_source
from ingest.http import make_client
from ingest.pipeline import Ingestor
from ingest.scheduler import add_ingest_job
from storage.db import session_scope
from storage.models import Post, Source
from storage.sources import sync_sources
from tests.cli import framewatch_command
from tests.httpserver import fixture_bytes

RSS = "application/rss+xml; charset=utf-8"


def _sources(server: LocalServer, fast: int) -> list[SourceSettings]:
    specs = [SourceSettings(name="slow", kind="rss", url=server.url("/slow.xml"), interval="1s")]
    specs.append(SourceSettings(name="broken", kind="rss", url=server.url("/broken.xml"), interval="1s"))
    specs += [
        SourceSettings(name=f"fast{i}", kind="rss", url=server.url(f"/fast{i}.xml"), interval="1s") for i in range(fast)
    ]
    return specs


def _register(engine: sa.Engine, server: LocalServer, fast: int) -> None:
    with session_scope(engine) as session:
        sync_sources(
            _sources(server, fast), session=session, now=datetime.now(UTC), default_interval=timedelta(seconds=1)
        )


async def _run_for(ingestor: Ingestor, settings: IngestSettings, seconds: float) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    add_ingest_job(scheduler, ingestor, settings)
    scheduler.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        scheduler.shutdown(wait=False)
        await ingestor.drain(timeout=0.5)


def test_slow_and_failing_sources_do_not_delay_others(sqlite_engine: sa.Engine, local_server: LocalServer) -> None:
    body = fixture_bytes("feeds", "wire.rss.xml")
    local_server.route("/slow.xml", Reply(body, content_type=RSS, delay=4.0))
    local_server.route("/broken.xml", Reply.error(500))
    for i in range(3):
        local_server.route(f"/fast{i}.xml", Reply(body, content_type=RSS))
    settings = IngestSettings(tick="0.2s", timeout="6s", per_host_concurrency=8, concurrency=8)
    _register(sqlite_engine, local_server, 3)

    async def main() -> None:
        async with make_client(settings) as client:
            ingestor = Ingestor(engine=sqlite_engine, settings=settings, client=client, fetch=fetch_source)
            await _run_for(ingestor, settings, 4.5)

    asyncio.run(main())
    fast_polls = [len(local_server.requests(f"/fast{i}.xml")) for i in range(3)]
    # interval 1s over ~4.5s: each fast source is polled on schedule while the slow one is still in flight
    assert all(n >= 3 for n in fast_polls), fast_polls
    assert len(local_server.requests("/slow.xml")) == 1
    broken = local_server.requests("/broken.xml")
    assert 1 <= len(broken) <= 3, "a failing source backs off instead of being hammered every tick"
    with Session(sqlite_engine) as session:
        src = session.exec(select(Source).where(Source.name == "broken")).one()
        assert src.consecutive_failures >= 1 and "500" in (src.last_error or "")


def _write_config(tmp_path: Path, server: LocalServer, models_dir: Path) -> Path:
    cfg = tmp_path / "fw.toml"
    cfg.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "run.db"}"
[ingest]
tick = "0.2s"
timeout = "5s"
telegram_web_base = "{server.url("/s/")}"
[classifier]
models_dir = "{models_dir}"
[[sources]]
name = "wire"
kind = "rss"
url = "{server.url("/wire.xml")}"
interval = "1s"
[[sources]]
name = "vesti"
kind = "telegram"
channel = "vesti_kraya"
interval = "1s"
""",
        encoding="utf-8",
    )
    return cfg


def test_run_stops_cleanly_on_sigterm(tmp_path: Path, local_server: LocalServer, models_dir: Path) -> None:
    local_server.route("/wire.xml", Reply(fixture_bytes("feeds", "wire.rss.xml"), content_type=RSS))
    local_server.route("/s/vesti_kraya", Reply(fixture_bytes("telegram", "vesti_kraya_1.html")))
    cfg = _write_config(tmp_path, local_server, models_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWATCH_")}
    proc = subprocess.Popen(
        framewatch_command("--config", str(cfg), "run"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(local_server.requests("/wire.xml")) < 3:
            time.sleep(0.2)
        assert len(local_server.requests("/wire.xml")) >= 3, "the scheduler keeps polling"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "console mode" in out and "stopped" in out
    assert "Traceback" not in out
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'run.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        ids = conn.exec_driver_sql("SELECT source_id, external_id FROM post").all()
    assert ids and len(ids) == len(set(ids))
    with Session(engine) as session:
        assert session.exec(select(Source).where(Source.lease_owner.is_not(None))).all() == []  # type: ignore[union-attr]
        assert len(session.exec(select(Post)).all()) == len(ids)


class _LockProbingTagger:
    """A real-shaped tagger that, while it classifies, writes to the database from another connection
    with no busy timeout: that write fails if the poll holds SQLite's write lock during classification."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls = 0
        self.blocked: list[str] = []

    def classify(self, texts):  # type: ignore[no-untyped-def]
        import sqlite3

        from classifiers.types import Classification

        self.calls += 1
        con = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("UPDATE source SET last_error = last_error WHERE 0")
            con.rollback()
        except sqlite3.OperationalError as exc:
            self.blocked.append(str(exc))
        finally:
            con.close()
        return [Classification(frames=(), model_version="probe") for _ in texts]


def test_classification_runs_outside_the_write_transaction(
    sqlite_url: str, sqlite_engine: sa.Engine, local_server: LocalServer
) -> None:
    body = fixture_bytes("feeds", "wire.rss.xml")
    local_server.route("/fast0.xml", Reply(body, content_type=RSS))
    settings = IngestSettings(timeout="5s")
    with session_scope(sqlite_engine) as session:
        specs = [SourceSettings(name="fast0", kind="rss", url=local_server.url("/fast0.xml"))]
        sync_sources(specs, session=session, now=datetime.now(UTC), default_interval=timedelta(minutes=10))
    tagger = _LockProbingTagger(sqlite_url)

    async def main() -> None:
        async with make_client(settings) as client:
            ingestor = Ingestor(
                engine=sqlite_engine, settings=settings, client=client, fetch=fetch_source, tagger=tagger
            )
            (report,) = await ingestor.run_once()
            assert report.new > 0

    asyncio.run(main())
    assert tagger.calls == 1 and tagger.blocked == []
    with Session(sqlite_engine) as session:
        posts = session.exec(select(Post)).all()
        assert posts and all(p.classified_version == "probe" for p in posts)


class _ThreadRecordingTagger:
    def __init__(self) -> None:
        self.threads: list[int] = []

    def classify(self, texts):  # type: ignore[no-untyped-def]
        from classifiers.types import Classification

        self.threads.append(threading.get_ident())
        return [Classification(frames=(), model_version="threads") for _ in texts]


def test_classification_always_runs_in_the_same_worker_thread(
    sqlite_engine: sa.Engine, local_server: LocalServer
) -> None:
    """Each batch allocates tens of MiB of feature matrices; from one thread they reuse one malloc arena
    instead of raising the high-water mark of several (a 20k-post backfill: 414 → 308 MiB)."""
    body = fixture_bytes("feeds", "wire.rss.xml")
    for i in range(6):
        local_server.route(f"/fast{i}.xml", Reply(body, content_type=RSS, delay=0.05 * i))
    settings = IngestSettings(timeout="5s", concurrency=6, per_host_concurrency=6)
    _register(sqlite_engine, local_server, 6)
    local_server.route("/slow.xml", Reply(body, content_type=RSS))
    local_server.route("/broken.xml", Reply.error(500))
    tagger = _ThreadRecordingTagger()

    async def main() -> None:
        async with make_client(settings) as client:
            ingestor = Ingestor(
                engine=sqlite_engine, settings=settings, client=client, fetch=fetch_source, tagger=tagger
            )
            reports = await ingestor.run_once()
            assert sum(r.new > 0 for r in reports) == 7
            await ingestor.drain(timeout=1)

    asyncio.run(main())
    assert len(tagger.threads) == 7
    assert len(set(tagger.threads)) == 1 and threading.get_ident() not in tagger.threads


class _SlowClaimIngestor(Ingestor):
    """Claims in its worker thread as usual, only slowly, so shutdown lands inside a tick's claim."""

    def _claim_due(self, now, limit):  # type: ignore[no-untyped-def]
        time.sleep(0.6)
        return super()._claim_due(now, limit)


def test_shutdown_during_a_tick_is_quiet(
    sqlite_engine: sa.Engine, local_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """APScheduler cancels a running job when it shuts down; a tick caught mid-claim must end quietly
    (no "Job raised an exception" traceback in the service log), as a worker stopping does every day."""
    settings = IngestSettings(tick="0.2s", timeout="5s")
    _register(sqlite_engine, local_server, 1)

    async def main() -> None:
        async with make_client(settings) as client:
            ingestor = _SlowClaimIngestor(engine=sqlite_engine, settings=settings, client=client, fetch=fetch_source)
            await _run_for(ingestor, settings, 0.5)  # the first tick is still claiming
            await asyncio.sleep(0.8)  # its thread finishes meanwhile

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any("shutdown" in r.getMessage() for r in caplog.records if r.name == "ingest.pipeline")
