"""The single-poller lock on PostgreSQL: exclusive, released by death, noticed when lost."""

from __future__ import annotations

import sqlalchemy as sa

from storage.locks import RoleLock


def test_role_lock_is_exclusive_and_loss_is_noticed(pg_engine: sa.Engine) -> None:
    first, second = RoleLock(pg_engine, "poller"), RoleLock(pg_engine, "poller")
    assert first.try_acquire() and first.still_held()
    assert not second.try_acquire()
    # the database drops the holder's connection (restart, admin kill): the lock goes with it
    with pg_engine.connect() as conn:
        pid = first._conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert not first.still_held()
    assert second.try_acquire(), "a standby takes over once the holder's lock is gone"
    assert not first.try_acquire()
    second.release()
    assert first.try_acquire()
    first.release()


def test_sqlite_deployments_have_one_process(sqlite_engine: sa.Engine) -> None:
    lock = RoleLock(sqlite_engine, "poller")
    assert lock.try_acquire() and lock.still_held()
