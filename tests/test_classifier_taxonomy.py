"""Taxonomy file loading, validation and hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.taxonomy import Taxonomy, TaxonomyError, load_taxonomy, parse_taxonomy

ISSUE_FRAME_IDS = (
    "internal_resistance",
    "military_rift",
    "foreign_sabotage",
    "victory_claim",
    "denial",
    "regime_instability",
    "western_proxy",
    "civilian_harm",
    "battlefield_momentum",
)

CUSTOM = """
[[frames]]
id = "criticism"
name = "Criticism of the authorities"
definition = "A negative evaluation of the state."
[frames.cues]
ru = ["позор", "воруют"]

[[frames]]
id = "praise"
name = "Praise"
"""


def test_shipped_taxonomy_has_the_public_frame_ids_with_cues_in_three_languages() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.ids == ISSUE_FRAME_IDS
    for frame in taxonomy.frames:
        assert frame.definition, frame.id
        for lang in ("en", "ru", "uk"):
            assert frame.cue_words(lang), (frame.id, lang)


def test_custom_taxonomy_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "frames.toml"
    path.write_text(CUSTOM, encoding="utf-8")
    taxonomy = load_taxonomy(path)
    assert taxonomy.ids == ("criticism", "praise")
    assert taxonomy.get("criticism").cue_words("ru") == ("позор", "воруют")
    assert taxonomy.get("praise").cue_words() == ()
    assert taxonomy.unknown(["praise", "nope"]) == ["nope"]


def test_hash_ignores_formatting_but_not_content() -> None:
    base = parse_taxonomy(CUSTOM)
    reformatted = parse_taxonomy(CUSTOM.replace('ru = ["позор", "воруют"]', 'ru = [ "позор",\n  "воруют" ]'))
    edited = parse_taxonomy(CUSTOM.replace("Praise", "Praise of the army"))
    assert base.hash == reformatted.hash
    assert base.hash != edited.hash
    assert len(base.hash) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CUSTOM + '\n[[frames]]\nid = "praise"\nname = "Again"\n', "defined twice"),
        ('[[frames]]\nid = "Bad Id"\nname = "x"\n', "lower-case"),
        ('[[frames]]\nid = "a"\nname = "x"\ncolour = "red"\n', "unknown key"),
        ('[[frames]]\nid = "a"\nname = "x"\n[frames.cues]\nen = "not a list"\n', "frames[0].cues.en"),
        ("frames = 3", "[[frames]]"),
        ("[[frames", "not valid TOML"),
        ("", "[[frames]]"),
    ],
)
def test_bad_taxonomy_files_are_rejected_by_name(text: str, message: str) -> None:
    with pytest.raises(TaxonomyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_taxonomy(text, source="test.toml")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="cannot read taxonomy file"):
        load_taxonomy(tmp_path / "absent.toml")


def test_taxonomy_from_label_names() -> None:
    taxonomy = Taxonomy.from_ids(["loaded_language", "fud"])
    assert taxonomy.ids == ("loaded_language", "fud")
    with pytest.raises(TaxonomyError):
        Taxonomy.from_ids([])
