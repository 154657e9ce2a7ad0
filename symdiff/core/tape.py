"""Tape: the Wengert list. Numbered single-assignment entries, one primitive each.

Invariants: an entry's operands are constants or references to earlier entries; no two entries have
the same (op, operands) key; numbering follows first appearance in the source, so it is deterministic,
except that an entry computed only inside a branch comes after the branch's condition (lower.computable_order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import copysign

from ..errors import Span, SymdiffError
from .primitives import lookup

INPUT = "input"  # the op of an entry that reads one of the function's scalar inputs
# Array programs (x[i], sum(... for i in range(...))) add three leaves and two reductions:
READ = "read"  # an element of an array input: name = the array, detail = (its Affine indices, Loop ids read)
COUNTER = "counter"  # a loop index as a number: name = the index, detail = the Loop's id
LENGTH = "length"  # len(x) as a number: name = the array, detail = the dimension
LEAVES = frozenset({INPUT, READ, COUNTER, LENGTH})  # entries with no operands and no partials
REDUCTIONS = frozenset({"sum", "prod"})  # args = (the body's value,), detail = the Loop's id


def is_primitive(op: str) -> bool:
    """Whether an entry's op is a row of primitives.TABLE (not a leaf, not a reduction)."""
    return op not in LEAVES and op not in REDUCTIONS


@dataclass(frozen=True, slots=True, eq=False)
class Const:
    value: float

    # 0.0 and -0.0 are different constants (atan2(-0.0, -1) is -pi, atan2(0.0, -1) is pi), so the
    # tape never shares y * -0.0 with y * 0.0; simplify's "is zero" tests accept either sign.
    def __eq__(self, other: object) -> bool:
        return type(other) is Const and self.value == other.value and copysign(1.0, self.value) == copysign(1.0, other.value)

    def __hash__(self) -> int:
        return hash((self.value, copysign(1.0, self.value)))


@dataclass(frozen=True, slots=True)
class Ref:
    """The forward value of tape entry `index` (printed w{index+1}, or the input's name)."""

    index: int


Atom = Const | Ref


@dataclass(frozen=True, slots=True)
class Instr:
    op: str  # a primitive's name, or INPUT
    args: tuple[Atom, ...]
    name: str = ""  # the input's name when op is INPUT (the array's for READ, the index's for COUNTER)
    span: Span = field(default=(0, 0), compare=False)
    detail: object = None  # what READ, COUNTER, LENGTH and the reductions need besides op and args

    @property
    def key(self) -> tuple:
        if self.op == INPUT:
            return (self.op, self.name)
        return (self.op, self.args) if self.detail is None else (self.op, self.args, self.name, self.detail)


@dataclass(frozen=True, slots=True)
class Loop:
    """One index range of a reduction: `for index in range(start, stop)` (Affines over enclosing
    indices and lengths). Entry `entry` (a REDUCTIONS op) adds up (or multiplies) its operand over the
    range; the entries whose path holds (entry, None) are the body, recomputed for every index."""

    index: str
    start: object  # expr.Affine
    stop: object  # expr.Affine
    entry: int


@dataclass(frozen=True)
class Tape:
    source: str
    instrs: tuple[Instr, ...]
    output: Atom
    inputs: tuple[str, ...]  # the expression's variables in natural order: x1, x2, x10
    keys: Mapping[tuple, int] = field(repr=False, compare=False)  # Instr.key (also reversed if commutative) -> index
    outputs: tuple[Atom, ...] = ()  # every output, in order (`output` is the first)
    labels: Mapping[int, str] = field(default_factory=dict, compare=False)  # entry -> user's definition name
    # Per entry, the branch it is computed in: ((condition entry, value), ...) from the outermost
    # where() in; () for entries every branch needs. Empty when the tape has no where() and no loop.
    # In an array program a step (reduction entry, None) says: inside that reduction's loop.
    paths: tuple[tuple[tuple[int, bool | None], ...], ...] = ()
    loops: tuple[Loop, ...] = ()  # every reduction's range, by id (READ and COUNTER details name them)
    arrays: tuple[tuple[str, int], ...] = ()  # array inputs (also in `inputs`) with their dimensions
    # A vector output [b for i in range(...)]: its range (entry -1); `output` is b, a function of i (a
    # COUNTER whose detail is -1, outside every loop), one output per i.
    rows: Loop | None = None

    def path(self, index: int) -> tuple[tuple[int, bool], ...]:
        return self.paths[index] if self.paths else ()

    def input_index(self, name: str) -> int | None:
        return self.keys.get((INPUT, name))

    def is_array(self, name: str) -> bool:
        return any(array == name for array, _ in self.arrays)

    def reads(self, name: str) -> list[int]:
        """The entries reading elements of array `name`."""
        return [index for index, instr in enumerate(self.instrs) if instr.op == READ and instr.name == name]

    def loop_of(self, entry: int) -> Loop:
        """The Loop of reduction entry `entry`."""
        return self.loops[self.instrs[entry].detail]

    def find(self, op: str, args: tuple[Atom, ...]) -> int | None:
        """The entry computing op(args), if the tape has one that every branch computes (lets later
        stages reuse it)."""
        index = self.keys.get((op, args))
        return None if index is None or self.path(index) else index

    def depends_on(self, indices: set[int]) -> set[int]:
        """Entries whose value depends on any of `indices` (the entries themselves included)."""
        reached = set(indices)
        for index, instr in enumerate(self.instrs):
            if any(isinstance(a, Ref) and a.index in reached for a in instr.args):
                reached.add(index)
        return reached

    def closure(self, roots: set[int]) -> set[int]:
        """Entries needed to compute `roots` (the roots included)."""
        needed = set(roots)
        for index in range(len(self.instrs) - 1, -1, -1):
            if index in needed:
                needed.update(a.index for a in self.instrs[index].args if isinstance(a, Ref))
        return needed


def no_branches(tape: Tape, what: str) -> None:
    """Refuse a tape with branches (where, min, max) where `what` would run both and poison the
    derivative; the Python backend compiles them to real if statements."""
    for instr in tape.instrs:
        if is_primitive(instr.op) and lookup(instr.op).branches:
            raise SymdiffError(
                f"{what} does not support where(), min() or max() yet; compile_grad with the Python "
                "backend does",
                tape.source,
                instr.span,
            )
