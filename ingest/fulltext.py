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
# Markup handed to trafilatura, in characters, once scripts and styles are gone. Its cost grows with the
# page's elements (2026-12-04: 1 MiB of paragraphs 1 s, 4 MiB 10 s, 7.5 MiB 21 s of CPU), and a hostile
# page at the response cap would hold a worker thread shared with every source's parsing for half a
# minute, per article. 1 MiB of markup carries more text than a post keeps (MAX_TEXT_CHARS).
MAX_ARTICLE_MARKUP = 1 << 20
# A body that is itself compressed (no Content-Encoding) is inflated by trafilatura; this caps that too
# (its own default is 20 MB, which would bring back the CPU cost the markup bound removes).
MAX_DECOMPRESSED = 8 << 20
_NOT_TEXT = ("script", "style", "noscript", "svg", "template")


def extract_article_text(html: bytes | str, *, url: str | None = None) -> str | None:
    """Main text of an article page, paragraphs kept; None when nothing article-like is found."""
    if not html:
        return None
    import trafilatura

    try:
        text = trafilatura.extract(
            bounded_markup(html),
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


def bounded_markup(html: bytes | str) -> str:
    """The page as text (decoded, and decompressed if the body itself is gzip/zstd/brotli, as trafilatura
    would do it, at most MAX_DECOMPRESSED); when longer than MAX_ARTICLE_MARKUP, its markup without scripts,
    styles and comments (pages that embed megabytes of app state before the article keep the article),
    cut there."""
    from trafilatura.utils import decode_file

    text = decode_file(html, max_size=MAX_DECOMPRESSED)
    if len(text) <= MAX_ARTICLE_MARKUP:
        return text
    import lxml.etree
    import lxml.html

    try:
        tree = lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):  # nothing parseable, or an XML encoding declaration
        return text[:MAX_ARTICLE_MARKUP]
    lxml.etree.strip_elements(tree, *_NOT_TEXT, with_tail=False)
    lxml.etree.strip_elements(tree, lxml.etree.Comment, with_tail=False)
    return lxml.html.tostring(tree, encoding="unicode")[:MAX_ARTICLE_MARKUP]


async def fetch_full_text(client: httpx.AsyncClient, url: str, *, limits: FetchLimits) -> str | None:
    """Download `url` within `limits` and extract its article text. Raises FetchError on HTTP failure."""
    response = await fetch_url(client, url, limits=limits, accept=HTML_ACCEPT)
    if response.not_modified or not response.body:
        return None
    if response.content_type and "html" not in response.content_type and "xml" not in response.content_type:
        raise FetchError(f"not an HTML page ({response.content_type})", url=url)
    return await asyncio.to_thread(extract_article_text, response.body, url=response.url)
