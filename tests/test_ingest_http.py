"""The fetch helper against a real local HTTP server: every way a source can fail ends as a FetchError."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from framewatch.config import IngestSettings
from framewatch.localserver import LocalServer, RecordedRequest, Reply, http_date
from ingest.http import FetchError, FetchLimits, fetch_url, make_client, parse_retry_after

pytest_plugins = ["tests.httpserver"]

SETTINGS = IngestSettings(timeout="2s", max_response_bytes=1_000_000, max_redirects=3, user_agent="fw-test/1")
LIMITS = FetchLimits.from_settings(SETTINGS)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(SETTINGS) as c:
        yield c


async def _error(client: httpx.AsyncClient, url: str, limits: FetchLimits = LIMITS) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch_url(client, url, limits=limits)
    return info.value


async def test_plain_get_sends_user_agent_and_returns_validators(local_server: LocalServer, client) -> None:
    local_server.route("/feed", Reply(body=b"<rss/>", etag='"v1"', last_modified="Tue, 05 Mar 2024 10:00:00 GMT"))
    response = await fetch_url(client, local_server.url("/feed"), limits=LIMITS, accept="application/rss+xml")
    assert (response.status, response.body, response.etag) == (200, b"<rss/>", '"v1"')
    assert response.last_modified == "Tue, 05 Mar 2024 10:00:00 GMT"
    [request] = local_server.requests("/feed")
    assert request.headers["user-agent"] == "fw-test/1"
    assert request.headers["accept"] == "application/rss+xml"
    assert "if-none-match" not in request.headers


async def test_conditional_get_gets_304_with_etag(local_server: LocalServer, client) -> None:
    local_server.route("/feed", Reply(body=b"<rss/>", etag='"v1"'))
    response = await fetch_url(client, local_server.url("/feed"), limits=LIMITS, etag='"v1"')
    assert response.not_modified and response.body == b""
    assert local_server.requests("/feed")[-1].headers["if-none-match"] == '"v1"'
    changed = await fetch_url(client, local_server.url("/feed"), limits=LIMITS, etag='"v0"')
    assert changed.status == 200 and changed.body == b"<rss/>"


async def test_conditional_get_gets_304_with_last_modified(local_server: LocalServer, client) -> None:
    stamp = http_date(1_709_632_800)
    local_server.route("/feed", Reply(body=b"<rss/>", last_modified=stamp))
    response = await fetch_url(client, local_server.url("/feed"), limits=LIMITS, last_modified=stamp)
    assert response.not_modified
    assert local_server.requests("/feed")[-1].headers["if-modified-since"] == stamp


async def test_gzip_and_deflate_bodies_are_decompressed(local_server: LocalServer, client) -> None:
    body = "Новости дня. ".encode() * 500
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    local_server.route("/gz", Reply(body=body, gzip=True))
    local_server.route("/zlib", Reply(body=zlib.compress(body), encoded="deflate"))
    local_server.route("/raw", Reply(body=raw_deflate.compress(body) + raw_deflate.flush(), encoded="deflate"))
    local_server.route("/multi", Reply(body=gzip.compress(body[:100]) + gzip.compress(body[100:]), encoded="gzip"))
    for path in ("/gz", "/zlib", "/raw", "/multi"):
        assert (await fetch_url(client, local_server.url(path), limits=LIMITS)).body == body, path
    assert local_server.requests("/gz")[0].headers["accept-encoding"] == "gzip, deflate"


async def test_gzip_bomb_stops_at_the_decompressed_cap(local_server: LocalServer, client) -> None:
    local_server.route("/bomb", Reply.gzip_bomb(200_000_000))  # ~200 KB on the wire, 200 MB inflated
    tracemalloc.start()
    try:
        error = await _error(client, local_server.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason == "response too large (over 1000000 bytes)"
    assert peak < 20_000_000


async def test_oversize_body_declared_and_streamed(local_server: LocalServer, client) -> None:
    local_server.route("/declared", Reply(body=b"x" * 65536, repeat=1600))  # 100 MB, Content-Length
    local_server.route("/streamed", Reply(body=b"y" * 65536, repeat=1600, declare_length=False))
    declared = await _error(client, local_server.url("/declared"))
    assert declared.reason == "response too large (104857600 bytes, limit 1000000)"
    streamed = await _error(client, local_server.url("/streamed"))
    assert streamed.reason == "response too large (over 1000000 bytes)"


async def test_slow_server_hits_the_timeout(local_server: LocalServer, client) -> None:
    local_server.route("/slow", Reply(body=b"late", delay=5))
    started = time.monotonic()
    error = await _error(client, local_server.url("/slow"))
    assert error.reason.startswith("timeout")
    assert time.monotonic() - started < 4


async def test_trickling_server_hits_the_overall_deadline(local_server: LocalServer, client) -> None:
    # One byte every 50 ms: every single read is fast, so only an overall deadline can stop it.
    local_server.route("/trickle", Reply(body=b"<rss>", trickle=0.05, endless=True))
    started = time.monotonic()
    error = await _error(client, local_server.url("/trickle"))
    elapsed = time.monotonic() - started
    assert error.reason == "timeout (no complete response within 2s)"
    assert 1.5 < elapsed < 4


async def test_connection_refused(client, free_port: int) -> None:
    error = await _error(client, f"http://127.0.0.1:{free_port}/feed")
    assert error.reason == "connection refused" and error.status is None and not error.permanent


async def test_reset_mid_body(local_server: LocalServer, client) -> None:
    local_server.route("/reset", Reply(body=b"z" * 200_000, reset_after=10_000))
    error = await _error(client, local_server.url("/reset"))
    assert error.reason in ("connection reset", "connection closed mid-response")


@pytest.mark.parametrize("status", [500, 502, 503, 404, 403])
async def test_http_error_statuses(local_server: LocalServer, client, status: int) -> None:
    local_server.route("/e", Reply.error(status))
    error = await _error(client, local_server.url("/e"))
    assert error.status == status and error.reason.startswith(f"HTTP {status}")
    assert error.retry_after is None and not error.permanent


async def test_410_is_permanent(local_server: LocalServer, client) -> None:
    local_server.route("/gone", Reply.error(410))
    assert (await _error(client, local_server.url("/gone"))).permanent


async def test_429_with_retry_after_seconds_and_date(local_server: LocalServer, client) -> None:
    local_server.route("/limited", Reply.error(429, retry_after="120"))
    error = await _error(client, local_server.url("/limited"))
    assert (error.status, error.retry_after, error.reason) == (429, 120.0, "HTTP 429 Too Many Requests")
    now = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    local_server.route("/busy", Reply.error(503, retry_after="Tue, 05 Mar 2024 10:05:00 GMT"))
    with pytest.raises(FetchError) as info:
        await fetch_url(client, local_server.url("/busy"), limits=LIMITS, now=now)
    assert info.value.retry_after == 300.0


def test_parse_retry_after() -> None:
    now = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after("Tue, 05 Mar 2024 10:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Tue, 05 Mar 2024 09:00:00 GMT", now=now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5", "²", "٣٠"):  # non-ASCII digits: "²" made int() raise
        assert parse_retry_after(junk, now=now) is None
    # More digits than int() converts (4,300): a very long wait, capped like any other, not a ValueError.
    assert parse_retry_after("9" * 5000, now=now) == parse_retry_after("99999999999", now=now) == 1e9


async def test_redirects_are_followed_and_recorded(local_server: LocalServer, client) -> None:
    local_server.route("/old", Reply.redirect("/middle", 301))
    local_server.route("/middle", Reply.redirect(local_server.url("/new"), 307))
    local_server.route("/new", Reply(body=b"here"))
    response = await fetch_url(client, local_server.url("/old"), limits=LIMITS)
    assert response.body == b"here" and response.url == local_server.url("/new")
    assert response.redirects == (local_server.url("/old"), local_server.url("/middle"))


async def test_redirect_loop_is_an_error(local_server: LocalServer, client) -> None:
    local_server.route("/a", Reply.redirect("/b"))
    local_server.route("/b", Reply.redirect("/a"))
    error = await _error(client, local_server.url("/a"))
    assert error.reason == "redirect loop (2 hops)"
    assert len(local_server.requests()) == 2


def _next_hop(request: RecordedRequest) -> Reply:
    """/hop → /hop?n=1 → /hop?n=2 → …: never the same URL twice, so only the hop limit stops it."""
    n = int(request.query.removeprefix("n=") or 0)
    return Reply.redirect(f"/hop?n={n + 1}")


async def test_endless_redirect_chain_is_cut(local_server: LocalServer, client) -> None:
    local_server.route("/hop", _next_hop)
    error = await _error(client, local_server.url("/hop"))
    assert error.reason == "too many redirects (over 3)"
    assert len(local_server.requests("/hop")) == 4


async def test_redirect_without_location_and_to_other_schemes(local_server: LocalServer, client) -> None:
    local_server.route("/nowhere", Reply(status=302, content_type="text/plain"))
    local_server.route("/ftp", Reply.redirect("ftp://files.example/feed"))
    assert (await _error(client, local_server.url("/nowhere"))).reason == "HTTP 302 redirect without Location"
    assert (await _error(client, local_server.url("/ftp"))).reason == "redirect to a non-HTTP URL"


async def test_unsupported_or_corrupt_encoding(local_server: LocalServer, client) -> None:
    local_server.route("/br", Reply(body=b"\x1b\x00", encoded="br"))
    local_server.route("/bad", Reply(body=b"this is not gzip", encoded="gzip"))
    assert (await _error(client, local_server.url("/br"))).reason == "unsupported content-encoding 'br'"
    assert (await _error(client, local_server.url("/bad"))).reason == "corrupt gzip body"


async def test_invalid_urls(client) -> None:
    assert (await _error(client, "ftp://example.com/feed")).permanent
    assert (await _error(client, "http://")).permanent
