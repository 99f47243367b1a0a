"""framewatch's training path on three externally labelled public datasets, beside a plain baseline.

    python bench/public_datasets.py [--datasets ../shared/datasets] [--only criticism|unlp|voxcheck]

The sets are read from ../shared/datasets (relative to the repository) at run time and never copied;
see that folder's README.md and each SOURCE.md for licences (internal evaluation only). Each set gets
a taxonomy built from its own labels and goes through `classifiers.training.fit_examples`, the code
`framewatch train` runs. The baseline in the same run is a plain TfidfVectorizer + LogisticRegression
(default settings, probability ≥ 0.5 per label, argmax for single-label sets).

Protocol (fixed, seed 42):
- russia-rebirth-criticism: stratified 80/20 split (as the published ruBERT figure) and stratified
  5-fold CV; binary macro-F1 over the two classes, and accuracy.
- unlp-2025-techniques: 5-fold CV on train.jsonl; macro-F1 over the 10 techniques.
- voxcheck-narratives: per language, stratified 5-fold CV over the 13 top-level narratives (labels with
  fewer than 10 cases dropped); macro-F1 of the multi-label tags, and of the single best label.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline

from classifiers.corpus import Example
from classifiers.taxonomy import Taxonomy
from classifiers.training import fit_examples

SEED = 42
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _slug(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:60]
    return slug if slug and slug[0].isalpha() else f"n_{slug}"


def _ours(ids: Sequence[str]) -> Callable[[list[Example], list[str]], np.ndarray]:
    """Train with framewatch's training path; return the test probabilities (n × labels)."""
    taxonomy = Taxonomy.from_ids(list(ids), source="public dataset labels")

    def run(train: list[Example], test: list[str]) -> tuple[np.ndarray, np.ndarray]:
        model = fit_examples(taxonomy, train)
        return model.predict_proba(test), model.predict(test)

    return run


def _baseline(ids: Sequence[str], train: list[Example], test: list[str]) -> np.ndarray:
    y = np.array([[f in e.frames for f in ids] for e in train], dtype=int)
    if len(ids) == 1:  # one label: a plain binary model (OneVsRest would treat it as two classes)
        binary = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
        binary.fit([e.text for e in train], y[:, 0])
        return binary.predict_proba(test)[:, 1:]
    model = make_pipeline(TfidfVectorizer(), OneVsRestClassifier(LogisticRegression(max_iter=1000)))
    model.fit([e.text for e in train], y)
    return model.predict_proba(test)


def _macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


# -- russia-rebirth-criticism ------------------------------------------------------------------------


def criticism(root: Path) -> list[str]:
    path = root / "russia-rebirth-criticism" / "Training_Dataset.csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["message"].strip()]
    texts = [r["message"] for r in rows]
    y = np.array([r["is_criticism"].strip().upper() == "TRUE" for r in rows], dtype=int)
    ours = _ours(["criticism"])
    out = [f"russia-rebirth-criticism: {len(rows)} posts, {y.sum()} criticism"]

    def score(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[float, float, float, float]:
        train = [Example(texts[i], ("criticism",) if y[i] else ()) for i in train_idx]
        test = [texts[i] for i in test_idx]
        _, pred = ours(train, test)
        base = (_baseline(["criticism"], train, test)[:, 0] >= 0.5).astype(int)
        truth = y[test_idx]
        return (
            _macro(truth, pred[:, 0]),
            float(accuracy_score(truth, pred[:, 0])),
            _macro(truth, base),
            float(accuracy_score(truth, base)),
        )

    idx = np.arange(len(rows))
    train_idx, test_idx = train_test_split(idx, test_size=0.2, stratify=y, random_state=SEED)
    split = score(train_idx, test_idx)
    folds = [score(a, b) for a, b in StratifiedKFold(5, shuffle=True, random_state=SEED).split(idx, y)]
    cv = np.mean(folds, axis=0)
    out.append("| protocol | framewatch macro-F1 | accuracy | TF-IDF+LR macro-F1 | accuracy | ruBERT |")
    out.append("|---|---|---|---|---|---|")
    out.append(f"| 80/20 split | {split[0]:.3f} | {split[1]:.3f} | {split[2]:.3f} | {split[3]:.3f} | 0.807 |")
    out.append(f"| 5-fold CV mean | {cv[0]:.3f} | {cv[1]:.3f} | {cv[2]:.3f} | {cv[3]:.3f} | – |")
    return out


# -- unlp-2025-techniques ----------------------------------------------------------------------------


def unlp(root: Path) -> list[str]:
    path = root / "unlp-2025-techniques" / "train.jsonl"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = [i for i in items if (i.get("content") or "").strip()]
    counts = Counter(t for i in items for t in i["techniques"] or [])
    ids = [t for t, _ in counts.most_common()]
    examples = [Example(i["content"], tuple(i["techniques"] or ())) for i in items]
    y = np.array([[f in e.frames for f in ids] for e in examples], dtype=int)
    ours = _ours(ids)
    ours_pred = np.zeros_like(y)
    base_pred = np.zeros_like(y)
    for train_idx, test_idx in KFold(5, shuffle=True, random_state=SEED).split(examples):
        train = [examples[i] for i in train_idx]
        test = [examples[i].text for i in test_idx]
        ours_pred[test_idx] = ours(train, test)[1]
        base_pred[test_idx] = (_baseline(ids, train, test) >= 0.5).astype(int)
    per_label = f1_score(y, ours_pred, average=None, zero_division=0)
    return [
        f"unlp-2025-techniques: {len(items)} posts, {len(ids)} techniques, 5-fold CV",
        "| model | macro-F1 | micro-F1 |",
        "|---|---|---|",
        f"| framewatch | {_macro(y, ours_pred):.3f} | {f1_score(y, ours_pred, average='micro'):.3f} |",
        f"| TF-IDF+LR | {_macro(y, base_pred):.3f} | {f1_score(y, base_pred, average='micro'):.3f} |",
        "| UNLP 2025 winner (hidden test set) | 0.49 | – |",
        "per technique (framewatch F1): " + ", ".join(f"{t} {f:.2f}" for t, f in zip(ids, per_label, strict=True)),
    ]


# -- voxcheck-narratives -----------------------------------------------------------------------------


def voxcheck(root: Path) -> list[str]:
    folder = root / "voxcheck-narratives"
    english = json.loads((folder / "dataEng.json").read_text(encoding="utf-8"))
    labels = [_slug(e["Narrative"]) for e in english]  # files are parallel; labels taken from English
    out = [
        "voxcheck-narratives: stratified 5-fold CV per language (narratives with ≥ 10 cases)",
        "| language | cases | narratives | framewatch macro-F1 (tags) | framewatch macro-F1 (best label) "
        "| TF-IDF+LR macro-F1 (best label) |",
        "|---|---|---|---|---|---|",
    ]
    for lang, file, key in (
        ("en", "dataEng.json", "Disinfo_cases_en"),
        ("ru", "dataRu.json", "Disinfo_cases_ru"),
        ("uk", "dataUkr.json", "Disinfo_cases _ua"),
    ):
        data = json.loads((folder / file).read_text(encoding="utf-8"))
        pairs = [((d.get(key) or "").strip(), label) for d, label in zip(data, labels, strict=True)]
        pairs = [(t, label) for t, label in pairs if t]
        keep = {label for label, n in Counter(label for _, label in pairs).items() if n >= 10}
        pairs = [(t, label) for t, label in pairs if label in keep]
        ids = sorted(keep)
        texts = [t for t, _ in pairs]
        y_single = np.array([ids.index(label) for _, label in pairs])
        y = np.eye(len(ids), dtype=int)[y_single]
        ours = _ours(ids)
        tags = np.zeros_like(y)
        best = np.zeros_like(y_single)
        base = np.zeros_like(y_single)
        for train_idx, test_idx in StratifiedKFold(5, shuffle=True, random_state=SEED).split(texts, y_single):
            train = [Example(texts[i], (ids[y_single[i]],)) for i in train_idx]
            test = [texts[i] for i in test_idx]
            proba, pred = ours(train, test)
            tags[test_idx] = pred
            best[test_idx] = proba.argmax(axis=1)
            base[test_idx] = _baseline(ids, train, test).argmax(axis=1)
        out.append(
            f"| {lang} | {len(texts)} | {len(ids)} | {_macro(y, tags):.3f} | {_macro(y_single, best):.3f} "
            f"| {_macro(y_single, base):.3f} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DIR, help="folder holding the three sets")
    parser.add_argument("--only", choices=("criticism", "unlp", "voxcheck"), help="run one set")
    args = parser.parse_args()
    if not args.datasets.is_dir():
        print(f"skipped: public datasets folder {args.datasets} is absent (see ../shared/datasets/README.md)")
        return
    print(f"# public datasets — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — seed {SEED}")
    runs = {"criticism": criticism, "unlp": unlp, "voxcheck": voxcheck}
    for name, run in runs.items():
        if args.only and name != args.only:
            continue
        started = time.perf_counter()
        try:
            lines = run(args.datasets)
        except FileNotFoundError as exc:
            lines = [f"{name}: skipped, file missing: {exc.filename}"]
        print("\n".join(lines))
        print(f"({time.perf_counter() - started:.0f}s)\n", flush=True)


if __name__ == "__main__":
    main()
