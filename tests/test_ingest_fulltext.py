"""Full article text for feeds that carry teasers (`fetch_full_text`): trafilatura on pages from a live
local server, its bounds (count, overall deadline, markup size) and what a teaser keeps when a page fails."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from framewatch.config import IngestSettings
from framewatch.localserver import RSS_TYPE, LocalServer, Reply
from ingest.http import make_client
from ingest.rss import fetch_feed
from ingest.types import FetchResult, FetchStatus
from tests.httpserver import fixture_bytes
from tests.test_ingest_rss import SETTINGS  # the feed tests' limits: these tests were split from them

pytest_plugins = ["tests.httpserver"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(SETTINGS) as c:
        yield c


async def _teasers(
    client: httpx.AsyncClient,
    server: LocalServer,
    settings: IngestSettings = SETTINGS,
    *,
    full_text: bool = True,
    **options: Any,
) -> FetchResult:
    """One first poll of the server's /teasers feed, as the pipeline makes it."""
    return await fetch_feed(
        client,
        url=server.url("/teasers"),
        etag=None,
        last_modified=None,
        settings=settings,
        fetch_full_text=full_text,
        **options,
    )


async def test_fetch_feed_with_full_text(local_server: LocalServer, client) -> None:
    feed = fixture_bytes("feeds", "teasers.rss.xml").replace(b"{BASE}", local_server.base_url.encode())
    local_server.route("/teasers", Reply(body=feed, content_type=RSS_TYPE))
    local_server.route("/articles/shelters", Reply(body=fixture_bytes("articles", "shelters.html")))
    local_server.route("/articles/gone", Reply.error(404))
    result = await _teasers(client, local_server)
    assert result.status is FetchStatus.OK
    shelters, gone, complete = result.posts
    assert shelters.text.startswith("Council approves shelter upgrades\nThe city council voted on Monday")
    assert "inspected by the fire service in May." in shelters.text
    assert "Advertisement" not in shelters.text and "All rights reserved" not in shelters.text
    assert gone.text == "The page behind this teaser answers 404."
    assert (shelters.summary_only, gone.summary_only, complete.summary_only) == (False, True, False)
    assert complete.text == "The whole story is already here, so nothing is fetched for it."
    assert local_server.requests("/articles/complete") == []
    assert any("articles/gone: HTTP 404" in note for note in result.notes)
    # already-stored entries are not fetched again
    local_server.clear_log()
    again = await _teasers(client, local_server, skip_full_text={"digest-shelters", "digest-gone"})
    assert [r.path for r in local_server.requests()] == ["/teasers"]
    assert [p.summary_only for p in again.posts] == [True, True, False]


def test_full_text_extraction_of_a_huge_page_is_bounded() -> None:
    """trafilatura's CPU grows with the page's elements (a 7.5 MiB page of paragraphs took 21 s and held a
    worker thread every source's parsing shares); it now sees at most MAX_ARTICLE_MARKUP of markup."""
    from ingest.fulltext import MAX_ARTICLE_MARKUP, extract_article_text

    paragraphs = b"".join(b"<p>Paragraph %d says enough words to count as article text.</p>" % i for i in range(90_000))
    page = b"<html><body><article>" + paragraphs + b"</article></body></html>"
    assert len(page) > 5 * MAX_ARTICLE_MARKUP
    text = extract_article_text(page)
    assert text is not None and text.startswith("Paragraph 0 says")
    assert len(text) < MAX_ARTICLE_MARKUP


def test_a_page_body_that_is_itself_gzip_is_bounded_after_inflating() -> None:
    """trafilatura inflates a body that is itself gzip (no Content-Encoding, so the HTTP layer's cap saw
    only the compressed size): the markup bound applies to what it inflates to."""
    import gzip

    from ingest.fulltext import MAX_ARTICLE_MARKUP, extract_article_text

    paragraphs = b"".join(b"<p>Paragraph %d says enough words to count as article text.</p>" % i for i in range(60_000))
    packed = gzip.compress(b"<html><body><article>" + paragraphs + b"</article></body></html>")
    assert len(packed) < MAX_ARTICLE_MARKUP
    text = extract_article_text(packed)
    assert text is not None and text.startswith("Paragraph 0 says")
    assert len(text) < MAX_ARTICLE_MARKUP


async def test_full_text_behind_megabytes_of_app_state_is_found(local_server: LocalServer, client) -> None:
    """Pages that embed their app state (a multi-megabyte <script>) before the article, in a declared
    legacy charset: the bound applies to markup without scripts, styles and comments, so the article is
    still read, and decoded as the page declared."""
    body = "".join(f"<p>Абзац {i}: после обстрела в городе ранены трое мирных жителей.</p>" for i in range(20))
    page = (
        b'<html><head><meta charset=\'windows-1251\'><script>window.__STATE__={"blob":"'
        + b"x" * 3_000_000
        + b'"}</script><style>'
        + b"p{}" * 100_000
        + b"</style></head><body><article><h1>"
        + "Обстрел города".encode("cp1251")
        + b"</h1>"
        + body.encode("cp1251")
        + b"</article><!-- "
        + b"c" * 1_500_000
        + b" --></body></html>"
    )
    item = f"<item><title>Teaser</title><link>{local_server.url('/big')}</link><guid>big</guid>"
    feed = f'<rss version="2.0"><channel><title>site</title>{item}<description>Teaser.</description></item>'
    local_server.route("/teasers", Reply(body=(feed + "</channel></rss>").encode(), content_type=RSS_TYPE))
    local_server.route("/big", Reply(body=page, content_type="text/html"))
    settings = IngestSettings()  # the default 10 MB response cap
    result = await _teasers(client, local_server, settings)
    (post,) = result.posts
    assert not post.summary_only, result.notes
    assert "Абзац 19: после обстрела в городе ранены трое мирных жителей." in post.text
    assert "__STATE__" not in post.text


async def test_fetch_feed_without_full_text_makes_one_request(local_server: LocalServer, client) -> None:
    feed = fixture_bytes("feeds", "teasers.rss.xml").replace(b"{BASE}", local_server.base_url.encode())
    local_server.route("/teasers", Reply(body=feed, content_type=RSS_TYPE))
    result = await _teasers(client, local_server, full_text=False)
    assert result.posts[0].text == "Forty basements will get ventilation and lighting."
    assert not any(p.summary_only for p in result.posts)  # the teaser *is* the text for this source
    assert len(local_server.requests()) == 1


async def test_full_text_phase_has_an_overall_deadline(local_server: LocalServer) -> None:
    items = "".join(
        f"<item><title>Teaser {i}</title><link>{local_server.url(f'/slow/{i}')}</link>"
        f"<guid>t{i}</guid><description>Teaser {i}.</description></item>"
        for i in range(12)
    )
    feed = f'<rss version="2.0"><channel><title>slow site</title>{items}</channel></rss>'.encode()
    local_server.route("/teasers", Reply(body=feed, content_type=RSS_TYPE))
    for i in range(12):
        local_server.route(f"/slow/{i}", Reply(body=fixture_bytes("articles", "shelters.html"), delay=0.8))
    fast = IngestSettings(timeout="1s")
    async with make_client(fast) as client:
        started = time.monotonic()
        result = await _teasers(client, local_server, fast)
    assert time.monotonic() - started < 3.5  # 3 rounds of 4 x 0.8 s would take 2.4 s; cut at 2 s
    assert result.status is FetchStatus.OK and len(result.posts) == 12
    fetched = [p for p in result.posts if not p.summary_only]
    assert 4 <= len(fetched) < 12
    assert all("The city council voted" in p.text for p in fetched)
    assert any(note.startswith("full text: ") and "not fetched in time" in note for note in result.notes)
