"""Digest mode: fold a subscriber's waiting alerts into one outbox message per hour or day."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from framewatch.config import Settings
from storage import outbox
from storage.db import session_scope
from storage.outbox import NewMessage

PERIODS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


def build_digests(*, engine: sa.Engine, now: datetime, settings: Settings) -> int:
    """For each subscriber whose period elapsed (or who switched digests off with alerts waiting),
    queue one kind="digest" message listing the waiting alerts, in the same transaction that marks
    them batched, so a crash leaves either the alerts waiting or the digest queued, never both."""
    del settings
    with session_scope(engine) as session:
        due = outbox.digests_due(session=session, now=now, periods=PERIODS)
    made = 0
    for sub in due:
        with session_scope(engine) as session:
            rows = outbox.take_digest_rows(sub.subscriber_id, session=session)
            if not rows:
                continue
            ids = [r.id for r in rows if r.id is not None]
            key = f"digest:{sub.subscriber_id}:{min(ids)}-{max(ids)}"
            items = [
                {
                    "post_id": r.post_id,
                    "frames": r.payload.get("frames", []),
                    "also_in": r.payload.get("also_in", []),
                    "source": r.payload.get("source"),
                }
                for r in rows
                if r.post_id is not None
            ]
            message = NewMessage(
                chat_id=sub.chat_id,
                dedup_key=key,
                kind="digest",
                subscriber_id=sub.subscriber_id,
                payload={"items": items, "outbox_ids": ids},
            )
            outbox.enqueue([message], session=session, now=now)
            outbox.mark_batched(ids, key, session=session)
            outbox.set_last_digest(sub.subscriber_id, session=session, now=now)
            made += 1
    return made
