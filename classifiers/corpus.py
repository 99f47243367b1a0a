"""The labelled corpus: JSONL files validated line by line, and the fixed dev split.

The dev split is decided by a stable hash of each text's normalised words, so an example never moves
between train and dev as the corpus grows, and a model trained today is compared fairly with one
trained last month on the same held-back examples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifiers.taxonomy import Taxonomy
from classifiers.text import clean_text, tokens
from classifiers.types import LabeledText

CORPUS_DIR = Path(__file__).with_name("corpus")
CORPUS_GLOB = "seed-*.jsonl"
DEV_PERCENT = 20


class CorpusError(ValueError):
    """A labelled file or value is unusable; the message names the file and line (or item)."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    frames: tuple[str, ...]
    lang: str | None = None
    weight: float = 1.0
    origin: str = ""


def text_key(text: str) -> str:
    """Identity of a text for de-duplication and the dev split: its cleaned, normalised words."""
    return " ".join(tokens(clean_text(text)))


def is_dev(text: str) -> bool:
    digest = hashlib.sha256(text_key(text).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < DEV_PERCENT


def split_dev(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(train, dev): the fixed ~20% dev split."""
    train: list[Example] = []
    dev: list[Example] = []
    for ex in examples:
        (dev if is_dev(ex.text) else train).append(ex)
    return train, dev


def _check_frames(frames: object, taxonomy: Taxonomy, where: str) -> tuple[str, ...]:
    if not isinstance(frames, list | tuple) or not all(isinstance(f, str) for f in frames):
        raise CorpusError(f'{where}: "frames" must be a list of frame ids')
    unknown = taxonomy.unknown(list(frames))
    if unknown:
        raise CorpusError(
            f"{where}: unknown frame id(s) {', '.join(map(repr, unknown))} "
            f"(the taxonomy {taxonomy.source} defines: {', '.join(taxonomy.ids)})"
        )
    return tuple(dict.fromkeys(frames))


def parse_jsonl(lines: Iterable[str], taxonomy: Taxonomy, *, origin: str) -> list[Example]:
    """Examples from JSONL lines `{"text", "frames", "lang"}`; blank lines are skipped."""
    out: list[Example] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{origin}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise CorpusError(f"{where}: not valid JSON (nested too deeply)") from None
        if not isinstance(item, dict):
            raise CorpusError(f"{where}: expected a JSON object")
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise CorpusError(f'{where}: "text" is missing or empty')
        if not clean_text(text).strip():
            raise CorpusError(f"{where}: the text has no words once links and handles are removed")
        frames = _check_frames(item.get("frames", []), taxonomy, where)
        lang = item.get("lang")
        if lang is not None and not isinstance(lang, str):
            raise CorpusError(f'{where}: "lang" must be a string')
        out.append(Example(text=text, frames=frames, lang=lang, origin=where))
    return out


def load_jsonl(path: Path | str, taxonomy: Taxonomy) -> list[Example]:
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig") as fh:  # files saved by Windows tools start with a BOM
            return parse_jsonl(fh, taxonomy, origin=str(path))
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text") from None


def corpus_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or CORPUS_DIR).glob(CORPUS_GLOB))


def load_corpus(taxonomy: Taxonomy, directory: Path | None = None) -> list[Example]:
    """Every `seed-*.jsonl` file, validated and de-duplicated; conflicting duplicates are an error."""
    files = corpus_files(directory)
    if not files:
        raise CorpusError(f"no {CORPUS_GLOB} files in {directory or CORPUS_DIR}")
    return deduplicate([ex for path in files for ex in load_jsonl(path, taxonomy)], strict=True)


def deduplicate(examples: Iterable[Example], *, strict: bool = False) -> list[Example]:
    """One example per text: later ones override earlier ones, unless `strict` makes a clash an error."""
    by_key: dict[str, Example] = {}
    for ex in examples:
        key = text_key(ex.text)
        previous = by_key.get(key)
        if previous is not None and strict and set(previous.frames) != set(ex.frames):
            raise CorpusError(
                f"{ex.origin}: the same text is labelled differently at {previous.origin} "
                f"({sorted(previous.frames)} vs {sorted(ex.frames)})"
            )
        if previous is None or not strict:
            by_key[key] = ex
    return list(by_key.values())


def examples_from_labels(labels: Sequence[LabeledText], taxonomy: Taxonomy) -> list[Example]:
    """Validate extra labelled texts (admin labels, feedback) into examples, naming the bad item."""
    out: list[Example] = []
    for i, label in enumerate(labels):
        where = f"extra label #{i + 1}"
        if not isinstance(label.text, str) or not label.text.strip() or not clean_text(label.text).strip():
            raise CorpusError(f"{where}: the text is empty")
        frames = _check_frames(list(label.frames), taxonomy, where)
        if not (isinstance(label.weight, int | float) and 0 < label.weight <= 10):
            raise CorpusError(f"{where}: weight must be in (0, 10], got {label.weight!r}")
        out.append(Example(text=label.text, frames=frames, weight=float(label.weight), origin=where))
    return out


def label_matrix(examples: Sequence[Example], frame_ids: Sequence[str]) -> np.ndarray:
    index = {f: i for i, f in enumerate(frame_ids)}
    y = np.zeros((len(examples), len(frame_ids)), dtype=np.int8)
    for row, ex in enumerate(examples):
        for f in ex.frames:
            y[row, index[f]] = 1
    return y


def data_hash(examples: Sequence[Example]) -> str:
    """Hash of the training data content (order-independent)."""
    rows = sorted(
        json.dumps([text_key(e.text), sorted(e.frames), round(e.weight, 6)], ensure_ascii=False) for e in examples
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
