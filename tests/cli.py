"""The real `framewatch` entry point in a child process, as an operator runs it: exit codes, stderr,
and what `main()` does around the typer app (which CliRunner never reaches)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def framewatch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "framewatch", *args]


def run_framewatch(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`env` is added to this process's environment (wide COLUMNS, so messages are not wrapped)."""
    return subprocess.run(
        framewatch_command(*args),
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250", **env},
        cwd=cwd,
        timeout=timeout,
    )
