"""compile_grad and gradient_source as a user meets them."""

import math
import random

import pytest
import sympy
from support import WORKED, close

import symdiff
from symdiff import ArgumentError, SymdiffError


@pytest.mark.parametrize(("expr", "point", "value", "gradient"), WORKED)
def test_worked_examples(expr, point, value, gradient):
    g = symdiff.compile_grad(expr)
    assert g.inputs == tuple(point)
    got = g(*point.values())
    assert all(close(a, b) for a, b in zip(got, gradient))
    assert g(**point) == got
    got_value, got_gradient = g.value_and_grad(*point.values())
    assert close(got_value, value) and got_gradient == got
    assert close(g.value(**point), value)


def test_textbook_numbers_exactly():
    g = symdiff.compile_grad("x1*x2 + sin(x1)")
    value, (d1, d2) = g.value_and_grad(2, 3)
    assert value == 6 + math.sin(2) and d1 == 3 + math.cos(2) and d2 == 2.0
    assert isinstance(d2, float)


def test_inputs_follow_natural_order_and_wrt_selects():
    g = symdiff.compile_grad("x10 + 2*x2 + 3*x1")
    assert g.inputs == ("x1", "x2", "x10") and g.wrt == g.inputs
    assert g(1, 1, 1) == (3.0, 2.0, 1.0)
    h = symdiff.compile_grad("x10 + 2*x2 + 3*x1", wrt=["x10", "x1"])
    assert h.wrt == ("x10", "x1") and h(1, 1, 1) == (1.0, 3.0)
    assert symdiff.compile_grad("x*y", wrt="y, z")(2, 3) == (2.0, 0.0)  # z absent: d/dz = 0


def test_call_errors_are_argument_errors():
    g = symdiff.compile_grad("x*y")
    with pytest.raises(ArgumentError, match=r"expected 2 values \(x, y\), got 1"):
        g(1)
    with pytest.raises(ArgumentError, match="unknown input 'z'"):
        g(x=1, y=2, z=3)
    with pytest.raises(ArgumentError, match="missing value for y"):
        g(x=1)
    with pytest.raises(ArgumentError, match="given twice"):
        g(1, x=2)
    with pytest.raises(ArgumentError, match="real numbers"):
        g("a", 1)
    with pytest.raises(TypeError):  # ArgumentError is also a TypeError, as Python's own are
        g()


@pytest.mark.parametrize(("wrt", "words"), [(["1x"], "not a variable name"), (["x", "x"], "repeat"), ([3], "not a")])
def test_bad_wrt(wrt, words):
    with pytest.raises(SymdiffError, match=words):
        symdiff.compile_grad("x", wrt=wrt)


def test_source_and_save(tmp_path):
    g = symdiff.compile_grad("x1*x2 + sin(x1)")
    assert g.source == symdiff.gradient_source("x1*x2 + sin(x1)")
    path = g.save(tmp_path / "textbook_grad.py")
    assert path.read_text() == g.source
    assert [p.name for p in tmp_path.iterdir()] == ["textbook_grad.py"]


def test_unsimplified_program_gives_the_same_numbers():
    for expr, point, _, gradient in WORKED:
        raw = symdiff.compile_grad(expr, simplified=False)
        assert all(close(a, b) for a, b in zip(raw(**point), gradient))
        assert "+=" in raw.source and "= 0.0" in raw.source


EXPRESSIONS = [
    "sin(x)*cos(y) + tan(x*y/4)",
    "asin(x/3) + acos(y/4) + atan(x*y)",
    "sinh(x) - cosh(y) + tanh(x - y)",
    "exp(-x^2/2) / sqrt(2*pi) + log(1 + y^2)",
    "atan2(y, x) + pow(x, y) + x^y",
    "abs(x - 2*y) + sqrt(x*x + y*y)",
    "x^3 - 2*x^-1 + y^0.5 + (x*y)^2",
    "1/(1 + exp(-(x*y - 1)))",
    "-x^2 - -y + --x",
    "sin(x*y) + cos(x*y) + exp(x*y)",
    "(x + y)^(1/3)",
    "x / y / (x + y) - y / x",
    "e^x + pi*y",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_agrees_with_sympy_at_random_points(expr):
    g = symdiff.compile_grad(expr)
    symbols = [sympy.Symbol(name, real=True) for name in g.inputs]
    function = sympy.sympify(expr.replace("^", "**"), locals={s.name: s for s in symbols} | {"e": sympy.E})
    partials = [sympy.diff(function, s) for s in symbols]
    rng = random.Random(3)
    for _ in range(5):
        point = {s: rng.uniform(0.3, 1.5) for s in symbols}
        value, gradient = g.value_and_grad(*point.values())
        assert math.isclose(value, float(function.evalf(30, subs=point)), rel_tol=1e-10, abs_tol=1e-12)
        for got, partial in zip(gradient, partials):
            assert math.isclose(got, float(partial.evalf(30, subs=point)), rel_tol=1e-9, abs_tol=1e-12)


def test_nested_depth_and_long_sums_compile():
    deep = "sin(" * 20_000 + "x" + ")" * 20_000
    g = symdiff.compile_grad(deep)
    x, expected = 0.5, 1.0
    for _ in range(20_000):  # the chain rule by hand: product of cos(sin^k(x))
        expected *= math.cos(x)
        x = math.sin(x)
    assert close(g(0.5)[0], expected)
    terms = " + ".join(f"{i % 7 + 1}*x{i}" for i in range(3_000))
    g = symdiff.compile_grad(terms)
    assert g(*[1.0] * 3_000) == tuple(float(i % 7 + 1) for i in range(3_000))


def test_grad_function_is_the_generated_function():
    g = symdiff.compile_grad("x1*x2 + sin(x1)")
    assert g.grad_function(2.0, 3.0) == g(2, 3)
    assert g.grad_function.__name__ == "grad"
