"""Scoring frame predictions against labelled data: the `framewatch eval` contract.

Anything that maps texts to frame ids (the model, the keyword baseline) is scored by the same code,
so side-by-side figures are comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from classifiers.corpus import Example, load_jsonl
from classifiers.taxonomy import Taxonomy

Predictor = Callable[[Sequence[str]], Sequence[Sequence[str]]]


@dataclass(frozen=True, slots=True)
class FrameMetrics:
    precision: float
    recall: float
    f1: float
    support: int

    def to_json(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "support": self.support,
        }


@dataclass(frozen=True, slots=True)
class EvalReport:
    macro_f1: float
    micro_f1: float
    none_fpr: float
    per_frame: dict[str, FrameMetrics]
    model_version: str
    n_examples: int = 0
    n_none: int = 0

    def to_json(self) -> dict[str, object]:
        """Exactly the documented `framewatch eval --json` object."""
        return {
            "macro_f1": round(self.macro_f1, 4),
            "micro_f1": round(self.micro_f1, 4),
            "none_fpr": round(self.none_fpr, 4),
            "per_frame": {fid: m.to_json() for fid, m in self.per_frame.items()},
            "model_version": self.model_version,
        }


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_predictions(
    truth: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    frame_ids: Sequence[str],
    *,
    model_version: str,
) -> EvalReport:
    """Per-frame P/R/F1, micro and macro F1 and none_fpr.

    Macro F1 averages the frames that occur in the data or were predicted: a frame absent from both
    has no defined F1, while one predicted but absent scores 0 and counts.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labelled examples but {len(predicted)} predictions")
    per_frame: dict[str, FrameMetrics] = {}
    totals = [0, 0, 0]
    macro: list[float] = []
    for fid in frame_ids:
        tp = fp = fn = 0
        for gold, pred in zip(truth, predicted, strict=True):
            g, p = fid in gold, fid in pred
            tp += g and p
            fp += p and not g
            fn += g and not p
        precision, recall, f1 = _prf(tp, fp, fn)
        per_frame[fid] = FrameMetrics(precision, recall, f1, support=tp + fn)
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        if tp + fn + fp:
            macro.append(f1)
    none_rows = [bool(pred) for gold, pred in zip(truth, predicted, strict=True) if not gold]
    return EvalReport(
        macro_f1=sum(macro) / len(macro) if macro else 0.0,
        micro_f1=_prf(*totals)[2],
        none_fpr=sum(none_rows) / len(none_rows) if none_rows else 0.0,
        per_frame=per_frame,
        model_version=model_version,
        n_examples=len(truth),
        n_none=len(none_rows),
    )


def evaluate(
    predict: Predictor, examples: Sequence[Example], frame_ids: Sequence[str], *, model_version: str
) -> EvalReport:
    predicted = predict([e.text for e in examples])
    return score_predictions([e.frames for e in examples], predicted, frame_ids, model_version=model_version)


def load_eval_data(path: Path | str, taxonomy: Taxonomy) -> list[Example]:
    """A JSONL file of `{"text", "frames"}`; a frame id the taxonomy lacks is an error naming it."""
    return load_jsonl(path, taxonomy)


def format_report(report: EvalReport, *, title: str = "") -> str:
    """A plain-text table for terminals and docs."""
    lines = [title] if title else []
    lines.append(f"{'frame':<22} {'P':>6} {'R':>6} {'F1':>6} {'n':>5}")
    for fid, m in report.per_frame.items():
        lines.append(f"{fid:<22} {m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f} {m.support:5d}")
    lines.append(
        f"macro-F1 {report.macro_f1:.3f}  micro-F1 {report.micro_f1:.3f}  "
        f"none_fpr {report.none_fpr:.3f} ({report.n_none} no-frame examples)  model {report.model_version}"
    )
    return "\n".join(lines)
