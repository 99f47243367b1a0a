"""Classifier benchmarks: throughput, training time, model size/load time; optionally the model comparison.

    python bench/classify.py             # speed table (20k posts, 10k training examples)
    python bench/classify.py --quick     # smaller sizes, for a smoke run
    python bench/classify.py --compare   # cross-validated comparison of model alternatives

Throughput runs framewatch's classify path (FrameTagger.classify: thresholds, Classification values,
explanations for tagged posts) beside the bare `predict_proba` of the same fitted pipeline in the same
run; the ratio is the cost of the product layer. Posts are 300–600 characters, assembled from the
shipped corpus with channel decorations (emoji, hashtags, handles, links, a signature line).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import KFold
from sklearn.svm import LinearSVC

from classifiers.corpus import Example, label_matrix, load_corpus, split_dev
from classifiers.evaluation import score_predictions
from classifiers.keywords import KeywordBaseline
from classifiers.model import FrameClassifier
from classifiers.registry import load_model, save_model
from classifiers.service import FrameTagger
from classifiers.taxonomy import Taxonomy, load_taxonomy
from classifiers.training import build_classifier, fit_examples

DECOR_HEAD = ["⚡️ ", "❗️", "🔥 ", "", "", "", "Срочно: ", "BREAKING: ", "‼️ "]
DECOR_TAIL = [
    "",
    "",
    "\n\n👉 Подписаться на канал @frontline_news",
    "\n\nt.me/some_channel/12345",
    "\n#новости #война",
    "\nПідписуйтесь: @ukr_updates",
    "\nMore: https://example.org/story?id=42",
]


def realistic_posts(examples: list[Example], n: int, framed_share: float, seed: int = 0) -> list[str]:
    """n posts of 300–600 characters (before decorations), built from corpus texts.

    Each post is drawn either from frame-carrying texts (with probability `framed_share`) or from
    no-frame ones: a news stream is mostly frame-free, and explanations cost only for tagged posts.
    """
    rng = random.Random(seed)
    framed = [e.text for e in examples if e.frames]
    plain = [e.text for e in examples if not e.frames]
    posts = []
    for _ in range(n):
        target = rng.randint(300, 600)
        pool = framed if rng.random() < framed_share else plain
        body = ""
        while len(body) < target:
            body = f"{body} {rng.choice(pool)}".strip()
        body = body[:target].rsplit(" ", 1)[0]
        posts.append(rng.choice(DECOR_HEAD) + body + rng.choice(DECOR_TAIL))
    return posts


def combined_examples(examples: list[Example], n: int, seed: int = 1) -> list[Example]:
    """n labelled examples: single corpus examples and pairs of them (labels united), for training time."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = rng.sample(examples, rng.choice((1, 1, 2)))
        frames = tuple(dict.fromkeys(f for p in parts for f in p.frames))
        out.append(Example(" ".join(p.text for p in parts), frames))
    return out


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds per function, running them in turn so they share the machine's load."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def speed(taxonomy: Taxonomy, n_posts: int, n_train: int, repeat: int) -> None:
    corpus = load_corpus(taxonomy)
    train, _ = split_dev(corpus)
    print(f"# classifier speed — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}")
    model = fit_examples(taxonomy, train)
    with tempfile.TemporaryDirectory() as tmp:
        meta = save_model(Path(tmp), model, now=datetime.now(UTC), taxonomy_hash="", data_hash="")
        size = (Path(tmp) / f"{meta.version}.skops").stat().st_size
        load_time = interleaved({"load": lambda: load_model(Path(tmp), meta.version)}, 5)["load"]
        loaded, _ = load_model(Path(tmp), meta.version)
    tagger = FrameTagger(loaded, meta.version)
    print(f"model trained on {len(train)} examples; {n_posts} posts of 300–600 chars; median of {repeat} runs")
    print(f"{'workload / path':<52} {'posts/s':>9} {'ratio':>6}")
    for label, share in (("news mix (25% framed sources)", 0.25), ("all posts framed (worst case)", 1.0)):
        posts = realistic_posts(corpus, n_posts, share)
        cold = interleaved({"cold": lambda p=posts: loaded.predict_proba(p)}, 1)["cold"]
        tagged = sum(1 for c in tagger.classify(posts, explain=False) if c.frames) / n_posts
        medians = interleaved(
            {
                "bare": lambda p=posts: loaded.predict_proba(p),
                "classify": lambda p=posts: tagger.classify(p),
                "plain": lambda p=posts: tagger.classify(p, explain=False),
            },
            repeat,
        )
        base = n_posts / medians["bare"]
        print(f"{label}: {tagged:.0%} of posts tagged")
        print(f"{'  bare predict_proba (baseline)':<52} {base:>9,.0f} {1:>6.2f}")
        print(
            f"{'  bare predict_proba, first call (cold caches)':<52} {n_posts / cold:>9,.0f} "
            f"{n_posts / cold / base:>6.2f}"
        )
        for name, key in (("FrameTagger.classify", "classify"), ("FrameTagger.classify(explain=False)", "plain")):
            rate = n_posts / medians[key]
            print(f"{'  ' + name:<52} {rate:>9,.0f} {rate / base:>6.2f}")
    big = combined_examples(corpus, n_train)
    fit_time = interleaved({"fit": lambda: fit_examples(taxonomy, big)}, 1)["fit"]
    print(f"{'training on ' + str(n_train) + ' labelled examples':<52} {fit_time:>8.1f} s")
    print(f"{'model file size':<52} {size / 1e6:>7.1f} MB")
    print(f"{'model load time (median of 5)':<52} {load_time:>8.2f} s")


# -- model comparison --------------------------------------------------------------------------------


CHOSEN = "chosen: LR C=30 w1:3, none×5, chars 3-5 ×2, words 1-2, cues ×0.2"


def _alternatives(taxonomy: Taxonomy) -> dict[str, Callable[[], FrameClassifier]]:
    def with_(estimator: object = None, calibration: str | None = None, **params: object) -> FrameClassifier:
        model = build_classifier(taxonomy)
        if estimator is not None:
            model.set_params(estimator=estimator)
        model.set_params(calibration=calibration, **params)
        return model

    def lr(c: float = 30.0, cw: object = None) -> LogisticRegression:
        cw = {0: 1, 1: 3} if cw is None else cw
        return LogisticRegression(C=c, class_weight=cw, solver="liblinear", dual=True, max_iter=2000)

    return {
        CHOSEN: lambda: with_(),
        "none×3 (the choice before the corpus grew to 13 files)": lambda: with_(none_weight=3.0),
        "none×8": lambda: with_(none_weight=8.0),
        "LR C=10": lambda: with_(lr(10)),
        "LR C=100": lambda: with_(lr(100)),
        "LR class_weight=balanced": lambda: with_(lr(cw="balanced")),
        "LR no class weight": lambda: with_(lr(cw={0: 1, 1: 1})),
        "no none weighting": lambda: with_(none_weight=1.0),
        "LinearSVC C=1 + sigmoid calibration": lambda: with_(LinearSVC(C=1.0, class_weight={0: 1, 1: 3}), "sigmoid"),
        "LinearSVC C=1 + isotonic calibration": lambda: with_(LinearSVC(C=1.0, class_weight={0: 1, 1: 3}), "isotonic"),
        "SGD log-loss": lambda: with_(
            SGDClassifier(loss="log_loss", alpha=1e-5, class_weight={0: 1, 1: 3}, max_iter=50, random_state=0)
        ),
        "SGD modified huber": lambda: with_(
            SGDClassifier(loss="modified_huber", alpha=1e-5, class_weight={0: 1, 1: 3}, max_iter=50, random_state=0)
        ),
        "chars 2-5": lambda: with_(featurizer__char_ngram_range=(2, 5)),
        "chars 1-4": lambda: with_(featurizer__char_ngram_range=(1, 4)),
        "words 1-1": lambda: with_(featurizer__word_ngram_range=(1, 1)),
        "words 1-3": lambda: with_(featurizer__word_ngram_range=(1, 3)),
        "char block weight 1": lambda: with_(featurizer__char_weight=1.0),
        "no cue features": lambda: with_(featurizer__cue_lexicon=None),
        "cue features ×0.5": lambda: with_(featurizer__cue_weight=0.5),
        "threshold F-beta 0.8": lambda: with_(threshold_beta=0.8),
    }


def _cv_one(name: str, make: Callable[[], FrameClassifier], examples: list[Example], ids: tuple[str, ...]) -> str:
    import warnings

    warnings.filterwarnings("ignore")
    texts = [e.text for e in examples]
    y = label_matrix(examples, ids)
    truth: list[tuple[str, ...]] = []
    predicted: list[tuple[str, ...]] = []
    start = time.perf_counter()
    for train_idx, test_idx in KFold(5, shuffle=True, random_state=1).split(texts):
        model = make().fit([texts[i] for i in train_idx], y[train_idx])
        rows = model.predict([texts[i] for i in test_idx])
        truth += [examples[i].frames for i in test_idx]
        predicted += [tuple(ids[k] for k in np.flatnonzero(r)) for r in rows]
    report = score_predictions(truth, predicted, ids, model_version=name)
    worst = min(report.per_frame.items(), key=lambda kv: kv[1].f1)
    return (
        f"| {name} | {report.macro_f1:.3f} | {report.micro_f1:.3f} | {report.none_fpr:.3f} | "
        f"{worst[0]} {worst[1].f1:.2f} | {time.perf_counter() - start:.0f} |"
    )


def compare(taxonomy: Taxonomy, jobs: int) -> None:
    corpus = load_corpus(taxonomy)
    train, _ = split_dev(corpus)
    ids = taxonomy.ids
    print(f"# 5-fold CV on the train split ({len(train)} examples) — {datetime.now(UTC):%Y-%m-%d} — {machine()}")
    print("| configuration | macro-F1 | micro-F1 | none_fpr | worst frame | s |")
    print("|---|---|---|---|---|---|")
    kw = KeywordBaseline(taxonomy)
    report = score_predictions(
        [e.frames for e in train], kw.predict_frames([e.text for e in train]), ids, model_version="kw"
    )
    worst = min(report.per_frame.items(), key=lambda kv: kv[1].f1)
    print(
        f"| keyword baseline (cue words) | {report.macro_f1:.3f} | {report.micro_f1:.3f} | "
        f"{report.none_fpr:.3f} | {worst[0]} {worst[1].f1:.2f} | 0 |",
        flush=True,
    )
    rows = Parallel(n_jobs=jobs)(delayed(_cv_one)(n, m, train, ids) for n, m in _alternatives(taxonomy).items())
    for row in rows:
        print(row)


def cross_writer(taxonomy: Taxonomy, variants: list[str]) -> None:
    """Train on every corpus file but one, score on that one: how the model does on another
    writer's phrasing (the closest we have to the independently written held-out set).

    With `variants` (names from `_alternatives`), each is scored the same way and pooled over the
    held-out files, which is how the configuration was chosen once the corpus had several writers."""
    corpus = load_corpus(taxonomy)
    ids = taxonomy.ids
    makers = _alternatives(taxonomy)
    unknown = [v for v in variants if v not in makers]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {list(makers)}")
    files = sorted({e.origin.rsplit(":", 1)[0] for e in corpus})
    print(f"# cross-writer check — {datetime.now(UTC):%Y-%m-%d} — {machine()}")
    print("| held-out file | examples | macro-F1 | none_fpr | worst frame | keywords macro-F1 |")
    print("|---|---|---|---|---|---|")
    pooled: dict[str, tuple[list[tuple[str, ...]], list[tuple[str, ...]]]] = {v: ([], []) for v in [CHOSEN, *variants]}
    for held in files:
        test = [e for e in corpus if e.origin.rsplit(":", 1)[0] == held]
        support = Counter(f for e in test for f in e.frames)
        if min(support[f] for f in ids) < 15:
            continue  # a file written mostly for a few frames says little about the others
        train = [e for e in corpus if e.origin.rsplit(":", 1)[0] != held]
        truth = [e.frames for e in test]
        for name, (all_truth, all_predicted) in pooled.items():
            model = fit_examples(taxonomy, train) if name == CHOSEN else _fit(makers[name](), train, ids)
            predicted = [tuple(ids[k] for k in np.flatnonzero(r)) for r in model.predict([e.text for e in test])]
            all_truth += truth
            all_predicted += predicted
            if name != CHOSEN:
                continue
            report = score_predictions(truth, predicted, ids, model_version="")
            kw = score_predictions(
                truth, KeywordBaseline(taxonomy).predict_frames([e.text for e in test]), ids, model_version=""
            )
            worst = min(report.per_frame.items(), key=lambda kv: kv[1].f1)
            print(
                f"| {Path(held).name} | {len(test)} | {report.macro_f1:.3f} | {report.none_fpr:.3f} | "
                f"{worst[0]} {worst[1].f1:.2f} | {kw.macro_f1:.3f} |",
                flush=True,
            )
    print("\n| configuration (pooled over the held-out files) | macro-F1 | micro-F1 | none_fpr | worst frame |")
    print("|---|---|---|---|---|")
    for name, (all_truth, all_predicted) in pooled.items():
        report = score_predictions(all_truth, all_predicted, ids, model_version="")
        worst = min(report.per_frame.items(), key=lambda kv: kv[1].f1)
        print(
            f"| {name} | {report.macro_f1:.3f} | {report.micro_f1:.3f} | {report.none_fpr:.3f} | "
            f"{worst[0]} {worst[1].f1:.2f} |"
        )


def _fit(model: FrameClassifier, train: list[Example], ids: tuple[str, ...]) -> FrameClassifier:
    weights = np.array([e.weight for e in train], dtype=np.float64)
    return model.fit([e.text for e in train], label_matrix(train, ids), sample_weight=weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2k posts, 2k training examples")
    parser.add_argument("--compare", action="store_true", help="cross-validated model comparison")
    parser.add_argument("--cross-writer", action="store_true", help="leave-one-corpus-file-out check")
    parser.add_argument(
        "--variants", default="", help="with --cross-writer: comma-separated configuration names from --compare to pool"
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel CV jobs for --compare")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    if args.compare:
        compare(taxonomy, args.jobs)
    elif args.cross_writer:
        cross_writer(taxonomy, [v.strip() for v in args.variants.split(",") if v.strip()])
    else:
        n = 2_000 if args.quick else 20_000
        speed(taxonomy, n_posts=n, n_train=2_000 if args.quick else 10_000, repeat=3 if args.quick else 5)


if __name__ == "__main__":
    main()
