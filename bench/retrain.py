"""Retraining cost: what an admin's /retrain does, beside the bare fit of the same examples in the same run.

    python bench/retrain.py                    # 0, 1,000 and 4,000 stored labels, 3 runs each
    python bench/retrain.py --labels 0,500 --runs 1

For each number of labels stored in a fresh SQLite database (admin labels on posts whose texts are corpus
texts and pairs of them, so they are new to the model), one run is:

* read the labels back as `/retrain` and `framewatch train` do (`storage.labels.list_training_labels`);
* `classifiers.training.train`: validate, split, fit, score on the dev split, compare with the active
  model, save the skops file and metadata, activate;
* baseline: `fit_examples` alone on exactly the training split `train` used (the least work any
  retraining does).

The ratio (baseline ÷ train) is the share of a retrain spent fitting; the rest is the service around it.
Runs are interleaved so both sides share the machine's load. Ingestion is never blocked: training reads
in its own read-only session and swaps `active.json` atomically at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import fmt_ratio, load_average, median, print_table
from bench.classify import combined_examples
from classifiers.corpus import load_corpus, split_dev
from classifiers.taxonomy import load_taxonomy
from classifiers.training import fit_examples, prepare_examples, train
from classifiers.types import LabeledText
from storage.db import create_engine, read_scope, session_scope
from storage.labels import add_label, list_training_labels
from storage.migrate import upgrade
from storage.models import Post, Source

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def store_labels(url: str, count: int) -> None:
    """`count` labelled posts, as admins' /label commands leave them."""
    taxonomy = load_taxonomy()
    engine = create_engine(url)
    upgrade(engine)
    examples = combined_examples(load_corpus(taxonomy), count, seed=11)
    with session_scope(engine) as session:
        source = Source(name="bench", kind="rss", url="https://example.org/feed")
        session.add(source)
        session.flush()
        assert source.id is not None
        for i, example in enumerate(examples):
            post = Post(source_id=source.id, external_id=str(i), title="", text=example.text, content_hash=str(i))
            session.add(post)
            session.flush()
            assert post.id is not None
            add_label(post.id, example.frames, session=session, now=NOW, user_id=1)
    engine.dispose()


def read_labels(url: str) -> list[LabeledText]:
    engine = create_engine(url)
    with read_scope(engine) as session:
        rows = list_training_labels(session=session)
    labels = [LabeledText(text, tuple(frames), weight) for text, frames, weight in rows]
    engine.dispose()
    return labels


def one_size(count: int, runs: int, workdir: Path) -> list[object]:
    taxonomy = load_taxonomy()
    url = f"sqlite:///{workdir / f'labels-{count}.db'}"
    store_labels(url, count)
    corpus = load_corpus(taxonomy)
    reads, trains, bares = [], [], []
    n_train = 0
    for run in range(runs):
        started = time.perf_counter()
        labels = read_labels(url)
        reads.append(time.perf_counter() - started)
        models = workdir / f"models-{count}-{run}"
        started = time.perf_counter()
        report = train(taxonomy, models, now=NOW, extra=labels, corpus=corpus)
        trains.append(time.perf_counter() - started)
        train_split, _ = split_dev(prepare_examples(taxonomy, corpus, labels))
        n_train = len(train_split)
        started = time.perf_counter()
        fit_examples(taxonomy, train_split)
        bares.append(time.perf_counter() - started)
        print(
            f"labels {count:,} run {run + 1}/{runs}: read {reads[-1]:.2f} s, train {trains[-1]:.1f} s "
            f"(dev macro-F1 {report.dev.macro_f1:.3f}), bare fit {bares[-1]:.1f} s",
            flush=True,
        )
    train_s, bare_s = median(trains), median(bares)
    return [
        f"{count:,}",
        f"{n_train:,}",
        f"{median(reads):.2f} s",
        f"{bare_s:.1f} s",
        f"{train_s:.1f} s",
        f"{min(trains):.1f}–{max(trains):.1f} s",
        fmt_ratio(bare_s / train_s),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--labels", default="0,1000,4000", help="comma-separated numbers of stored labels")
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default 3)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.labels.split(",") if s.strip()]
    if any(s < 0 for s in sizes) or args.runs < 1:
        parser.error("--labels takes numbers ≥ 0 and --runs a number ≥ 1")
    print(f"load average at start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fw-bench-retrain-") as tmp:
        rows = [one_size(count, args.runs, Path(tmp)) for count in sizes]
    print_table(
        f"Retraining: shipped corpus + stored admin labels, medians of {args.runs} runs",
        ["stored labels", "training examples", "read labels", "baseline: bare fit", "framewatch train", "range",
         "bare ÷ train"],
        rows,
        note="`framewatch train` = validate, fit, dev score, compare with the active model, save (skops), activate. "
        "Bare fit = `fit_examples` on the same training split.",
    )  # fmt: skip
    print(f"\nload average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
