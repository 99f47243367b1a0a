"""Full-text search over posts: FTS5 on SQLite, tsvector('simple') on PostgreSQL, one behaviour.

This module is the API (search_posts, the LIKE baseline, page assembly); storage/search_sqlite.py and
storage/search_postgres.py each turn a parsed query into a page of post ids on their backend. Every
piece of user text reaches the database as a bind parameter.

Snippets carry SNIPPET_START/SNIPPET_END around matches instead of markup, so whoever renders them escapes
the text first and only then adds tags (see snippet_to_html).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from storage.query import ParsedQuery, QueryError, Term, parse_query
from storage.search_postgres import postgres_ids, postgres_newest, postgres_snippets
from storage.search_sql import (
    POST,
    SNIPPET_END,
    SNIPPET_START,
    SOURCE,
    driver_rows,
    filter_conditions,
    ordered,
)
from storage.search_sqlite import sqlite_ids, sqlite_snippets

__all__ = [
    "SNIPPET_END",
    "SNIPPET_START",
    "SearchHit",
    "SearchPage",
    "search_posts",
    "search_posts_like",
    "snippet_to_html",
]

MAX_LIMIT = 200
MAX_OFFSET = 10_000
PLAIN_SNIPPET_CHARS = 240
_SENTINELS_RE = re.compile(f"([{SNIPPET_START}{SNIPPET_END}])")
_ADJACENT_MARKS_RE = re.compile(f"{SNIPPET_END} {SNIPPET_START}")


@dataclass(frozen=True, slots=True)
class SearchHit:
    post_id: int
    source: str
    title: str
    url: str | None
    published_at: datetime | None
    language: str | None
    frames: tuple[str, ...]
    snippet: str  # plain text with SNIPPET_START/SNIPPET_END around matched words


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: tuple[SearchHit, ...]
    has_more: bool
    next_offset: int | None
    query: ParsedQuery


def snippet_to_html(snippet: str) -> str:
    """Escape the snippet for HTML (Telegram's subset too), then turn sentinels into <b>…</b>.

    Tags always come out balanced, even if a stray sentinel character sits in the stored text.
    """
    out: list[str] = []
    bold = False
    for part in _SENTINELS_RE.split(snippet):
        if part == SNIPPET_START:
            if not bold:
                out.append("<b>")
            bold = True
        elif part == SNIPPET_END:
            if bold:
                out.append("</b>")
            bold = False
        elif part:
            out.append(html.escape(part, quote=False))
    if bold:
        out.append("</b>")
    return "".join(out)


def search_posts(
    query: str | ParsedQuery, *, session: Session, now: datetime, limit: int = 10, offset: int = 0
) -> SearchPage:
    """Posts matching `query`, newest first (published_at DESC, id DESC; undated posts last).

    Raises QueryError (message fit for the user) for a malformed query, an unknown source name or a
    limit/offset out of range.
    """
    parsed = query if isinstance(query, ParsedQuery) else parse_query(query, now=now)
    _check_paging(limit, offset)
    source_ids = _source_ids(parsed.sources, session)
    if parsed.has_text and (parsed.sources or parsed.languages) and not _any_post_in(parsed, source_ids, session):
        ids: list[int] = []
    elif session.get_bind().dialect.name == "sqlite":
        ids = sqlite_ids(parsed, filter_conditions(parsed, source_ids), session, limit + 1, offset)
    else:
        ids = postgres_ids(parsed, source_ids, session, limit + 1, offset)
    return _page(parsed, ids, session, limit, offset, highlight=True)


def _any_post_in(parsed: ParsedQuery, source_ids: list[int], session: Session) -> bool:
    """Whether any post passes the source, language and date filters: one lookup in their indexes.

    When none does (`lang:it` on an archive without Italian posts, a source that has not posted yet),
    the answer is empty without fetching every text match of a common word only to filter them all away.
    (A language that many posts have but none of the text matches, like an English word with
    `lang:ru`, is answered by the text index itself, which holds each post's language.)
    """
    conditions = filter_conditions(dataclasses.replace(parsed, frames=()), source_ids)
    return session.execute(sa.select(POST.c.id).where(*conditions).limit(1)).first() is not None


def search_posts_like(
    query: str | ParsedQuery, *, session: Session, now: datetime, limit: int = 10, offset: int = 0
) -> SearchPage:
    """The naive baseline for bench/search.py: substring LIKE scans with the same filters and order.

    Substring matching is not word matching, so its results may differ; it exists to be timed.
    """
    parsed = query if isinstance(query, ParsedQuery) else parse_query(query, now=now)
    _check_paging(limit, offset)
    conditions = filter_conditions(parsed, _source_ids(parsed.sources, session))
    conditions += [sa.or_(*(_like(t) for t in c.terms)) for c in parsed.clauses]
    conditions += [sa.not_(_like(t)) for t in parsed.excluded]
    if session.get_bind().dialect.name == "sqlite":
        stmt = ordered(sa.select(POST.c.id).where(*conditions), "sqlite").limit(limit + 1).offset(offset)
        ids = list(session.scalars(stmt))
    else:
        ids = postgres_newest(conditions, session, limit + 1, offset)
    return _page(parsed, ids, session, limit, offset, highlight=False)


def _check_paging(limit: int, offset: int) -> None:
    """Paging often comes from the user too (CLI --limit/--offset, the bot's "more" button)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"The page size (limit) must be between 1 and {MAX_LIMIT}, not {limit}.")
    if not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"The offset must be between 0 and {MAX_OFFSET}, not {offset}.")


def _source_ids(names: Sequence[str], session: Session) -> list[int]:
    """Exact names first; a name that differs only in case still finds its source."""
    if not names:
        return []
    stmt = sa.select(SOURCE.c.name, SOURCE.c.id).where(SOURCE.c.name.in_(names))
    found: dict[str, int] = {name: id_ for name, id_ in session.execute(stmt)}
    missing = [name for name in names if name not in found]
    if missing:
        by_folded = {name.casefold(): id_ for name, id_ in session.execute(sa.select(SOURCE.c.name, SOURCE.c.id))}
        unknown = [name for name in missing if name.casefold() not in by_folded]
        if unknown:
            shown = ", ".join(repr(name) for name in unknown)
            raise QueryError(f"No source is named {shown}; check the name in the sources list.")
        found.update({name: by_folded[name.casefold()] for name in missing})
    return sorted(set(found.values()))


# -- LIKE baseline --------------------------------------------------------------------------------


def _like(term: Term) -> sa.ColumnElement[bool]:
    pattern = "%" + term.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.or_(POST.c.title.ilike(pattern, escape="\\"), POST.c.text.ilike(pattern, escape="\\"))


# -- page assembly --------------------------------------------------------------------------------


def _page(
    parsed: ParsedQuery, ids: list[int], session: Session, limit: int, offset: int, *, highlight: bool
) -> SearchPage:
    has_more = len(ids) > limit
    ids = ids[:limit]
    snippets: dict[int, tuple[str, str]] = {}
    if ids and highlight and parsed.has_text:
        if session.get_bind().dialect.name == "sqlite":
            snippets = sqlite_snippets(parsed, ids, session)
        else:
            snippets = postgres_snippets(parsed, ids, session)
    frames = _frames(ids, session)
    rows = {row[0]: row for row in _hit_rows(ids, session)}
    hits = []
    for post_id in ids:
        if post_id not in rows:  # deleted since the ids were read
            continue
        _, source, title, text, link, published_at, language = rows[post_id]
        snippet = _choose_snippet(snippets.get(post_id), title, text)
        hits.append(SearchHit(post_id, source, title, link, published_at, language, frames.get(post_id, ()), snippet))
    return SearchPage(
        hits=tuple(hits),
        has_more=has_more,
        next_offset=offset + limit if has_more else None,
        query=parsed,
    )


def _hit_rows(ids: list[int], session: Session) -> list[tuple[object, ...]]:
    if not ids:
        return []
    sql = (
        "SELECT post.id, source.name, post.title, post.text, coalesce(post.canonical_url, post.url), "
        "post.published_at, post.language FROM post JOIN source ON source.id = post.source_id "
        "WHERE post.id IN (?*)"
    )
    rows = driver_rows(session, sql, in_list=ids)
    # The driver's value, read back as the column type reads it (aware UTC on both backends).
    dialect = session.get_bind().dialect
    read_time = POST.c.published_at.type.dialect_impl(dialect).result_processor(dialect, None)
    if read_time is None:
        return rows
    return [(*row[:5], read_time(row[5]), row[6]) for row in rows]


def _frames(ids: list[int], session: Session) -> dict[int, tuple[str, ...]]:
    out: dict[int, tuple[str, ...]] = {}
    if not ids:
        return out
    sql = "SELECT post_id, frame_id FROM postframe WHERE post_id IN (?*) ORDER BY score DESC, frame_id"
    for post_id, frame_id in driver_rows(session, sql, in_list=ids):
        out[post_id] = (*out.get(post_id, ()), frame_id)
    return out


def _choose_snippet(highlighted: tuple[str, str] | None, title: str, text: str) -> str:
    """The text's highlighted passage, else the title's, else the start of the text."""
    for candidate in highlighted or ():
        if candidate and SNIPPET_START in candidate:
            # One mark over "march on moscow", not three (ts_headline marks phrase words one by one).
            return _ADJACENT_MARKS_RE.sub(" ", " ".join(candidate.split()))
    plain = " ".join(_SENTINELS_RE.sub("", text or title).split())
    if len(plain) <= PLAIN_SNIPPET_CHARS:
        return plain
    cut = plain.rfind(" ", 0, PLAIN_SNIPPET_CHARS)
    return plain[: cut if cut > PLAIN_SNIPPET_CHARS // 2 else PLAIN_SNIPPET_CHARS] + "…"
