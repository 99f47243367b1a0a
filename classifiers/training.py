"""Training service: validate data, fit, score on the dev split, compare with the active model, register.

Callers hand in plain `LabeledText` values (admin labels, subscriber feedback); this package never
touches the database. A run that fails for any reason leaves the active model exactly as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from classifiers.corpus import (
    CorpusError,
    Example,
    data_hash,
    deduplicate,
    examples_from_labels,
    label_matrix,
    load_corpus,
    split_dev,
)
from classifiers.evaluation import EvalReport, evaluate, score_predictions
from classifiers.features import TextFeaturizer
from classifiers.keywords import taxonomy_lexicon
from classifiers.model import MIN_POSITIVES, FrameClassifier
from classifiers.registry import (
    ModelMetadata,
    RegistryError,
    activate,
    active_version,
    check_writable,
    load_model,
    save_model,
)
from classifiers.taxonomy import Taxonomy
from classifiers.types import LabeledText

Progress = Callable[[str], None]


class TrainingDataError(ValueError):
    """The training data cannot produce a model (unknown frame, empty text, a frame with one class)."""


@dataclass(frozen=True, slots=True)
class TrainingReport:
    version: str
    activated: bool
    reason: str
    dev: EvalReport
    previous_version: str | None
    previous_dev: EvalReport | None
    n_train: int
    n_dev: int
    seconds: float


def build_classifier(taxonomy: Taxonomy) -> FrameClassifier:
    """The configuration that won the cross-validated comparison in docs/classifier.md."""
    lexicon = taxonomy_lexicon(taxonomy)
    has_cues = any(cues for _, cues in lexicon)
    featurizer = TextFeaturizer(
        word_ngram_range=(1, 2),
        char_ngram_range=(3, 5),
        char_weight=2.0,
        cue_lexicon=lexicon if has_cues else None,
        cue_weight=0.2,
        min_df=2,
    )
    return FrameClassifier(featurizer=featurizer, none_weight=5.0, frame_ids=taxonomy.ids, random_state=0)


def predictor(model: FrameClassifier) -> Callable[[Sequence[str]], list[tuple[str, ...]]]:
    ids = [str(c) for c in model.classes_]

    def predict(texts: Sequence[str]) -> list[tuple[str, ...]]:
        return [tuple(ids[k] for k in np.flatnonzero(row)) for row in model.predict(list(texts))]

    return predict


def prepare_examples(taxonomy: Taxonomy, corpus: Sequence[Example], extra: Sequence[LabeledText] = ()) -> list[Example]:
    """Corpus plus extra labels (an extra label for a corpus text overrides it), validated."""
    try:
        extras = examples_from_labels(list(extra), taxonomy)
    except CorpusError as exc:
        raise TrainingDataError(str(exc)) from None
    bad = taxonomy.unknown([f for ex in corpus for f in ex.frames])
    if bad:
        raise TrainingDataError(f"unknown frame id(s) in the corpus: {', '.join(bad)}")
    # Admin labels (higher weight) win over feedback on the same text; among equals the later one wins.
    ordered = list(corpus) + sorted(extras, key=lambda e: e.weight)
    return deduplicate(ordered)


def check_trainable(examples: Sequence[Example], taxonomy: Taxonomy) -> None:
    n = len(examples)
    if n == 0:
        raise TrainingDataError("no training examples")
    y = label_matrix(examples, taxonomy.ids)
    problems = []
    for k, fid in enumerate(taxonomy.ids):
        pos = int(y[:, k].sum())
        if pos < MIN_POSITIVES or n - pos < MIN_POSITIVES:
            problems.append(f"{fid} ({pos} positive, {n - pos} negative)")
    if problems:
        raise TrainingDataError(
            f"each frame needs at least {MIN_POSITIVES} positive and {MIN_POSITIVES} negative training "
            f"examples; not enough for: {', '.join(problems)}"
        )


def fit_examples(taxonomy: Taxonomy, examples: Sequence[Example]) -> FrameClassifier:
    """Fit the chosen configuration; the one code path `framewatch train` and the benchmarks share."""
    check_trainable(examples, taxonomy)
    model = build_classifier(taxonomy)
    y = label_matrix(examples, taxonomy.ids)
    weights = np.array([e.weight for e in examples], dtype=np.float64)
    return model.fit([e.text for e in examples], y, sample_weight=weights)


def _cv_metrics(model: FrameClassifier, examples: Sequence[Example]) -> dict[str, object]:
    """Per-frame metrics of the out-of-fold predictions made while tuning thresholds."""
    ids = [str(c) for c in model.classes_]
    predicted = model.oof_proba_ >= model.thresholds_
    report = score_predictions(
        [e.frames for e in examples],
        [tuple(ids[k] for k in np.flatnonzero(row)) for row in predicted],
        ids,
        model_version="cv",
    )
    out = report.to_json()
    out.pop("model_version")
    out["thresholds"] = {fid: round(float(t), 4) for fid, t in zip(ids, model.thresholds_, strict=True)}
    return out


def _counts(train: Sequence[Example], dev: Sequence[Example], taxonomy: Taxonomy) -> dict[str, object]:
    y = label_matrix(train, taxonomy.ids)
    return {
        "train": len(train),
        "dev": len(dev),
        "train_none": int((y.sum(axis=1) == 0).sum()),
        "train_extra": sum(1 for e in train if e.origin.startswith("extra")),
        "train_per_frame": {fid: int(y[:, k].sum()) for k, fid in enumerate(taxonomy.ids)},
    }


def _compare_active(
    models_dir: Path, dev: Sequence[Example], taxonomy: Taxonomy, progress: Progress
) -> tuple[str | None, EvalReport | None]:
    try:
        current = active_version(models_dir)
        if current is None:
            return None, None
        model, meta = load_model(models_dir, current)
    except RegistryError as exc:
        progress(f"warning: the active model cannot be loaded for comparison ({exc})")
        return None, None
    return current, evaluate(predictor(model), dev, taxonomy.ids, model_version=meta.version)


def train(
    taxonomy: Taxonomy,
    models_dir: Path,
    *,
    now: datetime,
    extra: Sequence[LabeledText] = (),
    corpus: Sequence[Example] | None = None,
    force: bool = False,
    max_drop: float = 0.02,
    progress: Progress | None = None,
) -> TrainingReport:
    """Train on the train split, score on the dev split, register, and activate unless it is worse.

    The new version is always saved (so `model use` can pick it later); it is activated only if its dev
    macro-F1 is within `max_drop` of the active model's, or `force` is set.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    check_writable(models_dir)
    if corpus is None:
        try:
            corpus = load_corpus(taxonomy)
        except CorpusError as exc:
            raise TrainingDataError(str(exc)) from None
    examples = prepare_examples(taxonomy, corpus, extra)
    train_set, dev_set = split_dev(examples)
    check_trainable(train_set, taxonomy)
    say(f"training on {len(train_set)} examples ({len(extra)} extra labels), {len(dev_set)} held out for dev")
    model = fit_examples(taxonomy, train_set)
    dev_report = evaluate(predictor(model), dev_set, taxonomy.ids, model_version="candidate")
    previous_version, previous_dev = _compare_active(models_dir, dev_set, taxonomy, say)
    meta: ModelMetadata = save_model(
        models_dir,
        model,
        now=now,
        taxonomy_hash=taxonomy.hash,
        data_hash=data_hash(train_set),
        counts=_counts(train_set, dev_set, taxonomy),
        cv_metrics=_cv_metrics(model, train_set),
        dev_metrics={k: v for k, v in dev_report.to_json().items() if k != "model_version"},
        params={k: repr(v) for k, v in model.get_params(deep=False).items()},
    )
    dev_report = evaluate(predictor(model), dev_set, taxonomy.ids, model_version=meta.version)
    if previous_dev is not None and dev_report.macro_f1 < previous_dev.macro_f1 - max_drop and not force:
        activated = False
        reason = (
            f"not activated: dev macro-F1 {dev_report.macro_f1:.3f} is more than {max_drop:.2f} below "
            f"the active model's {previous_dev.macro_f1:.3f} (use --force to activate anyway)"
        )
    else:
        activate(models_dir, meta.version)
        activated = True
        reason = "activated" + (" (forced)" if force and previous_dev is not None else "")
    return TrainingReport(
        version=meta.version,
        activated=activated,
        reason=reason,
        dev=dev_report,
        previous_version=previous_version,
        previous_dev=previous_dev,
        n_train=len(train_set),
        n_dev=len(dev_set),
        seconds=time.perf_counter() - started,
    )
