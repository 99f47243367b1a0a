"""PostgreSQL search: tsquery built in SQL from bound terms, and a page found without trusting LIMIT plans.

Each term goes through plainto_tsquery/phraseto_tsquery and the pieces are combined with
tsquery_and/tsquery_or/tsquery_not (the functions behind &&, || and !!); a `lang:` code enters only as
a checked 'lang:xx' lexeme.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from storage.query import Clause, ParsedQuery, QueryError, Term
from storage.search_sql import (
    POST,
    SNIPPET_END,
    SNIPPET_START,
    SNIPPET_TOKENS,
    filter_conditions,
    max_post_id,
    ordered,
    time_conditions,
)

# PostgreSQL (see postgres_ids): newest posts checked first, and the estimated number of text matches
# up to which fetching them all through the GIN index beats walking the date index.
PG_WALK = 1000
PG_WALK_PER_ROW = 20
PG_WALK_FAR = 30_000
PG_GIN_ROWS = 20_000
PG_WINDOW_SURPLUS = 3  # pages' worth of matches the first window should have held by the estimate
PG_DIRECT_SURPLUS = 1  # a lone word the first window should hold fewer pages of skips the walk

_SEARCH_VECTOR = sa.literal_column("post.search_vector")
_SIMPLE = sa.literal_column("'simple'::regconfig")
_TSQUERY = postgresql.TSQUERY()
_LANGUAGE_CODE_RE = re.compile(r"[a-z0-9-]{1,16}")
_HEADLINE_OPTIONS = (
    f"StartSel={SNIPPET_START}, StopSel={SNIPPET_END}, MaxWords={SNIPPET_TOKENS}, "
    f"MinWords={SNIPPET_TOKENS // 2}, ShortWord=0, MaxFragments=1, FragmentDelimiter=…"
)


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


def postgres_ids(parsed: ParsedQuery, source_ids: list[int], session: Session, limit: int, offset: int) -> list[int]:
    """Find the page by the route PostgreSQL's LIMIT planning would not reliably pick itself.

    0. A lone word PostgreSQL's statistics call rare (see _is_one_word): straight to step 3.
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
    conditions = filter_conditions(parsed, source_ids) + text
    if text_query is None:
        return postgres_newest(conditions, session, limit, offset)
    walked = filter_conditions(parsed, source_ids, per_row=True) + text
    window = PG_WALK + PG_WALK_PER_ROW * (offset + limit)
    matching = sa.select(POST.c.id).where(_matches_tsquery(text_query))
    estimate = _estimated_rows(matching, session) if _is_one_word(parsed) else None
    if estimate is not None and _walk_is_wasted(estimate, window, offset + limit, session):
        return _postgres_full_page(conditions, session, limit, offset)
    ids = _postgres_recent(parsed, walked, session, limit, offset, window)
    if len(ids) == limit:
        return ids
    if estimate is None:
        estimate = _estimated_rows(matching, session)
    if estimate > PG_GIN_ROWS and _walk_far_pays(parsed, estimate, window, offset + limit, session):
        ids = _postgres_recent(parsed, walked, session, limit, offset, PG_WALK_FAR)
        if len(ids) == limit:
            return ids
    return _postgres_full_page(conditions, session, limit, offset)


def _is_one_word(parsed: ParsedQuery) -> bool:
    """Whether PostgreSQL's estimate can be trusted to say a walk would be wasted.

    For one word it comes from the column's statistics of common lexemes, and a word missing from them
    is rarer than every word they hold; for several words, a phrase or an added `lang:` lexeme it
    multiplies frequencies as if independent, and bench/search.py saw it 4× and 25× too low there.
    """
    if parsed.excluded or parsed.languages or len(parsed.clauses) != 1:
        return False
    terms = parsed.clauses[0].terms
    return len(terms) == 1 and len(terms[0].tokens) == 1


def _walk_is_wasted(estimate: float, window: int, wanted: int, session: Session) -> bool:
    """Whether the first window would, by the estimate, hold less than a page: then skip it.

    At 1M posts a walk that finds too little costs ~3 ms before the GIN page is fetched anyway.
    """
    return estimate <= PG_GIN_ROWS and window * estimate / max(max_post_id(session), 1) < PG_DIRECT_SURPLUS * wanted


def _walk_far_pays(parsed: ParsedQuery, estimate: float, window: int, wanted: int, session: Session) -> bool:
    """Whether the page is worth looking for further back on the date index.

    The estimate counts the words and languages (both in search_vector), not a source or frame filter:
    those are what a longer walk is for. Without them, a window that should have held the `wanted` rows
    several times over and did not means the estimate is wrong: the words and languages rarely meet
    (an English word with `lang:ru`), and the GIN index finds those few matches, or none, at once.
    """
    if parsed.sources or parsed.frames:
        return True
    return window * estimate / max(max_post_id(session), 1) < PG_WINDOW_SURPLUS * wanted


def _postgres_recent(
    parsed: ParsedQuery, walked: list[sa.ColumnElement[bool]], session: Session, limit: int, offset: int, window: int
) -> list[int]:
    """The page among the newest `window` dated posts, walking the date index and stopping as soon as
    it is full (the conditions are computed per walked row, so the outer LIMIT ends the walk)."""
    recent = (
        sa.select(POST.c.id, POST.c.published_at, sa.and_(*walked).label("ok"))
        .where(POST.c.published_at.is_not(None), *time_conditions(parsed))
        .order_by(POST.c.published_at.desc(), POST.c.id.desc())  # DESC NULLS FIRST: the index order
        .limit(window)
        .subquery("recent")
    )
    stmt = sa.select(recent.c.id).where(recent.c.ok)
    stmt = stmt.order_by(recent.c.published_at.desc(), recent.c.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def postgres_newest(conditions: list[sa.ColumnElement[bool]], session: Session, limit: int, offset: int) -> list[int]:
    """Dated posts in the date index's own order (DESC NULLS FIRST, so NULLs excluded), the planner
    free to walk it; only a page they cannot fill needs the NULLS LAST sort over everything."""
    stmt = sa.select(POST.c.id).where(*conditions, POST.c.published_at.is_not(None))
    stmt = stmt.order_by(POST.c.published_at.desc(), POST.c.id.desc())
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
    stmt = ordered(sa.select(POST.c.id).where(*conditions), "postgresql").limit(limit).offset(offset)
    return list(session.scalars(stmt))


def postgres_snippets(parsed: ParsedQuery, ids: list[int], session: Session) -> dict[int, tuple[str, str]]:
    query = _tsquery_positive(parsed.clauses)
    options = sa.bindparam(None, _HEADLINE_OPTIONS, type_=sa.String)
    stmt = sa.select(
        POST.c.id,
        sa.func.ts_headline(_SIMPLE, POST.c.text, query, options),
        sa.func.ts_headline(_SIMPLE, POST.c.title, query, options),
    ).where(POST.c.id.in_(ids))
    return {post_id: (text, title) for post_id, text, title in session.execute(stmt)}
