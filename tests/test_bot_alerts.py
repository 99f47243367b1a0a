"""Alert matching, outbox rows (one per subscriber and story), rendering within Telegram's rules."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot import callbacks
from bot.alerts import AlertPost, FrameHit, enqueue_alerts, fingerprint, matches, notify_admins
from bot.render import TEXT_LIMIT, render_alert, render_digest, visible_len
from storage import outbox
from storage.models import Outbox
from storage.subscribers import SubscriptionSpec
from tests.fakebotapi import check_telegram_html, utf16_len
from tests.test_bot_support import (
    ADMIN,
    NOW,
    add_post,
    add_source,
    add_subscriber,
    db,
    frame_names,
    make_settings,
    taxonomy,
)

POST = AlertPost(
    id=1,
    source="wire",
    title="Prigozhin: shells withheld",
    text="The Defence Ministry withheld ammunition from Wagner, Prigozhin says.",
    language="en",
    frames=(FrameHit("military_rift", 0.91), FrameHit("denial", 0.4)),
)


def test_frames_and_min_score() -> None:
    assert [h.frame_id for h in matches(POST, SubscriptionSpec(frames=("military_rift",)))] == ["military_rift"]
    assert matches(POST, SubscriptionSpec(frames=("victory_claim",))) == ()
    assert [h.frame_id for h in matches(POST, SubscriptionSpec())] == ["military_rift", "denial"]
    assert [h.frame_id for h in matches(POST, SubscriptionSpec(min_score=0.5))] == ["military_rift"]
    assert matches(POST, SubscriptionSpec(frames=("denial",), min_score=0.5)) == ()


def test_sources_languages_keywords() -> None:
    assert matches(POST, SubscriptionSpec(sources=("WIRE",)))
    assert not matches(POST, SubscriptionSpec(sources=("other",)))
    assert matches(POST, SubscriptionSpec(languages=("en", "ru")))
    assert not matches(POST, SubscriptionSpec(languages=("uk",)))
    assert matches(POST, SubscriptionSpec(include_keywords=("PRIGOZHIN", "wagner")))
    assert not matches(POST, SubscriptionSpec(include_keywords=("prigozhin", "shoigu")))
    assert not matches(POST, SubscriptionSpec(exclude_keywords=("ammunition",)))
    # Zero-width characters and full-width letters do not hide a keyword.
    assert not matches(POST, SubscriptionSpec(exclude_keywords=("ammu\u200bnition",)))
    assert matches(POST, SubscriptionSpec(include_keywords=("ｗａｇｎｅｒ",)))


def test_untagged_post_never_matches() -> None:
    bare = AlertPost(2, "wire", "", "Wagner", "en", ())
    assert matches(bare, SubscriptionSpec(include_keywords=("wagner",))) == ()


@settings(max_examples=200, deadline=None)
@given(word=st.text(min_size=1, max_size=20).filter(lambda w: w.strip()), extra=st.text(max_size=200))
def test_an_excluded_word_in_the_text_always_blocks(word: str, extra: str) -> None:
    post = AlertPost(3, "s", "", f"{extra} {word} {extra}", None, (FrameHit("denial", 0.8),))
    from bot.alerts import normalise_text

    if normalise_text(word):
        assert matches(post, SubscriptionSpec(exclude_keywords=(word,))) == ()
        assert matches(post, SubscriptionSpec(include_keywords=(word,)))


def test_fingerprint_ignores_footers_links_and_case() -> None:
    body = "Russian forces shelled the market in the centre of the town this morning, officials said today."
    a = fingerprint("", body + "\nhttps://t.me/chan/1 @chan #news")
    b = fingerprint("", body.upper() + "\n\u200bhttps://example.org/x")
    assert a and a == b
    assert fingerprint("", "too short") == ""


def _rows(engine: sa.Engine) -> list[Outbox]:
    with db(engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)))


def test_matching_subscribers_get_one_row_each(engine: sa.Engine) -> None:
    settings_ = make_settings()
    with db(engine) as session:
        src = add_source(session)
        rift = add_subscriber(session, 10, frames=["military_rift"])
        add_subscriber(session, 11, frames=["victory_claim"])
        digest = add_subscriber(session, 12, frames=[], digest="daily")
        inactive = add_subscriber(session, 13)
        inactive.active = False
        post = add_post(session, src, frames={"military_rift": 0.9})
        report = enqueue_alerts([post.id], session=session, now=NOW, settings=settings_)
        again = enqueue_alerts([post.id], session=session, now=NOW, settings=settings_)
    assert report.queued == 2 and again.queued == 0
    rows = _rows(engine)
    assert {(r.subscriber_id, r.status) for r in rows} == {(rift.id, "pending"), (digest.id, "digest")}
    assert all(r.payload["frames"] == [["military_rift", 0.9]] for r in rows)


def test_backfill_and_stale_posts_are_never_alerted(engine: sa.Engine) -> None:
    settings_ = make_settings()
    with db(engine) as session:
        src = add_source(session)
        add_subscriber(session, 10)
        backfill = add_post(session, src, from_backfill=True)
        stale = add_post(session, src, published_at=NOW - timedelta(hours=7), text="old news " * 20)
        untagged = add_post(session, src, frames={}, text="nothing to see " * 20)
        report = enqueue_alerts([backfill.id, stale.id, untagged.id], session=session, now=NOW, settings=settings_)
    assert (report.skipped_backfill, report.skipped_old, report.skipped_untagged, report.queued) == (
        1,
        1,
        1,
        0,
    )
    assert _rows(engine) == []


def test_one_story_across_channels_alerts_once_with_also_in(engine: sa.Engine) -> None:
    settings_ = make_settings()
    body = "Wagner fighters accuse the Defence Ministry of abandoning the flanks near Bakhmut again today."
    with db(engine) as session:
        a, b, c, d = (add_source(session, n) for n in ("alpha", "beta", "gamma", "delta"))
        sub = add_subscriber(session, 10, frames=["military_rift"])
        first = add_post(session, a, text=body, canonical_url="https://news.example/story")
        same_url = add_post(session, b, text="Other words, same link.", canonical_url="https://news.example/story")
        linked = add_post(session, c, text="A linked copy", duplicate_of_id=first.id)
        near = add_post(session, d, text=body + "\n\nSubscribe: https://t.me/delta @delta")
        report = enqueue_alerts(
            [first.id, same_url.id, linked.id, near.id], session=session, now=NOW, settings=settings_
        )
    assert report.queued == 1 and report.noted_also_in == 3
    (row,) = _rows(engine)
    assert row.subscriber_id == sub.id and row.post_id == first.id
    assert row.payload["also_in"] == ["beta", "gamma", "delta"]


def test_copy_after_the_alert_went_out_is_skipped(engine: sa.Engine) -> None:
    settings_ = make_settings()
    with db(engine) as session:
        a, b = add_source(session, "alpha"), add_source(session, "beta")
        add_subscriber(session, 10)
        first = add_post(session, a, canonical_url="https://news.example/x")
        enqueue_alerts([first.id], session=session, now=NOW, settings=settings_)
        session.execute(sa.update(Outbox).values(status="sent", telegram_message_id=5))
        copy = add_post(session, b, canonical_url="https://news.example/x")
        report = enqueue_alerts([copy.id], session=session, now=NOW, settings=settings_)
    assert report.queued == 0 and report.noted_also_in == 0
    assert [r.payload["also_in"] for r in _rows(engine)] == [[]]


def test_filters_reach_the_database_path(engine: sa.Engine) -> None:
    settings_ = make_settings()
    with db(engine) as session:
        src = add_source(session, "wire")
        want = add_subscriber(session, 10, sources=["wire"], include_keywords=["prigozhin"], min_score=0.5)
        add_subscriber(session, 11, exclude_keywords=["ammunition"])
        add_subscriber(session, 12, languages=["ru"])
        add_subscriber(session, 13, min_score=0.95)
        post = add_post(session, src, frames={"military_rift": 0.9})
        enqueue_alerts([post.id], session=session, now=NOW, settings=settings_)
    assert [r.subscriber_id for r in _rows(engine)] == [want.id]


def test_notify_admins_is_idempotent_per_key(engine: sa.Engine) -> None:
    settings_ = make_settings(admins=[ADMIN, ADMIN + 1])
    with db(engine) as session:
        assert notify_admins("source x disabled", session=session, now=NOW, settings=settings_, key="x") == 2
        assert notify_admins("source x disabled", session=session, now=NOW, settings=settings_, key="x") == 0
    assert sorted(r.chat_id for r in _rows(engine)) == [ADMIN, ADMIN + 1]
    assert all(r.kind == "admin" and r.post_id is None for r in _rows(engine))


HOSTILE = '<script>alert(1)</script> & "quotes" </b><a href="javascript:x">x</a> \x00\x07 \u202e &amp;'


def test_alert_html_is_valid_escaped_and_bounded(sqlite_engine: sa.Engine) -> None:
    tax = taxonomy()
    names, order = frame_names(tax), list(tax.ids)
    long_text = ("Wagner <b>ammunition</b> & Shoigu " + HOSTILE + " ") * 6000  # ~500 KB
    with db(sqlite_engine) as session:
        src = add_source(session, "evil<i>source")
        post = add_post(
            session,
            src,
            title=HOSTILE * 20,
            text=long_text,
            url='https://example.org/a?b=1&c="2"',
            evidence={"military_rift": ["ammunition", "wagner", "<b>"]},
        )
        bundle = outbox.post_bundles([post.id], session=session)[post.id]
    payload = {"frames": [["military_rift", 0.9]], "also_in": [HOSTILE] * 50}
    for lang in ("en", "ru", "uk"):
        msg = render_alert(bundle, payload, lang=lang, frame_names=names, frame_order=order, excerpt_chars=3000)
        error, visible = check_telegram_html(msg.text)
        assert error is None, error
        assert utf16_len(visible) <= TEXT_LIMIT and visible_len(msg.text) == utf16_len(visible)
        assert "<b>ammunition</b>" in msg.text or "<b>Wagner</b>" in msg.text
        assert "<script>" not in msg.text and 'href="javascript' not in msg.text
        assert 'href="https://example.org/a?b=1&amp;c=%222%22"' in msg.text
        for row in msg.buttons:
            for _label, data in row:
                assert len(data.encode()) <= 64 and callbacks.parse(data) is not None


def test_digest_fits_and_counts_the_rest(sqlite_engine: sa.Engine) -> None:
    tax = taxonomy()
    with db(sqlite_engine) as session:
        src = add_source(session, "wire")
        posts = [add_post(session, src, title=HOSTILE + str(i) * 50, text="x" * 500) for i in range(200)]
        bundles = outbox.post_bundles([p.id for p in posts], session=session)
    items = [(bundles[p.id], {"frames": [["military_rift", 0.9]], "also_in": ["b<"]}) for p in posts]
    msg = render_digest(items, lang="ru", frame_names=frame_names(tax))
    error, visible = check_telegram_html(msg.text)
    assert error is None, error
    assert utf16_len(visible) <= TEXT_LIMIT
    assert "…и ещё" in visible
