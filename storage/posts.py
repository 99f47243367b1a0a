"""Post rows: idempotent storing of fetched items, frame tags, export and re-tagging batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.bulk import insert_new_rows
from storage.models import Post, PostFrame, Source


class PostLike(Protocol):
    """A normalised fetched item (ingest.types.RawPost satisfies it); storage does not import ingest."""

    external_id: str
    url: str | None
    title: str
    text: str
    published_at: datetime | None
    language: str | None
    views: int | None
    forwarded_from: str | None
    link_title: str | None
    media: tuple[str, ...]


class FrameScoreLike(Protocol):
    frame_id: str
    score: float
    evidence: tuple[str, ...]


class ClassificationLike(Protocol):
    frames: tuple[FrameScoreLike, ...]
    model_version: str


@dataclass(frozen=True, slots=True)
class StoredPost:
    """A post that is new or changed in this batch: what classification needs."""

    id: int
    title: str
    text: str


@dataclass(slots=True)
class StoreResult:
    new: list[StoredPost] = field(default_factory=list)
    updated: list[StoredPost] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> list[StoredPost]:
        return self.new + self.updated


def content_hash(title: str, text: str) -> str:
    import hashlib

    return hashlib.sha256(f"{title.strip()}\n{text.strip()}".encode()).hexdigest()


def _stored_rows(source_id: int, external_ids: Sequence[str], *, session: Session) -> dict[str, Post]:
    stmt = select(Post).where(Post.source_id == source_id, col(Post.external_id).in_(list(external_ids)))
    return {row.external_id: row for row in session.exec(stmt)}


def _change(item: PostLike, row: Post | None, digest: str) -> str:
    """What storing `item` over `row` does: "new", "edited" or "same" (one rule for both callers)."""
    if row is None:
        return "new"
    if getattr(item, "summary_only", False) and row.text:
        # The article page could not be fetched this time: keep the full text we already have.
        return "same"
    return "edited" if row.content_hash != digest else "same"


def changed_items(source_id: int, items: Sequence[PostLike], *, session: Session) -> list[PostLike]:
    """The items that `store_posts` would insert or edit, read without writing.

    Lets the caller classify them before it opens its write transaction, so a slow model never holds
    SQLite's single write lock (or a PostgreSQL transaction) while it runs.
    """
    if not items:
        return []
    by_id = {item.external_id: item for item in items}
    existing = _stored_rows(source_id, list(by_id), session=session)
    return [
        item
        for external_id, item in by_id.items()
        if _change(item, existing.get(external_id), content_hash(item.title, item.text)) != "same"
    ]


def store_posts(
    source_id: int,
    items: Sequence[PostLike],
    *,
    session: Session,
    now: datetime,
    from_backfill: bool,
    canonical_urls: Sequence[str | None] | None = None,
) -> StoreResult:
    """Insert new items, update edited ones in place, count the rest; never duplicates a (source, id).

    `canonical_urls` (parallel to items) links the same story published by another source to the first
    copy through duplicate_of_id, instead of treating it as unrelated.
    """
    result = StoreResult()
    if not items:
        return result
    by_id: dict[str, tuple[PostLike, str | None]] = {}
    for i, item in enumerate(items):  # last copy wins if a page repeats an id
        by_id[item.external_id] = (item, canonical_urls[i] if canonical_urls else item.url)
    existing = _stored_rows(source_id, list(by_id), session=session)
    fresh: list[dict[str, object]] = []
    for external_id, (item, canonical) in by_id.items():
        digest = content_hash(item.title, item.text)
        row = existing.get(external_id)
        change = _change(item, row, digest)
        if row is None:
            fresh.append(_row(source_id, item, canonical, digest, now, from_backfill))
        elif change == "edited":
            row.title, row.text, row.content_hash = item.title, item.text, digest
            row.edited, row.edited_at = True, now
            row.views = _bounded_views(item.views) if item.views is not None else row.views
            session.add(row)
            assert row.id is not None
            result.updated.append(StoredPost(row.id, row.title, row.text))
        else:
            if item.views is not None and _bounded_views(item.views) != row.views:
                row.views = _bounded_views(item.views)
                session.add(row)
            result.unchanged += 1
    if fresh:
        _link_duplicates(fresh, source_id, session)
        # A Core insert on the table, not the ORM entity: the ORM splits a bulk insert into a new batch
        # wherever a defaulted column switches between None and a value (views, forwarded_from, …),
        # which cut real pages into batches of three rows and stores 3x slower.
        new = insert_new_rows(
            Post.__table__,  # type: ignore[attr-defined]
            fresh,
            unique=("source_id", "external_id"),
            returning=("id", "title", "text"),
            session=session,
        )
        result.new = [StoredPost(post_id, title, text) for post_id, title, text in new]
    session.flush()
    return result


# The views column is an INTEGER (PostgreSQL's stops at 2**31 - 1); a page claiming "3B" views, or a
# counter of twenty digits, failed its source's whole poll. Counts past it are stored as the maximum.
MAX_VIEWS = 2**31 - 1


def _bounded_views(views: int | None) -> int | None:
    return None if views is None else max(0, min(views, MAX_VIEWS))


# Longer canonical URLs are not used to link copies: PostgreSQL's B-tree refuses index rows over 2,704
# bytes, and one such URL failed its source's whole poll, every poll. The post keeps its `url` anyway.
# Bytes, not characters: a query keeps its non-ASCII text as it is (three bytes an ideograph).
MAX_LINKED_URL_BYTES = 2_000


def _row(
    source_id: int, item: PostLike, canonical: str | None, digest: str, now: datetime, backfill: bool
) -> dict[str, object]:
    if canonical is not None and len(canonical.encode()) > MAX_LINKED_URL_BYTES:
        canonical = None
    return {
        "source_id": source_id,
        "external_id": item.external_id,
        "url": item.url,
        "canonical_url": canonical,
        "title": item.title,
        "text": item.text,
        "language": item.language,
        "published_at": item.published_at,
        "fetched_at": now,
        "views": _bounded_views(item.views),
        "forwarded_from": item.forwarded_from,
        "link_title": item.link_title,
        "media": list(item.media),
        "content_hash": digest,
        "edited": bool(getattr(item, "edited", False)),
        "edited_at": None,
        "duplicate_of_id": None,
        "from_backfill": backfill,
        "classified_version": None,
    }


def _link_duplicates(rows: list[dict[str, object]], source_id: int, session: Session) -> None:
    urls = {str(r["canonical_url"]) for r in rows if r["canonical_url"]}
    if not urls:
        return
    first: dict[str, int] = {}
    stmt = (
        select(Post.canonical_url, sa.func.min(Post.id))
        .where(col(Post.canonical_url).in_(list(urls)), Post.source_id != source_id)
        .group_by(col(Post.canonical_url))
    )
    for url, post_id in session.exec(stmt):
        if url is not None:
            first[url] = post_id
    for r in rows:
        r["duplicate_of_id"] = first.get(str(r["canonical_url"])) if r["canonical_url"] else None


def save_classifications(items: Sequence[tuple[int, ClassificationLike]], *, session: Session, now: datetime) -> None:
    """Replace the tags of each post with this model's; a post with no frames keeps none."""
    if not items:
        return
    ids = [post_id for post_id, _ in items]
    session.execute(sa.delete(PostFrame).where(col(PostFrame.post_id).in_(ids)))
    rows = [
        {
            "post_id": post_id,
            "frame_id": f.frame_id,
            "score": float(f.score),
            "model_version": c.model_version,
            "evidence": list(f.evidence),
            "tagged_at": now,
        }
        for post_id, c in items
        for f in c.frames
    ]
    if rows:
        session.execute(sa.insert(PostFrame), rows)
    versions: dict[str, list[int]] = {}
    for post_id, c in items:
        versions.setdefault(c.model_version, []).append(post_id)
    for version, post_ids in versions.items():
        session.execute(sa.update(Post).where(col(Post.id).in_(post_ids)).values(classified_version=version))


def get_post(post_id: int, *, session: Session) -> Post | None:
    return session.get(Post, post_id)


def post_frames(post_id: int, *, session: Session) -> list[PostFrame]:
    stmt = select(PostFrame).where(PostFrame.post_id == post_id).order_by(col(PostFrame.score).desc())
    return list(session.exec(stmt))


def count_posts(*, session: Session) -> int:
    return session.exec(select(sa.func.count()).select_from(Post)).one()


@dataclass(frozen=True, slots=True)
class ExportRow:
    source: str
    external_id: str
    url: str | None
    title: str
    text: str
    lang: str | None
    published_at: datetime | None
    views: int | None
    frames: list[str]
    edited: bool
    forwarded_from: str | None


def iter_export(*, session: Session, since: datetime | None = None, batch_size: int = 1000) -> Iterator[ExportRow]:
    """Posts oldest first in id batches (keyset paging keeps memory flat on millions of rows)."""
    last_id = 0
    while True:
        stmt = (
            select(Post, Source.name)
            .join(Source, col(Source.id) == Post.source_id)
            .where(col(Post.id) > last_id)
            .order_by(col(Post.id))
            .limit(batch_size)
        )
        if since is not None:
            stmt = stmt.where(col(Post.published_at) >= since)
        batch = list(session.exec(stmt))
        if not batch:
            return
        frames = _frames_for([p.id for p, _ in batch if p.id is not None], session)
        for post, source_name in batch:
            assert post.id is not None
            yield ExportRow(
                source=source_name,
                external_id=post.external_id,
                url=post.canonical_url or post.url,
                title=post.title,
                text=post.text,
                lang=post.language,
                published_at=post.published_at,
                views=post.views,
                frames=frames.get(post.id, []),
                edited=post.edited,
                forwarded_from=post.forwarded_from,
            )
        last_id = batch[-1][0].id or last_id


def _frames_for(post_ids: list[int], session: Session) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    stmt = (
        select(PostFrame.post_id, PostFrame.frame_id)
        .where(col(PostFrame.post_id).in_(post_ids))
        .order_by(col(PostFrame.score).desc())
    )
    for post_id, frame_id in session.exec(stmt):
        out.setdefault(post_id, []).append(frame_id)
    return out


def iter_post_batches(
    *, session: Session, since: datetime | None = None, batch_size: int = 500, after_id: int = 0
) -> Iterator[list[StoredPost]]:
    """(id, title, text) in id order, for re-tagging after a model change."""
    last_id = after_id
    while True:
        stmt = (
            select(Post.id, Post.title, Post.text)
            .where(col(Post.id) > last_id)
            .order_by(col(Post.id))
            .limit(batch_size)
        )
        if since is not None:
            stmt = stmt.where(col(Post.published_at) >= since)
        batch = [StoredPost(int(i), t, x) for i, t, x in session.exec(stmt)]
        if not batch:
            return
        yield batch
        last_id = batch[-1].id
