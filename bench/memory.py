"""Peak memory of `framewatch run` with N posts stored and the classifier loaded, through one ingest tick,
beside a bare Python process importing the same libraries, measured in the same run.

For each size the driver builds a SQLite database holding N synthetic RU/UK/EN posts (FTS index
included) from sources that are not due, trains a model from the shipped corpus (or copies --models-dir),
and serves a small set of t.me/s channels and RSS feeds from LocalServer. Each run copies the database,
starts the real CLI (`framewatch --config … run`, console mode: no token) in a child process, waits until
the first tick has stored every served post (backfill, tagged), sends SIGTERM and takes the child's peak
RSS (its VmHWM; ru_maxrss would include the driver's). The baselines, in the same run: a bare Python, a
Python importing every third-party package the framewatch child had loaded (recorded by the child at
exit), and the same plus the model loaded and one text tagged.

    python bench/memory.py                           # 10k and 100k posts, 5 runs each
    python bench/memory.py --sizes 1000000 --runs 5  # the issue's size (--full in run_all.py)
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    LANGUAGES,
    ROOT,
    build_corpus,
    clean_env,
    fmt_mib,
    median,
    own_peak_rss_kib,
    print_table,
    python_child,
    run_child,
    sentences,
    serve_corpus,
)
from bench._hide import PROJECT, hide_listed, runtime_only_modules

ARCHIVE_SOURCES = 60
AIM_MB = 300  # issue 5; decimal megabytes (286 MiB)
# False: this environment as it is (dev tools installed); True: only what `pip install framewatch` brings.
MODES = {False: "dev environment", True: "runtime dependencies only"}


# -- the database with N posts --------------------------------------------------------------------------


def build_archive(path: Path, posts: int, *, seed: int) -> float:
    """A migrated SQLite file with `posts` posts from sources that are not due; returns seconds taken."""
    import hashlib

    import sqlalchemy as sa

    from storage.db import create_engine
    from storage.migrate import upgrade
    from storage.models import Post, Source

    started = time.perf_counter()
    rng = random.Random(seed)
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    never = datetime(2100, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Source.__table__),  # type: ignore[attr-defined]
            [
                {"name": f"archive-{i:02d}", "kind": "rss", "url": f"http://127.0.0.1:9/archive/{i}.xml",
                 "interval_seconds": 600, "enabled": True, "language": LANGUAGES[i % 3], "fetch_full_text": False,
                 "backfilled": True, "consecutive_failures": 0, "next_poll_at": never, "created_at": now}
                for i in range(ARCHIVE_SOURCES)
            ],
        )  # fmt: skip
    batch: list[dict[str, object]] = []
    insert = sa.insert(Post.__table__)  # type: ignore[attr-defined]
    for i in range(posts):
        source = i % ARCHIVE_SOURCES
        lang = LANGUAGES[source % 3]
        parts = sentences(rng, lang, 200, 800)
        title, text = parts[0], "\n".join(parts)
        url = f"https://archive{source}.example/{i}"
        batch.append({
            "source_id": source + 1, "external_id": str(i), "url": url, "canonical_url": url, "title": title,
            "text": text, "language": lang, "published_at": now - timedelta(minutes=posts - i), "fetched_at": now,
            "views": rng.randint(10, 500_000), "forwarded_from": None, "link_title": None, "media": [],
            "content_hash": hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(), "edited": False,
            "edited_at": None, "duplicate_of_id": None, "from_backfill": True, "classified_version": None,
        })  # fmt: skip
        if len(batch) == 5000 or i == posts - 1:
            with engine.begin() as conn:
                conn.execute(insert, batch)
            batch = []
    engine.dispose()
    with sqlite3.connect(path) as conn:  # fold the WAL into the file, so copying the file copies everything
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def new_posts(path: Path, above_id: int) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM post WHERE id > ?", (above_id,)).fetchone()[0])
    except sqlite3.Error:  # not created yet, or locked for a moment by the writer
        return 0


# -- children -------------------------------------------------------------------------------------------


def child_run(config: Path, modules_out: Path, hide: Path | None) -> None:
    """Run the real CLI in this process; at exit, record which third-party packages it had imported."""
    import atexit

    if hide is not None:
        hide_listed(hide)

    def record() -> None:
        names = {name.split(".", 1)[0] for name in list(sys.modules)}
        third_party = sorted(
            n for n in names if n not in sys.stdlib_module_names and n not in PROJECT and n != "__main__"
        )
        modules_out.write_text(json.dumps({"modules": third_party, "peak_rss_kib": own_peak_rss_kib()}))

    atexit.register(record)
    sys.argv = ["framewatch", "--config", str(config), "run"]
    from framewatch.cli import main

    main()


# Hides the modules listed in argv[3] (if given), imports the packages named in the JSON file argv[1],
# loads the active model of argv[2] (if given) and tags one text with it, then prints its own peak RSS
# (VmHWM, KiB). A -c script, so that the baselines load nothing else.
IMPORT_CHILD = """
import contextlib, importlib, json, sys
from pathlib import Path
if len(sys.argv) > 3 and sys.argv[3]:
    sys.path.insert(0, sys.argv[4])
    from bench._hide import PROJECT, hide_listed, runtime_only_modules
    hide_listed(sys.argv[3])
for name in json.load(open(sys.argv[1])):
    with contextlib.suppress(Exception):  # a module that only imports inside its parent is counted there
        importlib.import_module(name)
if len(sys.argv) > 2 and sys.argv[2]:
    from classifiers.registry import load_active
    from classifiers.service import FrameTagger
    model, meta = load_active(Path(sys.argv[2]))
    FrameTagger(model, meta.version).classify(["Штаб снова молчит о потерях; the front line is quiet."])
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0])
"""


def write_config(path: Path, *, db: Path, models: Path, base_url: str, sources: list[dict[str, str]]) -> None:
    lines = [
        f"[database]\nurl = {json.dumps(f'sqlite:///{db}')}\n",
        f'[ingest]\ntelegram_web_base = {json.dumps(base_url + "/s/")}\nbackfill_pages = 5\ntick = "2s"\n',
        f"[classifier]\nmodels_dir = {json.dumps(str(models))}\n",
        '[logging]\nlevel = "WARNING"\n',
    ]
    for source in sources:
        lines.append("[[sources]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in source.items()))
    path.write_text("\n".join(lines))


def prepare_models(workdir: Path, given: Path | None) -> Path:
    """A models directory framewatch may write to: a copy of `given`, or a fresh model from the corpus."""
    target = workdir / "models"
    if given is not None:
        shutil.copytree(given, target)
        return target
    target.mkdir()
    env = {**clean_env(), "FRAMEWATCH_CLASSIFIER__MODELS_DIR": str(target)}
    code = "from framewatch.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "train"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"training a model failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return target


# -- driver ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated stored post counts")
    parser.add_argument("--runs", type=int, default=5, help="runs per size and per baseline (default 5)")
    parser.add_argument("--tick-posts", type=int, default=2000, help="posts the ingest tick stores")
    parser.add_argument("--models-dir", type=Path, help="use (a copy of) this model registry instead of training")
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--child-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--modules-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hide", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_run:
        child_run(args.child_run, args.modules_out, args.hide)
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if args.runs < 1 or not sizes or min(sizes) < 0:
        parser.error("--runs must be ≥ 1 and --sizes non-negative")

    with tempfile.TemporaryDirectory(prefix="fw-bench-memory-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        models = prepare_models(workdir, args.models_dir.resolve() if args.models_dir else None)
        hidden = workdir / "hidden.json"  # computed here: the metadata scan would weigh on the children
        hidden.write_text(json.dumps(sorted(runtime_only_modules())))
        corpus = build_corpus(posts=args.tick_posts, pages=5, feeds=2, feed_items=100, seed=args.seed, compress=True)
        server = serve_corpus(corpus, compress=True)
        try:
            sources = [{"name": c, "kind": "telegram", "channel": c} for c in corpus.channels]
            sources += [{"name": Path(p).stem, "kind": "rss", "url": server.url(p)} for p in corpus.feeds]
            rows, modules = measure(args, sizes, workdir, models, server.base_url, sources, corpus.posts, hidden)
        finally:
            server.stop()
        baseline = {
            mode: baselines(args.runs, modules[mode], workdir, models, hidden if mode else None) for mode in MODES
        }
    report(args, rows, baseline, modules, corpus.posts)
    return 0


def measure(
    args: argparse.Namespace,
    sizes: list[int],
    workdir: Path,
    models: Path,
    base_url: str,
    sources: list[dict[str, str]],
    tick_posts: int,
    hidden: Path,
) -> tuple[list[dict[str, object]], dict[bool, list[str]]]:
    rows: list[dict[str, object]] = []
    modules: dict[bool, list[str]] = {mode: [] for mode in MODES}
    for size in sizes:
        archive = workdir / f"archive-{size}.db"
        built = build_archive(archive, size, seed=args.seed)
        print(
            f"database with {size:,} posts: {archive.stat().st_size / 1e6:,.0f} MB, built in {built:.0f} s", flush=True
        )
        for mode in MODES:
            peaks: list[int] = []
            ready: list[float] = []
            for run in range(args.runs):
                hide = hidden if mode else None
                peak, seconds, loaded = run_once(
                    archive, size, run, hide, workdir, models, base_url, sources, tick_posts
                )
                peaks.append(peak)
                ready.append(seconds)
                modules[mode] = loaded or modules[mode]
                print(
                    f"  {MODES[mode]}, run {run + 1}/{args.runs}: peak RSS {fmt_mib(peak)}, tick stored after "
                    f"{seconds:.1f} s",
                    flush=True,
                )
            rows.append(
                {"size": size, "mode": mode, "peaks": peaks, "ready": ready, "db_mb": archive.stat().st_size / 1e6}
            )
        archive.unlink()
    return rows, modules


def run_once(
    archive: Path,
    size: int,
    run: int,
    hide: Path | None,
    workdir: Path,
    models: Path,
    base_url: str,
    sources: list[dict[str, str]],
    tick_posts: int,
) -> tuple[int, float, list[str]]:
    """One `framewatch run` child on a copy of `archive`: (peak RSS KiB, seconds to the stored tick, its imports)."""
    db = workdir / f"run-{size}-{run}.db"
    shutil.copyfile(archive, db)
    config = workdir / f"framewatch-{size}-{run}.toml"
    write_config(config, db=db, models=models, base_url=base_url, sources=sources)
    modules_out = workdir / "modules.json"
    modules_out.unlink(missing_ok=True)
    started = time.perf_counter()
    done_at: list[float] = []

    def tick_done() -> bool:
        if new_posts(db, size) >= tick_posts:
            done_at.append(time.perf_counter())
            return True
        return False

    flags = ["--hide", str(hide)] if hide is not None else []
    cmd = python_child("bench/memory.py", "--child-run", str(config), "--modules-out", str(modules_out), *flags)
    child = run_child(cmd, timeout=900, env=clean_env(), stop_when=tick_done)
    stored = new_posts(db, size)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if not done_at or stored < tick_posts:
        sys.stderr.write(child.stdout[-3000:] + child.stderr[-3000:])
        raise SystemExit(
            f"framewatch run with {size:,} posts stored {stored} of {tick_posts} posts, exit {child.returncode}"
        )
    peak, loaded = child.peak_rss_kib, []
    if modules_out.exists():  # written at exit: the child's own peak and its imports
        recorded = json.loads(modules_out.read_text())
        loaded = recorded["modules"]
        peak = max(peak, recorded["peak_rss_kib"])
    return peak, done_at[0] - started, loaded


def baselines(runs: int, modules: list[str], workdir: Path, models: Path, hide: Path | None) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"bare": [], "imports": [], "model": []}
    hiding = [str(hide), str(ROOT)] if hide is not None else []
    for key, names in (("bare", []), ("imports", modules), ("model", modules)):
        listing = workdir / f"imports-{key}.json"
        listing.write_text(json.dumps(names))
        model_arg = str(models) if key == "model" else ""
        for _ in range(runs):
            cmd = [sys.executable, "-c", IMPORT_CHILD, str(listing), model_arg, *hiding]
            child = run_child(cmd, timeout=300, env=clean_env())
            if child.returncode != 0 or not child.stdout.strip().isdigit():
                raise SystemExit(f"baseline child failed: {child.stderr[-2000:]}")
            out[key].append(int(child.stdout.strip()))
    return out


def report(
    args: argparse.Namespace,
    rows: list[dict[str, object]],
    baseline: dict[bool, dict[str, list[int]]],
    modules: dict[bool, list[str]],
    tick_posts: int,
) -> None:
    table: list[list[object]] = []
    for mode, label in MODES.items():
        b = baseline[mode]
        base = median(b["imports"])
        public = [m for m in modules[mode] if not m.startswith("_")]
        table += [
            [f"*{label}*", "", "", "", "", ""],
            ["bare Python (`python -c pass`)", "—", fmt_mib(median(b["bare"])), _range(b["bare"]), "—", "—"],
            [f"**baseline: Python importing the same {len(public)} libraries**", "—", fmt_mib(base),
             _range(b["imports"]), "—", "—"],
            ["the same + model loaded, one text tagged (no database, no ingest)", "—", fmt_mib(median(b["model"])),
             _range(b["model"]), f"+{(median(b['model']) - base) / 1024:,.0f} MiB", "—"],
        ]  # fmt: skip
        for row in (r for r in rows if r["mode"] is mode):
            peaks: list[int] = row["peaks"]  # type: ignore[assignment]
            ready: list[float] = row["ready"]  # type: ignore[assignment]
            table.append([
                f"`framewatch run`, model loaded, one tick (+{tick_posts:,} posts)",
                f"{row['size']:,} ({row['db_mb']:,.0f} MB)", fmt_mib(median(peaks)), _range(peaks),
                f"+{(median(peaks) - base) / 1024:,.0f} MiB", f"{median(ready):.1f} s",
            ])  # fmt: skip
    hidden = sorted(set(modules[False]) - set(modules[True]))
    print_table(
        f"Memory: peak RSS of `framewatch run` (medians of {args.runs} runs)",
        ["process", "posts stored (db size)", "peak RSS", "range", "over baseline", "start → tick stored"],
        table,
        note=(
            "Peak RSS is each child's own high-water mark (VmHWM). The framewatch child is the real CLI in "
            f"console mode (role all, no token) with the model loaded, polling {tick_posts:,} posts of t.me/s pages "
            "and RSS feeds from LocalServer (first-poll backfill, tagged); it is stopped with SIGTERM once they "
            "are stored. Each baseline imports every third-party package its framewatch child had loaded. "
            "*Runtime dependencies only* hides every installed package that `pip install framewatch` would not "
            "bring (the dev tools and unrelated packages of this machine), as a production install has them "
            "absent; here that kept the framewatch child from importing "
            + (", ".join(f"`{m}`" for m in hidden) or "nothing")
            + " (skops imports pytest through sklearn.utils._testing, httpcore imports trio, when present)."
        ),
    )
    largest = max((r for r in rows if r["mode"] is True), key=lambda r: r["size"])  # type: ignore[arg-type,return-value]
    peak_mb = median(largest["peaks"]) * 1024 / 1e6  # type: ignore[arg-type]
    verdict = "met" if peak_mb <= AIM_MB else "**missed**"
    if largest["size"] != 1_000_000:
        verdict += f" (measured at {largest['size']:,} posts, not 1M; run with --sizes 1000000)"
    print_table(
        "Memory: aim (issue 5)",
        ["aim", "measured (runtime dependencies only)", ""],
        [[f"≤ {AIM_MB} MB with 1M posts", f"{peak_mb:,.0f} MB", verdict]],
    )


def _range(values: list[int]) -> str:
    return f"{fmt_mib(min(values))}–{fmt_mib(max(values))}"


if __name__ == "__main__":
    raise SystemExit(main())
