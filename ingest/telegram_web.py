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
from functools import lru_cache
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
    inline_text,
    markup_too_nested,
    parse_views,
    to_utc,
)
from ingest.types import FetchResult, FetchStatus, RawPost

HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
NO_PREVIEW = "channel has no public web preview"
# A t.me page (about 60 KB) parses in about a millisecond: less than handing it to a worker thread and
# back, which also makes the event loop wait for the GIL behind the parse. Bigger bodies (hostile or odd
# pages) go to a thread, so the loop, which the bot shares, never stalls for long.
INLINE_PARSE_BYTES = 256 * 1024

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


# Every element a message's fields come from, found with one selector query per page (a query costs
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
_FIELD_SELECTORS = ["time[datetime]", *("." + cls for cls in _ROLE_BY_CLASS)]
_FIELDS_SELECTOR = ", ".join(_FIELD_SELECTORS)
_MESSAGE_SELECTOR = "div.tgme_widget_message[data-post]"
# Each message, then the fields inside it (a field outside every message belongs to none). Matching
# cost grows with elements x selectors, so the field classes go into one :is() behind a cheap test most
# elements fail (`i`: in quirks mode class selectors ignore ASCII case, and so must the test).
_TGME = [sel for sel in _FIELD_SELECTORS if sel.startswith(".tgme_widget_message_")]
_PAGE_SELECTOR = ", ".join(
    [_MESSAGE_SELECTOR]
    + [f"{_MESSAGE_SELECTOR} {sel}" for sel in _FIELD_SELECTORS if sel not in _TGME]
    + [f'{_MESSAGE_SELECTOR} [class*="tgme_widget_message_" i]:is({", ".join(_TGME)})']
)
_MEDIA_ORDER = [name for name, _ in MEDIA_SELECTORS]


def _one_line(raw: str) -> str:
    text = clean_text(raw)  # single spaces only, none at the ends: split() only for \n
    return " ".join(text.split()) if "\n" in text else text


# t.me repeats short field texts all the time (view counts, times, forwarded-from names): remember them.
_SHORT = 64
_one_line_cached = lru_cache(maxsize=4096)(_one_line)


@lru_cache(maxsize=4096)
def _views_cached(raw: str) -> int | None:
    return parse_views(_one_line(raw))


def _node_text(node: LexborNode | None) -> str:
    if node is None:
        return ""
    raw = node.text(deep=True)
    return _one_line_cached(raw) if len(raw) <= _SHORT else _one_line(raw)


def _views(node: LexborNode | None) -> int | None:
    if node is None:
        return None
    raw = node.text(deep=True)
    return _views_cached(raw) if len(raw) <= _SHORT else parse_views(_one_line(raw))


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


_ClassRoles = tuple[tuple[str, ...], bool]
_ROLES_CACHE: dict[str, _ClassRoles] = {}


def _class_roles(class_attr: str) -> _ClassRoles:
    """The roles of a class attribute's classes, in class order, and whether it has js-message_text.

    t.me repeats a handful of class strings on every message, so the answer is remembered (for short
    strings, up to a bound: a hostile page can make up as many as it likes).
    """
    found = _ROLES_CACHE.get(class_attr)
    if found is None:
        classes = class_attr.split()
        roles = tuple(role for cls in classes if (role := _ROLE_BY_CLASS.get(cls)) is not None)
        found = (roles, "js-message_text" in classes)
        if len(class_attr) <= 200 and len(_ROLES_CACHE) < 1000:
            _ROLES_CACHE[class_attr] = found
    return found


def _nested(messages: list[LexborNode]) -> bool:
    """True if a message sits inside another. Walks up from each message, remembering the nodes known to
    be outside every message, so no node is passed twice (cheaper than a page query, and linear however
    deep hostile markup nests)."""
    ids = {message.mem_id for message in messages}
    outside: set[int] = set()
    for message in messages:
        node = message.parent
        while node is not None and (key := node.mem_id) not in outside:
            if key in ids:
                return True
            outside.add(key)
            node = node.parent
    return False


def _fields_by_message(tree: LexborHTMLParser, messages: list[LexborNode]) -> list[list[LexborNode]] | None:
    """Every message's field elements in document order, from one selector query for the whole page.

    A query per message parsed the long selector again each time, which cost more than matching it.
    The page query lists each message followed by the fields inside it; a message is also among its own
    fields if its classes say so, as its own query would have it. None when a message sits inside
    another: its elements then belong to both, and the caller queries message by message.
    """
    if not messages or _nested(messages):
        return None
    index = {message.mem_id: i for i, message in enumerate(messages)}
    fields: list[list[LexborNode]] = [[] for _ in messages]
    current: list[LexborNode] = []
    for el in tree.css(_PAGE_SELECTOR):
        i = index.get(el.mem_id)
        if i is None:
            current.append(el)  # inside some message: without nesting, the last one listed
        else:
            current = fields[i]
            if _class_roles(el.attrs.get("class") or "")[0]:
                current.append(el)
    return fields


_WATCHED = ("views", "forwarded", "meta")  # fields read after the text


def _text(
    text_node: LexborNode, fields: dict[str, LexborNode], message: LexborNode, *, inline: bool, around: bool
) -> str:
    """The post's text, read without editing the tree when that edit could not show: element_text turns
    <br>s into newline nodes, and the _WATCHED fields, read after it, would see those inside the text or
    around it (hostile pages), as would later messages nested in this one. `around`: a watched field
    comes before the text in the document, so it may contain it."""
    if inline:
        watched = {fields[role].mem_id for role in _WATCHED if role in fields}
        if not (around and _inside(text_node, watched, message)):
            text = inline_text(text_node, watched=watched)
            if text is not None:
                return text
    return element_text(text_node)


def _parse_message(
    node: LexborNode, found: list[LexborNode] | None, channel: str, language: str | None
) -> RawPost | None:
    """One message block → post; `found` is its field elements if the page query already has them."""
    found_by_page = found is not None
    data_post = node.attrs.get("data-post")
    post_id = _message_id(data_post)
    if post_id is None:
        return None
    fields: dict[str, LexborNode] = {}
    media: set[str] = set()
    quotes: set[int] = set()
    link_title = None
    text_node: LexborNode | None = None
    watched_first = False  # a watched field was found before the text node
    if found is None:
        found = node.css(_FIELDS_SELECTOR)
    for el in found:  # document order: a quote container precedes its insides
        if el.tag == "time":
            if "time" not in fields and not (quotes and _inside(el, quotes, node)):
                fields["time"] = el
            continue
        roles, own_text = _class_roles(el.attrs.get("class") or "")
        for role in roles:
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
                if text_node is None or (own_text and "text_own" not in fields):
                    text_node = el
                    watched_first = "views" in fields or "forwarded" in fields or "meta" in fields
                    if own_text:
                        fields["text_own"] = el
            else:
                fields.setdefault(role, el)
            break
    text = ""
    if text_node is not None:
        text = _text(text_node, fields, node, inline=found_by_page, around=watched_first)
    if not text and not media and not link_title:
        return None  # service messages ("channel photo updated") and empty shells
    time_node = fields.get("time")
    name = data_post.strip().rsplit("/", 1)[0] if data_post else ""
    return RawPost(
        external_id=str(post_id),
        url=f"https://t.me/{name if _CHANNEL_RE.match(name) else channel}/{post_id}",
        title=first_line_title(text),
        text=text,
        published_at=to_utc(time_node.attrs.get("datetime")) if time_node is not None else None,
        language=guess_language(text or link_title or "", source_language=language),
        views=_views(fields.get("views")),
        forwarded_from=_node_text(fields.get("forwarded")) or None,
        link_title=link_title,
        media=tuple(sorted(media, key=_MEDIA_ORDER.index)) if media else (),
        edited="edited" in _node_text(fields.get("meta")).lower(),
    )


def parse_channel_page(html: str | bytes, *, channel: str, language: str | None = None) -> ChannelPage:
    """Parse one t.me/s page. Never raises on markup: odd messages are skipped and counted."""
    text = html
    if isinstance(html, bytes):
        try:
            # Valid UTF-8 goes to lexbor as it came: the very bytes selectolax would encode the str back
            # into, without that (slow) encoding.
            text = html.decode("utf-8")
        except UnicodeDecodeError:
            html = text = html.decode("utf-8", "replace")
    if markup_too_nested(text):
        return ChannelPage(posts=(), error="page markup is pathologically nested; refused")
    tree = LexborHTMLParser(html)
    posts: dict[int, RawPost] = {}
    skipped = 0
    messages = tree.css(_MESSAGE_SELECTOR)
    by_message = _fields_by_message(tree, messages)
    for i, message in enumerate(messages):
        post = _parse_message(message, by_message[i] if by_message is not None else None, channel, language)
        if post is None:
            skipped += 1
            continue
        posts[int(post.external_id)] = post  # a repeated id: the later block wins
    before = None
    more = tree.css_first("a.tme_messages_more[data-before]")
    if more is not None:
        before = _message_id(more.attrs.get("data-before"))
    title_node = tree.css_first(".tgme_channel_info_header_title")
    title = _node_text(title_node) or None
    ordered = tuple(posts[k] for k in sorted(posts))
    return ChannelPage(posts=ordered, before_cursor=before, channel_title=title, skipped=skipped)


def channel_url(base: str, channel: str, before: int | None = None) -> str:
    url = (base if base.endswith("/") else base + "/") + channel.lstrip("@")
    return f"{url}?before={before}" if before is not None else url


async def _parse(body: bytes, *, channel: str, language: str | None) -> ChannelPage:
    if len(body) <= INLINE_PARSE_BYTES:
        return parse_channel_page(body, channel=channel, language=language)
    return await asyncio.to_thread(parse_channel_page, body, channel=channel, language=language)


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
            page = await _parse(response.body, channel=channel, language=language)
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
