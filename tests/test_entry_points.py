"""Every entry point in every backend, on every golden expression (branches included), against SymPy.

compile_grad (grad, value, value_and_grad), compile_jvp, compile_jacobian (both modes,
value_and_jacobian) and compile_hessian (hessian, hvp), each with backend="python", "numpy" and
"c", give SymPy's numbers at points on both sides of every branch. The reference is written here
in SymPy, independently of symdiff's table: Piecewise for where, Max and Min.
"""

from __future__ import annotations

import math

import pytest
import sympy
from support import WORKED, needs_compiler

import symdiff

x, y, z, x1, x2 = SYMBOLS = sympy.symbols("x y z x1 x2", real=True)


def sympified(text: str):
    return sympy.sympify(text.replace("^", "**"), locals={str(s): s for s in SYMBOLS})


# (text, SymPy expression, inputs, a second output for the Jacobian, points)
CASES = [
    *[
        (
            text,
            sympified(text),
            tuple(point),
            "sin(" + tuple(point)[0] + ") * 2",
            [tuple(point.values()), tuple(v / 2 + 0.25 for v in point.values())],
        )
        for text, point, _, _ in WORKED
    ],
    # softplus, numerically stable: a max inside the value
    (
        "log(1 + exp(-abs(x))) + max(x, 0)",
        sympy.log(1 + sympy.exp(-sympy.Abs(x))) + sympy.Max(x, 0),
        ("x",),
        "x^3",
        [(-1.5,), (0.75,)],
    ),
    # log-sum-exp through a definition holding a branch
    (
        "m = max(x, y); m + log(exp(x - m) + exp(y - m))",
        sympy.Max(x, y) + sympy.log(sympy.exp(x - sympy.Max(x, y)) + sympy.exp(y - sympy.Max(x, y))),
        ("x", "y"),
        "x*y",
        [(0.5, 2.0), (3.0, -1.0)],
    ),
    # a where inside a where, the branch not taken undefined at the point (log of a negative number)
    (
        "where(x > 0, where(y > 0, x*y^2, log(x)), -x^2*y)",
        sympy.Piecewise((sympy.Piecewise((x * y**2, y > 0), (sympy.log(x), True)), x > 0), (-(x**2) * y, True)),
        ("x", "y"),
        "x + y",
        [(2.0, 3.0), (2.0, -1.0), (-2.0, 3.0)],
    ),
    # a branch read by another branch (issue 19's item 8)
    (
        "u = max(x, y); where(z > 0, u*z, sqrt(x))",
        sympy.Piecewise((sympy.Max(x, y) * z, z > 0), (sympy.sqrt(x), True)),
        ("x", "y", "z"),
        "x*z",
        [(1.0, 2.0, 3.0), (4.0, 2.0, -1.0)],
    ),
    (
        "min(x, y, z) * sin(x)",
        sympy.Min(x, y, z) * sympy.sin(x),
        ("x", "y", "z"),
        "y - z",
        [(1.0, 2.0, 3.0), (2.0, 0.5, 3.0), (2.0, 1.5, -0.25)],
    ),
]
BACKENDS = ["python", "numpy", pytest.param("c", marks=needs_compiler)]
IDS = [case[0] for case in CASES]


def floats(result):
    """A result as nested tuples of floats (NumPy returns 0-d arrays and NumPy floats)."""
    if isinstance(result, tuple | list):
        return tuple(floats(item) for item in result)
    return float(result)


def assert_close(got, expected, where: str):
    got, expected = floats(got), floats(expected)
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected), f"{where}: {got} != {expected}"
        for a, b in zip(got, expected):
            assert_close(a, b, where)
    else:
        assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-14), f"{where}: {got} != {expected}"


class Reference:
    def __init__(self, expression, inputs: tuple[str, ...]):
        self.symbols = tuple(sympy.Symbol(name, real=True) for name in inputs)
        self.expression = expression
        self.gradient = [sympy.diff(expression, s) for s in self.symbols]
        self.hessian = [[sympy.diff(g, s) for s in self.symbols] for g in self.gradient]

    def at(self, expression, point):
        return float(expression.subs(dict(zip(self.symbols, point))).evalf(30))


def direction(n: int) -> tuple[float, ...]:
    return tuple(0.5 - 0.75 * k for k in range(n))


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    if request.param == "numpy":
        pytest.importorskip("numpy")
    if request.param == "c":
        request.getfixturevalue("private_c_cache")
    return request.param


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_entry_points(backend, case):
    text, expression, inputs, _, points = case
    reference = Reference(expression, inputs)
    g = symdiff.compile_grad(text, backend=backend)
    for point in points:
        value, gradient = reference.at(expression, point), tuple(reference.at(d, point) for d in reference.gradient)
        assert_close(g(*point), gradient, f"{backend} grad at {point}")
        assert_close(g.value(*point), value, f"{backend} value at {point}")
        assert_close(g.value_and_grad(*point), (value, gradient), f"{backend} value_and_grad at {point}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jvp(backend, case):
    text, expression, inputs, _, points = case
    reference = Reference(expression, inputs)
    j = symdiff.compile_jvp(text, backend=backend)
    along = direction(len(inputs))
    for point in points:
        derivative = sum(reference.at(d, point) * v for d, v in zip(reference.gradient, along))
        assert_close(j(point, along), (reference.at(expression, point), derivative), f"{backend} jvp at {point}")


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jacobian(backend, case, mode):
    text, expression, inputs, second, points = case
    first = Reference(expression, inputs)
    other = Reference(sympified(second), inputs)
    J = _jacobian(text, second, backend, mode)
    for point in points:
        values = (first.at(expression, point), other.at(other.expression, point))
        rows = tuple(tuple(r.at(d, point) for d in r.gradient) for r in (first, other))
        assert_close(J(*point), rows, f"{backend} {mode} jacobian at {point}")
        assert_close(J.value_and_jacobian(*point), (values, rows), f"{backend} {mode} value_and_jacobian at {point}")


def _jacobian(text: str, second: str, backend: str, mode: str):
    """The Jacobian of (the program's output, `second`): definitions first, then both outputs."""
    *definitions, output = text.split(";")
    program = "; ".join([*definitions, f"{output.strip()}, {second}"])
    return symdiff.compile_jacobian(program, backend=backend, mode=mode)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hessian_and_hvp(backend, case):
    text, expression, inputs, _, points = case
    reference = Reference(expression, inputs)
    H = symdiff.compile_hessian(text, backend=backend)
    along = direction(len(inputs))
    for point in points:
        value = reference.at(expression, point)
        gradient = tuple(reference.at(d, point) for d in reference.gradient)
        rows = tuple(tuple(reference.at(d, point) for d in row) for row in reference.hessian)
        assert_close(H(*point), (value, gradient, rows), f"{backend} hessian at {point}")
        product = tuple(sum(h * v for h, v in zip(row, along)) for row in rows)
        assert_close(H.hvp(point, along), (value, gradient, product), f"{backend} hvp at {point}")


def test_the_textbook_hessian_is_exact(backend):
    H = symdiff.compile_hessian("x1*x2 + sin(x1)", backend=backend)
    value, gradient, rows = floats(H(2.0, 3.0))
    assert (value, gradient) == (6.0 + math.sin(2.0), (3.0 + math.cos(2.0), 2.0))
    assert rows == ((-math.sin(2.0), 1.0), (1.0, 0.0))


@pytest.mark.parametrize(
    "make",
    [
        lambda b: symdiff.compile_jvp("x*y", backend=b)((1.0,), (1.0, 2.0)),
        lambda b: symdiff.compile_jacobian(["x*y", "x"], backend=b)(1.0),
        lambda b: symdiff.compile_hessian("x*y", backend=b)(1.0, 2.0, 3.0),
    ],
)
def test_a_wrong_number_of_values_is_an_argument_error(backend, make):
    with pytest.raises(symdiff.errors.ArgumentError, match=r"expected 2 values \(x, y\), got [13]"):
        make(backend)


def test_an_unknown_backend_is_refused():
    for make in (symdiff.compile_jvp, symdiff.compile_hessian, symdiff.compile_jacobian):
        with pytest.raises(symdiff.SymdiffError, match="unknown backend 'fortran'; choose one of python, numpy, c"):
            make("x*y", backend="fortran")
