"""SQLite search: FTS5 MATCH expressions and the choice of plan from FTS5's own match counts.

Each term becomes an FTS5 string ("…" with inner quotes doubled), so FTS5 operators in user text are
plain words; the whole MATCH expression is itself a bind parameter, and a `lang:` code enters it only
as hex digits.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session

from storage.query import Clause, ParsedQuery, Term
from storage.search_sql import POST, SNIPPET_END, SNIPPET_START, SNIPPET_TOKENS, driver_rows, max_post_id, ordered

# SQLite plan costs (µs per row), measured with bench/search.py on 1M posts; see sqlite_ids.
_SORT_COST = 1.5  # per match: fetch its post row and sort it
_SET_COST = 0.12  # per match: add its id to a temporary set
_WALK_COST = 0.45  # per post walked on the date index and checked against the set
_PROBE_COST = 35.0  # per post walked and looked up in FTS, for a one-term query
_PROBE_COST_MULTI = 400.0  # the same when several terms must be looked up
# Migration 0004 indexes each post's language in post_fts as this marker + hex code (see _fts5_language).
_LANGUAGE_TOKEN = "fwlang"
_LANGUAGE_PROBE = 200  # fewer text matches than this in the asked languages: let FTS5 intersect them

_FTS = sa.table("post_fts", sa.column("rowid", sa.Integer))
_FTS_TABLE = sa.literal_column("post_fts")


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


def _fts5_all(clauses: Sequence[Clause]) -> str:
    return " AND ".join(_fts5_any(c.terms) for c in clauses)


def _fts5_positive(clauses: Sequence[Clause]) -> str:
    return _fts5_words(_fts5_all(clauses), [t for c in clauses for t in c.terms])


def _fts5_language(language: str) -> str:
    """The token migration 0004 indexes for a post's language: the marker and the code's UTF-8 in hex
    (SQLite's hex(lower(language))), one token whatever the code holds, so `lang:pt` is not `pt-br`."""
    return '"' + _LANGUAGE_TOKEN + language.lower().encode().hex() + '"'


def _fts5_expression(parsed: ParsedQuery, *, with_languages: bool) -> str:
    """The words and exclusions as one MATCH, and the `lang:` filter too if asked (the SQL filter on
    post.language still decides; the index folds case)."""
    words = _fts5_all(parsed.clauses)
    if parsed.excluded:
        words += " NOT " + _fts5_any(parsed.excluded)
    expression = _fts5_words(words, [*(t for c in parsed.clauses for t in c.terms), *parsed.excluded])
    if with_languages and parsed.languages:
        expression += " AND language : (" + " OR ".join(_fts5_language(code) for code in parsed.languages) + ")"
    return expression


def _fts5_count(expression: str, cap: int, session: Session) -> int:
    """How many posts match, counting no further than `cap` (FTS5 alone, in C)."""
    sql = "SELECT count(*) FROM (SELECT rowid FROM post_fts WHERE post_fts MATCH ? LIMIT ?)"
    return int(driver_rows(session, sql, (expression, cap))[0][0])


def _fts5_match(expression: str) -> sa.ColumnElement[bool]:
    return _FTS_TABLE.op("MATCH", is_comparison=True)(sa.bindparam(None, expression, type_=sa.String))


def sqlite_ids(
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
        posts = max_post_id(session)
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
            conditions.append(POST.c.id.in_(candidates))
        elif plan == "set":
            # The unary + keeps SQLite from using the id for lookups, so it walks the date index.
            conditions.append(sa.literal_column("+post.id").in_(candidates))
        else:
            conditions.append(_fts5_probe(expression))
    stmt = ordered(sa.select(POST.c.id).where(*conditions), "sqlite").limit(limit).offset(offset)
    return [row[0] for row in session.execute(stmt)]


def _fts5_probe(expression: str) -> sa.ColumnElement[bool]:
    """Does this post (the outer query's row) match? One rowid lookup in the FTS index."""
    return sa.exists().where(_fts5_match(expression), _FTS.c.rowid == POST.c.id)


def sqlite_snippets(parsed: ParsedQuery, ids: list[int], session: Session) -> dict[int, tuple[str, str]]:
    marked = (SNIPPET_START, SNIPPET_END, "…", SNIPPET_TOKENS)
    sql = (
        "SELECT rowid, snippet(post_fts, 1, ?, ?, ?, ?), snippet(post_fts, 0, ?, ?, ?, ?) FROM post_fts "
        "WHERE post_fts MATCH ? AND rowid IN (?*)"
    )
    rows = driver_rows(session, sql, (*marked, *marked, _fts5_positive(parsed.clauses)), in_list=ids)
    return {rowid: (text, title) for rowid, text, title in rows}
