"""Classifier commands: `train`, `eval`, `classify`, `model list|use|rollback`.

Importing this module registers them on `framewatch.cli.app` (framewatch/commands.py imports it).
Progress and warnings go to stderr so `--json` output on stdout stays one clean JSON object.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from classifiers.corpus import CorpusError
from classifiers.evaluation import evaluate, format_report, load_eval_data
from classifiers.keywords import KeywordBaseline
from classifiers.registry import (
    RegistryError,
    activate,
    active_version,
    list_versions,
    rollback,
)
from classifiers.service import FrameTagger, load_tagger
from classifiers.taxonomy import TaxonomyError, load_taxonomy
from classifiers.training import TrainingDataError, TrainingReport, train
from classifiers.types import Classification, LabeledText
from framewatch.cli import CliState, app, fail, state
from framewatch.config import Settings

model_app = typer.Typer(help="List, switch and roll back classifier model versions.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _tagger(settings: Settings) -> FrameTagger:
    err = _err()
    try:
        return load_tagger(
            settings.classifier.models_dir,
            now=datetime.now(UTC),
            progress=lambda msg: err.print(escape(msg)),
        )
    except (RegistryError, TrainingDataError, TaxonomyError) as exc:
        fail(str(exc))


# -- train -------------------------------------------------------------------------------------------


def _print_training(report: TrainingReport, console: Console) -> None:
    table = Table(title=f"model {report.version} on the dev split ({report.n_dev} examples)")
    for column in ("frame", "P", "R", "F1", "support", "active F1"):
        table.add_column(column, justify="left" if column == "frame" else "right")
    previous = report.previous_dev.per_frame if report.previous_dev else {}
    for fid, m in report.dev.per_frame.items():
        before = f"{previous[fid].f1:.3f}" if fid in previous else "-"
        table.add_row(fid, f"{m.precision:.3f}", f"{m.recall:.3f}", f"{m.f1:.3f}", str(m.support), before)
    console.print(table)
    dev = report.dev
    line = f"macro-F1 {dev.macro_f1:.3f}  micro-F1 {dev.micro_f1:.3f}  none_fpr {dev.none_fpr:.3f}"
    if report.previous_dev is not None:
        line += f"  (active {report.previous_version}: macro-F1 {report.previous_dev.macro_f1:.3f})"
    console.print(line, highlight=False)
    console.print(f"{report.reason}; trained on {report.n_train} examples in {report.seconds:.0f}s", highlight=False)


def train_command_core(
    settings: Settings,
    extra: list[LabeledText],
    force: bool,
    *,
    now: datetime | None = None,
    console: Console | None = None,
) -> TrainingReport:
    """Train from the shipped corpus plus `extra` labels and print the comparison; exits 2 on bad data."""
    err = _err()
    try:
        report = train(
            load_taxonomy(),
            settings.classifier.models_dir,
            now=now or datetime.now(UTC),
            extra=extra,
            force=force,
            max_drop=settings.classifier.max_activation_drop,
            progress=lambda msg: err.print(escape(msg)),
        )
    except (TrainingDataError, TaxonomyError, RegistryError) as exc:
        fail(f"training failed, the active model is unchanged: {exc}")
    _print_training(report, console or Console(highlight=False))
    return report


def _database_labels(st: CliState) -> list[LabeledText]:
    """Admin labels (weight 1.0) and subscriber feedback (lower weight) stored by the bot."""
    from storage.db import read_scope
    from storage.labels import list_training_labels

    with read_scope(st.engine()) as session:
        rows = list_training_labels(session=session)
    return [LabeledText(text=text, frames=tuple(frames), weight=float(weight)) for text, frames, weight in rows]


@app.command("train")
def train_command(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Activate even if worse than the active model."),
) -> None:
    """Train a classifier on the seed corpus plus database labels; activate it unless it is worse."""
    st = state(ctx)
    report = train_command_core(st.settings, _database_labels(st), force)
    if not report.activated:
        raise typer.Exit(1)


# -- eval --------------------------------------------------------------------------------------------


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="JSONL file of {text, frames} to score against."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Score the active model (and, in text mode, the keyword baseline) on a labelled file."""
    settings = state(ctx).settings
    try:
        taxonomy = load_taxonomy()
        examples = load_eval_data(data, taxonomy)
    except (CorpusError, TaxonomyError) as exc:
        fail(f"--data: {exc}")
    if not examples:
        fail(f"--data: {data} holds no examples")
    tagger = _tagger(settings)
    unknown = taxonomy.unknown(tagger.frame_ids) + [f for f in taxonomy.ids if f not in tagger.frame_ids]
    if unknown:
        _err().print(f"warning: the active model and the taxonomy differ on: {escape(', '.join(unknown))}")

    def model_predict(texts: list[str]) -> list[tuple[str, ...]]:
        return [c.frame_ids for c in tagger.classify(texts, explain=False)]

    report = evaluate(model_predict, examples, taxonomy.ids, model_version=tagger.version)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
        return
    baseline = evaluate(KeywordBaseline(taxonomy).predict_frames, examples, taxonomy.ids, model_version="keywords")
    out = Console(highlight=False)
    out.print(escape(format_report(report, title=f"model {tagger.version} on {data} ({len(examples)} examples)")))
    out.print()
    out.print(escape(format_report(baseline, title="keyword baseline (taxonomy cue words)")))


# -- classify ----------------------------------------------------------------------------------------


def _read_texts(path: Path) -> list[str]:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        fail(f"--file: cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"--file: {path} is not UTF-8 text")
    if path.suffix == ".jsonl":
        texts = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                fail(f"--file: {path}:{number} is not valid JSON")
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                fail(f'--file: {path}:{number} has no "text" string')
            texts.append(item["text"])
        return texts
    return [line for line in raw.splitlines() if line.strip()]


def _as_json(text: str, result: Classification) -> dict[str, object]:
    return {
        "text": text,
        "model_version": result.model_version,
        "frames": [{"id": f.frame_id, "score": f.score, "evidence": list(f.evidence)} for f in result.frames],
    }


@app.command("classify")
def classify_command(
    ctx: typer.Context,
    text: str | None = typer.Argument(None, help="The text to classify."),
    file: Path | None = typer.Option(None, "--file", help="One text per line (or JSONL with a text field)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per text."),
) -> None:
    """Show the frames found in a text, with scores and the words that triggered them."""
    if (text is None) == (file is None):
        fail("give either TEXT or --file FILE")
    texts = _read_texts(file) if file is not None else [text or ""]
    if not any(t.strip() for t in texts):
        fail("TEXT is empty" if file is None else f"--file: {file} holds no text")
    tagger = _tagger(state(ctx).settings)
    results = tagger.classify(texts)
    out = Console(highlight=False)
    for t, result in zip(texts, results, strict=True):
        if as_json:
            typer.echo(json.dumps(_as_json(t, result), ensure_ascii=False))
            continue
        preview = " ".join(t.split())
        out.print(f"[bold]{escape(preview[:100])}{'…' if len(preview) > 100 else ''}[/]")
        if not result.frames:
            out.print("  no frame")
        for f in result.frames:
            out.print(f"  {f.frame_id:<22} {f.score:.2f}  {escape(', '.join(f.evidence))}")
    if not as_json:
        out.print(f"model {tagger.version}")


# -- model list | use | rollback ---------------------------------------------------------------------


@model_app.command("list")
def model_list(ctx: typer.Context) -> None:
    """All saved model versions; the active one is marked."""
    models_dir = state(ctx).settings.classifier.models_dir
    try:
        current = active_version(models_dir)
    except RegistryError as exc:
        fail(str(exc))
    versions = list_versions(models_dir)
    if not versions:
        Console().print(f"no models in {models_dir} yet (run `framewatch train`)")
        return
    out = Console(highlight=False)
    out.print(f"  {'version':<28} {'created (UTC)':<20} {'train':>6} {'dev macro-F1':>12} {'none_fpr':>8}")
    for meta in versions:
        dev = meta.dev_metrics
        marker = "*" if meta.version == current else " "
        out.print(
            f"{marker} {meta.version:<28} {meta.created_at[:19]:<20} {meta.counts.get('train', '?')!s:>6} "
            f"{dev.get('macro_f1', float('nan')):>12.3f} {dev.get('none_fpr', float('nan')):>8.3f}"
        )


@model_app.command("use")
def model_use(ctx: typer.Context, version: str = typer.Argument(..., help="A version from `model list`.")) -> None:
    """Make VERSION the active model (it must load cleanly first)."""
    models_dir = state(ctx).settings.classifier.models_dir
    try:
        previous = activate(models_dir, version)
    except RegistryError as exc:
        fail(f"VERSION: {exc}")
    Console(highlight=False).print(f"active model: {version} (was {previous or 'none'})")


@model_app.command("rollback")
def model_rollback(ctx: typer.Context) -> None:
    """Re-activate the model that was active before the current one."""
    models_dir = state(ctx).settings.classifier.models_dir
    try:
        version = rollback(models_dir)
    except RegistryError as exc:
        fail(str(exc))
    Console(highlight=False).print(f"active model: {version}")
