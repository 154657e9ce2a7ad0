"""Branches: where(), min(), max(), comparisons and and/or/not, with real if statements."""

import math

import pytest
import sympy
from fuzzing import check_generated_module

import symdiff
from symdiff import cli


def test_the_branch_not_taken_is_never_evaluated():
    g = symdiff.compile_grad("where(x > 0, sqrt(x), 0)")
    assert g.value_and_grad(-1.0) == (0.0, (0.0,))  # not nan, not a math domain error
    assert g.value_and_grad(4.0) == (2.0, (0.25,))
    g = symdiff.compile_grad("if(x > 0, log(x), -x)")  # `if` is the same as `where`
    assert g.value_and_grad(-2.0) == (2.0, (-1.0,))
    assert g.value_and_grad(2.0) == (math.log(2.0), (0.5,))


def test_generated_code_uses_real_if_statements():
    source = symdiff.gradient_source("where(x > 0, sqrt(x), 0)")
    value_and_grad = source.split("def value_and_grad")[1]
    assert "    if w2:\n        w3 = sqrt(x)" in value_and_grad
    assert "    x_bar = 0.0\n    if w2:\n        x_bar += 0.5 / w3" in value_and_grad
    check_generated_module(source)


@pytest.mark.parametrize(
    ("expr", "point", "value", "gradient"),
    [
        ("max(x, y)", (3.0, 1.0), 3.0, (1.0, 0.0)),
        ("max(x, y)", (1.0, 3.0), 3.0, (0.0, 1.0)),
        ("max(x, y)", (2.0, 2.0), 2.0, (1.0, 0.0)),  # a tie: the first argument gets the derivative
        ("min(x, y)", (2.0, 2.0), 2.0, (1.0, 0.0)),
        ("max(x, y, x*y)", (2.0, 3.0), 6.0, (3.0, 2.0)),
        ("min(x^2, y, 1)", (0.5, 3.0), 0.25, (1.0, 0.0)),
        ("where(x > 0 and y > 0, x*y, 0)", (2.0, -1.0), 0.0, (0.0, 0.0)),
        ("where(x > 0 and y > 0, x*y, 0)", (2.0, 3.0), 6.0, (3.0, 2.0)),
        ("where(not x < 1 or y == 2, x, y)", (0.0, 2.0), 0.0, (1.0, 0.0)),
        ("where(x != 0, sin(x)/x, 1)", (0.0, None), 1.0, (0.0,)),
        ("abs(x) + where(x >= 1, (x - 1)^2, 0)", (3.0, None), 7.0, (5.0,)),
    ],
)
def test_values_and_gradients(expr, point, value, gradient):
    g = symdiff.compile_grad(expr)
    point = tuple(p for p in point if p is not None)
    assert g.value_and_grad(*point) == (value, gradient)


def test_nested_branches_and_shared_subexpressions():
    expr = "where(x > 0, where(y > 0, sqrt(x*y), log(x)), exp(x) + sqrt(-x))"
    g = symdiff.compile_grad(expr)
    assert g.value_and_grad(-4.0, 1.0)[0] == pytest.approx(math.exp(-4) + 2)
    assert g.value_and_grad(-4.0, 1.0)[1] == pytest.approx((math.exp(-4) - 0.25, 0.0))
    assert g.value_and_grad(2.0, -1.0) == (pytest.approx(math.log(2)), (0.5, 0.0))
    assert g.value_and_grad(2.0, 8.0) == (4.0, (1.0, 0.25))
    assert symdiff.verify(expr).ok


@pytest.mark.parametrize(
    "expr",
    ["where(x > 0, sqrt(x), 0) + where(x > 0, x*y, y)", "max(x, y^2, 1) * min(x, y)",
     "where((x*y > 1) or (x < -1), exp(-x*y), cos(x) * y)"],
)
def test_verify_agrees_with_sympy_piecewise(expr):
    report = symdiff.verify(expr)
    assert report.ok, str(report)
    g = symdiff.compile_grad(expr)
    x, y = sympy.symbols("x y", real=True)
    function = sympy.sympify(
        expr.replace("^", "**").replace(" and ", " & ").replace(" or ", " | "),
        locals={"x": x, "y": y, "where": lambda c, a, b: sympy.Piecewise((a, c), (b, True)),
                "max": sympy.Max, "min": sympy.Min},
    )
    for point in ((0.7, 1.9), (-1.5, 0.4), (2.2, -0.3)):  # away from the kinks
        subs = {x: point[0], y: point[1]}
        got = g(*point)
        for got_partial, symbol in zip(got, (x, y)):
            assert got_partial == pytest.approx(float(sympy.diff(function, symbol).evalf(subs=subs)), abs=1e-12)


def test_forward_mode_jacobians_and_hessians_take_the_same_branches():
    expr = "where(x > 0, sqrt(x)*y, y^2) + max(x, y)^2"
    H, g, j = symdiff.compile_hessian(expr), symdiff.compile_grad(expr), symdiff.compile_jvp(expr)
    for point in ((-1.0, 2.0), (4.0, 3.0), (0.5, -2.0)):
        value, gradient, rows = H(*point)
        assert (value, gradient) == g.value_and_grad(*point)
        for k in range(2):
            direction = [1.0 if i == k else 0.0 for i in range(2)]
            assert j(point, direction)[1] == pytest.approx(gradient[k])
            h = 1e-6
            up, down = list(point), list(point)
            up[k] += h
            down[k] -= h
            column = [(a - b) / (2 * h) for a, b in zip(g(*up), g(*down))]
            assert rows[k] == pytest.approx(column, rel=1e-5, abs=1e-6)
        check_generated_module(H.source)
    J = symdiff.compile_jacobian(["max(x, y)", "where(x > 0, log(x), x)"])
    assert J(-1.0, 2.0) == ((0.0, 1.0), (1.0, 0.0))  # log(-1) in the branch not taken: never run
    assert J(2.0, 1.0) == ((1.0, 0.0), (0.5, 0.0))


def test_numpy_backend_runs_branches():
    """It refused where(), min() and max() (tests/test_numpy_branches.py has the details)."""
    assert symdiff.compile_grad("max(x, y)", backend="numpy")(1.0, 2.0) == (0.0, 1.0)


def test_the_cli_writes_a_numpy_module_that_runs_each_branch_alone(capsys):
    """`symdiff grad --lang numpy` refused branches; now its module computes each on its own elements."""
    assert cli.main(["grad", "where(x > 0, sqrt(x), 0)", "--lang", "numpy"]) == 0
    assert "_branch(None, w2, True)" in capsys.readouterr().out


def test_explain_traces_the_branch_taken():
    """explain refused where(), min() and max() (tests/test_explain_branches.py has the details)."""
    trace = symdiff.explain("max(x, y)", at={"x": 1, "y": 2})
    assert [(b.source, b.value, b.taken_text) for b in trace.branches] == [("max(x, y)", False, "y")]
    assert tuple(p.value for p in trace.partials) == symdiff.compile_grad("max(x, y)")(1, 2) == (0.0, 1.0)


def test_graph_marks_the_branch_not_taken():
    """graph refused where(), min() and max() (tests/test_explain_branches.py has the details)."""
    dot = symdiff.graph("max(x, y)", at={"x": 1, "y": 2}).dot
    assert '"w1" -> "w4" [label=<∂w4/∂w1 = 1, not taken>, style=dashed, color="grey", fontcolor="grey"];' in dot
