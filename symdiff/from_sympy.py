"""convert: a SymPy expression -> (source text, Expr), without recursion and without parsing text."""

from __future__ import annotations

from .errors import SymdiffError


def convert(expr):
    raise SymdiffError(f"expected the expression as a string, got {type(expr).__name__}")
