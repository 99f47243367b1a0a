"""Storage on real databases (SQLite file and, when configured, PostgreSQL): idempotent posts, leases."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from classifiers.types import Classification, FrameScore
from framewatch.config import SourceSettings
from ingest.types import RawPost
from storage.db import read_scope, session_scope
from storage.models import Post, PostFrame, Source
from storage.posts import iter_export, post_frames, save_classifications, store_posts
from storage.search import search_posts
from storage.sources import (
    SourceError,
    add_source,
    claim_due_sources,
    record_failure,
    record_success,
    set_source_enabled,
    sync_sources,
)

NOW = datetime(2023, 5, 22, 12, 0, tzinfo=UTC)


def _raw(i: int, text: str = "", url: str | None = None) -> RawPost:
    return RawPost(
        external_id=str(i),
        url=url or f"https://example.org/a/{i}",
        title=f"Title {i}",
        text=text or f"Body of post {i}",
        published_at=NOW - timedelta(minutes=i),
        language="en",
    )


def _source(session: Session, name: str = "wire") -> int:
    src = add_source(SourceSettings(name=name, kind="rss", url="http://127.0.0.1/feed"), session=session, now=NOW)
    assert src.id is not None
    return src.id


def test_store_posts_is_idempotent_and_tracks_edits(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        sid = _source(session)
        first = store_posts(sid, [_raw(1), _raw(2), _raw(3)], session=session, now=NOW, from_backfill=True)
        assert len(first.new) == 3 and not first.updated
    with session_scope(engine) as session:
        again = store_posts(sid, [_raw(1), _raw(2), _raw(3)], session=session, now=NOW, from_backfill=False)
        assert not again.new and not again.updated and again.unchanged == 3
        edited = store_posts(sid, [_raw(2, text="Corrected body")], session=session, now=NOW, from_backfill=False)
        assert [p.id for p in edited.updated] == [first.new[1].id]
    with Session(engine) as session:
        posts = session.exec(select(Post).order_by(Post.id)).all()
        assert len(posts) == 3
        assert posts[1].edited and posts[1].text == "Corrected body" and posts[1].edited_at == NOW
        assert posts[0].from_backfill and posts[0].published_at == NOW - timedelta(minutes=1)
        assert posts[0].published_at.tzinfo is not None


def test_same_url_from_two_sources_is_linked(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        a, b = _source(session, "a"), _source(session, "b")
        store_posts(a, [_raw(1, url="https://ex.org/story")], session=session, now=NOW, from_backfill=False)
        res = store_posts(b, [_raw(9, url="https://ex.org/story")], session=session, now=NOW, from_backfill=False)
        copy = session.get(Post, res.new[0].id)
        assert copy is not None and copy.duplicate_of_id is not None
        original = session.get(Post, copy.duplicate_of_id)
        assert original is not None and original.source_id == a


def test_duplicate_ids_within_one_batch(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        sid = _source(session)
        res = store_posts(sid, [_raw(1), _raw(1, text="newer")], session=session, now=NOW, from_backfill=False)
        assert len(res.new) == 1 and res.new[0].text == "newer"


def test_classifications_replace_previous_tags(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        sid = _source(session)
        post_id = store_posts(sid, [_raw(1)], session=session, now=NOW, from_backfill=False).new[0].id
        c1 = Classification((FrameScore("denial", 0.9, ("nothing to do",)), FrameScore("victory_claim", 0.6)), "v1")
        save_classifications([(post_id, c1)], session=session, now=NOW)
        save_classifications([(post_id, Classification((FrameScore("denial", 0.8),), "v2"))], session=session, now=NOW)
        frames = post_frames(post_id, session=session)
        assert [(f.frame_id, f.model_version) for f in frames] == [("denial", "v2")]
        assert session.get(Post, post_id).classified_version == "v2"  # type: ignore[union-attr]
        save_classifications([(post_id, Classification((), "v3"))], session=session, now=NOW)
        assert not session.exec(select(PostFrame)).all()


def test_export_rows_carry_frames_in_utc(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        sid = _source(session)
        ids = [
            p.id
            for p in store_posts(sid, [_raw(i) for i in range(5)], session=session, now=NOW, from_backfill=False).new
        ]
        save_classifications([(ids[0], Classification((FrameScore("denial", 0.9),), "v1"))], session=session, now=NOW)
    with session_scope(engine) as session:
        rows = list(iter_export(session=session, batch_size=2))
        assert len(rows) == 5 and rows[0].frames == ["denial"] and rows[1].frames == []
        assert rows[0].published_at is not None and rows[0].published_at.utcoffset() == timedelta(0)
        recent = list(iter_export(session=session, since=NOW - timedelta(minutes=2)))
        assert {r.external_id for r in recent} == {"0", "1", "2"}


def test_sources_sync_add_enable(engine: sa.Engine) -> None:
    specs = [
        SourceSettings(name="feed", kind="rss", url="http://h/f", interval="1m"),
        SourceSettings(name="chan", kind="telegram", channel="@some_channel"),
    ]
    with session_scope(engine) as session:
        sync_sources(specs, session=session, now=NOW, default_interval=timedelta(minutes=10))
        with pytest.raises(SourceError, match="already exists"):
            add_source(specs[0], session=session, now=NOW)
        with pytest.raises(SourceError, match="no source named"):
            set_source_enabled("nope", True, session=session, now=NOW)
    with Session(engine) as session:
        rows = {s.name: s for s in session.exec(select(Source))}
        assert rows["feed"].interval_seconds == 60 and rows["chan"].interval_seconds == 600
        assert rows["chan"].channel == "some_channel"
    # Changing the config updates the row; the rows are not duplicated.
    with session_scope(engine) as session:
        sync_sources(
            [replace_spec(specs[0], interval="2m")], session=session, now=NOW, default_interval=timedelta(minutes=10)
        )
    with Session(engine) as session:
        assert session.exec(select(Source).where(Source.name == "feed")).one().interval_seconds == 120


def replace_spec(spec: SourceSettings, **changes: object) -> SourceSettings:
    return SourceSettings(**(spec.model_dump() | changes))


def test_leases_are_exclusive_and_expire(engine: sa.Engine) -> None:
    lease = timedelta(minutes=5)
    with session_scope(engine) as session:
        for i in range(4):
            _source(session, f"s{i}")
    with session_scope(engine) as session:
        a = claim_due_sources(session=session, now=NOW, owner="A", lease=lease, limit=3)
    with session_scope(engine) as session:
        b = claim_due_sources(session=session, now=NOW, owner="B", lease=lease, limit=3)
    assert len(a) == 3 and len(b) == 1 and not {s.id for s in a} & {s.id for s in b}
    # A dies; after the lease expires B takes A's sources over.
    with session_scope(engine) as session:
        later = claim_due_sources(
            session=session, now=NOW + lease + timedelta(seconds=1), owner="B", lease=lease, limit=10
        )
    assert {s.id for s in later} == {s.id for s in a} | {s.id for s in b}
    # A comes back late: its result must not overwrite B's lease.
    with session_scope(engine) as session:
        assert not record_success(
            a[0].id, session=session, now=NOW, owner="A", etag="x", last_modified=None, cursor=None, got_posts=False
        )
        assert record_success(
            a[0].id, session=session, now=NOW, owner="B", etag="x", last_modified=None, cursor="42", got_posts=True
        )
        src = session.get(Source, a[0].id)
        assert src is not None and src.cursor == "42" and src.backfilled and src.lease_owner is None
        assert src.next_poll_at == NOW + timedelta(seconds=src.interval_seconds)


def test_failure_recording_disables_with_reason(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        sid = _source(session)
        claim_due_sources(session=session, now=NOW, owner="A", lease=timedelta(minutes=1), limit=1)
        disabled = record_failure(
            sid,
            session=session,
            now=NOW,
            owner="A",
            error="HTTP 404",
            next_poll_at=NOW + timedelta(hours=1),
            disable_reason="gone: HTTP 404",
        )
        assert disabled is not None and disabled.disabled_reason == "gone: HTTP 404"
    with session_scope(engine) as session:
        src = session.get(Source, sid)
        assert src is not None and not src.enabled and src.consecutive_failures == 1
        assert (
            claim_due_sources(
                session=session, now=NOW + timedelta(days=1), owner="A", lease=timedelta(minutes=1), limit=5
            )
            == []
        )
        set_source_enabled(src.name, True, session=session, now=NOW)
        assert src.enabled and src.disabled_reason is None and src.consecutive_failures == 0


def test_naive_datetimes_are_refused(sqlite_engine: sa.Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"), session_scope(sqlite_engine) as session:
        sid = _source(session)
        store_posts(
            sid, [replace(_raw(1), published_at=datetime(2023, 1, 1))], session=session, now=NOW, from_backfill=False
        )


def test_every_insert_path_keeps_the_text_index_exact(engine: sa.Engine) -> None:
    """Bulk inserts (store_posts), ORM inserts, edits and conflicting ids all reach the text index. On
    SQLite, FTS5's own integrity check compares the index with the stored texts, so a post indexed
    twice, missed or left stale fails it."""
    with session_scope(engine) as session:
        sid = _source(session)
        store_posts(sid, [_raw(1, "alpha quokka"), _raw(2, "beta")], session=session, now=NOW, from_backfill=True)
        store_posts(sid, [_raw(2, "beta"), _raw(3, "gamma quokka")], session=session, now=NOW, from_backfill=False)
    with session_scope(engine) as session:
        session.add(Post(source_id=sid, external_id="orm", title="", text="delta quokka", language="en"))
        store_posts(sid, [_raw(1, "alpha edited"), _raw(4, "epsilon quokka")], session=session, now=NOW,
                    from_backfill=False)  # fmt: skip
    with session_scope(engine) as session:

        def found(query: str) -> list[str]:
            hits = search_posts(query, session=session, now=NOW, limit=10).hits
            return sorted(session.get_one(Post, hit.post_id).text for hit in hits)

        assert found("quokka") == ["delta quokka", "epsilon quokka", "gamma quokka"]
        assert found("alpha") == found("edited") == ["alpha edited"]
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("INSERT INTO post_fts (post_fts, rank) VALUES ('integrity-check', 1)")


def test_read_scope_refuses_writes_keeps_rows_and_leaves_the_connection_writable(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        sid = _source(session)
    with read_scope(engine) as session:
        source = session.get_one(Source, sid)
    assert source.name == "wire"  # still loaded after the scope: no DetachedInstanceError
    with pytest.raises(sa.exc.DBAPIError, match=r"(?i)read.?only"), read_scope(engine) as session:
        session.execute(sa.update(Source).values(interval_seconds=1))
    with session_scope(engine) as session:  # the same pooled connection writes again
        session.execute(sa.update(Source).values(interval_seconds=7))
    with read_scope(engine) as session:
        assert session.get_one(Source, sid).interval_seconds == 7


def test_a_reader_neither_waits_for_nor_blocks_the_sqlite_writer(sqlite_engine: sa.Engine) -> None:
    """Bot and CLI reads run in read_scope: with a write transaction open (a backfill being stored),
    they read the last committed state at once, and the writer commits while a reader is open."""
    with session_scope(sqlite_engine) as session:
        sid = _source(session)
    started = time.perf_counter()
    with session_scope(sqlite_engine) as writer:
        store_posts(sid, [_raw(1)], session=writer, now=NOW, from_backfill=False)
        with read_scope(sqlite_engine) as reader:
            assert reader.execute(sa.select(sa.func.count()).select_from(Post)).scalar_one() == 0
    with read_scope(sqlite_engine) as reader:
        assert reader.execute(sa.select(sa.func.count()).select_from(Post)).scalar_one() == 1
        with session_scope(sqlite_engine) as writer:
            store_posts(sid, [_raw(2)], session=writer, now=NOW, from_backfill=False)
    assert time.perf_counter() - started < 5  # the busy timeout is 30 s: nothing waited for a lock


def test_oversized_remote_values_cost_the_excess_not_the_poll(engine: sa.Engine) -> None:
    """A 3 MB text of distinct words and an 8,000-character URL without trackers to strip: on PostgreSQL
    the first overflowed the full-text vector (1 MB) and the second the URL index's row size (2,704
    bytes), failing the source's whole poll, every poll. Now both posts are stored: the text cut at
    MAX_TEXT_CHARS and still searchable, the long URL kept but not used to link copies."""
    import random
    import string

    from ingest.types import MAX_TEXT_CHARS
    from storage.posts import MAX_LINKED_URL_BYTES

    rnd = random.Random(5)
    words = ["".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(5, 11))) for _ in range(300_000)]
    huge = replace(_raw(1), text="zyzzyvafirst " + " ".join(words))
    long_url = "https://example.org/a?" + "".join(rnd.choices(string.ascii_letters + string.digits, k=8000))
    linked = replace(_raw(2), url=long_url)
    assert len(huge.text) == MAX_TEXT_CHARS and huge.text.endswith("…") and len(long_url) > MAX_LINKED_URL_BYTES
    with session_scope(engine) as session:
        sid = _source(session)
        result = store_posts(sid, [huge, linked], session=session, now=NOW, from_backfill=True)
    assert len(result.new) == 2
    with Session(engine) as session:
        stored = {p.external_id: p for p in session.exec(select(Post)).all()}
        assert stored[huge.external_id].text == huge.text
        assert stored[linked.external_id].url == long_url and stored[linked.external_id].canonical_url is None
        assert [h.post_id for h in search_posts("zyzzyvafirst", session=session, now=NOW).hits] == [
            stored[huge.external_id].id
        ]


def test_a_long_non_ascii_url_is_measured_in_bytes(engine: sa.Engine) -> None:
    """Canonical URLs keep a query's non-ASCII text as it is: 1,900 ideographs are 5,700 bytes, over the
    B-tree's 2,704-byte row limit though under 2,000 characters, and failed the poll on PostgreSQL."""
    import random

    from ingest.normalize import canonical_url
    from storage.posts import MAX_LINKED_URL_BYTES

    rnd = random.Random(7)  # random ideographs: PostgreSQL compresses index rows, so repeated text would fit
    url = "https://example.org/search?q=" + "".join(chr(rnd.randrange(0x4E00, 0x9FFF)) for _ in range(1_900))
    canonical = canonical_url(url)
    assert canonical is not None and len(canonical) < MAX_LINKED_URL_BYTES < len(canonical.encode())
    with session_scope(engine) as session:
        sid = _source(session)
        result = store_posts(sid, [replace(_raw(1), url=url)], session=session, now=NOW, from_backfill=True)
    assert len(result.new) == 1
    with Session(engine) as session:
        (post,) = session.exec(select(Post)).all()
        assert post.url == url and post.canonical_url is None


def test_view_counts_past_the_column_range_are_stored(engine: sa.Engine) -> None:
    """A channel page claiming "3B" or 10**21 views (parse_views reads both) failed the whole poll:
    PostgreSQL's INTEGER stops at 2,147,483,647 and SQLite's at 2**63 - 1. Counts past the column's
    range are stored as that maximum, not as an error."""
    from ingest.normalize import parse_views
    from storage.posts import MAX_VIEWS

    counts = [parse_views("3B"), parse_views("1,000,000,000,000,000,000,000"), parse_views("15.3K")]
    assert counts[0] == 3_000_000_000 and counts[1] is not None and counts[1] > 2**63
    posts = [replace(_raw(i), views=v) for i, v in enumerate(counts, start=1)]
    with session_scope(engine) as session:
        sid = _source(session)
        assert len(store_posts(sid, posts, session=session, now=NOW, from_backfill=True).new) == 3
        # the next poll sees the counters grow (unchanged posts) or the text edited: same bound
        grown = [replace(posts[0], views=10**22), replace(posts[2], views=10**22, text="Edited body")]
        again = store_posts(sid, grown, session=session, now=NOW, from_backfill=False)
        assert (again.unchanged, len(again.updated)) == (1, 1)
    with Session(engine) as session:
        stored = {p.external_id: p.views for p in session.exec(select(Post)).all()}
    assert stored == {"1": MAX_VIEWS, "2": MAX_VIEWS, "3": MAX_VIEWS}


def test_store_posts_round_trips_every_field(engine: sa.Engine) -> None:
    """The bulk insert (an unnest of arrays on PostgreSQL) stores each value as the ORM would read it."""
    full = replace(_raw(1), views=15300, forwarded_from="Baza", link_title="Preview", media=("photo", "video"))
    bare = replace(_raw(2), url=None, published_at=None, language=None)
    with session_scope(engine) as session:
        sid = _source(session)
        store_posts(sid, [full, bare], session=session, now=NOW, from_backfill=True)
    with Session(engine) as session:
        first, second = session.exec(select(Post).order_by(Post.external_id)).all()
    assert (first.views, first.forwarded_from, first.link_title) == (15300, "Baza", "Preview")
    assert (first.media, first.language, first.from_backfill) == (["photo", "video"], "en", True)
    assert (first.published_at, first.fetched_at) == (full.published_at, NOW)
    assert (second.url, second.published_at, second.language, second.media) == (None, None, None, [])
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive"), session_scope(engine) as session:
        store_posts(sid, [replace(_raw(3), published_at=datetime(2023, 5, 1))], session=session, now=NOW,
                    from_backfill=False)  # fmt: skip
