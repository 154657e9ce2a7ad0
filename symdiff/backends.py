"""Backends other than plain Python: compile_backend(name, programs, simplified) -> callable."""

from __future__ import annotations

from .errors import SymdiffError


def compile_backend(name: str, programs, simplified: bool = True):
    raise SymdiffError(f"unknown backend {name!r}; choose python")
