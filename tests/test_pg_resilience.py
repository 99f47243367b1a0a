"""PostgreSQL going away under load: ingest workers reconnect and carry on, nothing is lost or doubled.

Two real `framewatch run --role ingest` processes poll a local server whose feeds and channels keep
publishing. The test cuts the database off from under them the way a restart does, without touching
the shared server: it terminates every backend of its own throwaway database (pg_terminate_backend),
and once also refuses new connections for a few seconds (ALTER DATABASE … ALLOW_CONNECTIONS false),
so ticks and commits fail for a while. Afterwards every published post must be stored exactly once
and both workers must still be running, then stop cleanly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from framewatch.localserver import LocalServer
from tests.conftest import PG_ENV
from tests.test_multiworker import (
    SyntheticWeb,
    WorkerProcess,
    stored_keys,
    wait_until,
    write_config,
)

SOURCES = 60
INTERVAL = "2s"
OUTAGE_SECONDS = 4.0
RESTARTS = 3
LEASE_SECONDS = 5  # a commit cut off mid-way leaves its source leased this long, then it is redone


@contextmanager
def _admin_connection() -> Iterator[sa.Connection]:
    """A connection to the server's base database: it survives what the test does to its own."""
    engine = sa.create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _terminate_backends(admin: sa.Connection, database: str) -> int:
    """Every connection to `database` except the admin one dies, as in a server restart."""
    killed = admin.execute(
        sa.text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :db AND pid <> pg_backend_pid()"
        ),
        {"db": database},
    ).scalar_one()
    return int(killed)


def _allow_connections(admin: sa.Connection, database: str, allow: bool) -> None:
    quoted = admin.dialect.identifier_preparer.quote(database)
    admin.exec_driver_sql(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS {'true' if allow else 'false'}")


def _all_stored(engine: sa.Engine, expected: set[tuple[str, str]]) -> bool:
    try:
        return set(stored_keys(engine)) >= expected
    except sa.exc.OperationalError:  # our own pool may hold a terminated connection for a moment
        return False


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_ingest_workers_survive_database_restarts(tmp_path: Path, pg_engine: sa.Engine, models_dir: Path) -> None:
    database = pg_engine.url.database
    assert database
    ingest: dict[str, Any] = {
        "tick": "0.2s",
        "timeout": "2s",
        "backfill_pages": 2,
        "per_host_concurrency": 8,
        "lease": f"{LEASE_SECONDS}s",
    }
    settle = LEASE_SECONDS + 60
    workers: list[WorkerProcess] = []
    with LocalServer() as server, _admin_connection() as admin:
        web = SyntheticWeb(server, SOURCES, first_posts=(3, 6))
        ingest["telegram_web_base"] = server.url("/s/")
        config = write_config(
            tmp_path / "framewatch.toml",
            database_url=pg_engine.url.render_as_string(hide_password=False),
            models_dir=models_dir,
            sources=web.source_settings(INTERVAL),
            sections={"database": {"pool_size": 3}, "ingest": ingest},
        )
        try:
            # Started one after the other: this test is about restarts, test_multiworker about start-up.
            workers.append(WorkerProcess("ingest-a", "ingest", config, tmp_path))
            wait_until(workers[0].ready, timeout=60, what="ingest-a started", workers=workers)
            workers.append(WorkerProcess("ingest-b", "ingest", config, tmp_path))
            wait_until(
                lambda: _all_stored(pg_engine, web.expected()),
                timeout=120,
                what="the first round stored",
                workers=workers,
            )

            # Abrupt restarts: every connection dropped while polls are running and committing.
            for _ in range(RESTARTS):
                web.publish((1, 2))
                time.sleep(0.5)
                assert _terminate_backends(admin, database) >= 2, "the workers held no connections"
                wait_until(
                    lambda: _all_stored(pg_engine, web.expected()),
                    timeout=settle,
                    what="posts published around a restart stored",
                    workers=workers,
                )

            # A longer outage: connections refused for a few seconds, so ticks and commits fail outright.
            web.publish((1, 2))
            _allow_connections(admin, database, False)
            try:
                _terminate_backends(admin, database)
                time.sleep(OUTAGE_SECONDS)
                assert all(w.alive() for w in workers), "\n".join(w.tail() for w in workers)
            finally:
                _allow_connections(admin, database, True)
            web.publish((1, 2))
            wait_until(
                lambda: _all_stored(pg_engine, web.expected()),
                timeout=settle,
                what="posts published during the outage stored",
                workers=workers,
            )
        finally:
            _allow_connections(admin, database, True)
            codes = [w.stop() for w in workers]

    keys = stored_keys(pg_engine)
    assert max(keys.values()) == 1, "a post was stored twice"
    assert set(keys) == web.expected()
    assert codes == [0, 0], "\n".join(w.tail() for w in workers)
    # The outage really reached the workers (and was survived, above).
    assert any("connection" in w.log().lower() for w in workers), "\n".join(w.tail() for w in workers)
