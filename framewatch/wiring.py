"""Builds the long-lived parts (engine, classifier, scheduler, bot) from settings. No business logic."""

from __future__ import annotations

import sqlalchemy as sa

from framewatch.config import Settings
from storage.db import create_engine
from storage.migrate import upgrade


def open_database(settings: Settings, *, migrate: bool = True, pool_size: int | None = None) -> sa.Engine:
    engine = create_engine(settings.database.url, pool_size=pool_size or settings.database.pool_size)
    if migrate:
        upgrade(engine)
    return engine
