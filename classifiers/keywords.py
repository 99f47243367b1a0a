"""Cue-word matching: the keyword baseline, and the cue features the model may add.

A cue is a stem (or a run of stems) from the taxonomy; it matches words that start with it. Lookup is
by the first three characters of a word so a post costs one dict probe per word, not one per cue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifiers.taxonomy import Taxonomy
from classifiers.text import clean_text, tokens

_KEY_CHARS = 3
_MEMO_LIMIT = 300_000

# (frame index, cue as a tuple of normalised stems)
_Cue = tuple[int, tuple[str, ...]]


def taxonomy_lexicon(taxonomy: Taxonomy) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((f.id, f.cue_words()) for f in taxonomy.frames)


class CueMatcher:
    """Counts cue-word hits per frame in token lists. Built once from a (frame id, cues) lexicon."""

    __slots__ = ("_by_key", "_memo", "_short", "lexicon")

    def __init__(self, lexicon: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        self.lexicon = lexicon
        self._by_key: dict[str, list[_Cue]] = {}
        self._short: list[_Cue] = []
        self._memo: dict[str, tuple[tuple[int, ...], tuple[_Cue, ...]]] = {}
        for k, (_, cues) in enumerate(lexicon):
            for cue in cues:
                stems = tuple(tokens(cue))
                if not stems:
                    continue
                if len(stems[0]) >= _KEY_CHARS:
                    self._by_key.setdefault(stems[0][:_KEY_CHARS], []).append((k, stems))
                else:
                    self._short.append((k, stems))

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> CueMatcher:
        return cls(taxonomy_lexicon(taxonomy))

    @property
    def frame_ids(self) -> tuple[str, ...]:
        return tuple(fid for fid, _ in self.lexicon)

    def _resolve(self, tok: str) -> tuple[tuple[int, ...], tuple[_Cue, ...]]:
        """Frames a word hits on its own, and the multi-word cues that might start at it (memoised)."""
        hit = self._memo.get(tok)
        if hit is None:
            candidates = self._by_key.get(tok[:_KEY_CHARS], []) if len(tok) >= _KEY_CHARS else []
            single: dict[int, None] = {}
            multi: list[_Cue] = []
            for k, stems in (*candidates, *self._short):
                if not tok.startswith(stems[0]):
                    continue
                if len(stems) == 1:
                    single[k] = None
                else:
                    multi.append((k, stems))
            hit = (tuple(single), tuple(multi))
            if len(self._memo) > _MEMO_LIMIT:
                self._memo.clear()
            self._memo[tok] = hit
        return hit

    def matches(self, toks: Sequence[str]) -> list[tuple[int, int, int]]:
        """(frame index, first token, number of tokens) for every cue hit, at most one per frame and start."""
        hits: list[tuple[int, int, int]] = []
        n = len(toks)
        for i, tok in enumerate(toks):
            single, multi = self._resolve(tok)
            seen = set(single)
            hits.extend((k, i, 1) for k in single)
            for k, stems in multi:
                if k in seen or i + len(stems) > n:
                    continue
                if all(toks[i + j].startswith(stem) for j, stem in enumerate(stems)):
                    seen.add(k)
                    hits.append((k, i, len(stems)))
        return hits

    def counts(self, toks: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(self.lexicon), dtype=np.float64)
        n = len(toks)
        for i, tok in enumerate(toks):
            single, multi = self._resolve(tok)
            if not single and not multi:
                continue
            for k in single:
                out[k] += 1
            for k, stems in multi:
                if k in single or i + len(stems) > n:
                    continue
                if all(toks[i + j].startswith(stem) for j, stem in enumerate(stems)):
                    out[k] += 1
        return out


@dataclass(frozen=True, slots=True)
class KeywordBaseline:
    """Tags a frame when at least `min_hits` of its cue words occur: the bar the model has to clear."""

    taxonomy: Taxonomy
    min_hits: int = 1

    def predict_frames(self, texts: Sequence[str]) -> list[tuple[str, ...]]:
        matcher = CueMatcher.from_taxonomy(self.taxonomy)
        ids = self.taxonomy.ids
        out: list[tuple[str, ...]] = []
        for text in texts:
            counts = matcher.counts(tokens(clean_text(text)))
            out.append(tuple(ids[k] for k in np.flatnonzero(counts >= self.min_hits)))
        return out
