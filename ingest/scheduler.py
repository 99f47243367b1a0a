"""The ingest tick on APScheduler 3.x's AsyncIOScheduler (the scheduler PTB's JobQueue wraps too)."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from framewatch.config import IngestSettings
from ingest.pipeline import Ingestor

TICK_JOB_ID = "ingest-tick"


def add_ingest_job(scheduler: AsyncIOScheduler, ingestor: Ingestor, settings: IngestSettings) -> None:
    """Every `tick`, start polls for due sources. The tick itself only claims and spawns, so it is quick;
    max_instances=1 and coalesce stop a stalled loop from piling up ticks."""
    scheduler.add_job(
        ingestor.tick,
        "interval",
        seconds=settings.tick.total_seconds(),
        id=TICK_JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),  # first tick at once, not one interval after start
        replace_existing=True,
    )
