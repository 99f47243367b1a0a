"""pytest fixture around framewatch.localserver: a real HTTP server on 127.0.0.1 for each test.

Use it with `pytest_plugins = ["tests.httpserver"]` or by importing `local_server` into a test module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from framewatch.localserver import LocalServer, Reply

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released): connections are refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


__all__ = ["FIXTURES", "LocalServer", "Reply", "fixture_bytes", "free_port", "local_server"]
