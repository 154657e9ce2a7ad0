"""Every row of the primitive table: its partials against sympy.diff and central differences."""

import math
import random

import pytest
import sympy
from support import close, evaluate_term, sample_row_point

from symdiff.core import primitives
from symdiff.core.reverse import local_partial
from symdiff.core.tape import Const, Ref

CASES = [
    (row, position)
    for row in primitives.TABLE.values()
    for position, partial in enumerate(row.partials)
    if partial is not None
]


def _in_branch(row, position, values):
    """A branch row's partial holds in the branch that uses the operand: set its condition so."""
    values = list(values)
    for i in row.boolean_params:
        values[i] = 1.0 if not row.branches or row.branches[position] else 0.0
    return values


def _partial_value(row, position, values):
    args = tuple(Const(v) if i in row.integer_params else Ref(i) for i, v in enumerate(values))
    out = row.evaluate(*values)
    term = local_partial(row, position, args, Ref(len(values)))
    return evaluate_term(term, [*values, out])


@pytest.mark.parametrize(("row", "position"), CASES, ids=lambda c: getattr(c, "name", str(c)))
def test_partial_matches_sympy_diff(row, position):
    rng = random.Random(7)
    symbols = [sympy.Symbol(p, real=True) for p in row.params]
    for _ in range(5):
        values = _in_branch(row, position, sample_row_point(row, rng))
        exact = [sympy.Rational(v) for v in values]
        args = [exact[i] if i in row.integer_params else s for i, s in enumerate(symbols)]
        args = [sympy.sympify(bool(values[i])) if i in row.boolean_params else a for i, a in enumerate(args)]
        derivative = sympy.diff(row.sympy(*args), symbols[position])
        expected = float(derivative.subs(dict(zip(symbols, exact))).evalf(30))
        assert close(_partial_value(row, position, values), expected), (row.name, values)


@pytest.mark.parametrize(("row", "position"), CASES, ids=lambda c: getattr(c, "name", str(c)))
def test_partial_matches_central_difference(row, position):
    rng = random.Random(11)
    for _ in range(5):
        values = _in_branch(row, position, sample_row_point(row, rng))
        h = 1e-6 * max(1.0, abs(values[position]))
        up, down = list(values), list(values)
        up[position] += h
        down[position] -= h
        numeric = (row.evaluate(*up) - row.evaluate(*down)) / (2 * h)
        assert math.isclose(_partial_value(row, position, values), numeric, rel_tol=1e-6, abs_tol=1e-6)


def test_every_row_is_complete():
    for row in primitives.TABLE.values():
        assert len(row.partials) == row.arity == len(row.domain), row.name
        for position, partial in enumerate(row.partials):
            # Only parameters that are always constants, and conditions, may lack a partial.
            exempt = position in row.integer_params or position in row.boolean_params or row.boolean
            assert (partial is None) == exempt, row.name
        assert all(low < high for low, high in row.domain), row.name


def test_required_functions_are_callable():
    required = "sin cos tan asin acos atan sinh cosh tanh exp log sqrt abs atan2 pow".split()
    assert set(required) <= set(primitives.user_functions())


def test_partials_reuse_the_rows_own_result():
    # exp' is exp itself, and sqrt' = 0.5/sqrt: generated code must reuse the forward value.
    assert primitives.lookup("exp").partials == ("out",)
    assert "out" in primitives.lookup("sqrt").partials[0]
    assert "out" in primitives.lookup("tanh").partials[0]


@pytest.mark.parametrize("row", [row for row in primitives.TABLE.values() if row.parity], ids=lambda row: row.name)
def test_parity_holds_exactly_where_the_row_says(row):
    """A backend computes f(-x) from f(x) on the row's word: it must hold bit for bit."""
    assert row.parity in ("even", "odd")
    sign = 1.0 if row.parity == "even" else -1.0
    rng = random.Random(row.name)
    low, high = row.domain[0]
    for x in [rng.uniform(low, high) for _ in range(200)] + [0.0, 0.5, 1.0]:
        assert row.evaluate(-x) == sign * row.evaluate(x), (row.name, x)
