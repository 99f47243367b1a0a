"""Explanations: which words of a text pushed a frame's score up, as feature value × weight.

Features are hashed, so strings are recovered by re-hashing the text's own n-grams (through the same
caches the featurizer uses). Each feature's contribution x_j·w_j is shared among the words that
produced it, in proportion to how often each did: char n-grams and unigrams belong to one word, a
word n-gram is split evenly over its words, a cue over the words it spans. The shares of all words
add up to the linear score x·w, so nothing is explained twice or hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from classifiers.features import Entries, TextFeaturizer
from classifiers.text import word_spans


def _shares(row: np.ndarray, col: np.ndarray, val: np.ndarray, doc_of_row: np.ndarray, x: sp.csr_matrix) -> np.ndarray:
    """Each feature occurrence's part of its document's feature value: val × x_dj / count_dj."""
    width = x.shape[1]
    keys = doc_of_row[row] * width + col
    unique, inverse = np.unique(keys, return_inverse=True)
    column_counts = np.bincount(inverse, weights=val)
    x_keys = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr)) * width + x.indices
    if not x_keys.size:
        return np.zeros_like(val)
    pos = np.minimum(np.searchsorted(x_keys, unique), x_keys.size - 1)
    values = np.where(x_keys[pos] == unique, x.data[pos], 0.0)
    return val * (values / column_counts)[inverse]


def _surfaces(cleaned: str, toks: list[str], order: list[str]) -> list[str]:
    spans = word_spans(cleaned)
    first: dict[str, int] = {}
    for i, tok in enumerate(toks):
        first.setdefault(tok, i)
    return [cleaned[spans[first[t]][0] : spans[first[t]][1]] if first[t] < len(spans) else t for t in order]


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
    share = _shares(e.row, e.col, e.val, np.zeros(len(order), dtype=np.int64), sp.csr_matrix(x))
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
    needed = wanted.any(axis=1)[entry_doc]
    row, col, val = e.row[needed], e.col[needed], e.val[needed]
    entry_doc = entry_doc[needed]
    share = _shares(row, col, val, doc_of_row, sp.csr_matrix(x))
    out: list[dict[int, tuple[str, ...]]] = [{} for _ in range(n_docs)]
    surfaces: dict[int, list[str]] = {}
    for k in np.flatnonzero(wanted.any(axis=0)):
        mask = wanted[entry_doc, k]
        scores = np.bincount(row[mask], weights=share[mask] * weights[k][col[mask]], minlength=int(e.bases[-1]))
        for d in np.flatnonzero(wanted[:, k]):
            if d not in surfaces:
                cleaned, toks = analysed[d]
                surfaces[d] = _surfaces(cleaned, toks, e.orders[d])
            out[d][int(k)] = top_words(surfaces[d], scores[e.bases[d] : e.bases[d + 1]], top)
    return out


def top_words(words: list[str], contribution: np.ndarray, top: int) -> tuple[str, ...]:
    """The `top` words with the largest positive contribution, strongest first."""
    if not words:
        return ()
    order = np.argsort(-contribution, kind="stable")[:top]
    return tuple(words[i] for i in order if contribution[i] > 0)
