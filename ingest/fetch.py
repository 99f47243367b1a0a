"""Which fetcher serves which kind of source."""

from __future__ import annotations

import httpx

from framewatch.config import IngestSettings
from ingest.rss import fetch_feed
from ingest.telegram_web import fetch_channel
from ingest.types import FetchResult, FetchStatus
from storage.sources import SourceState


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
            since_id=int(state.cursor) if state.cursor and state.cursor.isdigit() else None,
            backfill_pages=settings.backfill_pages,
            settings=settings,
            language=state.language,
        )
    return FetchResult(FetchStatus.ERROR, error=f"source kind {state.kind!r} is not available here", permanent=True)
