"""Source health: backoff policy and silent-source notices to admins."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from framewatch.config import Settings, SourceSettings
from framewatch.runtime import report_silent_sources
from ingest.health import backoff_delay, plan_failure
from ingest.types import RawPost
from storage.db import session_scope
from storage.models import Outbox
from storage.posts import store_posts
from storage.sources import add_source, silent_sources

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    interval, cap = timedelta(minutes=10), timedelta(hours=6)
    delays = [backoff_delay(n, interval=interval, cap=cap, rng=rng) for n in range(1, 12)]
    assert delays[0] <= timedelta(minutes=12) and delays[3] >= timedelta(minutes=60)
    assert all(d <= cap for d in delays) and delays[-1] >= cap * 0.8
    assert len({round(d.total_seconds()) for d in delays[:4]}) == 4
    # A source allowed to fail forever (disable_after_failures set very high) stays at the cap; 2 ** 1100
    # used to overflow the float and make recording the failure itself fail.
    assert cap * 0.8 <= backoff_delay(100_000, interval=interval, cap=cap, rng=rng) <= cap


def test_retry_after_and_disable_plan() -> None:
    plan = plan_failure(
        failures_before=0,
        now=NOW,
        interval=timedelta(minutes=1),
        cap=timedelta(hours=6),
        disable_after=3,
        error="HTTP 429",
        retry_after_seconds=900,
    )
    assert plan.next_poll_at >= NOW + timedelta(seconds=900) and plan.disable_reason is None
    plan = plan_failure(
        failures_before=2,
        now=NOW,
        interval=timedelta(minutes=1),
        cap=timedelta(hours=6),
        disable_after=3,
        error="HTTP 500",
    )
    assert plan.disable_reason is not None and "3 consecutive failures" in plan.disable_reason
    plan = plan_failure(
        failures_before=0,
        now=NOW,
        interval=timedelta(minutes=1),
        cap=timedelta(hours=6),
        disable_after=3,
        error="channel has no public web preview",
        permanent=True,
    )
    assert plan.disable_reason == "channel has no public web preview"


def _posts(every: timedelta, count: int, last: datetime) -> list[RawPost]:
    return [RawPost(str(i), None, "", f"post {i}", last - every * i) for i in range(count)]


def test_silent_source_is_reported_once(sqlite_engine: sa.Engine) -> None:
    settings = Settings(telegram={"admins": [111, 222]})
    with session_scope(sqlite_engine) as session:
        chatty = add_source(SourceSettings(name="chatty", kind="telegram", channel="chatty"), session=session, now=NOW)
        weekly = add_source(SourceSettings(name="weekly", kind="rss", url="http://h/f"), session=session, now=NOW)
        assert chatty.id and weekly.id
        # posts every 10 minutes, last one 8 hours ago: silent
        store_posts(
            chatty.id,
            _posts(timedelta(minutes=10), 30, NOW - timedelta(hours=8)),
            session=session,
            now=NOW,
            from_backfill=True,
        )
        # posts weekly, last one 3 days ago: normal for it
        store_posts(
            weekly.id,
            _posts(timedelta(days=7), 10, NOW - timedelta(days=3)),
            session=session,
            now=NOW,
            from_backfill=True,
        )
    with Session(sqlite_engine) as session:
        assert [s.name for s in silent_sources(session=session, now=NOW)] == ["chatty"]
    assert report_silent_sources(settings, sqlite_engine, NOW) == 1
    assert report_silent_sources(settings, sqlite_engine, NOW + timedelta(hours=1)) == 1
    with Session(sqlite_engine) as session:
        notices = session.exec(select(Outbox).where(Outbox.kind == "admin")).all()
    assert sorted(n.chat_id for n in notices) == [111, 222], "one notice per admin per silence, not per check"
    assert "chatty" in notices[0].payload["text"]


def test_running_service_follows_model_activation(tmp_path, models_dir) -> None:  # type: ignore[no-untyped-def]
    """`model use` / `/rollback` in another process reaches a running ingest worker without a restart."""
    import dataclasses
    import shutil

    from classifiers.registry import activate, active_version, load_model, read_metadata, save_model
    from framewatch.runtime import FollowingTagger

    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    first = active_version(models)
    assert first is not None
    tagger = FollowingTagger(Settings(classifier={"models_dir": models}))
    assert tagger.classify(["Шойгу снова не дал снарядов"])[0].model_version == first
    model, _ = load_model(models, first)
    meta = read_metadata(models, first)
    extra = {
        f.name: getattr(meta, f.name)
        for f in dataclasses.fields(meta)
        if f.name not in {"version", "created_at", "model_sha256", "frame_ids", "sklearn_version", "skops_version"}
    }
    second = save_model(models, model, now=NOW, **extra).version
    activate(models, second)
    assert tagger.classify(["Шойгу снова не дал снарядов"])[0].model_version == second
    assert tagger.version == second
