"""Public Telegram channels through their web preview, t.me/s/<channel> — no account, no API keys.

A preview page lists about 20 messages, oldest first, each a `div.tgme_widget_message[data-post]`, and
an `a.tme_messages_more[data-before=ID]` link to the page of messages older than ID. A channel without
a public preview answers t.me/s/<channel> with a redirect to t.me/<channel>: that is a permanent source
error, not something to retry.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from selectolax.lexbor import LexborHTMLParser, LexborNode

from framewatch.config import IngestSettings
from ingest.http import FetchError, FetchLimits, HttpResponse, fetch_url
from ingest.normalize import (
    clean_text,
    element_text,
    first_line_title,
    guess_language,
    markup_too_nested,
    parse_views,
    to_utc,
)
from ingest.types import FetchResult, FetchStatus, RawPost

HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
NO_PREVIEW = "channel has no public web preview"

# Media flag → the classes t.me uses for it (the first match inside a message sets the flag).
MEDIA_SELECTORS: tuple[tuple[str, str], ...] = (
    ("photo", ".tgme_widget_message_photo_wrap, .tgme_widget_message_photo"),
    ("video", ".tgme_widget_message_video_player, .tgme_widget_message_video, "
              ".tgme_widget_message_roundvideo_player"),
    ("document", ".tgme_widget_message_document_wrap, .tgme_widget_message_document"),
    ("audio", ".tgme_widget_message_voice, .tgme_widget_message_audio"),
    ("sticker", ".tgme_widget_message_sticker_wrap, .tgme_widget_message_sticker"),
    ("poll", ".tgme_widget_message_poll"),
    ("location", ".tgme_widget_message_location_wrap, .tgme_widget_message_venue_wrap"),
)  # fmt: skip
_MAX_ID = 10**15
_CHANNEL_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


@dataclass(frozen=True, slots=True)
class ChannelPage:
    """One preview page. `before_cursor` is the id to ask `?before=` for the next (older) page."""

    posts: tuple[RawPost, ...]
    before_cursor: int | None = None
    channel_title: str | None = None
    skipped: int = 0  # message blocks without a usable id or content
    error: str | None = None  # set when the page was refused (pathological markup)

    @property
    def ids(self) -> list[int]:
        return [int(p.external_id) for p in self.posts]


# Every element a message's fields come from, found with one selector query per message (a query costs
# about as much as reading a field, so one per field would make parsing several times slower).
_ROLE_BY_CLASS = {
    "tgme_widget_message_text": "text",
    "tgme_widget_message_views": "views",
    "tgme_widget_message_forwarded_from_name": "forwarded",
    "tgme_widget_message_meta": "meta",
    "link_preview_title": "link_title",
    # Quoted replies and link previews reuse the message-text classes: their insides are not this post.
    "tgme_widget_message_reply": "quote",
    "tgme_widget_message_link_preview": "quote",
    **{cls.strip()[1:]: "media:" + name for name, sel in MEDIA_SELECTORS for cls in sel.split(",")},
}
_FIELDS_SELECTOR = ", ".join(["time[datetime]", *("." + cls for cls in _ROLE_BY_CLASS)])
_MEDIA_ORDER = [name for name, _ in MEDIA_SELECTORS]


def _node_text(node: LexborNode | None) -> str:
    return " ".join(clean_text(node.text(deep=True)).split()) if node is not None else ""


def _message_id(data_post: str | None) -> int | None:
    if not data_post:
        return None
    tail = data_post.strip().rsplit("/", 1)[-1]
    if not tail.isascii() or not tail.isdigit() or len(tail) > 15:
        return None
    value = int(tail)
    return value if 0 < value < _MAX_ID else None


def _inside(node: LexborNode, containers: set[int], stop: LexborNode) -> bool:
    parent = node.parent
    while parent is not None and parent.mem_id != stop.mem_id:
        if parent.mem_id in containers:
            return True
        parent = parent.parent
    return False


def _parse_message(node: LexborNode, channel: str, language: str | None) -> RawPost | None:
    data_post = node.attributes.get("data-post")
    post_id = _message_id(data_post)
    if post_id is None:
        return None
    fields: dict[str, LexborNode] = {}
    media: set[str] = set()
    quotes: set[int] = set()
    link_title = None
    text_node: LexborNode | None = None
    for el in node.css(_FIELDS_SELECTOR):  # document order: a quote container precedes its insides
        if el.tag == "time":
            if "time" not in fields and not (quotes and _inside(el, quotes, node)):
                fields["time"] = el
            continue
        classes = (el.attributes.get("class") or "").split()
        for cls in classes:
            role = _ROLE_BY_CLASS.get(cls)
            if role is None:
                continue
            if role == "quote":
                quotes.add(el.mem_id)
            elif role.startswith("media:"):
                media.add(role[6:])
            elif role == "link_title":
                link_title = link_title or _node_text(el) or None
            elif quotes and _inside(el, quotes, node):
                continue
            elif role == "text":
                # the message's own text carries js-message_text; a bare one is a fallback
                if text_node is None or ("js-message_text" in classes and "text_own" not in fields):
                    text_node = el
                    if "js-message_text" in classes:
                        fields["text_own"] = el
            else:
                fields.setdefault(role, el)
            break
    text = element_text(text_node) if text_node is not None else ""
    if not text and not media and not link_title:
        return None  # service messages ("channel photo updated") and empty shells
    time_node = fields.get("time")
    name = data_post.strip().rsplit("/", 1)[0] if data_post else ""
    return RawPost(
        external_id=str(post_id),
        url=f"https://t.me/{name if _CHANNEL_RE.match(name) else channel}/{post_id}",
        title=first_line_title(text),
        text=text,
        published_at=to_utc(time_node.attributes.get("datetime")) if time_node is not None else None,
        language=guess_language(text or link_title or "", source_language=language),
        views=parse_views(_node_text(fields.get("views"))),
        forwarded_from=_node_text(fields.get("forwarded")) or None,
        link_title=link_title,
        media=tuple(sorted(media, key=_MEDIA_ORDER.index)),
        edited="edited" in _node_text(fields.get("meta")).lower(),
    )


def parse_channel_page(html: str | bytes, *, channel: str, language: str | None = None) -> ChannelPage:
    """Parse one t.me/s page. Never raises on markup: odd messages are skipped and counted."""
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    if markup_too_nested(html):
        return ChannelPage(posts=(), error="page markup is pathologically nested; refused")
    tree = LexborHTMLParser(html)
    posts: dict[int, RawPost] = {}
    skipped = 0
    for message in tree.css("div.tgme_widget_message[data-post]"):
        post = _parse_message(message, channel, language)
        if post is None:
            skipped += 1
            continue
        posts[int(post.external_id)] = post  # a repeated id: the later block wins
    before = None
    more = tree.css_first("a.tme_messages_more[data-before]")
    if more is not None:
        before = _message_id(more.attributes.get("data-before"))
    title_node = tree.css_first(".tgme_channel_info_header_title")
    title = _node_text(title_node) or None
    ordered = tuple(posts[k] for k in sorted(posts))
    return ChannelPage(posts=ordered, before_cursor=before, channel_title=title, skipped=skipped)


def channel_url(base: str, channel: str, before: int | None = None) -> str:
    url = (base if base.endswith("/") else base + "/") + channel.lstrip("@")
    return f"{url}?before={before}" if before is not None else url


def _lost_preview(response: HttpResponse, base: str) -> bool:
    """Redirected off the preview: t.me/s/<name> → t.me/<name> means the channel has no public preview."""
    if not response.redirects:
        return False
    final = urlsplit(response.url)
    return "/s/" not in final.path and not response.url.startswith(base)


async def fetch_channel(
    client: httpx.AsyncClient,
    *,
    base: str,
    channel: str,
    since_id: int | None,
    backfill_pages: int,
    settings: IngestSettings,
    language: str | None = None,
    now: datetime | None = None,
) -> FetchResult:
    """Poll one channel.

    First poll (`since_id` None): the newest page plus up to `backfill_pages - 1` older pages.
    Later polls: page by page back until the page reaches `since_id` (still at most `backfill_pages`).
    Every post on the fetched pages is returned, old ones included, so storage sees edits and view
    counts of recent posts. `cursor` is the highest id seen. Never raises.
    """
    limits = FetchLimits.from_settings(settings)
    max_pages = max(1, backfill_pages)
    posts: dict[int, RawPost] = {}
    notes: list[str] = []
    pages, before = 0, None
    reached_known = since_id is None
    while pages < max_pages:
        url = channel_url(base, channel, before)
        try:
            response = await fetch_url(client, url, limits=limits, accept=HTML_ACCEPT, now=now)
            if _lost_preview(response, base):
                raise FetchError(NO_PREVIEW, permanent=True, status=response.status, url=url)
            page = await asyncio.to_thread(parse_channel_page, response.body, channel=channel, language=language)
            if page.error:
                raise FetchError(page.error, status=response.status, url=url)
        except FetchError as exc:
            if pages == 0 or since_id is not None or exc.permanent:
                # A catch-up that stops half-way would leave a gap behind the cursor: retry it whole.
                return exc.to_result(pages=pages, notes=tuple(notes))
            notes.append(f"backfill stopped after {pages} page(s): {exc.reason}")
            break
        pages += 1
        if page.skipped:
            notes.append(f"{url}: skipped {page.skipped} message block(s) without id or content")
        for post in page.posts:
            posts[int(post.external_id)] = post
        ids = page.ids
        if since_id is not None and ids and min(ids) <= since_id:
            reached_known = True
            break
        nxt = page.before_cursor
        if not ids or nxt is None or (before is not None and nxt >= before):
            reached_known = True  # the channel's first message, or a page that does not go back
            break
        before = nxt
    if not reached_known:
        notes.append(f"stopped at the page limit ({max_pages}) before reaching message {since_id}")
    highest = max([*posts, since_id or 0])
    return FetchResult(
        FetchStatus.OK,
        posts=tuple(posts[k] for k in sorted(posts)),
        cursor=str(highest) if highest else None,
        pages=pages,
        notes=tuple(notes),
    )
