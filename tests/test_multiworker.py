"""Several `framewatch run` processes sharing one PostgreSQL database, as a scaled-out deployment runs.

Three `--role ingest` and two `--role deliver` processes (real subprocesses, real CLI) against a local
HTTP server playing 500 feeds and t.me/s channels and the fake Bot API. Each ingest worker sends its
own User-Agent, so the server's request log says which worker fetched what and when. One ingest worker
is killed with SIGKILL in the middle of the second poll round; its leased sources must be taken over
once their leases expire, and nothing may be lost or stored, fetched or sent twice.

The synthetic web (SyntheticWeb, write_config, WorkerProcess) is also used by test_pg_resilience.py
and bench/scale.py.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import pytest
import sqlalchemy as sa

from framewatch.localserver import ATOM_TYPE, HTML_TYPE, RSS_TYPE, LocalServer, RecordedRequest, Reply
from tests.cli import framewatch_command

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "classifiers" / "corpus"
TG_PAGE_SIZE = 10  # messages per t.me/s page (t.me shows about 20; fewer makes paging common)
FEED_WINDOW = 15  # items a feed lists, newest first


# -- a synthetic web of feeds and channels -----------------------------------------------------------


def corpus_texts() -> list[str]:
    """Real-looking news and channel texts (the shipped seed corpus), so the tagger tags and alerts fire."""
    texts: list[str] = []
    for path in sorted(CORPUS.glob("seed-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(" ".join(json.loads(line)["text"].split()))
    return texts


@dataclass(frozen=True, slots=True)
class SyntheticPost:
    external_id: str
    title: str
    text: str
    url: str
    published: datetime


@dataclass
class SyntheticSource:
    name: str
    kind: str  # rss | atom | telegram
    path: str  # the first page's path on the server
    posts: list[SyntheticPost] = field(default_factory=list)
    next_id: int = 1

    @property
    def channel(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class SyntheticWeb:
    """`count` sources on `server`: a third RSS 2.0, a sixth Atom, half t.me/s channels (some two pages).

    Pages are rendered in the markup of tests/fixtures (feeds/wire.rss.xml, feeds/digest.atom.xml,
    telegram/vesti_kraya_*.html) from each source's current posts; `publish` adds posts, `delay` makes
    every answer wait (a slow or distant server). Feeds carry an ETag, so unchanged feeds answer 304.
    """

    def __init__(
        self,
        server: LocalServer,
        count: int,
        *,
        seed: int = 6,
        first_posts: tuple[int, int] = (4, 14),
        now: datetime | None = None,
    ) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.texts = corpus_texts()
        self.delay = 0.0
        self.sources: list[SyntheticSource] = []
        self._cache: dict[tuple[str, str], Reply] = {}
        self._lock = threading.Lock()  # the server's threads render while the test publishes
        self._text_at = 0
        now = now or datetime.now(UTC)
        for i in range(count):
            kind = "telegram" if i % 2 else ("atom" if i % 6 == 4 else "rss")
            if kind == "telegram":
                source = SyntheticSource(f"tg-{i:04d}", kind, f"/s/chan_{i:04d}")
                source.next_id = self.rng.randint(100, 5000)
            else:
                source = SyntheticSource(f"feed-{i:04d}", kind, f"/feeds/{i:04d}.xml")
            self.sources.append(source)
            server.route(source.path, self._handler(source))
            self._publish(source, self.rng.randint(*first_posts), now - timedelta(hours=1))

    # -- what the test configures and expects -------------------------------------------------------

    def source_settings(self, interval: str) -> list[dict[str, Any]]:
        out = []
        for s in self.sources:
            entry: dict[str, Any] = {"name": s.name, "interval": interval}
            if s.kind == "telegram":
                entry |= {"kind": "telegram", "channel": s.channel}
            else:
                entry |= {"kind": "rss", "url": self.server.url(s.path)}
            out.append(entry)
        return out

    def expected(self) -> set[tuple[str, str]]:
        with self._lock:
            return {(s.name, p.external_id) for s in self.sources for p in s.posts}

    def by_path(self) -> dict[str, SyntheticSource]:
        return {s.path: s for s in self.sources}

    def publish(self, per_source: tuple[int, int], now: datetime | None = None) -> int:
        """Add a random number of new posts to every source; returns how many."""
        now = now or datetime.now(UTC)
        return sum(self._publish(s, self.rng.randint(*per_source), now) for s in self.sources)

    # -- rendering ------------------------------------------------------------------------------------

    def _publish(self, source: SyntheticSource, n: int, until: datetime) -> int:
        with self._lock:
            self._add_posts(source, n, until)
            self._cache = {key: reply for key, reply in self._cache.items() if key[0] != source.path}
        return n

    def _add_posts(self, source: SyntheticSource, n: int, until: datetime) -> None:
        for k in range(n):
            number = source.next_id
            source.next_id += 1 if self.rng.random() < 0.9 else 2  # a deleted message leaves a gap
            text = self.texts[self._text_at % len(self.texts)]
            self._text_at += 1
            # A unique lead so each post is its own story (alerts dedupe near-identical texts).
            body = f"Bulletin {source.name} no. {number}: {text}"
            title = " ".join(body.split()[:9])
            if source.kind == "telegram":
                ext, url = str(number), f"https://t.me/{source.channel}/{number}"
            else:
                ext, url = (
                    f"{source.name}-item-{number}",
                    f"https://news{number % 7}.example.org/{source.name}/{number}",
                )
            published = until - timedelta(minutes=n - k)
            source.posts.append(SyntheticPost(ext, title, body, url, published))

    def _handler(self, source: SyntheticSource):  # type: ignore[no-untyped-def]
        def answer(request: RecordedRequest) -> Reply:
            key = (source.path, request.query)
            with self._lock:
                reply = self._cache.get(key)
                if reply is None:
                    reply = self._cache[key] = self._render(source, request.query)
            return Reply(body=reply.body, content_type=reply.content_type, etag=reply.etag, delay=self.delay)

        return answer

    def _render(self, source: SyntheticSource, query: str) -> Reply:
        if source.kind == "telegram":
            before = int(query.removeprefix("before=")) if query.startswith("before=") else None
            body = channel_page(source, before)
            return Reply(body=body, content_type=HTML_TYPE)
        newest = list(reversed(source.posts))[:FEED_WINDOW]
        if source.kind == "atom":
            body, ctype = atom_feed(source, newest), ATOM_TYPE
        else:
            body, ctype = rss_feed(source, newest), RSS_TYPE
        return Reply(body=body, content_type=ctype, etag=f'"{zlib.crc32(body):08x}"')


def rss_feed(source: SyntheticSource, items: Sequence[SyntheticPost]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/">\n  <channel>\n'
        f"    <title>{source.name} desk</title>\n    <link>https://example.org/{source.name}</link>\n"
        "    <description>Synthetic feed written for framewatch.</description>\n"
    ]
    for p in items:
        parts.append(
            f"    <item>\n      <title>{xml_escape(p.title)}</title>\n"
            f"      <link>{xml_escape(p.url)}?utm_source=rss</link>\n"
            f'      <guid isPermaLink="false">{p.external_id}</guid>\n'
            f"      <pubDate>{format_datetime(p.published)}</pubDate>\n"
            f"      <description><![CDATA[<p>{html.escape(p.text)}</p>]]></description>\n    </item>\n"
        )
    parts.append("  </channel>\n</rss>\n")
    return "".join(parts).encode()


def atom_feed(source: SyntheticSource, items: Sequence[SyntheticPost]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f'  <title type="text">{source.name}</title>\n  <id>urn:framewatch:{source.name}</id>\n'
        f"  <updated>{(items[0].published if items else datetime(2024, 1, 1, tzinfo=UTC)).isoformat()}"
        "</updated>\n"
    ]
    for p in items:
        parts.append(
            f"  <entry>\n    <id>{p.external_id}</id>\n    <title>{xml_escape(p.title)}</title>\n"
            f'    <link rel="alternate" href="{xml_escape(p.url)}"/>\n'
            f"    <published>{p.published.isoformat()}</published>\n"
            f"    <updated>{p.published.isoformat()}</updated>\n"
            f'    <content type="html">{xml_escape(f"<p>{html.escape(p.text)}</p>")}</content>\n  </entry>\n'
        )
    parts.append("</feed>\n")
    return "".join(parts).encode()


_TG_HEAD = """<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>{title} – Telegram</title>
    <link rel="canonical" href="https://t.me/s/{channel}">
  </head>
  <body class="widget_frame_base tgme_webpreview_body">
    <main class="tgme_main" data-url="/{channel}">
      <div class="tgme_container">
        <div class="tgme_channel_info">
          <div class="tgme_channel_info_header">
            <div class="tgme_channel_info_header_title"><span dir="auto">{title}</span></div>
          </div>
        </div>
        <section class="tgme_channel_history js-message_history">
"""
_TG_MORE = """          <div class="tgme_widget_message_centered js-messages_more_wrap">
            <a href="/s/{channel}?before={before}" class="tme_messages_more js-messages_more"
               data-before="{before}"></a>
          </div>
"""
_TG_MESSAGE = """          <div class="tgme_widget_message_wrap js-widget_message_wrap">
            <div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{channel}/{id}">
              <div class="tgme_widget_message_bubble">
                <div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name"
                  href="https://t.me/{channel}"><span dir="auto">{title}</span></a></div>
                <div class="tgme_widget_message_text js-message_text" dir="auto">{text}</div>
                <div class="tgme_widget_message_footer compact js-message_footer">
                  <div class="tgme_widget_message_info short js-message_info">
                    <span class="tgme_widget_message_views">{views}</span><span class="copyonly"> views</span><span
                      class="tgme_widget_message_meta"><a class="tgme_widget_message_date"
                      href="https://t.me/{channel}/{id}"><time datetime="{when}" class="time">{hhmm}</time></a></span>
                  </div>
                </div>
              </div>
            </div>
          </div>
"""
_TG_TAIL = """        </section>
      </div>
    </main>
  </body>
</html>
"""


def channel_page(source: SyntheticSource, before: int | None) -> bytes:
    """One t.me/s page: the newest TG_PAGE_SIZE messages older than `before`, oldest first, with the
    "more" link t.me puts above them when older messages exist."""
    older = [p for p in source.posts if before is None or int(p.external_id) < before]
    page = older[-TG_PAGE_SIZE:]
    title = html.escape(source.name)
    parts = [_TG_HEAD.format(title=title, channel=source.channel)]
    if page and len(older) > len(page):
        parts.append(_TG_MORE.format(channel=source.channel, before=page[0].external_id))
    for p in page:
        parts.append(
            _TG_MESSAGE.format(
                channel=source.channel,
                id=p.external_id,
                title=title,
                text=html.escape(p.text),
                views=f"{(int(p.external_id) * 37) % 900 + 10}",
                when=p.published.isoformat(),
                hhmm=p.published.strftime("%H:%M"),
            )
        )
    parts.append(_TG_TAIL)
    return "".join(parts).encode()


# -- configuration and worker processes ----------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(
    path: Path,
    *,
    database_url: str,
    models_dir: Path,
    sources: Iterable[dict[str, Any]],
    sections: dict[str, dict[str, Any]],
) -> Path:
    lines = ["[database]", f"url = {_toml_value(database_url)}"]
    for key, value in sections.pop("database", {}).items():
        lines.append(f"{key} = {_toml_value(value)}")
    lines += ["[classifier]", f"models_dir = {_toml_value(str(models_dir))}"]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    for source in sources:
        lines.append("[[sources]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in source.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class WorkerProcess:
    """`framewatch run --role ROLE` as its own process; its User-Agent (and log file) is its name."""

    def __init__(self, name: str, role: str, config: Path, log_dir: Path) -> None:
        self.name, self.role = name, role
        self.log_path = log_dir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWATCH_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        env["FRAMEWATCH_INGEST__USER_AGENT"] = name
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                framewatch_command("--config", str(config), "run", "--role", role),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def ready(self) -> bool:
        return "framewatch running" in self.log()

    def kill(self) -> None:
        """kill -9: no shutdown handler, no lease released, the connection just drops."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0, *, signal_first: bool = True) -> int | None:
        if self.alive():
            if signal_first:  # a second SIGTERM during shutdown would (rightly) force-quit the worker
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} (exit {self.proc.poll()}) ---\n" + "\n".join(self.log().splitlines()[-lines:])


def stop_all(workers: Iterable[WorkerProcess]) -> None:
    for w in workers:
        if w.alive():
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        w.stop(signal_first=False)


def wait_until(
    predicate: Any, *, timeout: float, what: str, workers: Sequence[WorkerProcess] = (), every: float = 0.2
) -> Any:
    """Poll `predicate` until it is truthy; fail naming `what` (with the workers' logs) on timeout or
    when a worker that should be running has died."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        dead = [w for w in workers if not w.alive()]
        if dead:
            pytest.fail(f"{what}: worker died\n" + "\n".join(w.tail() for w in dead))
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n" + "\n".join(w.tail(15) for w in workers))
        time.sleep(every)


def stored_keys(engine: sa.Engine) -> Counter[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT s.name, p.external_id FROM post p JOIN source s ON s.id = p.source_id"))
        return Counter((name, ext) for name, ext in rows)


def source_rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT name, lease_owner, lease_expires_at, last_success_at, consecutive_failures, "
                "last_error FROM source"
            )
        )
        return {r.name: r._asdict() for r in rows}


def request_wall_time(request: RecordedRequest) -> float:
    """The LocalServer logs time.monotonic(); leases are wall-clock. Same process, so one offset."""
    return request.at + (time.time() - time.monotonic())


# -- the scenario ---------------------------------------------------------------------------------------

SOURCES = 500
INTERVAL = 15.0  # seconds between polls of one source
IN_FLIGHT_GRACE = 3.0  # how late the server may log a request the killed worker sent before it died
ROUND2_DELAY = 0.5  # seconds each answer takes in round 2, so a killed worker has polls in flight
INGEST_WORKERS = ("ingest-a", "ingest-b", "ingest-c")
DELIVER_WORKERS = ("deliver-a", "deliver-b")
TOKEN = "123456789:AAFrameWatchMultiWorkerTestTokenXyz123"
SUBSCRIBERS = 40


def _ingest_section(server: LocalServer) -> dict[str, Any]:
    return {
        "telegram_web_base": server.url("/s/"),
        "tick": "0.2s",
        "timeout": "3s",
        "backfill_pages": 2,
        "concurrency": 8,
        "per_host_concurrency": 8,  # every synthetic source is on 127.0.0.1
        "default_interval": f"{INTERVAL:g}s",
        # Longer than a round-2 poll (0.5 s per answer plus waiting for a slot), short enough to wait for.
        "lease": "10s",
    }


def _subscribe(engine: sa.Engine, web: SyntheticWeb, now: datetime) -> None:
    """Subscribers who each follow three sources, any frame: a few hundred alerts from round 2."""
    from storage.db import session_scope
    from storage.subscribers import SubscriptionSpec, add_subscription, ensure_subscriber

    rng = random.Random(66)
    names = [s.name for s in web.sources]
    with session_scope(engine) as session:
        for k in range(SUBSCRIBERS):
            sub = ensure_subscriber(5_000_000 + k, session=session, now=now, user_id=5_000_000 + k)
            assert sub.id is not None
            spec = SubscriptionSpec(sources=tuple(sorted(rng.sample(names, 3))))
            add_subscription(sub.id, spec, session=session, now=now)


def _round_requests(server: LocalServer, since: float) -> list[RecordedRequest]:
    return [r for r in server.requests() if r.at >= since]


def _assert_spacing(requests: Sequence[RecordedRequest], skip: set[str], interval: float) -> None:
    """No source (page) fetched twice within one interval: a second fetch before the interval is over
    would mean two workers polled it, or one polled it before its lease and schedule allowed."""
    by_target: dict[str, list[RecordedRequest]] = defaultdict(list)
    for r in requests:
        by_target[r.target].append(r)
    too_close = []
    for target, rs in by_target.items():
        if target.split("?")[0] in skip:
            continue
        rs.sort(key=lambda r: r.at)
        for a, b in itertools.pairwise(rs):
            if b.at - a.at < interval - 0.05:
                too_close.append((target, a.headers.get("user-agent"), b.headers.get("user-agent"), b.at - a.at))
    assert not too_close, f"fetched twice within {interval}s: {too_close[:10]}"


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(420)
async def test_ingest_and_deliver_workers_share_postgres_and_survive_kill_9(
    tmp_path: Path, pg_engine: sa.Engine, models_dir: Path
) -> None:
    from tests.fakebotapi import FakeBotAPI

    db_url = pg_engine.url.render_as_string(hide_password=False)
    workers: list[WorkerProcess] = []
    async with FakeBotAPI(TOKEN) as api:
        with LocalServer() as server:
            web = SyntheticWeb(server, SOURCES)
            round1 = web.expected()
            assert 3000 <= len(round1) <= 6000
            _subscribe(pg_engine, web, datetime.now(UTC))
            config = write_config(
                tmp_path / "framewatch.toml",
                database_url=db_url,
                models_dir=models_dir,
                sources=web.source_settings(f"{INTERVAL:g}s"),
                sections={
                    "database": {"pool_size": 4},
                    "ingest": _ingest_section(server),
                    "telegram": {"token": TOKEN, "api_base_url": api.base_url, "base_file_url": api.base_file_url},
                },
            )
            try:
                # All five start at once, as systemd would start them, on an empty source table.
                for name in INGEST_WORKERS:
                    workers.append(WorkerProcess(name, "ingest", config, tmp_path))
                for name in DELIVER_WORKERS:
                    workers.append(WorkerProcess(name, "deliver", config, tmp_path))
                await asyncio.to_thread(
                    _scenario,
                    server=server,
                    web=web,
                    engine=pg_engine,
                    api=api,
                    workers=workers,
                    round1=round1,
                    loop=asyncio.get_running_loop(),
                )
            finally:
                await asyncio.to_thread(stop_all, workers)
    for w in workers:
        if w.name != INGEST_WORKERS[0]:  # the one we killed
            assert w.proc.returncode == 0, w.tail()
            assert "Traceback" not in w.log(), w.tail(80)


def _scenario(
    *,
    server: LocalServer,
    web: SyntheticWeb,
    engine: sa.Engine,
    api: Any,
    workers: list[WorkerProcess],
    round1: set[tuple[str, str]],
    loop: asyncio.AbstractEventLoop,
) -> None:
    ingest = [w for w in workers if w.role == "ingest"]
    start = time.monotonic()
    paths = web.by_path()

    # Round 1: every source polled once, every post stored once, the work shared.
    wait_until(
        lambda: len(source_rows(engine)) == SOURCES and all(r["last_success_at"] for r in source_rows(engine).values()),
        timeout=150,
        what="round 1: every source polled",
        workers=workers,
    )
    keys = stored_keys(engine)
    assert max(keys.values()) == 1
    assert set(keys) == round1, f"missing {len(round1 - set(keys))}, unexpected {len(set(keys) - round1)}"
    first = _round_requests(server, start)
    assert {r.path for r in first} >= set(paths), "some source was never fetched"
    _assert_spacing(first, skip=set(), interval=INTERVAL)
    round1_workers = Counter(r.headers.get("user-agent") for r in first)
    assert len(round1_workers) >= 2, f"round 1 was not shared: {round1_workers}"
    print(f"round 1: {len(round1)} posts in {time.monotonic() - start:.1f}s, requests {dict(round1_workers)}")

    # Round 2: new posts everywhere, slow answers; kill -9 one worker while it has polls in flight.
    web.delay = ROUND2_DELAY
    switch = time.monotonic()
    added = web.publish((1, 3))
    expected = web.expected()
    assert len(expected) == len(round1) + added
    victim = ingest[0]

    def victim_busy() -> bool:
        recent = _round_requests(server, switch)
        per_worker = Counter(r.headers.get("user-agent") for r in recent)
        mine = [r.at for r in recent if r.headers.get("user-agent") == victim.name]
        return all(per_worker[w.name] >= 5 for w in ingest) and bool(mine) and time.monotonic() - max(mine) < 0.2

    wait_until(
        victim_busy, timeout=INTERVAL + 60, what="round 2 under way on all ingest workers", workers=workers, every=0.02
    )
    victim.kill()
    killed_at = time.time()
    leases = {n: r for n, r in source_rows(engine).items() if r["lease_owner"] is not None}
    last_ua: dict[str, str] = {}
    for r in sorted(_round_requests(server, switch), key=lambda r: r.at):
        source = paths.get(r.path)
        if source is not None:
            last_ua[source.name] = r.headers.get("user-agent", "?")
    victim_owners = {row["lease_owner"] for n, row in leases.items() if last_ua.get(n) == victim.name}
    assert len(victim_owners) == 1, f"cannot tell the killed worker's lease owner: {victim_owners}"
    owner = victim_owners.pop()
    orphans = {n: row["lease_expires_at"].timestamp() for n, row in leases.items() if row["lease_owner"] == owner}
    assert orphans, "the killed worker held no leases"
    survivors = [w for w in workers if w is not victim]
    print(
        f"killed {victim.name} holding {len(orphans)} leases; expiring in "
        f"{max(orphans.values()) - killed_at:.1f}s at most"
    )

    def everything_stored() -> bool:
        rows = source_rows(engine)
        return all(
            r["last_success_at"] and r["last_success_at"].timestamp() > killed_at and r["lease_owner"] is None
            for n, r in rows.items()
            if n in orphans
        ) and sum(stored_keys(engine).values()) >= len(expected)

    wait_until(
        everything_stored,
        timeout=max(orphans.values()) - time.time() + 90,
        what="the killed worker's sources taken over",
        workers=survivors,
    )
    keys = stored_keys(engine)
    assert max(keys.values()) == 1, "a post was stored twice"
    assert set(keys) == expected, f"missing {sorted(expected - set(keys))[:5]}, unexpected {len(set(keys) - expected)}"
    rows = source_rows(engine)
    assert all(r["consecutive_failures"] == 0 for r in rows.values()), [
        (n, r["last_error"]) for n, r in rows.items() if r["consecutive_failures"]
    ][:5]

    # Takeover happened only after the lease expired, by a surviving worker.
    by_name = {s.name: s for s in web.sources}
    after_kill = [r for r in server.requests() if request_wall_time(r) > killed_at]
    for name, expires in orphans.items():
        fetched = [r for r in after_kill if r.path == by_name[name].path]
        # A request the victim sent just before SIGKILL can be logged by the (loaded) server after it:
        # in flight at the kill, not a fetch by a dead process. Anything later would be.
        late = [r for r in fetched if r.headers.get("user-agent") == victim.name]
        assert all(request_wall_time(r) < killed_at + IN_FLIGHT_GRACE for r in late), f"{name}: the dead worker?"
        takeovers = [r for r in fetched if r not in late]
        assert takeovers, f"{name} was never fetched again"
        assert min(request_wall_time(r) for r in takeovers) >= expires - 0.05, (
            f"{name} fetched again before its lease expired"
        )
    _assert_spacing(server.requests(), skip={by_name[n].path for n in orphans}, interval=INTERVAL)

    # Alerts for round 2's new posts: every outbox row sent exactly once, by one of the two deliverers.
    _assert_alerts_sent_once(engine, api, loop, workers=survivors)


def _assert_alerts_sent_once(
    engine: sa.Engine, api: Any, loop: asyncio.AbstractEventLoop, *, workers: Sequence[WorkerProcess]
) -> None:
    def outbox_rows() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT id, chat_id, status, telegram_message_id FROM outbox")))

    def sent_calls() -> list[Any]:
        async def copy() -> list[Any]:
            return list(api.sent())

        return asyncio.run_coroutine_threadsafe(copy(), loop).result(timeout=10)

    def settled() -> bool:
        rows = outbox_rows()
        return bool(rows) and all(r.status == "sent" for r in rows) and len(sent_calls()) >= len(rows)

    wait_until(settled, timeout=120, what="every alert delivered", workers=workers, every=0.5)
    time.sleep(2 * 1.0 + 0.5)  # two more delivery ticks: a duplicate send would show up now
    rows = outbox_rows()
    calls = sent_calls()
    assert len(rows) >= 20, f"only {len(rows)} alerts; the scenario should produce hundreds"
    assert len(calls) == len(rows), f"{len(calls)} messages sent for {len(rows)} outbox rows"
    sent_ids = {int(c.result["message_id"]): int(c.params["chat_id"]) for c in calls}
    assert {(r.telegram_message_id, r.chat_id) for r in rows} == set(sent_ids.items())
    texts = Counter((int(c.params["chat_id"]), c.params["text"]) for c in calls)
    assert max(texts.values()) == 1, "the same alert reached a chat twice"
    assert not api.violations, api.violations[:3]
    print(f"{len(rows)} alerts sent once each")
