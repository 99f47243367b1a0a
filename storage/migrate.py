"""Run Alembic migrations programmatically, so `framewatch db upgrade` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from storage.db import SchemaError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe to call on every start: a current database is a no-op."""
    cfg = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several workers may start at once; one migrates, the others wait and then see "head".
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7215000)")
        _check_known_revision(connection, cfg)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def _check_known_revision(connection: sa.Connection, cfg: Config) -> None:
    """A revision this code has no migration for means a newer framewatch migrated the database: going
    on would run old code on a schema it does not know, so stop before touching anything."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(connection).get_current_heads()
    known = {script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()}
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        raise SchemaError(
            f"the database is at schema revision {', '.join(unknown)}, which this framewatch does not know "
            "(was it upgraded by a newer framewatch?); run that version, or point database.url elsewhere"
        )


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
