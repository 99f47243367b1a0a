"""The multi-label frame classifier: one calibrated linear model per frame, thresholds tuned out of fold.

A scikit-learn estimator (clone-able, `check_is_fitted`-aware) so it can be cross-validated and
compared like any other. Thresholds are tuned here from out-of-fold probabilities rather than by
`TunedThresholdClassifierCV`, whose tuned threshold `OneVsRestClassifier` would silently ignore.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from classifiers.explain import explain_batch
from classifiers.features import Analysed, Entries, TextFeaturizer, _as_texts, analyse

MIN_POSITIVES = 3
# Texts per feature matrix. Tagging 2,000 posts of 300-600 chars (2026-12-02): 2,048 per batch peaked
# 150 MiB above the loaded model and ran at 1,981 posts/s; 256 peaked 18 MiB above it at 2,555 posts/s.
BATCH = 256


def default_estimator() -> LogisticRegression:
    # The dual liblinear solver is ~25x faster than the primal one here (far more features than texts).
    return LogisticRegression(C=30.0, class_weight={0: 1, 1: 3}, solver="liblinear", dual=True, max_iter=2000)


def tune_threshold(
    scores: np.ndarray,
    truth: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    beta: float = 1.0,
    bounds: tuple[float, float] = (0.2, 0.9),
) -> float:
    """The probability cut-off maximising F-beta on out-of-fold scores, taken mid-plateau.

    Several cut-offs usually tie on a small set; the middle of the best ones is less tuned to the
    particular folds than either edge.
    """
    lo, hi = bounds
    w = np.ones_like(scores) if weights is None else weights
    grid = np.unique(np.clip(np.concatenate([scores, np.linspace(lo, hi, 71)]), lo, hi))
    pos = truth.astype(bool)
    best: list[float] = []
    best_score = -1.0
    b2 = beta * beta
    for t in grid:
        pred = scores >= t
        tp = w[pred & pos].sum()
        fp = w[pred & ~pos].sum()
        fn = w[~pred & pos].sum()
        denom = (1 + b2) * tp + b2 * fn + fp
        f = (1 + b2) * tp / denom if denom else 0.0
        if f > best_score + 1e-9:
            best_score, best = f, [t]
        elif abs(f - best_score) <= 1e-9:
            best.append(t)
    return float(np.median(best)) if best else 0.5


def linear_weights(estimator: object) -> tuple[np.ndarray, float]:
    """(coefficients, intercept) of a fitted binary linear model, averaging a calibrated ensemble."""
    if isinstance(estimator, CalibratedClassifierCV):
        pairs = [linear_weights(c.estimator) for c in estimator.calibrated_classifiers_]
        return np.mean([p[0] for p in pairs], axis=0), float(np.mean([p[1] for p in pairs]))
    coef = getattr(estimator, "coef_", None)
    if coef is None:
        raise TypeError(f"{type(estimator).__name__} is not a linear model; it cannot explain")
    return np.asarray(coef, dtype=np.float64).ravel(), float(np.ravel(estimator.intercept_)[0])


class FrameClassifier(ClassifierMixin, BaseEstimator):
    """Texts → frame indicator matrix; `predict_proba` gives one probability column per frame.

    `y` is a multi-label indicator matrix (n_texts × n_frames); `frame_ids` names its columns. A text
    may get zero frames: each frame has its own threshold and none is forced. `none_weight` multiplies
    the sample weight of texts labelled with no frame.
    """

    def __init__(
        self,
        featurizer: TextFeaturizer | None = None,
        estimator: object = None,
        calibration: str | None = None,
        calibration_cv: int = 3,
        threshold_folds: int = 5,
        threshold_beta: float = 1.0,
        threshold_bounds: tuple[float, float] = (0.2, 0.9),
        none_weight: float = 1.0,
        frame_ids: tuple[str, ...] | None = None,
        random_state: int = 0,
    ) -> None:
        self.featurizer = featurizer
        self.estimator = estimator
        self.calibration = calibration
        self.calibration_cv = calibration_cv
        self.threshold_folds = threshold_folds
        self.threshold_beta = threshold_beta
        self.threshold_bounds = threshold_bounds
        self.none_weight = none_weight
        self.frame_ids = frame_ids
        self.random_state = random_state

    def _binary_model(self) -> object:
        base = clone(self.estimator) if self.estimator is not None else default_estimator()
        if self.calibration:
            return CalibratedClassifierCV(base, method=self.calibration, cv=self.calibration_cv)
        return base

    def _check_y(self, y: object, n: int) -> np.ndarray:
        Y = np.asarray(y)
        if Y.ndim != 2 or Y.shape[0] != n:
            raise ValueError(f"y must be an indicator matrix of shape ({n}, n_frames), got {Y.shape}")
        if not np.isin(Y, (0, 1)).all():
            raise ValueError("y must contain only 0 and 1")
        if self.frame_ids is not None and len(self.frame_ids) != Y.shape[1]:
            raise ValueError(f"frame_ids names {len(self.frame_ids)} frames but y has {Y.shape[1]} columns")
        names = self.frame_ids or tuple(str(i) for i in range(Y.shape[1]))
        for k, name in enumerate(names):
            positives = int(Y[:, k].sum())
            if positives < MIN_POSITIVES or n - positives < MIN_POSITIVES:
                raise ValueError(
                    f"frame {name!r} has {positives} positive and {n - positives} negative examples; "
                    f"need at least {MIN_POSITIVES} of each"
                )
        return Y.astype(np.int8)

    def _fit_columns(self, Xt: sp.csr_matrix, Y: np.ndarray, w: np.ndarray) -> list[object]:
        fitted = []
        for k in range(Y.shape[1]):
            model = self._binary_model()
            model.fit(Xt, Y[:, k], sample_weight=w)
            fitted.append(model)
        return fitted

    def fit(self, X: Sequence[str], y: object, sample_weight: object = None) -> FrameClassifier:
        texts = _as_texts(X)
        Y = self._check_y(y, len(texts))
        w = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (len(texts),) or (w <= 0).any():
            raise ValueError("sample_weight must be one positive number per text")
        # Texts with no frame are the hard negatives of every frame at once ("war words" without a
        # frame); weighting them up is what keeps the no-frame false-positive rate down.
        w = np.where(Y.sum(axis=1) == 0, w * self.none_weight, w)
        self.featurizer_ = clone(self.featurizer) if self.featurizer is not None else TextFeaturizer()
        Xt = self.featurizer_.fit_transform(texts)
        oof = np.zeros(Y.shape, dtype=np.float64)
        folds = KFold(self.threshold_folds, shuffle=True, random_state=self.random_state)
        for train_idx, test_idx in folds.split(Xt):
            Ytr = Y[train_idx]
            for k in range(Y.shape[1]):
                if Ytr[:, k].min() == Ytr[:, k].max():
                    oof[test_idx, k] = Ytr[0, k]
                    continue
                model = self._binary_model()
                model.fit(Xt[train_idx], Ytr[:, k], sample_weight=w[train_idx])
                oof[test_idx, k] = model.predict_proba(Xt[test_idx])[:, 1]
        self.thresholds_ = np.array(
            [
                tune_threshold(oof[:, k], Y[:, k], w, beta=self.threshold_beta, bounds=self.threshold_bounds)
                for k in range(Y.shape[1])
            ]
        )
        self.oof_proba_ = oof
        self.estimators_ = self._fit_columns(Xt, Y, w)
        self._weights = None
        self.classes_ = np.asarray(self.frame_ids if self.frame_ids is not None else range(Y.shape[1]))
        return self

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state.pop("oof_proba_", None)  # training diagnostics only; keeps model files small
        state.pop("_weights", None)
        return state

    # -- prediction ----------------------------------------------------------------------------------

    def transform_texts(self, X: Sequence[str]) -> sp.csr_matrix:
        check_is_fitted(self, ["estimators_", "thresholds_"])
        return self.featurizer_.transform(_as_texts(X))

    def entries(self, analysed: Sequence[Analysed]) -> Entries:
        check_is_fitted(self, ["estimators_", "thresholds_"])
        return self.featurizer_.entries([toks for _, toks in analysed])

    def transform_entries(self, e: Entries) -> sp.csr_matrix:
        return self.featurizer_.transform_entries(e)

    def proba_from_features(self, Xt: sp.csr_matrix) -> np.ndarray:
        if Xt.shape[0] == 0:
            return np.zeros((0, len(self.estimators_)))
        return np.column_stack([m.predict_proba(Xt)[:, 1] for m in self.estimators_])

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Probabilities in batches of BATCH texts: one huge sparse matrix is slower and needs more memory."""
        texts = _as_texts(X)
        if len(texts) <= BATCH:
            return self.proba_from_features(self.transform_texts(texts))
        return np.vstack(
            [self.proba_from_features(self.transform_texts(texts[i : i + BATCH])) for i in range(0, len(texts), BATCH)]
        )

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return (self.predict_proba(X) >= self.thresholds_).astype(np.int8)

    # -- explanations --------------------------------------------------------------------------------

    def frame_weights(self, k: int) -> np.ndarray:
        """Linear weights of frame k in feature space (cached; explanations need them per call)."""
        check_is_fitted(self, ["estimators_"])
        cache = getattr(self, "_weights", None)
        if cache is None:
            cache = self._weights = [linear_weights(m)[0] for m in self.estimators_]
        return cache[k]

    def evidence(
        self,
        text: str,
        frames: Sequence[int],
        top: int = 5,
        *,
        features: sp.csr_matrix | None = None,
        analysed: Analysed | None = None,
    ) -> dict[int, tuple[str, ...]]:
        """The words of `text` that pushed each given frame's score up most (feature value × weight).

        Every string returned occurs verbatim in the text. `features` (the text's row from
        `transform_analysed`) and `analysed` (its `analyse` output) save recomputing them.
        """
        if not frames:
            return {}
        pair = analysed if analysed is not None else analyse([text])[0]
        e = self.featurizer_.entries([pair[1]])
        wanted = np.zeros((1, len(self.estimators_)), dtype=bool)
        wanted[0, list(frames)] = True
        return self.evidence_batch([pair], e, self.featurizer_.transform_entries(e), wanted, top)[0]

    def evidence_batch(
        self, analysed: Sequence[Analysed], e: Entries, features: sp.csr_matrix, wanted: np.ndarray, top: int = 5
    ) -> list[dict[int, tuple[str, ...]]]:
        """`evidence` for a batch: `e`/`features` as `entries`/`transform_entries` gave them, `wanted`
        marking the (text, frame) pairs to explain."""
        weights = [self.frame_weights(k) for k in range(len(self.estimators_))]
        return explain_batch(analysed, e, features, weights, wanted, top)
