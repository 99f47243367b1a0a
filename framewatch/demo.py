"""`framewatch demo`: the whole pipeline on bundled sample data, offline, in a throwaway database."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from framewatch.config import Settings
from framewatch.localserver import LocalServer, serve_demo_data
from framewatch.runtime import ingest_once
from framewatch.wiring import open_database
from ingest.pipeline import PollReport
from storage.db import read_scope


def run_demo(*, console: Console, keep: Path | None = None, models_dir: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="framewatch-demo-") as tmp, LocalServer() as server:
        db_path = keep or Path(tmp) / "demo.db"
        sources = serve_demo_data(server)
        settings = Settings(
            database={"url": f"sqlite:///{db_path}"},
            ingest={"telegram_web_base": server.url("/s/"), "timeout": "10s", "backfill_pages": 3},
            sources=sources,
            classifier={"models_dir": models_dir or Path("models")},
        )
        console.rule("[bold]framewatch demo")
        console.print(f"local server {server.base_url} serving {len(sources)} sample sources; database {db_path}")
        console.print("first pass (first poll backfills each channel):")
        _print_reports(console, asyncio.run(ingest_once(settings, console=console)))
        console.print("second pass (conditional requests; nothing should be new):")
        _print_reports(console, asyncio.run(ingest_once(settings)))
        _print_posts(console, settings)
        _print_search(console, settings)


def _print_reports(console: Console, reports: list[PollReport]) -> None:
    table = Table("source", "status", "new", "updated", "unchanged", "pages", "error")
    for r in reports:
        table.add_row(r.source, r.status, str(r.new), str(r.updated), str(r.unchanged), str(r.pages), r.error or "")
    console.print(table)


def _print_posts(console: Console, settings: Settings) -> None:
    from sqlmodel import col, select

    from storage.models import Post, PostFrame, Source

    engine = open_database(settings, migrate=False)
    with read_scope(engine) as session:
        rows = session.exec(select(Post, Source.name).join(Source).order_by(col(Post.published_at).desc())).all()
        tags: dict[int, list[PostFrame]] = {}
        for tag in session.exec(select(PostFrame).order_by(col(PostFrame.score).desc())):
            tags.setdefault(tag.post_id, []).append(tag)
    table = Table("source", "published", "lang", "title / text", "frames (score) ← evidence", show_lines=True)
    for post, source in rows:
        assert post.id is not None
        frames = "\n".join(f"{t.frame_id} ({t.score:.2f}) ← {', '.join(t.evidence[:3])}" for t in tags.get(post.id, []))
        body = (post.title or post.text).replace("\n", " ")
        table.add_row(
            source,
            post.published_at.strftime("%m-%d %H:%M") if post.published_at else "-",
            post.language or "?",
            escape(body[:110] + ("…" if len(body) > 110 else "")),
            escape(frames) if frames else "[dim]none[/]",
        )
    console.print(table)
    tagged = sum(1 for p, _ in rows if p.id in tags)
    console.print(f"stored {len(rows)} posts from {len({s for _, s in rows})} sources; {tagged} carry a frame")
    engine.dispose()


def _print_search(console: Console, settings: Settings) -> None:
    from storage.search import search_posts

    engine = open_database(settings, migrate=False)
    query = "Минобороны OR hospital OR лікарні"
    with read_scope(engine) as session:
        page = search_posts(query, session=session, now=datetime.now(UTC) + timedelta(days=1), limit=5)
    console.print(f"search [bold]{query}[/]: {len(page.hits)} hits")
    for hit in page.hits:
        console.print(
            f"  #{hit.post_id} {hit.source}: " + hit.snippet.replace("\x02", "»").replace("\x03", "«"),
            highlight=False,
            markup=False,
        )
    engine.dispose()
