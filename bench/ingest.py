"""Ingest throughput: a first-poll backfill of ≥100k posts from a local server, end to end, beside the bare
selectolax/feedparser parse rate of the very same pages measured in the same run.

The driver generates t.me/s channel pages (20 messages each, in the markup ingest/telegram_web.py reads:
RU/UK/EN texts of 200–800 characters with <br>, links, emoji, photos, forwards, replies, link previews,
edits, "15.3K"-style view counters, rising dates) linked through `data-before`, plus RSS 2.0 feeds, and
serves them gzip-compressed (as t.me does) from framewatch's LocalServer. Each end-to-end run is a
separate child process (`--child`) that migrates a fresh SQLite file and calls `Ingestor.run_once` —
fetch → parse → store — with `tagger=None` (and, with --with-classifier, once more with the active
model). Between children the driver times, on the same bytes:

* bare selectolax: parse, select the message nodes, read id and text (the least any parser does);
* bare feedparser: `feedparser.parse` and read title and summary of each entry;
* framewatch's own parsers alone (`parse_channel_page`, `parse_feed`).

    python bench/ingest.py                          # 100k posts, 5 runs
    python bench/ingest.py --posts 20000 --runs 5 --with-classifier
    python bench/ingest.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    python bench/ingest.py --posts 20000 --runs 1 --profile /tmp/ingest.prof
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import html
import json
import math
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    fmt_mib,
    fmt_rate,
    fmt_ratio,
    median,
    print_table,
    python_child,
    run_child,
    sentences,
)

PER_PAGE = 20
START = datetime(2024, 1, 1, tzinfo=UTC)
TLD_BY_LANG = {"ru": "ru", "uk": "ua", "en": "com"}
CHANNEL_TITLES = {"ru": "Вести края", "uk": "Новини регіону", "en": "Front Line Daily"}


# -- synthetic sources ----------------------------------------------------------------------------------


def _views(rng: random.Random) -> str:
    n = int(rng.lognormvariate(8.5, 1.6))
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}K".replace(".0K", "K")
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


def _message_html(rng: random.Random, channel: str, lang: str, post_id: int, when: datetime) -> str:
    parts = sentences(rng, lang, 200, 800)
    body: list[str] = []
    if rng.random() < 0.5:  # a bold headline line, as news channels write them
        body.append(f"<b>{html.escape(parts.pop(0))}</b><br/><br/>")
    if rng.random() < 0.15:
        body.append('<i class="emoji" style="background-image:url(\'//telegram.org/img/emoji/40/E29AA1.png\')">'
                    "<b>⚡</b></i> ")  # fmt: skip
    for i, sentence in enumerate(parts):
        text = html.escape(sentence)
        if rng.random() < 0.08:
            word = text.split(" ", 1)[0]
            text = (f'<a href="https://news.example.{TLD_BY_LANG[lang]}/a/{post_id}?utm_source=telegram&amp;'
                    f'utm_medium=post" target="_blank" rel="noopener">{word}</a>{text[len(word):]}')  # fmt: skip
        body.append(text)
        if i + 1 < len(parts):
            body.append("<br/>" if rng.random() < 0.3 else " ")
    extras = []
    roll = rng.random()
    if roll < 0.10:
        extras.append(
            '<div class="tgme_widget_message_forwarded_from accent_color">Forwarded from&nbsp;'
            f'<a class="tgme_widget_message_forwarded_from_name" href="https://t.me/source_{post_id % 97}/'
            f'{post_id}"><span dir="auto">Source {post_id % 97}</span></a></div>'
        )
    elif roll < 0.20:
        extras.append(
            f'<a class="tgme_widget_message_reply" href="https://t.me/{channel}/{max(1, post_id - 3)}">'
            '<div class="tgme_widget_message_author accent_color"><span class="tgme_widget_message_author_name" '
            f'dir="auto">{CHANNEL_TITLES[lang]}</span></div><div class="tgme_widget_message_text '
            f'js-message_reply_text" dir="auto">{html.escape(parts[0][:60])}</div></a>'
        )
    if rng.random() < 0.30:
        extras.append(
            f'<a class="tgme_widget_message_photo_wrap" href="https://t.me/{channel}/{post_id}" '
            f"style=\"width:800px;background-image:url('https://cdn4.cdn-telegram.org/file/p{post_id}.jpg')\">"
            '<div class="tgme_widget_message_photo" style="padding-top:56.25%"></div></a>'
        )
    elif rng.random() < 0.07:
        extras.append(
            f'<a class="tgme_widget_message_video_player" href="https://t.me/{channel}/{post_id}">'
            '<div class="tgme_widget_message_video_wrap"><video class="tgme_widget_message_video" '
            f'src="https://cdn4.cdn-telegram.org/file/v{post_id}.mp4"></video></div></a>'
        )
    preview = ""
    if rng.random() < 0.10:
        preview = (
            f'<a class="tgme_widget_message_link_preview" href="https://news.example.{TLD_BY_LANG[lang]}/p/'
            f'{post_id}"><div class="link_preview_site_name accent_color" dir="auto">news.example</div>'
            f'<div class="link_preview_title" dir="auto">{html.escape(parts[-1][:80])}</div>'
            f'<div class="link_preview_description" dir="auto">{html.escape(parts[0][:140])}</div></a>'
        )
    edited = "edited &nbsp;" if rng.random() < 0.05 else ""
    stamp = when.isoformat()
    return f"""
          <div class="tgme_widget_message_wrap js-widget_message_wrap">
            <div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{channel}/{post_id}" data-view="eyJjIjotMTAwMSwicCI6{post_id}fQ">
              <div class="tgme_widget_message_user"><a href="https://t.me/{channel}"><i class="tgme_widget_message_user_photo bgcolor2" data-content="{CHANNEL_TITLES[lang][0]}"><img src="https://cdn4.cdn-telegram.org/file/avatar_{channel}.jpg"></i></a></div>
              <div class="tgme_widget_message_bubble">
                <i class="tgme_widget_message_bubble_tail"><svg class="bubble_icon" width="9px" height="20px" viewBox="0 0 9 20"><g fill="none"><path class="background" fill="#ffffff" d="M8,1 L9,1 L9,20 L8,20 L8,18 Z"></path></g></svg></i>
                <div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name" href="https://t.me/{channel}"><span dir="auto">{CHANNEL_TITLES[lang]}</span></a></div>
                {"".join(extras)}
                <div class="tgme_widget_message_text js-message_text" dir="auto">{"".join(body)}</div>
                {preview}
                <div class="tgme_widget_message_footer compact js-message_footer">
                  <div class="tgme_widget_message_info short js-message_info">
                    <span class="tgme_widget_message_views">{_views(rng)}</span><span class="copyonly"> views</span><span class="tgme_widget_message_meta">{edited}<a class="tgme_widget_message_date" href="https://t.me/{channel}/{post_id}"><time datetime="{stamp}" class="time">{when:%H:%M}</time></a></span>
                  </div>
                </div>
              </div>
            </div>
          </div>
"""  # noqa: E501


def channel_page(rng: random.Random, channel: str, lang: str, first_id: int, last_id: int, when: datetime) -> str:
    """Messages first_id..last_id, oldest first, with the 'older messages' link t.me puts above them."""
    title = CHANNEL_TITLES[lang]
    more = ""
    if first_id > 1:
        more = (
            '<div class="tgme_widget_message_centered js-messages_more_wrap">'
            f'<a href="/s/{channel}?before={first_id}" class="tme_messages_more js-messages_more" '
            f'data-before="{first_id}"></a></div>'
        )
    messages = []
    for post_id in range(first_id, last_id + 1):
        when += timedelta(minutes=rng.randint(5, 90))
        messages.append(_message_html(rng, channel, lang, post_id, when))
    return f"""<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>{title} – Telegram</title>
    <meta name="viewport" content="width=device-width, initial-scale=1.0, minimum-scale=1.0, maximum-scale=1.0, user-scalable=no">
    <meta property="og:title" content="{title}">
    <link rel="canonical" href="https://t.me/s/{channel}">
    <link href="//telegram.org/css/widget-frame.css?73" rel="stylesheet" media="screen">
    <script>window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');</script>
  </head>
  <body class="widget_frame_base tgme_webpreview_body">
    <header class="tgme_header search_collapsed">
      <div class="tgme_header_info">
        <div class="tgme_header_title"><span dir="auto">{title}</span></div>
        <div class="tgme_header_counter">{rng.randint(2, 900)}.{rng.randint(0, 9)}K subscribers</div>
      </div>
    </header>
    <main class="tgme_main" data-url="/{channel}">
      <div class="tgme_container">
        <div class="tgme_channel_info">
          <div class="tgme_channel_info_header">
            <div class="tgme_channel_info_header_title"><span dir="auto">{title}</span></div>
            <div class="tgme_channel_info_header_username"><a href="https://t.me/{channel}">@{channel}</a></div>
          </div>
        </div>
        <section class="tgme_channel_history js-message_history">
          {more}
{"".join(messages)}
        </section>
      </div>
    </main>
    <script src="//telegram.org/js/jquery.min.js"></script>
    <script src="//telegram.org/js/widget-frame.js?62"></script>
    <script>TWeb.init();</script>
  </body>
</html>
"""  # noqa: E501


def rss_feed(rng: random.Random, index: int, lang: str, items: int) -> str:
    host = f"wire{index}.example.{TLD_BY_LANG[lang]}"
    when = START + timedelta(days=30)
    entries = []
    for i in range(items, 0, -1):  # newest first, as feeds list them
        when -= timedelta(minutes=rng.randint(10, 180))
        parts = sentences(rng, lang, 200, 800)
        title = html.escape(parts.pop(0).rstrip(".!?"))
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in parts) or "<p>…</p>"
        link = f"https://{host}/news/{index}-{i}?utm_source=rss&amp;utm_medium=feed"
        body = f"<description><![CDATA[{paragraphs}]]></description>"
        if rng.random() < 0.3:
            body = (f"<description>{html.escape(parts[0] if parts else title)}</description>"
                    f"<content:encoded><![CDATA[{paragraphs}]]></content:encoded>")  # fmt: skip
        enclosure = ""
        if rng.random() < 0.2:
            enclosure = f'<enclosure url="https://{host}/img/{i}.jpg" length="48211" type="image/jpeg"/>'
        entries.append(
            f"    <item>\n      <title>{title}</title>\n      <link>{link}</link>\n"
            f'      <guid isPermaLink="false">{host}-{i}</guid>\n'
            f"      <pubDate>{format_datetime(when)}</pubDate>\n      {body}\n      {enclosure}\n    </item>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">\n  <channel>\n'
        f"    <title>Wire {index}</title>\n    <link>https://{host}/</link>\n"
        f"    <description>Synthetic feed for bench/ingest.py</description>\n    <language>{lang}</language>\n"
        + "".join(entries)
        + "  </channel>\n</rss>\n"
    )


@dataclass
class Corpus:
    """Everything the server serves, uncompressed (for the bare parsers) and as sent on the wire."""

    pages_per_channel: int
    channels: dict[str, dict[int | None, bytes]] = field(default_factory=dict)  # before → page
    feeds: dict[str, bytes] = field(default_factory=dict)  # path → feed
    wire: dict[str, bytes] = field(default_factory=dict)  # target → body as sent
    telegram_posts: int = 0
    feed_posts: int = 0

    @property
    def posts(self) -> int:
        return self.telegram_posts + self.feed_posts


def build_corpus(*, posts: int, pages: int, feeds: int, feed_items: int, seed: int, compress: bool) -> Corpus:
    rng = random.Random(seed)
    feed_items = min(feed_items, posts)
    feeds = min(feeds, max(0, posts // max(1, feed_items) // 10))  # feeds are at most a tenth of the posts
    wanted = max(0, posts - feeds * feed_items)
    n_channels = max(1, math.ceil(wanted / (pages * PER_PAGE)))
    corpus = Corpus(pages_per_channel=pages)

    def wire(body: bytes) -> bytes:
        return gzip.compress(body, compresslevel=6, mtime=0) if compress else body

    for c in range(n_channels):
        lang = ("ru", "uk", "en")[c % 3]
        channel = f"bench_{lang}_{c:04d}"
        total = pages * PER_PAGE
        when = START + timedelta(days=rng.randint(0, 60))
        by_before: dict[int | None, bytes] = {}
        last = total
        for p in range(pages):  # newest page first, then ?before=<first id of the newer page>
            first = last - PER_PAGE + 1
            body = channel_page(rng, channel, lang, first, last, when).encode()
            key = None if p == 0 else last + 1
            by_before[key] = body
            corpus.wire[f"/s/{channel}" + ("" if key is None else f"?before={key}")] = wire(body)
            last = first - 1
        corpus.channels[channel] = by_before
        corpus.telegram_posts += total
    for f in range(feeds):
        path = f"/feeds/wire{f:03d}.xml"
        body = rss_feed(rng, f, ("en", "ru", "uk")[f % 3], feed_items).encode()
        corpus.feeds[path] = body
        corpus.wire[path] = wire(body)
        corpus.feed_posts += feed_items
    return corpus


def serve(corpus: Corpus, compress: bool) -> Any:
    from framewatch.localserver import RSS_TYPE, LocalServer, Reply

    server = LocalServer().start()
    encoded = "gzip" if compress else None
    for target, body in corpus.wire.items():
        kind = RSS_TYPE if target.startswith("/feeds/") else "text/html; charset=utf-8"
        server.route(target, Reply(body=body, content_type=kind, encoded=encoded, etag=f'"{uuid.uuid4().hex}"'))
    return server


# -- bare parse rates -----------------------------------------------------------------------------------


def bare_selectolax(pages: list[bytes]) -> int:
    from selectolax.lexbor import LexborHTMLParser

    n = 0
    for body in pages:
        tree = LexborHTMLParser(body.decode("utf-8"))
        for message in tree.css("div.tgme_widget_message[data-post]"):
            message.attributes.get("data-post")
            node = message.css_first(".tgme_widget_message_text.js-message_text")
            if node is not None:
                node.text(deep=True)
            n += 1
    return n


def bare_feedparser(feeds: list[bytes]) -> int:
    import feedparser

    n = 0
    for body in feeds:
        for entry in feedparser.parse(body).entries:
            entry.get("title")
            entry.get("summary")
            n += 1
    return n


def framewatch_channels(pages: list[tuple[str, bytes]]) -> int:
    from ingest.telegram_web import parse_channel_page

    return sum(len(parse_channel_page(body, channel=name).posts) for name, body in pages)


def framewatch_feeds(feeds: list[tuple[str, bytes]]) -> int:
    from ingest.rss import parse_feed

    return sum(len(parse_feed(body, url=url).posts) for url, body in feeds)


def _timed(fn: Any, arg: Any) -> tuple[int, float]:
    started = time.perf_counter()
    n = fn(arg)
    return n, time.perf_counter() - started


# -- the end-to-end child -------------------------------------------------------------------------------


def child_main(spec_path: Path) -> int:
    """One fresh database, one `Ingestor.run_once` over every source; prints one JSON line."""
    spec = json.loads(spec_path.read_text())
    from framewatch.config import IngestSettings, SourceSettings
    from ingest.fetch import fetch_source
    from ingest.http import make_client
    from ingest.pipeline import Ingestor
    from storage.db import create_engine, session_scope
    from storage.migrate import upgrade
    from storage.posts import count_posts
    from storage.sources import sync_sources

    settings = IngestSettings(
        telegram_web_base=spec["base_url"] + "/s/", backfill_pages=spec["pages"], **spec.get("ingest", {})
    )
    sources = [SourceSettings(name=c, kind="telegram", channel=c) for c in spec["channels"]]
    sources += [SourceSettings(name=Path(u).stem, kind="rss", url=u) for u in spec["feeds"]]
    started = time.perf_counter()
    engine = create_engine(spec["db_url"])
    upgrade(engine)
    with session_scope(engine) as session:
        sync_sources(sources, session=session, now=datetime.now(UTC), default_interval=settings.default_interval)
    setup = time.perf_counter() - started
    tagger = None
    load_model = 0.0
    if spec.get("models_dir"):
        from classifiers.service import load_tagger

        started = time.perf_counter()
        tagger = load_tagger(Path(spec["models_dir"]), now=datetime.now(UTC))
        load_model = time.perf_counter() - started

    async def run() -> tuple[list[Any], float]:
        async with make_client(settings) as client:
            ingestor = Ingestor(engine=engine, settings=settings, client=client, fetch=fetch_source, tagger=tagger)
            began = time.perf_counter()
            reports = await ingestor.run_once()
            return reports, time.perf_counter() - began

    profiler = _thread_profiler() if spec.get("profile") else None
    reports, seconds = asyncio.run(run())
    if profiler is not None:
        profiler.dump(spec["profile"])
    with session_scope(engine) as session:
        stored = count_posts(session=session)
    engine.dispose()
    errors = [f"{r.source}: {r.error}" for r in reports if r.status == "error"]
    print(
        json.dumps(
            {
                "stored": stored,
                "new": sum(r.new for r in reports),
                "pages": sum(r.pages for r in reports),
                "seconds": seconds,
                "setup_seconds": setup,
                "load_model_seconds": load_model,
                "errors": errors[:5],
                "error_count": len(errors),
            }
        )
    )
    return 0 if not errors else 1


class _ThreadProfiler:
    """cProfile in every thread (the pipeline parses and commits in asyncio.to_thread workers)."""

    def __init__(self) -> None:
        import cProfile
        import threading

        self.profiles: list[cProfile.Profile] = []

        def start(*_: Any) -> None:
            profile = cProfile.Profile()
            self.profiles.append(profile)
            profile.enable()  # replaces this hook for the calling thread

        threading.setprofile(start)
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()

    def dump(self, path: str) -> None:
        import pstats
        import threading

        threading.setprofile(None)  # type: ignore[arg-type]
        for profile in self.profiles:
            profile.disable()
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)


def _thread_profiler() -> _ThreadProfiler:
    return _ThreadProfiler()


# -- driver ---------------------------------------------------------------------------------------------


def _pg_database(server_url: str) -> tuple[str, Any]:
    """A throwaway database on `server_url`'s server; returns (url, drop callback)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"fw_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop


class ChildFailed(Exception):
    """An end-to-end child died; the message is the last line of its stderr."""


def _e2e(
    label: str, spec: dict[str, Any], workdir: Path, run: int, postgres: str | None = None
) -> dict[str, Any]:
    drop = None
    if postgres:
        spec["db_url"], drop = _pg_database(postgres)
    else:
        db = workdir / f"e2e-{label}-{run}.db"
        spec["db_url"] = f"sqlite:///{db}"
    spec_path = workdir / f"spec-{label}-{run}.json"
    spec_path.write_text(json.dumps(spec))
    try:
        child = run_child(python_child("bench/ingest.py", "--child", str(spec_path)), timeout=3600)
    finally:
        if drop is not None:
            drop()
        if not postgres:
            for suffix in ("", "-wal", "-shm"):
                Path(str(workdir / f"e2e-{label}-{run}.db") + suffix).unlink(missing_ok=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.stderr.write(child.stderr[-4000:])
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise ChildFailed(f"end-to-end child ({label}) exited with code {child.returncode}: {last}")
    result = json.loads(lines[-1])
    result["peak_rss_kib"] = child.peak_rss_kib
    if result["error_count"]:
        sys.stderr.write(f"warning: {label}: {result['error_count']} sources failed, e.g. {result['errors']}\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000, help="posts one pass stores (default 100000)")
    parser.add_argument("--runs", type=int, default=5, help="end-to-end runs and bare-parse runs (default 5)")
    parser.add_argument("--pages", type=int, default=50, help="backfill_pages per channel (20 posts a page)")
    parser.add_argument("--feeds", type=int, default=20, help="RSS feeds (at most a tenth of the posts)")
    parser.add_argument("--feed-items", type=int, default=100, help="items per feed")
    parser.add_argument("--with-classifier", action="store_true", help="add a run line with the active model")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="registry of trained models")
    parser.add_argument("--postgres", metavar="URL", help="add a run line on a throwaway PostgreSQL database")
    parser.add_argument("--no-gzip", action="store_true", help="serve pages uncompressed")
    parser.add_argument("--per-host-concurrency", type=int, help="override ingest.per_host_concurrency")
    parser.add_argument("--concurrency", type=int, help="override ingest.concurrency")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the (first) end-to-end child into FILE")
    parser.add_argument("--seed", type=int, default=20240305)
    parser.add_argument("--dir", type=Path, help="where the SQLite files go (default: a temp dir)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.runs < 1 or args.posts < PER_PAGE:
        parser.error("--runs must be ≥ 1 and --posts ≥ 20")

    compress = not args.no_gzip
    began = time.perf_counter()
    corpus = build_corpus(
        posts=args.posts, pages=args.pages, feeds=args.feeds, feed_items=args.feed_items, seed=args.seed,
        compress=compress,
    )
    n_pages = sum(len(p) for p in corpus.channels.values())
    wire_mb = sum(len(b) for b in corpus.wire.values()) / 1e6
    print(
        f"corpus: {len(corpus.channels)} channels × {args.pages} pages × {PER_PAGE} posts + {len(corpus.feeds)} "
        f"feeds × {args.feed_items} items = {corpus.posts:,} posts; {wire_mb:,.1f} MB on the wire "
        f"({'gzip' if compress else 'identity'}); generated in {time.perf_counter() - began:.1f} s",
        flush=True,
    )
    models_dir = args.models_dir if args.models_dir.is_absolute() else Path.cwd() / args.models_dir
    with_classifier = args.with_classifier
    if with_classifier:
        from classifiers.registry import active_version

        if active_version(models_dir) is None:
            print(f"note: no active model in {models_dir}; the classifier line is skipped", flush=True)
            with_classifier = False

    pages = [(name, body) for name, by in corpus.channels.items() for body in by.values()]
    page_bytes = [body for _, body in pages]
    feeds = list(corpus.feeds.items())
    feed_bytes = [body for _, body in feeds]
    ingest_overrides = {
        k: v for k, v in (("per_host_concurrency", args.per_host_concurrency), ("concurrency", args.concurrency)) if v
    }
    workdir_ctx = tempfile.TemporaryDirectory(prefix="fw-bench-ingest-", dir=args.dir)
    server = serve(corpus, compress)
    results: dict[str, list[dict[str, Any]]] = {"e2e": [], "e2e_cls": [], "e2e_pg": []}
    bare: dict[str, list[tuple[int, float]]] = {"sel": [], "fp": [], "fw_tg": [], "fw_rss": []}
    notes: list[str] = []
    try:
        workdir = Path(workdir_ctx.name)
        base_spec = {
            "base_url": server.base_url,
            "pages": args.pages,
            "channels": list(corpus.channels),
            "feeds": [server.url(path) for path in corpus.feeds],
            "ingest": ingest_overrides,
        }
        for run in range(args.runs):
            spec = dict(base_spec, profile=args.profile if args.profile and run == 0 else None)
            server.clear_log()
            results["e2e"].append(_e2e("plain", spec, workdir, run))
            if with_classifier:
                server.clear_log()
                try:
                    results["e2e_cls"].append(
                        _e2e("cls", dict(base_spec, models_dir=str(models_dir)), workdir, run)
                    )
                except ChildFailed as exc:
                    notes.append(f"classifier line skipped: {exc}")
                    with_classifier = False
            if args.postgres:
                server.clear_log()
                results["e2e_pg"].append(_e2e("pg", dict(base_spec), workdir, run, postgres=args.postgres))
            bare["sel"].append(_timed(bare_selectolax, page_bytes))
            bare["fp"].append(_timed(bare_feedparser, feed_bytes))
            bare["fw_tg"].append(_timed(framewatch_channels, pages))
            bare["fw_rss"].append(_timed(framewatch_feeds, [(server.url(p), b) for p, b in feeds]))
            last = results["e2e"][-1]
            print(
                f"run {run + 1}/{args.runs}: end to end {last['new']:,} posts in {last['seconds']:.1f} s "
                f"({last['new'] / last['seconds']:,.0f}/s, peak RSS {fmt_mib(last['peak_rss_kib'])}); "
                f"bare selectolax {bare['sel'][-1][0] / bare['sel'][-1][1]:,.0f}/s",
                flush=True,
            )
    finally:
        server.stop()
        workdir_ctx.cleanup()

    report(args, corpus, n_pages, results, bare)
    for note in notes:
        print(f"\nNote: {note}")
    if args.profile:
        print_profile(args.profile)
    return 0


def report(
    args: argparse.Namespace,
    corpus: Corpus,
    n_pages: int,
    results: dict[str, list[dict[str, Any]]],
    bare: dict[str, list[tuple[int, float]]],
) -> None:
    def rates(pairs: list[tuple[int, float]]) -> list[float]:
        return [n / s for n, s in pairs]

    def combined(a: str, b: str) -> list[float]:
        return [(na + nb) / (sa + sb) for (na, sa), (nb, sb) in zip(bare[a], bare[b], strict=True)]

    bare_mix = combined("sel", "fp")
    bare_mix_median = median(bare_mix)
    rows: list[list[object]] = []

    def row(label: str, posts: int, values: list[float], rss: list[int] | None = None) -> None:
        m = median(values)
        rows.append(
            [
                label,
                f"{posts:,}",
                fmt_rate(m),
                f"{fmt_rate(min(values))}–{fmt_rate(max(values))}",
                fmt_mib(median(rss)) if rss else "—",
                fmt_ratio(m / bare_mix_median),
            ]
        )

    tg, fd = corpus.telegram_posts, corpus.feed_posts
    row("bare selectolax: parse + message nodes + text (t.me pages)", tg, rates(bare["sel"]))
    if fd:
        row("bare feedparser: parse + entries (RSS)", fd, rates(bare["fp"]))
    row("**baseline: bare parse of the same mix**", tg + fd, bare_mix)
    row("framewatch parsers alone (parse_channel_page + parse_feed)", tg + fd, combined("fw_tg", "fw_rss"))
    for key, label in (
        ("e2e", "**end to end, SQLite, tagger=None** (fetch → parse → store)"),
        ("e2e_cls", "end to end, SQLite, with classifier (fetch → parse → tag → store)"),
        ("e2e_pg", "end to end, PostgreSQL, tagger=None"),
    ):
        runs = results[key]
        if not runs:
            continue
        row(label, int(median([r["new"] for r in runs])), [r["new"] / r["seconds"] for r in runs],
            [r["peak_rss_kib"] for r in runs])  # fmt: skip
    print_table(
        f"Ingest: first-poll backfill of {corpus.posts:,} posts ({len(corpus.channels)} channels × "
        f"{args.pages} t.me/s pages + {len(corpus.feeds)} RSS feeds × {args.feed_items}), medians of "
        f"{args.runs} runs",
        ["measurement", "posts", "posts/s (median)", "range", "peak RSS", "÷ bare"],
        rows,
        note=(
            f"{n_pages:,} pages of {PER_PAGE} messages served gzip-compressed by LocalServer in the driver "
            "process; each end-to-end run is a child process with a fresh database (`Ingestor.run_once`, "
            "default ingest settings); peak RSS is that child's `ru_maxrss`. Bare rates are measured in the "
            "driver on the same bytes between the end-to-end runs."
            if not args.no_gzip
            else f"{n_pages:,} pages served uncompressed."
        ),
    )
    e2e = median([r["new"] / r["seconds"] for r in results["e2e"]])
    aims = [
        ["≥ 2,000 posts/s stored on SQLite", fmt_rate(e2e), "met" if e2e >= 2000 else "**missed**"],
        [
            "≥ 0.5 of the bare parse rate",
            fmt_ratio(e2e / bare_mix_median),
            "met" if e2e / bare_mix_median >= 0.5 else "**missed**",
        ],
    ]
    stored_ok = all(r["stored"] == corpus.posts for k in results for r in results[k])
    aims.append(["every post stored exactly once", "yes" if stored_ok else "no", "met" if stored_ok else "**missed**"])
    print_table("Ingest: aims (issue 2)", ["aim", "measured", ""], aims)


def print_profile(path: str, limit: int = 25) -> None:
    import io
    import pstats

    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        stats = pstats.Stats(path, stream=buffer)
        stats.sort_stats(key).print_stats(limit)
        text = buffer.getvalue()
        start = text.find("   ncalls")
        print(f"\n#### cProfile of the first end-to-end child, by {key}\n\n```text\n{text[start:].rstrip()}\n```")


if __name__ == "__main__":
    raise SystemExit(main())
