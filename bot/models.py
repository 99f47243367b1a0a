"""The classifier registry behind /model, /retrain and /rollback (bot.context.ModelOps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from bot.context import FrameMetric, ModelInfo, RetrainOutcome
from classifiers import registry
from classifiers.corpus import Example
from classifiers.taxonomy import Taxonomy, load_taxonomy
from classifiers.training import TrainingDataError, train
from classifiers.types import LabeledText
from framewatch.config import Settings
from storage.models import utcnow


class RegistryModels:
    """Blocking calls (training takes seconds to minutes): the bot runs them on a worker thread."""

    def __init__(
        self,
        models_dir: Path,
        taxonomy: Taxonomy,
        *,
        max_drop: float,
        clock: Callable[[], datetime] = utcnow,
        corpus: Sequence[Example] | None = None,
    ) -> None:
        self.models_dir, self.taxonomy, self.max_drop = Path(models_dir), taxonomy, max_drop
        self.clock, self.corpus = clock, corpus

    def info(self) -> ModelInfo:
        try:
            active = registry.active_version(self.models_dir)
            versions = tuple(m.version for m in reversed(registry.list_versions(self.models_dir)))
            details: tuple[str, ...] = ()
            if active is not None:
                meta = registry.read_metadata(self.models_dir, active)
                dev = meta.dev_metrics
                macro, micro = float(dev.get("macro_f1", 0.0)), float(dev.get("micro_f1", 0.0))
                details = (
                    f"created {meta.created_at}",
                    f"dev macro-F1 {macro:.3f}, micro-F1 {micro:.3f}",
                    f"frames: {len(meta.frame_ids)}",
                )
        except registry.RegistryError as exc:
            raise ValueError(str(exc)) from None
        return ModelInfo(active, versions, details)

    def retrain(self, labels: list[tuple[str, list[str], float]]) -> RetrainOutcome:
        known = set(self.taxonomy.ids)
        extra = [
            LabeledText(text, tuple(f for f in frames if f in known), weight)
            for text, frames, weight in labels
            if text.strip()
        ]
        try:
            report = train(
                self.taxonomy,
                self.models_dir,
                now=self.clock(),
                extra=extra,
                corpus=self.corpus,
                max_drop=self.max_drop,
            )
        except (TrainingDataError, registry.RegistryError) as exc:
            raise ValueError(str(exc)) from None
        metrics = tuple(
            FrameMetric(frame_id, m.precision, m.recall, m.f1, m.support)
            for frame_id, m in report.dev.per_frame.items()
        )
        return RetrainOutcome(report.version, report.activated, "" if report.activated else report.reason, metrics)

    def rollback(self) -> str:
        try:
            return registry.rollback(self.models_dir)
        except registry.RegistryError as exc:
            raise ValueError(str(exc)) from None


def registry_ops(settings: Settings, taxonomy: Taxonomy | None = None) -> RegistryModels:
    return RegistryModels(
        settings.classifier.models_dir,
        taxonomy or load_taxonomy(),
        max_drop=settings.classifier.max_activation_drop,
    )
