"""Which subscribers a tagged post concerns, turned into outbox rows (one per subscriber and story)."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from classifiers.text import clean_text
from framewatch.config import Settings
from storage import outbox
from storage.outbox import NewMessage, PostBundle
from storage.subscribers import ActiveSubscription, SubscriptionSpec, active_subscriptions

log = logging.getLogger(__name__)

_INVISIBLE_RE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_URL_RE = re.compile(r"(https?://|www\.)\S+|@\w+|#\w+")
_WORD_RE = re.compile(r"\w+")
FINGERPRINT_WORDS = 40
CANDIDATE_CHARS = 1000  # fingerprints read only this much text, on both sides of the comparison


@dataclass(frozen=True, slots=True)
class FrameHit:
    frame_id: str
    score: float
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertPost:
    """What matching looks at: plain values, no rows."""

    id: int
    source: str
    title: str
    text: str
    language: str | None
    frames: tuple[FrameHit, ...]


@dataclass(frozen=True, slots=True)
class AlertReport:
    queued: int = 0
    noted_also_in: int = 0
    skipped_backfill: int = 0
    skipped_old: int = 0
    skipped_untagged: int = 0


def normalise_text(text: str) -> str:
    """Casefolded NFKC text without invisible characters: how keywords are compared."""
    return " ".join(_INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", text)).casefold().split())


def matches(post: AlertPost, spec: SubscriptionSpec) -> tuple[FrameHit, ...]:
    """The post's frames that satisfy `spec` (empty tuple: no match).

    A subscription without frames means "any frame", but a post still needs at least one tag at or above
    min_score: alerts are about frames, keywords only narrow them down. All +keywords must appear, no
    -keyword may; both compare case- and width-insensitively against title and text.
    """
    hits = tuple(f for f in post.frames if f.score >= spec.min_score and (not spec.frames or f.frame_id in spec.frames))
    if not hits:
        return ()
    if spec.sources and post.source.casefold() not in {s.casefold() for s in spec.sources}:
        return ()
    if spec.languages and (post.language or "") not in spec.languages:
        return ()
    if spec.include_keywords or spec.exclude_keywords:
        haystack = normalise_text(f"{post.title}\n{post.text}")
        if not all(normalise_text(k) in haystack for k in spec.include_keywords):
            return ()
        if any(normalise_text(k) in haystack for k in spec.exclude_keywords):
            return ()
    return hits


def fingerprint(title: str, text: str) -> str:
    """Near-identical reposts (another channel's footer, emoji, links, punctuation) share this."""
    body = _URL_RE.sub(" ", normalise_text(clean_text(f"{title}\n{text}")))
    words = _WORD_RE.findall(body)
    if len(words) < 8:  # too short to call two posts the same story
        return ""
    return hashlib.sha256(" ".join(words[:FINGERPRINT_WORDS]).encode()).hexdigest()


def alert_post(bundle: PostBundle) -> AlertPost:
    post = bundle.post
    assert post.id is not None
    hits = tuple(FrameHit(f.frame_id, float(f.score), tuple(f.evidence)) for f in bundle.frames)
    return AlertPost(post.id, bundle.source_name, post.title, post.text, post.language, hits)


class _Stories:
    """Maps each post to the first post of its story: duplicate link, canonical URL, hash, fingerprint."""

    def __init__(self, session: Session, since: datetime, before_id: int) -> None:
        self.session, self.since, self.before_id = session, since, before_id
        self._fingerprints: dict[str, int] | None = None

    def root(self, bundle: PostBundle) -> int:
        post = bundle.post
        assert post.id is not None
        if post.duplicate_of_id is not None:
            return self._follow(post.duplicate_of_id)
        first = outbox.earliest_same_story(post, session=self.session, since=self.since)
        if first is not None:
            return self._follow(first)
        fp = fingerprint(post.title, post.text[:CANDIDATE_CHARS])
        if not fp:
            return post.id
        known = self._known()
        root = known.get(fp)
        if root is None or root >= post.id:
            known[fp] = post.id
            return post.id
        return root

    def _follow(self, post_id: int) -> int:
        seen = {post_id}
        bundle = outbox.post_bundles([post_id], session=self.session).get(post_id)
        while bundle is not None and bundle.post.duplicate_of_id is not None:
            nxt = bundle.post.duplicate_of_id
            if nxt in seen or len(seen) > 20:
                break
            seen.add(nxt)
            post_id = nxt
            bundle = outbox.post_bundles([post_id], session=self.session).get(post_id)
        return post_id

    def _known(self) -> dict[str, int]:
        """Fingerprint → first post id, over recent tagged posts (loaded once per batch)."""
        if self._fingerprints is None:
            rows = outbox.alertable_posts_since(
                session=self.session, since=self.since, before_id=self.before_id, chars=CANDIDATE_CHARS
            )
            found: dict[str, int] = {}
            for post_id, title, text in sorted(rows):
                fp = fingerprint(title, text)
                if fp and fp not in found:
                    found[fp] = post_id
            self._fingerprints = found
        return self._fingerprints


def enqueue_alerts(post_ids: Sequence[int], *, session: Session, now: datetime, settings: Settings) -> AlertReport:
    """Match newly tagged posts against every active subscription and queue one alert per
    (subscriber, story). Safe to call again for the same posts (re-tagging): dedup keys hold."""
    bundles = outbox.post_bundles(post_ids, session=session)
    if not bundles:
        return AlertReport()
    cfg = settings.alerts
    subs = active_subscriptions(session=session)
    stories = _Stories(session, now - cfg.dedup_window, max(bundles) + 1)
    counts = {"queued": 0, "noted_also_in": 0, "skipped_backfill": 0, "skipped_old": 0, "skipped_untagged": 0}
    for post_id in sorted(bundles):
        bundle = bundles[post_id]
        post = bundle.post
        published = post.published_at or post.fetched_at
        if post.from_backfill:
            counts["skipped_backfill"] += 1
            continue
        if published is None or published < now - cfg.max_age:
            counts["skipped_old"] += 1
            continue
        if not bundle.frames:
            counts["skipped_untagged"] += 1
            continue
        view = alert_post(bundle)
        wanted = _wanted(view, subs)
        if not wanted:
            continue
        story = stories.root(bundle)
        queued, noted = _queue(view, story, wanted, session=session, now=now)
        counts["queued"] += queued
        counts["noted_also_in"] += noted
    report = AlertReport(**counts)
    if report.queued or report.noted_also_in:
        log.info("alerts: %s", report)
    return report


def _wanted(
    post: AlertPost, subs: Sequence[ActiveSubscription]
) -> dict[int, tuple[ActiveSubscription, tuple[FrameHit, ...]]]:
    """subscriber id → (their subscription, the union of frames that matched any of their subscriptions)."""
    out: dict[int, tuple[ActiveSubscription, tuple[FrameHit, ...]]] = {}
    for sub in subs:
        hits = matches(post, sub.spec)
        if not hits:
            continue
        prev = out.get(sub.subscriber_id)
        if prev is not None:
            merged = {h.frame_id: h for h in (*prev[1], *hits)}
            hits = tuple(sorted(merged.values(), key=lambda h: -h.score))
        out[sub.subscriber_id] = (sub, hits)
    return out


def _queue(
    post: AlertPost,
    story: int,
    wanted: dict[int, tuple[ActiveSubscription, tuple[FrameHit, ...]]],
    *,
    session: Session,
    now: datetime,
) -> tuple[int, int]:
    messages = [
        NewMessage(
            chat_id=sub.chat_id,
            dedup_key=f"alert:{sub.subscriber_id}:{story}",
            kind="alert",
            subscriber_id=sub.subscriber_id,
            post_id=post.id,
            payload={
                "source": post.source,
                "story": story,
                "frames": [[h.frame_id, round(h.score, 4)] for h in hits],
                "also_in": [],
            },
            status="digest" if sub.digest != "off" else "pending",
        )
        for sub, hits in wanted.values()
    ]
    inserted = outbox.enqueue(messages, session=session, now=now)
    noted = 0
    clashes = [m.dedup_key for m in messages if m.dedup_key not in inserted]
    for row in outbox.by_dedup_keys(clashes, session=session).values():
        if row.post_id != post.id and outbox.note_also_in(row, post.source, session=session):
            noted += 1
    session.flush()
    return len(inserted), noted


def notify_admins(text: str, *, session: Session, now: datetime, settings: Settings, key: str | None = None) -> int:
    """Queue a plain-text notice (escaped when sent) to every admin; `key` makes repeats idempotent."""
    digest = hashlib.sha256((key or f"{text}\n{now.isoformat()}").encode()).hexdigest()[:32]
    messages = [
        NewMessage(chat_id=admin, dedup_key=f"admin:{admin}:{digest}", kind="admin", payload={"text": text[:3500]})
        for admin in settings.telegram.admins
    ]
    return len(outbox.enqueue(messages, session=session, now=now))
