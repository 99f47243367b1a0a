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


@dataclass(frozen=True, slots=True)
class LabeledText:
    """A labelled text from outside the shipped corpus (admin label, subscriber feedback).

    `weight` scales its influence in training: admin labels 1.0, subscriber feedback lower.
    An empty `frames` tuple is a deliberate "carries no frame" label.
    """

    text: str
    frames: tuple[str, ...]
    weight: float = 1.0
