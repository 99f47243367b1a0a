"""Explanations: which words of a text pushed a frame's score up, as feature value × weight.

Features are hashed, so strings are recovered by re-hashing the text's own n-grams (through the
featurizer's own token cache and phrase hashing). Each feature's contribution x_j·w_j is shared among
the words that produced it, in proportion to how often each did: char n-grams and unigrams belong to
one word, a word n-gram is split evenly over its words, a cue over the words it spans. The shares of all words
add up to the linear score x·w, so nothing is explained twice or hidden.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from classifiers.features import Entries, TextFeaturizer
from classifiers.text import JOINERS, fold, word_spans


def _shares(doc: np.ndarray, col: np.ndarray, val: np.ndarray, x: sp.csr_matrix) -> np.ndarray:
    """Each feature occurrence's part of its document's feature value: val × x_dj / count_dj.

    `doc` is each occurrence's row in `x`. Occurrences are matched to their stored value in `x` by
    position (one searchsorted, no sort of the occurrences), and count_dj is the sum of the
    occurrences matched to the same position.
    """
    width = x.shape[1]
    x_keys = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr)) * width + x.indices
    if not x_keys.size:
        return np.zeros_like(val)
    keys = doc * width + col
    pos = np.minimum(np.searchsorted(x_keys, keys), x_keys.size - 1)
    present = x_keys[pos] == keys
    counts = np.bincount(pos[present], weights=val[present], minlength=x_keys.size)
    safe = np.where(present, counts[pos], 1.0)
    return np.where(present, val * x.data[pos] / safe, 0.0)


def _surfaces(cleaned: str, toks: list[str], order: list[str]) -> list[str]:
    words = _Surfaces(cleaned, toks, order)
    return [words[i] for i in range(len(order))]


class _Surfaces:
    """The words of one text as written (first occurrence of each distinct token), found only for the
    few words an explanation quotes: spanning every word of every tagged post cost more than scoring.

    Most tokens are the text's own word case-folded, so a `str.find` in the folded text with the
    tokeniser's word boundaries finds it; tokens with collapsed digits, or texts whose case folding
    changes their length, fall back to walking the words with the tokeniser itself.
    """

    def __init__(self, cleaned: str, toks: list[str], order: list[str]) -> None:
        self.cleaned, self.toks, self.order = cleaned, toks, order
        folded = fold(cleaned)
        self._folded = folded if len(folded) == len(cleaned) else None
        self._spans: list[tuple[int, int]] = []
        self._scan = word_spans(cleaned)  # words are found only as far into the text as asked

    def __getitem__(self, i: int) -> str:
        tok = self.order[i]
        found = self._find(tok) if self._folded is not None and "0" not in tok else None
        if found is not None:
            return found
        first = self.toks.index(tok)
        self._spans.extend(itertools.islice(self._scan, max(0, first + 1 - len(self._spans))))
        if first >= len(self._spans):
            return tok
        start, end = self._spans[first]
        return self.cleaned[start:end]

    def _find(self, tok: str) -> str | None:
        text = self._folded
        assert text is not None
        start = text.find(tok)
        while start >= 0:
            end = start + len(tok)
            if not _continues(text, start - 1, -1) and not _continues(text, end, 1):
                return self.cleaned[start:end]
            start = text.find(tok, start + 1)
        return None


def _continues(text: str, at: int, step: int) -> bool:
    """Whether the word would go on past position `at` (a letter or digit, or a joiner before one)."""
    if not 0 <= at < len(text):
        return False
    ch = text[at]
    if ch.isalnum():
        return True
    nxt = at + step
    return ch in JOINERS and 0 <= nxt < len(text) and text[nxt].isalnum()


def attribute(
    featurizer: TextFeaturizer,
    cleaned: str,
    toks: list[str],
    x: sp.csr_matrix,
    weights: Sequence[np.ndarray],
) -> tuple[list[str], np.ndarray]:
    """Words of one text (as written, first occurrence) and their contribution to each weight vector.

    `x` is the text's feature row (1 × n_features, sorted indices); returns (words, R × len(weights)).
    """
    e = featurizer.entries([toks])
    order = e.orders[0]
    share = _shares(np.zeros(e.row.size, dtype=np.int64), e.col, e.val, sp.csr_matrix(x))
    out = np.zeros((len(order), len(weights)))
    for k, w in enumerate(weights):
        out[:, k] = np.bincount(e.row, weights=share * w[e.col], minlength=len(order))
    return _surfaces(cleaned, toks, order), out


def explain_batch(
    analysed: Sequence[tuple[str, list[str]]],
    e: Entries,
    x: sp.csr_matrix,
    weights: Sequence[np.ndarray],
    wanted: np.ndarray,
    top: int,
) -> list[dict[int, tuple[str, ...]]]:
    """Top words for the (text, frame) pairs marked in `wanted` (n_texts × n_frames booleans).

    `e` and `x` are the batch's entries and feature matrix as the prediction computed them; one
    vectorised pass explains the whole batch (per-text numpy calls would cost more than predicting).
    """
    n_docs = len(e.orders)
    doc_of_row = np.repeat(np.arange(n_docs, dtype=np.int64), np.diff(e.bases))
    entry_doc = doc_of_row[e.row]
    explained = wanted.any(axis=1)
    needed = explained[entry_doc]
    row, col, val = e.row[needed], e.col[needed], e.val[needed]
    entry_doc = entry_doc[needed]
    # Only the explained documents' rows of x: most posts of a news stream get no frame, and matching
    # occurrences against the whole batch's matrix cost most of the explanation time.
    kept = np.flatnonzero(explained)
    row_in_x = np.cumsum(explained) - 1
    share = _shares(row_in_x[entry_doc], col, val, sp.csr_matrix(x)[kept])
    out: list[dict[int, tuple[str, ...]]] = [{} for _ in range(n_docs)]
    surfaces: dict[int, _Surfaces] = {}
    for k in np.flatnonzero(wanted.any(axis=0)):
        mask = wanted[entry_doc, k]
        scores = np.bincount(row[mask], weights=share[mask] * weights[k][col[mask]], minlength=int(e.bases[-1]))
        for d in np.flatnonzero(wanted[:, k]):
            best = top_indices(scores[e.bases[d] : e.bases[d + 1]], top)
            if d not in surfaces:
                surfaces[d] = _Surfaces(*analysed[d], e.orders[d])
            out[d][int(k)] = tuple(surfaces[d][i] for i in best)
    return out


def top_indices(contribution: np.ndarray, top: int) -> list[int]:
    """Positions of the `top` largest positive contributions, strongest first (ties: first word first)."""
    if not contribution.size:
        return []
    order = np.argsort(-contribution, kind="stable")[:top]
    return [int(i) for i in order if contribution[i] > 0]


def top_words(words: Sequence[str], contribution: np.ndarray, top: int) -> tuple[str, ...]:
    """The `top` words with the largest positive contribution, strongest first."""
    return tuple(words[i] for i in top_indices(contribution, top))
