"""SQL pieces the search backends share: the tables, the result order and the filters as conditions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import Post, PostFrame, Source
from storage.query import ParsedQuery

SNIPPET_START = "\x02"
SNIPPET_END = "\x03"
SNIPPET_TOKENS = 24

POST: sa.Table = Post.__table__  # type: ignore[attr-defined]
FRAME: sa.Table = PostFrame.__table__  # type: ignore[attr-defined]
SOURCE: sa.Table = Source.__table__  # type: ignore[attr-defined]


def driver_rows(
    session: Session, sql: str, params: Sequence[object] = (), *, in_list: Sequence[object] = ()
) -> list[tuple[Any, ...]]:
    """Rows of a statement whose shape never changes, sent to the DB-API cursor as written.

    SQLAlchemy spends about 0.2 ms building, caching and running a Core statement (2026-12-03, SQLite,
    1M posts): more than SQLite needs for most of a search's statements, so the fixed ones skip it.
    `?` marks a parameter and `(?*)` the IN list `in_list`, which must come last (its values follow
    `params`); marks are translated, and a literal `%` escaped, for drivers that use `%s`. Values are
    always bound, never spliced into the SQL, and results come back as the driver returns them (no type
    processing).
    """
    if "(?*)" in sql:
        head, tail = sql.split("(?*)", 1)
        if not in_list or "?" in tail:
            raise ValueError("the IN list must be non-empty and the statement's last parameter")
        sql = head + "(" + ", ".join("?" * len(in_list)) + ")" + tail
        params = (*params, *in_list)
    connection = session.connection()
    if connection.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("%", "%%").replace("?", "%s")
    return [tuple(row) for row in connection.exec_driver_sql(sql, tuple(params))]


def max_post_id(session: Session) -> int:
    """The highest post id: the archive's size as both search plans estimate it (0 when empty)."""
    return int(driver_rows(session, "SELECT max(id) FROM post")[0][0] or 0)


def ordered(stmt: sa.Select[Any], dialect: str) -> sa.Select[Any]:
    published = POST.c.published_at.desc()
    # SQLite already sorts NULLs last in DESC order; PostgreSQL needs to be told (same order on both).
    return stmt.order_by(published if dialect == "sqlite" else published.nulls_last(), POST.c.id.desc())


def filter_conditions(
    parsed: ParsedQuery, source_ids: list[int], *, per_row: bool = False
) -> list[sa.ColumnElement[bool]]:
    """The filters as SQL. `per_row` writes the frame test so PostgreSQL probes the index for each row
    instead of hashing every post with that frame first (right when only a few hundred rows are seen)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if parsed.sources:
        conditions.append(POST.c.source_id.in_(source_ids))
    if parsed.languages:
        conditions.append(POST.c.language.in_(parsed.languages))
    for frame in parsed.frames:
        tagged = sa.select(FRAME.c.post_id).where(FRAME.c.post_id == POST.c.id, FRAME.c.frame_id == frame)
        conditions.append(tagged.limit(1).scalar_subquery().is_not(None) if per_row else tagged.exists())
    return conditions + time_conditions(parsed)


def time_conditions(parsed: ParsedQuery) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if parsed.since is not None:
        conditions.append(POST.c.published_at >= parsed.since)
    if parsed.until is not None:
        conditions.append(POST.c.published_at < parsed.until)
    return conditions
