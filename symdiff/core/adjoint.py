"""Adjoint: a symbolic reverse-mode program over a tape.

Its steps update adjoints (`w3_bar += w5_bar * w1`); every term is an expression over forward values
(Ref), adjoints (Bar) and constants. `gradient` says which term is d(output)/d(input) for each `wrt`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tape import Const, Ref, Tape


@dataclass(frozen=True, slots=True)
class Bar:
    """The adjoint of tape entry `index`: d(output)/d(entry), for output number `output`."""

    index: int
    output: int = 0


@dataclass(frozen=True, slots=True)
class ArrayBar:
    """The adjoint of a whole array input, its gradient: d(output)/d(array element), every element.
    A READ entry's adjoint is added into it at the element's index (`x_bar[i + 1] += ...`)."""

    array: str
    output: int = 0


@dataclass(frozen=True, slots=True)
class Prefix:
    """In the reverse loop of product `reduction`: the product of its factors before the current index
    (a running value, 1 at the loop's start)."""

    reduction: int


@dataclass(frozen=True, slots=True)
class Suffix:
    """The product of the factors of product `reduction` from the current index + `shift` to its end
    (kept in a buffer filled by a loop running backwards; 1 past the end). With Prefix it gives the
    product of every other factor exactly, zeros included: no factor is ever divided out."""

    reduction: int
    shift: int = 1


@dataclass(frozen=True, slots=True)
class Op:
    op: str  # a primitive's name
    args: tuple[Term, ...]


Term = Const | Ref | Bar | Op | ArrayBar | Prefix | Suffix


@dataclass(frozen=True, slots=True)
class Step:
    target: int  # the tape entry whose adjoint is updated
    mode: str  # "=", "+=" or "-="
    term: Term
    origin: int | None  # the entry whose local partial this is; None for the seed and zeroing
    path: tuple[tuple[int, bool], ...] = ()  # runs only in this branch (see Tape.paths)
    merged: tuple[int, ...] = ()  # entries whose contributions simplify summed into this one's
    operand: int | None = None  # raw steps: the target's position among origin's operands

    @property
    def origins(self) -> tuple[int, ...]:
        """Every entry whose local partial this step adds (for comments)."""
        return () if self.origin is None else (self.origin, *self.merged)


@dataclass(frozen=True)
class Adjoint:
    tape: Tape
    wrt: tuple[str, ...]
    steps: tuple[Step, ...]
    gradient: tuple[Term, ...]  # one per name in wrt (an ArrayBar for an array)
    output: int = 0  # which of the tape's outputs was seeded


def is_atom(term: Term) -> bool:
    return not isinstance(term, Op)


def sign_into_constant(term: Term) -> Term:
    """-(c * u) as (-c) * u, the minus moved into the constant: one negation fewer. Exact: IEEE
    multiplication and division round symmetrically, so a factor's sign only flips the result's.
    Followed down the left operands, as a product prints (-2.0 * a * b is (-2.0 * a) * b)."""
    if type(term) is not Op or term.op != "neg":
        return term
    chain, node = [], term.args[0]
    while type(node) is Op and node.op in ("mul", "div") and len(chain) < SIGN_DEPTH:
        chain.append(node)
        node = node.args[0]
    if type(node) is not Const or not chain:
        return term
    rebuilt: Term = Const(-node.value)
    for link in reversed(chain):
        rebuilt = Op(link.op, (rebuilt, link.args[1]))
    return rebuilt


# How many products down sign_into_constant looks for the constant.
SIGN_DEPTH = 4


def sweep_ops(adjoint: Adjoint) -> int:
    """Operations the reverse sweep runs: those in its terms and gradient, plus the addition (or
    subtraction) of each accumulating step."""
    terms = [step.term for step in adjoint.steps] + list(adjoint.gradient)
    return count_ops(terms) + sum(step.mode != "=" for step in adjoint.steps)


def count_ops(terms) -> int:
    """Primitive applications in the given terms (the cost measure of a program)."""
    total, stack = 0, list(terms)
    while stack:
        term = stack.pop()
        if isinstance(term, Op):
            total += 1
            stack.extend(term.args)
    return total
