"""convert: a SymPy expression -> (source text, Expr), without recursion and without parsing text.

Functions are recognised through the primitive table: a row whose `sympy` field is a SymPy function
class (sin, log, Abs, atan2, ...) converts that class; a row whose SymPy counterpart is a power
(sqrt(x) is x**(1/2) in SymPy) converts that power. Sums and products of many terms become left-folded
binary nodes, written the way a person would: x - y rather than x + (-1)*y, x/y rather than x*y**-1.
"""

from __future__ import annotations

import math
import re
from functools import cache

import sympy

from ..errors import SymdiffError
from . import primitives
from .expr import Apply, Expr, Num, Var
from .printing import expression_text

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def convert(expr) -> tuple[str, Expr]:
    if not isinstance(expr, sympy.Basic):
        raise SymdiffError(f"expected the expression as a string or a SymPy expression, got {type(expr).__name__}")
    tree = _convert(sympy.sympify(expr))
    return expression_text(tree), tree


@cache
def _operator(symbol: str, arity: int = 2) -> str:
    """The row written with this operator symbol in symdiff syntax (as the parser finds it)."""
    for row in primitives.TABLE.values():
        if row.notation.symbol == symbol and row.arity == arity and not row.internal:
            return row.name
    raise AssertionError(f"the table has no operator {symbol!r}")


@cache
def _function_row(cls: type, arity: int) -> str | None:
    """The row for a SymPy function class: the row whose SymPy counterpart is that class, else the
    one whose counterpart agrees with it at sample points of the row's domain (the table may wrap
    SymPy's Abs and sign to fix their derivatives at 0, and users write sympy.Abs)."""
    rows = [row for row in primitives.TABLE.values() if row.user_callable and row.arity == arity]
    for row in rows:
        if row.sympy is cls:
            return row.name
    for row in rows:
        if isinstance(row.sympy, sympy.FunctionClass) and _agree(cls, row):
            return row.name
    return None


def _agree(cls: type, row: primitives.Primitive) -> bool:
    for t in (0.31, 0.57, 0.83):
        point = [sympy.Float(low + t * (high - low)) for low, high in row.domain]
        try:
            mine, theirs = complex(cls(*point)), complex(row.sympy(*point))
        except (TypeError, ValueError):
            return False
        if abs(mine - theirs) > 1e-12 * (1 + abs(theirs)):
            return False
    return True


def _known_functions() -> str:
    return ", ".join(primitives.user_functions())


@cache
def _power_rows() -> dict:
    """Exponent -> row name, for one-argument rows whose SymPy counterpart is a power of the argument."""
    x = sympy.Dummy("x")
    found = {}
    for row in primitives.TABLE.values():
        if not row.user_callable or row.arity != 1 or isinstance(row.sympy, sympy.FunctionClass):
            continue
        try:
            image = row.sympy(x)
        except Exception:  # an arithmetic row's SymPy counterpart needs two operands
            continue
        if isinstance(image, sympy.Pow) and image.base == x and image.exp.is_Rational:
            found[image.exp] = row.name
    return found


def _convert(root: sympy.Basic) -> Expr:
    """Postorder over the SymPy tree with an explicit stack; each node is rebuilt from its children."""
    done: dict[sympy.Basic, Expr] = {}
    stack: list[tuple[sympy.Basic, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node in done:
            continue
        children = _children(node)
        if expanded or not children:
            done[node] = _build(node, [done[child] for child in children])
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children) if child not in done)
    return done[root]


def _children(node: sympy.Basic) -> tuple:
    """The subexpressions a node is rebuilt from (a sum's terms, a product's factors split into
    numerator and denominator, a power's base, a function's arguments)."""
    if node.is_Number or node.is_Symbol or isinstance(node, sympy.NumberSymbol):
        return ()
    if isinstance(node, sympy.Add):
        return tuple(_magnitude(term)[1] for term in node.as_ordered_terms())
    if isinstance(node, sympy.Mul):
        numerator, denominator = _fraction(node)
        return tuple(numerator) + tuple(denominator)
    if isinstance(node, sympy.Pow):
        if node.exp.is_Integer or node.exp in _power_rows() or (node.exp.is_Rational and -node.exp in _power_rows()):
            return (node.base,)
        return (node.base, node.exp)
    return tuple(node.args)


def _build(node: sympy.Basic, children: list[Expr]) -> Expr:
    if node.is_Symbol:
        return _variable(node.name)
    if node.is_Number or isinstance(node, sympy.NumberSymbol):
        return _number(node)
    if isinstance(node, sympy.Add):
        return _sum(node, children)
    if isinstance(node, sympy.Mul):
        return _product(node, children)
    if isinstance(node, sympy.Pow):
        return _power(node, children)
    if not isinstance(node, sympy.Function):
        raise SymdiffError(f"SymPy {type(node).__name__} ({node}) is not supported")
    name = _function_row(type(node), len(children))
    if name is None:
        raise SymdiffError(
            f"SymPy function {type(node).__name__} is not supported (symdiff knows {_known_functions()})"
        )
    return Apply(name, tuple(children))


def _variable(name: str) -> Var:
    if not _NAME.fullmatch(name):
        raise SymdiffError(f"SymPy symbol {name!r} is not a valid symdiff variable name")
    if name in primitives.CONSTANTS or name in primitives.user_functions():
        raise SymdiffError(
            f"SymPy symbol {name!r} has the name of a symdiff {'constant' if name in primitives.CONSTANTS else 'function'}"
        )
    return Var(name)


def _number(node: sympy.Basic) -> Expr:
    if not node.is_real:
        raise SymdiffError(f"SymPy number {node} is not real")
    try:
        value = float(node)
    except (OverflowError, TypeError):
        value = math.inf
    if not math.isfinite(value):
        raise SymdiffError(f"SymPy number {node} is too large for a float")
    return Num(abs(value)) if value >= 0 else Apply(_operator("-", 1), (Num(-value),))


def _magnitude(term: sympy.Basic) -> tuple[bool, sympy.Basic]:
    """A term as (negative, its magnitude): -3*x is (True, 3*x), so that sums print as differences."""
    coefficient, rest = term.as_coeff_Mul()
    if coefficient.is_Number and coefficient.is_negative:
        return True, -term
    return False, term


def _fraction(node: sympy.Mul) -> tuple[list, list]:
    """A product's factors in the numerator and in the denominator (x*y**-2 -> [x], [y**2])."""
    numerator, denominator = [], []
    for factor in node.as_ordered_factors():
        if isinstance(factor, sympy.Pow) and factor.exp.is_Number and factor.exp.is_negative:
            denominator.append(sympy.Pow(factor.base, -factor.exp, evaluate=False) if factor.exp != -1 else factor.base)
        elif factor.is_Rational and not factor.is_Integer:
            if factor.p != 1:
                numerator.append(sympy.Integer(factor.p))
            denominator.append(sympy.Integer(factor.q))
        else:
            numerator.append(factor)
    return numerator, denominator


def _sum(node: sympy.Add, children: list[Expr]) -> Expr:
    result = None
    for term, child in zip(node.as_ordered_terms(), children):
        negative = _magnitude(term)[0]
        if result is None:
            result = Apply(_operator("-", 1), (child,)) if negative else child
        else:
            result = Apply(_operator("-" if negative else "+"), (result, child))
    return result


def _product(node: sympy.Mul, children: list[Expr]) -> Expr:
    numerator, denominator = _fraction(node)
    tops, bottoms = children[: len(numerator)], children[len(numerator) :]
    negative = False
    if numerator and numerator[0] == -1:  # -x*y: a negation, not a product with -1
        negative, tops = True, tops[1:]
    top = _fold(_operator("*"), tops) if tops else Num(1.0)
    result = Apply(_operator("/"), (top, _fold(_operator("*"), bottoms))) if bottoms else top
    return Apply(_operator("-", 1), (result,)) if negative else result


def _power(node: sympy.Pow, children: list[Expr]) -> Expr:
    exponent = node.exp
    if len(children) == 2:
        return Apply(_operator("^"), tuple(children))
    (base,) = children
    rows = _power_rows()
    if exponent in rows:
        return Apply(rows[exponent], (base,))
    if exponent.is_Rational and -exponent in rows:  # x**(-1/2) is 1/sqrt(x)
        return Apply(_operator("/"), (Num(1.0), Apply(rows[-exponent], (base,))))
    return Apply(_operator("^"), (base, _number(exponent)))


def _fold(op: str, operands: list[Expr]) -> Expr:
    result = operands[0]
    for operand in operands[1:]:
        result = Apply(op, (result, operand))
    return result
