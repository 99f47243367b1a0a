"""Engine and session factory. Nothing is created at import time: the app shell calls these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000


class SchemaError(RuntimeError):
    """The database's schema is one this code cannot work with (migrated by a newer framewatch).
    Here rather than in migrate.py so the CLI can catch it without importing Alembic."""


def is_sqlite(engine_or_url: sa.Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, sa.Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _set_sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout turns "database is locked" into a wait.
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event below own transaction starts
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> sa.Engine:
    """Build an engine for `url`; SQLite gets WAL + busy timeout, PostgreSQL a pre-pinged pool."""
    if is_sqlite(url):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        sa.event.listen(engine, "connect", _set_sqlite_pragmas)
        # Writers take the write lock at BEGIN (no lock upgrade half-way, so no "database is locked");
        # read-only sessions (read_scope) begin deferred and never wait for or block ingestion.
        sa.event.listen(engine, "begin", _begin_sqlite)
        return engine
    return sa.create_engine(
        url,
        echo=echo,
        # JIT compilation costs more than it saves on framewatch's short queries (+80 ms on one search plan).
        connect_args={"options": "-c jit=off"},
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # reconnect transparently after a database restart
        pool_recycle=1800,
    )


def _begin_sqlite(conn: sa.Connection) -> None:
    readonly = bool(conn.get_execution_options().get("framewatch_readonly", False))
    # query_only makes a write inside read_scope fail loudly instead of vanishing when the scope ends.
    # It belongs to the pooled connection, so it is switched (outside any transaction) only on a change.
    if conn.info.get("framewatch_query_only", False) != readonly:
        conn.exec_driver_sql(f"PRAGMA query_only={int(readonly)}")
        conn.info["framewatch_query_only"] = readonly
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


@contextmanager
def read_scope(engine: sa.Engine) -> Iterator[Session]:
    """A read-only unit of work (search, export, stats, a role check): on SQLite it neither waits for
    nor blocks the one writer; on both backends a write inside it raises instead of being lost.

    It ends with a commit of nothing, not a rollback: a rollback would expire the rows it loaded, and a
    caller that reads an attribute of one afterwards would get DetachedInstanceError.
    """
    # postgresql_readonly: psycopg opens the transaction READ ONLY (same round trip; SQLite ignores it).
    readonly = engine.execution_options(framewatch_readonly=True, postgresql_readonly=True)
    with Session(readonly, expire_on_commit=False) as session:
        yield session
        session.commit()


@contextmanager
def session_scope(engine: sa.Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def scratch_database(base_url: str, *, prefix: str = "framewatch_scratch") -> Iterator[str]:
    """A throwaway PostgreSQL database next to `base_url`, dropped on exit (tests and benchmarks only)."""
    import uuid

    url = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
