"""Optional MTProto reader (Telethon) for channels that have no public web preview.

Telethon is not a dependency: it is imported only when a reader is started, and only when
[telegram.telethon] has api_id, api_hash and session. `message_to_post` is a pure function over
Telethon's own Message objects (duck-typed by class name, so this module imports without Telethon).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from framewatch.config import TelethonSettings
from ingest.normalize import clean_text, first_line_title, guess_language, to_utc
from ingest.types import FetchResult, FetchStatus, RawPost

PAGE_SIZE = 100  # messages per history request, the API maximum
RECENT_WINDOW = 20  # newest messages re-read on every poll so edits and view counts are seen

_PERMANENT_ERRORS = frozenset(
    {"ChannelPrivateError", "ChannelInvalidError", "UsernameNotOccupiedError", "UsernameInvalidError",
     "ChannelBannedError", "ChatForbiddenError", "AuthKeyUnregisteredError", "SessionRevokedError"}
)  # fmt: skip


def telethon_available() -> bool:
    return importlib.util.find_spec("telethon") is not None


def _media_kind(media: Any) -> str | None:
    kind = type(media).__name__
    if kind == "MessageMediaPhoto":
        return "photo"
    if kind == "MessageMediaDocument":
        document = getattr(media, "document", None)
        attributes = {type(a).__name__ for a in getattr(document, "attributes", None) or ()}
        mime = str(getattr(document, "mime_type", "") or "")
        if "DocumentAttributeSticker" in attributes:
            return "sticker"
        if "DocumentAttributeVideo" in attributes or mime.startswith("video/"):
            return "video"
        if "DocumentAttributeAudio" in attributes or mime.startswith("audio/"):
            return "audio"
        return "document"
    if kind == "MessageMediaPoll":
        return "poll"
    if kind in ("MessageMediaGeo", "MessageMediaGeoLive", "MessageMediaVenue"):
        return "location"
    return None


def _forwarded_name(fwd: Any, names: Mapping[int, str]) -> str | None:
    if fwd is None:
        return None
    if name := getattr(fwd, "from_name", None):
        return str(name)
    peer = getattr(fwd, "from_id", None)
    for attr in ("channel_id", "user_id", "chat_id"):
        peer_id = getattr(peer, attr, None)
        if peer_id is not None:
            return names.get(int(peer_id), f"id{peer_id}")
    return None


def message_to_post(
    message: Any,
    *,
    channel: str,
    language: str | None = None,
    forwarded_names: Mapping[int, str] | None = None,
) -> RawPost | None:
    """A Telethon Message → RawPost, the same shape the t.me/s parser produces; None for service
    messages and empty ones. `forwarded_names` maps peer ids to titles the caller already resolved."""
    if type(message).__name__ == "MessageService" or getattr(message, "action", None) is not None:
        return None
    message_id = getattr(message, "id", None)
    if not isinstance(message_id, int) or message_id <= 0:
        return None
    text = clean_text(str(getattr(message, "message", None) or ""))
    media = getattr(message, "media", None)
    kind = _media_kind(media) if media is not None else None
    link_title = None
    if type(media).__name__ == "MessageMediaWebPage":
        link_title = clean_text(str(getattr(getattr(media, "webpage", None), "title", None) or "")) or None
    if not text and kind is None and not link_title:
        return None
    views = getattr(message, "views", None)
    return RawPost(
        external_id=str(message_id),
        url=f"https://t.me/{channel}/{message_id}",
        title=first_line_title(text),
        text=text,
        published_at=to_utc(getattr(message, "date", None)),
        language=guess_language(text or link_title or "", source_language=language),
        views=views if isinstance(views, int) else None,
        forwarded_from=_forwarded_name(getattr(message, "fwd_from", None), forwarded_names or {}),
        link_title=link_title,
        media=(kind,) if kind else (),
        edited=getattr(message, "edit_date", None) is not None,
    )


def _error_result(exc: BaseException) -> FetchResult:
    name = type(exc).__name__
    if name == "FloodWaitError":
        seconds = float(getattr(exc, "seconds", 60) or 60)
        return FetchResult(FetchStatus.ERROR, error=f"Telegram flood wait ({seconds:g}s)", retry_after_seconds=seconds)
    if name in _PERMANENT_ERRORS or (isinstance(exc, ValueError) and "username" in str(exc).lower()):
        return FetchResult(FetchStatus.ERROR, error=f"channel not readable: {name}", permanent=True)
    return FetchResult(FetchStatus.ERROR, error=f"telethon: {name}")


class TelethonReader:
    """One logged-in Telethon client shared by all telethon sources. The session must already be
    authorised (log in once interactively with Telethon); a daemon cannot answer a login code prompt."""

    def __init__(self, settings: TelethonSettings) -> None:
        if not settings.configured:
            raise ValueError("telegram.telethon needs api_id, api_hash and session")
        if not telethon_available():
            raise RuntimeError('telethon is not installed (pip install "framewatch[telethon]")')
        self._settings = settings
        self._client: Any = None

    async def __aenter__(self) -> TelethonReader:
        from telethon import TelegramClient

        assert self._settings.api_hash is not None
        client = TelegramClient(
            self._settings.session, self._settings.api_id, self._settings.api_hash.get_secret_value()
        )
        await client.connect()
        if not await client.is_user_authorized():
            await client.disconnect()
            raise RuntimeError("the telethon session is not authorised; log in once with Telethon first")
        self._client = client
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.disconnect()
            self._client = None

    async def fetch_channel(
        self, *, channel: str, since_id: int | None, backfill_pages: int, language: str | None = None
    ) -> FetchResult:
        """Newest messages back to `since_id` (at most backfill_pages × 100); never raises."""
        if self._client is None:
            return FetchResult(FetchStatus.ERROR, error="telethon reader not started")
        limit = PAGE_SIZE * max(1, backfill_pages)
        posts: dict[int, RawPost] = {}
        try:
            async for message in self._client.iter_messages(channel, limit=limit):
                if since_id is not None and message.id <= since_id and len(posts) >= RECENT_WINDOW:
                    break
                post = message_to_post(message, channel=channel, language=language)
                if post is not None:
                    posts[message.id] = post
        except Exception as exc:  # Telethon raises many RPC error classes; each becomes a source error
            return _error_result(exc)
        highest = max([*posts, since_id or 0])
        return FetchResult(
            FetchStatus.OK,
            posts=tuple(posts[k] for k in sorted(posts)),
            cursor=str(highest) if highest else None,
            pages=max(1, -(-len(posts) // PAGE_SIZE)),
        )
