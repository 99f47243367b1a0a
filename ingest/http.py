"""One HTTP GET the way a poller needs it: bounded in bytes, time and redirects, and never a surprise.

Everything a remote server can do wrong — refuse, stall, trickle, reset, loop, lie about encoding,
send a gzip bomb — ends as a `FetchError` with a short reason an operator can read in a source list.
The body is read raw and decompressed here (not by httpx) so the size cap applies to what is actually
held in memory: a 10 KB gzip bomb stops at `max_bytes`, not after inflating to gigabytes.
"""

from __future__ import annotations

import asyncio
import errno
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from framewatch.config import IngestSettings
from ingest.types import FetchResult, FetchStatus

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
RETRY_AFTER_CODES = frozenset({429, 503})
_READ_CHUNK = 64 * 1024


class FetchError(Exception):
    """A fetch that produced no usable body. `reason` is short and safe to show to an operator."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
        url: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent
        self.url = url

    def to_result(self, *, pages: int = 0, notes: tuple[str, ...] = ()) -> FetchResult:
        return FetchResult(
            FetchStatus.ERROR,
            error=self.reason,
            retry_after_seconds=self.retry_after,
            permanent=self.permanent,
            http_status=self.status,
            pages=pages,
            notes=notes,
        )


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A completed GET: 2xx with its (decompressed) body, or 304 with none."""

    status: int
    url: str  # after redirects
    headers: httpx.Headers
    body: bytes = b""
    redirects: tuple[str, ...] = field(default_factory=tuple)  # URLs that answered with a redirect

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return sendable_validator(self.headers.get("etag"))

    @property
    def last_modified(self) -> str | None:
        return sendable_validator(self.headers.get("last-modified"))

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'").lower()
        return None


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How much one GET may cost. `deadline` covers everything: connect, redirects and the whole body,
    so a server that trickles one byte per second cannot hold a poll past it."""

    max_bytes: int
    deadline: float
    max_redirects: int

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> FetchLimits:
        return cls(
            max_bytes=settings.max_response_bytes,
            deadline=settings.timeout.total_seconds(),
            max_redirects=settings.max_redirects,
        )


_VALIDATOR_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]{0,1022}[\x21-\x7e])?")


def sendable_validator(value: str | None) -> str | None:
    """An ETag / Last-Modified value we can send back as If-None-Match / If-Modified-Since, else None.

    The server's bytes come back to it on the next poll. One non-ASCII or control character there made
    httpx refuse every later request of that source (UnicodeEncodeError) until it was auto-disabled;
    without the validator the next poll is a plain GET, which costs a parse, not the source.
    """
    if value is None:
        return None
    value = value.strip()
    return value if _VALIDATOR_RE.fullmatch(value) else None


def make_client(settings: IngestSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one AsyncClient all fetchers share. Redirects are followed by `fetch_url` (bounded, loop-
    checked), and only encodings we decompress ourselves are offered."""
    timeout = settings.timeout.total_seconds()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=False,
        headers={
            "User-Agent": settings.user_agent,
            "Accept-Encoding": "gzip, deflate",
        },
        limits=httpx.Limits(
            max_connections=max(settings.concurrency * 2, 4),
            max_keepalive_connections=max(settings.concurrency, 2),
        ),
        transport=transport,
    )


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: either delta-seconds or an HTTP-date; garbage → None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone accepts "²", which int() refuses
        # A long digit string is "a very long time" (int() refuses more than 4,300 digits anyway).
        return float(min(int(value), 10**9)) if len(value) <= 10 else float(10**9)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _describe_transport_error(exc: BaseException) -> str:
    """httpx wraps OS errors several layers deep; operators want 'connection refused', not a repr."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed mid-response"
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(cause, ConnectionResetError) or getattr(cause, "errno", None) == errno.ECONNRESET:
            return "connection reset"
        cause = cause.__cause__ or cause.__context__
        seen += 1
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "reset" in text:
        return "connection reset"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "host not found"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.ReadError):
        return "connection reset"
    return type(exc).__name__


class _Decoder:
    """Streams raw bytes through gzip/deflate with a hard cap on the output held in memory."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip() and c.strip() != "identity"]
        if len(codings) > 1:
            raise FetchError(f"unsupported content-encoding {encoding!r}")
        self.coding = codings[0] if codings else ""
        if self.coding in ("gzip", "x-gzip"):
            self.wbits = 16 + zlib.MAX_WBITS
        elif self.coding == "deflate":
            self.wbits = zlib.MAX_WBITS
        elif self.coding:
            raise FetchError(f"unsupported content-encoding {self.coding!r}")
        self.inflater = zlib.decompressobj(self.wbits) if self.coding else None
        self.deflate_probe = self.coding == "deflate"

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise FetchError(f"response too large (over {self.limit} bytes)")
        self.parts.append(data)

    def feed(self, raw: bytes) -> None:
        if self.inflater is None:
            self._emit(raw)
            return
        data = raw
        while data:
            try:
                # max_length bounds each step's output, so a bomb never inflates past the cap.
                out = self.inflater.decompress(data, self.limit - self.size + 1)
            except zlib.error:
                if self.deflate_probe:  # "deflate" sent as raw deflate without the zlib header
                    self.deflate_probe = False
                    self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise FetchError(f"corrupt {self.coding} body") from None
            self.deflate_probe = False
            self._emit(out)
            if self.inflater.unconsumed_tail:
                data = self.inflater.unconsumed_tail
            elif self.inflater.eof and self.inflater.unused_data:
                data = self.inflater.unused_data  # another gzip member follows
                self.inflater = zlib.decompressobj(self.wbits)
            else:
                data = b""

    def finish(self) -> bytes:
        if self.inflater is not None:
            self._emit(self.inflater.flush())
        return b"".join(self.parts)


async def fetch_url(
    client: httpx.AsyncClient,
    url: str,
    *,
    limits: FetchLimits,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str | None = None,
    now: datetime | None = None,
) -> HttpResponse:
    """GET `url` within `limits`. Returns a 2xx (body read and decompressed) or a 304; raises
    FetchError for everything else. `now` is only used to turn a Retry-After date into seconds."""
    try:
        async with asyncio.timeout(limits.deadline):
            return await _fetch(
                client, url, limits=limits, etag=etag, last_modified=last_modified, accept=accept, now=now
            )
    except TimeoutError:
        raise FetchError(f"timeout (no complete response within {limits.deadline:g}s)", url=url) from None
    except FetchError:
        raise
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid URL: {exc}", permanent=True, url=url) from None
    except httpx.UnsupportedProtocol:
        raise FetchError("unsupported URL scheme", permanent=True, url=url) from None
    except httpx.TransportError as exc:
        raise FetchError(_describe_transport_error(exc), url=url) from None
    except (httpx.HTTPError, OSError, ValueError) as exc:
        raise FetchError(_describe_transport_error(exc), url=url) from None


async def _fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    limits: FetchLimits,
    etag: str | None,
    last_modified: str | None,
    accept: str | None,
    now: datetime | None,
) -> HttpResponse:
    headers: dict[str, str] = {}
    # Checked again on the way out: a validator stored before it was checked on the way in must not
    # fail every later request of its source.
    if etag := sendable_validator(etag):
        headers["If-None-Match"] = etag
    if last_modified := sendable_validator(last_modified):
        headers["If-Modified-Since"] = last_modified
    if accept:
        headers["Accept"] = accept
    redirects: list[str] = []
    seen = {url}
    current = url
    while True:
        request = client.build_request("GET", current, headers=headers)
        response = await client.send(request, stream=True)
        try:
            status = response.status_code
            if status in REDIRECT_CODES:
                location = response.headers.get("location")
                if not location:
                    raise FetchError(f"HTTP {status} redirect without Location", status=status, url=current)
                target = urljoin(current, location.strip())
                if urlsplit(target).scheme not in ("http", "https"):
                    raise FetchError("redirect to a non-HTTP URL", status=status, url=current)
                redirects.append(current)
                if target in seen:
                    raise FetchError(f"redirect loop ({len(redirects)} hops)", status=status, url=current)
                if len(redirects) > limits.max_redirects:
                    raise FetchError(f"too many redirects (over {limits.max_redirects})", status=status, url=current)
                seen.add(target)
                current = target
                continue
            if status == 304:
                return HttpResponse(304, str(response.url), response.headers, b"", tuple(redirects))
            if not 200 <= status < 300:
                raise _status_error(response, now=now)
            body = await _read_body(response, limits.max_bytes)
            return HttpResponse(status, str(response.url), response.headers, body, tuple(redirects))
        finally:
            await response.aclose()


def _status_error(response: httpx.Response, *, now: datetime | None) -> FetchError:
    status = response.status_code
    retry_after = None
    if status in RETRY_AFTER_CODES:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=now or datetime.now(UTC))
    phrase = response.reason_phrase or ""
    reason = f"HTTP {status} {phrase}".strip()
    # 410 Gone is the server saying "stop asking"; everything else may recover and is retried with backoff.
    return FetchError(reason, status=status, retry_after=retry_after, permanent=status == 410, url=str(response.url))


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise FetchError(f"response too large ({int(declared)} bytes, limit {max_bytes})", status=response.status_code)
    decoder = _Decoder(response.headers.get("content-encoding", ""), max_bytes)
    async for chunk in response.aiter_raw(_READ_CHUNK):
        decoder.feed(chunk)
    return decoder.finish()
