"""The bundled demo data: served by the local server and read by the real fetchers, it yields ~30 posts
from both kinds of source, in three languages, and a second pass is answered with 304s."""

from __future__ import annotations

from collections import Counter

from framewatch.config import IngestSettings, SourceSettings
from framewatch.localserver import LocalServer, serve_demo_data
from ingest.http import make_client
from ingest.rss import fetch_feed
from ingest.telegram_web import fetch_channel
from ingest.types import FetchResult, FetchStatus

pytest_plugins = ["tests.httpserver"]


async def _poll_all(
    server: LocalServer, settings: IngestSettings, sources: list[SourceSettings], etags: dict[str, str | None]
) -> dict[str, FetchResult]:
    results: dict[str, FetchResult] = {}
    async with make_client(settings) as client:
        for source in sources:
            if source.kind == "rss":
                assert source.url is not None
                results[source.name] = await fetch_feed(
                    client,
                    url=source.url,
                    etag=etags.get(source.name),
                    last_modified=None,
                    settings=settings,
                    language=source.language,
                )
            else:
                assert source.channel is not None
                results[source.name] = await fetch_channel(
                    client,
                    base=settings.telegram_web_base,
                    channel=source.channel,
                    since_id=None,
                    backfill_pages=settings.backfill_pages,
                    settings=settings,
                    language=source.language,
                )
    return results


async def test_demo_sources_yield_thirty_posts_from_both_kinds(local_server: LocalServer) -> None:
    sources = [SourceSettings(**entry) for entry in serve_demo_data(local_server)]  # valid config entries
    settings = IngestSettings(telegram_web_base=local_server.url("/s/"), timeout="5s")
    assert Counter(s.kind for s in sources) == {"rss": 2, "telegram": 2}

    first = await _poll_all(local_server, settings, sources, {})
    assert all(r.status is FetchStatus.OK for r in first.values()), first
    counts = {name: len(r.posts) for name, r in first.items()}
    assert counts == {"world-wire": 7, "euro-digest": 5, "svodka-dnya": 10, "ukr-monitor": 8}
    assert first["svodka-dnya"].pages == 2 and first["svodka-dnya"].cursor == "4415"
    languages = Counter(p.language for r in first.values() for p in r.posts)
    assert set(languages) == {"en", "ru", "uk"}
    posts = [p for r in first.values() for p in r.posts]
    assert all(p.published_at is not None and p.text for p in posts)
    assert len({(name, p.external_id) for name, r in first.items() for p in r.posts}) == 30

    second = await _poll_all(local_server, settings, sources, {name: r.etag for name, r in first.items()})
    assert second["world-wire"].status is FetchStatus.NOT_MODIFIED
    assert second["euro-digest"].status is FetchStatus.NOT_MODIFIED
