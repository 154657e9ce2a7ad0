"""Size limits: inputs beyond them fail fast with a LimitError instead of exhausting memory or time.

Pass a Limits to compile_grad / gradient_source / verify (`limits=Limits(max_chars=...)`) to change them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_chars: int = 5_000_000  # characters of expression text (~1 GB of memory at the limit)
    max_entries: int = 2_000_000  # distinct operations in the Wengert list
    # where() (min, max) inside where(): each entry records its enclosing branches, so the work grows
    # with the square of the depth (1,000 deep: a few seconds; 2,000: four times as long)
    max_branch_depth: int = 1_000
    verify_max_entries: int = 20_000  # SymPy's proof slows down sharply beyond this
    # SymPy recurses on nesting; Python's stack ends near 1,000 frames. A chain of + and - (or of *
    # and /) is one flat Add (Mul) for SymPy, one level however long.
    verify_max_depth: int = 150


DEFAULT_LIMITS = Limits()
