"""forward: tangents (forward mode) of a straight-line program, from the same table partials.

A program here is a list of Assigns: the forward sweep of a tape, optionally followed by an adjoint
program. A tangent sweep carries, for one seed direction, the derivative of every value along it:
w_p_dot = sum_i dw_p/dw_i * w_i_dot (the dual-number view). Run over the forward sweep it is forward
mode (directional derivatives, Jacobian columns); run over forward and reverse sweeps together it
differentiates the gradient again (forward over reverse: Hessian rows, Hessian-vector products).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import primitives
from .adjoint import Adjoint, Bar, Op, Term, is_atom
from .algebra import ZERO, fold, fold_term, is_zero
from .reverse import local_partial
from .tape import INPUT, Const, Ref, Tape


@dataclass(frozen=True, slots=True)
class Dot:
    """The tangent, along seed direction `seed`, of a forward value (Ref) or of an adjoint (Bar)."""

    of: Ref | Bar
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Assign:
    """`target mode term`: one line of a straight-line program; `origin` names the tape entry it
    comes from (for comments)."""

    target: Ref | Bar | Dot
    mode: str  # "=", "+=" or "-="
    term: Term
    origin: int | None = None
    path: tuple[tuple[int, bool], ...] = ()  # runs only in this branch (see Tape.paths)


def forward_assigns(tape: Tape, needed: set[int] | None = None) -> list[Assign]:
    """The forward sweep as Assigns (only the `needed` entries, when given)."""
    return [
        Assign(Ref(index), "=", Op(instr.op, instr.args), index, tape.path(index))
        for index, instr in enumerate(tape.instrs)
        if instr.op != INPUT and (needed is None or index in needed)
    ]


def adjoint_assigns(adjoint: Adjoint) -> list[Assign]:
    return [
        Assign(Bar(step.target, adjoint.output), step.mode, step.term, step.origin, step.path)
        for step in adjoint.steps
    ]


class _Computed:
    """The tape as a tangent line sees it: folding may reuse only forward values already computed.
    Forward mode interleaves tangents with the forward sweep, so a later entry does not exist yet
    (the partial -y/(x^2 + y^2) must not read a `-y` the tape computes further on)."""

    def __init__(self, tape: Tape, computed: set[int]):
        self.tape, self.computed = tape, computed

    def find(self, op: str, args: tuple) -> int | None:
        index = self.tape.find(op, args)
        return index if index is not None and index in self.computed else None


class TangentSweep:
    """The tangent of every value along one seed: inputs' tangents are `seeds` (index -> term)."""

    def __init__(self, tape: Tape, seeds: dict[int, Term], seed: int = 0):
        self.seed = seed
        self.computed = {index for index, instr in enumerate(tape.instrs) if instr.op == INPUT}
        self.tape = _Computed(tape, self.computed)
        self.current: dict[Ref | Bar, Term] = {Ref(index): term for index, term in seeds.items()}
        self.home: dict[Ref | Bar, tuple] = {}  # the branch where each value was first assigned
        # Values a loop adds into: their tangents are variables from the first assignment on.
        self.explicit: set = set()

    def of(self, term: Term) -> Term:
        """The tangent of a term, folded; needs the tangents of the values it reads."""
        match term:
            case Const():
                return ZERO
            case Ref() | Bar():
                return self.current.get(term, ZERO)
            case Dot():
                raise AssertionError("tangents of tangents are not needed")
            case Op():
                pass
            case _:  # a loop's running product or its buffer (adjoint.Prefix, Suffix): a variable of its own
                return Dot(term)
        row = primitives.lookup(term.op)
        if row.branches:  # where(c, a, b)' = where(c, a', b'): the tangent takes the same branch
            return fold(term.op, tuple(arg if b is None else self.of(arg) for arg, b in zip(term.args, row.branches)),
                        self.tape)
        total: Term = ZERO
        for position, arg in enumerate(term.args):
            if isinstance(arg, Const) or row.partials[position] is None:
                continue
            direction = self.of(arg)
            if is_zero(direction):
                continue
            partial = fold_term(local_partial(row, position, term.args, term), self.tape, {})
            total = fold("add", (total, fold("mul", (partial, direction), self.tape)), self.tape)
        return total

    def step(self, assign: Assign) -> list[Assign]:
        """The tangent lines for one line of the program (none when its tangent is an atom)."""
        target = assign.target
        if isinstance(target, Ref):  # its forward line comes just before its tangent's
            self.computed.add(target.index)
        dot = Dot(target, self.seed)
        change = self.of(assign.term)
        if assign.mode == "=":
            self.home[target] = assign.path
            return self._set(target, dot, change, assign.origin, assign.path, target in self.explicit)
        if is_zero(change):
            return []
        lines = []
        home = self.home.get(target, ())
        if self.current.get(target) != dot and assign.path != home:
            # An accumulation inside a branch: the tangent must exist where the value lives.
            lines.append(Assign(dot, "=", self.current.get(target, ZERO), assign.origin, home))
            self.current[target] = dot
        if self.current.get(target) == dot:
            return [*lines, Assign(dot, assign.mode, change, assign.origin, assign.path)]
        combined = fold("add" if assign.mode == "+=" else "sub", (self.current.get(target, ZERO), change), self.tape)
        return self._set(target, dot, combined, assign.origin, assign.path)

    def _set(self, target, dot: Dot, value: Term, origin, path: tuple, explicit: bool = False) -> list[Assign]:
        if is_atom(value) and not explicit:
            self.current[target] = value
            return []
        self.current[target] = dot
        return [Assign(dot, "=", value, origin, path)]


def input_seeds(tape: Tape, direction: dict[str, Term]) -> dict[int, Term]:
    """Tangents of the inputs: `direction` maps input names to terms (absent names get 0)."""
    return {
        index: direction.get(instr.name, ZERO)
        for index, instr in enumerate(tape.instrs)
        if instr.op == INPUT
    }


def unit_seeds(tape: Tape, wrt: tuple[str, ...], position: int) -> dict[int, Term]:
    """The seed e_position over `wrt`: the Jacobian column, or Hessian row, of that input."""
    return input_seeds(tape, {name: Const(1.0 if k == position else 0.0) for k, name in enumerate(wrt)})
