"""The frame taxonomy: ids, names, definitions and cue words, read from a TOML data file.

The ids are a public contract, so nothing in the code lists them; a custom taxonomy (e.g. the labels
of a public benchmark set) goes through exactly the same path as the shipped one.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("frames.toml")
LANGUAGES = ("en", "ru", "uk")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class TaxonomyError(ValueError):
    """The taxonomy file is missing, malformed, or names a frame twice."""


@dataclass(frozen=True, slots=True)
class Frame:
    id: str
    name: str
    definition: str = ""
    # Cue words per language code; each cue is a stem that matches the start of a word.
    cues: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def cue_words(self, lang: str | None = None) -> tuple[str, ...]:
        return tuple(cue for code, words in self.cues if lang in (None, code) for cue in words)


@dataclass(frozen=True, slots=True)
class Taxonomy:
    frames: tuple[Frame, ...]
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self) -> None:
        if not self.frames:
            raise TaxonomyError(f"{self.source}: the taxonomy defines no frames")
        seen: set[str] = set()
        for frame in self.frames:
            if not _ID_RE.match(frame.id):
                raise TaxonomyError(f"{self.source}: frame id {frame.id!r} must be lower-case letters, digits and _")
            if frame.id in seen:
                raise TaxonomyError(f"{self.source}: frame id {frame.id!r} is defined twice")
            if not frame.name.strip():
                raise TaxonomyError(f"{self.source}: frame {frame.id!r} has an empty name")
            seen.add(frame.id)

    @classmethod
    def from_ids(cls, ids: list[str] | tuple[str, ...], *, source: str = "<labels>") -> Taxonomy:
        """A bare taxonomy (no cue words) for label sets that come with data, e.g. public benchmarks."""
        return cls(tuple(Frame(id=i, name=i) for i in ids), source=source)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.frames)

    def get(self, frame_id: str) -> Frame:
        for frame in self.frames:
            if frame.id == frame_id:
                return frame
        raise KeyError(frame_id)

    def unknown(self, frame_ids: list[str] | tuple[str, ...] | set[str]) -> list[str]:
        known = set(self.ids)
        return sorted({f for f in frame_ids if f not in known})

    @property
    def hash(self) -> str:
        """Content hash (not file bytes): reformatting the TOML does not change it, editing a frame does."""
        payload = [
            {"id": f.id, "name": f.name, "definition": f.definition, "cues": [list(c) for c in f.cues]}
            for f in self.frames
        ]
        blob = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _parse_frame(entry: object, index: int, source: str) -> Frame:
    where = f"{source}: frames[{index}]"
    if not isinstance(entry, dict):
        raise TaxonomyError(f"{where}: expected a table with id, name, definition, cues")
    unknown_keys = set(entry) - {"id", "name", "definition", "cues"}
    if unknown_keys:
        raise TaxonomyError(f"{where}: unknown key(s) {', '.join(sorted(unknown_keys))}")
    frame_id, name = entry.get("id"), entry.get("name", entry.get("id"))
    definition = entry.get("definition", "")
    if not isinstance(frame_id, str):
        raise TaxonomyError(f"{where}.id: missing or not a string")
    if not isinstance(name, str) or not isinstance(definition, str):
        raise TaxonomyError(f"{where} ({frame_id}): name and definition must be strings")
    raw_cues = entry.get("cues", {})
    if not isinstance(raw_cues, dict):
        raise TaxonomyError(f"{where}.cues ({frame_id}): expected a table of language = [words]")
    cues: list[tuple[str, tuple[str, ...]]] = []
    for lang, words in sorted(raw_cues.items()):
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise TaxonomyError(f"{where}.cues.{lang} ({frame_id}): expected a list of non-empty strings")
        cues.append((lang, tuple(dict.fromkeys(w.strip() for w in words))))
    return Frame(id=frame_id, name=name.strip(), definition=" ".join(definition.split()), cues=tuple(cues))


def parse_taxonomy(text: str, *, source: str = "<string>") -> Taxonomy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"{source}: not valid TOML: {exc}") from None
    entries = data.get("frames")
    if not isinstance(entries, list):
        raise TaxonomyError(f"{source}: expected [[frames]] tables")
    return Taxonomy(tuple(_parse_frame(e, i, source) for i, e in enumerate(entries)), source=source)


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Read the taxonomy file (the shipped classifiers/frames.toml unless `path` is given)."""
    path = Path(path) if path is not None else DEFAULT_TAXONOMY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {exc.strerror}") from None
    return parse_taxonomy(text, source=str(path))
