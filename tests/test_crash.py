"""kill -9 at random points: nothing stored twice, nothing half-written, the active model intact."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from framewatch.localserver import LocalServer, Reply
from tests.cli import framewatch_command

pytestmark = pytest.mark.slow

KILL_ROUNDS = 3  # bounded: each round is one random kill point
CHANNELS = 3
PAGES = 6
PER_PAGE = 20


def _message(channel: str, msg_id: int) -> str:
    return f"""
<div class="tgme_widget_message_wrap js-widget_message_wrap">
 <div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{channel}/{msg_id}">
  <div class="tgme_widget_message_bubble">
   <div class="tgme_widget_message_text js-message_text" dir="auto">Сводка {msg_id}: в районе
   посёлка {msg_id % 17} продолжаются работы по восстановлению линии электропередачи.<br/>Подробности позже.</div>
   <div class="tgme_widget_message_footer compact js-message_footer">
    <div class="tgme_widget_message_info short js-message_info">
     <span class="tgme_widget_message_views">{msg_id * 3}</span>
     <span class="tgme_widget_message_meta"><a class="tgme_widget_message_date" href="https://t.me/{channel}/{msg_id}">
     <time datetime="2024-03-0{1 + msg_id % 8}T0{msg_id % 10}:15:00+00:00" class="time">09:15</time></a></span>
    </div>
   </div>
  </div>
 </div>
</div>"""


def _page(channel: str, newest: int, oldest: int) -> bytes:
    messages = "".join(_message(channel, i) for i in range(oldest, newest + 1))
    more = (
        f'<a class="tme_messages_more js-messages_more" data-before="{oldest}" href="/s/{channel}?before={oldest}"></a>'
        if oldest > 1
        else ""
    )
    return f"""<!DOCTYPE html><html><body><section class="tgme_channel_history js-message_history">
{more}{messages}</section></body></html>""".encode()


def _serve_channels(server: LocalServer, delay: float) -> int:
    total = PAGES * PER_PAGE
    for c in range(CHANNELS):
        name = f"chan_{c}"
        for p in range(PAGES):
            newest = total - p * PER_PAGE
            target = f"/s/{name}" if p == 0 else f"/s/{name}?before={newest + 1}"
            server.route(target, Reply(_page(name, newest, newest - PER_PAGE + 1), delay=delay))
    return CHANNELS * total


def _config(tmp_path: Path, server: LocalServer, models_dir: Path) -> Path:
    cfg = tmp_path / "fw.toml"
    sources = "".join(f'[[sources]]\nname = "c{c}"\nkind = "telegram"\nchannel = "chan_{c}"\n' for c in range(CHANNELS))
    cfg.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "crash.db"}"
[ingest]
telegram_web_base = "{server.url("/s/")}"
backfill_pages = {PAGES}
timeout = "10s"
lease = "3s"
[classifier]
models_dir = "{models_dir}"
{sources}""",
        encoding="utf-8",
    )
    return cfg


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWATCH_")}


def _wait_for_requests(server: LocalServer, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not server.requests() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.requests(), "the ingest process never reached the server"


def test_kill_during_backfill_stores_every_post_once(
    tmp_path: Path, local_server: LocalServer, models_dir: Path
) -> None:
    expected = _serve_channels(local_server, delay=0.3)
    cfg = _config(tmp_path, local_server, models_dir)
    rng = random.Random(20230522)
    for _ in range(KILL_ROUNDS):
        local_server.clear_log()
        proc = subprocess.Popen(
            framewatch_command("--config", str(cfg), "ingest", "--once"),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_requests(local_server, proc)
        time.sleep(rng.uniform(0.0, 2.0))  # somewhere inside the multi-page backfill
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # The dead process's leases lapse before the next run, which takes the sources over (started at
        # once, it would find them all leased, report them skipped and never reach the server).
        time.sleep(3.5)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crash.db'}")
    done = subprocess.run(
        framewatch_command("--config", str(cfg), "ingest", "--once"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        rows = conn.exec_driver_sql("SELECT source_id, external_id FROM post").all()
        fts = conn.exec_driver_sql("SELECT count(*) FROM post_fts").scalar()
    assert len(rows) == len(set(rows)) == expected
    assert fts == expected, "the full-text index matches the table"


def test_kill_during_retraining_leaves_active_model_intact(tmp_path: Path, models_dir: Path) -> None:
    from classifiers.registry import active_version, list_versions
    from classifiers.service import load_tagger

    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    before = active_version(models)
    assert before is not None
    cfg = tmp_path / "fw.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n[classifier]\nmodels_dir = "{models}"\n')
    rng = random.Random(7)
    for _ in range(KILL_ROUNDS):
        proc = subprocess.Popen(
            framewatch_command("--config", str(cfg), "train", "--force"),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 15.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        active = active_version(models)
        assert active is not None
        assert active == before or active in {m.version for m in list_versions(models)}
        tagger = load_tagger(models, now=datetime.now(UTC))
        result = tagger.classify(["Пригожин обвинил Шойгу в том, что снарядов опять не подвезли."])
        assert result and result[0].model_version == active
