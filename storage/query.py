"""The search query language shared by the CLI and the bot, parsed into a frozen value.

Syntax (what `framewatch search` and the bot's /search accept):

- `wagner prigozhin` — every word must occur (AND). An upper-case `AND` between terms may be written
  and changes nothing.
- `"private military company"` — the words in a row (a phrase).
- `-moscow`, `-"wagner group"` — posts containing the word or phrase are left out.
- `wagner OR вагнер OR вагнера` — either term. OR binds tighter than the implicit AND, so
  `wagner OR вагнер mutiny` means (wagner OR вагнер) AND mutiny.
- Filters: `source:NAME` (or `source:"name with spaces"`), `frame:ID`, `lang:xx`,
  `since:7d|24h|30m|2w|2023-05-01|2023-05-01T12:00Z`, `until:…` (same forms; a bare date is inclusive,
  so `until:2023-05-10` keeps the whole of that day). Repeating `source:` or `lang:` allows any of the
  values (a post has only one); repeating `frame:` requires all of them.

Parentheses, `*`, `^`, `:` (outside a filter), `NEAR`, `NOT` and every other character are ordinary text:
punctuation separates words, exactly as the full-text indexes treat it. Because OR already binds tighter
than AND, `(wagner OR вагнер) mutiny` means what it looks like; nested groups such as `(a b) OR c` are not
supported, and no character is ever passed to the database as query syntax.

Matching is by whole word, case-insensitive in every script; there is no stemming (`вагнер` does not find
`вагнера`: write both with OR).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
FILTER_KEYS = ("source", "frame", "lang", "since", "until")

# Letters and digits in any script; everything else separates words, as in FTS5's unicode61 tokenizer
# and PostgreSQL's default parser.
_WORD_RE = re.compile(r"[^\W_]+")
_FRAME_RE = re.compile(r"[a-z0-9_]{1,64}")
_LANG_RE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,4})?")
_AGE_RE = re.compile(r"(\d{1,6})([mhdw])")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TIME_HELP = "use a date (2023-05-01), a date and time (2023-05-01T12:00Z) or an age (7d, 24h, 30m, 2w)"
_T = TypeVar("_T")
_EXAMPLE = "for example: wagner OR вагнер -moscow source:NAME since:7d"


class QueryError(ValueError):
    """A query the user must fix; str(error) is a message fit to show them as is."""


@dataclass(frozen=True, slots=True)
class Term:
    """One word or quoted phrase as the user wrote it, with the words the indexes will see."""

    text: str
    phrase: bool
    tokens: tuple[str, ...]

    def render(self) -> str:
        return f'"{self.text}"' if self.phrase else self.text


@dataclass(frozen=True, slots=True)
class Clause:
    """Alternatives joined by OR; a plain word is a clause of one."""

    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """Every clause must match, no excluded term may, and every filter holds.

    `until` is an exclusive bound: a post matches when since <= published_at < until.
    """

    clauses: tuple[Clause, ...] = ()
    excluded: tuple[Term, ...] = ()
    sources: tuple[str, ...] = ()
    frames: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @property
    def has_text(self) -> bool:
        return bool(self.clauses)

    def render(self) -> str:
        """A canonical query string that parses back to this value (relative times become absolute)."""
        parts = [" OR ".join(t.render() for t in c.terms) for c in self.clauses]
        parts += [f"-{t.render()}" for t in self.excluded]
        parts += [f"source:{_quote_value(s)}" for s in self.sources]
        parts += [f"frame:{f}" for f in self.frames]
        parts += [f"lang:{lang}" for lang in self.languages]
        if self.since is not None:
            parts.append(f"since:{_iso(self.since)}")
        if self.until is not None:
            parts.append(f"until:{_iso(self.until)}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class _Lexeme:
    kind: str  # term | or | and | filter
    pos: int
    negated: bool = False
    text: str = ""
    phrase: bool = False
    key: str = ""


def parse_query(query: str, *, now: datetime) -> ParsedQuery:
    """Parse `query`; raise QueryError with a message for the user when it cannot mean anything.

    Runs in time linear in the input, and input longer than MAX_QUERY_CHARS is refused up front.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"The query is too long ({len(query)} characters; at most {MAX_QUERY_CHARS}).")
    return _build(_lex(_clean(query)), now)


def _clean(query: str) -> str:
    """NFC like the stored text; invisible format characters vanish, controls become spaces."""
    out = []
    for ch in unicodedata.normalize("NFC", query.encode("utf-8", "replace").decode("utf-8")):
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        out.append(" " if category == "Cc" else ch)
    return "".join(out)


def _closing_quote(s: str, opening: int) -> int:
    end = s.find('"', opening + 1)
    if end < 0:
        raise QueryError(
            f'Unbalanced quote: the " at position {opening + 1} is never closed. '
            'Close the phrase with another " or remove it.'
        )
    return end


def _lex(s: str) -> list[_Lexeme]:
    lexemes: list[_Lexeme] = []
    i, n = 0, len(s)
    while i < n:
        if s[i].isspace():
            i += 1
            continue
        start, negated = i, False
        if s[i] == "-" and i + 1 < n and not s[i + 1].isspace():
            negated, i = True, i + 1
        if s[i] == '"':
            end = _closing_quote(s, i)
            lexemes.append(_Lexeme("term", start, negated, s[i + 1 : end], phrase=True))
            i = end + 1
            continue
        j = i
        while j < n and not s[j].isspace() and s[j] != '"':
            j += 1
        word = s[i:j]
        key, colon, value = word.partition(":")
        if colon and key.lower() in FILTER_KEYS:
            if not value and j < n and s[j] == '"':
                end = _closing_quote(s, j)
                value, j = s[j + 1 : end], end + 1
            lexemes.append(_Lexeme("filter", start, negated, value, key=key.lower()))
        elif word in ("OR", "AND") and not negated:
            lexemes.append(_Lexeme(word.lower(), start))
        else:
            lexemes.append(_Lexeme("term", start, negated, word))
        i = j
    return lexemes


@dataclass
class _Builder:
    now: datetime
    clauses: list[list[Term]]
    excluded: list[Term]
    sources: list[str]
    frames: list[str]
    languages: list[str]
    since: datetime | None = None
    until: datetime | None = None
    terms_seen: int = 0


def _build(lexemes: list[_Lexeme], now: datetime) -> ParsedQuery:
    b = _Builder(now, [], [], [], [], [])
    previous = ""  # "" at the start, else the kind of the last lexeme ("term+" for a positive term)
    for lx in lexemes:
        if lx.kind == "or":
            if previous != "term+":
                raise QueryError(f"OR at position {lx.pos + 1} needs a search word or phrase on its left.")
        elif lx.kind == "and":
            if previous in ("", "or", "and"):
                raise QueryError(f"AND at position {lx.pos + 1} needs a search term on its left.")
        elif lx.kind == "filter":
            _check_after_or(previous, lx, f"{lx.key}:")
            _add_filter(b, lx)
        else:
            term = Term(lx.text, lx.phrase, tuple(t.lower() for t in _WORD_RE.findall(lx.text)))
            b.terms_seen += 1
            if b.terms_seen > MAX_TERMS:
                raise QueryError(f"Too many search terms (at most {MAX_TERMS}).")
            if lx.negated:
                _check_after_or(previous, lx, f"-{term.render()}")
                b.excluded.append(term)
            elif previous == "or":
                b.clauses[-1].append(term)
            else:
                b.clauses.append([term])
        previous = "term+" if lx.kind == "term" and not lx.negated else lx.kind
    if previous in ("or", "and"):
        raise QueryError(f"{previous.upper()} at the end of the query needs a search term on its right.")
    return _finish(b, bool(lexemes))


def _check_after_or(previous: str, lx: _Lexeme, shown: str) -> None:
    if previous != "or":
        return
    if lx.kind == "filter":
        raise QueryError(
            f"OR joins search words, not filters ({shown}). Repeat a filter instead: "
            "source:a source:b finds posts from either source."
        )
    raise QueryError(f"OR cannot join an exclusion ({shown}); put the exclusion on its own.")


def _finish(b: _Builder, had_input: bool) -> ParsedQuery:
    clauses = []
    for terms in b.clauses:
        kept = _unique(t for t in terms if t.tokens)
        if kept:
            clauses.append(Clause(kept))
    excluded = _unique(t for t in b.excluded if t.tokens)
    has_filters = bool(b.sources or b.frames or b.languages or b.since or b.until)
    if not clauses and not has_filters:
        if not had_input:
            raise QueryError(f"The query is empty: type some words or a filter, {_EXAMPLE}.")
        if excluded:
            raise QueryError(
                "A query of exclusions alone would match nearly everything: add a word or a filter, "
                "e.g. wagner -moscow or source:NAME -moscow."
            )
        raise QueryError("Nothing to search for: the query has no letters or digits, " + _EXAMPLE + ".")
    if b.since is not None and b.until is not None and b.since >= b.until:
        raise QueryError(f"since: ({_iso(b.since)}) is not before until: ({_iso(b.until)}), so nothing could match.")
    return ParsedQuery(
        clauses=tuple(_unique(clauses)),
        excluded=excluded,
        sources=_unique(b.sources),
        frames=_unique(b.frames),
        languages=_unique(b.languages),
        since=b.since,
        until=b.until,
    )


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))


def _add_filter(b: _Builder, lx: _Lexeme) -> None:
    key, value = lx.key, lx.text.strip()
    if lx.negated:
        raise QueryError(f"Filters cannot be excluded: remove the '-' before {key}:{value}.")
    if not value:
        raise QueryError(f"{key}: needs a value, e.g. {_FILTER_EXAMPLES[key]}.")
    if key == "source":
        if len(value) > 200:
            raise QueryError("source: name is too long (at most 200 characters).")
        b.sources.append(value)
    elif key == "frame":
        if not _FRAME_RE.fullmatch(value.lower()):
            raise QueryError(
                f"frame:{value} is not a frame id (lower-case letters, digits and _), e.g. {_FILTER_EXAMPLES['frame']}."
            )
        b.frames.append(value.lower())
    elif key == "lang":
        if not _LANG_RE.fullmatch(value.lower()):
            raise QueryError(f"lang:{value} is not a language code; e.g. lang:en or lang:uk.")
        b.languages.append(value.lower())
    else:
        if getattr(b, key) is not None:
            raise QueryError(f"{key}: is given twice; keep one.")
        setattr(b, key, _parse_when(key, value, b.now))


_FILTER_EXAMPLES = {
    "source": "source:wire-world",
    "frame": "frame:military_rift",
    "lang": "lang:ru",
    "since": "since:7d or since:2023-05-01",
    "until": "until:2023-05-10",
}


def _parse_when(key: str, value: str, now: datetime) -> datetime:
    """An age counts back from `now`; a bare date is midnight UTC (the next one for until:)."""
    bad = QueryError(f"{key}:{value} is not a time: {_TIME_HELP}.")
    try:
        if m := _AGE_RE.fullmatch(value.lower()):
            return now.astimezone(UTC) - timedelta(**{_AGE_UNITS[m.group(2)]: int(m.group(1))})
        if _DATE_RE.fullmatch(value):
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if key == "until" else start
        if _DATETIME_RE.fullmatch(value):
            moment = datetime.fromisoformat(value.upper())
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise QueryError(f"{key}:{value} is outside the calendar; pick a nearer time.") from None
    except ValueError:
        raise bad from None
    raise bad


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _quote_value(value: str) -> str:
    return f'"{value}"' if any(ch.isspace() for ch in value) or not value else value
