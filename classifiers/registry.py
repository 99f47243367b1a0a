"""Model registry: versioned skops files with JSON metadata, and an atomically swapped active pointer.

Layout of `models_dir`:
    <version>.skops   the fitted FrameClassifier (skops; never pickle)
    <version>.json    metadata, including the sha256 of the .skops file
    active.json       {"version": ..., "history": [previously active versions, newest last]}

Loading checks the file hash against its metadata and every type in the file against an explicit
allow-list before anything is constructed; a file that fails either is refused, not "repaired".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import skops.io as sio

from classifiers.errors import CorruptModelError, ModelNotFoundError, RegistryError, UntrustedModelError
from classifiers.model import FrameClassifier

POINTER = "active.json"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")

# The types a framewatch model file may contain beyond those skops trusts by default (plain sklearn
# estimators and numpy arrays); anything else in a file means it was not written by framewatch.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "classifiers.model.FrameClassifier",
        "classifiers.features.TextFeaturizer",
        # CalibratedClassifierCV's fitted parts, which skops does not trust by default.
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
    }
)


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    version: str
    created_at: str
    model_sha256: str
    frame_ids: tuple[str, ...]
    taxonomy_hash: str
    data_hash: str
    sklearn_version: str
    skops_version: str
    counts: dict[str, Any] = field(default_factory=dict)
    cv_metrics: dict[str, Any] = field(default_factory=dict)
    dev_metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["frame_ids"] = list(self.frame_ids)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMetadata:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["frame_ids"] = tuple(values.get("frame_ids", ()))
        return cls(**values)


def _check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise ModelNotFoundError(f"{version!r} is not a model version name")
    return version


def check_writable(models_dir: Path) -> None:
    """Raise RegistryError now if models_dir cannot take a new model: before a training that would
    otherwise take a minute and then fail to save."""
    _write_atomic(models_dir / ".write-check", b"")
    with contextlib.suppress(OSError):
        (models_dir / ".write-check").unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then os.replace: readers see old or new."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # not a directory, no permission, read-only: classifier.models_dir is wrong
        raise RegistryError(
            f"cannot write to the model directory {path.parent} (classifier.models_dir): {exc.strerror or exc}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # disk full, quota: the old file is intact
            raise RegistryError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def new_version_name(models_dir: Path, now: datetime, digest: str) -> str:
    base = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{digest[:8]}"
    name, n = base, 1
    while (models_dir / f"{name}.json").exists() or (models_dir / f"{name}.skops").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def save_model(models_dir: Path, model: FrameClassifier, *, now: datetime, **metadata: Any) -> ModelMetadata:
    """Persist a fitted model as a new version (not activated). `metadata` fills ModelMetadata fields."""
    import sklearn

    blob = sio.dumps(model, compression=8)
    digest = hashlib.sha256(blob).hexdigest()
    version = new_version_name(models_dir, now, digest)
    meta = ModelMetadata(
        version=version,
        created_at=now.isoformat(),
        model_sha256=digest,
        frame_ids=tuple(str(c) for c in model.classes_),
        sklearn_version=sklearn.__version__,
        skops_version=_skops_version(),
        **metadata,
    )
    _write_atomic(models_dir / f"{version}.skops", blob)
    _write_atomic(
        models_dir / f"{version}.json",
        json.dumps(meta.to_json(), ensure_ascii=False, indent=2).encode(),
    )
    return meta


def _skops_version() -> str:
    from importlib.metadata import version

    return version("skops")


def read_metadata(models_dir: Path, version: str) -> ModelMetadata:
    path = models_dir / f"{_check_version(version)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelMetadata.from_json(data)
    except FileNotFoundError:
        raise ModelNotFoundError(f"model version {version!r} not found in {models_dir}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptModelError(f"metadata of model {version!r} ({path}) is unreadable: {exc}") from None


def list_versions(models_dir: Path) -> list[ModelMetadata]:
    """All versions with readable metadata, oldest first."""
    out: list[ModelMetadata] = []
    for path in sorted(models_dir.glob("*.json")) if models_dir.is_dir() else []:
        if path.name == POINTER or not (models_dir / f"{path.stem}.skops").exists():
            continue
        with contextlib.suppress(RegistryError):
            out.append(read_metadata(models_dir, path.stem))
    return sorted(out, key=lambda m: (m.created_at, m.version))


def load_model(models_dir: Path, version: str) -> tuple[FrameClassifier, ModelMetadata]:
    """Load one version, refusing files whose hash or types do not check out."""
    meta = read_metadata(models_dir, version)
    path = models_dir / f"{version}.skops"
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ModelNotFoundError(f"model file {path} is missing") from None
    except OSError as exc:
        raise CorruptModelError(f"cannot read model file {path}: {exc.strerror}") from None
    if hashlib.sha256(blob).hexdigest() != meta.model_sha256:
        raise UntrustedModelError(f"model file {path} does not match the sha256 in its metadata; refusing to load it")
    try:
        found = sio.get_untrusted_types(data=blob)
    except Exception as exc:
        raise CorruptModelError(f"model file {path} is not a readable skops file: {exc}") from None
    unexpected = sorted(set(found) - TRUSTED_TYPES)
    if unexpected:
        raise UntrustedModelError(
            f"model file {path} contains types outside the trusted list: {', '.join(unexpected)}; refusing to load it"
        )
    try:
        model = sio.loads(blob, trusted=list(found))
    except Exception as exc:
        raise CorruptModelError(f"model file {path} could not be loaded: {exc}") from None
    if not isinstance(model, FrameClassifier):
        raise UntrustedModelError(f"model file {path} holds a {type(model).__name__}, not a FrameClassifier")
    if tuple(str(c) for c in model.classes_) != meta.frame_ids:
        raise CorruptModelError(f"model file {path} and its metadata disagree about the frame ids")
    return model, meta


# -- the active pointer ------------------------------------------------------------------------------


def _read_pointer(models_dir: Path) -> dict[str, Any]:
    path = models_dir / POINTER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": None, "history": []}
    except (OSError, ValueError) as exc:
        raise CorruptModelError(f"active-model pointer {path} is unreadable: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("history", []), list):
        raise CorruptModelError(f"active-model pointer {path} has an unexpected shape")
    return {"version": data.get("version"), "history": [str(v) for v in data.get("history", [])]}


def _write_pointer(models_dir: Path, version: str, history: list[str]) -> None:
    payload = json.dumps({"version": version, "history": history}, indent=2).encode()
    _write_atomic(models_dir / POINTER, payload)


def active_version(models_dir: Path) -> str | None:
    version = _read_pointer(models_dir)["version"]
    return str(version) if version else None


def activate(models_dir: Path, version: str) -> str | None:
    """Make `version` active (it must load cleanly); returns the previously active version."""
    load_model(models_dir, version)
    pointer = _read_pointer(models_dir)
    previous = pointer["version"]
    history = pointer["history"]
    if previous and previous != version:
        history = [*history, previous][-50:]
    _write_pointer(models_dir, version, history)
    return previous


def rollback(models_dir: Path) -> str:
    """Re-activate the version that was active before the current one; returns it."""
    pointer = _read_pointer(models_dir)
    history = list(pointer["history"])
    while history:
        candidate = history.pop()
        if candidate == pointer["version"]:
            continue
        if (models_dir / f"{candidate}.skops").exists():
            load_model(models_dir, candidate)
            _write_pointer(models_dir, candidate, history)
            return candidate
    raise ModelNotFoundError(f"no earlier model version to roll back to in {models_dir}")


def load_active(models_dir: Path) -> tuple[FrameClassifier, ModelMetadata]:
    version = active_version(models_dir)
    if version is None:
        raise ModelNotFoundError(f"no active model in {models_dir}")
    return load_model(models_dir, version)
