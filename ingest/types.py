"""Plain values that leave ingest/: what a fetcher saw, before storage decides what is new."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class RawPost:
    """One item as a source published it, already normalised (canonical URL, plain text, UTC date)."""

    external_id: str
    url: str | None
    title: str
    text: str
    published_at: datetime | None
    language: str | None = None
    views: int | None = None
    forwarded_from: str | None = None
    link_title: str | None = None
    media: tuple[str, ...] = ()
    edited: bool = False
    # The text is only the feed's teaser although full text was asked for (article fetch skipped or
    # failed this poll): storage should keep a longer text it already has instead of "editing" it back.
    summary_only: bool = False


class FetchStatus(StrEnum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one poll of one source produced; the caller (pipeline) stores posts and source state."""

    status: FetchStatus
    posts: tuple[RawPost, ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    # For paginated sources (t.me/s): highest message id seen, so the next poll stops there.
    cursor: str | None = None
    pages: int = 1
    # Permanent failures (channel has no public preview) disable the source at once.
    permanent: bool = False
    http_status: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
