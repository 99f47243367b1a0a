"""Shared fixtures: real databases (a SQLite file; PostgreSQL when FRAMEWATCH_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.db import create_engine, scratch_database
from storage.migrate import upgrade

pytest_plugins = ["tests.httpserver"]

PG_ENV = "FRAMEWATCH_TEST_DATABASE_URL"
PG_SKIP_REASON = f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A throwaway database on the configured server, created for this test run and dropped after it."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(PG_SKIP_REASON)
    with scratch_database(base, prefix="framewatch_test") as url:
        yield url


def _reset_postgres(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'framewatch.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_server_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(pg_server_url)
    _reset_postgres(engine)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    """The same test on both backends: behaviour must not depend on the database."""
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model trained from the shipped corpus for the whole run (tests that retrain use their own dir)."""
    from datetime import UTC, datetime

    from classifiers.service import load_tagger

    path = tmp_path_factory.mktemp("models")
    load_tagger(path, now=datetime.now(UTC), progress=lambda _m: None)
    return path


@pytest.fixture(scope="session")
def tagger(models_dir: Path):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from classifiers.service import load_tagger

    return load_tagger(models_dir, now=datetime.now(UTC))
