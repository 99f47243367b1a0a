"""Ingest throughput with 1, 2 and 4 `framewatch run --role ingest` processes sharing one PostgreSQL.

Every answer from the local server waits `--latency` seconds (100 ms by default), as a distant feed or
t.me does, so fetching is latency-bound and the scaling curve shows on one small machine. Each run:
a fresh schema, N synthetic sources (RSS, Atom, t.me/s pages from tests/test_multiworker.SyntheticWeb)
created with their first poll in the future, the workers started and ready, then two timed rounds:

  backfill  every source due at once, every post new (fetch + parse + store + tag)
  steady    1-2 new posts per source, the rest already stored (the day-to-day load)

A round's time runs from making every source due to the last source's recorded success (database
timestamps, so start-up and the harness's polling don't count). Medians over --runs; the ratio
column compares with the same run's 1-worker median.

    python bench/scale.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/scale.py --workers 1 2 4 --runs 3 --sources 600 --latency 0.1 --tick 0.2s
    python bench/scale.py --per-host 8      # sources spread over many hosts: CPU becomes the limit
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framewatch.config import SourceSettings
from framewatch.localserver import LocalServer
from storage.db import create_engine, scratch_database, session_scope
from storage.migrate import upgrade
from storage.sources import sync_sources
from tests.test_multiworker import SyntheticWeb, WorkerProcess, stop_all, write_config

INTERVAL = "1h"  # no source comes due again by itself during a run: the harness decides when


@dataclass(frozen=True, slots=True)
class Round:
    seconds: float
    sources: int
    posts: int

    @property
    def sources_per_s(self) -> float:
        return self.sources / self.seconds

    @property
    def posts_per_s(self) -> float:
        return self.posts / self.seconds


def fresh_schema(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    upgrade(engine)


def count_posts(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM post")).scalar_one())


def timed_round(engine: sa.Engine, sources: int, workers: list[WorkerProcess], timeout: float) -> Round:
    """Make every source due now; wait until each has succeeded since; time it by the database clock."""
    before = count_posts(engine)
    with engine.begin() as conn:
        gate = conn.execute(sa.text("SELECT now()")).scalar_one()
        conn.execute(sa.text("UPDATE source SET next_poll_at = :t"), {"t": gate})
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            done, last, failed = conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE last_success_at >= :t), max(last_success_at), "
                    "count(*) FILTER (WHERE last_attempt_at >= :t AND last_error IS NOT NULL) FROM source"
                ),
                {"t": gate},
            ).one()
        if failed:
            raise SystemExit(f"{failed} source(s) failed during the round; see the worker logs")
        if done == sources:
            break
        dead = [w for w in workers if not w.alive()]
        if dead or time.monotonic() > deadline:
            raise SystemExit("round did not finish\n" + "\n".join(w.tail() for w in workers))
        time.sleep(0.2)
    return Round((last - gate).total_seconds(), sources, count_posts(engine) - before)


def one_run(
    args: argparse.Namespace, db_url: str, models_dir: Path, n_workers: int, log_dir: Path
) -> tuple[Round, Round]:
    engine = create_engine(db_url)
    fresh_schema(engine)
    workers: list[WorkerProcess] = []
    try:
        with LocalServer() as server:
            web = SyntheticWeb(server, args.sources, seed=args.seed)
            web.delay = args.latency
            specs = [SourceSettings(**entry) for entry in web.source_settings(INTERVAL)]
            with session_scope(engine) as session:  # created not yet due: the workers start first
                sync_sources(
                    specs,
                    session=session,
                    now=datetime.now(UTC) + timedelta(days=1),
                    default_interval=timedelta(hours=1),
                )
            config = write_config(
                log_dir / f"scale-{n_workers}.toml",
                database_url=db_url,
                models_dir=models_dir,
                sources=web.source_settings(INTERVAL),
                sections={
                    "database": {"pool_size": args.pool_size},
                    "ingest": {
                        "telegram_web_base": server.url("/s/"),
                        "tick": args.tick,
                        "timeout": "10s",
                        "backfill_pages": 2,
                        "concurrency": args.concurrency,
                        # Every synthetic source is on 127.0.0.1, as every channel is on t.me: at the
                        # default 2 a worker has two requests in flight, and latency is the limit.
                        "per_host_concurrency": args.per_host,
                    },
                    "logging": {"level": "WARNING"},
                },
            )
            workers = [WorkerProcess(f"w{i}", "ingest", config, log_dir) for i in range(n_workers)]
            deadline = time.monotonic() + 120
            while not all(w.ready() for w in workers):
                if time.monotonic() > deadline or not all(w.alive() for w in workers):
                    raise SystemExit("workers did not start\n" + "\n".join(w.tail() for w in workers))
                time.sleep(0.2)
            backfill = timed_round(engine, args.sources, workers, timeout=600)
            web.publish((1, 2))
            steady = timed_round(engine, args.sources, workers, timeout=600)
    finally:
        stop_all(workers)
        engine.dispose()
    return backfill, steady


def train_model(path: Path) -> None:
    from classifiers.service import load_tagger

    load_tagger(path, now=datetime.now(UTC), progress=lambda m: print(f"  {m}", flush=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FRAMEWATCH_TEST_DATABASE_URL"),
        help="server URL; a scratch database is created on it and dropped afterwards",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sources", type=int, default=600)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every answer")
    parser.add_argument("--concurrency", type=int, default=8, help="[ingest] concurrency per worker")
    parser.add_argument(
        "--per-host", type=int, default=2, help="[ingest] per_host_concurrency (default 2, the product default)"
    )
    parser.add_argument("--tick", default="0.2s", help="[ingest] tick")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (cold caches, .pyc)")
    parser.add_argument("--pool-size", type=int, default=5)
    parser.add_argument("--models-dir", type=Path, default=None, help="trained once into a temp dir if unset")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    if not args.postgres or not args.postgres.startswith("postgresql"):
        parser.error("--postgres postgresql+psycopg://… (or FRAMEWATCH_TEST_DATABASE_URL) is required")
    if 1 not in args.workers:
        parser.error("--workers must include 1: it is the baseline")

    with (
        tempfile.TemporaryDirectory(prefix="fw-scale-") as tmp,
        scratch_database(args.postgres, prefix="framewatch_bench") as db_url,
    ):
        models_dir = args.models_dir or Path(tmp) / "models"
        if args.models_dir is None:
            print("training the model once for all workers…", flush=True)
            train_model(models_dir)
        for _ in range(args.warmup):
            one_run(args, db_url, models_dir, 1, Path(tmp))
        results: dict[int, list[tuple[Round, Round]]] = {n: [] for n in args.workers}
        for run in range(args.runs):
            for n in args.workers:  # interleaved, so drift on the machine hits every count alike
                backfill, steady = one_run(args, db_url, models_dir, n, Path(tmp))
                results[n].append((backfill, steady))
                print(
                    f"run {run + 1}/{args.runs}, {n} worker(s): backfill {backfill.seconds:.2f}s "
                    f"({backfill.posts} posts), steady {steady.seconds:.2f}s ({steady.posts} posts)",
                    flush=True,
                )
        print_table(args, results)


def print_table(args: argparse.Namespace, results: dict[int, list[tuple[Round, Round]]]) -> None:
    print(
        f"\n{args.sources} sources, {args.latency * 1000:.0f} ms per request; per worker: concurrency "
        f"{args.concurrency}, per host {args.per_host}, tick {args.tick}; {os.cpu_count()} CPU(s); "
        f"medians of {args.runs} run(s)\n"
    )
    header = f"{'round':<9} {'workers':>7} {'seconds':>8} {'sources/s':>10} {'posts/s':>9} {'ratio vs 1':>10}"
    print(header)
    print("-" * len(header))
    for index, label in ((0, "backfill"), (1, "steady")):
        base = statistics.median(r[index].sources_per_s for r in results[1])
        for n in args.workers:
            rounds = [r[index] for r in results[n]]
            sources_s = statistics.median(r.sources_per_s for r in rounds)
            print(
                f"{label:<9} {n:>7} {statistics.median(r.seconds for r in rounds):>8.2f} "
                f"{sources_s:>10.1f} {statistics.median(r.posts_per_s for r in rounds):>9.1f} "
                f"{sources_s / base:>9.2f}x"
            )


if __name__ == "__main__":
    main()
