"""Process-wide singleton roles (the one Telegram poller) on PostgreSQL advisory locks."""

from __future__ import annotations

import zlib

import sqlalchemy as sa


def lock_key(name: str) -> int:
    """A stable 32-bit key per role name, so every process computes the same lock id."""
    return zlib.crc32(f"framewatch:{name}".encode())


class RoleLock:
    """Held for as long as its connection lives: a killed process drops it, and a waiting one takes over.

    SQLite deployments are single-process by design, so there the lock is always granted.
    """

    def __init__(self, engine: sa.Engine, name: str) -> None:
        self._engine = engine
        self._key = lock_key(name)
        self._conn: sa.Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._engine.dialect.name != "postgresql"

    def try_acquire(self) -> bool:
        if self.held:
            return True
        conn = self._engine.connect()
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar())
        conn.commit()
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def still_held(self) -> bool:
        """False once the lock's connection died (database restart): the lock is gone with it."""
        if self._engine.dialect.name != "postgresql":
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
            return True
        except sa.exc.DBAPIError:
            self._conn.invalidate()
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
