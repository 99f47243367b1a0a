"""The `framewatch` command. Each command parses its arguments, calls one service function, prints."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape

from classifiers.errors import RegistryError
from classifiers.taxonomy import TaxonomyError
from framewatch.config import ConfigError, Settings, ignored_env_names, load_settings
from storage.db import SchemaError

app = typer.Typer(
    name="framewatch",
    help="Watch news feeds and public Telegram channels for narrative frames.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class CliState:
    """What every command needs: where the config is, loaded once on first use."""

    config_path: Path | None
    console: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except ConfigError as exc:
                fail(str(exc))
            for warning in ignored_env_names(dict(os.environ)):
                self.err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        return self._settings

    def engine(self, *, migrate: bool = True) -> sa.Engine:
        from framewatch.wiring import open_database

        return open_database(self.settings, migrate=migrate)

    def engine_with_sources(self) -> sa.Engine:
        """The engine after the config file's [[sources]] are stored (what `run` and `ingest` do on
        start): the `sources` commands must see, and refuse to re-add, a source only the config names."""
        from framewatch.wiring import sync_configured_sources

        engine = self.engine()
        sync_configured_sources(self.settings, engine)
        return engine


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an operator-facing error (no traceback) and exit; 2 means bad input or configuration."""
    print_error(message)
    raise typer.Exit(code)


def print_error(message: str) -> None:
    # The message quotes user input (a query, a --since value, a file's key): never read it as markup.
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        envvar="FRAMEWATCH_CONFIG",
        help="TOML config file (default ./framewatch.toml if present).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    ctx.obj = CliState(config_path=config)
    from framewatch.logs import setup_logging

    setup_logging("DEBUG" if verbose else None)


def hoist_config(args: Sequence[str]) -> list[str]:
    """`--config PATH` moved in front of the sub-command wherever it was typed (`framewatch ingest --once
    --config fw.toml` is how people write it; click only knows it as an option of the root). Nothing
    after a `--` is touched, and a trailing `--config` without a value is left for click to report."""
    out: list[str] = []
    hoisted: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith("--config="):
            hoisted.append(arg)
        elif arg == "--config" and i + 1 < len(args):
            hoisted.extend(args[i : i + 2])
            i += 1
        else:
            out.append(arg)
        i += 1
    return [*hoisted, *out]


def main() -> None:
    from framewatch import commands  # noqa: F401  (registers the sub-commands on `app`)

    try:
        app(args=hoist_config(sys.argv[1:]))
    except (RegistryError, TaxonomyError) as exc:
        # A refused (tampered), unreadable or missing model, or a broken frames.toml, met by a command that
        # has no handler of its own for it (`run`, `ingest`): say what and what to do, not a traceback.
        print_error(f"{exc} (see `framewatch model list`, then `framewatch model use VERSION` or `framewatch train`)")
        raise SystemExit(2) from None
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        # A database that is down, unreachable or unopenable is an operator's problem, not a bug: one
        # line saying so (the driver's reason never carries the password), not a traceback.
        print_error(f"database unavailable: {database_reason(exc)} (check database.url or FRAMEWATCH_DATABASE_URL)")
        raise SystemExit(1) from None
    except sa.exc.DatabaseError as exc:
        if not _unusable_file(exc):
            raise  # integrity, data or programming errors are bugs: keep their traceback
        print_error(f"database unusable: {database_reason(exc)} (check database.url or FRAMEWATCH_DATABASE_URL)")
        raise SystemExit(1) from None
    except SchemaError as exc:
        print_error(str(exc))
        raise SystemExit(1) from None


def _unusable_file(exc: sa.exc.DatabaseError) -> bool:
    """SQLite's own DatabaseError (not a subclass): "file is not a database", "database disk image is
    malformed": a file that is not, or no longer, a framewatch database. It is left untouched."""
    import sqlite3

    return type(exc.orig) is sqlite3.DatabaseError


def database_reason(exc: sa.exc.DBAPIError) -> str:
    """The driver's own first line ("connection refused", "unable to open database file")."""
    lines = str(exc.orig or exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
