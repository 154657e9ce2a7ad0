"""Differential testing: random expressions from the primitive table against SymPy.

Tolerance: |symdiff - SymPy| <= 1e-8 * |SymPy| + 1e-9 for the value and for every partial, SymPy's
side evaluated with 30 significant digits. CI draws a fixed set (derandomised) of 2,000 expressions;
SYMDIFF_FUZZ=long draws 50,000 fresh ones.
"""

import math

import pytest
import sympy
from fuzzing import VARIABLES, UnsafeCode, check_generated_module, examples, expressions
from hypothesis import given, settings
from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

import symdiff
from symdiff.core.parse import parse
from symdiff.core.printing import expression_text

RTOL, ATOL = 1e-8, 1e-9


class Sign(sympy.Function):
    """sign for the oracle: derivative 0 (the strategy keeps its argument away from 0; SymPy's own
    sign leaves d sign(log(x))/dx unevaluated)."""

    @classmethod
    def eval(cls, arg):
        return sympy.sign(arg) if arg.is_number else None

    def fdiff(self, argindex=1):
        return sympy.Integer(0)


SYMBOLS = {name: sympy.Symbol(name, real=True) for name in VARIABLES}
# An oracle independent of symdiff's parser: SymPy's own, with its own names for the functions.
NAMES = SYMBOLS | {
    "pow": sympy.Pow, "abs": sympy.Abs, "sign": Sign, "e": sympy.E, "pi": sympy.pi, "log": sympy.log,
    "atan2": sympy.atan2, "sqrt": sympy.sqrt, "exp": sympy.exp,
} | {name: getattr(sympy, name) for name in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh")}


def sympy_of(text: str) -> sympy.Expr:
    return parse_expr(text, local_dict=dict(NAMES), transformations=standard_transformations + (convert_xor,))


def agree(ours: float, reference: sympy.Expr, point) -> bool:
    # The strategy keeps sign() and abs() away from 0, where SymPy's derivative has a DiracDelta.
    reference = reference.replace(sympy.DiracDelta, lambda *args: sympy.Integer(0))
    # SymPy may write a real result with a vanishing imaginary part (atan2 of constants via log).
    exact = complex(reference.evalf(30, subs=point))
    assert abs(exact.imag) <= 1e-12 * (1 + abs(exact.real)), exact
    return math.isclose(ours, exact.real, rel_tol=RTOL, abs_tol=ATOL)


@settings(max_examples=examples(2_000, 50_000))
@given(expressions())
def test_value_and_gradient_agree_with_sympy(case):
    g = symdiff.compile_grad(case.text)
    point = {name: case.point[name] for name in g.inputs}
    value, gradient = g.value_and_grad(**point)
    function = sympy_of(case.text)
    subs = {SYMBOLS[name]: sympy.Float(v, 30) for name, v in point.items()}
    assert agree(value, function, subs), (case.text, value)
    for name, partial in zip(g.wrt, gradient):
        assert agree(partial, sympy.diff(function, SYMBOLS[name]), subs), (case.text, name, partial)
    # grad alone (fewer forward values, some computed where they are read) gives the same bits.
    assert [float(v).hex() for v in g(**point)] == [float(v).hex() for v in gradient], case.text
    # The generated module is safe, and the same text every time; the AST prints back to itself.
    check_generated_module(g.source)
    assert symdiff.gradient_source(case.text) == g.source
    tree = parse(case.text)
    assert parse(expression_text(tree)) == tree


@settings(max_examples=examples(300, 1_000))
@given(expressions(max_depth=3))
def test_verify_proves_small_expressions(case):
    report = symdiff.verify(case.text, timeout=2.0)
    assert report.ok, str(report)


WHITELIST_REJECTS = {
    "import os": "import os\n",
    "a second import": "from math import sin\nfrom math import cos\n",
    "an alias": "from math import sin as s\n",
    "a name math lacks": "from math import system\n",
    "a call nobody imported": "from math import sin\n\ndef f(x):\n    return cos(x)\n",
    "a function read as a value": "from math import sin\n\ndef f(x):\n    return sin\n",
    "a parameter hiding an import": "from math import sin\n\ndef f(sin):\n    return sin(sin)\n",
    "an attribute": "def f(x):\n    return x.real\n",
    "module-level code": "x = 1\n",
}


@pytest.mark.parametrize("why", sorted(WHITELIST_REJECTS))
def test_whitelist_rejects_what_symdiff_never_writes(why):
    with pytest.raises(UnsafeCode):
        check_generated_module(WHITELIST_REJECTS[why])


def test_whitelist_accepts_a_generated_module():
    check_generated_module(symdiff.gradient_source("log(x1) + abs(x1)^2.5 * sign(x2) + atan2(x2, x1)"))
