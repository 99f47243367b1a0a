"""Ingest throughput: a first-poll backfill of ≥100k posts from a local server, end to end, beside the bare
selectolax/feedparser parse rate of the very same pages measured in the same run.

The driver generates t.me/s channel pages (20 messages each, in the markup ingest/telegram_web.py reads:
RU/UK/EN texts of 200–800 characters with <br>, links, emoji, photos, forwards, replies, link previews,
edits, "15.3K"-style view counters, rising dates) linked through `data-before`, plus RSS 2.0 feeds, and
serves them gzip-compressed (as t.me does) from framewatch's LocalServer. Each end-to-end run is a
separate child process (`--child`) that migrates a fresh SQLite file and calls `Ingestor.run_once` —
fetch → parse → store — with `tagger=None` (with --with-classifier, once more with the active model).
One more child per run only fetches: every page through `fetch_url` (httpx, gunzip, limits), as many at
a time as ingest allows one host, nothing parsed or stored — what the HTTP side alone costs.
Between the children the driver times, on the same bytes:

* bare selectolax: parse, select the message nodes, read id and text (the least any parser does);
* bare feedparser: `feedparser.parse` and read title and summary of each entry;
* framewatch's own parsers alone (`parse_channel_page`, `parse_feed`).

Rates are given per wall second and per CPU second: on a shared machine the second is the steadier one.

    python bench/ingest.py                          # 100k posts, 5 runs
    python bench/ingest.py --posts 20000 --with-classifier
    python bench/ingest.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    python bench/ingest.py --posts 20000 --runs 1 --py-spy /tmp/ingest.txt   # or --profile (cProfile)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    PER_PAGE,
    Corpus,
    build_corpus,
    fmt_mib,
    fmt_rate,
    fmt_ratio,
    load_average,
    median,
    own_peak_rss_kib,
    print_table,
    python_child,
    run_child,
    serve_corpus,
)

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


Sample = tuple[int, float, float]  # items, wall seconds, CPU seconds


def timed(fn: Any, arg: Any) -> Sample:
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn(arg)
    return n, time.perf_counter() - wall, time.process_time() - cpu


# -- the end-to-end child -------------------------------------------------------------------------------


def child_main(spec_path: Path) -> int:
    """One fresh database, one `Ingestor.run_once` over every source; prints one JSON line."""
    spec = json.loads(spec_path.read_text())
    if spec.get("fetch_only"):
        return fetch_child(spec)
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
    engine = create_engine(spec["db_url"])
    upgrade(engine)
    with session_scope(engine) as session:
        sync_sources(sources, session=session, now=datetime.now(UTC), default_interval=settings.default_interval)
    tagger = None
    if spec.get("models_dir"):  # the active model as is: never train (that would write to models_dir)
        from classifiers.registry import load_active
        from classifiers.service import FrameTagger

        model, meta = load_active(Path(spec["models_dir"]))
        tagger = FrameTagger(model, meta.version)

    async def run() -> list[Any]:
        async with make_client(settings) as client:
            ingestor = Ingestor(engine=engine, settings=settings, client=client, fetch=fetch_source, tagger=tagger)
            return await ingestor.run_once()

    if spec.get("switch_interval"):
        sys.setswitchinterval(spec["switch_interval"])
    profiler = _ThreadProfiler() if spec.get("profile") else None
    wall, cpu = time.perf_counter(), time.process_time()
    reports = asyncio.run(run())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None:
        profiler.dump(spec["profile"])
    with session_scope(engine) as session:
        stored = count_posts(session=session)
    engine.dispose()
    errors = [f"{r.source}: {r.error}" for r in reports if r.status == "error"]
    result = {"stored": stored, "new": sum(r.new for r in reports), "seconds": wall, "cpu_seconds": cpu}
    result["peak_rss_kib"] = own_peak_rss_kib()
    print(json.dumps({**result, "errors": errors[:5], "error_count": len(errors)}))
    return 0 if not errors else 1


def fetch_child(spec: dict[str, Any]) -> int:
    """Every URL of the corpus through framewatch's own `fetch_url` (httpx, gunzip, size and time limits),
    as many at a time as ingest allows one host, and nothing else: the floor under the end-to-end rate."""
    from framewatch.config import IngestSettings
    from ingest.http import FetchLimits, fetch_url, make_client

    settings = IngestSettings(**spec.get("ingest", {}))
    limits = FetchLimits.from_settings(settings)

    async def run() -> int:
        slots = asyncio.Semaphore(settings.per_host_concurrency)  # the corpus is served by one host

        async with make_client(settings) as client:

            async def one(url: str) -> int:
                async with slots:
                    return len((await fetch_url(client, url, limits=limits)).body)

            return sum(await asyncio.gather(*(one(url) for url in spec["fetch_only"])))

    wall, cpu = time.perf_counter(), time.process_time()
    body_bytes = asyncio.run(run())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {"new": spec["posts"], "seconds": wall, "cpu_seconds": cpu}
    print(json.dumps({**result, "body_bytes": body_bytes, "peak_rss_kib": own_peak_rss_kib(), "error_count": 0}))
    return 0


class _ThreadProfiler:
    """cProfile in every thread: the pipeline parses and commits in asyncio.to_thread workers."""

    def __init__(self) -> None:
        import cProfile
        import threading

        self.profiles: list[cProfile.Profile] = []

        def start(*_: Any) -> None:
            profile = cProfile.Profile()
            self.profiles.append(profile)
            profile.enable()  # replaces this hook in the calling (new) thread

        threading.setprofile(start)
        self.profiles.append(cProfile.Profile())
        self.profiles[-1].enable()

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


# -- driver ---------------------------------------------------------------------------------------------


class ChildFailed(Exception):
    """An end-to-end child died; the message ends with the last line of its stderr."""


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


def _error_line(stderr: str) -> str:
    """The exception line of a traceback (SQLAlchemy appends help lines after it), else the last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b.*:", line):
            return line[:500]
    return lines[-1][:500] if lines else "no output"


def end_to_end(
    label: str, spec: dict[str, Any], workdir: Path, *, postgres: str | None = None, py_spy: str | None = None
) -> dict[str, Any]:
    drop = None
    db = workdir / f"e2e-{label}-{uuid.uuid4().hex[:6]}.db"
    spec["db_url"] = f"sqlite:///{db}"
    if postgres:
        spec["db_url"], drop = _pg_database(postgres)
    spec_path = workdir / f"spec-{label}.json"
    spec_path.write_text(json.dumps(spec))
    cmd = python_child("bench/ingest.py", "--child", str(spec_path))
    if py_spy:
        cmd = ["py-spy", "record", "--format", "raw", "--rate", "250", "--output", py_spy, "--", *cmd]
    try:
        child = run_child(cmd, timeout=3600)
    finally:
        if drop is not None:
            drop()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.stderr.write(child.stderr[-4000:])
        raise ChildFailed(
            f"end-to-end child ({label}) exited with code {child.returncode}: {_error_line(child.stderr)}"
        )
    result = json.loads(lines[-1])
    if not py_spy:  # under py-spy the sampled process is py-spy itself
        result["peak_rss_kib"] = max(result["peak_rss_kib"], child.peak_rss_kib)
    if result["error_count"]:
        sys.stderr.write(f"warning: {label}: {result['error_count']} sources failed, e.g. {result['errors']}\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000, help="posts one pass stores (default 100000)")
    parser.add_argument("--runs", type=int, default=5, help="end-to-end runs and bare-parse runs (default 5)")
    parser.add_argument("--pages", type=int, default=50, help="backfill_pages per channel (20 posts a page)")
    parser.add_argument("--feeds", type=int, default=20, help="RSS feeds (at most a tenth of the posts)")
    parser.add_argument("--feed-items", type=int, default=100, help="items per feed")
    parser.add_argument("--with-classifier", action="store_true", help="add a line with the active model")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="registry of trained models")
    parser.add_argument("--postgres", metavar="URL", help="add a line on a throwaway PostgreSQL database")
    parser.add_argument("--no-gzip", action="store_true", help="serve pages uncompressed")
    parser.add_argument("--per-host-concurrency", type=int, help="override ingest.per_host_concurrency")
    parser.add_argument("--concurrency", type=int, help="override ingest.concurrency")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the first end-to-end child into FILE")
    parser.add_argument("--py-spy", metavar="FILE", help="sample the first end-to-end child with py-spy")
    parser.add_argument("--switch-interval", type=float, help="experiment: sys.setswitchinterval in the child")
    parser.add_argument("--seed", type=int, default=20240305)
    parser.add_argument("--dir", type=Path, help="where the SQLite files go (default: a temp dir)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.runs < 1 or args.posts < PER_PAGE or args.pages < 1:
        parser.error("--runs and --pages must be ≥ 1 and --posts ≥ 20")
    if args.py_spy and not shutil.which("py-spy"):
        parser.error("--py-spy needs py-spy on PATH (pip install py-spy)")

    compress = not args.no_gzip
    began = time.perf_counter()
    corpus = build_corpus(
        posts=args.posts, pages=args.pages, feeds=args.feeds, feed_items=args.feed_items, seed=args.seed,
        compress=compress,
    )  # fmt: skip
    wire_mb = sum(len(b) for b in corpus.wire.values()) / 1e6
    print(
        f"corpus: {len(corpus.channels)} channels × {args.pages} pages × {PER_PAGE} posts + {len(corpus.feeds)} "
        f"feeds × {args.feed_items} items = {corpus.posts:,} posts; {wire_mb:,.1f} MB on the wire "
        f"({'gzip' if compress else 'identity'}); generated in {time.perf_counter() - began:.1f} s",
        flush=True,
    )
    notes: list[str] = []
    models_dir = args.models_dir.resolve()
    with_classifier = args.with_classifier
    if with_classifier:
        from classifiers.registry import active_version

        if active_version(models_dir) is None:
            notes.append(f"no active model in {models_dir}: the classifier line is skipped")
            with_classifier = False

    pages = [(name, body) for name, by in corpus.channels.items() for body in by.values()]
    feeds = list(corpus.feeds.items())
    overrides = {"per_host_concurrency": args.per_host_concurrency, "concurrency": args.concurrency}
    # "fetch": every page fetched alone (no parse, no store), in a child like the end-to-end runs
    e2e: dict[str, list[dict[str, Any]]] = {"plain": [], "cls": [], "pg": [], "fetch": []}
    bare: dict[str, list[Sample]] = {"sel": [], "fp": [], "fw_tg": [], "fw_rss": []}
    load_before = load_average()
    server = serve_corpus(corpus, compress)
    workdir = tempfile.TemporaryDirectory(prefix="fw-bench-ingest-", dir=args.dir)
    try:
        base = {
            "base_url": server.base_url,
            "pages": args.pages,
            "channels": list(corpus.channels),
            "feeds": [server.url(path) for path in corpus.feeds],
            "ingest": {k: v for k, v in overrides.items() if v},
            "switch_interval": args.switch_interval,
        }
        feed_urls = [(server.url(path), body) for path, body in feeds]
        for run in range(args.runs):
            first = run == 0
            spec = dict(base, profile=args.profile if first else None)
            server.clear_log()
            e2e["plain"].append(end_to_end("plain", spec, Path(workdir.name), py_spy=args.py_spy if first else None))
            if with_classifier:
                try:
                    e2e["cls"].append(end_to_end("cls", dict(base, models_dir=str(models_dir)), Path(workdir.name)))
                except ChildFailed as exc:
                    notes.append(f"classifier line skipped: {exc}")
                    with_classifier = False
            if args.postgres:
                e2e["pg"].append(end_to_end("pg", dict(base), Path(workdir.name), postgres=args.postgres))
            fetch_spec = dict(base, fetch_only=[server.url(path) for path in corpus.wire], posts=corpus.posts)
            e2e["fetch"].append(end_to_end("fetch", fetch_spec, Path(workdir.name)))
            server.clear_log()
            bare["sel"].append(timed(bare_selectolax, [body for _, body in pages]))
            bare["fp"].append(timed(bare_feedparser, [body for _, body in feeds]))
            bare["fw_tg"].append(timed(framewatch_channels, pages))
            bare["fw_rss"].append(timed(framewatch_feeds, feed_urls))
            last, sel = e2e["plain"][-1], bare["sel"][-1]
            print(
                f"run {run + 1}/{args.runs}: end to end {last['new']:,} posts in {last['seconds']:.1f} s "
                f"({last['new'] / last['seconds']:,.0f}/s, peak RSS {fmt_mib(last['peak_rss_kib'])}); "
                f"bare selectolax {sel[0] / sel[1]:,.0f}/s",
                flush=True,
            )
    finally:
        server.stop()
        workdir.cleanup()
    notes.append(f"load average (1/5/15 min) before: {load_before}; after: {load_average()}")
    report(args, corpus, len(pages), e2e, bare, notes)
    if args.profile:
        print_cprofile(args.profile)
    if args.py_spy:
        print_py_spy(args.py_spy)
    return 0


def report(
    args: argparse.Namespace,
    corpus: Corpus,
    n_pages: int,
    e2e: dict[str, list[dict[str, Any]]],
    bare: dict[str, list[Sample]],
    notes: list[str],
) -> None:
    def mix(a: str, b: str) -> list[Sample]:
        return [(x[0] + y[0], x[1] + y[1], x[2] + y[2]) for x, y in zip(bare[a], bare[b], strict=True)]

    def children(key: str) -> list[Sample]:
        return [(r["new"], r["seconds"], r["cpu_seconds"]) for r in e2e[key]]

    def rates(samples: list[Sample], i: int) -> list[float]:
        return [s[0] / s[i] for s in samples]

    rows: list[list[object]] = []

    def row(label: str, samples: list[Sample], baseline: list[Sample] | None, rss: list[int] | None = None) -> None:
        wall, cpu = median(rates(samples, 1)), median(rates(samples, 2))
        ratio_wall = wall / median(rates(baseline, 1)) if baseline else float("nan")
        ratio_cpu = cpu / median(rates(baseline, 2)) if baseline else float("nan")
        rss_values = [r for r in (rss or []) if r is not None]
        rows.append([
            label, f"{int(median([s[0] for s in samples])):,}", fmt_rate(wall),
            f"{fmt_rate(min(rates(samples, 1)))}–{fmt_rate(max(rates(samples, 1)))}", fmt_rate(cpu),
            fmt_mib(median(rss_values)) if rss_values else "—", fmt_ratio(ratio_wall), fmt_ratio(ratio_cpu),
        ])  # fmt: skip

    baseline = mix("sel", "fp")
    row("bare selectolax: parse + message nodes + text (t.me pages)", bare["sel"], None)
    row("framewatch `parse_channel_page` alone, same pages", bare["fw_tg"], bare["sel"])
    if corpus.feed_posts:
        row("bare feedparser: parse + entries (RSS)", bare["fp"], None)
        row("framewatch `parse_feed` alone, same feeds", bare["fw_rss"], bare["fp"])
    row("**baseline: bare parse of the whole mix**", baseline, baseline)
    row("framewatch parsers alone, whole mix", mix("fw_tg", "fw_rss"), baseline)
    if e2e["fetch"]:
        row("framewatch `fetch_url` alone (httpx + gunzip, no parse), same pages", children("fetch"), baseline)
    for key, label in (
        ("plain", "**end to end, SQLite, tagger=None** (fetch → parse → store)"),
        ("cls", "end to end, SQLite, with classifier (fetch → parse → tag → store)"),
        ("pg", "end to end, PostgreSQL, tagger=None"),
    ):
        if e2e[key]:
            row(label, children(key), baseline, [r["peak_rss_kib"] for r in e2e[key]])
    print_table(
        f"Ingest: first-poll backfill of {corpus.posts:,} posts ({len(corpus.channels)} channels × {args.pages} "
        f"t.me/s pages + {len(corpus.feeds)} RSS feeds × {args.feed_items} items), medians of {args.runs} runs",
        ["measurement", "posts", "posts/s", "range (posts/s)", "posts/CPU-s", "peak RSS", "÷ bare", "÷ bare (CPU)"],
        rows,
        note=(
            f"{n_pages:,} pages of {PER_PAGE} messages served {'gzip-compressed ' if not args.no_gzip else ''}"
            "by LocalServer in the driver process. Each end-to-end run is a child process with a fresh "
            "database calling `Ingestor.run_once` with default ingest settings; its rate is new posts over "
            "the wall time of `run_once`, its peak RSS the child's own high-water mark (VmHWM). Bare rates are "
            "measured in the driver, on the same bytes, between the end-to-end runs. `÷ bare` compares with the row's "
            "baseline: bare selectolax or feedparser for one parser, the bare parse of the whole mix otherwise."
        ),
    )
    plain = median(rates(children("plain"), 1))
    ratio = plain / median(rates(baseline, 1))
    stored_ok = all(r["stored"] == corpus.posts for key, runs in e2e.items() if key != "fetch" for r in runs)
    aims = [
        ["≥ 2,000 posts/s stored on SQLite", fmt_rate(plain), "met" if plain >= 2000 else "**missed**"],
        ["≥ 0.5 of the bare parse rate", fmt_ratio(ratio), "met" if ratio >= 0.5 else "**missed**"],
        ["every post stored exactly once", "yes" if stored_ok else "no", "met" if stored_ok else "**missed**"],
    ]
    print_table("Ingest: aims (issue 2)", ["aim", "measured", ""], aims)
    if e2e["fetch"]:
        parse_cpu = rates(mix("fw_tg", "fw_rss"), 2)
        notes.insert(0, _ceiling_note(rates(children("fetch"), 2), parse_cpu, rates(baseline, 1)))
    for note in notes:
        print(f"\nNote: {note}")


def _ceiling_note(fetch_cpu: list[float], parse_cpu: list[float], bare_wall: list[float]) -> str:
    """What fetching and parsing alone leave room for: both run Python under one GIL, so in one process
    their CPU costs per post add up before a single row is stored."""
    per_post = 1 / median(fetch_cpu) + 1 / median(parse_cpu)
    ceiling = 1 / per_post
    return (
        f"fetching a post's page costs {1e6 / median(fetch_cpu):,.0f} µs of CPU and parsing it "
        f"{1e6 / median(parse_cpu):,.0f} µs, so one process that only fetched and parsed would top out near "
        f"{fmt_rate(ceiling)} posts per CPU-second, {fmt_ratio(ceiling / median(bare_wall))} of the bare parse "
        "rate, before storing anything."
    )


def print_cprofile(path: str, limit: int = 25) -> None:
    import io
    import pstats

    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(path, stream=buffer).sort_stats(key).print_stats(limit)
        text = buffer.getvalue()
        print(f"\n#### cProfile, first end-to-end child, by {key}\n\n```text\n{text[text.find('   ncalls') :]}```")


# Leaves where a thread waits rather than works (py-spy's idle detection misses some in containers).
_IDLE_LEAVES = ("_worker (thread.py)", "EpollSelector.select (selectors.py)", "Condition.wait (threading.py)")
_WRAPPER_FILES = tuple(
    f"({name})" for name in ("threading.py", "thread.py", "base_events.py", "runners.py", "events.py", "ingest.py")
)
STAGES = (  # first match wins; checked against the frames of one sample
    ("tag (classifier)", "Ingestor._tag"),
    ("store (storage.posts.store_posts)", "store_posts"),
    ("commit / other database work", "Ingestor._commit"),
    ("parse t.me page (parse_channel_page)", "parse_channel_page"),
    ("parse feed (parse_feed)", "parse_feed"),
    ("HTTP: httpx, sockets, gzip (fetch_url)", "fetch_url"),
    ("event loop, thread hand-offs, other", ""),
)


def _frame(raw: str) -> str:
    name, _, where = raw.partition(" (")
    return f"{name} ({where.rstrip(')').rsplit(':', 1)[0].rsplit('/', 1)[-1]})"


def print_py_spy(path: str, limit: int = 25) -> None:
    """Summarise py-spy's collapsed stacks of the `run_once` part (imports and migration left out):
    by pipeline stage, by function (self) and by function including callees."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    samples = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not ("run_until_complete" in stack or "_WorkItem.run" in stack):
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if frames[-1] in _IDLE_LEAVES:
            continue
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            if not frame.endswith(_WRAPPER_FILES):
                total[frame] += n
        stages[next(label for label, key in STAGES if key in stack)] += n
    if not samples:
        print("\n(py-spy recorded no samples of run_once)")
        return
    print_table(
        f"py-spy, first end-to-end child: busy samples by pipeline stage ({samples:,} samples, all threads)",
        ["stage", "share"],
        [[label, f"{stages[label] / samples:.1%}"] for label, _ in STAGES],
    )
    for title, counter in (("self", own), ("including callees", total)):
        rows = [[f"`{frame}`", f"{n / samples:.1%}"] for frame, n in counter.most_common(limit)]
        print_table(f"py-spy, first end-to-end child: functions, {title}", ["function (file)", "share"], rows)


if __name__ == "__main__":
    raise SystemExit(main())
