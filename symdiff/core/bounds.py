"""bounds: which elements an array program reads, as conditions on the arrays' lengths.

A read x[2*i + 1] in `for i in range(start, stop)` touches x at indices from 2*start + 1 to
2*(stop - 1) + 1; with indices of enclosing loops in the bounds, the extremes are found loop by loop,
innermost first (exact for rectangular ranges, a safe over-estimate for triangular ones). Every
backend checks these before running a loop, so that a read out of bounds raises instead of wrapping
to x[-1] (Python) or reading past the end (C).
"""

from __future__ import annotations

from dataclasses import dataclass

from .expr import Affine, Length, symbol_key
from .printing import affine_text
from .tape import READ, Tape


@dataclass(frozen=True, slots=True)
class Bound:
    """Entry `entry` reads `array` along dimension `dim` at indices from `lowest` to `highest` (Affines
    over lengths only) whenever every range in `ranges` ((start, stop) pairs over lengths) is non-empty."""

    entry: int
    array: str
    dim: int
    lowest: Affine
    highest: Affine
    ranges: tuple[tuple[Affine, Affine], ...]
    text: str  # the read as written, x[i + 1], with its loops: "for i in range(len(x) - 1)"


def bounds(tape: Tape) -> tuple[Bound, ...]:
    """One Bound per dimension of every array element the tape reads (entries in order)."""
    found = []
    for index, instr in enumerate(tape.instrs):
        if instr.op != READ:
            continue
        loops = [tape.loop_of(entry) for entry, _ in tape.path(index)]
        if tape.rows is not None:  # a vector output's index runs around everything
            loops.insert(0, tape.rows)
        ranges = []
        for depth, loop in enumerate(loops):
            outer = loops[:depth]
            ranges.append((_extreme(loop.start, outer, lowest=True), _extreme(add(loop.stop, -1), outer, lowest=False)))
        indices, _ = instr.detail
        shown = instr.name + "[" + ", ".join(affine_text(i, _symbol_text) for i in indices) + "]"
        clauses = " ".join(f"for {loop.index} in range({range_text(loop.start, loop.stop)})" for loop in loops)
        text = f"{shown} {clauses}" if clauses else shown
        nonempty = tuple((start, add(stop, 1)) for start, stop in ranges)
        for dim, affine in enumerate(indices):
            lowest = _extreme(affine, loops, lowest=True)
            highest = _extreme(affine, loops, lowest=False)
            found.append(Bound(index, instr.name, dim, lowest, highest, nonempty, text))
    return tuple(found)


def _extreme(affine: Affine, loops: list, lowest: bool) -> Affine:
    """The least (or greatest) value of `affine` as the indices of `loops` run over their ranges."""
    for loop in reversed(loops):
        coefficient = dict(affine.terms).get(loop.index)
        if coefficient is None:
            continue
        rest = Affine(affine.constant, tuple((s, c) for s, c in affine.terms if s != loop.index))
        # The index at its start gives the least value when its coefficient is positive.
        at_start = (coefficient > 0) == lowest
        end = loop.start if at_start else add(loop.stop, -1)
        affine = combine(rest, end, coefficient)
    return affine


def add(affine: Affine, constant: int) -> Affine:
    return Affine(affine.constant + constant, affine.terms)


def combine(a: Affine, b: Affine, scale: int = 1) -> Affine:
    """a + scale * b."""
    terms = dict(a.terms)
    for symbol, coefficient in b.terms:
        terms[symbol] = terms.get(symbol, 0) + scale * coefficient
    kept = tuple(sorted(((s, c) for s, c in terms.items() if c), key=lambda item: symbol_key(item[0])))
    return Affine(a.constant + scale * b.constant, kept)


def evaluate(affine: Affine, lengths: dict[tuple[str, int], int], indices: dict[str, int] | None = None) -> int:
    """The value of `affine` given the arrays' lengths ((array, dim) -> length) and loop indices."""
    total = affine.constant
    for symbol, coefficient in affine.terms:
        total += coefficient * (lengths[(symbol.array, symbol.dim)] if isinstance(symbol, Length) else indices[symbol])
    return total


def violation(bound: Bound, lengths: dict[tuple[str, int], int]) -> str | None:
    """Why the arrays' lengths make `bound`'s read go out of bounds, or None when it stays in."""
    if any(evaluate(start, lengths) >= evaluate(stop, lengths) for start, stop in bound.ranges):
        return None  # a loop around the read runs no iteration
    length = lengths[(bound.array, bound.dim)]
    lowest, highest = evaluate(bound.lowest, lengths), evaluate(bound.highest, lengths)
    where = f"dimension {bound.dim} of {bound.array}" if bound.dim else bound.array
    if lowest < 0:
        return f"{bound.text} reads {where} at index {lowest}, before its start (len {length})"
    if highest >= length:
        return f"{bound.text} reads {where} at index {highest}, past its end (len {length})"
    return None


def range_text(start: Affine, stop: Affine) -> str:
    """The arguments of range() as the user writes them: `len(x) - 1`, `i + 1, len(x)`."""
    stop_text = affine_text(stop, _symbol_text)
    return stop_text if start == Affine(0) else f"{affine_text(start, _symbol_text)}, {stop_text}"


def _symbol_text(symbol) -> str:
    if isinstance(symbol, Length):
        return f"len({symbol.array})" if symbol.dim == 0 else f"len({symbol.array}, {symbol.dim})"
    return symbol
