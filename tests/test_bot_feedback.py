"""Alert buttons → labels (validated against forgery) → training data; and digest mode, end to end."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot import callbacks
from bot.alerts import enqueue_alerts
from storage.labels import list_training_labels
from storage.models import Label, Outbox, Subscriber, utcnow
from tests.fakebotapi import Call, FakeBotAPI
from tests.test_bot_support import (
    ADMIN,
    STRANGER,
    USER,
    add_post,
    add_source,
    add_subscriber,
    ask,
    db,
    fake_api,
    make_settings,
    running_bot,
    taxonomy,
    visible,
)

__all__ = ["fake_api"]


def seed_alert(engine: sa.Engine) -> tuple[int, int]:
    """A delivered-to-be alert about `post` for USER, and another post USER never got."""
    with db(engine) as session:
        src = add_source(session, "wire")
        add_subscriber(session, USER, frames=["military_rift"])
        post = add_post(session, src, published_at=utcnow() - timedelta(minutes=2), frames={"military_rift": 0.9})
        other = add_post(session, src, text="unrelated " * 20, frames={"denial": 0.9})
        enqueue_alerts([post.id or 0], session=session, now=utcnow(), settings=make_settings())
        return post.id or 0, other.id or 0


async def press(fake: FakeBotAPI, user: int, data: str, message: dict[str, Any]) -> Call:
    before = len(fake.calls_to("answerCallbackQuery"))
    fake.push_callback(user, data, message=message)
    calls = await fake.wait_for(
        lambda: len(fake.calls_to("answerCallbackQuery")) > before and fake.calls_to("answerCallbackQuery")
    )
    return calls[-1]


def labels(engine: sa.Engine) -> list[Label]:
    with db(engine) as session:
        return list(session.exec(select(Label).order_by(Label.id)))


async def test_buttons_store_feedback_and_relabels(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    post_id, _ = seed_alert(engine)
    order = taxonomy().ids
    async with running_bot(engine, fake_api):
        (alert,) = await fake_api.wait_sent(USER)
        message = alert.result
        row = alert.params["reply_markup"]["inline_keyboard"][0]
        assert [b["text"] for b in row] == ["✓ correct", "✗ wrong", "relabel…"]
        ok = await press(fake_api, USER, row[0]["callback_data"], message)
        assert ok.params["text"] == "Thanks, noted."
        assert [(lb.frames, lb.kind, lb.weight, lb.user_id) for lb in labels(engine)] == [
            (["military_rift"], "feedback", 0.3, USER)
        ]
        await press(fake_api, USER, row[1]["callback_data"], message)  # changed their mind: replaces
        assert [(lb.frames, lb.kind) for lb in labels(engine)] == [([], "feedback")]
        await press(fake_api, USER, row[2]["callback_data"], message)
        edit = fake_api.calls_to("editMessageReplyMarkup")[-1]
        toggles = [r[0] for r in edit.params["reply_markup"]["inline_keyboard"][:-1]]
        assert [t["text"] for t in toggles][:2] == ["Internal resistance", "Military rift (Wagner vs MoD)"]
        denial = order.index("denial")
        picked = next(t for t in toggles if t["callback_data"] == callbacks.relabel(post_id, 1 << denial))
        await press(fake_api, USER, picked["callback_data"], message)
        edit = fake_api.calls_to("editMessageReplyMarkup")[-1]
        assert any(r[0]["text"] == "✓ Denial of involvement" for r in edit.params["reply_markup"]["inline_keyboard"])
        save = edit.params["reply_markup"]["inline_keyboard"][-1][1]
        saved = await press(fake_api, USER, save["callback_data"], message)
        assert saved.params["text"] == "Saved: Denial of involvement"
        assert "reply_markup" not in fake_api.calls_to("editMessageReplyMarkup")[-1].params
        assert visible(await ask(fake_api, ADMIN, f"/label {post_id} military_rift")).startswith("Post #")
    assert [(lb.frames, lb.kind) for lb in labels(engine)] == [
        (["denial"], "feedback"),
        (["military_rift"], "admin"),
    ]
    with db(engine) as session:
        training = list_training_labels(session=session)
    assert [(frames, weight) for _, frames, weight in training] == [(["military_rift"], 1.0)]


@pytest.mark.parametrize(
    "forge",
    [
        lambda post, other, mask: callbacks.feedback(other, True, mask),  # a post this chat never got
        lambda post, other, mask: f"fb:c:{post}:{1 << 55}",  # a frame that does not exist
        lambda post, other, mask: callbacks.feedback(999_999, True, mask),  # no such post
        lambda post, other, mask: callbacks.relabel_save(other, mask),
        lambda post, other, mask: f"fb:c:{post}:{mask}:x",
        lambda post, other, mask: "'; DROP TABLE label; --",
        lambda post, other, mask: f"fb:c:-{post}:1",
        lambda post, other, mask: "",
    ],
)
async def test_forged_callback_data_is_rejected(engine: sa.Engine, fake_api: FakeBotAPI, forge: Any) -> None:
    post_id, other_id = seed_alert(engine)
    async with running_bot(engine, fake_api):
        (alert,) = await fake_api.wait_sent(USER)
        data = forge(post_id, other_id, callbacks.frames_mask(["military_rift"], taxonomy().ids))
        answer = await press(fake_api, USER, data, alert.result)
    assert answer.params["text"] == "This button is not valid (any more)."
    assert labels(engine) == []


async def test_someone_else_pressing_a_valid_button_is_rejected(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    post_id, _ = seed_alert(engine)
    async with running_bot(engine, fake_api):
        (alert,) = await fake_api.wait_sent(USER)
        data = alert.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        # The same data sent from another user's chat (a chat that got no alert about this post).
        stranger = await press(fake_api, STRANGER, data, {**alert.result, "chat": fake_api.chat(STRANGER)})
        admin = await press(fake_api, ADMIN, data, {**alert.result, "chat": fake_api.chat(ADMIN)})
    assert stranger.params["text"] == "This button is not valid (any more)."
    assert admin.params["text"] == "Thanks, noted."
    assert [(lb.user_id, lb.kind, lb.weight) for lb in labels(engine)] == [(ADMIN, "admin", 1.0)]
    assert post_id


async def test_digest_batches_alerts_into_one_message(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    now = utcnow()
    with db(engine) as session:
        src, other = add_source(session, "wire"), add_source(session, "other")
        sub = add_subscriber(session, USER, frames=["military_rift"], digest="hourly")
        sub.last_digest_at = now - timedelta(minutes=30)
        add_subscriber(session, USER + 1, frames=["military_rift"])
        posts = [
            add_post(
                session,
                src,
                text=f"story {i} " * 20,
                title=f"Title <{i}>",
                published_at=now - timedelta(minutes=5),
            )
            for i in range(3)
        ]
        copy = add_post(session, other, text="story 0 " * 20, title="Title <0>", published_at=now)
        enqueue_alerts([p.id or 0 for p in [*posts, copy]], session=session, now=now, settings=make_settings())
    async with running_bot(engine, fake_api, digest_interval=0.2):
        await fake_api.wait_sent(USER + 1, 3)  # the other subscriber gets them one by one, at once
        assert fake_api.sent(USER) == []  # period not over: nothing yet
        with db(engine) as session:  # an hour later (the job runs on the real clock)
            session.execute(
                sa.update(Subscriber).where(Subscriber.chat_id == USER).values(last_digest_at=now - timedelta(hours=2))
            )
        (digest,) = await fake_api.wait_sent(USER)
        await asyncio.sleep(0.6)  # a few more digest ticks: nothing is sent twice
    text = visible(str(digest.params["text"]))
    assert text.startswith("🗞 Digest: 3 alert(s)")
    assert all(f"Title <{i}>" in text for i in range(3)) and "also in: other" in text
    with db(engine) as session:
        rows = list(session.exec(select(Outbox).where(Outbox.chat_id == USER)))
    assert sorted(r.status for r in rows) == ["batched", "batched", "batched", "sent"]
    assert len(fake_api.sent(USER)) == 1
