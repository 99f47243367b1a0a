"""Corpus loading and validation, the fixed dev split, and text clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.corpus import (
    CorpusError,
    Example,
    data_hash,
    examples_from_labels,
    is_dev,
    load_corpus,
    load_jsonl,
    split_dev,
    text_key,
)
from classifiers.taxonomy import load_taxonomy
from classifiers.text import clean_text, tokens
from classifiers.types import LabeledText

TAXONOMY = load_taxonomy()


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "seed-x.jsonl",
        [
            {"text": "Партизаны подожгли релейный шкаф.", "frames": ["internal_resistance"], "lang": "ru"},
            "",
            {"text": "Talks resumed in Geneva.", "frames": [], "lang": "en"},
        ],
    )
    examples = load_jsonl(path, TAXONOMY)
    assert [e.frames for e in examples] == [("internal_resistance",), ()]
    assert examples[1].origin.endswith("seed-x.jsonl:3")


def test_a_file_saved_with_a_bom_and_crlf_loads(tmp_path: Path) -> None:
    """Held-out sets written on Windows (Notepad, Excel's "UTF-8 CSV/JSON") start with a BOM and use
    CRLF; `framewatch eval --data` refused them as "not valid JSON" at line 1."""
    rows = [{"text": "Вагнер обвинил Минобороны.", "frames": ["military_rift"]}, {"text": "Talks.", "frames": []}]
    path = tmp_path / "held-out.jsonl"
    path.write_bytes(("\ufeff" + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n").encode())
    examples = load_jsonl(path, TAXONOMY)
    assert [(e.text, e.frames) for e in examples] == [(r["text"], tuple(r["frames"])) for r in rows]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": "x y z", "frames": ["moon_landing"]}, r":2: unknown frame id\(s\) 'moon_landing'"),
        ({"text": "   ", "frames": []}, r':2: "text" is missing or empty'),
        ({"frames": ["denial"]}, r':2: "text" is missing or empty'),
        ({"text": "https://t.me/x @somechannel", "frames": []}, ":2: the text has no words"),
        ({"text": "ok text", "frames": "denial"}, r':2: "frames" must be a list'),
        ('{"text": "unterminated', ":2: not valid JSON"),
        ("[1, 2]", ":2: expected a JSON object"),
        pytest.param(
            '{"text": "deep", "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
            r":2: not valid JSON \(nested too deeply\)",
            id="nested-too-deeply",
        ),
    ],
)
def test_bad_lines_are_errors_naming_file_and_line(tmp_path: Path, row: object, message: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [{"text": "Fine line.", "frames": []}, row])
    with pytest.raises(CorpusError, match=message):
        load_jsonl(path, TAXONOMY)


def test_conflicting_duplicates_across_files_are_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "seed-1.jsonl", [{"text": "Kyiv denied it.", "frames": ["denial"]}])
    _write(tmp_path / "seed-2.jsonl", [{"text": "kyiv  DENIED it!", "frames": []}])
    with pytest.raises(CorpusError, match="labelled differently"):
        load_corpus(TAXONOMY, tmp_path)


def test_identical_duplicates_collapse(tmp_path: Path) -> None:
    _write(tmp_path / "seed-1.jsonl", [{"text": "Kyiv denied it.", "frames": ["denial"]}] * 2)
    assert len(load_corpus(TAXONOMY, tmp_path)) == 1


def test_no_corpus_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no seed-"):
        load_corpus(TAXONOMY, tmp_path)


def test_extra_labels_are_validated_by_item() -> None:
    good = examples_from_labels([LabeledText("Kyiv denied it.", ("denial",), 0.3)], TAXONOMY)
    assert good[0].weight == 0.3
    with pytest.raises(CorpusError, match="extra label #2: unknown frame"):
        examples_from_labels([LabeledText("ok", ()), LabeledText("ok", ("nope",))], TAXONOMY)
    with pytest.raises(CorpusError, match="extra label #1: the text is empty"):
        examples_from_labels([LabeledText(" ", ("denial",))], TAXONOMY)
    with pytest.raises(CorpusError, match="weight"):
        examples_from_labels([LabeledText("ok", (), 0.0)], TAXONOMY)


def test_dev_split_is_stable_and_about_a_fifth_of_the_shipped_corpus() -> None:
    corpus = load_corpus(TAXONOMY)
    train, dev = split_dev(corpus)
    assert len(train) + len(dev) == len(corpus)
    assert 0.14 < len(dev) / len(corpus) < 0.26
    # Membership depends on the words only, so re-spacing or re-casing a text does not move it.
    for ex in dev[:20]:
        assert is_dev(ex.text) and is_dev("  " + ex.text.upper() + " ")
    dev_frames = {f for ex in dev for f in ex.frames}
    assert dev_frames == set(TAXONOMY.ids)
    assert any(not ex.frames for ex in dev)


def test_data_hash_depends_on_content_not_order() -> None:
    a = [Example("one text", ("denial",)), Example("another text", ())]
    assert data_hash(a) == data_hash(list(reversed(a)))
    assert data_hash(a) != data_hash([Example("one text", ()), Example("another text", ())])


@pytest.mark.parametrize("run", ["!", ". ", "—", "_"])
def test_clean_text_is_linear_in_runs_of_punctuation(run: str) -> None:
    """Stripping a line's edges with `[\\W_]+$` rescanned a long run of marks inside the line from every
    position: 17 s for 40,000 "!" between two words, minutes for a 250,000-character post."""
    import time

    line = "начало " + run * (30_000 // len(run)) + " конец"
    started = time.perf_counter()
    assert clean_text(line).startswith("начало") and clean_text(line).endswith("конец")
    assert time.perf_counter() - started < 3  # generous: linear takes milliseconds


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab_!. -—«»\u0306й1٣⚡\u200b\t#@'", max_size=20))
def test_line_edges_are_stripped_as_the_regex_did(line: str) -> None:
    import re

    from classifiers.text import _strip_edges

    assert _strip_edges(line) == re.sub(r"^[\W_]+|[\W_]+$", "", line)


def test_clean_text_removes_links_handles_and_signatures() -> None:
    post = (
        "⚡️ Партизаны сожгли релейный шкаф под Омском #РДК\n"
        "Подробнее: https://example.org/a?b=1 и t.me/somechannel/123\n"
        "—\n"
        "👉 Подписаться на канал @somechannel\n"
        "@somechannel"
    )
    cleaned = clean_text(post)
    assert "http" not in cleaned and "t.me" not in cleaned and "@" not in cleaned
    assert "Подписаться" not in cleaned and "somechannel" not in cleaned
    assert "Партизаны сожгли релейный шкаф под Омском РДК" in cleaned
    # A real sentence that merely contains "підписав" (signed) is not a signature line.
    assert clean_text("Зеленський підписав указ.") == "Зеленський підписав указ."


def test_tokens_normalise_case_yo_apostrophes_and_digits() -> None:
    assert tokens("Об’єкт ЁЛКА 155-я бригада") == ["об'єкт", "елка", "0-я", "бригада"]
    assert text_key("Hello,   World!") == text_key("hello world")
