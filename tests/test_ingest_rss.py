"""RSS/Atom: exact fields from hand-written feeds, hostile XML, encodings, and fetch_feed on a live server."""

from __future__ import annotations

import time
import tracemalloc
import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framewatch.config import IngestSettings
from framewatch.localserver import RSS_TYPE, LocalServer, Reply
from ingest.feed_bytes import decode_document, prepare_feed_bytes, strip_doctype
from ingest.http import make_client
from ingest.rss import FeedError, fetch_feed, parse_feed
from ingest.types import FetchStatus, RawPost
from tests.httpserver import fixture_bytes

pytest_plugins = ["tests.httpserver"]

SETTINGS = IngestSettings(timeout="3s", max_response_bytes=2_000_000)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(SETTINGS) as c:
        yield c


def test_rss_fixture_exact_fields() -> None:
    feed = parse_feed(fixture_bytes("feeds", "wire.rss.xml"), url="https://wire.example.com/europe/rss")
    assert feed.title == "Wire World — Europe desk"
    assert feed.notes == ()
    first, second, third, fourth = feed.posts  # the duplicate guid is dropped
    assert first == RawPost(
        external_id="wire-2024-03-05-0017",
        url="https://wire.example.com/europe/grain-talks?page=2",
        title="Grain corridor talks resume in Istanbul",
        text=(
            "Negotiators met for the first time since January.\n\nNo agreement was announced after six hours of talks."
        ),
        published_at=datetime(2024, 3, 5, 6, 12, tzinfo=UTC),
        language="en",
    )
    assert second.external_id == "https://wire.example.com/europe/ceasefire-analysis"  # no guid: canonical link
    assert second.title == "Analysis: why the ceasefire keeps failing & what comes next"
    assert second.text == (
        "Three reasons\n\nFirst, neither side controls all of its own units.\n"
        "Second, monitors have no access to the front line.\n\n"
        "Third, each violation is reported twice, with opposite blame."
    )
    assert second.published_at == datetime(2024, 3, 4, 22, 45, 10, tzinfo=UTC)
    assert third.media == ("photo",) and third.published_at == datetime(2024, 3, 4, 17, 3, tzinfo=UTC)
    assert third.url == "https://wire.example.com/europe/debris-border-town"
    assert fourth.url is None and fourth.published_at is None
    assert fourth.external_id.startswith("sha256:") and len(fourth.external_id) == 7 + 64
    assert feed.summary_only == {"wire-2024-03-05-0017", "https://wire.example.com/europe/debris-border-town"}


def test_external_ids_are_stable_across_parses_and_feed_urls() -> None:
    data = fixture_bytes("feeds", "wire.rss.xml")
    a = parse_feed(data, url="https://wire.example.com/rss")
    b = parse_feed(data, url="https://mirror.example.org/other/path.xml")
    assert [p.external_id for p in a.posts] == [p.external_id for p in b.posts]


def test_atom_fixture_exact_fields() -> None:
    feed = parse_feed(fixture_bytes("feeds", "digest.atom.xml"), url="https://digest.example.net/atom.xml")
    assert feed.title == "Огляд дня"
    first, second, third = feed.posts
    assert first == RawPost(
        external_id="tag:digest.example.net,2024:entry-301",
        url="https://digest.example.net/2024/03/power-restored?a=1&b=2",
        title="Енергетики відновили живлення трьох районів",
        text=(
            "Ремонтні бригади працювали всю ніч.\n\n"
            "До ранку світло повернулося в усі будинки, крім двох вулиць у передмісті."
        ),
        published_at=datetime(2024, 3, 5, 5, 30, tzinfo=UTC),
        language="uk",
    )
    assert (second.title, second.text, second.language) == (
        "Council approves shelter upgrades",
        "Forty basements will get ventilation and lighting.",
        "en",
    )
    assert second.published_at == datetime(2024, 3, 4, 19, 0, tzinfo=UTC)  # only <updated>
    assert third.external_id == third.url == "https://digest.example.net/2024/03/no-id"
    assert feed.summary_only == {second.external_id, third.external_id}


def test_source_language_setting_wins() -> None:
    feed = parse_feed(fixture_bytes("feeds", "digest.atom.xml"), language="ru")
    assert {p.language for p in feed.posts} == {"ru"}


def test_relative_links_resolve_against_the_feed_url() -> None:
    data = (
        b'<rss version="2.0"><channel><title>t</title><item><title>a</title>'
        b"<link>/n/1?utm_source=x</link><guid>g</guid></item></channel></rss>"
    )
    [post] = parse_feed(data, url="https://host.example/feeds/main.xml").posts
    assert (post.external_id, post.url) == ("g", "https://host.example/n/1")


def test_html_in_titles_is_stripped_and_scripts_never_survive() -> None:
    data = (
        b'<rss version="2.0"><channel><title>t</title><item><guid>h1</guid>'
        b"<title>&lt;script&gt;alert(1)&lt;/script&gt;Breaking: &lt;b&gt;bold&lt;/b&gt; move</title>"
        b"<description>&lt;img src=x onerror=alert(2)&gt;Body "
        b"&lt;style&gt;p{}&lt;/style&gt;text</description>"
        b"</item></channel></rss>"
    )
    [post] = parse_feed(data).posts
    assert post.title == "Breaking: bold move"
    assert post.text == "Body text"


@pytest.mark.parametrize("name", ["billion_laughs.xml", "billion_laughs_oneline.xml"])
def test_billion_laughs_is_not_expanded(name: str) -> None:
    data = fixture_bytes("feeds", name)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        feed = parse_feed(data, url="https://lol.example.com/rss")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 30_000_000  # the expanded document would be ~3 GB
    assert "DOCTYPE removed (entity declarations are not processed)" in feed.notes
    assert all(len(p.text) < 1000 and len(p.title) < 1000 for p in feed.posts)
    assert all("lollol" not in p.text + p.title for p in feed.posts)


def test_billion_laughs_keeps_the_ordinary_items() -> None:
    feed = parse_feed(fixture_bytes("feeds", "billion_laughs.xml"))
    assert [(p.external_id, p.text) for p in feed.posts][-1] == ("lol-2", "Plain text survives.")


def test_quadratic_blowup_is_not_expanded() -> None:
    big = "A" * 100_000
    data = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{big}">]>'
        '<rss version="2.0"><channel><title>q</title>'
        f"<item><guid>q1</guid><description>{'&a;' * 20_000}</description></item></channel></rss>"
    ).encode()
    started = time.perf_counter()
    [post] = parse_feed(data).posts
    assert time.perf_counter() - started < 5
    assert len(post.text) < 200_000 and big not in post.text


def test_external_entities_are_never_resolved() -> None:
    [post] = parse_feed(fixture_bytes("feeds", "xxe.xml")).posts
    assert post.external_id == "xxe-1"
    assert "root:" not in post.text and "/bin/" not in post.text


def test_strip_doctype_handles_quotes_brackets_and_comments() -> None:
    text = '<?xml version="1.0"?>\n<!-- c --><!DOCTYPE x [ <!ENTITY a "]>" > <!ENTITY b \'>\'> ]><rss/>'
    assert strip_doctype(text) == ('<?xml version="1.0"?>\n<!-- c --><rss/>', True)
    assert strip_doctype("<rss><!DOCTYPE in body></rss>") == ("<rss><!DOCTYPE in body></rss>", False)
    assert strip_doctype('<!DOCTYPE rss PUBLIC "-//Netscape//DTD RSS 0.91//EN" "http://x/rss.dtd"><rss/>') == (
        "<rss/>",
        True,
    )


def test_malformed_xml_is_read_leniently() -> None:
    feed = parse_feed(fixture_bytes("feeds", "malformed.rss.xml"))
    assert [p.external_id for p in feed.posts] == ["broken-1", "broken-2"]
    assert feed.posts[0].title == "First item & an unescaped ampersand"
    assert feed.posts[1].text == "Control character here: end."
    assert "malformed XML; read with the lenient parser" in feed.notes


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html><body><h1>Welcome</h1><p>Not a feed</p></body></html>",
        b"\x00\xff garbage",
        b'{"json": true}',
    ],
)
def test_not_a_feed_is_an_error(data: bytes) -> None:
    with pytest.raises(FeedError, match="not an RSS/Atom feed"):
        parse_feed(data)


def _cyrillic(encoding: str, declared: str) -> bytes:
    return fixture_bytes("feeds", "cyrillic.rss.xml").decode().replace("ENCODING", declared).encode(encoding)


@pytest.mark.parametrize(
    ("encoding", "declared", "http_charset", "note"),
    [
        ("cp1251", "windows-1251", None, None),
        ("koi8-r", "koi8-r", None, None),
        ("utf-8", "windows-1251", None, "declared cp1251 but the bytes are UTF-8"),
        ("cp1251", "iso-8859-1", None, "declared iso8859-1 but the text is windows-1251"),
        ("cp1251", "utf-8", None, "not valid UTF-8; decoded as windows-1251"),
        ("cp1251", "utf-8", "windows-1251", None),  # the HTTP header is right, the declaration wrong
        ("utf-16", "utf-16", None, None),
    ],
)
def test_cyrillic_feeds_in_any_labelled_or_mislabelled_charset(
    encoding: str, declared: str, http_charset: str | None, note: str | None
) -> None:
    feed = parse_feed(_cyrillic(encoding, declared), charset=http_charset)
    [post] = feed.posts
    assert feed.title == "Городские новости"
    assert post.title == "Мэрия отчиталась о ремонте дорог"
    assert post.text == "В этом году отремонтировали двенадцать улиц и два моста."
    assert post.language == "ru"
    if note:
        assert note in feed.notes


def test_western_latin1_is_not_mistaken_for_cyrillic() -> None:
    data = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>Le Monde démo</title>'
        "<item><guid>fr-1</guid><title>Élections régionales : le débat à Genève</title>"
        "<description>Les électeurs ont reçu leurs bulletins mercredi.</description></item></channel></rss>"
    ).encode("latin-1")
    feed = parse_feed(data)
    assert feed.posts[0].title == "Élections régionales : le débat à Genève"
    assert feed.notes == ()


def test_invalid_utf8_bytes_are_replaced_not_fatal() -> None:
    data = fixture_bytes("feeds", "cyrillic.rss.xml").decode().replace("ENCODING", "utf-8").encode()
    data = data.replace("двенадцать".encode(), b"\xff\xfe" + "двенадцать".encode())
    feed = parse_feed(data)
    [post] = feed.posts
    assert "двенадцать" in post.text and "\ufffd" in post.text
    assert "invalid UTF-8 (2 bad sequences replaced)" in feed.notes


def test_decode_document_boms() -> None:
    assert decode_document(b"\xef\xbb\xbf<rss/>")[:2] == ("<rss/>", "utf-8")
    assert decode_document("<rss/>".encode("utf-16"))[0] == "<rss/>"


_ITEM = '<rss version="2.0"><channel><item><title>{0}</title><description>{0}</description></item></channel></rss>'


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: _ITEM.format(t).encode()))
def test_feed_parser_never_raises_anything_but_feed_error(data: bytes) -> None:
    try:
        feed = parse_feed(data)
    except FeedError:
        return
    for post in feed.posts:
        assert post.external_id and len(post.external_id) <= 500
        assert post.published_at is None or post.published_at.tzinfo is UTC


_CHARREFS = st.one_of(
    st.integers(min_value=0, max_value=0x11_0000 + 10).map(lambda c: f"&#{c};"),
    st.integers(min_value=0, max_value=2**70).map(lambda c: f"&#x{c:X};"),
    st.sampled_from(["&#xD800;", "&#xDFFF;", "&#55296;", "&#x110000;", "&#" + "9" * 5000 + ";"]),
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(refs=st.lists(_CHARREFS, min_size=1, max_size=5), lenient=st.booleans())
def test_numeric_character_references_to_any_code_point(refs: list[str], lenient: bool) -> None:
    """A reference to a surrogate or past U+10FFFF (`&#xD800;`) sent feedparser's lenient parser into
    UnicodeEncodeError, ValueError or OverflowError, failing the feed every poll. References to
    characters XML forbids are dropped, like the raw characters; the rest are read."""
    text = "a" + "".join(refs) + "b"
    item = f"<item><title>{text}</title><guid>g{text}</guid><description>{text}</description></item>"
    feed = f'<rss version="2.0"><channel><title>t</title>{item}</channel>{"" if lenient else "</rss>"}'
    (post,) = parse_feed(feed.encode()).posts
    for value in (post.title, post.text, post.external_id):
        value.encode("utf-8")  # no surrogates: the database drivers would refuse them
        # (NFD: a reference to a combining mark joins the "a" before it)
        assert unicodedata.normalize("NFD", value).startswith(("a", "ga")) and value.endswith("b")


def test_legal_character_references_are_kept() -> None:
    item = "<item><title>&#x0000041;&#1041;&#x1F600;&#9;x</title><guid>g</guid></item>"
    (post,) = parse_feed(f'<rss version="2.0"><channel>{item}</channel></rss>'.encode()).posts
    assert post.title == "AБ\U0001f600 x"


_LINKED_ITEM = (
    '<rss version="2.0"><channel><item><title>t</title><link>{0}</link><guid>{1}</guid></item></channel></rss>'
)
_URLISH = st.text(alphabet="htps:/[]@%?#&=.:-_~0123456789abcdefxyz ", max_size=60)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(link=st.one_of(_URLISH, _URLISH.map(lambda t: "http://" + t), _URLISH.map(lambda t: "/" + t)), guid=_URLISH)
def test_feed_parser_survives_any_entry_link(link: str, guid: str) -> None:
    """Links come from the remote feed and are resolved against the feed's URL: whatever they are
    (unclosed IPv6 brackets, bad ports, junk), the feed parses and every URL kept is http(s)."""
    from xml.sax.saxutils import escape

    feed = parse_feed(_LINKED_ITEM.format(escape(link), escape(guid)).encode(), url="http://feeds.example.org/f")
    for post in feed.posts:
        assert post.url is None or post.url.startswith(("http://", "https://"))


def test_an_unsplittable_entry_link_costs_that_link_not_the_feed() -> None:
    """One item whose link urllib cannot split ("http://[bad" raised ValueError out of parse_feed, so the
    whole source failed every poll until it was disabled) keeps its text and guid, without a URL."""
    feed = parse_feed(
        b'<rss version="2.0"><channel><title>t</title>'
        b"<item><title>A</title><link>http://[bad/x</link><guid>g1</guid><description>one</description></item>"
        b"<item><title>B</title><link>/rel</link><guid>g2</guid><description>two</description></item>"
        b"</channel></rss>",
        url="http://feeds.example.org/f",
    )
    assert [(p.external_id, p.url) for p in feed.posts] == [("g1", None), ("g2", "http://feeds.example.org/rel")]


@settings(max_examples=100, deadline=1000)
@given(st.binary(max_size=3000))
def test_prepare_feed_bytes_always_yields_utf8(data: bytes) -> None:
    clean, _ = prepare_feed_bytes(data)
    clean.decode("utf-8")


# -- fetch_feed against a live server ------------------------------------------------------------------


async def test_fetch_feed_then_conditional_poll_returns_not_modified(local_server: LocalServer, client) -> None:
    local_server.route(
        "/rss",
        Reply(
            body=fixture_bytes("feeds", "wire.rss.xml"),
            content_type=RSS_TYPE,
            etag='"wire-1"',
            last_modified="Tue, 05 Mar 2024 10:30:00 GMT",
        ),
    )
    first = await fetch_feed(client, url=local_server.url("/rss"), etag=None, last_modified=None, settings=SETTINGS)
    assert first.status is FetchStatus.OK and len(first.posts) == 4
    assert (first.etag, first.last_modified, first.http_status) == (
        '"wire-1"',
        "Tue, 05 Mar 2024 10:30:00 GMT",
        200,
    )
    second = await fetch_feed(
        client,
        url=local_server.url("/rss"),
        etag=first.etag,
        last_modified=first.last_modified,
        settings=SETTINGS,
    )
    assert second.status is FetchStatus.NOT_MODIFIED and second.posts == ()
    assert second.etag == '"wire-1"' and second.http_status == 304
    request = local_server.requests("/rss")[-1]
    assert request.headers["if-none-match"] == '"wire-1"'
    assert request.headers["if-modified-since"] == "Tue, 05 Mar 2024 10:30:00 GMT"


async def test_a_validator_we_cannot_send_back_is_dropped_not_kept(local_server: LocalServer, client) -> None:
    """A server's ETag / Last-Modified with a non-ASCII or control character used to be stored and sent
    back, and httpx refused every later request of that source (UnicodeEncodeError) until ingest
    disabled it. Now such a validator is not kept, and one already stored is not sent: plain GETs."""
    local_server.route(
        "/odd",
        Reply(
            body=fixture_bytes("feeds", "wire.rss.xml"),
            content_type=RSS_TYPE,
            etag='"caf\xe9"',
            last_modified="Tue, 05 Mar 2024 10:30:00 GMT\x7f",
        ),
    )
    url = local_server.url("/odd")
    first = await fetch_feed(client, url=url, etag=None, last_modified=None, settings=SETTINGS)
    assert first.status is FetchStatus.OK and (first.etag, first.last_modified) == (None, None)
    stored = await fetch_feed(client, url=url, etag='"caf\xe9"', last_modified="x\ny", settings=SETTINGS)
    assert stored.status is FetchStatus.OK and len(stored.posts) == 4, stored.error
    request = local_server.requests("/odd")[-1]
    assert "if-none-match" not in request.headers and "if-modified-since" not in request.headers


async def test_fetch_feed_gzip_and_http_charset(local_server: LocalServer, client) -> None:
    body = _cyrillic("cp1251", "utf-8")
    local_server.route("/ru", Reply(body=body, gzip=True, content_type="text/xml; charset=windows-1251"))
    result = await fetch_feed(client, url=local_server.url("/ru"), etag=None, last_modified=None, settings=SETTINGS)
    assert result.status is FetchStatus.OK
    assert result.posts[0].title == "Мэрия отчиталась о ремонте дорог"


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (Reply.error(500), "HTTP 500 Internal Server Error", None),
        (Reply.error(429, retry_after="600"), "HTTP 429 Too Many Requests", 600.0),
        (Reply(body=b"<html><p>Service page</p></html>"), "not an RSS/Atom feed", None),
        (Reply.gzip_bomb(50_000_000), "response too large (over 2000000 bytes)", None),
    ],
)
async def test_fetch_feed_errors_become_results(
    local_server: LocalServer, client, reply: Reply, error: str, retry_after: float | None
) -> None:
    local_server.route("/bad", reply)
    result = await fetch_feed(client, url=local_server.url("/bad"), etag=None, last_modified=None, settings=SETTINGS)
    assert result.status is FetchStatus.ERROR and result.posts == ()
    assert result.error is not None and result.error.startswith(error)
    assert result.retry_after_seconds == retry_after
