"""Full-text search over posts: FTS5 on SQLite, tsvector('simple') on PostgreSQL, one behaviour.

Every piece of user text reaches the database as a bind parameter. On SQLite each term becomes an FTS5
string ("…" with inner quotes doubled), so FTS5 operators in user text are plain words; the whole MATCH
expression is itself a parameter. On PostgreSQL each term goes through plainto_tsquery/phraseto_tsquery
and the pieces are combined in SQL with tsquery_and/tsquery_or/tsquery_not (the functions behind
&&, || and !!). A `lang:` code reaches FTS5 only as hex digits and tsquery only as a checked lexeme.

Snippets carry SNIPPET_START/SNIPPET_END around matches instead of markup, so whoever renders them escapes
the text first and only then adds tags (see snippet_to_html).
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from storage.models import Post, PostFrame, Source
from storage.query import Clause, ParsedQuery, QueryError, Term, parse_query

SNIPPET_START = "\x02"
SNIPPET_END = "\x03"
MAX_LIMIT = 200
MAX_OFFSET = 10_000
SNIPPET_TOKENS = 24
PLAIN_SNIPPET_CHARS = 240
# SQLite plan costs (µs per row), measured with bench/search.py on 1M posts; see _sqlite_ids.
_SORT_COST = 1.5  # per match: fetch its post row and sort it
_SET_COST = 0.12  # per match: add its id to a temporary set
_WALK_COST = 0.45  # per post walked on the date index and checked against the set
_PROBE_COST = 35.0  # per post walked and looked up in FTS, for a one-term query
_PROBE_COST_MULTI = 400.0  # the same when several terms must be looked up
# Migration 0004 indexes each post's language in post_fts as this marker + hex code (see _fts5_language).
_LANGUAGE_TOKEN = "fwlang"
_LANGUAGE_PROBE = 200  # fewer text matches than this in the asked languages: let FTS5 intersect them
# PostgreSQL (see _postgres_ids): newest posts checked first, and the estimated number of text matches
# up to which fetching them all through the GIN index beats walking the date index.
PG_WALK = 1000
PG_WALK_PER_ROW = 20
PG_WALK_FAR = 30_000
PG_GIN_ROWS = 20_000
PG_WINDOW_SURPLUS = 3  # pages' worth of matches the first window should have held by the estimate

_POST: sa.Table = Post.__table__  # type: ignore[attr-defined]
_FRAME: sa.Table = PostFrame.__table__  # type: ignore[attr-defined]
_SOURCE: sa.Table = Source.__table__  # type: ignore[attr-defined]
_FTS = sa.table("post_fts", sa.column("rowid", sa.Integer))
_FTS_TABLE = sa.literal_column("post_fts")
_SEARCH_VECTOR = sa.literal_column("post.search_vector")
_SIMPLE = sa.literal_column("'simple'::regconfig")
_TSQUERY = postgresql.TSQUERY()
_LANGUAGE_CODE_RE = re.compile(r"[a-z0-9-]{1,16}")
_HEADLINE_OPTIONS = (
    f"StartSel={SNIPPET_START}, StopSel={SNIPPET_END}, MaxWords={SNIPPET_TOKENS}, "
    f"MinWords={SNIPPET_TOKENS // 2}, ShortWord=0, MaxFragments=1, FragmentDelimiter=…"
)
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
        ids = _sqlite_ids(parsed, _filter_conditions(parsed, source_ids), session, limit + 1, offset)
    else:
        ids = _postgres_ids(parsed, source_ids, session, limit + 1, offset)
    return _page(parsed, ids, session, limit, offset, highlight=True)


def _any_post_in(parsed: ParsedQuery, source_ids: list[int], session: Session) -> bool:
    """Whether any post passes the source, language and date filters: one lookup in their indexes.

    When none does (`lang:it` on an archive without Italian posts, a source that has not posted yet),
    the answer is empty without fetching every text match of a common word only to filter them all away.
    (A language that many posts have but none of the text matches, like an English word with
    `lang:ru`, is answered by the text index itself, which holds each post's language.)
    """
    conditions = _time_conditions(parsed)
    if parsed.sources:
        conditions.append(_POST.c.source_id.in_(source_ids))
    if parsed.languages:
        conditions.append(_POST.c.language.in_(parsed.languages))
    return session.execute(sa.select(_POST.c.id).where(*conditions).limit(1)).first() is not None


def search_posts_like(
    query: str | ParsedQuery, *, session: Session, now: datetime, limit: int = 10, offset: int = 0
) -> SearchPage:
    """The naive baseline for bench/search.py: substring LIKE scans with the same filters and order.

    Substring matching is not word matching, so its results may differ; it exists to be timed.
    """
    parsed = query if isinstance(query, ParsedQuery) else parse_query(query, now=now)
    _check_paging(limit, offset)
    conditions = _filter_conditions(parsed, _source_ids(parsed.sources, session))
    conditions += [sa.or_(*(_like(t) for t in c.terms)) for c in parsed.clauses]
    conditions += [sa.not_(_like(t)) for t in parsed.excluded]
    if session.get_bind().dialect.name == "sqlite":
        stmt = _ordered(sa.select(_POST.c.id).where(*conditions), "sqlite").limit(limit + 1).offset(offset)
        ids = list(session.scalars(stmt))
    else:
        ids = _postgres_newest(conditions, session, limit + 1, offset)
    return _page(parsed, ids, session, limit, offset, highlight=False)


def _check_paging(limit: int, offset: int) -> None:
    """Paging often comes from the user too (CLI --limit/--offset, the bot's "more" button)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"The page size (limit) must be between 1 and {MAX_LIMIT}, not {limit}.")
    if not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"The offset must be between 0 and {MAX_OFFSET}, not {offset}.")


def _ordered(stmt: sa.Select[Any], dialect: str) -> sa.Select[Any]:
    published = _POST.c.published_at.desc()
    # SQLite already sorts NULLs last in DESC order; PostgreSQL needs to be told (same order on both).
    return stmt.order_by(published if dialect == "sqlite" else published.nulls_last(), _POST.c.id.desc())


# -- filters --------------------------------------------------------------------------------------


def _filter_conditions(
    parsed: ParsedQuery, source_ids: list[int], *, per_row: bool = False
) -> list[sa.ColumnElement[bool]]:
    """The filters as SQL. `per_row` writes the frame test so PostgreSQL probes the index for each row
    instead of hashing every post with that frame first (right when only a few hundred rows are seen)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if parsed.sources:
        conditions.append(_POST.c.source_id.in_(source_ids))
    if parsed.languages:
        conditions.append(_POST.c.language.in_(parsed.languages))
    for frame in parsed.frames:
        tagged = sa.select(_FRAME.c.post_id).where(_FRAME.c.post_id == _POST.c.id, _FRAME.c.frame_id == frame)
        conditions.append(tagged.limit(1).scalar_subquery().is_not(None) if per_row else tagged.exists())
    return conditions + _time_conditions(parsed)


def _time_conditions(parsed: ParsedQuery) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if parsed.since is not None:
        conditions.append(_POST.c.published_at >= parsed.since)
    if parsed.until is not None:
        conditions.append(_POST.c.published_at < parsed.until)
    return conditions


def _source_ids(names: Sequence[str], session: Session) -> list[int]:
    """Exact names first; a name that differs only in case still finds its source."""
    if not names:
        return []
    stmt = sa.select(_SOURCE.c.name, _SOURCE.c.id).where(_SOURCE.c.name.in_(names))
    found: dict[str, int] = {name: id_ for name, id_ in session.execute(stmt)}
    missing = [name for name in names if name not in found]
    if missing:
        by_folded = {name.casefold(): id_ for name, id_ in session.execute(sa.select(_SOURCE.c.name, _SOURCE.c.id))}
        unknown = [name for name in missing if name.casefold() not in by_folded]
        if unknown:
            shown = ", ".join(repr(name) for name in unknown)
            raise QueryError(f"No source is named {shown}; check the name in the sources list.")
        found.update({name: by_folded[name.casefold()] for name in missing})
    return sorted(set(found.values()))


# -- SQLite: FTS5 ---------------------------------------------------------------------------------


def _fts5_string(term: Term) -> str:
    return '"' + term.text.replace('"', '""') + '"'


def _fts5_any(terms: Sequence[Term]) -> str:
    return "(" + " OR ".join(_fts5_string(t) for t in terms) + ")"


def _fts5_words(expression: str, terms: Sequence[Term]) -> str:
    """Restrict the words to title and text only when one could be a language token.

    The restriction is exact but not free (FTS5 then reads every match's positions: +10 ms for a common
    word at 1M posts), and only a word starting with the language marker could ever match that column.
    """
    if any(_folded(token).startswith(_LANGUAGE_TOKEN) for term in terms for token in term.tokens):
        return "{title text} : (" + expression + ")"
    return expression


def _folded(token: str) -> str:
    """At least as folded as FTS5's unicode61 tokenizer folds it (case, diacritics: "Fẃlang" too)."""
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _fts5_positive(clauses: Sequence[Clause]) -> str:
    return _fts5_words(" AND ".join(_fts5_any(c.terms) for c in clauses), [t for c in clauses for t in c.terms])


def _fts5_language(language: str) -> str:
    """The token migration 0004 indexes for a post's language: the marker and the code's UTF-8 in hex
    (SQLite's hex(lower(language))), one token whatever the code holds, so `lang:pt` is not `pt-br`."""
    return '"' + _LANGUAGE_TOKEN + language.lower().encode().hex() + '"'


def _fts5_expression(parsed: ParsedQuery, *, with_languages: bool) -> str:
    """The words and exclusions as one MATCH, and the `lang:` filter too if asked (the SQL filter on
    post.language still decides; the index folds case)."""
    words = " AND ".join(_fts5_any(c.terms) for c in parsed.clauses)
    if parsed.excluded:
        words += " NOT " + _fts5_any(parsed.excluded)
    expression = _fts5_words(words, [*(t for c in parsed.clauses for t in c.terms), *parsed.excluded])
    if with_languages and parsed.languages:
        expression += " AND language : (" + " OR ".join(_fts5_language(code) for code in parsed.languages) + ")"
    return expression


def _fts5_count(expression: str, cap: int, session: Session) -> int:
    """How many posts match, counting no further than `cap` (FTS5 alone, in C)."""
    capped = sa.select(_FTS.c.rowid).where(_fts5_match(expression)).limit(cap).subquery()
    return session.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()


def _fts5_match(expression: str) -> sa.ColumnElement[bool]:
    return _FTS_TABLE.op("MATCH", is_comparison=True)(sa.bindparam(None, expression, type_=sa.String))


def _sqlite_ids(
    parsed: ParsedQuery, conditions: list[sa.ColumnElement[bool]], session: Session, limit: int, offset: int
) -> list[int]:
    """Pick a plan from the match count, which FTS5 computes in C without touching the post table.

    "sort" looks every match up and sorts by date: best for rare terms. "set" collects the matching ids
    into a temporary set and walks the date index newest first until the page is full: best for most
    terms. "probe" walks the date index and asks FTS about each post: best for very common words, where
    building the set would cost more than the few dozen probes needed.
    """
    conditions = list(conditions)
    if not parsed.has_text:
        if parsed.excluded:
            conditions.append(sa.not_(_fts5_probe(_fts5_words(_fts5_any(parsed.excluded), parsed.excluded))))
    else:
        expression = _fts5_expression(parsed, with_languages=False)
        posts = session.execute(sa.select(sa.func.max(_POST.c.id))).scalar_one() or 0
        terms = sum(len(c.terms) for c in parsed.clauses) + len(parsed.excluded)
        probe_cost = _PROBE_COST if terms == 1 else _PROBE_COST_MULTI
        # Beyond this many matches, probing beats building the set (equal cost: set·M = probe·walk).
        cap = 1 + int(math.sqrt(probe_cost / _SET_COST * (offset + limit) * posts))
        in_language = _fts5_expression(parsed, with_languages=True)
        # With a `lang:` filter, first ask FTS5 whether the words and the language overlap at all: it
        # answers in under a millisecond when they do. Where they hardly do (an English word with
        # lang:ru), the SQL filter would drop every match of the words one by one, so FTS5 intersects
        # them instead. (Intersecting always would add ~10 ms to an ordinary `word lang:xx`.)
        overlap = _fts5_count(in_language, _LANGUAGE_PROBE, session) if parsed.languages else _LANGUAGE_PROBE
        if overlap < _LANGUAGE_PROBE:
            expression, matches = in_language, min(overlap, cap)
        else:
            matches = _fts5_count(expression, cap, session)
        if matches == 0:
            return []
        walk = (offset + limit) * posts / matches  # posts walked newest first until the page is full
        if matches >= cap and not (parsed.sources or parsed.languages or parsed.frames):
            plan = "probe"  # (a source/lang/frame filter may send SQLite down another index: many probes)
        else:
            plan = "sort" if _SORT_COST * matches <= _SET_COST * matches + _WALK_COST * walk else "set"
        candidates = sa.select(_FTS.c.rowid).where(_fts5_match(expression))
        if plan == "sort":
            conditions.append(_POST.c.id.in_(candidates))
        elif plan == "set":
            # The unary + keeps SQLite from using the id for lookups, so it walks the date index.
            conditions.append(sa.literal_column("+post.id").in_(candidates))
        else:
            conditions.append(_fts5_probe(expression))
    stmt = _ordered(sa.select(_POST.c.id).where(*conditions), "sqlite").limit(limit).offset(offset)
    return [row[0] for row in session.execute(stmt)]


def _fts5_probe(expression: str) -> sa.ColumnElement[bool]:
    """Does this post (the outer query's row) match? One rowid lookup in the FTS index."""
    return sa.exists().where(_fts5_match(expression), _FTS.c.rowid == _POST.c.id)


def _sqlite_snippets(parsed: ParsedQuery, ids: list[int], session: Session) -> dict[int, tuple[str, str]]:
    def snippet(column: int) -> sa.ColumnElement[str]:
        return sa.func.snippet(_FTS_TABLE, column, SNIPPET_START, SNIPPET_END, "…", SNIPPET_TOKENS)

    stmt = sa.select(_FTS.c.rowid, snippet(1), snippet(0)).where(
        _fts5_match(_fts5_positive(parsed.clauses)), _FTS.c.rowid.in_(ids)
    )
    return {rowid: (text, title) for rowid, text, title in session.execute(stmt)}


# -- PostgreSQL: tsvector -------------------------------------------------------------------------


def _tsquery_term(term: Term) -> sa.ColumnElement[Any]:
    """The term as PostgreSQL's parser reads it, or else as its plain words.

    The second reading matters where the parser keeps punctuation inside one lexeme ("example.com",
    "2023-05-01") while FTS5 splits it; offering both keeps the two backends' results alike.
    """
    to_query = sa.func.plainto_tsquery if len(term.tokens) == 1 else sa.func.phraseto_tsquery
    query = to_query(_SIMPLE, sa.bindparam(None, term.text, type_=sa.String))
    words = " ".join(term.tokens)
    if words != term.text.lower():
        query = sa.func.tsquery_or(query, to_query(_SIMPLE, sa.bindparam(None, words, type_=sa.String)))
    return query


def _tsquery_any(terms: Sequence[Term]) -> sa.ColumnElement[Any]:
    return functools.reduce(sa.func.tsquery_or, [_tsquery_term(t) for t in terms])


def _tsquery_positive(clauses: Sequence[Clause]) -> sa.ColumnElement[Any]:
    return functools.reduce(sa.func.tsquery_and, [_tsquery_any(c.terms) for c in clauses])


def _tsquery_languages(languages: Sequence[str]) -> sa.ColumnElement[Any]:
    """The 'lang:xx' lexemes that migration 0004 adds to search_vector, OR-ed.

    A quoted tsquery literal is taken as one lexeme as it stands (no parser splits it at the colon);
    the code is checked here too, not only by the query parser, because it is tsquery syntax.
    """
    queries = []
    for language in languages:
        if not _LANGUAGE_CODE_RE.fullmatch(language):
            raise QueryError(f"lang:{language} is not a language code; e.g. lang:en or lang:uk.")
        literal = sa.bindparam(None, f"'lang:{language}'", type_=sa.String)
        queries.append(sa.cast(literal, _TSQUERY))
    return functools.reduce(sa.func.tsquery_or, queries)


def _postgres_ids(parsed: ParsedQuery, source_ids: list[int], session: Session, limit: int, offset: int) -> list[int]:
    """Find the page by the route PostgreSQL's LIMIT planning would not reliably pick itself.

    1. Check only the newest ~1000 dated posts, stopping as soon as the page is full. Exact, not a
       guess: if they hold a full page of matches, no older post can belong on it. Common words end
       here. (Left alone, the planner walks the whole date index for a rare word.)
    2. Common text (PostgreSQL's estimate from its statistics) with a selective filter: the same walk,
       further back (unless the first walk already showed the estimate wrong, see _walk_far_pays).
    3. Otherwise let the GIN index fetch every match and sort them (NULLS LAST: undated posts last).
    """
    text: list[sa.ColumnElement[bool]] = []
    text_query = None
    if parsed.has_text:
        text_query = _tsquery_positive(parsed.clauses)
        if parsed.excluded:
            text_query = sa.func.tsquery_and(text_query, sa.func.tsquery_not(_tsquery_any(parsed.excluded)))
        if parsed.languages:  # the GIN index intersects them; the SQL filter on post.language still decides
            text_query = sa.func.tsquery_and(text_query, _tsquery_languages(parsed.languages))
        text.append(_matches_tsquery(text_query))
    elif parsed.excluded:
        text.append(sa.not_(_matches_tsquery(_tsquery_any(parsed.excluded))))
    conditions = _filter_conditions(parsed, source_ids) + text
    if text_query is None:
        return _postgres_newest(conditions, session, limit, offset)
    walked = _filter_conditions(parsed, source_ids, per_row=True) + text
    window = PG_WALK + PG_WALK_PER_ROW * (offset + limit)
    ids = _postgres_recent(parsed, walked, session, limit, offset, window)
    if len(ids) == limit:
        return ids
    estimate = _estimated_rows(sa.select(_POST.c.id).where(_matches_tsquery(text_query)), session)
    if estimate > PG_GIN_ROWS and _walk_far_pays(parsed, estimate, window, offset + limit, session):
        ids = _postgres_recent(parsed, walked, session, limit, offset, PG_WALK_FAR)
        if len(ids) == limit:
            return ids
    return _postgres_full_page(conditions, session, limit, offset)


def _walk_far_pays(parsed: ParsedQuery, estimate: float, window: int, wanted: int, session: Session) -> bool:
    """Whether the page is worth looking for further back on the date index.

    The estimate counts the words and languages (both in search_vector), not a source or frame filter:
    those are what a longer walk is for. Without them, a window that should have held the `wanted` rows
    several times over and did not means the estimate is wrong: the words and languages rarely meet
    (an English word with `lang:ru`), and the GIN index finds those few matches, or none, at once.
    """
    if parsed.sources or parsed.frames:
        return True
    posts = session.execute(sa.select(sa.func.max(_POST.c.id))).scalar_one() or 1
    return window * estimate / posts < PG_WINDOW_SURPLUS * wanted


def _postgres_recent(
    parsed: ParsedQuery, walked: list[sa.ColumnElement[bool]], session: Session, limit: int, offset: int, window: int
) -> list[int]:
    """The page among the newest `window` dated posts, walking the date index and stopping as soon as
    it is full (the conditions are computed per walked row, so the outer LIMIT ends the walk)."""
    recent = (
        sa.select(_POST.c.id, _POST.c.published_at, sa.and_(*walked).label("ok"))
        .where(_POST.c.published_at.is_not(None), *_time_conditions(parsed))
        .order_by(_POST.c.published_at.desc(), _POST.c.id.desc())  # DESC NULLS FIRST: the index order
        .limit(window)
        .subquery("recent")
    )
    stmt = sa.select(recent.c.id).where(recent.c.ok)
    stmt = stmt.order_by(recent.c.published_at.desc(), recent.c.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def _postgres_newest(conditions: list[sa.ColumnElement[bool]], session: Session, limit: int, offset: int) -> list[int]:
    """Dated posts in the date index's own order (DESC NULLS FIRST, so NULLs excluded), the planner
    free to walk it; only a page they cannot fill needs the NULLS LAST sort over everything."""
    stmt = sa.select(_POST.c.id).where(*conditions, _POST.c.published_at.is_not(None))
    stmt = stmt.order_by(_POST.c.published_at.desc(), _POST.c.id.desc())
    ids = list(session.scalars(stmt.limit(limit).offset(offset)))
    if len(ids) == limit:
        return ids
    return _postgres_full_page(conditions, session, limit, offset)


def _estimated_rows(stmt: sa.Select[Any], session: Session) -> float:
    """PostgreSQL's own row estimate (EXPLAIN; nothing runs). The SQL is ours, the values bound."""
    compiled = stmt.compile(dialect=session.get_bind().dialect)
    result = session.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
    plan = result.scalar_one()
    return float((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])


def _matches_tsquery(query: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return _SEARCH_VECTOR.op("@@", is_comparison=True)(query)


def _postgres_full_page(
    conditions: list[sa.ColumnElement[bool]], session: Session, limit: int, offset: int
) -> list[int]:
    stmt = _ordered(sa.select(_POST.c.id).where(*conditions), "postgresql").limit(limit).offset(offset)
    return list(session.scalars(stmt))


def _postgres_snippets(parsed: ParsedQuery, ids: list[int], session: Session) -> dict[int, tuple[str, str]]:
    query = _tsquery_positive(parsed.clauses)
    options = sa.bindparam(None, _HEADLINE_OPTIONS, type_=sa.String)
    stmt = sa.select(
        _POST.c.id,
        sa.func.ts_headline(_SIMPLE, _POST.c.text, query, options),
        sa.func.ts_headline(_SIMPLE, _POST.c.title, query, options),
    ).where(_POST.c.id.in_(ids))
    return {post_id: (text, title) for post_id, text, title in session.execute(stmt)}


# -- LIKE baseline --------------------------------------------------------------------------------


def _like(term: Term) -> sa.ColumnElement[bool]:
    pattern = "%" + term.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.or_(_POST.c.title.ilike(pattern, escape="\\"), _POST.c.text.ilike(pattern, escape="\\"))


# -- page assembly --------------------------------------------------------------------------------


def _page(
    parsed: ParsedQuery, ids: list[int], session: Session, limit: int, offset: int, *, highlight: bool
) -> SearchPage:
    has_more = len(ids) > limit
    ids = ids[:limit]
    snippets: dict[int, tuple[str, str]] = {}
    if ids and highlight and parsed.has_text:
        if session.get_bind().dialect.name == "sqlite":
            snippets = _sqlite_snippets(parsed, ids, session)
        else:
            snippets = _postgres_snippets(parsed, ids, session)
    frames = _frames(ids, session)
    url = sa.func.coalesce(_POST.c.canonical_url, _POST.c.url)
    columns = (_POST.c.id, _SOURCE.c.name, _POST.c.title, _POST.c.text, url, _POST.c.published_at, _POST.c.language)
    stmt = sa.select(*columns).join(_SOURCE, _SOURCE.c.id == _POST.c.source_id).where(_POST.c.id.in_(ids))
    rows = {row[0]: row for row in session.execute(stmt)}
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


def _frames(ids: list[int], session: Session) -> dict[int, tuple[str, ...]]:
    out: dict[int, tuple[str, ...]] = {}
    stmt = sa.select(_FRAME.c.post_id, _FRAME.c.frame_id).where(_FRAME.c.post_id.in_(ids))
    for post_id, frame_id in session.execute(stmt.order_by(_FRAME.c.score.desc(), _FRAME.c.frame_id)):
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
