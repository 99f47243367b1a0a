"""RSS 2.0 / Atom: fetch with our own bounded client, make the bytes safe, then let feedparser read them.

feedparser never fetches anything here: it only sees bytes we downloaded (size-capped, decompressed by
us) wrapped in BytesIO. Before it sees them we

* decode them ourselves (BOM, HTTP charset, XML declaration, then evidence: invalid UTF-8 and
  mislabelled windows-1251 are common on Russian-language sites) and hand feedparser clean UTF-8;
* remove the DOCTYPE and its internal subset. Entities can only be declared there, so without it
  there is nothing to expand (billion laughs, quadratic blowup) and nothing external to resolve
  (XXE) — in the strict SAX parser *and* in feedparser's lenient fallback parser, which does its own
  entity substitution. Feeds do not need DTDs; HTML named entities still work in the fallback.

Both steps, and dropping the characters XML forbids, live in ingest/feed_bytes.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import feedparser
import httpx

from framewatch.config import IngestSettings
from ingest.feed_bytes import prepare_feed_bytes
from ingest.fulltext import fetch_full_text
from ingest.http import FetchError, FetchLimits, fetch_url
from ingest.normalize import (
    canonical_url,
    clean_text,
    guess_language,
    html_to_text,
    plain_title,
    resolve_link,
    to_utc,
)
from ingest.types import FetchResult, FetchStatus, RawPost

FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
MAX_EXTERNAL_ID = 500  # storage column width
MAX_FULL_TEXT_FETCHES = 20  # per poll; the rest keep their summaries until a later poll
FULL_TEXT_CONCURRENCY = 4

_TAGLIKE_RE = re.compile(r"<[a-zA-Z/!][^<>]*>")


class FeedError(Exception):
    """The bytes are not a feed we can read; the message is short and operator-facing."""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    posts: tuple[RawPost, ...]
    # external ids of posts whose text is only the feed's summary (candidates for full-text fetching)
    summary_only: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()


# -- entries → RawPost --------------------------------------------------------------------------------


def _is_html(value: str, detail: Any) -> bool:
    """feedparser types a field text/plain unless it sees *allowed* tags; markup it does not like
    (scripts, styles) is still markup and must not reach the stored text."""
    kind = str(detail.get("type", "text/html")) if isinstance(detail, dict) else "text/html"
    return "html" in kind or _TAGLIKE_RE.search(value) is not None


def _detail_text(value: str | None, detail: Any) -> str:
    if not value:
        return ""
    return html_to_text(value) if _is_html(value, detail) else clean_text(value)


def _external_id(entry: Any, url: str | None, title: str, text: str, published: datetime | None) -> str:
    guid = clean_text(str(entry.get("id") or ""))
    candidate = guid or url
    if candidate and len(candidate) <= MAX_EXTERNAL_ID:
        return candidate
    if candidate:
        return "sha256:" + hashlib.sha256(candidate.encode()).hexdigest()
    basis = f"{title}\n{text}\n{published.isoformat() if published else ''}"
    return "sha256:" + hashlib.sha256(basis.encode()).hexdigest()


def _media(entry: Any) -> tuple[str, ...]:
    kinds: list[str] = []
    for item in list(entry.get("enclosures") or []) + list(entry.get("media_content") or []):
        mime = str(item.get("type") or item.get("medium") or "") if isinstance(item, dict) else ""
        kind = (
            "photo"
            if mime.startswith("image")
            else "video"
            if mime.startswith("video")
            else "audio"
            if mime.startswith("audio")
            else "document"
        )
        if kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


def entry_to_post(
    entry: Any, *, language: str | None, feed_language: str | None, base_url: str = ""
) -> tuple[RawPost, bool]:
    """One feedparser entry → (RawPost, text is only a summary)."""
    title = " ".join(_detail_text(str(entry.get("title") or ""), entry.get("title_detail")).split())
    contents = [c for c in (entry.get("content") or []) if isinstance(c, dict) and c.get("value")]
    if contents:
        text = max((_detail_text(c.get("value"), c) for c in contents), key=len)
    else:
        text = _detail_text(entry.get("summary"), entry.get("summary_detail"))
    link = entry.get("link")
    url = canonical_url(resolve_link(link, base_url))
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        if published := to_utc(entry.get(key)):
            break
    else:
        published = to_utc(entry.get("published") or entry.get("updated"))
    lang = guess_language(f"{title}\n{text}", source_language=language) or feed_language
    post = RawPost(
        external_id=_external_id(entry, url, title, text, published),
        url=url,
        title=title,
        text=text,
        published_at=published,
        language=lang,
        media=_media(entry),
    )
    return post, not contents


def parse_feed(data: bytes, *, url: str = "", charset: str | None = None, language: str | None = None) -> ParsedFeed:
    """Feed bytes (as downloaded) → posts. Raises FeedError if this is not a feed at all."""
    clean, notes = prepare_feed_bytes(data, charset)
    parsed = feedparser.parse(
        io.BytesIO(clean),
        # No content-location: feedparser would resolve relative guids against it, and an external id
        # must not change when the feed moves. Links are resolved below instead.
        response_headers={"content-type": "application/xml; charset=utf-8"},
        sanitize_html=False,  # we keep text only; html_to_text drops scripts and styles itself
        resolve_relative_uris=False,
    )
    entries = parsed.get("entries") or []
    if not parsed.get("version") and not entries:
        problem = parsed.get("bozo_exception")
        detail = f": {str(problem)[:120]}" if problem else ""
        raise FeedError(f"not an RSS/Atom feed{detail}")
    if parsed.get("bozo") and entries:
        notes += ("malformed XML; read with the lenient parser",)
    feed = parsed.get("feed") or {}
    feed_language = str(feed.get("language") or "")[:2].lower() or None
    posts: dict[str, RawPost] = {}
    summary_only: set[str] = set()
    for entry in entries:
        post, only_summary = entry_to_post(entry, language=language, feed_language=feed_language, base_url=url)
        if not (post.title or post.text or post.url):
            continue
        if post.external_id not in posts:  # first occurrence wins; feeds sometimes repeat an item
            posts[post.external_id] = post
            if only_summary and post.url:
                summary_only.add(post.external_id)
    title = plain_title(feed.get("title")) if feed else ""
    return ParsedFeed(title, tuple(posts.values()), frozenset(summary_only), notes)


# -- fetching -----------------------------------------------------------------------------------------


async def fetch_feed(
    client: httpx.AsyncClient,
    *,
    url: str,
    etag: str | None,
    last_modified: str | None,
    settings: IngestSettings,
    fetch_full_text: bool = False,
    language: str | None = None,
    skip_full_text: Collection[str] = (),
    now: datetime | None = None,
) -> FetchResult:
    """Poll one feed. Conditional GET with the stored validators: a 304 returns NOT_MODIFIED without
    parsing anything. With `fetch_full_text`, entries that carry only a summary get the article text
    (trafilatura) unless their external id is in `skip_full_text` (already stored). Never raises."""
    limits = FetchLimits.from_settings(settings)
    try:
        response = await fetch_url(
            client, url, limits=limits, etag=etag, last_modified=last_modified, accept=FEED_ACCEPT, now=now
        )
    except FetchError as exc:
        return exc.to_result()
    if response.not_modified:
        return FetchResult(
            FetchStatus.NOT_MODIFIED,
            etag=response.etag or etag,
            last_modified=response.last_modified or last_modified,
            http_status=304,
        )
    try:
        feed = await asyncio.to_thread(
            parse_feed, response.body, url=response.url, charset=response.charset, language=language
        )
    except FeedError as exc:
        return FetchResult(FetchStatus.ERROR, error=str(exc), http_status=response.status)
    posts, notes = feed.posts, feed.notes
    if fetch_full_text:
        wanted = [p for p in posts if p.external_id in feed.summary_only and p.external_id not in skip_full_text]
        posts, more = await _with_full_text(client, posts, wanted, feed.summary_only, limits, language)
        notes += more
    return FetchResult(
        FetchStatus.OK,
        posts=posts,
        etag=response.etag,
        last_modified=response.last_modified,
        http_status=response.status,
        notes=notes,
    )


async def _with_full_text(
    client: httpx.AsyncClient,
    posts: Sequence[RawPost],
    wanted: Sequence[RawPost],
    teasers: Collection[str],
    limits: FetchLimits,
    language: str | None,
) -> tuple[tuple[RawPost, ...], tuple[str, ...]]:
    """Fetch article texts for `wanted` (bounded in count, concurrency and total time). Posts in
    `teasers` whose article was not fetched this time keep the teaser and are marked summary_only."""
    gate = asyncio.Semaphore(FULL_TEXT_CONCURRENCY)
    chosen = list(wanted[:MAX_FULL_TEXT_FETCHES])

    async def one(post: RawPost) -> tuple[str, str | None, str | None]:
        assert post.url is not None
        async with gate:
            try:
                return post.external_id, await fetch_full_text(client, post.url, limits=limits), None
            except FetchError as exc:
                return post.external_id, None, f"full text of {post.url}: {exc.reason}"

    tasks = [asyncio.create_task(one(p)) for p in chosen]
    notes: tuple[str, ...] = ()
    if tasks:
        # All articles together get as long as two single fetches: a poll must stay within its lease.
        _, pending = await asyncio.wait(tasks, timeout=limits.deadline * 2)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            notes += (f"full text: {len(pending)} article(s) not fetched in time",)
    results = [t.result() for t in tasks if t.done() and not t.cancelled()]
    texts = {eid: text for eid, text, _ in results if text}
    notes += tuple(note for _, _, note in results if note)
    if len(wanted) > len(chosen):
        notes += (f"full text fetched for {len(chosen)} of {len(wanted)} entries; the rest next poll",)
    out = []
    for post in posts:
        text = texts.get(post.external_id)
        if text and len(text) > len(post.text):
            lang = guess_language(f"{post.title}\n{text}", source_language=language) or post.language
            post = replace(post, text=text, language=lang)
        elif post.external_id in teasers:
            post = replace(post, summary_only=True)
        out.append(post)
    return tuple(out), notes
