"""Logging with secrets scrubbed: httpx and PTB log request URLs that embed the bot token."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Any Telegram bot token, even one we were not told about (e.g. from a stray env var).
# A match starts where a run of digits starts: tried from inside a long run, `\d{5,}` rescanned the
# rest of it each time (quadratic in the run's length).
TOKEN_RE = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")
REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return TOKEN_RE.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message (and exception text) with secrets replaced."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = {s for s in secrets if s}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted, self.secrets)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def _root_filter() -> RedactingFilter | None:
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                return f
    return None


def add_secret(secret: str | None) -> None:
    """Register one more string to scrub from every log line (e.g. the bot token once it is known)."""
    if not secret:
        return
    f = _root_filter()
    if f is None:
        setup_logging(None)
        f = _root_filter()
    assert f is not None
    f.secrets.add(secret)


def setup_logging(level: str | None, *_: object) -> None:
    root = logging.getLogger()
    if _root_filter() is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level or "WARNING")
    # httpx logs every request at INFO with the full URL; keep it quiet unless debugging.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # APScheduler logs two lines per tick (every few seconds) at INFO.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
