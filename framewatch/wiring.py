"""Builds the long-lived parts (engine, classifier, scheduler, bot) from settings. No business logic."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from framewatch.config import Settings
from storage.db import create_engine, session_scope
from storage.migrate import upgrade
from storage.sources import sync_sources

# What each role holds at once: ingest commits per finishing poll, deliver a claim and an update, bot
# handlers plus the delivery loop plus the poller lock; one-off CLI commands one or two.
ROLE_POOL_SIZE = {"ingest": 4, "deliver": 3, "bot": 5, "all": 8, "cli": 2}


def open_database(settings: Settings, *, migrate: bool = True, role: str = "cli") -> sa.Engine:
    """The engine for this process; an explicit [database] pool_size wins over the role's default."""
    pool_size = settings.database.pool_size or ROLE_POOL_SIZE.get(role, 5)
    engine = create_engine(settings.database.url, pool_size=pool_size)
    if migrate:
        upgrade(engine)
    return engine


def sync_configured_sources(settings: Settings, engine: sa.Engine) -> None:
    """The config file's [[sources]] into the database (idempotent): `run` and `ingest` do it on start,
    and the `sources` commands first, so a source just written into the config can be listed and disabled."""
    with session_scope(engine) as session:
        sync_sources(
            settings.sources,
            session=session,
            now=datetime.now(UTC),
            default_interval=settings.ingest.default_interval,
        )
