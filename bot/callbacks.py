"""Inline-button callback_data: a tiny, strictly parsed text format (≤ 64 bytes, as Telegram requires).

Anyone can send any callback_data to a bot, so decoding only checks the shape here; handlers then check
the meaning (the post exists, the frames exist, this user may act on it) before anything is stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_BYTES = 64
MAX_FRAMES = 60  # frames beyond this cannot be selected by button (the mask would not fit)
_RE = re.compile(r"(fb):([cw]):(\d{1,12}):(\d{1,19})|(rl|rs):(\d{1,12}):(\d{1,19})|(sm):([0-9a-f]{8}):(\d{1,5})")


@dataclass(frozen=True, slots=True)
class Feedback:
    post_id: int
    correct: bool
    mask: int


@dataclass(frozen=True, slots=True)
class Relabel:
    post_id: int
    mask: int
    save: bool


@dataclass(frozen=True, slots=True)
class SearchMore:
    key: str
    offset: int


Action = Feedback | Relabel | SearchMore


def frames_mask(frame_ids: Sequence[str], order: Sequence[str]) -> int:
    """Bit i set ⇔ order[i] in frame_ids (frames outside `order` are ignored)."""
    index = {f: i for i, f in enumerate(order[:MAX_FRAMES])}
    mask = 0
    for frame_id in frame_ids:
        if frame_id in index:
            mask |= 1 << index[frame_id]
    return mask


def mask_frames(mask: int, order: Sequence[str]) -> tuple[str, ...] | None:
    """The frames a mask names, or None if it names a frame that does not exist."""
    usable = order[:MAX_FRAMES]
    if mask < 0 or mask >> len(usable):
        return None
    return tuple(f for i, f in enumerate(usable) if mask >> i & 1)


def feedback(post_id: int, correct: bool, mask: int) -> str:
    return _checked(f"fb:{'c' if correct else 'w'}:{post_id}:{mask}")


def relabel(post_id: int, mask: int) -> str:
    return _checked(f"rl:{post_id}:{mask}")


def relabel_save(post_id: int, mask: int) -> str:
    return _checked(f"rs:{post_id}:{mask}")


def search_more(key: str, offset: int) -> str:
    return _checked(f"sm:{key}:{offset}")


def _checked(data: str) -> str:
    if len(data.encode()) > MAX_BYTES or parse(data) is None:
        raise ValueError(f"callback data out of range: {data!r}")
    return data


def parse(data: str | None) -> Action | None:
    """The action, or None for anything that is not exactly one of our formats."""
    if not data or len(data) > MAX_BYTES:
        return None
    m = _RE.fullmatch(data)
    if m is None:
        return None
    if m.group(1):
        mask = int(m.group(4))
        return Feedback(int(m.group(3)), m.group(2) == "c", mask) if mask < 2**MAX_FRAMES else None
    if m.group(5):
        mask = int(m.group(7))
        return Relabel(int(m.group(6)), mask, m.group(5) == "rs") if mask < 2**MAX_FRAMES else None
    return SearchMore(m.group(9), int(m.group(10)))
