"""algebra: the arithmetic of terms that every sweep shares (reverse, forward, simplify).

fold(op, args) applies a primitive to terms the way the chain rule's arithmetic allows: constants
fold, `*1`, `+0`, `*0` and double negation vanish, a minus moves out of products and quotients, and
a value the forward sweep already computed is reused. Derivative rules stay in the primitive table.
"""

from __future__ import annotations

import math

from . import primitives
from .adjoint import Bar, Op, Term
from .lower import refined
from .tape import Const, Ref, Tape

ZERO, ONE, TWO = Const(0.0), Const(1.0), Const(2.0)


def fold_term(term: Term, tape: Tape, settled: dict[int, Term]) -> Term:
    """Simplify a (small) term bottom-up, with settled adjoints substituted."""
    kind = type(term)  # tested by type, not `match`: this runs on every partial
    if kind is Op:
        return fold(term.op, tuple([fold_term(arg, tape, settled) for arg in term.args]), tape)
    if kind is Bar:
        return settled.get(term.index, term)
    return term


def fold(op: str, args: tuple[Term, ...], tape: Tape) -> Term:
    """op(args) with constants folded, arithmetic identities applied and forward values reused."""
    row = primitives.lookup(op)
    if row.refine is not None:
        row, args = refined(row, args)
    constants = atoms = True
    for arg in args:
        kind = type(arg)
        if kind is not Const:
            constants = False
            if kind is not Ref:
                atoms = False
                break
    if constants and (value := _evaluate(row, args)) is not None:
        return value
    rule = _RULES.get(row.name)
    if rule is not None and (rewritten := rule(*args, tape)) is not None:
        return rewritten
    if atoms and (index := tape.find(row.name, args)) is not None:
        return Ref(index)
    return Op(row.name, args)


def _evaluate(row: primitives.Primitive, args) -> Const | None:
    try:
        value = row.evaluate(*(a.value for a in args))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None  # left for run time, where it raises exactly as the unsimplified program would
    if isinstance(value, complex) or not math.isfinite(value):
        return None
    return Const(float(value))


def negated(term: Term) -> Term | None:
    """u where term is -u, else None."""
    return term.args[0] if type(term) is Op and term.op == "neg" else None


def is_zero(term: Term) -> bool:
    """term is 0.0 or -0.0: as a contribution to a sum, either adds nothing."""
    return type(term) is Const and term.value == 0.0


def _is(term: Term, value: float) -> bool:
    """term is the constant `value` (0 matches -0.0 too); cheaper than comparing dataclasses."""
    return type(term) is Const and term.value == value


# The identities of the chain rule's arithmetic, one function per op; each returns None when
# nothing applies. Dispatching on the op first keeps fold cheap: it runs on every partial.


def _add(x: Term, y: Term, tape: Tape) -> Term | None:
    if _is(y, 0.0):
        return x
    if _is(x, 0.0):
        return y
    if type(x) is not Const and x == y:  # exact: doubling only moves the exponent
        return fold("mul", (TWO, x), tape)
    if (inner := negated(y)) is not None:
        return fold("sub", (x, inner), tape)
    return None


def _sub(x: Term, y: Term, tape: Tape) -> Term | None:
    if _is(y, 0.0):
        return x
    if _is(x, 0.0):
        return fold("neg", (y,), tape)
    if (inner := negated(y)) is not None:
        return fold("add", (x, inner), tape)
    return None


def _mul(x: Term, y: Term, tape: Tape) -> Term | None:
    if _is(x, 0.0) or _is(y, 0.0):
        return ZERO
    if _is(x, 1.0):
        return y
    if _is(y, 1.0):
        return x
    if _is(x, -1.0) or _is(y, -1.0):
        return fold("neg", (y if _is(x, -1.0) else x,), tape)
    minus_x, minus_y = negated(x), negated(y)
    if minus_x is not None or minus_y is not None:
        inner = fold("mul", (minus_x or x, minus_y or y), tape)
        return inner if minus_x is not None and minus_y is not None else fold("neg", (inner,), tape)
    if type(y) is Op and y.op == "div" and _is(y.args[0], 1.0):
        return fold("div", (x, y.args[1]), tape)
    if type(x) is Op and x.op == "div" and _is(x.args[0], 1.0):
        return fold("div", (y, x.args[1]), tape)
    # c * (d * u) is (c*d) * u: one multiplication fewer (100 * (2 * w) is 200 * w). The product of
    # the constants is rounded once more than the original, within an ulp of it.
    if type(x) is Const and type(y) is Op and y.op == "mul" and type(y.args[0]) is Const:
        scale = x.value * y.args[0].value
        if math.isfinite(scale) and scale != 0.0:
            return fold("mul", (Const(scale), y.args[1]), tape)
    return None


def _div(x: Term, y: Term, tape: Tape) -> Term | None:
    if _is(y, 1.0):
        return x
    if _is(x, 0.0):
        return ZERO
    minus_x, minus_y = negated(x), negated(y)
    if minus_x is not None or minus_y is not None:
        inner = fold("div", (minus_x or x, minus_y or y), tape)
        return inner if minus_x is not None and minus_y is not None else fold("neg", (inner,), tape)
    return None


def _neg(x: Term, tape: Tape) -> Term | None:
    return negated(x)


def _power(x: Term, y: Term, tape: Tape) -> Term | None:
    if _is(y, 1.0):
        return x
    if _is(y, 0.0):
        return ONE
    return None


_RULES = {"add": _add, "sub": _sub, "mul": _mul, "div": _div, "neg": _neg, "pow": _power, "powi": _power}
