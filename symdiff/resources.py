"""The one module that knows where the grammar, the templates and the user's cache live.

In a wheel the grammar and templates are package data (symdiff/grammars, symdiff/templates); in a
source checkout they are the top-level grammars/ and templates/ folders beside the package. The
cache ($SYMDIFF_CACHE, else $XDG_CACHE_HOME/symdiff or ~/.cache/symdiff) holds compiled C
libraries and the parser's tables.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(kind: str) -> Path:
    """The folder holding `kind` ("grammars" or "templates")."""
    for candidate in (_PACKAGE / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"symdiff is installed without its {kind}/ folder")


def grammar_text(name: str) -> str:
    return (resource_dir("grammars") / name).read_text(encoding="utf-8")


def templates_dir() -> Path:
    return resource_dir("templates")


def cache_root() -> Path:
    base = os.environ.get("SYMDIFF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "symdiff"
    )
    return Path(base)


def writable_cache(kind: str) -> Path | None:
    """cache_root()/kind, created if need be; None where it cannot be written (a read-only home)."""
    folder = cache_root() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None
