"""Text → features: hashed word n-grams + char_wb n-grams (+ optional taxonomy cue counts), TF-IDF weighted.

Hashing keeps the persisted model free of a vocabulary (skops dumps of large vocabularies are slow);
`fit` keeps only hashed columns seen in at least `min_df` training texts and renumbers them densely,
so the coefficients stay small and rare one-off phrasings do not become features.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction import FeatureHasher
from sklearn.utils.validation import check_is_fitted

from classifiers.keywords import CueMatcher
from classifiers.text import clean_text, tokens, word_spans

# Hashed column layout: [char n-grams | word unigrams | word phrases (bigrams…)]. Words and phrases
# sit side by side so a word block is one contiguous range; phrases get their own range so they can
# be stacked on, not added (adding sparse matrices this wide costs time proportional to the width).
CHAR_SPACE = 2**21
WORD_SPACE = 2**20
UNIGRAM_OFFSET = CHAR_SPACE
PHRASE_OFFSET = CHAR_SPACE + WORD_SPACE
TOTAL_SPACE = CHAR_SPACE + 2 * WORD_SPACE
# Tokens whose hashed char n-grams are remembered between calls (posts reuse most of their words).
_CACHE_LIMIT = 300_000


def _word_ngrams(toks: Sequence[str], lo: int, hi: int) -> list[str]:
    out = list(toks) if lo <= 1 <= hi else []
    for n in range(max(lo, 2), hi + 1):
        out.extend(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
    return out


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
        for key in ("_lut", "_matcher", "_hashers", "_cache", "_cache_range"):
            state.pop(key, None)
        return state

    def _get_hashers(self) -> tuple[FeatureHasher, FeatureHasher]:
        hashers = getattr(self, "_hashers", None)
        if hashers is None:
            hashers = (
                FeatureHasher(WORD_SPACE, input_type="string", alternate_sign=False),
                FeatureHasher(CHAR_SPACE, input_type="string", alternate_sign=False),
            )
            self._hashers = hashers
        return hashers

    def _get_matcher(self) -> CueMatcher | None:
        if not self.cue_lexicon:
            return None
        matcher = getattr(self, "_matcher", None)
        if matcher is None:
            matcher = CueMatcher(tuple((f, tuple(c)) for f, c in self.cue_lexicon))
            self._matcher = matcher
        return matcher

    def _get_lut(self) -> np.ndarray:
        lut = getattr(self, "_lut", None)
        if lut is None:
            lut = np.full(TOTAL_SPACE, -1, dtype=np.int32)
            lut[self.columns_] = np.arange(self.columns_.size, dtype=np.int32)
            self._lut = lut
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
            word_hasher, char_hasher = self._get_hashers()
            unigram = word_hasher.transform([[tok] for tok in missing]).indices.astype(np.int64)
            chars = char_hasher.transform([_char_ngrams(tok, lo, hi) for tok in missing])
            for r, tok in enumerate(missing):
                start, end = chars.indptr[r], chars.indptr[r + 1]
                cols = chars.indices[start:end].astype(np.int64)
                repeats = chars.data[start:end].astype(np.int64)
                if repeats.max(initial=1) > 1:
                    cols = np.repeat(cols, repeats)
                cache[tok] = np.append(cols, UNIGRAM_OFFSET + unigram[r])
        return cache

    def _raw(self, texts: Iterable[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Hashed raw counts over the full column layout (duplicates not yet summed) and cue counts."""
        matcher = self._get_matcher()
        docs = [tokens(clean_text(text)) for text in texts]
        bags = [Counter(toks) for toks in docs]
        vocab: dict[str, None] = {}
        for bag in bags:
            vocab.update(dict.fromkeys(bag))
        cache = self._token_columns(vocab)
        lo_w, hi_w = self.word_ngram_range
        drop_unigram = not (lo_w <= 1 <= hi_w)
        parts: list[np.ndarray] = []
        repeats: list[int] = []
        per_doc: list[int] = []
        for bag in bags:
            for tok, count in bag.items():
                cols = cache[tok]
                parts.append(cols[:-1] if drop_unigram else cols)
                repeats.append(count)
            per_doc.append(len(bag))
        n = len(docs)
        sizes = np.fromiter((p.size for p in parts), dtype=np.int64, count=len(parts))
        doc_of_part = np.repeat(np.arange(n), per_doc)
        indptr = np.concatenate(([0], np.cumsum(np.bincount(doc_of_part, weights=sizes, minlength=n)))).astype(np.int64)
        token_block = sp.csr_matrix(
            (
                np.repeat(np.asarray(repeats, dtype=np.float64), sizes),
                np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64),
                indptr,
            ),
            shape=(n, PHRASE_OFFSET),
        )
        if hi_w >= 2:
            word_hasher, _ = self._get_hashers()
            phrases = word_hasher.transform([_word_ngrams(toks, max(lo_w, 2), hi_w) for toks in docs])
        else:
            phrases = sp.csr_matrix((n, WORD_SPACE))
        counts = sp.hstack([token_block, phrases], format="csr")
        cues = np.vstack([matcher.counts(t) for t in docs]) if matcher else np.zeros((n, 0))
        return counts, cues

    def _compact(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Renumber hashed columns to the fitted dense column space, dropping unseen ones; sum repeats."""
        lut = self._get_lut()
        cols = lut[counts.indices]
        keep = cols >= 0
        kept_before = np.concatenate(([0], np.cumsum(keep)))
        out = sp.csr_matrix(
            (counts.data[keep], cols[keep], kept_before[counts.indptr]),
            shape=(counts.shape[0], self.columns_.size),
        )
        out.sum_duplicates()
        return out

    def _weight(self, counts: sp.csr_matrix, cues: np.ndarray) -> sp.csr_matrix:
        x = counts.astype(np.float64)
        if self.sublinear_tf:
            np.log1p(x.data, out=x.data)
        x = x @ sp.diags(self.idf_)
        blocks = [
            _l2_rows(x[:, : self.n_char_columns_]) * self.char_weight,
            _l2_rows(x[:, self.n_char_columns_ :]),
        ]
        if self.n_cues:
            blocks.append(sp.csr_matrix(np.log1p(cues) * self.cue_weight))
        return sp.hstack(blocks, format="csr")

    # -- sklearn API ---------------------------------------------------------------------------------

    def fit(self, X: Sequence[str], y: object = None) -> TextFeaturizer:
        self.fit_transform(X)
        return self

    def fit_transform(self, X: Sequence[str], y: object = None, **fit_params: object) -> sp.csr_matrix:
        texts = _as_texts(X)
        counts, cues = self._raw(texts)
        counts.sum_duplicates()
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        columns = np.flatnonzero(df >= max(1, self.min_df)).astype(np.int64)
        if columns.size == 0:
            raise ValueError("no n-gram occurs in min_df training texts; too little training text")
        self.columns_ = columns
        self.n_char_columns_ = int(np.searchsorted(columns, CHAR_SPACE))
        self._lut = None
        n = len(texts)
        self.idf_ = (np.log((1 + n) / (1 + df[columns])) + 1.0).astype(np.float64)
        self.n_features_out_ = columns.size + self.n_cues
        return self._weight(self._compact(counts), cues)

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        check_is_fitted(self, ["columns_", "idf_"])
        texts = _as_texts(X)
        if not texts:
            return sp.csr_matrix((0, self.n_features_out_))
        counts, cues = self._raw(texts)
        return self._weight(self._compact(counts), cues)

    # -- explanations --------------------------------------------------------------------------------

    def word_attribution(self, text: str) -> tuple[list[str], sp.csr_matrix]:
        """Words of `text` (as written) and a matrix giving each word's share of every feature column.

        Row r holds the raw counts of the features word r produced (its unigram, its char n-grams, half of
        each word bigram it is part of, the cues starting at it); columns sum to the document's counts,
        so `rows @ (x * w / column_counts)` splits the linear score x·w exactly over the words.
        """
        check_is_fitted(self, ["columns_", "idf_"])
        cleaned = clean_text(text)
        spans = word_spans(cleaned)
        surfaces = [cleaned[a:b] for a, b in spans]
        toks = tokens(cleaned)
        order = list(dict.fromkeys(toks))
        row_of = {tok: r for r, tok in enumerate(order)}
        surface_of: dict[str, str] = {}
        for tok, surface in zip(toks, surfaces, strict=False):
            surface_of.setdefault(tok, surface)
        lo_w, hi_w = self.word_ngram_range
        lo_c, hi_c = self.char_ngram_range
        unigram_feats: list[list[str]] = [[] for _ in order]
        phrase_feats: list[list[tuple[str, float]]] = [[] for _ in order]
        char_feats: list[list[str]] = [[] for _ in order]
        for i, tok in enumerate(toks):
            r = row_of[tok]
            if lo_w <= 1 <= hi_w:
                unigram_feats[r].append(tok)
            for n in range(max(lo_w, 2), hi_w + 1):
                if i + n <= len(toks):
                    gram = " ".join(toks[i : i + n])
                    for j in range(i, i + n):
                        phrase_feats[row_of[toks[j]]].append((gram, 1.0 / n))
            char_feats[r].extend(_char_ngrams(tok, lo_c, hi_c))
        word_hasher, char_hasher = self._get_hashers()
        phrase_hasher = FeatureHasher(WORD_SPACE, input_type="pair", alternate_sign=False)
        raw = sp.hstack(
            [
                char_hasher.transform(char_feats),
                word_hasher.transform(unigram_feats),
                phrase_hasher.transform(phrase_feats),
            ],
            format="csr",
        )
        rows = self._compact(raw).astype(np.float64)
        if self.n_cues:
            cue_block = np.zeros((len(order), self.n_cues))
            matcher = self._get_matcher()
            assert matcher is not None
            for k, start, length in matcher.matches(toks):
                for j in range(start, start + length):
                    cue_block[row_of[toks[j]], k] += 1.0 / length
            rows = sp.hstack([rows, sp.csr_matrix(cue_block)], format="csr")
        return [surface_of[t] for t in order], rows


def _l2_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms) @ x


def _as_texts(X: object) -> list[str]:
    if isinstance(X, str):
        raise ValueError("expected a sequence of texts, got a single string")
    texts = list(X)  # type: ignore[call-overload]
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"text #{i} is {type(t).__name__}, expected str")
    return texts
