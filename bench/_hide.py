"""Make installed packages look absent to this process (bench/memory.py's production-install mode).

Kept free of imports beyond the standard library so that a baseline child can use it without loading
anything it measures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


class Hidden:
    """A meta-path finder that makes the named top-level modules look uninstalled."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".", 1)[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden: not a framewatch dependency)")
        return None


def hide_listed(path: Path | str) -> None:
    """Hide the top-level modules named in the JSON list at `path` from every later import."""
    sys.meta_path.insert(0, Hidden(set(json.loads(Path(path).read_text()))))
