"""Console mode (no bot token): newly tagged posts are printed as alerts instead of sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape
from sqlmodel import col, select

from ingest.pipeline import PollReport
from storage.db import read_scope
from storage.models import Post, PostFrame


def console_alert_printer(
    engine: sa.Engine, console: Console, *, max_age: timedelta, clock: Callable[[], datetime]
) -> Callable[[PollReport], None]:
    """Same rules as Telegram alerts: only tagged posts, never backfill, never older than max_age."""

    def print_new(report: PollReport) -> None:
        cutoff = clock() - max_age
        with read_scope(engine) as session:  # a read: it must not take SQLite's write lock
            posts = session.exec(
                select(Post).where(col(Post.id).in_(report.new_post_ids), col(Post.from_backfill).is_(False))
            ).all()
            tags: dict[int, list[PostFrame]] = {}
            for tag in session.exec(
                select(PostFrame)
                .where(col(PostFrame.post_id).in_(report.new_post_ids))
                .order_by(col(PostFrame.score).desc())
            ):
                tags.setdefault(tag.post_id, []).append(tag)
        for post in posts:
            if post.id not in tags or (post.published_at and post.published_at < cutoff):
                continue
            frames = ", ".join(f"{t.frame_id} {t.score:.2f}" for t in tags[post.id])
            evidence = ", ".join(dict.fromkeys(e for t in tags[post.id] for e in t.evidence[:3]))
            console.rule(f"[bold]alert[/] {escape(report.source)} · {escape(frames)}")
            console.print(escape((post.title + "\n" if post.title else "") + post.text[:600]), highlight=False)
            console.print(f"[dim]evidence: {escape(evidence)}  {escape(post.url or '')}[/]", highlight=False)

    return print_new
