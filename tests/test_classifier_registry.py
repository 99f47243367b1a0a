"""Model registry: skops round trip, refusal of tampered or untrusted files, active pointer, bootstrap."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from classifiers.corpus import Example, label_matrix, load_corpus, split_dev
from classifiers.model import FrameClassifier
from classifiers.registry import (
    POINTER,
    CorruptModelError,
    ModelNotFoundError,
    RegistryError,
    UntrustedModelError,
    activate,
    active_version,
    list_versions,
    load_active,
    load_model,
    rollback,
    save_model,
)
from classifiers.service import FrameTagger, load_tagger
from classifiers.taxonomy import load_taxonomy
from classifiers.training import build_classifier

TAXONOMY = load_taxonomy()
NOW = datetime(2025, 5, 22, 12, 0, tzinfo=UTC)


def _small_corpus(per_frame: int = 12, none: int = 30) -> list[Example]:
    train, _ = split_dev(load_corpus(TAXONOMY))
    chosen: dict[str, Example] = {}
    for fid in TAXONOMY.ids:
        for ex in [e for e in train if fid in e.frames][:per_frame]:
            chosen[ex.text] = ex
    for ex in [e for e in train if not e.frames][:none]:
        chosen[ex.text] = ex
    return list(chosen.values())


@pytest.fixture(scope="module")
def corpus() -> list[Example]:
    return _small_corpus()


@pytest.fixture(scope="module")
def fitted(corpus: list[Example]) -> FrameClassifier:
    model = build_classifier(TAXONOMY).set_params(threshold_folds=2)
    return model.fit([e.text for e in corpus], label_matrix(corpus, TAXONOMY.ids))


def _save(models_dir: Path, model: FrameClassifier, minutes: int = 0) -> str:
    meta = save_model(
        models_dir,
        model,
        now=NOW + timedelta(minutes=minutes),
        taxonomy_hash=TAXONOMY.hash,
        data_hash="d" * 64,
        counts={"train": 1},
    )
    return meta.version


def test_round_trip_gives_identical_predictions(tmp_path: Path, fitted: FrameClassifier) -> None:
    version = _save(tmp_path, fitted)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{version}.json", f"{version}.skops"]
    loaded, meta = load_model(tmp_path, version)
    texts = ["Партизани підпалили релейну шафу.", "Talks on grain exports resumed in Istanbul."]
    np.testing.assert_allclose(loaded.predict_proba(texts), fitted.predict_proba(texts))
    np.testing.assert_array_equal(loaded.thresholds_, fitted.thresholds_)
    assert meta.frame_ids == TAXONOMY.ids and meta.taxonomy_hash == TAXONOMY.hash
    assert meta.created_at == NOW.isoformat() and meta.sklearn_version and meta.skops_version
    on_disk = json.loads((tmp_path / f"{version}.json").read_text())
    assert {"version", "created_at", "data_hash", "counts", "cv_metrics", "sklearn_version"} <= set(on_disk)
    assert [m.version for m in list_versions(tmp_path)] == [version]


def test_tampered_file_is_refused(tmp_path: Path, fitted: FrameClassifier) -> None:
    version = _save(tmp_path, fitted)
    path = tmp_path / f"{version}.skops"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(UntrustedModelError, match="does not match the sha256"):
        load_model(tmp_path, version)


def test_file_with_untrusted_types_is_refused_before_loading(tmp_path: Path, fitted: FrameClassifier) -> None:
    # A correctly hashed file (as an attacker with write access to models_dir could produce) that
    # smuggles a callable in: the type check must refuse it, whatever the hash says.
    poisoned = build_classifier(TAXONOMY)
    poisoned.__dict__.update(fitted.__dict__)
    poisoned.hook_ = eval
    version = _save(tmp_path, poisoned)
    with pytest.raises(UntrustedModelError, match=r"builtins\.eval"):
        load_model(tmp_path, version)
    with pytest.raises(UntrustedModelError):
        activate(tmp_path, version)
    assert active_version(tmp_path) is None


def test_garbage_and_missing_files(tmp_path: Path, fitted: FrameClassifier) -> None:
    version = _save(tmp_path, fitted)
    meta = json.loads((tmp_path / f"{version}.json").read_text())
    garbage = b"not a zip file at all"
    import hashlib

    meta["model_sha256"] = hashlib.sha256(garbage).hexdigest()
    (tmp_path / f"{version}.json").write_text(json.dumps(meta))
    (tmp_path / f"{version}.skops").write_bytes(garbage)
    with pytest.raises(CorruptModelError, match="not a readable skops file"):
        load_model(tmp_path, version)
    with pytest.raises(ModelNotFoundError, match="not found"):
        load_model(tmp_path, "20990101T000000Z-nothere")
    with pytest.raises(ModelNotFoundError, match="not a model version"):
        load_model(tmp_path, "../../etc/passwd")
    with pytest.raises(ModelNotFoundError, match="no active model"):
        load_active(tmp_path)
    (tmp_path / POINTER).write_text("{broken")
    with pytest.raises(CorruptModelError, match="pointer"):
        active_version(tmp_path)


def test_activate_use_and_rollback(tmp_path: Path, fitted: FrameClassifier) -> None:
    first, second, third = (_save(tmp_path, fitted, minutes=m) for m in (0, 1, 2))
    assert activate(tmp_path, first) is None
    assert activate(tmp_path, second) == first
    assert activate(tmp_path, third) == second
    assert active_version(tmp_path) == third
    assert rollback(tmp_path) == second
    assert rollback(tmp_path) == first
    assert active_version(tmp_path) == first
    with pytest.raises(ModelNotFoundError, match="no earlier model version"):
        rollback(tmp_path)
    assert load_active(tmp_path)[1].version == first
    assert [m.version for m in list_versions(tmp_path)] == [first, second, third]


def test_pointer_swap_is_atomic(tmp_path: Path, fitted: FrameClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _save(tmp_path, fitted), _save(tmp_path, fitted, minutes=1)
    activate(tmp_path, first)
    before = (tmp_path / POINTER).read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(RegistryError, match="disk full"):  # phrased for the operator, not a raw OSError
        activate(tmp_path, second)
    monkeypatch.undo()
    # The old pointer is intact and no half-written temp file is left behind.
    assert (tmp_path / POINTER).read_bytes() == before
    assert active_version(tmp_path) == first
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_tagger_bootstraps_a_model_when_none_is_active(tmp_path: Path, corpus: list[Example]) -> None:
    messages: list[str] = []
    tagger = load_tagger(tmp_path, now=NOW, corpus=corpus, progress=messages.append)
    assert isinstance(tagger, FrameTagger)
    assert active_version(tmp_path) == tagger.version
    assert any("training a model from the shipped corpus" in m for m in messages)
    # Next start loads it without training.
    messages.clear()
    again = load_tagger(tmp_path, now=NOW, corpus=corpus, progress=messages.append)
    assert again.version == tagger.version and messages == []
    # A deleted model file (corrupt install) triggers retraining with a warning…
    (tmp_path / f"{tagger.version}.skops").unlink()
    rebuilt = load_tagger(tmp_path, now=NOW + timedelta(hours=1), corpus=corpus, progress=messages.append)
    assert rebuilt.version != tagger.version and messages
    # …but a tampered one is refused, not silently replaced.
    path = tmp_path / f"{rebuilt.version}.skops"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(UntrustedModelError):
        load_tagger(tmp_path, now=NOW + timedelta(hours=2), corpus=corpus, progress=messages.append)
    assert active_version(tmp_path) == rebuilt.version


def test_an_unusable_models_dir_is_a_registry_error_before_training(tmp_path: Path, fitted: FrameClassifier) -> None:
    """classifier.models_dir pointing at a file (or anywhere unwritable) used to end in a raw
    FileExistsError / PermissionError traceback, after a minute of training on a fresh install."""
    import time

    not_a_dir = tmp_path / "models"
    not_a_dir.write_text("a file where the directory should be")
    with pytest.raises(RegistryError, match=r"classifier\.models_dir"):
        _save(not_a_dir, fitted)
    started = time.perf_counter()
    with pytest.raises(RegistryError, match="cannot write to the model directory"):
        load_tagger(not_a_dir, now=NOW, progress=lambda _m: None)
    assert time.perf_counter() - started < 5, "refused before training, not after"


def test_tagger_classifies_in_batches_with_evidence(tmp_path: Path, fitted: FrameClassifier) -> None:
    version = _save(tmp_path, fitted)
    tagger = FrameTagger(*load_model(tmp_path, version)[:1], version=version)
    texts = [
        "Партизаны «Легиона Свобода России» заявили о поджоге релейного шкафа под Белгородом.",
        "",
        "Прогноз погоды на завтра: солнечно.",
    ]
    results = tagger.classify(texts)
    assert len(results) == 3 and all(r.model_version == version for r in results)
    assert results[1].frames == ()
    for text, result in zip(texts, results, strict=True):
        scores = [f.score for f in result.frames]
        assert scores == sorted(scores, reverse=True)
        for frame in result.frames:
            assert frame.frame_id in TAXONOMY.ids
            assert all(word in text for word in frame.evidence)
    plain = tagger.classify(texts, explain=False)
    assert [r.frame_ids for r in plain] == [r.frame_ids for r in results]
    assert all(f.evidence == () for r in plain for f in r.frames)


def test_tagging_does_not_depend_on_the_batch_a_text_is_in(tagger: FrameTagger) -> None:
    """classify() cuts long lists into feature matrices of BATCH texts (memory); a text's frames, scores
    and evidence must be the same whether it is tagged alone or in the middle of a long list."""
    from classifiers.corpus import load_corpus
    from classifiers.model import BATCH
    from classifiers.taxonomy import load_taxonomy

    texts = [e.text for e in load_corpus(load_taxonomy())][: BATCH * 2 + 7]
    together = tagger.classify(texts)
    probes = [0, BATCH - 1, BATCH, BATCH + 1, len(texts) - 1]
    assert any(together[i].frames for i in probes)
    for i in probes:
        assert tagger.classify([texts[i]]) == [together[i]], i
