"""The search query language: what each form means, and a clear QueryError for everything malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.query import MAX_QUERY_CHARS, MAX_TERMS, ParsedQuery, QueryError, parse_query

NOW = datetime(2023, 5, 22, 12, 30, tzinfo=UTC)


def parse(text: str) -> ParsedQuery:
    return parse_query(text, now=NOW)


def clauses(q: ParsedQuery) -> list[list[tuple[str, bool]]]:
    return [[(t.text, t.phrase) for t in c.terms] for c in q.clauses]


def test_words_are_anded_phrases_kept_whole_and_exclusions_separate() -> None:
    q = parse('wagner "private military company" -moscow -"red square"')
    assert clauses(q) == [[("wagner", False)], [("private military company", True)]]
    assert [(t.text, t.phrase) for t in q.excluded] == [("moscow", False), ("red square", True)]
    assert q.clauses[1].terms[0].tokens == ("private", "military", "company")


def test_or_binds_tighter_than_the_implicit_and() -> None:
    q = parse("wagner OR вагнер OR вагнера mutiny")
    assert clauses(q) == [[("wagner", False), ("вагнер", False), ("вагнера", False)], [("mutiny", False)]]


def test_and_is_an_optional_connective() -> None:
    assert parse("wagner AND mutiny") == parse("wagner mutiny")
    assert parse("wagner OR вагнер AND mutiny") == parse("wagner OR вагнер mutiny")


def test_lower_case_or_and_not_are_ordinary_words() -> None:
    q = parse("war or peace NOT here")
    assert [c.terms[0].tokens for c in q.clauses] == [("war",), ("or",), ("peace",), ("not",), ("here",)]


def test_parentheses_are_ordinary_characters_so_grouped_or_reads_naturally() -> None:
    q = parse("(wagner OR вагнер) mutiny")
    assert [[t.tokens for t in c.terms] for c in q.clauses] == [[("wagner",), ("вагнер",)], [("mutiny",)]]
    assert [[t.tokens for t in c.terms] for c in parse("(a OR b) c").clauses] == [[("a",), ("b",)], [("c",)]]


def test_fts_metacharacters_are_just_text() -> None:
    q = parse("NEAR(wagner prigozhin) ^title:wagner* a+b {x} 'y' ; -- %")
    tokens = [t.tokens for c in q.clauses for t in c.terms]
    assert tokens == [("near", "wagner"), ("prigozhin",), ("title", "wagner"), ("a", "b"), ("x",), ("y",)]
    assert q.excluded == ()  # "--" is an exclusion of "-", which has nothing searchable, so it is dropped


def test_filters() -> None:
    q = parse('x source:wire-world source:"Baza Channel" frame:Military_Rift frame:nazi lang:RU lang:uk')
    assert q.sources == ("wire-world", "Baza Channel")
    assert q.frames == ("military_rift", "nazi")
    assert q.languages == ("ru", "uk")
    assert q.since is None and q.until is None


def test_a_query_of_filters_alone_is_valid() -> None:
    q = parse("source:baza")
    assert not q.has_text and q.sources == ("baza",)
    assert parse("source:baza -wagner").excluded[0].text == "wagner"


@pytest.mark.parametrize(
    ("text", "since", "until"),
    [
        ("since:7d", NOW - timedelta(days=7), None),
        ("since:24h", NOW - timedelta(hours=24), None),
        ("since:30m", NOW - timedelta(minutes=30), None),
        ("since:2w", NOW - timedelta(weeks=2), None),
        ("since:2023-05-01", datetime(2023, 5, 1, tzinfo=UTC), None),
        ("until:2023-05-10", None, datetime(2023, 5, 11, tzinfo=UTC)),  # the whole day is included
        ("since:2023-05-01T12:00Z until:2023-05-02T08:00+03:00", datetime(2023, 5, 1, 12, tzinfo=UTC),
         datetime(2023, 5, 2, 5, tzinfo=UTC)),
        ("since:2023-05-01T12:00", datetime(2023, 5, 1, 12, tzinfo=UTC), None),  # naive means UTC
        ("until:1d", None, NOW - timedelta(days=1)),
    ],
)  # fmt: skip
def test_time_filters(text: str, since: datetime | None, until: datetime | None) -> None:
    q = parse(f"x {text}")
    assert (q.since, q.until) == (since, until)


def test_relative_times_count_back_from_the_given_now() -> None:
    later = NOW + timedelta(days=3)
    assert parse_query("x since:1d", now=later).since == later - timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('"(unbalanced AND', "Unbalanced quote"),
        ('wagner "group', "position 8"),
        ('-"x', "Unbalanced quote"),
        ('source:"wire', "Unbalanced quote"),
        ("wagner OR", "OR at the end"),
        ("OR wagner", "OR at position 1"),
        ("wagner OR OR вагнер", "OR at position 11"),
        ("-moscow OR wagner", "OR at position 9"),
        ("wagner OR -moscow", "cannot join an exclusion"),
        ("wagner OR source:baza", "Repeat a filter"),
        ("wagner AND", "AND at the end"),
        ("AND wagner", "AND at position 1"),
        ("wagner OR AND x", "AND at position 11"),
        ("", "empty"),
        ("   \t\n ", "empty"),
        ("-wagner -moscow", "exclusions alone"),
        ("*** ^ ;", "no letters or digits"),
        ("🔥🔥", "no letters or digits"),
        ("x since:yesterday", "since:yesterday is not a time"),
        ("x since:2023-13-45", "since:2023-13-45 is not a time"),
        ("x until:2023-02-30", "until:2023-02-30 is not a time"),
        ("x since:7y", "since:7y is not a time"),
        ("x since:-7d", "since:-7d is not a time"),
        ("x since:999999d", "outside the calendar"),
        ("x until:9999-12-31", "outside the calendar"),
        ("x since:1d since:2d", "given twice"),
        ("x since:1d until:2d", "is not before"),
        ("x since:2023-05-02 until:2023-05-01", "is not before"),
        ("x lang:english", "lang:english is not a language code"),
        ("x lang:r", "not a language code"),
        ("x frame:bad-id!", "frame:bad-id! is not a frame id"),
        ("x source:", "source: needs a value"),
        ('x source:""', "source: needs a value"),
        ("x frame:", "frame: needs a value"),
        ("x -source:baza", "Filters cannot be excluded"),
        ("x " + "y" * MAX_QUERY_CHARS, "too long"),
        (" ".join(f"w{i}" for i in range(MAX_TERMS + 1)), "Too many search terms"),
    ],
)
def test_malformed_queries_get_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text)
    assert fragment in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_filter_keys_are_case_insensitive_and_unknown_keys_are_words() -> None:
    q = parse("Source:baza LANG:en http://example.org/x 10:30")
    assert q.sources == ("baza",) and q.languages == ("en",)
    assert [t.tokens for c in q.clauses for t in c.terms] == [("http", "example", "org", "x"), ("10", "30")]


def test_unicode_is_normalised_like_stored_text() -> None:
    nfd = "бои\u0306"  # й written as и + combining breve
    assert parse(nfd).clauses[0].terms[0].tokens == ("бой",)
    assert parse("Ваг\u200bнер").clauses[0].terms[0].tokens == ("вагнер",)  # zero-width space vanishes
    assert parse("\u202eвагнер").clauses[0].terms[0].tokens == ("вагнер",)  # bidi override vanishes
    assert parse("wagner\x00вагнер").clauses[1].terms[0].tokens == ("вагнер",)  # NUL separates
    assert parse("ВАГНЕР").clauses[0].terms[0].tokens == ("вагнер",)


def test_lone_surrogates_do_not_crash() -> None:
    q = parse("wagner\udcff")
    assert q.clauses[0].terms[0].tokens == ("wagner",)


def test_duplicates_collapse() -> None:
    q = parse("wagner wagner source:a source:a frame:x frame:x -m -m")
    assert len(q.clauses) == 1 and q.sources == ("a",) and q.frames == ("x",) and len(q.excluded) == 1


def test_render_is_canonical() -> None:
    q = parse('wagner OR "вагнер группа" mutiny -moscow source:"Baza Channel" lang:uk since:7d until:2023-05-21')
    assert q.render() == (
        'wagner OR "вагнер группа" mutiny -moscow source:"Baza Channel" lang:uk '
        "since:2023-05-15T12:30:00Z until:2023-05-22T00:00:00Z"
    )
    assert parse(q.render()) == q


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_query("x", now=datetime(2023, 5, 1))


# -- properties -------------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    ['"', "-", "OR", "AND", "(", ")", "*", "^", ":", "source:", "frame:", "lang:", "since:", "until:",
     "7d", "2023-05-01", "wagner", "Вагнер", "ї", " ", "  ", "\t", "\x00", "\u200b", "NEAR", "'", ";", "%"]
)  # fmt: skip
_QUERY_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=60).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(_QUERY_TEXT)
def test_any_input_parses_or_raises_query_error(text: str) -> None:
    try:
        q = parse(text)
    except QueryError as error:
        assert str(error)
        return
    assert q.has_text or q.sources or q.frames or q.languages or q.since or q.until
    assert all(t.tokens for c in q.clauses for t in c.terms)
    assert parse(q.render()) == q  # the canonical form means the same thing


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(['"', "a OR ", "-", "(", "x ", "source:a ", "\u0301", "ж", "OR "]), st.integers(1, 5_000))
def test_any_length_is_refused_up_front_or_parsed(piece: str, repeat: int) -> None:
    """Time is bounded by construction: over MAX_QUERY_CHARS nothing is scanned, below it the lexer is
    linear. (No wall-clock assertion here; pytest-timeout is the backstop.)"""
    text = piece * repeat
    try:
        q = parse(text)
    except QueryError as error:
        if len(text) > MAX_QUERY_CHARS:
            assert "too long" in str(error)
        return
    assert len(text) <= MAX_QUERY_CHARS
    assert parse(q.render()) == q
