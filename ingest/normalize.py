"""Turning what sources publish into comparable values: one URL per story, plain text, UTC dates.

Every function here takes untrusted input (feeds and channel pages written by strangers) and must
return a value or None, never raise: a parser that crashes on one odd item loses the whole page.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from codecs import charmap_encode
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from encodings import cp1251
from html import unescape
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

# Query parameters that identify a click or a campaign, not a document. Keys are compared lowercased;
# any key starting with "utm_" is dropped as well.
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "yclid", "ysclid", "msclkid",
        "mc_cid", "mc_eid", "igshid", "igsh", "twclid", "ttclid", "li_fat_id", "_ga", "_gl",
        "_hsenc", "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking", "mkt_tok", "oly_anon_id",
        "oly_enc_id", "vero_id", "vero_conv", "wickedid", "rb_clickid", "s_cid", "ncid", "cmpid",
        "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3", "at_custom4",
        "ref_src", "ref_url", "spm", "scm", "from_yandex", "utm", "zanpid", "epik", "sr_share",
        "_openstat", "rss_referrer", "dm_i", "cvid", "ocid",
    }
)  # fmt: skip

# Invisible format characters that change how text looks but not what it says: zero-width spaces and
# joiners, word joiner, BOM, soft hyphen, and the bidi embedding/override/isolate controls that can
# make an alert display text in a different order than it is stored.
_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064,
     0xFEFF, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)  # fmt: skip
# C0/C1 controls except tab and newline (carriage returns are turned into newlines first).
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0)])
_STRIP_TABLE = {**_INVISIBLE, **_CONTROLS}
# The same characters as one regex class: re.sub runs in C, str.translate with a dict does not.
_STRIP_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_STRIP_TABLE)) + "]+")

# Any whitespace except newline (incl. NBSP, thin spaces) that is not already a single space.
_SPACES_RE = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_LINE_EDGES_RE = re.compile(r" ?\n ?")
_BLANK_LINES_RE = re.compile(r"\n{3,}")

# Block-level elements: their edges are paragraph breaks in the plain text.
_BLOCK_TAGS = (
    "p", "div", "section", "article", "header", "footer", "aside", "main", "nav", "blockquote", "pre",
    "ul", "ol", "li", "dl", "dt", "dd", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "figure",
    "figcaption", "hr", "address", "details", "summary",
)  # fmt: skip
DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "head")
_BLOCK_SET, _DROP_SET, _CELL_SET = frozenset(_BLOCK_TAGS), frozenset(DROP_TAGS), frozenset(("td", "th"))


def clean_text(text: str) -> str:
    """Plain text as a reader sees it: NFC, no invisible characters, single spaces, at most one blank line."""
    if not text:
        return ""
    if text.isascii() and text.isprintable():  # ASCII is NFC; printable means no \r, \n or controls
        return _clean_plain(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if text.isprintable() or text.replace("\n", " ").isprintable():  # same-length replace: fast
        return _clean_plain(text)
    text = _SPACES_RE.sub(" ", _STRIP_RE.sub("", text))  # one space between words, none invisible
    text = _LINE_EDGES_RE.sub("\n", text)  # no space at either end of a line
    return _BLANK_LINES_RE.sub("\n\n", text).strip()


def _clean_plain(text: str) -> str:
    """`clean_text` for text whose only non-printable character is the newline: nothing invisible to
    strip and no whitespace but " " and "\n" (every other space and control is non-printable), so a few
    C-speed str.replace calls do what the regexes would, several times faster on ordinary posts."""
    while "  " in text:
        text = text.replace("  ", " ")
    if "\n" in text:
        text = text.replace(" \n", "\n").replace("\n ", "\n")
        while "\n\n\n" in text:
            text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def html_to_text(html: str | None) -> str:
    """HTML fragment → plain text keeping paragraphs and <br> line breaks; scripts and styles dropped.

    Works by inserting newline text nodes around block elements and then reading the text once, so
    arbitrarily deep markup never recurses in Python.
    """
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return clean_text(html)
    if markup_too_nested(html, max_cost=FRAGMENT_NESTING_COST):
        return clean_text(unescape(_TAG_RE.sub(" ", html)))
    tree = HTMLParser(html)
    root = tree.body or tree.root
    if root is None:
        return ""
    return element_text(root)


# Lexbor, like any HTML5 tree builder, scans the stack of open elements for many start tags, so the cost
# of a page grows with (tags x nesting depth). Markup over 16 KB gets a vectorised estimate of that cost
# (the sum of open-element depth over start tags) before parsing. A page is parsed once a poll: up to
# 3e8, ~0.5 s. A feed carries hundreds of HTML fragments, so each gets 1e7, ~25 ms (a 10 MB feed of
# 127 KB items of nested <div> cost 0.85 s each, 68 s a poll, under the page bound); real markup costs
# 0.1-0.2 per byte (the fixtures), so even a 10 MB real page stays 5x under the fragment bound.
_NESTING_CHECK_FROM = 16 * 1024
PAGE_NESTING_COST = 300_000_000
FRAGMENT_NESTING_COST = 10_000_000
# Never crosses another "<": with "[^>]*" a page of "<a<a<a…" (no ">") rescanned to its end from every
# "<", 21 s for 250 KB in the fallback meant for hostile markup.
_TAG_RE = re.compile(r"<[^<>]*>")


def markup_too_nested(markup: str | bytes, *, max_cost: int = PAGE_NESTING_COST) -> bool:
    """True if parsing this markup would take pathological time (deeply nested hostile HTML)."""
    if len(markup) <= _NESTING_CHECK_FROM:
        return False
    import numpy as np

    data = markup.encode("utf-8", "replace") if isinstance(markup, str) else markup
    a = np.frombuffer(data, dtype=np.uint8)
    lt, nxt = a[:-1] == 60, a[1:]
    low = nxt | 32
    opens = lt & (low >= 97) & (low <= 122)
    closes = (lt & (nxt == 47)).view(np.int8) + ((a[:-1] == 47) & (nxt == 62)).view(np.int8)
    depth = np.cumsum(opens.view(np.int8) - closes, dtype=np.int64)
    return int(depth[opens].sum()) > max_cost


def element_text(node: Node, *, drop: tuple[str, ...] = DROP_TAGS) -> str:
    """Text of a selectolax node with <br> as newline and block elements as paragraphs. Mutates the node.

    One walk collects the tags present and the <br> elements, so the usual case (inline markup and <br>
    only) needs no selector query at all: a query costs more than the walk over a post's few elements.
    """
    walk = node.traverse()
    tags: set[str] = set()
    breaks: list[Node] = []
    first = next(walk, None)  # the node itself comes first
    for child in walk if first is None or first.mem_id == node.mem_id else (first, *walk):
        tag = child.tag
        tags.add(tag)
        if tag == "br":
            breaks.append(child)
    if dropped := tags.intersection(_DROP_SET if drop is DROP_TAGS else drop):
        node.strip_tags(sorted(dropped))
        breaks = node.css("br") if breaks else []  # some may have gone with the dropped elements
    for br in breaks:
        br.replace_with("\n")
    if blocks := tags.intersection(_BLOCK_SET):
        for block in node.css(",".join(sorted(blocks))):
            block.insert_before("\n\n")
            block.insert_after("\n\n")
    if cells := tags.intersection(_CELL_SET):
        for cell in node.css(",".join(sorted(cells))):
            cell.insert_after(" ")
    return clean_text(node.text(deep=True, separator=""))


# What element_text does more for than read the text: dropped, block and table-cell elements.
_NOT_INLINE = _DROP_SET | _BLOCK_SET | _CELL_SET


def inline_text(node: Node, *, watched: Collection[int] = ()) -> str | None:
    """element_text(node) for text with only inline markup and <br> (nearly every post), read in one walk
    without editing the tree: cheaper than turning each <br> into a text node and reading the text again.

    None when element_text is needed instead: for any other markup, and when `node` holds a <br> and an
    element of `watched` (mem_ids), whose own text would change once element_text has edited the <br>.
    """
    parts: list[str] = []
    walk = node.traverse(include_text=True)
    first = next(walk, None)  # the node itself comes first
    breaks = found_watched = False
    for child in walk if first is None or first.mem_id == node.mem_id else (first, *walk):
        tag = child.tag
        if tag == "-text":
            parts.append(child.text_content or "")
        elif tag == "br":
            parts.append("\n")
            breaks = True
        elif tag in _NOT_INLINE:
            return None
        elif watched and child.mem_id in watched:
            found_watched = True
    if breaks and found_watched:
        return None
    return clean_text("".join(parts))


def plain_title(value: str | None) -> str:
    """A title on one line: feeds put HTML and line breaks into titles."""
    return " ".join(html_to_text(value).split())


def first_line_title(text: str, limit: int = 140) -> str:
    """A title for posts that have none (Telegram): the first line, cut at a word boundary.

    Cut without an ellipsis so the text still starts with the title (the classifier reads title+text
    and would otherwise see the opening words twice).
    """
    line = text.strip()
    if (end := line.find("\n")) >= 0:  # not split(): that would copy the whole rest of the post
        line = line[:end].strip()
    if len(line) <= limit:
        return line
    cut = line[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-–—")


# -- URLs -----------------------------------------------------------------------------------------


def _is_tracking(key: str) -> bool:
    k = unquote_plus(key).strip().lower()
    return k.startswith("utm_") or k in TRACKING_PARAMS


def resolve_link(link: str | None, base_url: str | None) -> str | None:
    """A feed entry's link resolved against the feed's URL; None for one urllib cannot split (an
    unclosed IPv6 bracket, a bad port): that item keeps no URL instead of failing the whole feed."""
    if not link or not base_url:
        return link
    try:
        return urljoin(base_url, link)
    except ValueError:
        return None


def canonical_url(url: str | None) -> str | None:
    """One spelling per document: lowercase scheme/host, no default port, no fragment, no trackers,
    query parameters in a stable order. Query pieces are kept as they were encoded (only reordered),
    so two spellings of one URL compare equal without re-encoding surprises. Non-http(s) → None."""
    if not url:
        return None
    url = _STRIP_RE.sub("", url).strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        host = parts.hostname.lower().rstrip(".")
        port = parts.port
    except ValueError:  # bad port, bad IPv6 literal
        return None
    if not host or any(c in host for c in "@/?#\\ "):
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    pieces = [q.strip() for q in parts.query.split("&")]
    pieces = [p for p in pieces if p and not _is_tracking(p.split("=", 1)[0])]
    pieces.sort(key=lambda p: (unquote_plus(p.split("=", 1)[0]), p))
    # Whitespace and other unsafe characters in the path are percent-encoded (existing escapes are kept),
    # so a canonical URL is canonical again when re-read.
    path = quote(parts.path, safe="/%:@!$&'()*+,;=~") or "/"
    return urlunsplit((scheme, netloc, path, "&".join(pieces), ""))


# -- dates ----------------------------------------------------------------------------------------

_MIN_YEAR, _MAX_YEAR = 1990, 2200


def to_utc(value: object) -> datetime | None:
    """datetime (naive = UTC), struct_time (feedparser's *_parsed, UTC), ISO 8601 or RFC 2822 string,
    or a Unix timestamp → aware UTC datetime; anything implausible → None."""
    result: datetime | None = None
    try:
        if type(value) is str:  # the usual case first
            result = _parse_date_string(value.strip())
        elif isinstance(value, datetime):
            result = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, time.struct_time) or (isinstance(value, tuple) and len(value) >= 6):
            result = datetime(*value[:6], tzinfo=UTC)  # type: ignore[misc]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            result = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            result = _parse_date_string(value.strip())
    except (ValueError, OverflowError, OSError, TypeError):
        return None
    if result is None:
        return None
    try:
        result = result.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return result if _MIN_YEAR <= result.year <= _MAX_YEAR else None


def _parse_date_string(text: str) -> datetime | None:
    if not text or len(text) > 100:
        return None
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (ValueError, TypeError, IndexError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- views, hashes, language ----------------------------------------------------------------------

_VIEWS_RE = re.compile(r"^(\d{1,15}(?:[.,]\d{1,3})*)\s*([kKmMbBкКмМ]?)(?!\w)")
_DIGIT_GROUP_SPACE_RE = re.compile(r"(?<=\d)\s(?=\d{3}(?!\d))")
_MULTIPLIER = {"": 1, "k": 1_000, "к": 1_000, "m": 1_000_000, "м": 1_000_000, "b": 1_000_000_000}


def parse_views(text: str | None) -> int | None:
    """Telegram's view counter: "987", "15.3K" → 15300, "1.2M" → 1200000, "1,234" → 1234; else None."""
    if not text:
        return None
    if not (text.isascii() and text.isprintable() and " " not in text):  # "15.3K": nothing to clean
        text = _DIGIT_GROUP_SPACE_RE.sub("", clean_text(text))
    if len(text) > 40:
        return None
    m = _VIEWS_RE.match(text)
    if not m:
        return None
    number, suffix = m.group(1), m.group(2).lower()
    if suffix:
        # "1.2K" / "1,2K": the separator before a suffix is a decimal point.
        number = number.replace(",", ".")
        if number.count(".") > 1:
            return None
    else:
        return int(number.replace(",", "").replace(".", ""))  # thousands separators; digits only now
    try:
        value = Decimal(number) * _MULTIPLIER[suffix]
    except (InvalidOperation, KeyError):
        return None
    return int(value)


def content_hash(title: str, text: str) -> str:
    """sha256 of the normalised title and text: equal for copies that differ only in spacing/markup."""
    normal = f"{' '.join(clean_text(title).split())}\n{clean_text(text)}"
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


# The letters guess_language counts, as windows-1251 bytes: that charset holds every one of them and maps
# each to its own byte, so one encode and one bytes.translate into letter classes let bytes.count do the
# counting at C speed (the regexes over the str they replace cost as much as the rest of a post's parsing).
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯіІїЇєЄґҐ"
_UK_ONLY, _RU_ONLY = "іІїЇєЄґҐ", "ыЫэЭъЪёЁ"
_LATIN, _OTHER = b"l", b"\0"  # letter classes; the rest of the Cyrillic ones are b"c", b"u" and b"r"
_CP1251 = cp1251.encoding_table


def _letter_classes() -> bytes:
    table = bytearray(256)  # everything else: _OTHER
    for letters, cls in ((_CYRILLIC, b"c"), (_UK_ONLY, b"u"), (_RU_ONLY, b"r")):
        for byte in letters.encode("cp1251"):
            table[byte] = cls[0]
    for byte in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[byte] = _LATIN[0]
    return bytes(table)


_LETTER_CLASSES = _letter_classes()


def guess_language(text: str, *, source_language: str | None = None, sample: int = 2000) -> str | None:
    """Cheap script-based guess: і/ї/є/ґ → uk, other Cyrillic → ru, Latin → en. The source's configured
    language always wins; it is the only reliable signal for short or mixed posts."""
    if source_language:
        return source_language
    # str.encode without the codec lookup; characters outside windows-1251 are no letters we count
    head = charmap_encode(text[:sample], "ignore", _CP1251)[0].translate(_LETTER_CLASSES)
    # bytes.count costs per occurrence, so the classes a post is full of are only tested for, not counted
    if b"c" not in head and b"u" not in head and b"r" not in head:  # no Cyrillic at all
        return "en" if _LATIN in head else None
    latin = head.count(_LATIN)
    if latin and len(head) - latin - head.count(_OTHER) < latin:  # fewer Cyrillic letters than Latin
        return "en"
    return "uk" if head.count(b"u") > head.count(b"r") else "ru"
