"""Admin commands end to end: labelling, sources, statistics, and the model registry from the chat."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import select

from bot.models import RegistryModels
from classifiers import registry
from classifiers.corpus import is_dev
from storage.models import Label, Outbox, Source
from tests.fakebotapi import FakeBotAPI
from tests.test_bot_support import (
    ADMIN,
    TOKEN,
    add_post,
    add_source,
    ask,
    db,
    fake_api,
    running_bot,
    tiny_corpus,
    tiny_taxonomy,
    visible,
)

__all__ = ["fake_api"]


async def test_label_stores_admin_labels(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    with db(engine) as session:
        post = add_post(session, add_source(session, "wire"))
    async with running_bot(engine, fake_api):
        done = visible(await ask(fake_api, ADMIN, f"/label {post.id} military_rift,DENIAL"))
        none = visible(await ask(fake_api, ADMIN, f"/label #{post.id} none"))
        unknown = visible(await ask(fake_api, ADMIN, f"/label {post.id} rift,<b>"))
        missing = visible(await ask(fake_api, ADMIN, "/label 999999 denial"))
        usage = visible(await ask(fake_api, ADMIN, "/label 5"))
    assert done == f"Post #{post.id} labelled: Military rift (Wagner vs MoD), Denial of involvement."
    assert none == f"Post #{post.id} labelled: no frame."
    assert "I did not understand" in unknown or "Unknown frame(s)" in unknown
    assert missing == "There is no post #999999."
    assert "Usage: /label POST_ID frame1,frame2|none" in usage
    with db(engine) as session:
        rows = list(session.exec(select(Label).order_by(Label.id)))
    assert [(r.frames, r.kind, r.weight, r.user_id) for r in rows] == [
        (["denial", "military_rift"], "admin", 1.0, ADMIN),
        ([], "admin", 1.0, ADMIN),
    ]


async def test_addsource_disable_enable(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    async with running_bot(engine, fake_api):
        added = visible(await ask(fake_api, ADMIN, "/addsource rss https://www.example.org/feed.xml"))
        named = visible(await ask(fake_api, ADMIN, "/addsource telegram https://t.me/s/some_channel chan1"))
        dup = visible(await ask(fake_api, ADMIN, "/addsource rss https://example.org/other.xml example.org"))
        bad_url = visible(await ask(fake_api, ADMIN, "/addsource rss ftp://example.org/feed"))
        bad_name = visible(await ask(fake_api, ADMIN, "/addsource rss https://a.example/x <b>evil</b>"))
        bad_kind = visible(await ask(fake_api, ADMIN, "/addsource atom https://a.example/x"))
        disabled = visible(await ask(fake_api, ADMIN, "/disable chan1"))
        unknown = visible(await ask(fake_api, ADMIN, "/disable nope"))
        with db(engine) as session:
            chan = session.exec(select(Source).where(Source.name == "chan1")).one()
            assert (chan.enabled, chan.disabled_reason) == (False, "disabled by operator")
        enabled = visible(await ask(fake_api, ADMIN, "/enable chan1"))
    assert added.startswith("Added source example.org.")
    assert named.startswith("Added source chan1.")
    assert "Cannot add that source: a source named 'example.org' already exists" in dup
    assert "Cannot add that source:" in bad_url and "rss source needs url" in bad_url
    assert "Cannot add that source: name:" in bad_name
    assert "Valid choices: rss, telegram" in bad_kind
    assert disabled == "Source chan1 disabled."
    assert "There is no source named nope." in unknown and "Valid choices: chan1, example.org" in unknown
    assert enabled.startswith("Source chan1 enabled")
    with db(engine) as session:
        rows = {s.name: s for s in session.exec(select(Source))}
    assert rows["example.org"].url == "https://www.example.org/feed.xml" and rows["example.org"].kind == "rss"
    assert rows["chan1"].channel == "some_channel" and rows["chan1"].enabled


async def test_stats_never_shows_the_token(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    odd_token_error = f"GET https://api.telegram.org/bot{TOKEN}/getMe failed <x>"
    with db(engine) as session:
        add_source(session, "leaky", last_error=odd_token_error, consecutive_failures=2)
        add_post(session, add_source(session, "wire"))
        session.add(Outbox(chat_id=5, dedup_key="k", status="failed", last_error=f"token {TOKEN} & more"))
    async with running_bot(engine, fake_api):
        text = visible(await ask(fake_api, ADMIN, "/stats"))
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    assert "leaky" in text and "[REDACTED]" in text and "<x>" in text
    assert "Subscribers (active / inactive): 0 / 0" in text and "Outbox: failed 1" in text
    assert "Alerts sent (24 h / total): 0 / 0" in text


async def test_model_retrain_rollback_from_the_chat(engine: sa.Engine, fake_api: FakeBotAPI, tmp_path: Path) -> None:
    tax = tiny_taxonomy()
    models = RegistryModels(tmp_path / "models", tax, max_drop=0.02, corpus=tiny_corpus())
    changes: list[str] = []
    with db(engine) as session:
        post = add_post(session, add_source(session, "wire"), text="prigozhin accuses the generals", frames={})
    async with running_bot(
        engine, fake_api, taxonomy=tax, models=models, on_model_change=lambda: changes.append("changed")
    ):
        assert visible(await ask(fake_api, ADMIN, "/model")) == "No model is active yet."
        assert "Cannot roll back:" in visible(await ask(fake_api, ADMIN, "/rollback"))
        assert "labelled: Rift" in visible(await ask(fake_api, ADMIN, f"/label {post.id} rift"))
        assert visible(await ask(fake_api, ADMIN, "/retrain")).startswith("Retraining in the background")
        done = await fake_api.wait_for(
            lambda: [c for c in fake_api.sent(ADMIN) if "Retraining finished" in str(c.params.get("text"))],
            60,
        )
        first = registry.active_version(tmp_path / "models")
        report = visible(str(done[0].params["text"]))
        assert report.startswith(f"Retraining finished: model {first}.\nThe new model is active.")
        assert "Rift" in report and "Denial" in report and "P     R     F1" in report
        meta = registry.read_metadata(tmp_path / "models", str(first))
        # The /label went into training (or into the dev split, which the corpus module decides by text).
        assert meta.counts["train_extra"] == 1 or is_dev("prigozhin accuses the generals")
        info = visible(await ask(fake_api, ADMIN, "/model"))
        assert info.startswith(f"Active model: {first}") and "dev macro-F1" in info
        await ask(fake_api, ADMIN, "/retrain")
        await fake_api.wait_for(
            lambda: len([c for c in fake_api.sent(ADMIN) if "Retraining finished" in str(c.params.get("text"))]) == 2,
            60,
        )
        second = registry.active_version(tmp_path / "models")
        assert second != first
        assert visible(await ask(fake_api, ADMIN, "/rollback")) == f"Rolled back to model {first}."
    assert registry.active_version(tmp_path / "models") == first
    assert changes == ["changed"] * 3


async def test_retrain_runs_in_the_background_one_at_a_time(
    engine: sa.Engine, fake_api: FakeBotAPI, tmp_path: Path
) -> None:
    tax = tiny_taxonomy()
    models = RegistryModels(tmp_path / "models", tax, max_drop=0.02, corpus=tiny_corpus())
    gate = threading.Event()
    async with running_bot(engine, fake_api, taxonomy=tax, models=models, on_model_change=lambda: gate.wait(30)):
        await ask(fake_api, ADMIN, "/retrain")
        await fake_api.wait_for(lambda: registry.active_version(tmp_path / "models") is not None, 60)
        # Training finished, the hook is still blocked: the loop keeps answering, a second run is refused.
        assert visible(await ask(fake_api, ADMIN, "/retrain")) == "A retraining is already running."
        assert "Commands" in visible(await ask(fake_api, ADMIN, "/help"))
        gate.set()
        await fake_api.wait_for(
            lambda: [c for c in fake_api.sent(ADMIN) if "Retraining finished" in str(c.params.get("text"))],
            30,
        )


async def test_failed_retrain_is_reported(engine: sa.Engine, fake_api: FakeBotAPI, tmp_path: Path) -> None:
    tax = tiny_taxonomy()
    models = RegistryModels(tmp_path / "models", tax, max_drop=0.02, corpus=tiny_corpus()[:4])
    async with running_bot(engine, fake_api, taxonomy=tax, models=models):
        await ask(fake_api, ADMIN, "/retrain")
        failed = await fake_api.wait_for(
            lambda: [c for c in fake_api.sent(ADMIN) if "Retraining failed" in str(c.params.get("text"))], 60
        )
    assert "at least 3 positive" in visible(str(failed[0].params["text"]))
    assert registry.active_version(tmp_path / "models") is None
