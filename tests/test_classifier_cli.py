"""The classifier CLI (train core, eval --json contract, classify, model list/use/rollback) and the
quality floor of a model trained on the full shipped corpus, scored on the fixed dev split.

One full training per module run (shared by every test here); each test works on its own copy.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import framewatch.commands_model as commands_model
from classifiers.corpus import load_corpus, split_dev
from classifiers.registry import active_version, list_versions
from classifiers.taxonomy import load_taxonomy
from classifiers.training import TrainingReport
from classifiers.types import LabeledText
from framewatch.cli import app
from framewatch.config import ClassifierSettings, Settings

TAXONOMY = load_taxonomy()
NOW = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
ADMIN_LABEL = LabeledText("Партизаны сожгли релейный шкаф на перегоне под Читой.", ("internal_resistance",), 1.0)


@pytest.fixture(scope="module")
def full_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingReport, str]:
    models_dir = tmp_path_factory.mktemp("models")
    settings = Settings(classifier=ClassifierSettings(models_dir=models_dir))
    console = Console(record=True, width=120)
    report = commands_model.train_command_core(settings, [ADMIN_LABEL], False, now=NOW, console=console)
    return models_dir, report, console.export_text()


@pytest.fixture
def registry(tmp_path: Path, full_model: tuple[Path, TrainingReport, str]) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(full_model[0], copy)
    return copy


def _run(models_dir: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(app, list(args), env={"FRAMEWATCH_CLASSIFIER__MODELS_DIR": str(models_dir)})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _no_stray_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./framewatch.toml from the developer's tree


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_full_model_quality_on_the_dev_split(full_model: tuple[Path, TrainingReport, str]) -> None:
    _, report, printed = full_model
    assert report.activated
    dev = report.dev
    assert dev.n_examples == report.n_dev > 300
    assert dev.macro_f1 >= 0.80, printed
    assert dev.none_fpr <= 0.15, printed
    assert min(m.f1 for m in dev.per_frame.values()) >= 0.65, printed
    assert "macro-F1" in printed and "activated" in printed


def test_eval_json_contract(registry: Path, tmp_path: Path) -> None:
    _, dev = split_dev(load_corpus(TAXONOMY))
    data = _write_jsonl(tmp_path / "dev.jsonl", [{"text": e.text, "frames": list(e.frames)} for e in dev[:120]])
    code, out, err = _run(registry, "eval", "--data", str(data), "--json")
    assert code == 0, err
    payload = json.loads(out)  # exactly one JSON object on stdout
    assert set(payload) == {"macro_f1", "micro_f1", "none_fpr", "per_frame", "model_version"}
    assert payload["model_version"] == active_version(registry)
    assert list(payload["per_frame"]) == list(TAXONOMY.ids)
    for metrics in payload["per_frame"].values():
        assert set(metrics) == {"precision", "recall", "f1", "support"}
        assert 0 <= metrics["precision"] <= 1 and isinstance(metrics["support"], int)
    assert sum(m["support"] for m in payload["per_frame"].values()) == sum(len(e.frames) for e in dev[:120])
    for key in ("macro_f1", "micro_f1", "none_fpr"):
        assert 0 <= payload[key] <= 1


def test_eval_text_mode_shows_the_keyword_baseline(registry: Path, tmp_path: Path) -> None:
    data = _write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "Kyiv said it had nothing to do with the blast and called the claims fake.", "frames": ["denial"]},
            {"text": "Grain exports rose five percent in May, the ministry said.", "frames": []},
        ],
    )
    code, out, _ = _run(registry, "eval", "--data", str(data))
    assert code == 0
    assert "keyword baseline" in out and "none_fpr" in out


def test_eval_rejects_an_unknown_frame_id_by_name(registry: Path, tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "bad.jsonl", [{"text": "Some text.", "frames": ["alien_invasion"]}])
    code, out, err = _run(registry, "eval", "--data", str(data), "--json")
    assert code == 2 and out == ""
    assert "alien_invasion" in err and "bad.jsonl:1" in err
    code, _, err = _run(registry, "eval", "--data", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err


def test_classify_text_and_file(registry: Path, tmp_path: Path) -> None:
    text = "Бойцы Легиона «Свобода России» и РДК заявили, что зашли в Белгородскую область и воюют с режимом Путина."
    code, out, err = _run(registry, "classify", text, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model_version"] == active_version(registry)
    ids = [f["id"] for f in result["frames"]]
    assert "internal_resistance" in ids
    for frame in result["frames"]:
        assert 0 <= frame["score"] <= 1 and all(word in text for word in frame["evidence"])
    posts = tmp_path / "posts.txt"
    posts.write_text(text + "\n\nThe central bank kept its key rate unchanged at 16 percent.\n", encoding="utf-8")
    code, out, _ = _run(registry, "classify", "--file", str(posts))
    assert code == 0 and "internal_resistance" in out and out.count("model ") == 1
    assert _run(registry, "classify")[0] == 2
    assert _run(registry, "classify", "x", "--file", str(posts))[0] == 2
    assert _run(registry, "classify", "--file", str(tmp_path / "nope.txt"))[0] == 2
    # A JSONL file saved with a BOM (Windows tools) is read, not refused as invalid JSON at line 1.
    saved = tmp_path / "posts.jsonl"
    saved.write_bytes(("\ufeff" + json.dumps({"text": text}, ensure_ascii=False) + "\r\n").encode())
    code, out, err = _run(registry, "classify", "--file", str(saved), "--json")
    assert code == 0, err
    assert json.loads(out)["text"] == text


def test_model_list_use_and_rollback(registry: Path, full_model: tuple[Path, TrainingReport, str]) -> None:
    first = full_model[1].version
    # A second version of the same model, registered and activated by hand through the CLI.
    meta = json.loads((registry / f"{first}.json").read_text())
    second = first + "-copy"
    shutil.copy(registry / f"{first}.skops", registry / f"{second}.skops")
    meta["version"] = second
    (registry / f"{second}.json").write_text(json.dumps(meta))
    code, out, _ = _run(registry, "model", "list")
    assert code == 0 and first in out and second[:20] in out
    assert _run(registry, "model", "use", second)[0] == 0
    assert active_version(registry) == second
    code, _, err = _run(registry, "model", "use", "20990101T000000Z-missing")
    assert code == 2 and "not found" in err
    assert active_version(registry) == second
    code, out, _ = _run(registry, "model", "rollback")
    assert code == 0 and first in out and active_version(registry) == first
    code, _, err = _run(registry, "model", "rollback")
    assert code == 2 and "no earlier model version" in err
    assert len(list_versions(registry)) == 2


def test_train_core_refuses_bad_labels_and_keeps_the_active_model(registry: Path) -> None:
    settings = Settings(classifier=ClassifierSettings(models_dir=registry))
    before = active_version(registry)
    with pytest.raises(typer.Exit) as exc:
        commands_model.train_command_core(settings, [LabeledText("text", ("no_such_frame",))], False, now=NOW)
    assert exc.value.exit_code == 2
    assert active_version(registry) == before


def test_ingest_and_run_refuse_a_tampered_model_in_one_line(tmp_path: Path, registry: Path) -> None:
    """The commands that load the model without handling registry errors themselves (`ingest`, `run`) end
    with the refusal and what to do next, exit 2, through the real entry point: not a traceback."""
    from tests.cli import run_framewatch

    version = active_version(registry)
    model = registry / f"{version}.skops"
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model.write_bytes(bytes(blob))
    env = {
        "FRAMEWATCH_CLASSIFIER__MODELS_DIR": str(registry),
        "FRAMEWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'fw.db'}",
    }
    for command in (["ingest", "--once"], ["run"]):
        done = run_framewatch(*command, env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "does not match the sha256" in done.stderr and "framewatch model use VERSION" in done.stderr
        assert "Traceback" not in done.stderr
    assert model.read_bytes() == bytes(blob), "a refused model is left for the operator, not replaced"
