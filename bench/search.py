"""Search latency: search_posts (FTS5 / tsvector) against a LIKE scan over the same posts, same run.

Builds a synthetic multilingual corpus (EN/RU/UK posts with Zipf-distributed words, named entities and
phrases, frame tags, 60 sources, a year of dates inserted mostly in time order with a backfilled share
out of order), then times a fixed set of /search-style queries several times each and prints p50/p95
per query for both, the LIKE/FTS ratio of medians, and pooled figures.

    python bench/search.py                       # 10k and 100k posts on SQLite
    python bench/search.py --sizes 1000000 --proposed-indexes
    python bench/search.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.db import create_engine, session_scope
from storage.migrate import upgrade
from storage.models import Post, PostFrame, Source
from storage.search import SearchPage, search_posts, search_posts_like


def _words(text: str) -> list[str]:
    return text.split()


NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SOURCES = 60
FRAMES = ("military_rift", "internal_resistance", "western_fatigue", "nazi_ukraine", "nuclear_threat")

EN = _words(
    "the of and to in is that for on with as was by at from it this be are have not has they an war "
    "russia russian ukraine ukrainian army forces said president government military attack troops city "
    "region people killed missile drone strike front line defence minister report officials security "
    "moscow kyiv kremlin border soldiers units reported claims sources support sanctions weapons power "
    "energy grid night shelling village counteroffensive brigade battalion commander general mobilisation "
    "propaganda media channel telegram video statement talks peace west nato europe allies aid"
)
RU = _words(
    "и в не на что с по как это из за к о но от для у же все так его только был уже сказал россия "
    "российский украина армия войска военные удар ракета дрон фронт оборона министр президент город "
    "область люди погибли обстрел ночью село наступление бригада батальон командир генерал мобилизация "
    "пропаганда канал видео заявление переговоры мир запад нато европа помощь санкции оружие граница "
    "кремль москва киев силы источники сообщают подразделения солдаты"
)
UK = _words(
    "і в не на що з по як це із за до про але від для у вже все так його тільки був сказав росія "
    "російський україна армія війська військові удар ракета дрон фронт оборона міністр президент місто "
    "область люди загинули обстріл вночі село наступ бригада батальйон командир генерал мобілізація "
    "пропаганда канал відео заява переговори мир захід нато європа допомога санкції зброя кордон "
    "кремль москва київ сили джерела повідомляють підрозділи солдати"
)
# Injected with fixed probabilities so the queries below hit known shares of the corpus.
ENTITIES = {
    "en": [("wagner", 0.02), ("prigozhin", 0.01), ("air defence", 0.01), ("nebulosity", 0.0005)],
    "ru": [("вагнер", 0.03), ("пригожин", 0.015), ("пво", 0.01), ("туманность", 0.0005)],
    "uk": [("вагнер", 0.02), ("пригожин", 0.01), ("ппо", 0.01), ("туманність", 0.0005)],
}
LANG_WORDS = {"en": EN, "ru": RU, "uk": UK}
SYLLABLES = {
    "en": _words("ba be bi bo bu ka ke ki ko ku ra re ri ro ru sa se si so su ta te ti to tu na ne ni no nu"),
    "ru": _words("ба бе би бо бу ка ке ки ко ку ра ре ри ро ру са се си со су та те ти то ту на не ни но ну"),
    "uk": _words("ба бе бі бо бу ка ке кі ко ку ра ре рі ро ру са се сі со су та те ті то ту на не ні но ну"),
}

QUERIES: list[tuple[str, str, int]] = [
    ("common word, EN", "russia", 0),
    ("common word, RU", "россия", 0),
    ("two words", "army attack", 0),
    ("phrase", '"air defence"', 0),
    ("OR across scripts", "wagner OR вагнер", 0),
    ("word -exclusion", "вагнер -пригожин", 0),
    ("medium word", "пво", 0),
    ("rare word", "туманность", 0),
    ("no match", "zyxwvutsrq", 0),
    ("filter only", "source:src-07", 0),
    ("word + source", "russia source:src-07", 0),
    ("word + lang", "мобилизация lang:ru", 0),
    ("word + since:30d", "вагнер since:30d", 0),
    ("word + frame", "army frame:military_rift", 0),
    ("common word, page 5", "україна", 40),
    ("stop word", "и", 0),
    ("word, lang it lacks", "russia lang:ru", 0),
]


def _vocabulary(rng: random.Random, lang: str, tail: int) -> tuple[list[str], list[float]]:
    syllables = SYLLABLES[lang]
    words = list(LANG_WORDS[lang])
    seen = set(words)
    while len(words) < len(LANG_WORDS[lang]) + tail:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
    return words, list(_cumulative(weights))


def _cumulative(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _sentence(rng: random.Random, vocab: tuple[list[str], list[float]], n: int) -> str:
    words = rng.choices(vocab[0], cum_weights=vocab[1], k=n)
    return " ".join(words).capitalize()


def generate_posts(n: int, seed: int = 7) -> Iterator[tuple[dict[str, object], list[str]]]:
    """(post row, frame ids) in insertion order: mostly chronological, 20% backfilled out of order."""
    rng = random.Random(seed)
    vocab = {lang: _vocabulary(rng, lang, tail=20_000) for lang in LANG_WORDS}
    ages = sorted((rng.random() * 365 * 86400 for _ in range(n)), reverse=True)
    for i in range(n):
        if rng.random() < 0.2:
            ages[i] = rng.random() * 365 * 86400
    for i, age in enumerate(ages):
        lang = rng.choices(("ru", "uk", "en"), weights=(4, 3, 3))[0]
        title = _sentence(rng, vocab[lang], rng.randint(5, 11))
        sentences = [_sentence(rng, vocab[lang], rng.randint(6, 18)) for _ in range(rng.randint(2, 8))]
        for entity, p in ENTITIES[lang]:
            if rng.random() < p:
                sentences.insert(rng.randrange(len(sentences) + 1), f"{entity.title()} {entity}.")
        frames = [f for f in FRAMES if rng.random() < 0.07]
        published = NOW - timedelta(seconds=age)
        row = {
            "source_id": 1 + i % SOURCES,
            "external_id": str(i),
            "url": f"https://example.org/{i}",
            "canonical_url": f"https://example.org/{i}",
            "title": title,
            "text": ". ".join(sentences) + ".",
            "language": lang,
            "published_at": published,
            "fetched_at": published,
            "media": [],
            "content_hash": f"{i:064x}",
            "edited": False,
            "from_backfill": False,
        }
        yield row, frames


# Not in the migrations: what the benchmark can add to show what they would buy (--proposed-indexes).
PROPOSED_INDEXES = (
    "CREATE INDEX ix_post_source_published ON post (source_id, published_at, id)",
    "CREATE INDEX ix_post_language_published ON post (language, published_at, id)",
)


def build_corpus(engine: sa.Engine, n: int, *, proposed_indexes: bool = False) -> float:
    """Insert n posts in one transaction (FTS triggers / generated column fire); returns seconds."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Source.__table__),  # type: ignore[attr-defined]
            [{"name": f"src-{i:02d}", "kind": "rss", "interval_seconds": 600, "enabled": True,
              "fetch_full_text": False, "backfilled": True, "consecutive_failures": 0}
             for i in range(1, SOURCES + 1)],
        )  # fmt: skip
        posts: list[dict[str, object]] = []
        frames: list[dict[str, object]] = []
        for i, (row, tags) in enumerate(generate_posts(n), start=1):
            posts.append(row)
            frames += [{"post_id": i, "frame_id": f, "score": 0.8, "model_version": "bench", "evidence": []}
                       for f in tags]  # fmt: skip
            if len(posts) == 5000:
                _flush(conn, posts, frames)
        _flush(conn, posts, frames)
        for ddl in PROPOSED_INDEXES if proposed_indexes else ():
            conn.exec_driver_sql(ddl)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def _flush(conn: sa.Connection, posts: list[dict[str, object]], frames: list[dict[str, object]]) -> None:
    if posts:
        conn.execute(sa.insert(Post.__table__), posts)  # type: ignore[attr-defined]
    if frames:
        conn.execute(sa.insert(PostFrame.__table__), frames)  # type: ignore[attr-defined]
    posts.clear()
    frames.clear()


Search = Callable[..., SearchPage]


def time_query(engine: sa.Engine, search: Search, query: str, offset: int, repeat: int) -> tuple[list[float], int]:
    with session_scope(engine) as session:
        hits = len(search(query, session=session, now=NOW, offset=offset).hits)  # warm-up
    timings = []
    for _ in range(repeat):
        with session_scope(engine) as session:
            started = time.perf_counter()
            search(query, session=session, now=NOW, offset=offset)
            timings.append((time.perf_counter() - started) * 1000)
    return timings, hits


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def run(engine: sa.Engine, label: str, n: int, args: argparse.Namespace) -> None:
    if n:
        built = build_corpus(engine, n, proposed_indexes=args.proposed_indexes)
        extra = ", with the proposed indexes" if args.proposed_indexes else ""
        print(f"\n## {label}, {n:,} posts{extra} — built in {built:.1f} s ({n / built:,.0f} posts/s incl. index)")
    else:
        with engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(Post)).scalar_one()
        print(f"\n## {label}, {n:,} posts (an existing database)")
    header = f"{'query':<22} {'hits':>4} {'FTS p50':>9} {'FTS p95':>9} {'LIKE p50':>10} {'LIKE p95':>10}"
    print(f"{header} {'ratio':>7}")
    all_fts: list[float] = []
    ratios: list[float] = []
    for name, query, offset in QUERIES:
        fts, hits = time_query(engine, search_posts, query, offset, args.repeat)
        like, _ = time_query(engine, search_posts_like, query, offset, args.like_repeat)
        all_fts += fts
        ratio = statistics.median(like) / statistics.median(fts)
        ratios.append(ratio)
        print(
            f"{name:<22} {hits:>4} {statistics.median(fts):>8.2f}ms {p95(fts):>7.2f}ms "
            f"{statistics.median(like):>8.1f}ms {p95(like):>8.1f}ms {ratio:>6.0f}×"
        )
    geo = math.exp(statistics.fmean(math.log(r) for r in ratios))
    print(
        f"{'all queries':<22} {'':>4} {statistics.median(all_fts):>8.2f}ms {p95(all_fts):>7.2f}ms "
        f"{'':>10} {'':>10} {geo:>6.0f}× (geometric mean; min {min(ratios):.1f}×)"
    )


@contextmanager
def sqlite_engine(directory: Path, n: int) -> Iterator[sa.Engine]:
    path = directory / f"search-{n}.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def postgres_engine(server_url: str) -> Iterator[sa.Engine]:
    """A throwaway database on the given server, dropped afterwards."""
    url = make_url(server_url)
    name = f"framewatch_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = create_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated post counts")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per query for search_posts (≥5)")
    parser.add_argument("--like-repeat", type=int, default=5, help="timed runs per query for the LIKE scan")
    parser.add_argument("--postgres", metavar="URL", help="also run on a throwaway database on this server")
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite (with --postgres)")
    parser.add_argument("--dir", type=Path, help="where the SQLite files go (default: a temp dir)")
    parser.add_argument("--proposed-indexes", action="store_true", help="add PROPOSED_INDEXES before timing")
    parser.add_argument("--existing", metavar="URL", help="only time the queries on a database built earlier")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: expected numbers such as 10000,100000, got {args.sizes!r}")
    if args.repeat < 1 or args.like_repeat < 1 or any(n < 1 for n in sizes):
        parser.error("--sizes, --repeat and --like-repeat must be positive")
    if args.existing:
        engine = create_engine(args.existing)
        run(engine, engine.dialect.name, 0, args)
        engine.dispose()
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in sizes:
            if not args.no_sqlite:
                with sqlite_engine(Path(tmp), n) as engine:
                    run(engine, "SQLite FTS5", n, args)
            if args.postgres:
                with postgres_engine(args.postgres) as engine:
                    run(engine, "PostgreSQL tsvector", n, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
