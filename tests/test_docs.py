"""Docs stay honest: every command the README names exists, and every command that exists is named."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _cli_commands() -> set[str]:
    from framewatch import commands  # noqa: F401
    from framewatch.cli import app

    group = typer.main.get_command(app)
    names = set()
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        names |= {f"{name} {sub}" for sub in subs} if subs else {name}
    return names


def test_every_cli_command_is_in_the_readme() -> None:
    for command in sorted(_cli_commands()):
        top, _, sub = command.partition(" ")
        pattern = rf"framewatch {top}( [^`]*\b{sub}\b|)" if sub else rf"framewatch {top}\b"
        assert re.search(pattern, README), f"`framewatch {command}` is not documented in README.md"


def test_readme_names_no_missing_cli_command() -> None:
    known = {c.split(" ")[0] for c in _cli_commands()}
    for top in set(re.findall(r"`framewatch ([a-z]+)", README)):
        assert top in known, f"README mentions `framewatch {top}`, which does not exist"


def test_every_bot_command_is_documented() -> None:
    from telegram.ext import CommandHandler

    from bot import handlers_admin, handlers_analyst, handlers_callbacks, handlers_public

    commands = set()
    for module in (handlers_public, handlers_analyst, handlers_admin, handlers_callbacks):
        for handler in module.handlers():
            if isinstance(handler, CommandHandler):
                commands |= set(handler.commands)
    assert commands >= {"start", "help", "subscribe", "frames", "search", "label", "retrain", "rollback"}
    bot_doc = (ROOT / "docs" / "bot.md").read_text(encoding="utf-8")
    for command in sorted(commands):
        assert f"/{command}" in README, f"/{command} missing from README"
        assert f"/{command}" in bot_doc, f"/{command} missing from docs/bot.md"


def test_quick_start_matches_ci() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = 'pip install -e ".[dev]" && python -m pytest'
    assert test_command in README and test_command in ci
    assert "pip install -e . && framewatch demo" in README


def test_every_test_named_in_reliability_md_exists() -> None:
    """docs/reliability.md maps each promise to its tests; a renamed or deleted test must not leave the
    promise pointing at nothing."""
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", doc))
    assert len(named) > 20  # the pattern still finds the references
    missing = []
    for module, test in sorted(named):
        path = ROOT / "tests" / module
        if not path.exists():
            missing.append(module)
        elif test and not re.search(rf"^(?:async )?def {test}\b", path.read_text(encoding="utf-8"), re.M):
            missing.append(f"{module}::{test}")
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
