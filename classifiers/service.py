"""The façade ingest and the bot call: texts in, `Classification` values out.

Loads the active model from the registry; on a fresh install (or if the active files are missing or
unreadable) it trains one from the shipped corpus first, saying so, so the product works offline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from classifiers.corpus import Example
from classifiers.features import analyse
from classifiers.model import BATCH, FrameClassifier
from classifiers.registry import (
    CorruptModelError,
    ModelNotFoundError,
    active_version,
    load_active,
    load_model,
)
from classifiers.taxonomy import Taxonomy, load_taxonomy
from classifiers.types import Classification, FrameScore

log = logging.getLogger(__name__)
EVIDENCE_WORDS = 5


class FrameTagger:
    """A loaded model plus its version; `classify` is batched and safe to call from any thread."""

    def __init__(self, model: FrameClassifier, version: str, *, evidence_words: int = EVIDENCE_WORDS) -> None:
        self.model = model
        self._version = version
        self.evidence_words = evidence_words
        # One batch at a time: ingestion classifies from several worker threads, and each batch's
        # feature matrices are tens of MiB while the GIL serialises most of the work anyway.
        self._running = threading.Lock()
        self._ids = tuple(str(c) for c in model.classes_)
        for k in range(len(self._ids)):
            model.frame_weights(k)  # warm the cache before threads share the model

    @property
    def version(self) -> str:
        return self._version

    @property
    def frame_ids(self) -> tuple[str, ...]:
        return self._ids

    def is_current(self, models_dir: Path) -> bool:
        """False once another process has activated a different version (time to reload)."""
        return active_version(models_dir) == self._version

    def classify(self, texts: Sequence[str], *, explain: bool = True) -> list[Classification]:
        """One Classification per text, frames strongest first; an empty tuple when none applies."""
        out: list[Classification] = []
        thresholds = self.model.thresholds_
        for start in range(0, len(texts), BATCH):
            chunk = [t if isinstance(t, str) else "" for t in texts[start : start + BATCH]]
            with self._running:
                analysed = analyse(chunk)
                entries = self.model.entries(analysed)
                features = self.model.transform_entries(entries)
                proba = self.model.proba_from_features(features)
                hits = proba >= thresholds
                evidence: list[dict[int, tuple[str, ...]]] = [{} for _ in chunk]
                if explain and hits.any():
                    evidence = self.model.evidence_batch(analysed, entries, features, hits, self.evidence_words)
                del entries, features
            for i in range(len(chunk)):
                tagged = np.flatnonzero(hits[i])
                if tagged.size == 0:
                    out.append(Classification(frames=(), model_version=self._version))
                    continue
                tagged = tagged[np.argsort(-proba[i, tagged], kind="stable")]
                words = evidence[i]
                frames = tuple(
                    FrameScore(self._ids[k], round(float(proba[i, k]), 4), words.get(int(k), ())) for k in tagged
                )
                out.append(Classification(frames=frames, model_version=self._version))
        return out


def load_tagger(
    models_dir: Path,
    *,
    now: datetime,
    taxonomy: Taxonomy | None = None,
    progress: Callable[[str], None] | None = None,
    corpus: Sequence[Example] | None = None,
) -> FrameTagger:
    """The active model as a FrameTagger, training one from the shipped corpus if there is none.

    `corpus` replaces the shipped corpus for that first training (tests use a small one). A model
    refused as untrusted (hash mismatch, unexpected types) is *not* replaced: that error
    propagates, because silently retraining would hide tampering.
    """
    say = progress or log.warning
    try:
        model, meta = load_active(models_dir)
        return FrameTagger(model, meta.version)
    except (ModelNotFoundError, CorruptModelError) as exc:
        say(f"{exc}; training a model from the shipped corpus (this takes a minute)…")
    from classifiers.training import train

    report = train(taxonomy or load_taxonomy(), models_dir, now=now, corpus=corpus, force=True, progress=say)
    say(f"trained model {report.version}: dev macro-F1 {report.dev.macro_f1:.3f}")
    model, meta = load_model(models_dir, report.version)
    return FrameTagger(model, meta.version)
