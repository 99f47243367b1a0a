"""Make installed packages look absent to this process (bench/memory.py's production-install mode).

Kept free of imports beyond the standard library so that a baseline child can use it without loading
anything it measures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROJECT = frozenset({"bench", "bot", "classifiers", "framewatch", "ingest", "storage", "tests"})


def runtime_only_modules(project: frozenset[str] = PROJECT) -> set[str]:
    """Top-level modules installed here that a plain `pip install framewatch` would not bring.

    This machine also has the dev tools (pytest, hypothesis, …) and unrelated packages (trio), and some
    dependencies import whatever they find (skops → sklearn.utils._testing → pytest; httpcore → trio);
    hiding them gives the memory of a production install without building a second environment.
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [("framewatch", frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        wanted.add(canonicalize_name(name))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in wanted for d in dists) and module not in project
    }


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
