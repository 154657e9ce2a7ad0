"""pipeline: the stages of the core run in order, for one expression.

    parse (or convert from SymPy) -> lower -> reverse -> simplify

build() gives the tape and its simplified sweep (Programs; the textbook sweep on demand),
build_tape() the tape alone (jvp and Jacobians start from it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..calling import paused_gc
from ..errors import SymdiffError
from ..limits import DEFAULT_LIMITS, Limits
from .adjoint import Adjoint
from .lower import lower
from .parse import parse_program, single_output
from .reverse import check_wrt, reverse
from .simplify import simplify_sweep
from .tape import Tape


@dataclass(frozen=True)
class Programs:
    """Everything the pipeline derives from one expression."""

    tape: Tape
    adjoint: Adjoint  # the simplified program that is rendered

    @cached_property
    def raw(self) -> Adjoint:
        """The textbook sweep, unsimplified: made only when asked for (verify, simplified=False)."""
        return reverse(self.tape, self.adjoint.wrt, self.adjoint.output)

    def sweep(self, simplified: bool = True) -> Adjoint:
        """The program to print: the simplified one, or the textbook sweep, which an array program
        does not have (reverse() writes no loops: its loops are made by simplify)."""
        if simplified:
            return self.adjoint
        if self.tape.arrays or self.tape.loops:
            raise SymdiffError(
                "an array program has no unsimplified sweep (its loops are built by the simplifier); "
                "use the simplified one (no --no-simplify, simplified=True)"
            )
        return self.raw


def build(expr, wrt=None, limits: Limits = DEFAULT_LIMITS) -> Programs:
    """Parse (or convert, for a SymPy expression), lower, sweep and simplify."""
    with paused_gc():
        return _build(expr, wrt, limits)


def _build(expr, wrt, limits: Limits) -> Programs:
    tape = build_tape(expr, limits, several_outputs=False)
    wrt = tape.inputs if wrt is None else check_wrt(wrt)
    return Programs(tape, simplify_sweep(tape, wrt))


def build_tape(expr, limits: Limits = DEFAULT_LIMITS, several_outputs: bool = True) -> Tape:
    """The tape of a string (a program), a list of strings (one output each) or a SymPy expression."""
    with paused_gc():
        if isinstance(expr, list | tuple) and all(isinstance(item, str) for item in expr) and expr:
            expr = ", ".join(f"({item})" if "," in item else item for item in expr)
        if isinstance(expr, str):
            source = expr
            tree = parse_program(expr, limits.max_chars)
            if not several_outputs:
                single_output(tree, source)
        else:
            from .from_sympy import convert  # SymPy input: no string round trip

            source, tree = convert(expr)
        return lower(tree, source, limits.max_entries, limits.max_branch_depth)
