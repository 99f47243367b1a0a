"""How the bot runs: run_bot_until (what `framewatch run` awaits), token redaction, errors, console mode."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.alerts import enqueue_alerts
from bot.app import build_application, deliver_to_console, run_bot, run_bot_until
from framewatch.logs import RedactingFilter, setup_logging
from storage.models import Outbox, utcnow
from tests.cli import run_framewatch
from tests.fakebotapi import FakeBotAPI
from tests.test_bot_support import (
    ADMIN,
    TOKEN,
    USER,
    add_post,
    add_source,
    add_subscriber,
    ask,
    db,
    make_settings,
    running_bot,
    taxonomy,
    visible,
)

# A token that does not even look like one, so only the registered secret can hide it.
ODD_TOKEN = "odd-token_WITHOUT.the-usual-shape"
TOKEN_ENV = {"FRAMEWATCH_TELEGRAM_TOKEN": ODD_TOKEN}


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """The product's own logging setup (root handler with the redacting filter) writing into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = [h for h in root.handlers if not any(isinstance(f, RedactingFilter) for f in h.filters)]
    setup_logging("DEBUG")
    ours = [h for h in root.handlers if any(isinstance(f, RedactingFilter) for f in h.filters)]
    buffer = io.StringIO()
    for handler in ours:
        handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(logging.WARNING)


async def test_token_never_reaches_the_logs(engine: sa.Engine, captured_log: io.StringIO) -> None:
    async with FakeBotAPI(ODD_TOKEN) as fake, running_bot(engine, fake, token=ODD_TOKEN):
        fake.add_fault("5xx", method="sendMessage", chat_id=USER)
        await ask(fake, ADMIN, "/help")
        fake.push_text(USER, "/help")  # its reply fails: the error handler logs the exception
        await fake.wait_for(lambda: any(c.status == 500 for c in fake.calls), 10)
        await asyncio.sleep(0.3)
    text = captured_log.getvalue()
    assert "HTTP Request: POST http://127.0.0.1" in text and "[REDACTED]" in text  # URLs were logged...
    assert "error while handling an update" in text and "Internal Server Error" in text
    assert ODD_TOKEN not in text  # ...without the token


async def test_run_bot_until_serves_until_stopped(engine: sa.Engine) -> None:
    async with FakeBotAPI(ODD_TOKEN) as fake:
        settings = make_settings(fake, token=ODD_TOKEN)
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot_until(settings, engine=engine, stop=stop))
        assert "Hello!" in visible(await ask(fake, USER, "/start", timeout=30))
        stop.set()
        await asyncio.wait_for(task, 30)
        assert not fake.violations
    assert [c.method for c in fake.calls][:1] == ["getMe"]


async def test_an_alert_reaches_the_subscriber_within_a_poll(engine: sa.Engine) -> None:
    """The "done when": /start, /subscribe military_rift, a matching post appears → the alert arrives."""
    async with FakeBotAPI(ODD_TOKEN) as fake, running_bot(engine, fake, token=ODD_TOKEN):
        await ask(fake, USER, "/start")
        await ask(fake, USER, "/subscribe military_rift")
        with db(engine) as session:  # what the ingest pipeline's hook does after tagging a new post
            post = add_post(session, add_source(session, "wire"), published_at=utcnow())
            enqueue_alerts([post.id or 0], session=session, now=utcnow(), settings=make_settings())
        (_, _, alert) = await fake.wait_sent(USER, 3)
        assert visible(str(alert.params["text"])).startswith("🔔 Military rift (Wagner vs MoD) 0.90")


def test_token_redaction_is_linear_and_still_catches_tokens_beside_digits() -> None:
    """The redaction pattern tried `\\d{5,}` from inside every run of digits (quadratic: 1.4 s for 20,000
    digits in one log line); it now starts only where a run starts, and redacts the same tokens."""
    import time

    from framewatch.logs import redact

    started = time.perf_counter()
    assert redact("1" * 250_000) == "1" * 250_000
    assert time.perf_counter() - started < 2  # generous: linear takes milliseconds
    assert TOKEN not in redact(f"GET /bot{TOKEN}/getMe and 42{TOKEN}")


def test_build_application_needs_a_token(engine: sa.Engine) -> None:
    settings = make_settings()
    settings.telegram.token = None
    with pytest.raises(ValueError, match="console mode"):
        build_application(settings, engine=engine)


def test_console_mode_prints_and_marks_sent(engine: sa.Engine) -> None:
    settings = make_settings()
    with db(engine) as session:
        add_subscriber(session, USER)
        post = add_post(session, add_source(session, "wire<x>"), title="A & B", published_at=utcnow())
        enqueue_alerts([post.id or 0], session=session, now=utcnow(), settings=settings)
    out = io.StringIO()
    assert deliver_to_console(engine=engine, settings=settings, taxonomy=taxonomy(), now=utcnow(), out=out) == 1
    assert deliver_to_console(engine=engine, settings=settings, taxonomy=taxonomy(), now=utcnow(), out=out) == 0
    text = out.getvalue()
    assert "wire<x>" in text and "A & B" in text and "&amp;" not in text and "<b>" not in text
    with db(engine) as session:
        (row,) = session.exec(select(Outbox)).all()
    assert row.status == "sent"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_mode_checks_the_secret(engine: sa.Engine) -> None:
    pytest.importorskip("tornado", reason="webhook mode needs python-telegram-bot[webhooks]")
    import httpx

    port = _free_port()
    async with FakeBotAPI(ODD_TOKEN) as fake:
        settings = make_settings(
            fake,
            token=ODD_TOKEN,
            mode="webhook",
            webhook_listen="127.0.0.1",
            webhook_port=port,
            webhook_url=f"http://127.0.0.1:{port}/hook",
            webhook_secret="s3cret-value",
        )
        app = build_application(settings, engine=engine)
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(app, settings, stop=stop))
        await fake.wait_for(lambda: fake.webhook_url, 30)
        update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": fake.chat(USER),
                  "from": fake.user(USER), "text": "/start",
                  "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}  # fmt: skip
        async with httpx.AsyncClient() as client:
            bad = await client.post(f"http://127.0.0.1:{port}/hook", json=update)
            good = await client.post(
                f"http://127.0.0.1:{port}/hook",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-value"},
            )
        assert bad.status_code == 403 and good.status_code == 200
        await fake.wait_sent(USER)
        stop.set()
        await asyncio.wait_for(task, 30)
    assert fake.calls_to("setWebhook")[0].params["secret_token"] == "s3cret-value"


async def test_ingest_in_the_same_process_wakes_delivery_at_once(engine: sa.Engine) -> None:
    """An alert queued by this process's ingestion goes out now, not at the next outbox poll (here 60 s
    away), which is what keeps end-to-end latency within poll interval + 2 s."""
    async with FakeBotAPI(ODD_TOKEN) as fake:
        settings = make_settings(fake, token=ODD_TOKEN)
        app = build_application(settings, engine=engine, delivery_interval=60.0)
        stop, outbox_changed = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run_bot(app, settings, stop=stop, outbox_changed=outbox_changed))
        try:
            await ask(fake, USER, "/start", timeout=30)
            await ask(fake, USER, "/subscribe military_rift")
            await asyncio.sleep(0.5)  # the first drain (0.2 s after start) is over; the next is 60 s away
            with db(engine) as session:
                post = add_post(session, add_source(session, "wire"), published_at=utcnow())
                enqueue_alerts([post.id or 0], session=session, now=utcnow(), settings=make_settings())
            outbox_changed.set()  # what Ingestor.on_committed does in `framewatch run`
            (_, _, alert) = await fake.wait_sent(USER, 3, timeout=10)
            assert visible(str(alert.params["text"])).startswith("🔔 Military rift")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_bot_keeps_trying_while_the_bot_api_is_unreachable(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    """A Bot API that cannot be reached at start (network down, api.telegram.org out) used to end
    `framewatch run` with a NetworkError, ingestion included; now the bot retries with backoff and
    serves as soon as the API answers."""
    import bot.app

    monkeypatch.setattr(bot.app, "START_RETRY_FIRST", 0.2)
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    logging.getLogger("bot.app").addHandler(handler)
    fake = FakeBotAPI(ODD_TOKEN)
    fake.port = free_port  # where the API will come up: make_settings reads base_url from it
    settings = make_settings(fake, token=ODD_TOKEN)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot_until(settings, engine=engine, stop=stop))
    try:
        for _ in range(300):  # two failed attempts (the first one also imports and builds everything)
            if len(warnings) >= 2 or task.done():
                break
            await asyncio.sleep(0.1)
        assert not task.done(), task.exception() if task.done() else None
        said = [r.getMessage() for r in warnings]
        assert len(said) >= 2 and all("Telegram Bot API unreachable" in m and ODD_TOKEN not in m for m in said)
        await fake.start(free_port)
        assert "Hello!" in visible(await ask(fake, USER, "/start", timeout=30))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await fake.stop()
        logging.getLogger("bot.app").removeHandler(handler)


async def test_run_with_a_refused_token_exits_2_without_printing_it(tmp_path: Path, models_dir: Path) -> None:
    """A token the Bot API refuses is a configuration error: `framewatch run` says which key, exit 2,
    and never shows the token (PTB's own exception message quotes it)."""
    async with FakeBotAPI("the-token-the-api-knows") as fake:
        config = tmp_path / "framewatch.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{tmp_path / "fw.db"}"\n[classifier]\nmodels_dir = "{models_dir}"\n'
            f'[telegram]\napi_base_url = "{fake.base_url}"\nbase_file_url = "{fake.base_file_url}"\n',
            encoding="utf-8",
        )
        # In a thread: the fake Bot API answers the child from this test's event loop.
        done = await asyncio.to_thread(run_framewatch, "--config", str(config), "run", env=TOKEN_ENV, cwd=tmp_path)
    printed = done.stdout + done.stderr
    assert done.returncode == 2, printed
    assert "telegram.token" in printed and "refused" in printed
    assert ODD_TOKEN not in printed and "Traceback" not in printed


async def test_a_failed_start_of_polling_is_retried_too(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """getMe answered, then the Bot API failed deleteWebhook (polling's bootstrap): the application was
    left running inside `async with`, so the NetworkError surfaced as "still running" RuntimeError and
    was never retried. Now it is stopped, and the next attempt serves."""
    import bot.app

    monkeypatch.setattr(bot.app, "START_RETRY_FIRST", 0.2)
    async with FakeBotAPI(ODD_TOKEN) as fake:
        fake.add_fault("5xx", method="deleteWebhook", count=1)
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot_until(make_settings(fake, token=ODD_TOKEN), engine=engine, stop=stop))
        try:
            assert "Hello!" in visible(await ask(fake, USER, "/start", timeout=30))
            assert len(fake.calls_to("getMe")) >= 2 and [c.status for c in fake.calls_to("deleteWebhook")][:1] == [500]
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_run_with_the_webhook_port_taken_exits_2_naming_it(tmp_path: Path) -> None:
    """A webhook port already in use was an OSError traceback out of `framewatch run`."""
    pytest.importorskip("tornado", reason="webhook mode needs python-telegram-bot[webhooks]")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        async with FakeBotAPI(ODD_TOKEN) as fake:
            config = tmp_path / "framewatch.toml"
            config.write_text(
                f'[database]\nurl = "sqlite:///{tmp_path / "fw.db"}"\n[telegram]\nmode = "webhook"\n'
                f'webhook_url = "https://bot.example.org/hook"\nwebhook_listen = "127.0.0.1"\nwebhook_port = {port}\n'
                f'api_base_url = "{fake.base_url}"\nbase_file_url = "{fake.base_file_url}"\n',
                encoding="utf-8",
            )
            args = ("--config", str(config), "run", "--role", "bot")
            done = await asyncio.to_thread(run_framewatch, *args, env=TOKEN_ENV, cwd=tmp_path)
    printed = done.stdout + done.stderr
    assert done.returncode == 2, printed
    assert f"telegram.webhook_port: cannot listen on 127.0.0.1:{port}" in printed and "Traceback" not in printed


@pytest.mark.parametrize("role", ["bot", "deliver"])
def test_a_telegram_role_without_a_token_is_refused(tmp_path: Path, role: str) -> None:
    """It used to start and promise console-mode alerts, then wait forever printing nothing: in console
    mode alerts are printed by the process that ingests, and these roles do not."""
    from typer.testing import CliRunner

    from framewatch import commands  # noqa: F401  (registers the sub-commands)
    from framewatch.cli import app

    config = tmp_path / "framewatch.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "fw.db"}"\n', encoding="utf-8")
    env = {"COLUMNS": "250", "FRAMEWATCH_TELEGRAM_TOKEN": ""}
    result = CliRunner().invoke(app, ["--config", str(config), "run", "--role", role], env=env)
    assert result.exit_code == 2, result.output
    assert f"--role {role} needs telegram.token" in result.output
