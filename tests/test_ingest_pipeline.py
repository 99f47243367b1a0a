"""End to end through the CLI: local feeds and channel pages → `framewatch ingest --once` → database."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from typer.testing import CliRunner

from framewatch.localserver import LocalServer, Reply
from storage.models import Post, PostFrame, Source
from tests.httpserver import fixture_bytes

RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    from framewatch import commands  # noqa: F401
    from framewatch.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def _config(tmp_path: Path, db_url: str, models: Path, server: LocalServer, dead_port: int) -> Path:
    path = tmp_path / "framewatch.toml"
    path.write_text(
        f"""
[database]
url = "{db_url}"
[ingest]
telegram_web_base = "{server.url("/s/")}"
timeout = "5s"
backfill_pages = 3
disable_after_failures = 3
[classifier]
models_dir = "{models}"
[[sources]]
name = "wire"
kind = "rss"
url = "{server.url("/wire.xml")}"
[[sources]]
name = "digest"
kind = "rss"
url = "{server.url("/digest.atom")}"
[[sources]]
name = "vesti"
kind = "telegram"
channel = "vesti_kraya"
[[sources]]
name = "dead"
kind = "rss"
url = "http://127.0.0.1:{dead_port}/feed.xml"
[[sources]]
name = "private"
kind = "telegram"
channel = "no_preview_here"
""",
        encoding="utf-8",
    )
    return path


def _serve(server: LocalServer) -> None:
    server.route("/wire.xml", Reply(fixture_bytes("feeds", "wire.rss.xml"), content_type=RSS, etag='"w1"'))
    server.route(
        "/digest.atom",
        Reply(
            fixture_bytes("feeds", "digest.atom.xml"),
            content_type=ATOM,
            last_modified="Tue, 05 Mar 2024 10:00:00 GMT",
        ),
    )
    page1 = fixture_bytes("telegram", "vesti_kraya_1.html")
    server.route("/s/vesti_kraya", Reply(page1))
    before = _data_before(page1)
    server.route(f"/s/vesti_kraya?before={before}", Reply(fixture_bytes("telegram", "vesti_kraya_2.html")))
    server.route("/s/no_preview_here", Reply.redirect(server.url("/no_preview_here")))
    server.route("/no_preview_here", Reply(b"<html>join channel</html>"))


def _channel_post_count() -> int:
    from ingest.telegram_web import parse_channel_page

    pages = [fixture_bytes("telegram", f"vesti_kraya_{i}.html") for i in (1, 2)]
    ids = {p.external_id for page in pages for p in parse_channel_page(page, channel="vesti_kraya").posts}
    assert len(ids) > len(parse_channel_page(pages[0], channel="vesti_kraya").posts)
    return len(ids)


def _data_before(html: bytes) -> str:
    import re

    match = re.search(rb'tme_messages_more[^>]*data-before="(\d+)"', html)
    assert match, "fixture page 1 must link to page 2"
    return match.group(1).decode()


def test_ingest_once_end_to_end(
    tmp_path: Path,
    engine: sa.Engine,
    database_url: str,
    models_dir: Path,
    local_server: LocalServer,
    free_port: int,
) -> None:
    _serve(local_server)
    config = _config(tmp_path, database_url, models_dir, local_server, free_port)

    first = _invoke("--config", str(config), "ingest", "--once")
    assert first.exit_code == 1, first.output  # the dead source failed
    assert "dead" in first.output and "private" in first.output
    assert "no public web preview" in first.output

    with Session(engine) as session:
        posts = session.exec(select(Post)).all()
        by_source = {s.id: s.name for s in session.exec(select(Source))}
        counts: dict[str, int] = {}
        for p in posts:
            counts[by_source[p.source_id]] = counts.get(by_source[p.source_id], 0) + 1
        assert set(counts) == {"wire", "digest", "vesti"}
        assert all(n > 0 for n in counts.values())
        assert counts["vesti"] == _channel_post_count(), "both channel pages are read on the first poll"
        assert all(p.from_backfill for p in posts)
        assert all(p.classified_version for p in posts)
        assert session.exec(select(PostFrame)).first() is not None, "some fixture posts carry frames"
        private = session.exec(select(Source).where(Source.name == "private")).one()
        assert not private.enabled and "no public web preview" in (private.disabled_reason or "")
        dead = session.exec(select(Source).where(Source.name == "dead")).one()
        assert dead.enabled and dead.consecutive_failures == 1 and dead.last_error
    stored = len(posts)

    local_server.clear_log()
    second = _invoke(
        "--config",
        str(config),
        "ingest",
        "--once",
        "--source",
        "wire",
        "--source",
        "digest",
        "--source",
        "vesti",
    )
    assert second.exit_code == 0, second.output
    with Session(engine) as session:
        assert len(session.exec(select(Post)).all()) == stored
    wire_req = local_server.requests("/wire.xml")[-1]
    assert wire_req.headers.get("if-none-match") == '"w1"'
    digest_req = local_server.requests("/digest.atom")[-1]
    assert digest_req.headers.get("if-modified-since") == "Tue, 05 Mar 2024 10:00:00 GMT"
    assert "not_modified" in second.output


@pytest.fixture
def sqlite_config(
    tmp_path: Path,
    sqlite_engine: sa.Engine,
    models_dir: Path,
    local_server: LocalServer,
    free_port: int,
) -> Path:
    """The fixture sources served and a config for them on the test's SQLite database."""
    _serve(local_server)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    return _config(tmp_path, url, models_dir, local_server, free_port)


def test_edited_channel_post_updates_in_place(
    sqlite_config: Path, sqlite_engine: sa.Engine, local_server: LocalServer
) -> None:
    config = sqlite_config
    assert _invoke("--config", str(config), "ingest", "--once", "--source", "vesti").exit_code == 0
    page1 = fixture_bytes("telegram", "vesti_kraya_1.html").decode()
    import re

    texts = re.findall(r'<div class="tgme_widget_message_text[^"]*"[^>]*>(.*?)</div>', page1, flags=re.S)
    assert texts
    edited = page1.replace(texts[-1], texts[-1] + " UPDATE: corrected figures.", 1)
    local_server.route("/s/vesti_kraya", Reply(edited.encode()))
    result = _invoke("--config", str(config), "ingest", "--once", "--source", "vesti")
    assert result.exit_code == 0, result.output
    with Session(sqlite_engine) as session:
        changed = [p for p in session.exec(select(Post)).all() if p.edited_at is not None]
        assert len(changed) == 1 and changed[0].text.endswith("UPDATE: corrected figures.")
        assert changed[0].edited
        assert len(session.exec(select(Post)).all()) == _channel_post_count()


def test_ingest_once_reports_sources_another_process_is_polling(
    sqlite_config: Path, sqlite_engine: sa.Engine, local_server: LocalServer
) -> None:
    """A source leased by another worker (a running service, or one killed less than a lease ago) is
    left alone, and the table says so instead of leaving it out or calling it unknown."""
    from datetime import UTC, datetime, timedelta

    config = sqlite_config
    assert _invoke("--config", str(config), "ingest", "--once", "--source", "wire").exit_code == 0
    with Session(sqlite_engine) as session:
        wire = session.exec(select(Source).where(Source.name == "wire")).one()
        wire.lease_owner, wire.lease_expires_at = "ingest-elsewhere", datetime.now(UTC) + timedelta(minutes=5)
        session.add(wire)
        session.commit()
    local_server.clear_log()
    assert _invoke("--config", str(config), "sources", "disable", "vesti").exit_code == 0
    result = _invoke("--config", str(config), "ingest", "--once", "--source", "wire", "--source", "vesti")
    assert result.exit_code == 0, result.output
    assert "being polled by another process" in result.output
    assert "source is disabled" in result.output
    assert not local_server.requests(), "neither a leased nor a disabled source is fetched"


def test_sources_commands_know_the_config_sources_before_the_first_run(
    sqlite_config: Path, local_server: LocalServer
) -> None:
    """A source only the config file names used to be invisible to `sources list` and "no source named"
    to `sources disable` until `run` or `ingest` had stored it; now the commands store it first."""
    listed = _invoke("--config", str(sqlite_config), "sources", "list")
    assert listed.exit_code == 0, listed.output
    assert all(name in listed.output for name in ("wire", "digest", "vesti", "dead", "private"))
    assert _invoke("--config", str(sqlite_config), "sources", "disable", "vesti").exit_code == 0
    again = _invoke("--config", str(sqlite_config), "sources", "add", "telegram", "vesti_kraya", "--name", "vesti")
    assert again.exit_code == 2 and "already exists" in again.output
    polled = _invoke("--config", str(sqlite_config), "ingest", "--once", "--source", "vesti", "--source", "wire")
    assert "source is disabled" in polled.output, polled.output
    assert not local_server.requests("/s/vesti_kraya"), "the operator's disable survives the config sync"


def test_ingest_once_refuses_a_source_name_that_does_not_exist(
    sqlite_config: Path, sqlite_engine: sa.Engine, local_server: LocalServer
) -> None:
    """A typo in --source is bad input (exit 2, the name quoted), and nothing is polled: a cron job
    that asked for a misspelt source must not report success having polled the others."""
    result = _invoke("--config", str(sqlite_config), "ingest", "--once", "--source", "wire", "--source", "wrie")
    assert result.exit_code == 2, result.output
    assert "--source" in result.output and "'wrie'" in result.output and "wire" in result.output
    assert not local_server.requests(), "nothing is polled when one asked-for name is unknown"
    with Session(sqlite_engine) as session:
        assert not session.exec(select(Post)).all()


def test_ingest_once_tells_admins_when_it_disables_a_source(sqlite_config: Path, sqlite_engine: sa.Engine) -> None:
    """A cron-driven `ingest --once` that gives up on a source queues the same admin notice as the
    service: otherwise a source dies silently on deployments that poll from cron."""
    from storage.models import Outbox

    with sqlite_config.open("a", encoding="utf-8") as f:
        f.write("[telegram]\nadmins = [4242]\n")
    for _ in range(3):  # disable_after_failures = 3 in the fixture config
        assert _invoke("--config", str(sqlite_config), "ingest", "--once", "--source", "dead").exit_code == 1
    with Session(sqlite_engine) as session:
        dead = session.exec(select(Source).where(Source.name == "dead")).one()
        assert not dead.enabled and dead.disabled_reason
        notices = session.exec(select(Outbox).where(Outbox.kind == "admin")).all()
    assert [(n.chat_id, n.payload["text"]) for n in notices] == [
        (4242, f"source dead was disabled: {dead.disabled_reason}")
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("export", "--since", "[/x] [bold]"),
        ("search", "source:[/x] [bold]"),
        ("search", "since:[/x] [bold]"),
        ("ingest", "--once", "--source", "[/x] [bold]"),
    ],
)
def test_cli_errors_quote_user_text_literally(sqlite_config: Path, args: tuple[str, ...]) -> None:
    """Error messages quote what the user typed; Rich must not read it as markup (an unmatched closing
    tag used to end in a MarkupError traceback instead of exit 2)."""
    result = _invoke("--config", str(sqlite_config), *args)
    assert result.exit_code == 2, result.output
    assert "[/x]" in result.output and "Traceback" not in result.output


def test_search_offset_past_the_limit_names_the_option(sqlite_config: Path) -> None:
    """The library's offset bound used to be reported as a problem with QUERY."""
    result = _invoke("--config", str(sqlite_config), "search", "war", "--offset", "99999")
    assert result.exit_code == 2, result.output
    assert "--offset" in result.output and "QUERY" not in result.output


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_after_ingest(
    tmp_path: Path,
    sqlite_engine: sa.Engine,
    models_dir: Path,
    local_server: LocalServer,
    fmt: str,
    free_port: int,
) -> None:
    import csv
    import json

    _serve(local_server)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    config = _config(tmp_path, url, models_dir, local_server, free_port)
    _invoke("--config", str(config), "ingest", "--once", "--source", "wire")
    out = tmp_path / f"export.{fmt}"
    result = _invoke("--config", str(config), "export", "--format", fmt, "--output", str(out))
    assert result.exit_code == 0, result.output
    if fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    else:
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows
    for row in rows:
        assert {
            "source",
            "external_id",
            "url",
            "title",
            "text",
            "lang",
            "published_at",
            "views",
            "frames",
        } <= set(row)
        assert row["source"] == "wire"
        assert not row["published_at"] or row["published_at"].endswith("Z")
    for since in ("last tuesday", "99999999999999d"):  # the second overflowed timedelta: a traceback
        bad = _invoke("--config", str(config), "export", "--since", since)
        assert bad.exit_code == 2 and "--since" in bad.output
    unwritable = _invoke("--config", str(config), "export", "--output", str(config / "x.jsonl"))
    assert unwritable.exit_code == 2 and "--output" in unwritable.output and "Not a directory" in unwritable.output


def test_analyst_commands_from_the_cli(
    tmp_path: Path, sqlite_engine: sa.Engine, models_dir: Path, local_server: LocalServer, free_port: int
) -> None:
    _serve(local_server)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    config = _config(tmp_path, url, models_dir, local_server, free_port)
    _invoke("--config", str(config), "ingest", "--once", "--source", "wire", "--source", "vesti")
    with Session(sqlite_engine) as session:
        tagged = session.exec(select(PostFrame)).first()
        assert tagged is not None
        post = session.get(Post, tagged.post_id)
        assert post is not None
    shown = _invoke("--config", str(config), "post", str(tagged.post_id))
    assert shown.exit_code == 0 and tagged.frame_id in shown.output
    assert _invoke("--config", str(config), "post", "999999").exit_code == 2
    assert _invoke("--config", str(config), "post", str(2**70)).exit_code == 2  # was the driver's OverflowError
    assert _invoke("--config", str(config), "frames", "1y").exit_code == 2
    summary = _invoke("--config", str(config), "frames", "30d")
    assert summary.exit_code == 0
    found = _invoke("--config", str(config), "search", f"frame:{tagged.frame_id}")
    assert found.exit_code == 0 and f"#{tagged.post_id}" in found.output
    bad = _invoke("--config", str(config), "search", '"(unbalanced AND')
    assert bad.exit_code == 2 and "QUERY" in bad.output and "Traceback" not in bad.output


LOOKALIKES = "[/x] report: [bold]not bold[/bold], [bold yellow]not lit[/] and [link=http://e.x]no[/link]."


def test_cli_search_prints_stored_text_as_written(sqlite_config: Path, sqlite_engine: sa.Engine) -> None:
    """Stored posts come from the internet: a text with Rich-markup look-alikes prints as written, with
    only the matched word highlighted (it used to go through the markup parser)."""
    assert _invoke("--config", str(sqlite_config), "ingest", "--once", "--source", "wire").exit_code == 0
    with Session(sqlite_engine) as session:
        post = session.exec(select(Post)).first()
        assert post is not None
        post.text = f"Zyzzyva {LOOKALIKES}"
        session.add(post)
        session.commit()
    result = _invoke("--config", str(sqlite_config), "search", "zyzzyva")
    assert result.exit_code == 0, result.output
    assert LOOKALIKES in result.output


def test_demo_never_writes_into_an_existing_database(tmp_path: Path, sqlite_engine: sa.Engine) -> None:
    """`demo --keep` names where a *new* demo database goes: an existing file (someone's real database,
    say) is refused before anything is written, and an impossible path is bad input, not a traceback."""
    existing = Path(sqlite_engine.url.database or "")
    before = existing.read_bytes()
    refused = _invoke("demo", "--keep", str(existing))
    assert refused.exit_code == 2 and "--keep" in refused.output and "already exists" in refused.output
    assert existing.read_bytes() == before
    under_a_file = _invoke("demo", "--keep", str(existing / "demo.db"))
    assert under_a_file.exit_code == 2 and "--keep" in under_a_file.output
