"""full-text index: FTS5 on SQLite, tsvector('simple') + GIN on PostgreSQL

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Triggers keep the external-content FTS table in step with `post` on every write path, including
# raw SQL and bulk inserts, which application-level syncing would miss.
SQLITE_UP = [
    "CREATE VIRTUAL TABLE post_fts USING fts5(title, text, content='post', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER post_fts_ai AFTER INSERT ON post BEGIN "
    "INSERT INTO post_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER post_fts_ad AFTER DELETE ON post BEGIN "
    "INSERT INTO post_fts(post_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); END",
    "CREATE TRIGGER post_fts_au AFTER UPDATE OF title, text ON post BEGIN "
    "INSERT INTO post_fts(post_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); "
    "INSERT INTO post_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "INSERT INTO post_fts(post_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS post_fts_au",
    "DROP TRIGGER IF EXISTS post_fts_ad",
    "DROP TRIGGER IF EXISTS post_fts_ai",
    "DROP TABLE IF EXISTS post_fts",
]
# 'simple' configuration: no English stemming, so Russian and Ukrainian words match as written.
POSTGRES_UP = [
    "ALTER TABLE post ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(text, '')), 'B')) STORED",
    "CREATE INDEX ix_post_search_vector ON post USING GIN (search_vector)",
]
POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_post_search_vector",
    "ALTER TABLE post DROP COLUMN IF EXISTS search_vector",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _run(SQLITE_UP if dialect == "sqlite" else POSTGRES_UP)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _run(SQLITE_DOWN if dialect == "sqlite" else POSTGRES_DOWN)
