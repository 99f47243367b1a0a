"""Property tests: command arguments, callback data and rendering never fail on hostile input."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import callbacks
from bot.commands_parse import (
    DIGEST_MODES,
    PERIODS,
    ArgError,
    normalise,
    parse_addsource,
    parse_choice,
    parse_label,
    parse_name,
    parse_post_id,
    parse_search,
    parse_subscribe,
    parse_trend,
    parse_unsubscribe,
)
from bot.render import TEXT_LIMIT, render_alert, render_digest
from classifiers.taxonomy import load_taxonomy
from storage.models import Post, PostFrame
from storage.outbox import PostBundle
from tests.fakebotapi import check_telegram_html, utf16_len

TAX = load_taxonomy()
FRAMES = TAX.ids
NAMES = {f.id: f.name for f in TAX.frames}
SOURCES = ("wire", "chan_1", "example.org")
# Everything Telegram lets through: any code point, plus a bias towards syntax our parsers care about.
HOSTILE = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
        st.sampled_from([*':+-,"#<>&/ \n\t\u200b\u202e\ufeff', "min:", "source:", "lang:", "0.5", *FRAMES]),
    ),
    max_size=120,
).map("".join)
PARSERS = {
    "subscribe": lambda s: parse_subscribe(s, frames=FRAMES, sources=SOURCES),
    "unsubscribe": lambda s: parse_unsubscribe(s, frames=FRAMES),
    "digest": lambda s: parse_choice(s, DIGEST_MODES),
    "frames": lambda s: parse_choice(s, tuple(PERIODS), default="24h"),
    "post": parse_post_id,
    "trend": lambda s: parse_trend(s, frames=FRAMES),
    "label": lambda s: parse_label(s, frames=FRAMES),
    "search": parse_search,
    "name": parse_name,
    "addsource": parse_addsource,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(raw=HOSTILE)
@example(raw="x" * 4096)
@example(raw="+" + '"' * 3000)
@example(raw="min:" + "9" * 4000)
def test_parsers_return_a_value_or_argerror(name: str, raw: str) -> None:
    try:
        PARSERS[name](raw)
    except ArgError as exc:
        assert exc.key and all(isinstance(c, str) for c in exc.choices)


@settings(max_examples=300, deadline=2000)
@given(raw=HOSTILE)
def test_subscribe_results_only_name_known_things(raw: str) -> None:
    try:
        spec = parse_subscribe(raw, frames=FRAMES, sources=SOURCES)
    except ArgError:
        return
    assert set(spec.frames) <= set(FRAMES) and set(spec.sources) <= set(SOURCES)
    assert 0.0 <= spec.min_score <= 1.0
    assert all(1 <= len(k) <= 100 for k in (*spec.include_keywords, *spec.exclude_keywords))


def test_subscribe_examples() -> None:
    spec = parse_subscribe(
        'Military_Rift,denial  ｖｉｃｔｏｒｙ_ｃｌａｉｍ source:WIRE min:0,65 +"two words" -x lang:RU',
        frames=FRAMES,
        sources=SOURCES,
    )
    assert spec.frames == ("military_rift", "denial", "victory_claim")
    assert (spec.sources, spec.min_score, spec.languages) == (("wire",), 0.65, ("ru",))
    assert (spec.include_keywords, spec.exclude_keywords) == (("two words",), ("x",))
    assert normalise("a\u200bb\u202e c") == "ab c"
    assert parse_addsource("telegram @some_chan").channel == "some_chan"
    link = parse_addsource("telegram https://t.me/s/some_chan/4521?single")  # a post link names its channel
    assert (link.channel, link.name) == ("some_chan", "some_chan")
    with pytest.raises(ArgError):
        parse_addsource("telegram https://example.com/some_chan")
    with pytest.raises(ArgError):  # urllib cannot split it: was a ValueError out of the handler
        parse_addsource("rss http://[::1")
    assert parse_addsource("rss https://www.example.org/x.xml").name == "example.org"


@settings(max_examples=500, deadline=None)
@given(
    post=st.integers(1, 10**12 - 1),
    mask=st.integers(0, 2**callbacks.MAX_FRAMES - 1),
    correct=st.booleans(),
    key=st.text(alphabet="0123456789abcdef", min_size=8, max_size=8),
    offset=st.integers(0, 99_999),
)
def test_callback_data_round_trips_within_64_bytes(post: int, mask: int, correct: bool, key: str, offset: int) -> None:
    for data, action in (
        (callbacks.feedback(post, correct, mask), callbacks.Feedback(post, correct, mask)),
        (callbacks.relabel(post, mask), callbacks.Relabel(post, mask, False)),
        (callbacks.relabel_save(post, mask), callbacks.Relabel(post, mask, True)),
        (callbacks.search_more(key, offset), callbacks.SearchMore(key, offset)),
    ):
        assert len(data.encode()) <= 64 and callbacks.parse(data) == action


@settings(max_examples=500, deadline=None)
@given(data=st.one_of(st.text(max_size=80), st.text(alphabet=string.digits + ":fbcwrlsm", max_size=70)))
def test_arbitrary_callback_data_parses_to_none_or_itself(data: str) -> None:
    action = callbacks.parse(data)
    if action is None:
        return
    if isinstance(action, callbacks.Feedback):
        again = callbacks.feedback(action.post_id, action.correct, action.mask)
    elif isinstance(action, callbacks.Relabel):
        again = (callbacks.relabel_save if action.save else callbacks.relabel)(action.post_id, action.mask)
    else:
        again = callbacks.search_more(action.key, action.offset)
    assert int(data.split(":")[-1]) == int(again.split(":")[-1])
    assert callbacks.mask_frames(2 ** len(FRAMES), FRAMES) is None


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6000)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=TEXT, text=TEXT, source=st.text(max_size=300), evidence=st.lists(st.text(max_size=30), max_size=5))
def test_alerts_are_always_valid_bounded_html(title: str, text: str, source: str, evidence: list[str]) -> None:
    post = Post(
        id=7,
        source_id=1,
        external_id="x",
        title=title,
        text=text,
        url="https://example.org/" + source,
        published_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    frames = (PostFrame(post_id=7, frame_id="denial", score=0.5, model_version="m", evidence=evidence),)
    bundle = PostBundle(post, source, frames)
    payload = {"frames": [["denial", 0.5]], "also_in": [source, title[:50]]}
    for lang in ("en", "ru", "uk"):
        msg = render_alert(bundle, payload, lang=lang, frame_names=NAMES, frame_order=FRAMES, excerpt_chars=3000)
        error, visible = check_telegram_html(msg.text)
        assert error is None and utf16_len(visible) <= TEXT_LIMIT
    digest = render_digest([(bundle, payload)] * 30, lang="uk", frame_names=NAMES)
    error, visible = check_telegram_html(digest.text)
    assert error is None and utf16_len(visible) <= TEXT_LIMIT
