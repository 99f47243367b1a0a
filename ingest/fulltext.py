"""Article text for feeds that publish only a teaser: download the page and let trafilatura find the body.

trafilatura is imported on first use: it is heavy (lxml, justext, date parsers) and only sources with
`fetch_full_text = true` need it.
"""

from __future__ import annotations

import asyncio

import httpx

from ingest.http import FetchError, FetchLimits, fetch_url
from ingest.normalize import clean_text

HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


def extract_article_text(html: bytes | str, *, url: str | None = None) -> str | None:
    """Main text of an article page, paragraphs kept; None when nothing article-like is found."""
    if not html:
        return None
    import trafilatura

    try:
        text = trafilatura.extract(
            html,
            url=url,
            include_comments=False,
            include_tables=False,
            favor_precision=True,
            deduplicate=False,
        )
    except (ValueError, TypeError, RecursionError, MemoryError, LookupError):
        return None  # trafilatura raises on some malformed documents; a teaser is better than nothing
    text = clean_text(text or "")
    return text or None


async def fetch_full_text(client: httpx.AsyncClient, url: str, *, limits: FetchLimits) -> str | None:
    """Download `url` within `limits` and extract its article text. Raises FetchError on HTTP failure."""
    response = await fetch_url(client, url, limits=limits, accept=HTML_ACCEPT)
    if response.not_modified or not response.body:
        return None
    if response.content_type and "html" not in response.content_type and "xml" not in response.content_type:
        raise FetchError(f"not an HTML page ({response.content_type})", url=url)
    return await asyncio.to_thread(extract_article_text, response.body, url=response.url)
