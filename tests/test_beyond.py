"""Beyond one gradient: forward mode, Jacobians, Hessians and definitions in the input."""

import math
import random
import re
import subprocess
import sys

import pytest
import sympy
from fuzzing import check_generated_module, examples, expressions
from hypothesis import given, settings
from support import close

import symdiff
from symdiff import SymdiffError, SymdiffSyntaxError, UnknownNameError

EXPRS = [
    "x1*x2 + sin(x1)",
    "log(x1) + x1*x2 - sin(x2)",
    "exp(-x1^2/2) * cos(x2) + atan2(x2, x1)",
    "sqrt(x1^2 + x2^2) * tanh(x1 - x2)",
    "x1^x2 + x2^3 / (1 + x1^2)",
]
POINT = (0.7, 1.3)


def _sympy(text, names):
    symbols = {name: sympy.Symbol(name, real=True) for name in names}
    return sympy.sympify(text.replace("^", "**"), locals=symbols), [symbols[n] for n in names]


@pytest.mark.parametrize("expr", EXPRS)
def test_jvp_seeds_reproduce_the_gradient(expr):
    j, g = symdiff.compile_jvp(expr), symdiff.compile_grad(expr)
    value, gradient = g.value_and_grad(*POINT)
    for k in range(2):
        seed = [1.0 if i == k else 0.0 for i in range(2)]
        got_value, slope = j(POINT, seed)
        assert close(got_value, value) and close(slope, gradient[k])


def test_worked_example_two_in_forward_mode():
    j = symdiff.compile_jvp("log(x1) + x1*x2 - sin(x2)")
    assert j((2, 5), (1, 0)) == (pytest.approx(11.652071455223084), 5.5)
    assert j((2, 5), (0, 1))[1] == pytest.approx(1.716338, abs=1e-6)
    assert "w4_dot = x2 * x1_dot + x1 * x2_dot  # w4 = x1 * x2" in j.source


@settings(max_examples=examples(150, 3_000))
@given(expressions(max_depth=5))
def test_dot_product_identity_between_modes(case):
    """v . (J u) from forward mode equals (v^T J) . u from reverse mode, on random expressions."""
    g = symdiff.compile_grad(case.text)
    if not g.inputs:
        return
    j = symdiff.compile_jvp(case.text)
    point = [case.point[name] for name in g.inputs]
    rng = random.Random(len(case.text))
    u = [rng.uniform(-1, 1) for _ in point]
    v = rng.uniform(-1, 1)
    _, forward = j(point, u)
    reverse = sum(gi * ui for gi, ui in zip(g(*point), u))
    assert math.isclose(v * forward, v * reverse, rel_tol=1e-9, abs_tol=1e-9)
    check_generated_module(j.source)


def test_forward_mode_reuses_only_values_already_computed():
    # atan2(x, w)'s partial -x/(w^2 + x^2) folds to read the tape's -x, computed only later (found by
    # the dot-product property): forward mode must spell the negation out instead.
    text = "atan2(x, cos(t)) * -x"
    j = symdiff.compile_jvp(text)
    value, slope = j([1.0, 0.5], [0.25, 2.0])
    g = symdiff.compile_grad(text)
    assert math.isclose(slope, sum(a * b for a, b in zip(g(1.0, 0.5), [0.25, 2.0])), rel_tol=1e-12)
    check_generated_module(j.source)


JACOBIAN_CASES = [
    ["x*y", "sin(x) + y^2", "exp(x*y)"],  # 3 outputs, 2 inputs: forward mode by default
    ["x*y*z + w", "log(1 + x^2) - z*w"],  # 2 outputs, 4 inputs: reverse mode by default
]


@pytest.mark.parametrize("outputs", JACOBIAN_CASES)
def test_jacobian_modes_agree_with_each_other_and_sympy(outputs):
    reverse = symdiff.compile_jacobian(outputs, mode="reverse")
    forward = symdiff.compile_jacobian(outputs, mode="forward")
    default = symdiff.compile_jacobian(outputs)
    assert default.mode == ("reverse" if len(outputs) <= len(default.inputs) else "forward")
    point = [0.3 + 0.2 * i for i in range(len(reverse.inputs))]
    functions, symbols = zip(*(_sympy(text, reverse.inputs) for text in outputs))
    expected = sympy.Matrix(functions).jacobian(symbols[0])
    subs = dict(zip(symbols[0], point))
    for J in (reverse, forward, default):
        rows = J(*point)
        assert len(rows) == len(outputs) and all(len(row) == len(point) for row in rows)
        for i, row in enumerate(rows):
            for k, entry in enumerate(row):
                assert close(entry, float(expected[i, k].evalf(30, subs=subs)))
        values, rows_again = J.value_and_jacobian(*point)
        assert rows_again == rows
        assert all(close(v, float(f.evalf(30, subs=subs))) for v, f in zip(values, functions))
        check_generated_module(J.source)


def test_one_string_with_several_outputs_and_wrt():
    J = symdiff.compile_jacobian("[x*y, x + y]", wrt=["y"])
    assert J(2.0, 3.0) == ((2.0,), (1.0,))
    assert symdiff.compile_jacobian("x*y, x + y")(2.0, 3.0) == ((3.0, 2.0), (1.0, 1.0))
    with pytest.raises(SymdiffError, match="mode must be"):
        symdiff.compile_jacobian("x", mode="sideways")


@pytest.mark.parametrize("expr", EXPRS)
def test_hessian_against_sympy_and_finite_differences(expr):
    H = symdiff.compile_hessian(expr)
    g = symdiff.compile_grad(expr)
    value, gradient, rows = H(*POINT)
    function, symbols = _sympy(expr, H.inputs)
    expected = sympy.hessian(function, symbols)
    subs = dict(zip(symbols, POINT))
    assert close(value, float(function.evalf(30, subs=subs)))
    assert all(close(a, b) for a, b in zip(gradient, g(*POINT)))
    for i in range(2):
        for k in range(2):
            assert close(rows[i][k], float(expected[i, k].evalf(30, subs=subs)))
            assert close(rows[i][k], rows[k][i])
        # central differences of the gradient
        h = 1e-6
        up, down = list(POINT), list(POINT)
        up[i] += h
        down[i] -= h
        column = [(a - b) / (2 * h) for a, b in zip(g(*up), g(*down))]
        assert all(math.isclose(rows[i][k], column[k], rel_tol=1e-5, abs_tol=1e-6) for k in range(2))
    check_generated_module(H.source)


def test_hessian_vector_product():
    H = symdiff.compile_hessian("x1^2*x2 + sin(x1*x2) + exp(x2)")
    _, _, rows = H(0.4, 0.9)
    v = (0.25, -1.5)
    value, gradient, product = H.hvp((0.4, 0.9), v)
    assert all(close(p, sum(r * vi for r, vi in zip(row, v))) for p, row in zip(product, rows))
    hvp_body = H.source.split("def hvp")[1]
    hessian_body = H.source.split("def hvp")[0].split("def hessian")[1]
    # one tangent sweep, not one per input: the product costs a small multiple of the gradient
    assert hvp_body.count("\n") < hessian_body.count("\n")


def test_definitions_keep_the_users_names():
    text = "r = sqrt(x^2 + y^2)\nexp(-r) * cos(r)"
    g = symdiff.compile_grad(text)
    assert "    r = sqrt(w5)" in g.source and "r_bar" in g.source
    x, y = 1.0, 2.0
    r = math.hypot(x, y)
    slope = -math.exp(-r) * (math.cos(r) + math.sin(r))
    assert all(close(a, b) for a, b in zip(g(x, y), (slope * x / r, slope * y / r)))
    assert g.inputs == ("x", "y")  # definitions are not inputs
    assert symdiff.verify(text).ok
    assert symdiff.compile_grad("a = x*y; b = a + 1; a*b")(2.0, 3.0) == (2 * 6 * 3 + 3.0, 2 * 6 * 2 + 2.0)


@pytest.mark.parametrize(
    ("text", "kind", "line", "column", "words"),
    [
        ("b = a + 1\na = 2\nb", UnknownNameError, 1, 5, "'a' is used before its definition"),
        ("a = 1\na = 2\na", SymdiffSyntaxError, 2, 1, "'a' is defined twice"),
        ("a = x\n", SymdiffSyntaxError, 1, 6, "the last statement must be the output"),
        ("a = x\nb\na", SymdiffSyntaxError, 3, 1, "only the last statement is the output"),
        ("pi = 3\npi", UnknownNameError, 1, 1, "cannot define 'pi'"),
    ],
)
def test_definition_errors_point_at_the_line(text, kind, line, column, words):
    with pytest.raises(kind) as caught:
        symdiff.compile_grad(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert words in caught.value.message


def test_compile_grad_refuses_several_outputs():
    with pytest.raises(SymdiffSyntaxError, match="expected one output, got 2"):
        symdiff.compile_grad("x, y")


def test_new_modules_are_standalone_deterministic_and_lint_clean(tmp_path):
    sources = {
        "jvp": symdiff.compile_jvp("log(x) * lambda + exp(y)").source,
        "jacobian_f": symdiff.compile_jacobian(["x*y", "sin(x)", "log(y)"]).source,
        "jacobian_r": symdiff.compile_jacobian(["x*y*z", "sin(x) - log(y)"]).source,
        "hessian": symdiff.compile_hessian("r = x^2 + y^2; log(r) * atan2(y, x)").source,
    }
    for name, source in sources.items():
        check_generated_module(source)
        (tmp_path / f"{name}.py").write_text(source)
        assert "import symdiff" not in source
    again = symdiff.compile_hessian("r = x^2 + y^2; log(r) * atan2(y, x)").source
    assert again == sources["hessian"]
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", str(tmp_path)],
                          capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout


class _SymbolicMath:
    """Stands in for math's functions so that a generated module runs on SymPy symbols (symbolic execution)."""

    sin, cos, tan, asin, acos, atan = sympy.sin, sympy.cos, sympy.tan, sympy.asin, sympy.acos, sympy.atan
    sinh, cosh, tanh, exp, log, sqrt = sympy.sinh, sympy.cosh, sympy.tanh, sympy.exp, sympy.log, sympy.sqrt
    atan2, pow, fabs = sympy.atan2, sympy.Pow, sympy.Abs


@pytest.mark.parametrize("expr", EXPRS)
def test_hessian_module_is_symbolically_sympy_hessian(expr):
    """Run the generated hessian() on SymPy symbols: each entry must simplify to sympy.hessian's."""
    source = re.sub(r"^from math import .*$", "", symdiff.compile_hessian(expr).source, flags=re.M)
    namespace = {name: value for name, value in vars(_SymbolicMath).items() if not name.startswith("_")}
    exec(compile(source, "<hessian>", "exec"), namespace)
    function, symbols = _sympy(expr, ["x1", "x2"])
    _, gradient, rows = namespace["hessian"](*symbols)
    expected = sympy.hessian(function, symbols)
    for i in range(2):
        assert sympy.simplify(gradient[i] - sympy.diff(function, symbols[i])) == 0
        for k in range(2):
            assert sympy.simplify(rows[i][k] - expected[i, k]) == 0, (expr, i, k)
