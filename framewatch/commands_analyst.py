"""Analyst answers from the command line (the console-mode twins of the bot's /frames and /post)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.markup import escape
from rich.table import Table

from framewatch.cli import app, fail, state
from framewatch.config import parse_duration
from storage.db import read_scope

PERIODS = ("24h", "7d", "30d")


@app.command()
def frames(
    ctx: typer.Context,
    period: str = typer.Argument("24h", help="24h, 7d or 30d"),
) -> None:
    """Each frame in the period: tagged posts, change vs the previous period, top sources."""
    from storage.stats import frame_summary

    if period not in PERIODS:
        fail(f"PERIOD: expected one of {', '.join(PERIODS)}, got {period!r}")
    st = state(ctx)
    with read_scope(st.engine()) as session:
        stats = frame_summary(session=session, now=datetime.now(UTC), period=parse_duration(period))
    if not stats:
        st.console.print(f"no tagged posts in the last {period}")
        return
    table = Table("frame", "posts", f"previous {period}", "change", "top sources")
    for s in stats:
        change = "new" if s.previous == 0 else f"{(s.count - s.previous) / s.previous:+.0%}"
        top = ", ".join(f"{escape(name)} ({n})" for name, n in s.top_sources)
        table.add_row(s.frame_id, str(s.count), str(s.previous), change, top)
    st.console.print(table)


@app.command("post")
def show_post(
    ctx: typer.Context,
    # max: the largest id either database stores (a bigger one reached the driver as an OverflowError)
    post_id: int = typer.Argument(..., min=1, max=2**63 - 1, help="Post id (shown by search)."),
) -> None:
    """A stored post in full, with its frames, scores and the n-grams that drove each tag."""
    from storage.models import Source
    from storage.posts import get_post, post_frames

    st = state(ctx)
    with read_scope(st.engine()) as session:
        post = get_post(post_id, session=session)
        if post is None:
            fail(f"POST_ID: no post with id {post_id}")
        source = session.get(Source, post.source_id)
        tags = post_frames(post_id, session=session)
    published = post.published_at.isoformat() if post.published_at else "unknown time"
    st.console.print(f"[bold]#{post.id}[/] {escape(source.name if source else '?')} · {published} · {post.language}")
    if post.title:
        st.console.print(f"[bold]{escape(post.title)}[/]")
    st.console.print(escape(post.text), highlight=False)
    if post.url:
        st.console.print(escape(post.url), highlight=False)
    if not tags:
        st.console.print("[dim]no frames[/]")
    for tag in tags:
        st.console.print(
            f"• {tag.frame_id} {tag.score:.2f} (model {escape(tag.model_version)}) ← {escape(', '.join(tag.evidence))}"
        )
