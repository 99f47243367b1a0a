"""A real HTTP server on 127.0.0.1 that plays feeds and t.me/s pages — and every way a server misbehaves.

Used by the tests (as a pytest fixture), by `framewatch demo` (serving the bundled sample data) and by
bench/ scripts. It runs in a background thread on a free port; each path is scripted with a `Reply`
(body, headers, ETag/Last-Modified with real 304 handling, status, delays, trickling, gzip and gzip
bombs, resets mid-body, redirects) and every request is logged so a test can check what was sent.

Standard library only, so the product can ship it: the demo must work offline on a fresh install.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
_MAX_ENDLESS_SECONDS = 120.0  # a trickle "forever" still ends by itself


@dataclass(frozen=True, slots=True)
class Reply:
    """How the server answers one request for a path."""

    body: bytes = b""
    status: int = 200
    content_type: str = HTML_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    etag: str | None = None  # answered with 304 when the client sends If-None-Match with it
    last_modified: str | None = None  # answered with 304 when If-Modified-Since is not older
    gzip: bool = False  # compress `body` on the way out
    encoded: str | None = None  # `body` is already encoded this way (e.g. a prepared gzip bomb)
    repeat: int = 1  # send `body` this many times: large responses without large memory
    delay: float = 0.0  # seconds before the status line
    trickle: float | None = None  # seconds between body chunks
    trickle_bytes: int = 1
    endless: bool = False  # keep trickling until the client gives up (capped at two minutes)
    reset_after: int | None = None  # send this many body bytes, then reset the connection (RST)
    declare_length: bool = True  # False → no Content-Length, body ends when the connection closes

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status=status, headers=(("Location", location),), content_type="text/plain")

    @classmethod
    def error(cls, status: int, *, retry_after: str | None = None, body: bytes = b"error") -> Reply:
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        return cls(body=body, status=status, headers=headers, content_type="text/plain")

    @classmethod
    def gzip_bomb(cls, size: int, content_type: str = RSS_TYPE) -> Reply:
        """`size` bytes of zeros, gzip-compressed (~1000:1): tiny on the wire, huge when inflated."""
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = b"\0" * (1 << 20)
        parts = [compressor.compress(block) for _ in range(size // len(block))]
        parts.append(compressor.compress(b"\0" * (size % len(block))))
        parts.append(compressor.flush())
        return cls(body=b"".join(parts), encoded="gzip", content_type=content_type)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    target: str  # path?query as sent
    path: str
    query: str
    headers: Mapping[str, str]  # lowercase names
    at: float = field(default_factory=time.monotonic)


Handler = Callable[[RecordedRequest], Reply]
RouteSpec = Reply | Sequence[Reply] | Handler


class _Route:
    """A path's replies: one reply, a sequence served in order (the last one repeats), or a function."""

    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec
        self.calls = 0

    def next_reply(self, request: RecordedRequest) -> Reply:
        self.calls += 1
        if isinstance(self.spec, Reply):
            return self.spec
        if callable(self.spec):
            return self.spec(request)
        replies = list(self.spec)
        return replies[min(self.calls - 1, len(replies) - 1)]


class LocalServer:
    """`with LocalServer() as server: server.route("/feed.xml", Reply(...)); server.url("/feed.xml")`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LocalServer:
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer((self._host, self._port), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # keep-alive handler threads must not hold up stop()
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"localserver:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # -- scripting ------------------------------------------------------------------------------

    def route(self, target: str, spec: RouteSpec) -> None:
        """Serve `target` ("/path" for any query, or "/path?exact=query") with `spec`."""
        with self._lock:
            self._routes[target] = _Route(spec)

    def remove(self, target: str) -> None:
        with self._lock:
            self._routes.pop(target, None)

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._log if path is None or r.path == path or r.target == path]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- internals used by the handler ------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            self._log.append(request)
            route = self._routes.get(request.target) or self._routes.get(request.path)
            if route is None:
                return None
            return route.next_reply(request)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()


def _not_modified(reply: Reply, headers: Mapping[str, str]) -> bool:
    if reply.status != 200:
        return False
    if reply.etag and (tags := headers.get("if-none-match")):
        wanted = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return reply.etag.removeprefix("W/") in wanted or "*" in wanted
    if reply.last_modified and (since := headers.get("if-modified-since")):
        try:
            return parsedate_to_datetime(reply.last_modified) <= parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
    return False


def _make_handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "framewatch-localserver"
        timeout = 30  # idle keep-alive connections end by themselves
        disable_nagle_algorithm = True  # headers and body go out in separate writes; no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the request log
            return

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (OSError, ValueError):  # client went away, or we reset the connection on purpose
                self.close_connection = True

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            request = RecordedRequest(
                method=self.command,
                target=self.path,
                path=parts.path,
                query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            reply = server._record(request)
            if reply is None:
                reply = Reply(body=b"not found", status=404, content_type="text/plain")
            self._serve(reply, request)

        def _serve(self, reply: Reply, request: RecordedRequest) -> None:
            if reply.delay:
                _sleep_unless(server, reply.delay)
            if _not_modified(reply, request.headers):
                self.send_response(304)
                self._validators(reply)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body, encoding = reply.body, reply.encoded
            if reply.gzip and encoding is None:
                body, encoding = gzip.compress(body), "gzip"
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self._validators(reply)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            for name, value in reply.headers:
                self.send_header(name, value)
            length = len(body) * reply.repeat
            if reply.declare_length and not reply.endless:
                self.send_header("Content-Length", str(length))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return
            if reply.reset_after is not None:
                self.wfile.write((body * reply.repeat)[: reply.reset_after])
                self.wfile.flush()
                self._reset()
                return
            if reply.trickle is not None:
                self._trickle(reply, body)
                return
            for _ in range(reply.repeat):
                self.wfile.write(body)

        def _validators(self, reply: Reply) -> None:
            if reply.etag:
                self.send_header("ETag", reply.etag)
            if reply.last_modified:
                self.send_header("Last-Modified", reply.last_modified)

        def _trickle(self, reply: Reply, body: bytes) -> None:
            assert reply.trickle is not None
            step = max(1, reply.trickle_bytes)
            started = time.monotonic()
            stream = _cycle(body) if reply.endless else iter([body * reply.repeat])
            for chunk in stream:
                for i in range(0, len(chunk), step):
                    if server.stopping or time.monotonic() - started > _MAX_ENDLESS_SECONDS:
                        self.close_connection = True
                        return
                    self.wfile.write(chunk[i : i + step])
                    self.wfile.flush()
                    time.sleep(reply.trickle)

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN: a reset mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return _Handler


def _cycle(body: bytes) -> Iterator[bytes]:
    while True:
        yield body or b" "


def _sleep_unless(server: LocalServer, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not server.stopping and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


# -- bundled demo data ------------------------------------------------------------------------------


def serve_demo_data(server: LocalServer) -> list[dict[str, Any]]:
    """Mount framewatch/demo_data/ on `server` and return the sources to configure, as
    [[sources]]-style dicts. Telegram sources expect ingest.telegram_web_base = server.url("/s/").
    Every file is served with an ETag, so a second pass is answered with 304s."""
    root = resources.files("framewatch") / "demo_data"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    sources: list[dict[str, Any]] = []
    for entry in manifest["sources"]:
        source = {k: entry[k] for k in ("name", "kind", "language") if entry.get(k)}
        for target, filename in entry["routes"].items():
            body = (root / filename).read_bytes()
            etag = f'"{zlib.crc32(body):08x}"'
            reply = Reply(body=body, content_type=entry.get("content_type", HTML_TYPE), etag=etag)
            server.route(target, reply)
        if entry["kind"] == "rss":
            source["url"] = server.url(next(iter(entry["routes"])))
        else:
            source["channel"] = entry["channel"]
        sources.append(source)
    return sources
