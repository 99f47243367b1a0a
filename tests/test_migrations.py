"""Migrations and models agree, on both backends, and upgrade/downgrade round-trips."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from storage.migrate import alembic_config, current_revision, upgrade


def _include(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    if type_ == "table" and name and (name.startswith("post_fts") or name == "alembic_version"):
        return False
    if type_ == "index" and name == "ix_post_search_vector":
        return False
    return not (type_ == "column" and name == "search_vector")


def test_models_match_migrations(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _include, "compare_type": False})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_downgrade_to_base_and_back(engine: sa.Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert current_revision(engine) is None
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM post")).scalar() == 0


def test_language_index_migration_keeps_and_indexes_existing_posts(engine: sa.Engine) -> None:
    """0004 rebuilds the text index with each post's language: posts stored before it stay searchable,
    and `word lang:xx` finds them through the new index; downgrading keeps word search working."""
    from datetime import UTC, datetime

    from storage.db import session_scope
    from storage.models import Post, Source
    from storage.search import search_posts

    now = datetime(2024, 1, 2, tzinfo=UTC)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    with session_scope(engine) as session:  # the models' tables are the same at 0003
        source = Source(name="s", kind="rss")
        session.add(source)
        session.flush()
        texts = [("ru", "мобилизация в регионе"), ("en", "mobilisation news"), (None, "mobilisation, no language")]
        for n, (language, text) in enumerate(texts):
            at = datetime(2024, 1, 1, n, tzinfo=UTC)
            session.add(Post(source_id=source.id, external_id=f"p{n}", text=text, language=language,
                             published_at=at, fetched_at=at))  # fmt: skip
    upgrade(engine)

    def hits(query: str) -> list[str]:
        with session_scope(engine) as session:
            return [h.snippet for h in search_posts(query, session=session, now=now).hits]

    assert len(hits("mobilisation")) == 2
    assert hits("mobilisation lang:en") == ["\x02mobilisation\x03 news"]
    assert hits("мобилизация lang:ru") == ["\x02мобилизация\x03 в регионе"]
    assert hits("mobilisation lang:ru") == []
    assert hits("ru OR en") == []  # the language is indexed, but not as a word
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM post")).scalar() == 3
    assert len(hits("mobilisation")) == 2  # the downgrade rebuilt revision 0002's index
    upgrade(engine)
