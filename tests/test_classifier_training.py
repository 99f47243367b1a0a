"""Training service: bad data is refused with the active model untouched; worse models are not activated."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from classifiers.corpus import Example, load_corpus, split_dev
from classifiers.registry import active_version, list_versions, read_metadata
from classifiers.taxonomy import Taxonomy, load_taxonomy
from classifiers.training import TrainingDataError, train
from classifiers.types import LabeledText

TAXONOMY = load_taxonomy()
NOW = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def corpus() -> list[Example]:
    """A slice of the shipped corpus with both splits represented (train uses the fixed dev split)."""
    examples = load_corpus(TAXONOMY)
    train_part, dev_part = split_dev(examples)
    picked: list[Example] = []
    for part, per_frame, none in ((train_part, 25, 60), (dev_part, 8, 20)):
        chosen: dict[str, Example] = {}
        for fid in TAXONOMY.ids:
            for ex in [e for e in part if fid in e.frames][:per_frame]:
                chosen[ex.text] = ex
        for ex in [e for e in part if not e.frames][:none]:
            chosen[ex.text] = ex
        picked.extend(chosen.values())
    return picked


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory, corpus: list[Example]) -> tuple[Path, str]:
    models_dir = tmp_path_factory.mktemp("models")
    report = train(TAXONOMY, models_dir, now=NOW, corpus=corpus)
    assert report.activated and report.previous_version is None
    return models_dir, report.version


@pytest.fixture
def trained(tmp_path: Path, trained_once: tuple[Path, str]) -> tuple[Path, str]:
    """A private copy of a registry holding one trained, active model."""
    source, version = trained_once
    shutil.copytree(source, tmp_path / "models")
    return tmp_path / "models", version


def test_first_training_registers_and_activates_with_metadata(trained: tuple[Path, str], corpus: list[Example]) -> None:
    models_dir, version = trained
    assert active_version(models_dir) == version
    meta = read_metadata(models_dir, version)
    train_part, dev_part = split_dev(corpus)
    assert meta.counts["train"] == len(train_part) and meta.counts["dev"] == len(dev_part)
    assert set(meta.counts["train_per_frame"]) == set(TAXONOMY.ids)
    assert set(meta.cv_metrics["per_frame"]) == set(TAXONOMY.ids)
    assert set(meta.cv_metrics["thresholds"]) == set(TAXONOMY.ids)
    assert 0 <= meta.dev_metrics["macro_f1"] <= 1
    assert meta.taxonomy_hash == TAXONOMY.hash and len(meta.data_hash) == 64


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([LabeledText("A post about something.", ("moon_landing",))], "unknown frame id"),
        ([LabeledText("   ", ("denial",))], "the text is empty"),
        ([LabeledText("https://t.me/channel/1", ())], "the text is empty"),
        ([LabeledText("Valid text here.", ("denial",), weight=-1)], "weight"),
    ],
)
def test_bad_extra_labels_are_refused_and_the_active_model_stays(
    trained: tuple[Path, str], corpus: list[Example], extra: list[LabeledText], message: str
) -> None:
    models_dir, version = trained
    with pytest.raises(TrainingDataError, match=message):
        train(TAXONOMY, models_dir, now=NOW + timedelta(hours=1), corpus=corpus, extra=extra)
    assert active_version(models_dir) == version
    assert [m.version for m in list_versions(models_dir)] == [version]


def test_a_frame_with_one_class_only_is_refused(tmp_path: Path, corpus: list[Example]) -> None:
    without_denial = [e for e in corpus if "denial" not in e.frames]
    with pytest.raises(TrainingDataError, match=r"not enough for: denial \(0 positive"):
        train(TAXONOMY, tmp_path, now=NOW, corpus=without_denial)
    only_none = [e for e in corpus if not e.frames]
    with pytest.raises(TrainingDataError, match="internal_resistance"):
        train(TAXONOMY, tmp_path, now=NOW, corpus=only_none)
    with pytest.raises(TrainingDataError, match="no training examples"):
        train(TAXONOMY, tmp_path, now=NOW, corpus=[])
    assert active_version(tmp_path) is None and list_versions(tmp_path) == []


def test_custom_taxonomy_trains_through_the_same_path(tmp_path: Path, corpus: list[Example]) -> None:
    two = Taxonomy.from_ids(["denial", "civilian_harm"])
    relabelled = [Example(e.text, tuple(f for f in e.frames if f in two.ids)) for e in corpus]
    report = train(two, tmp_path, now=NOW, corpus=relabelled)
    assert report.activated and set(report.dev.per_frame) == {"denial", "civilian_harm"}


def test_worse_model_is_saved_but_not_activated_unless_forced(trained: tuple[Path, str], corpus: list[Example]) -> None:
    models_dir, good = trained
    # Admin "labels" that scramble the frames of every training text: a clearly worse model.
    rng = random.Random(7)
    train_part, _ = split_dev(corpus)
    shuffled = [e.frames for e in train_part]
    rng.shuffle(shuffled)
    extra = [LabeledText(e.text, frames, 1.0) for e, frames in zip(train_part, shuffled, strict=True)]
    report = train(TAXONOMY, models_dir, now=NOW + timedelta(hours=1), corpus=corpus, extra=extra, max_drop=0.02)
    assert not report.activated and "not activated" in report.reason
    assert report.previous_version == good and report.previous_dev is not None
    assert report.dev.macro_f1 < report.previous_dev.macro_f1 - 0.02
    assert active_version(models_dir) == good
    assert report.version in [m.version for m in list_versions(models_dir)]
    forced = train(
        TAXONOMY, models_dir, now=NOW + timedelta(hours=2), corpus=corpus, extra=extra, force=True, max_drop=0.02
    )
    assert forced.activated and active_version(models_dir) == forced.version


def test_extra_labels_override_corpus_labels_and_carry_weights(tmp_path: Path, corpus: list[Example]) -> None:
    train_part, _ = split_dev(corpus)
    target = next(e for e in train_part if e.frames)
    extra = [
        LabeledText(target.text, (), weight=0.3),  # subscriber feedback says: no frame
        LabeledText(target.text, ("civilian_harm",), weight=1.0),  # the admin label wins
        LabeledText("Урожай пшеницы в регионе вырос на десять процентов.", (), weight=0.3),
    ]
    report = train(TAXONOMY, tmp_path, now=NOW, corpus=corpus, extra=extra)
    meta = read_metadata(tmp_path, report.version)
    new_texts = 1 if split_dev([Example(extra[2].text, ())])[0] else 0
    assert meta.counts["train"] == len(train_part) + new_texts
    assert meta.counts["train_extra"] == 1 + new_texts
