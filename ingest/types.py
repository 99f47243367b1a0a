"""Plain values that leave ingest/: what a fetcher saw, before storage decides what is new."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# The longest title and text a post keeps. A Telegram post holds at most 4,096 characters and a long
# article about 100,000; beyond this it is a hostile or broken source, and PostgreSQL's full-text vector
# (1 MB at most) would refuse the row and with it the source's whole poll, every poll.
MAX_TITLE_CHARS = 2_000
MAX_TEXT_CHARS = 250_000


@dataclass(frozen=True, slots=True)
class RawPost:
    """One item as a source published it, already normalised (canonical URL, plain text, UTC date).

    Title and text are cut at MAX_TITLE_CHARS / MAX_TEXT_CHARS (an ellipsis marks the cut), so every
    step after the fetcher (hashing, tagging, storing) sees the same bounded text.
    """

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

    def __post_init__(self) -> None:
        if len(self.title) > MAX_TITLE_CHARS:
            object.__setattr__(self, "title", self.title[: MAX_TITLE_CHARS - 1] + "…")
        if len(self.text) > MAX_TEXT_CHARS:
            object.__setattr__(self, "text", self.text[: MAX_TEXT_CHARS - 1] + "…")


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
