"""Human frame labels: admin labels and subscriber feedback, and the training set they make."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Label, Post


def training_text(title: str, text: str) -> str:
    """What the classifier reads (kept identical to ingest.pipeline.post_text; storage cannot import it)."""
    return f"{title}\n{text}".strip() if title and not text.startswith(title) else text


def add_label(
    post_id: int,
    frames: Sequence[str],
    *,
    session: Session,
    now: datetime,
    user_id: int | None,
    kind: str = "admin",
    weight: float = 1.0,
) -> Label:
    """Store a judgement. A user's new feedback on a post replaces their earlier feedback on it, so
    pressing buttons twice does not count twice."""
    if kind == "feedback" and user_id is not None:
        session.execute(
            sa.delete(Label).where(
                col(Label.post_id) == post_id, col(Label.user_id) == user_id, col(Label.kind) == "feedback"
            )
        )
    label = Label(
        post_id=post_id,
        frames=sorted(set(frames)),
        user_id=user_id,
        kind=kind,
        weight=weight,
        created_at=now,
    )
    session.add(label)
    session.flush()
    return label


def labels_for_post(post_id: int, *, session: Session) -> list[Label]:
    stmt = select(Label).where(col(Label.post_id) == post_id).order_by(col(Label.id))
    return list(session.exec(stmt))


def list_training_labels(*, session: Session) -> list[tuple[str, list[str], float]]:
    """(text, frames, weight) per labelled post, for training.

    The latest admin label of a post wins over any feedback; without one, the latest feedback counts,
    at the (lower) weight it was stored with. An empty frame list is a deliberate "no frame" label.
    """
    stmt = (
        select(Label, Post.title, Post.text)
        .join(Post, col(Post.id) == col(Label.post_id))
        .order_by(col(Label.post_id), col(Label.id))
    )
    best: dict[int, tuple[Label, str]] = {}
    for label, title, text in session.exec(stmt):
        current = best.get(label.post_id)
        if current is None or label.kind == "admin" or current[0].kind != "admin":
            best[label.post_id] = (label, training_text(title, text))
    return [(text, list(label.frames), float(label.weight)) for label, text in best.values()]
