"""t.me/s channel pages: exact fields from hand-written pages, hostile markup, and fetch_channel live."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framewatch.config import IngestSettings
from framewatch.localserver import LocalServer, Reply
from ingest import telegram_web
from ingest.http import make_client
from ingest.telegram_web import NO_PREVIEW, channel_url, fetch_channel, parse_channel_page
from ingest.types import FetchStatus, RawPost
from tests.httpserver import fixture_bytes

pytest_plugins = ["tests.httpserver"]

SETTINGS = IngestSettings(timeout="3s", max_response_bytes=2_000_000)
PAGE_1 = fixture_bytes("telegram", "vesti_kraya_1.html")
PAGE_2 = fixture_bytes("telegram", "vesti_kraya_2.html")


def test_first_page_exact_fields() -> None:
    page = parse_channel_page(PAGE_1, channel="vesti_kraya")
    assert page.before_cursor == 1201
    assert page.channel_title == "Вести края"
    assert page.skipped == 1  # the service message
    assert page.ids == [1201, 1202, 1203, 1204, 1206]
    p1201, p1202, p1203, p1204, p1206 = page.posts
    assert p1201 == RawPost(
        external_id="1201",
        url="https://t.me/vesti_kraya/1201",
        title="⚡ Утренняя сводка",
        text=(
            "⚡ Утренняя сводка\n\nВ областном центре ночью отключали свет на два часа.\n"
            "Подробности на сайте администрации."
        ),
        published_at=datetime(2024, 3, 5, 8, 15, tzinfo=UTC),
        language="ru",
        views=15300,
    )
    assert p1202.forwarded_from == "Военный обозреватель"
    assert (p1202.views, p1202.media, p1202.edited) == (1_200_000, ("photo",), False)
    assert p1202.published_at == datetime(2024, 3, 5, 9, 40, 12, tzinfo=UTC)
    # a reply: the quoted message's text is not this post's text
    assert p1203.text == "Update: power is back in all districts, the regional office says."
    assert (p1203.views, p1203.edited, p1203.language) == (987, True, "en")
    assert p1203.published_at == datetime(2024, 3, 5, 9, 1, 30, tzinfo=UTC)  # +03:00 → UTC
    assert p1204.link_title == "Отчёт о поставках за первый квартал"
    assert p1204.text == "Опубликован квартальный отчёт о поставках топлива." and p1204.views == 2400
    assert "Цифры по районам" not in p1204.text  # the preview description is not the post
    assert (p1206.media, p1206.language, p1206.views) == (("poll",), "uk", 45)
    assert p1206.text == "Опитування для наших читачів з Харкова: чи зручно отримувати графіки тут?"


def test_second_page_exact_fields() -> None:
    page = parse_channel_page(PAGE_2, channel="vesti_kraya")
    assert (page.before_cursor, page.skipped, page.ids) == (None, 0, [1198, 1199, 1200])
    p1198, p1199, p1200 = page.posts
    assert (p1198.media, p1198.views) == (("photo",), 31700)
    assert (p1199.media, p1199.views) == (("document",), 8900)
    assert p1200.text == "Завтра с 9 утра закрыт мост через реку Лесную.\nОбъезд — через северную окраину."
    assert p1200.title == "Завтра с 9 утра закрыт мост через реку Лесную."
    assert p1200.published_at == datetime(2024, 3, 4, 21, 0, tzinfo=UTC)


def test_source_language_wins() -> None:
    page = parse_channel_page(PAGE_1, channel="vesti_kraya", language="uk")
    assert {p.language for p in page.posts} == {"uk"}


def _message(post: str, body: str) -> str:
    return (
        '<div class="tgme_widget_message_wrap js-widget_message_wrap">'
        f'<div class="tgme_widget_message js-widget_message" '
        f'data-post="{post}">{body}</div></div>'
    )


def test_missing_and_broken_attributes_are_skipped_not_fatal() -> None:
    html = "".join(
        [
            _message("chan/10", '<div class="tgme_widget_message_text js-message_text">no date, no views</div>'),
            _message("chan/", '<div class="tgme_widget_message_text">no id</div>'),
            _message("chan/abc", '<div class="tgme_widget_message_text">bad id</div>'),
            _message("chan/99999999999999999999", '<div class="tgme_widget_message_text">huge id</div>'),
            _message(
                "chan/11",
                '<time datetime="yesterday">?</time><span class="tgme_widget_message_views">lots</span>'
                '<div class="tgme_widget_message_text">garbage date and views</div>',
            ),
            '<div class="tgme_widget_message">no data-post at all</div>',
            '<a class="tme_messages_more" data-before="soon"></a>',
        ]
    )
    page = parse_channel_page(html, channel="chan")
    assert page.ids == [10, 11] and page.skipped == 3 and page.before_cursor is None
    assert all(p.published_at is None and p.views is None for p in page.posts)


def test_scripts_zero_width_and_rtl_characters() -> None:
    body = (
        '<div class="tgme_widget_message_text js-message_text">Нормаль\u200bный <script>alert("x")</script>'
        "текст\u202e\u2066 с\u200d\ufeffкрытый<style>.a{}</style><br>вторая строка</div>"
        '<span class="tgme_widget_message_views">1\u200b2K</span>'
        '<span class="tgme_widget_message_forwarded_from_name">\u202eлангис</span>'
    )
    [post] = parse_channel_page(_message("c/5", body), channel="c").posts
    assert post.text == "Нормальный текст скрытый\nвторая строка"
    assert not any(ch in post.text for ch in "\u200b\u202e\u2066\u200d\ufeff")
    assert post.views == 12000 and post.forwarded_from == "лангис"


def test_text_inside_scripts_never_becomes_a_post() -> None:
    html = (
        '<script>var t = \'<div class="tgme_widget_message" data-post="c/7">'
        '<div class="tgme_widget_message_text">fake</div></div>\';</script>'
    )
    page = parse_channel_page(html + _message("c/8", '<div class="tgme_widget_message_text">real</div>'), channel="c")
    assert page.ids == [8]


def test_200kb_post() -> None:
    text = "Очень длинный пост. " * 10_000
    page = parse_channel_page(
        _message("c/1", f'<div class="tgme_widget_message_text js-message_text">{text}</div>'), channel="c"
    )
    [post] = page.posts
    assert post.text == text.strip() and len(post.text.encode()) > 200_000
    assert len(post.title) <= 140


def test_deeply_nested_markup_inside_a_message() -> None:
    depth = 5_000  # small enough to parse, deep enough to break any recursive walker
    body = "<div>" * depth + '<div class="tgme_widget_message_text">глубоко</div>' + "</div>" * depth
    [post] = parse_channel_page(_message("c/3", body), channel="c").posts
    assert post.text == "глубоко"


def test_pathologically_nested_page_is_refused_quickly() -> None:
    html = _message("c/1", '<div class="tgme_widget_message_text">ok</div>') + "<div>" * 400_000
    started = time.perf_counter()
    page = parse_channel_page(html, channel="c")
    assert time.perf_counter() - started < 5
    assert page.posts == () and page.error == "page markup is pathologically nested; refused"


def test_messages_nested_in_messages_do_not_crash() -> None:
    inner = _message("c/2", '<div class="tgme_widget_message_text">inner</div>')
    outer = _message("c/1", f'<div class="tgme_widget_message_text">outer</div>{inner}')
    page = parse_channel_page(outer, channel="c")
    assert page.ids == [1, 2]


_fragments = st.sampled_from(
    [
        '<div class="tgme_widget_message js-widget_message" data-post="c/1">',
        '<div class="tgme_widget_message" data-post="c/22">',
        '<div class="tgme_widget_message" data-post="c/x">',
        '<div class="tgme_widget_message_text js-message_text">', '<div class="tgme_widget_message_text">',
        '<a class="tgme_widget_message_reply">', '<span class="tgme_widget_message_views">',
        '<time datetime="2024-01-01T00:00:00+00:00">', '<time datetime="bad">', "</time>",
        '<a class="tme_messages_more" data-before="5">', '<span class="tgme_widget_message_meta">edited',
        '<a class="tgme_widget_message_forwarded_from_name">', '<div class="link_preview_title">',
        '<a class="tgme_widget_message_photo_wrap">', "<br>", "<br/>", "</div>", "</a>", "</span>",
        "<script>", "</script>", "<style>", "\u200b", "\u202e", "&amp;", "&#0;", "<!--", "-->",
        "1.2K", "15.3M",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_fragments, st.text(max_size=20)), max_size=60).map("".join))
def test_parse_channel_page_never_raises(html: str) -> None:
    page = parse_channel_page(html, channel="c")
    for post in page.posts:
        assert post.external_id.isdigit()
        assert post.published_at is None or post.published_at.tzinfo is UTC
        assert post.views is None or post.views >= 0
        assert "\u200b" not in post.text and "\u202e" not in post.text


@settings(max_examples=100, deadline=2000)
@given(st.binary(max_size=3000))
def test_parse_channel_page_takes_any_bytes(data: bytes) -> None:
    parse_channel_page(data, channel="c")


# odd spellings too: quirks-mode class case, a <br> in a field that is read after the text, blocks
_odd = st.sampled_from(
    ['<time class="TGME_WIDGET_MESSAGE_VIEWS">', '<span class="tgme_widget_message_views">1<br>2K</span>',
     "<p>", "<b>", "</b>", "<!DOCTYPE html>", '<div class="tgme_widget_message" data-post="c/3">'],
)  # fmt: skip
_page = st.lists(st.one_of(_fragments, _odd, st.text(max_size=20)), max_size=60).map("".join)


def _per_message(html: str) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ingest.telegram_web._fields_by_message", lambda tree, messages: None)
        return parse_channel_page(html, channel="c")


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(_page)
def test_one_page_query_reads_what_a_query_per_message_reads(html: str) -> None:
    assert parse_channel_page(html, channel="c") == _per_message(html)


_TEXT = '<div class="tgme_widget_message_text js-message_text">'


@pytest.mark.parametrize(
    "body",
    [  # fields read after the text that see its <br>s (turned into newlines on the per-message path)
        f'{_TEXT}Текст<br><span class="tgme_widget_message_views">1<br>2K</span></div>',
        f'<span class="tgme_widget_message_forwarded_from_name">Канал{_TEXT}один<br>два</div></span>',
        f'<span class="tgme_widget_message_meta">ed{_TEXT}x<br>y</div>ited</span>',
    ],
)
def test_text_read_without_edits_only_where_the_edits_cannot_show(body: str) -> None:
    html = _message("c/1", body)
    assert parse_channel_page(html, channel="c") == _per_message(html)


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_page.map(lambda html: html.encode("utf-8", "surrogatepass")), st.binary(max_size=500)))
def test_bytes_read_as_their_utf8_decoding(data: bytes) -> None:
    assert parse_channel_page(data, channel="c") == parse_channel_page(data.decode("utf-8", "replace"), channel="c")


# -- fetch_channel against a live server ---------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(SETTINGS) as c:
        yield c


def _serve_channel(server: LocalServer) -> str:
    server.route("/s/vesti_kraya", Reply(body=PAGE_1))
    server.route("/s/vesti_kraya?before=1201", Reply(body=PAGE_2))
    return server.url("/s/")


async def test_first_poll_backfills_through_data_before(local_server: LocalServer, client) -> None:
    base = _serve_channel(local_server)
    result = await fetch_channel(
        client, base=base, channel="vesti_kraya", since_id=None, backfill_pages=5, settings=SETTINGS
    )
    assert result.status is FetchStatus.OK
    assert [p.external_id for p in result.posts] == [
        "1198",
        "1199",
        "1200",
        "1201",
        "1202",
        "1203",
        "1204",
        "1206",
    ]
    assert (result.cursor, result.pages) == ("1206", 2)
    assert [r.target for r in local_server.requests()] == ["/s/vesti_kraya", "/s/vesti_kraya?before=1201"]


@pytest.mark.parametrize("inline_limit", [telegram_web.INLINE_PARSE_BYTES, 0])
async def test_small_pages_parse_on_the_loop_large_ones_in_a_thread(
    local_server: LocalServer, client, monkeypatch: pytest.MonkeyPatch, inline_limit: int
) -> None:
    parsed_in: list[int] = []
    real_parse = telegram_web.parse_channel_page

    def recording_parse(*args, **kwargs):  # the real parser, noting which thread ran it
        parsed_in.append(threading.get_ident())
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(telegram_web, "parse_channel_page", recording_parse)
    monkeypatch.setattr(telegram_web, "INLINE_PARSE_BYTES", inline_limit)
    base = _serve_channel(local_server)
    result = await fetch_channel(
        client, base=base, channel="vesti_kraya", since_id=None, backfill_pages=5, settings=SETTINGS
    )
    assert (result.status, result.pages, len(result.posts)) == (FetchStatus.OK, 2, 8)
    on_loop = [ident == threading.get_ident() for ident in parsed_in]
    assert on_loop == ([True, True] if inline_limit else [False, False])


async def test_backfill_respects_the_page_limit(local_server: LocalServer, client) -> None:
    base = _serve_channel(local_server)
    result = await fetch_channel(
        client, base=base, channel="vesti_kraya", since_id=None, backfill_pages=1, settings=SETTINGS
    )
    assert (result.pages, result.cursor, len(result.posts)) == (1, "1206", 5)
    assert len(local_server.requests()) == 1


async def test_later_poll_stops_at_the_last_seen_id(local_server: LocalServer, client) -> None:
    base = _serve_channel(local_server)
    result = await fetch_channel(
        client, base=base, channel="vesti_kraya", since_id=1203, backfill_pages=5, settings=SETTINGS
    )
    assert result.pages == 1 and result.cursor == "1206"
    assert [p.external_id for p in result.posts][-2:] == ["1204", "1206"]
    assert len(local_server.requests()) == 1


async def test_later_poll_with_a_gap_reads_back_until_the_known_id(local_server: LocalServer, client) -> None:
    base = _serve_channel(local_server)
    result = await fetch_channel(
        client, base=base, channel="vesti_kraya", since_id=1199, backfill_pages=5, settings=SETTINGS
    )
    assert result.pages == 2 and result.cursor == "1206"
    assert "1200" in {p.external_id for p in result.posts}


async def test_cursor_never_goes_backwards(local_server: LocalServer, client) -> None:
    local_server.route("/s/quiet", Reply(body=PAGE_2.replace(b"vesti_kraya", b"quiet")))
    result = await fetch_channel(
        client,
        base=local_server.url("/s/"),
        channel="quiet",
        since_id=5000,
        backfill_pages=3,
        settings=SETTINGS,
    )
    assert result.cursor == "5000"


async def test_channel_without_public_preview_is_a_permanent_error(local_server: LocalServer, client) -> None:
    local_server.route("/s/closed_channel", Reply.redirect("/closed_channel"))
    local_server.route("/closed_channel", Reply(body=b"<html><div class='tgme_page'>Join channel</div></html>"))
    result = await fetch_channel(
        client,
        base=local_server.url("/s/"),
        channel="closed_channel",
        since_id=None,
        backfill_pages=5,
        settings=SETTINGS,
    )
    assert result.status is FetchStatus.ERROR
    assert (result.error, result.permanent) == (NO_PREVIEW, True)


async def test_redirect_within_the_preview_is_fine(local_server: LocalServer, client) -> None:
    local_server.route("/s/old_name", Reply.redirect("/s/vesti_kraya", 301))
    local_server.route("/s/vesti_kraya", Reply(body=PAGE_2))
    result = await fetch_channel(
        client,
        base=local_server.url("/s/"),
        channel="old_name",
        since_id=None,
        backfill_pages=1,
        settings=SETTINGS,
    )
    assert result.status is FetchStatus.OK and len(result.posts) == 3


async def test_first_page_failure_is_an_error_with_retry_after(local_server: LocalServer, client) -> None:
    local_server.route("/s/busy", Reply.error(429, retry_after="30"))
    result = await fetch_channel(
        client,
        base=local_server.url("/s/"),
        channel="busy",
        since_id=None,
        backfill_pages=5,
        settings=SETTINGS,
    )
    assert (result.status, result.retry_after_seconds, result.http_status) == (FetchStatus.ERROR, 30.0, 429)


async def test_backfill_failure_keeps_what_was_read(local_server: LocalServer, client) -> None:
    local_server.route("/s/vesti_kraya", Reply(body=PAGE_1))
    local_server.route("/s/vesti_kraya?before=1201", Reply.error(500))
    result = await fetch_channel(
        client,
        base=local_server.url("/s/"),
        channel="vesti_kraya",
        since_id=None,
        backfill_pages=5,
        settings=SETTINGS,
    )
    assert result.status is FetchStatus.OK and len(result.posts) == 5 and result.pages == 1
    assert "backfill stopped after 1 page(s): HTTP 500 Internal Server Error" in result.notes


async def test_catch_up_failure_is_an_error_so_no_gap_is_left(local_server: LocalServer, client) -> None:
    local_server.route("/s/vesti_kraya", Reply(body=PAGE_1))
    local_server.route("/s/vesti_kraya?before=1201", Reply(body=PAGE_2, reset_after=100))
    result = await fetch_channel(
        client,
        base=local_server.url("/s/"),
        channel="vesti_kraya",
        since_id=1150,
        backfill_pages=5,
        settings=SETTINGS,
    )
    assert result.status is FetchStatus.ERROR and result.cursor is None


async def test_page_that_does_not_go_back_stops_the_walk(local_server: LocalServer, client) -> None:
    local_server.route("/s/loop", Reply(body=PAGE_1.replace(b"vesti_kraya", b"loop")))
    local_server.route("/s/loop?before=1201", Reply(body=PAGE_1.replace(b"vesti_kraya", b"loop")))
    result = await fetch_channel(
        client,
        base=local_server.url("/s/"),
        channel="loop",
        since_id=None,
        backfill_pages=10,
        settings=SETTINGS,
    )
    assert result.pages == 2 and len(local_server.requests()) == 2


def test_channel_url() -> None:
    assert channel_url("https://t.me/s/", "@news") == "https://t.me/s/news"
    assert channel_url("http://127.0.0.1:8080/s", "news", 120) == "http://127.0.0.1:8080/s/news?before=120"
