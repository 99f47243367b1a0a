"""Ingest, storage and service commands. Each: parse → one service call → print."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from framewatch import commands_analyst, commands_model  # noqa: F401  (register their commands)
from framewatch.cli import app, fail, state
from framewatch.config import SourceSettings, parse_duration
from storage.db import read_scope, session_scope
from storage.search import MAX_OFFSET

sources_app = typer.Typer(help="List, add, enable and disable sources.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(db_app, name="db")


class Role(StrEnum):
    all = "all"
    ingest = "ingest"
    deliver = "deliver"
    bot = "bot"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def _now() -> datetime:
    return datetime.now(UTC)


def parse_since(value: str | None, now: datetime, *, option: str = "--since") -> datetime | None:
    """'7d' / '24h' (relative to now) or an ISO date/datetime (UTC if no zone)."""
    if value is None:
        return None
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: expected a duration like 7d or a date like 2023-05-01, got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database schema to the latest version."""
    from storage.migrate import current_revision

    engine = state(ctx).engine(migrate=True)
    state(ctx).console.print(f"database at revision {current_revision(engine)}")


@app.command()
def ingest(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Poll every enabled source once and exit."),
    source: list[str] = typer.Option([], "--source", "-s", help="Only this source (repeatable)."),
) -> None:
    """Poll sources once (--once) and print a per-source table; exit 1 if any source failed."""
    if not once:
        fail("use `framewatch ingest --once` for one pass, or `framewatch run --role ingest` to keep polling")
    from framewatch.runtime import ingest_once
    from storage.sources import SourceError

    st = state(ctx)
    try:
        reports = asyncio.run(ingest_once(st.settings, names=source, console=st.console))
    except SourceError as exc:
        fail(f"--source: {exc}")
    table = Table("source", "status", "new", "updated", "unchanged", "pages", "seconds", "error")
    for r in reports:
        table.add_row(
            r.source,
            r.status,
            str(r.new),
            str(r.updated),
            str(r.unchanged),
            str(r.pages),
            f"{r.seconds:.2f}",
            _esc(r.error or "") + (" (source disabled)" if r.disabled else ""),
        )
    st.console.print(table)
    raise typer.Exit(1 if any(r.status == "error" for r in reports) else 0)


@app.command()
def run(
    ctx: typer.Context,
    role: Role = typer.Option(Role.all, "--role", help="all | ingest | deliver | bot"),
) -> None:
    """Run the service: scheduler (ingest), alert delivery and the bot, on one event loop.

    Without a Telegram token it runs in console mode and prints alerts."""
    from telegram.error import InvalidToken

    from bot.app import BotStartError
    from framewatch.runtime import run_service

    st = state(ctx)
    if st.settings.telegram.token is None and role in (Role.bot, Role.deliver):
        # Console mode prints alerts as ingestion stores them, so only a process that ingests has any.
        fail(f"--role {role.value} needs telegram.token (or FRAMEWATCH_TELEGRAM_TOKEN); without one, run "
             "--role all (console mode: alerts are printed) or --role ingest")  # fmt: skip
    try:
        asyncio.run(run_service(st.settings, role=role.value, console=st.console))
    except InvalidToken:  # its message quotes the token: never print it
        fail("telegram.token: the Bot API refused this token (check telegram.token or FRAMEWATCH_TELEGRAM_TOKEN)")
    except BotStartError as exc:
        fail(str(exc))


@sources_app.command("list")
def sources_list(ctx: typer.Context) -> None:
    """Sources with their health: last success, failures, next poll, disabled reason."""
    from storage.sources import list_sources

    st = state(ctx)
    with read_scope(st.engine_with_sources()) as session:
        rows = list_sources(session=session)
        table = Table("name", "kind", "target", "enabled", "last success", "failures", "next poll", "problem")
        for s in rows:
            table.add_row(
                s.name,
                s.kind,
                _esc(s.url or f"@{s.channel}"),
                "yes" if s.enabled else "no",
                _when(s.last_success_at),
                str(s.consecutive_failures),
                _when(s.next_poll_at),
                _esc(s.disabled_reason or s.last_error or ""),
            )
    st.console.print(table)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@sources_app.command("add")
def sources_add(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="rss or telegram"),
    target: str = typer.Argument(..., help="feed URL (rss) or channel name (telegram)"),
    name: str | None = typer.Option(None, "--name", help="Source name (default: derived from target)."),
    interval: str | None = typer.Option(None, "--interval", help="Poll interval, e.g. 10m."),
    language: str | None = typer.Option(None, "--language", help="Two-letter language code."),
) -> None:
    """Add a source to the database (sources in the config file are added on start)."""
    from pydantic import ValidationError

    from framewatch.config import channel_name, format_validation_error
    from storage.sources import SourceError, add_source

    st = state(ctx)
    channel = channel_name(target)
    fields = {"kind": kind, "interval": interval, "language": language}
    if kind == "rss":
        fields |= {"url": target, "name": name or _name_from_url(target)}
    else:
        fields |= {"channel": channel, "name": name or channel}
    try:
        spec = SourceSettings(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        fail(format_validation_error(exc, "the command line"))
    with session_scope(st.engine_with_sources()) as session:
        try:
            add_source(spec, session=session, now=_now(), default_interval=st.settings.ingest.default_interval)
        except SourceError as exc:
            fail(str(exc))
    st.console.print(f"added {spec.kind} source [bold]{spec.name}[/]")


def _name_from_url(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or "feed"
    except ValueError:  # unsplittable: SourceSettings refuses the URL itself, with the reason
        host = "feed"
    return re.sub(r"[^\w\-]+", "-", host.removeprefix("www.")).strip("-") or "feed"


def _set_enabled(ctx: typer.Context, name: str, enabled: bool) -> None:
    from storage.sources import SourceError, set_source_enabled

    st = state(ctx)
    with session_scope(st.engine_with_sources()) as session:
        try:
            set_source_enabled(name, enabled, session=session, now=_now())
        except SourceError as exc:
            fail(f"NAME: {exc}")
    st.console.print(f"{'enabled' if enabled else 'disabled'} {name}")


@sources_app.command("enable")
def sources_enable(ctx: typer.Context, name: str = typer.Argument(..., help="Source name.")) -> None:
    """Enable a source (also clears an automatic disable and its failure count)."""
    _set_enabled(ctx, name, True)


@sources_app.command("disable")
def sources_disable(ctx: typer.Context, name: str = typer.Argument(..., help="Source name.")) -> None:
    """Stop polling a source; its posts stay stored."""
    _set_enabled(ctx, name, False)


@app.command()
def search(
    ctx: typer.Context,
    query: str = typer.Argument(
        ...,
        help='Words, "phrases", -exclude, OR, source: frame: lang: since: until: (a query that starts with - '
        "goes after --: framewatch search -- -moscow wagner)",
    ),
    limit: int = typer.Option(10, "--limit", "-n", min=1, max=200),
    offset: int = typer.Option(0, "--offset", min=0, max=MAX_OFFSET),
) -> None:
    """Full-text search over stored posts, newest first."""
    from storage.search import QueryError, search_posts

    st = state(ctx)
    with read_scope(st.engine()) as session:
        try:
            page = search_posts(query, session=session, now=_now(), limit=limit, offset=offset)
        except QueryError as exc:
            fail(f"QUERY: {exc}")
    if not page.hits:
        st.console.print("no posts match")
        return
    for hit in page.hits:
        frames = ", ".join(hit.frames) or "no frames"
        st.console.print(f"[bold]#{hit.post_id}[/] {_when(hit.published_at)} [cyan]{_esc(hit.source)}[/] ({frames})")
        st.console.print(f"  {_esc(hit.title)}" if hit.title else "", highlight=False)
        st.console.print(Text("  ").append_text(_snippet_text(hit.snippet)), highlight=False)
    if page.next_offset is not None:
        st.console.print(f"more: --offset {page.next_offset}")


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _snippet_text(snippet: str) -> Text:
    """The snippet's matched words in bold yellow, built as styled spans: stored text is never read as
    Rich markup, so a post containing "[/x]" or "[bold]" prints as written."""
    from storage.search import SNIPPET_END, SNIPPET_START

    out, style = Text(), ""
    for part in re.split(f"([{SNIPPET_START}{SNIPPET_END}])", snippet):
        if part in (SNIPPET_START, SNIPPET_END):
            style = "bold yellow" if part == SNIPPET_START else ""
        elif part:
            out.append(part, style=style)
    return out


@app.command()
def export(
    ctx: typer.Context,
    fmt: ExportFormat = typer.Option(ExportFormat.jsonl, "--format", "-f", help="jsonl or csv"),
    since: str | None = typer.Option(None, "--since", help="7d, 24h or a date (2023-05-01)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
) -> None:
    """Export stored posts, one per line, with their frames."""
    from storage.posts import iter_export

    st = state(ctx)
    since_at = parse_since(since, _now())
    try:
        out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    except OSError as exc:
        fail(f"--output: cannot write {output}: {exc.strerror or exc}")
    fields = [
        "source",
        "external_id",
        "url",
        "title",
        "text",
        "lang",
        "published_at",
        "views",
        "frames",
        "edited",
        "forwarded_from",
    ]
    try:
        writer = csv.DictWriter(out, fieldnames=fields) if fmt is ExportFormat.csv else None
        if writer:
            writer.writeheader()
        with read_scope(st.engine()) as session:
            for row in iter_export(session=session, since=since_at):
                record = {
                    "source": row.source,
                    "external_id": row.external_id,
                    "url": row.url,
                    "title": row.title,
                    "text": row.text,
                    "lang": row.lang,
                    "published_at": row.published_at.isoformat().replace("+00:00", "Z") if row.published_at else None,
                    "views": row.views,
                    "frames": row.frames,
                    "edited": row.edited,
                    "forwarded_from": row.forwarded_from,
                }
                if writer:
                    writer.writerow(record | {"frames": ",".join(row.frames)})
                else:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if output:
            out.close()


@app.command()
def reclassify(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="Only posts published since (7d, 2023-05-01)."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, max=10_000),
) -> None:
    """Re-tag stored posts with the active model (after `model use`, `rollback` or `train`)."""
    from framewatch.runtime import reclassify_posts

    st = state(ctx)
    count, version = reclassify_posts(
        st.settings, since=parse_since(since, _now()), batch_size=batch_size, console=st.console
    )
    st.console.print(f"re-tagged {count} posts with model {version}")


@app.command()
def demo(
    ctx: typer.Context,
    keep: Path | None = typer.Option(None, "--keep", help="Keep the demo database at this path."),
) -> None:
    """Offline tour: serve bundled sample feeds and channel pages locally, ingest and tag them, show results."""
    from framewatch.demo import run_demo

    if keep is not None:
        # The demo writes its sample sources and posts: never into a database someone already has.
        if keep.exists():
            fail(f"--keep: {keep} already exists; give a path for a new demo database")
        try:
            keep.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"--keep: cannot create {keep.parent}: {exc.strerror or exc}")
    run_demo(console=state(ctx).console, keep=keep)
