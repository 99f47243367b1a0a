"""Text → features: hashed word n-grams + char_wb n-grams (+ optional taxonomy cue counts), TF-IDF weighted.

Hashing keeps the persisted model free of a vocabulary (skops dumps of large vocabularies are slow);
`fit` keeps only hashed columns seen in at least `min_df` training texts and renumbers them densely,
so the coefficients stay small and rare one-off phrasings do not become features.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction import FeatureHasher
from sklearn.utils import murmurhash3_32
from sklearn.utils.validation import check_is_fitted

from classifiers.keywords import CueMatcher
from classifiers.text import clean_text, tokens

# Hashed column layout: [char n-grams | word unigrams | word phrases (bigrams…)]. Words and phrases
# sit side by side so a word block is one contiguous range; phrases get their own range so they can
# be stacked on, not added (adding sparse matrices this wide costs time proportional to the width).
CHAR_SPACE = 2**21
WORD_SPACE = 2**20
UNIGRAM_OFFSET = CHAR_SPACE
PHRASE_OFFSET = CHAR_SPACE + WORD_SPACE
TOTAL_SPACE = CHAR_SPACE + 2 * WORD_SPACE
# Tokens whose hashed columns are remembered between calls: posts reuse most of their words. A full
# cache starts over. 60k tokens hold ~15 MiB; the earlier 300k would have grown a long-running process
# by ~160 MiB on a news vocabulary, for ~4% more speed. Word n-grams are not cached: most of a post's
# bigrams are new (98k distinct in 321k on the benchmark posts), so a cache only churned.
_CACHE_LIMIT = 60_000
_INT32_MIN = -(2**31)


def hashed_columns(strings: Sequence[str], space: int) -> np.ndarray:
    """FeatureHasher's column for each string (alternate_sign=False), without building its matrix:
    one column per word or word n-gram.

    Same murmurhash3 of the UTF-8 bytes and the same |h| mod space as sklearn's hasher, so models
    trained before this shortcut keep their columns; a test checks the two agree."""
    h = np.fromiter((murmurhash3_32(s, 0) for s in strings), dtype=np.int64, count=len(strings))
    return np.where(h == _INT32_MIN, 2**31 - 1, np.abs(h)) % space


def _char_ngrams(token: str, lo: int, hi: int) -> list[str]:
    padded = f" {token} "
    size = len(padded)
    return [padded[i : i + n] for n in range(lo, hi + 1) for i in range(size - n + 1)]


class TextFeaturizer(TransformerMixin, BaseEstimator):
    """Sklearn transformer from raw post texts to a sparse TF-IDF matrix (blocks: words, chars, cues)."""

    def __init__(
        self,
        word_ngram_range: tuple[int, int] = (1, 2),
        char_ngram_range: tuple[int, int] = (2, 5),
        char_weight: float = 1.0,
        cue_lexicon: tuple[tuple[str, tuple[str, ...]], ...] | None = None,
        cue_weight: float = 0.5,
        min_df: int = 2,
        sublinear_tf: bool = True,
    ) -> None:
        self.word_ngram_range = word_ngram_range
        self.char_ngram_range = char_ngram_range
        self.char_weight = char_weight
        self.cue_lexicon = cue_lexicon
        self.cue_weight = cue_weight
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    # -- derived helpers (not persisted) -------------------------------------------------------------

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        for key in ("_lut", "_matcher", "_char_hasher", "_cache", "_cache_range"):
            state.pop(key, None)
        return state

    def _get_char_hasher(self) -> FeatureHasher:
        hasher = getattr(self, "_char_hasher", None)
        if hasher is None:
            hasher = self._char_hasher = FeatureHasher(CHAR_SPACE, input_type="string", alternate_sign=False)
        return hasher

    def get_matcher(self) -> CueMatcher | None:
        if not self.cue_lexicon:
            return None
        matcher = getattr(self, "_matcher", None)
        if matcher is None:
            matcher = CueMatcher(tuple((f, tuple(c)) for f, c in self.cue_lexicon))
            self._matcher = matcher
        return matcher

    def _get_lut(self) -> ColumnIndex:
        lut = getattr(self, "_lut", None)
        if lut is None:
            lut = self._lut = ColumnIndex(self.columns_, TOTAL_SPACE)
        return lut

    @property
    def n_cues(self) -> int:
        return len(self.cue_lexicon) if self.cue_lexicon else 0

    # -- analysis ------------------------------------------------------------------------------------

    def _token_columns(self, vocab: Iterable[str]) -> dict[str, np.ndarray]:
        """Hashed columns of each token's char n-grams plus its unigram (last), cached across calls."""
        lo, hi = self.char_ngram_range
        cache = getattr(self, "_cache", None)
        if cache is None or getattr(self, "_cache_range", None) != (lo, hi) or len(cache) > _CACHE_LIMIT:
            cache = self._cache = {}
            self._cache_range = (lo, hi)
        missing = [tok for tok in vocab if tok not in cache]
        if missing:
            unigram = hashed_columns(missing, WORD_SPACE).astype(np.int32)
            chars = self._get_char_hasher().transform([_char_ngrams(tok, lo, hi) for tok in missing])
            for r, tok in enumerate(missing):
                start, end = chars.indptr[r], chars.indptr[r + 1]
                cols = chars.indices[start:end].astype(np.int32)  # TOTAL_SPACE < 2**31; half of int64
                repeats = chars.data[start:end].astype(np.int64)
                if repeats.max(initial=1) > 1:
                    cols = np.repeat(cols, repeats)
                cache[tok] = np.append(cols, np.int32(UNIGRAM_OFFSET) + unigram[r])
        return cache

    def entries(self, docs: Sequence[list[str]], *, compact: bool = True) -> Entries:
        """Every feature occurrence of a batch of token lists, with the word that produced it.

        Rows number the distinct words of all documents; a word n-gram is shared 1/n by its words
        and a cue 1/length by the words it spans. Columns are fitted columns (`compact`) or the
        full hashed layout with cue k at TOTAL_SPACE + k (for `fit`). Summing entries by document
        gives the raw counts, which is how `transform` builds its matrix, so explanations
        (classifiers/explain.py) see exactly the features the prediction used.
        """
        # Counter keeps first-seen order, so its keys are the document's distinct words in order.
        counted = [Counter(toks) for toks in docs]
        orders = [list(c) for c in counted]
        cache = self._token_columns({t: None for order in orders for t in order})
        lo_w, hi_w = self.word_ngram_range
        drop_unigram = not (lo_w <= 1 <= hi_w)
        bases = np.concatenate(([0], np.cumsum([len(o) for o in orders]))).astype(np.int64)
        arrays: list[np.ndarray] = []
        repeats: list[int] = []
        tok_rows: list[np.ndarray] = []
        base = 0
        for toks, order, counts in zip(docs, orders, counted, strict=True):
            row_of = {tok: base + r for r, tok in enumerate(order)}
            base += len(order)
            if drop_unigram:
                arrays.extend(cache[tok][:-1] for tok in order)
            else:
                arrays.extend(cache[tok] for tok in order)
            repeats.extend(counts.values())
            tok_rows.append(np.fromiter(map(row_of.get, toks), dtype=np.int64, count=len(toks)))
        sizes = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
        rows = [np.repeat(np.arange(len(arrays)), sizes)]
        cols = [np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)]
        vals = [np.repeat(np.asarray(repeats, dtype=np.float64), sizes)]
        for n in range(max(lo_w, 2), hi_w + 1):
            grams = [" ".join(g) for toks in docs for g in zip(*(toks[j:] for j in range(n)), strict=False)]
            if not grams:
                continue
            gram_cols = PHRASE_OFFSET + hashed_columns(grams, WORD_SPACE)
            for j in range(n):
                rows.append(np.concatenate([tr[j : len(tr) - n + 1 + j] for tr in tok_rows if len(tr) >= n]))
                cols.append(gram_cols)
                vals.append(np.full(len(grams), 1.0 / n))
        row, col, val = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        cue_base = TOTAL_SPACE
        if compact:
            col = self._get_lut().lookup(col)
            keep = col >= 0
            row, col, val = row[keep], col[keep], val[keep]
            cue_base = self.columns_.size
        matcher = self.get_matcher()
        if matcher is not None:
            cue_rows: list[int] = []
            cue_cols: list[int] = []
            cue_vals: list[float] = []
            for toks, tr in zip(docs, tok_rows, strict=True):
                for k, start, length in matcher.matches(toks):
                    cue_rows.extend(tr[start : start + length].tolist())
                    cue_cols.extend([cue_base + k] * length)
                    cue_vals.extend([1.0 / length] * length)
            if cue_rows:
                row = np.concatenate([row, np.asarray(cue_rows, dtype=np.int64)])
                col = np.concatenate([col, np.asarray(cue_cols, dtype=np.int64)])
                val = np.concatenate([val, np.asarray(cue_vals)])
        return Entries(orders, row, col, val, bases)

    def _counts(self, e: Entries, width: int) -> sp.csr_matrix:
        doc_of_row = np.repeat(np.arange(len(e.orders), dtype=np.int64), np.diff(e.bases))
        counts = sp.csr_matrix((e.val, (doc_of_row[e.row], e.col)), shape=(len(e.orders), width))
        counts.sum_duplicates()
        return counts

    def _weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Raw counts (fitted columns, then cue columns) → sublinear TF × IDF, per-block L2, weights."""
        words_end = self.columns_.size
        x = counts[:, :words_end].astype(np.float64)
        if self.sublinear_tf:
            np.log1p(x.data, out=x.data)
        x.data *= self.idf_[x.indices]  # × IDF per column, in place: a product with diag(idf) unsorts indices
        blocks = [
            _l2_rows(x[:, : self.n_char_columns_]) * self.char_weight,
            _l2_rows(x[:, self.n_char_columns_ :]),
        ]
        if self.n_cues:
            cues = counts[:, words_end:].astype(np.float64)
            np.log1p(cues.data, out=cues.data)
            blocks.append(cues * self.cue_weight)
        out = sp.hstack(blocks, format="csr")
        out.sort_indices()
        return out

    # -- sklearn API ---------------------------------------------------------------------------------

    def fit(self, X: Sequence[str], y: object = None) -> TextFeaturizer:
        self.fit_transform(X)
        return self

    def fit_transform(self, X: Sequence[str], y: object = None, **fit_params: object) -> sp.csr_matrix:
        texts = _as_texts(X)
        e = self.entries([toks for _, toks in analyse(texts)], compact=False)
        counts = self._counts(e, TOTAL_SPACE + self.n_cues)
        df = np.bincount(counts.indices, minlength=counts.shape[1])[:TOTAL_SPACE]
        columns = np.flatnonzero(df >= max(1, self.min_df)).astype(np.int64)
        if columns.size == 0:
            raise ValueError("no n-gram occurs in min_df training texts; too little training text")
        self.columns_ = columns
        self.n_char_columns_ = int(np.searchsorted(columns, CHAR_SPACE))
        self._lut = None
        n = len(texts)
        self.idf_ = (np.log((1 + n) / (1 + df[columns])) + 1.0).astype(np.float64)
        self.n_features_out_ = columns.size + self.n_cues
        keep = np.concatenate([columns, TOTAL_SPACE + np.arange(self.n_cues)])
        return self._weight(counts[:, keep])

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        return self.transform_entries(self.entries([toks for _, toks in analyse(_as_texts(X))]))

    def transform_entries(self, e: Entries) -> sp.csr_matrix:
        """`transform` from `entries(...)` (the classify path keeps them to explain its tags)."""
        check_is_fitted(self, ["columns_", "idf_"])
        if not e.orders:
            return sp.csr_matrix((0, self.n_features_out_))
        return self._weight(self._counts(e, self.n_features_out_))


class ColumnIndex:
    """Hashed column → fitted column number (-1 if not fitted), as a bitmap with per-word ranks.

    A dense lookup table over the hashed space would be 16 MiB per loaded model; this is 1 MiB and
    costs ~10 ms more per million lookups (measured beside the dense table, 2026-12-02)."""

    def __init__(self, columns: np.ndarray, space: int) -> None:
        self._bits = np.zeros((space + 63) // 64, dtype=np.uint64)
        np.bitwise_or.at(self._bits, columns >> 6, np.left_shift(np.uint64(1), (columns & 63).astype(np.uint64)))
        counts = np.bitwise_count(self._bits).astype(np.int64)
        self._before = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)

    def lookup(self, col: np.ndarray) -> np.ndarray:
        word_at = col >> 6
        bit = (col & 63).astype(np.uint64)
        word = self._bits[word_at]
        present = (np.right_shift(word, bit) & np.uint64(1)).astype(bool)
        below = np.bitwise_count(word & (np.left_shift(np.uint64(1), bit) - np.uint64(1)))
        return np.where(present, self._before[word_at] + below, -1)


@dataclass(frozen=True, slots=True)
class Entries:
    """Feature occurrences of a batch: word rows per document, and (row, column, count share) triples."""

    orders: list[list[str]]  # distinct normalised tokens of each document, first-seen order
    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    bases: np.ndarray  # document d owns rows bases[d] .. bases[d + 1]


Analysed = tuple[str, list[str]]


def analyse(texts: Sequence[str]) -> list[Analysed]:
    """(cleaned text, normalised tokens) per text: the one place texts are cleaned for features."""
    out = []
    for text in texts:
        cleaned = clean_text(text)
        out.append((cleaned, tokens(cleaned)))
    return out


def _l2_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit length in place (a product with a diagonal matrix would unsort the indices
    and cost a sort afterwards)."""
    per_row = np.diff(x.indptr)
    rows = np.repeat(np.arange(x.shape[0]), per_row)
    norms = np.sqrt(np.bincount(rows, weights=x.data * x.data, minlength=x.shape[0]))
    norms[norms == 0] = 1.0
    x.data /= np.repeat(norms, per_row)
    return x


def _as_texts(X: object) -> list[str]:
    if isinstance(X, str):
        raise ValueError("expected a sequence of texts, got a single string")
    texts = list(X)  # type: ignore[call-overload]
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"text #{i} is {type(t).__name__}, expected str")
    return texts
