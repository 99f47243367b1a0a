"""the post's language inside the full-text index, so `word lang:xx` is one index lookup

Revision ID: 0004
Revises: 0003

Why: with the language only in a B-tree, an English word with `lang:ru` fetched every match of the word
and then dropped them all (92 ms on SQLite, 265 ms on PostgreSQL at 1M posts, bench/search.py). With the
language in the text index, the index intersects the two and finds nothing at once.

SQLite: post_fts gains a `language` column, read through the view post_fts_content. PostgreSQL:
search_vector gains one position-less lexeme 'lang:xx', which no word can produce, since the 'simple'
parser splits at the colon. Both rebuild the index: at 1M posts, 70 s on SQLite and 199 s on PostgreSQL
(which locks `post` meanwhile) on the 2-core benchmark machine.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


_DROP_FTS = [
    "DROP TRIGGER IF EXISTS post_fts_au",
    "DROP TRIGGER IF EXISTS post_fts_ad",
    "DROP TRIGGER IF EXISTS post_fts_ai",
    "DROP TABLE IF EXISTS post_fts",
    "DROP VIEW IF EXISTS post_fts_content",
]
_TOKENIZE = "tokenize='unicode61 remove_diacritics 2'"
# The language is indexed as one token that no word of a text can be: a marker and the code in hex
# ('ru' -> fwlang7275; storage/search_sqlite.py builds the same). The view gives FTS5 the same values when it
# rebuilds or reads content, the triggers when they write.
# The DDL is spelled out, not generated: a migration is a record of what ran.
SQLITE_UP = [
    *_DROP_FTS,
    "CREATE VIEW post_fts_content AS SELECT id, title, text, 'fwlang' || hex(lower(language)) AS language FROM post",
    "CREATE VIRTUAL TABLE post_fts USING fts5(title, text, language, content='post_fts_content', "
    f"content_rowid='id', {_TOKENIZE})",
    "CREATE TRIGGER post_fts_ai AFTER INSERT ON post BEGIN "
    "INSERT INTO post_fts(rowid, title, text, language) "
    "VALUES (new.id, new.title, new.text, 'fwlang' || hex(lower(new.language))); END",
    "CREATE TRIGGER post_fts_ad AFTER DELETE ON post BEGIN "
    "INSERT INTO post_fts(post_fts, rowid, title, text, language) "
    "VALUES ('delete', old.id, old.title, old.text, 'fwlang' || hex(lower(old.language))); END",
    "CREATE TRIGGER post_fts_au AFTER UPDATE OF title, text, language ON post BEGIN "
    "INSERT INTO post_fts(post_fts, rowid, title, text, language) "
    "VALUES ('delete', old.id, old.title, old.text, 'fwlang' || hex(lower(old.language))); "
    "INSERT INTO post_fts(rowid, title, text, language) "
    "VALUES (new.id, new.title, new.text, 'fwlang' || hex(lower(new.language))); END",
    "INSERT INTO post_fts(post_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [  # back to revision 0002's table
    *_DROP_FTS,
    f"CREATE VIRTUAL TABLE post_fts USING fts5(title, text, content='post', content_rowid='id', {_TOKENIZE})",
    "CREATE TRIGGER post_fts_ai AFTER INSERT ON post BEGIN "
    "INSERT INTO post_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER post_fts_ad AFTER DELETE ON post BEGIN "
    "INSERT INTO post_fts(post_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); END",
    "CREATE TRIGGER post_fts_au AFTER UPDATE OF title, text ON post BEGIN "
    "INSERT INTO post_fts(post_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); "
    "INSERT INTO post_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "INSERT INTO post_fts(post_fts) VALUES ('rebuild')",
]


_TEXT_VECTOR = (
    "setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(text, '')), 'B')"
)
# array_remove: a post without a language gets no lexeme (array_to_tsvector refuses NULLs).
_LANGUAGE_LEXEME = "array_to_tsvector(array_remove(ARRAY['lang:' || lower(language)], NULL))"


def _postgres_vector(expression: str) -> list[str]:
    """A generated column cannot change its expression before PostgreSQL 17: drop it and add it again."""
    return [
        "DROP INDEX IF EXISTS ix_post_search_vector",
        "ALTER TABLE post DROP COLUMN IF EXISTS search_vector",
        f"ALTER TABLE post ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({expression}) STORED",
        "CREATE INDEX ix_post_search_vector ON post USING GIN (search_vector)",
        # The rebuilt column has no statistics yet, and search plans by them (storage/search_postgres.py).
        "ANALYZE post",
    ]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_UP)
    else:
        _run(_postgres_vector(f"{_TEXT_VECTOR} || {_LANGUAGE_LEXEME}"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_DOWN)
    else:
        _run(_postgres_vector(_TEXT_VECTOR))
