"""Plain values that leave classifiers/: frames found in a text, with the evidence for each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FrameScore:
    frame_id: str
    score: float
    # Top contributing n-grams of *this* text (feature x weight), strongest first.
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Classification:
    frames: tuple[FrameScore, ...]
    model_version: str

    @property
    def frame_ids(self) -> tuple[str, ...]:
        return tuple(f.frame_id for f in self.frames)
