"""Analyst commands end to end: /frames /search (+ "more") /post /trend /sources, hostile input included."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.models import utcnow
from tests.fakebotapi import FakeBotAPI
from tests.test_bot_support import (
    ADMIN,
    ANALYST,
    add_post,
    add_source,
    ask,
    db,
    fake_api,
    running_bot,
    visible,
)

__all__ = ["fake_api"]


def seed(engine: sa.Engine) -> dict[str, int]:
    """Posts relative to the real clock (the bot's default clock)."""
    now = utcnow()
    ids: dict[str, int] = {}
    with db(engine) as session:
        wire = add_source(session, "wire")
        chan = add_source(session, "chan<b>", kind="telegram", channel="chan_b")
        for i in range(7):
            p = add_post(
                session,
                wire if i % 2 else chan,
                title=f"Wagner update {i}",
                text=f"Prigozhin and Wagner: shells withheld again, report {i}. <script>x</script> & more",
                published_at=now - timedelta(hours=i + 1),
                frames={"military_rift": 0.8 + i / 100},
            )
            ids[f"rift{i}"] = p.id or 0
        for i in range(3):  # the previous 24 h
            add_post(
                session,
                wire,
                text=f"older rift {i}",
                published_at=now - timedelta(hours=30 + i),
                frames={"military_rift": 0.7},
            )
        p = add_post(
            session,
            wire,
            text="They deny everything.",
            published_at=now - timedelta(hours=2),
            frames={"denial": 0.66},
        )
        ids["denial"] = p.id or 0
    return ids


async def test_frames_counts_change_and_top_sources(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed(engine)
    async with running_bot(engine, fake_api):
        text = visible(await ask(fake_api, ANALYST, "/frames"))
        week = visible(await ask(fake_api, ANALYST, "/frames 7d"))
        bad = visible(await ask(fake_api, ANALYST, "/frames 1y"))
    assert text.startswith("Frames, last 24h")
    assert "Military rift (Wagner vs MoD) military_rift: 7 (+4, +133%) — top: chan<b> (4), wire (3)" in text
    assert "Denial of involvement denial: 1 (+1)" in text
    assert "military_rift: 10 (+10)" in week
    assert "Valid choices: 24h, 7d, 30d" in bad


async def test_search_pages_with_more_button(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed(engine)
    async with running_bot(engine, fake_api):
        first = await ask(fake_api, ANALYST, "/search wagner")
        call = fake_api.sent(ANALYST)[-1]
        (button,) = call.params["reply_markup"]["inline_keyboard"][0]
        assert button["text"] == "More ▸" and button["callback_data"].startswith("sm:")
        before = len(fake_api.sent(ANALYST))
        fake_api.push_callback(ANALYST, button["callback_data"], message=call.result)
        page2 = await fake_api.wait_for(lambda: len(fake_api.sent(ANALYST)) > before and fake_api.sent(ANALYST)[-1])
        assert "reply_markup" not in page2.params  # 7 hits: 5 + 2, no third page
        # An analyst's "more" from a search this chat never ran (forged key) is refused.
        fake_api.push_callback(ANALYST, "sm:deadbeef:5", message=call.result)
        answer = await fake_api.wait_for(
            lambda: [c for c in fake_api.calls_to("answerCallbackQuery") if c.params.get("text")]
        )
    one = visible(first)
    assert one.startswith("Results 1–5 for wagner:")
    assert "<b>Wagner</b>" in first or "<b>wagner</b>" in first
    assert "<script>" not in first  # never markup (SQLite shows it as text; ts_headline drops tags)
    assert visible(str(page2.params["text"])).startswith("Results 6–7 for wagner:")
    assert answer[-1].params["text"] == "This search has expired; please search again."


@pytest.mark.parametrize(
    "query",
    [
        '<b>wagner</b> & "unclosed',
        'wagner" OR NEAR(x y) * ^ -- ; DROP TABLE post; --',
        "source:nowhere wagner",
        "\u202ewagner\u200b " + "й" * 480,
        ")))(((",
        "since:yesterday",
    ],
)
async def test_search_survives_hostile_queries(engine: sa.Engine, fake_api: FakeBotAPI, query: str) -> None:
    seed(engine)
    async with running_bot(engine, fake_api):
        text = visible(await ask(fake_api, ANALYST, f"/search {query}"))
        assert visible(await ask(fake_api, ANALYST, "/search wagner")).startswith("Results 1–5")
    assert text.startswith(("Results", "Nothing found", "Cannot search for that"))


async def test_search_too_long_and_empty(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    async with running_bot(engine, fake_api):
        assert "at most 500 characters" in visible(await ask(fake_api, ANALYST, "/search " + "w" * 4000))
        assert "Usage: /search QUERY" in visible(await ask(fake_api, ANALYST, "/search"))


async def test_post_shows_text_tags_and_evidence(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    ids = seed(engine)
    async with running_bot(engine, fake_api):
        markup = await ask(fake_api, ADMIN, f"/post {ids['rift0']}")
        missing = visible(await ask(fake_api, ANALYST, "/post 999999"))
        bad = visible(await ask(fake_api, ANALYST, "/post abc"))
    text = visible(markup)
    assert f"#{ids['rift0']} · chan<b> ·" in text and "Wagner update 0" in text
    assert "Military rift (Wagner vs MoD) 0.80 — because of: ammunition, Wagner" in text
    assert "<b>Wagner</b>" in markup and "<script>x</script> & more" in text
    assert missing == "There is no post #999999."
    assert "I did not understand “abc”." in bad


async def test_post_of_200kb_stays_under_the_limit(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    with db(engine) as session:
        src = add_source(session, "wire")
        post = add_post(session, src, text=("ammunition <i> & Wagner " * 10_000), title="t" * 5000)
    async with running_bot(engine, fake_api):
        text = visible(await ask(fake_api, ANALYST, f"/post {post.id}"))
    assert 3000 < len(text) <= 4096


async def test_trend_sends_a_png_chart(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    seed(engine)
    async with running_bot(engine, fake_api):
        caption = visible(await ask(fake_api, ANALYST, "/trend military_rift 30d"))
        unknown = visible(await ask(fake_api, ANALYST, "/trend nope"))
    (photo,) = fake_api.calls_to("sendPhoto")
    assert photo.files["photo"].startswith(b"\x89PNG") and len(photo.files["photo"]) > 5000
    assert caption == "Military rift (Wagner vs MoD): tagged posts per day, last 30d"
    assert "Unknown frame(s): nope." in unknown


async def test_sources_show_health_escaped(engine: sa.Engine, fake_api: FakeBotAPI) -> None:
    now = utcnow()
    with db(engine) as session:
        add_source(session, "good", last_success_at=now - timedelta(minutes=3))
        add_source(
            session,
            "bad",
            enabled=False,
            disabled_reason="20 failures: <html> & </body>",
            consecutive_failures=20,
            last_error="HTTP 503 <title>x</title>",
        )
    async with running_bot(engine, fake_api):
        text = visible(await ask(fake_api, ANALYST, "/sources"))
    assert "• bad (rss) — disabled: 20 failures: <html> & </body>; last success: never; failures: 20" in text
    assert "• good (rss) — ok; last success: " in text
