"""Untrusted feed bytes → UTF-8 XML that feedparser can read safely (see ingest/rss.py for why).

Decoding (BOM, HTTP charset, XML declaration, then evidence), the DOCTYPE removed, and characters XML
forbids dropped, raw or as numeric references: each of these once failed a real feed every poll.
"""

from __future__ import annotations

import codecs
import re

_XML_DECL_RE = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_DECL_ENCODING_RE = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
# Characters XML 1.0 forbids; one stray control byte otherwise sends the whole feed to the lax parser.
_XML_ILLEGAL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CHARREF_RE = re.compile(r"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
_LATIN_FAMILY = frozenset({"ascii", "iso8859-1", "cp1252", "iso8859-15"})


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except (LookupError, ValueError):
        return None


_HIGH_BYTE_RE = re.compile(rb"[\x80-\xff]")
_HIGH_RUN_RE = re.compile(rb"[\x80-\xff]{3,}")


def _looks_cyrillic_8bit(data: bytes) -> bool:
    """Cyrillic in an 8-bit charset is whole words of bytes >= 0x80; Western European text in Latin-1
    has accented letters scattered between ASCII ones. Most high bytes in runs → Cyrillic."""
    high = len(_HIGH_BYTE_RE.findall(data))
    if high == 0:
        return False
    in_runs = sum(map(len, _HIGH_RUN_RE.findall(data)))
    return in_runs > 0.6 * high


def decode_document(data: bytes, declared: str | None = None) -> tuple[str, str, tuple[str, ...]]:
    """Bytes → (text, codec used, notes). Never raises: the worst case is UTF-8 with replacement."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(name, "replace"), name, ()
    if data[:1] == b"<" and data[1:2] == b"\0":
        return data.decode("utf-16-le", "replace"), "utf-16-le", ()
    if data[:1] == b"\0" and data[1:2] == b"<":
        return data.decode("utf-16-be", "replace"), "utf-16-be", ()
    head = data[:512]
    m = _DECL_ENCODING_RE.match(head)
    from_xml = _codec(m.group(1).decode("ascii")) if m else None
    from_http = _codec(declared)
    label = from_http or from_xml
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        note = () if label in (None, "utf-8", "ascii") else (f"declared {label} but the bytes are UTF-8",)
        return text, "utf-8", note
    for name in (from_http, from_xml):
        if name in (None, "utf-8"):
            continue
        assert name is not None
        if name in _LATIN_FAMILY and _looks_cyrillic_8bit(data):
            return (
                data.decode("cp1251", "replace"),
                "cp1251",
                (f"declared {name} but the text is windows-1251",),
            )
        try:
            return data.decode(name), name, ()
        except (UnicodeDecodeError, LookupError):
            continue
    # Declared UTF-8 (or nothing) and invalid: a few bad bytes in UTF-8 text, or a whole other charset?
    replaced = data.decode("utf-8", "replace")
    bad = replaced.count("\ufffd")
    non_ascii = len(replaced) - len(replaced.encode("ascii", "ignore"))
    if bad > 0.2 * max(non_ascii, 1) and _looks_cyrillic_8bit(data):
        return data.decode("cp1251", "replace"), "cp1251", ("not valid UTF-8; decoded as windows-1251",)
    return replaced, "utf-8", (f"invalid UTF-8 ({bad} bad sequences replaced)",)


def strip_doctype(text: str) -> tuple[str, bool]:
    """Remove a DOCTYPE (with any internal subset) from the prolog. Returns (text, removed)."""
    limit = min(len(text), 1 << 20)
    start = 0
    while True:  # skip the XML declaration, comments and processing instructions before the root
        start = text.find("<", start, limit)
        if start < 0:
            return text, False
        if text.startswith("<!DOCTYPE", start) or text.startswith("<!doctype", start):
            break
        if text.startswith("<?", start):
            end = text.find("?>", start)
        elif text.startswith("<!--", start):
            end = text.find("-->", start)
        else:
            return text, False  # the root element: no DOCTYPE in the prolog
        if end < 0:
            return text, False
        start = end + 2
    depth, quote, i = 0, "", start + 9
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif ch == ">" and depth == 0:
            return text[:start] + text[i + 1 :], True
        i += 1
    return text[:start], True  # unterminated DOCTYPE: nothing after it is usable


def prepare_feed_bytes(data: bytes, declared_charset: str | None = None) -> tuple[bytes, tuple[str, ...]]:
    """Untrusted feed bytes → UTF-8 bytes without DTD or illegal characters, and notes for the operator."""
    text, _, notes = decode_document(data, declared_charset)
    text, removed = strip_doctype(text)
    if removed:
        notes += ("DOCTYPE removed (entity declarations are not processed)",)
    text = _XML_ILLEGAL_RE.sub("", text)
    if "&#" in text:
        text = _CHARREF_RE.sub(_legal_charref, text)
    text = _XML_DECL_RE.sub('<?xml version="1.0" encoding="utf-8"?>', text, count=1)
    return text.encode("utf-8", "replace"), notes


def _legal_charref(match: re.Match[str]) -> str:
    """A numeric reference to a character XML forbids goes, like the raw character would: one to a
    surrogate or past U+10FFFF sent feedparser's lenient parser into UnicodeEncodeError or ValueError,
    failing the feed every poll."""
    hexa, decimal = match.groups()
    digits = (hexa or decimal).lstrip("0") or "0"
    if len(digits) > 8:  # past U+10FFFF whatever they say (and too long for int() of a decimal string)
        return ""
    code = int(digits, 16) if hexa else int(digits)
    legal = code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    return match.group(0) if legal else ""
