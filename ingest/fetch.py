"""Which fetcher serves which kind of source."""

from __future__ import annotations

import httpx

from framewatch.config import IngestSettings, TelethonSettings
from ingest.pipeline import Fetcher
from ingest.rss import fetch_feed
from ingest.telegram_web import fetch_channel
from ingest.types import FetchResult, FetchStatus
from storage.sources import SourceState


def _since_id(state: SourceState) -> int | None:
    return int(state.cursor) if state.cursor and state.cursor.isdigit() else None


async def fetch_source(client: httpx.AsyncClient, state: SourceState, settings: IngestSettings) -> FetchResult:
    if state.kind == "rss":
        assert state.url is not None
        return await fetch_feed(
            client,
            url=state.url,
            etag=state.etag,
            last_modified=state.last_modified,
            settings=settings,
            fetch_full_text=state.fetch_full_text,
            language=state.language,
        )
    if state.kind == "telegram":
        assert state.channel is not None
        return await fetch_channel(
            client,
            base=settings.telegram_web_base,
            channel=state.channel,
            since_id=_since_id(state),
            backfill_pages=settings.backfill_pages,
            settings=settings,
            language=state.language,
        )
    return FetchResult(FetchStatus.ERROR, error=f"source kind {state.kind!r} is not available here", permanent=True)


def build_fetcher(telethon: TelethonSettings) -> Fetcher:
    """fetch_source, plus the optional Telethon reader when [telegram.telethon] is configured."""
    if not telethon.configured:
        return fetch_source

    async def fetch(client: httpx.AsyncClient, state: SourceState, settings: IngestSettings) -> FetchResult:
        if state.kind != "telethon":
            return await fetch_source(client, state, settings)
        from ingest.telethon import TelethonReader

        assert state.channel is not None
        try:
            async with TelethonReader(telethon) as reader:
                return await reader.fetch_channel(
                    channel=state.channel,
                    since_id=_since_id(state),
                    backfill_pages=settings.backfill_pages,
                    language=state.language,
                )
        except (RuntimeError, ValueError, OSError) as exc:
            return FetchResult(FetchStatus.ERROR, error=f"telethon: {exc}")

    return fetch
