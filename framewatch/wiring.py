"""Builds the long-lived parts (engine, classifier, scheduler, bot) from settings. No business logic."""

from __future__ import annotations

import sqlalchemy as sa

from framewatch.config import Settings
from storage.db import create_engine
from storage.migrate import upgrade

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
