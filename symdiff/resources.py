"""The one module that knows where the grammar and the templates live.

In a wheel they are package data (symdiff/grammars, symdiff/templates); in a source checkout they
are the top-level grammars/ and templates/ folders beside the package.
"""

from __future__ import annotations

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
