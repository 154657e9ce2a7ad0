"""Array programs: core.unroll writes sums out term by term, and verify proves gradients against
sympy.diff of that at every length from the least the bounds allow up to 5, running the emitted code.

The expected unrolled expressions are written here by hand with SymPy, independently of symdiff."""

import dataclasses
import math

import pytest
import sympy
from support import needs_compiler

import symdiff
from symdiff.core.adjoint import Op
from symdiff.core.parse import parse_program
from symdiff.core.pipeline import build, build_tape
from symdiff.core.tape import Const
from symdiff.core.unroll import element, elements, unroll
from symdiff.errors import ArgumentError
from symdiff.verify import array_sizes, python_module, verify_programs

ROSENBROCK = "sum(100*(x[i + 1] - x[i]^2)^2 + (1 - x[i])^2 for i in range(len(x) - 1))"
NETWORK = "sum(tanh(sum(W[j, k]*x[k] for k in range(len(x))) + b[j])*v[j] for j in range(len(b)))"


def symbols(array: str, n: int) -> list[sympy.Symbol]:
    return [sympy.Symbol(f"{array}[{i}]", real=True) for i in range(n)]


def unrolled(source: str, **shapes) -> tuple[sympy.Expr, ...]:
    return unroll(parse_program(source), shapes, source)


# --- core.unroll ---------------------------------------------------------------------------------


def test_rosenbrock_unrolls_to_its_terms_at_each_length():
    source = ROSENBROCK
    for n in (1, 2, 3, 5):
        x = symbols("x", n)
        expected = sum((100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(n - 1)), sympy.Integer(0))
        assert unrolled(source, x=(n,)) == (expected,)


def test_triangular_pairs_counters_lengths_and_a_mean_in_a_definition():
    x = symbols("x", 4)
    pairs = "sum(1/(x[i] - x[j])^2 for i in range(len(x)) for j in range(i + 1, len(x)))"
    assert unrolled(pairs, x=(4,)) == (sum(1 / (x[i] - x[j]) ** 2 for i in range(4) for j in range(i + 1, 4)),)
    weighted = "x[0]*x[1] + sum((i + 1)*x[i]^2 for i in range(len(x))) + len(x)*x[len(x) - 1]"
    assert unrolled(weighted, x=(4,)) == (x[0] * x[1] + sum((i + 1) * x[i] ** 2 for i in range(4)) + 4 * x[3],)
    variance = "m = sum(x[i] for i in range(len(x)))/len(x); sum((x[i] - m)^2 for i in range(len(x)))"
    m = sum(x) / 4
    assert unrolled(variance, x=(4,)) == (sum((xi - m) ** 2 for xi in x),)


def test_two_dimensional_arrays_data_and_nested_sums():
    source = "sum((sum(W[j, k]*x[k] for k in range(len(x))) - y[j])^2 for j in range(len(y)))"
    x, y = symbols("x", 3), symbols("y", 2)
    W = [[sympy.Symbol(f"W[{j}, {k}]", real=True) for k in range(3)] for j in range(2)]
    expected = sum((sum(W[j][k] * x[k] for k in range(3)) - y[j]) ** 2 for j in range(2))
    assert unrolled(source, x=(3,), y=(2,), W=(2, 3)) == (expected,)
    assert element("W", (1, 2)) == W[1][2]
    assert elements("W", (2, 3)) == [W[0][0], W[0][1], W[0][2], W[1][0], W[1][1], W[1][2]]


def test_products_scalars_and_exact_constants():
    source = "a*prod(x[i] + 0.1 for i in range(len(x))) + prod(y[i] for i in range(len(y)))"
    x, a = symbols("x", 3), sympy.Symbol("a", real=True)
    tenth = sympy.Rational(3602879701896397, 36028797018963968)  # the double nearest 0.1, exactly
    (value,) = unrolled(source, x=(3,), y=(0,))
    assert value == a * (x[0] + tenth) * (x[1] + tenth) * (x[2] + tenth) + 1  # an empty product is 1


def test_vector_outputs_give_one_expression_per_index():
    x = symbols("x", 3)
    assert unrolled("[x[i + 1] - x[i] for i in range(len(x) - 1)]", x=(3,)) == (x[1] - x[0], x[2] - x[1])


def test_a_tape_is_unrolled_from_its_source():
    source = "log(sum(exp(x[i]) for i in range(len(x))))"
    x = symbols("x", 2)
    assert unroll(build_tape(source), {"x": (2,)}) == (sympy.log(sympy.exp(x[0]) + sympy.exp(x[1])),)


def test_a_read_outside_its_array_points_at_the_read():
    source = "sum(x[i] * x[i + 1] for i in range(len(x)))"
    with pytest.raises(ArgumentError) as caught:
        unrolled(source, x=(3,))
    assert caught.value.message == "x[3] is outside x (dimension 0 has length 3)"
    assert caught.value.span == (11, 19)
    assert source[slice(*caught.value.span)] == "x[i + 1]"


def test_a_shape_with_the_wrong_number_of_dimensions_is_refused():
    with pytest.raises(ArgumentError, match=r"W has 2 dimensions, got a shape \(3,\)"):
        unrolled("sum(W[i, 0] for i in range(len(W)))", W=(3,))


# --- the sizes verify checks at --------------------------------------------------------------------


def sizes(source: str) -> list[dict[str, tuple[int, ...]]]:
    tape = build_tape(source)
    return [
        {array: tuple(lengths[(array, dim)] for dim in range(ndim)) for array, ndim in tape.arrays}
        for lengths in array_sizes(tape)
    ]


def test_sizes_run_from_the_least_the_bounds_allow_up_to_five():
    assert sizes(ROSENBROCK) == [{"x": (n,)} for n in range(1, 6)]
    assert sizes("x[0]*x[1] + sum(x[i] for i in range(len(x)))") == [{"x": (n,)} for n in range(2, 6)]
    # Only len(x) = 1 keeps x[2*i] in x for every i in range(len(x)).
    assert sizes("sum(x[2*i] for i in range(len(x)))") == [{"x": (1,)}]


def test_sizes_make_an_array_longer_where_another_one_bounds_its_reads():
    shifted = "sum(x[i + 1]*y[i] for i in range(len(y)))"
    assert sizes(shifted) == [{"x": (n + 1,), "y": (n,)} for n in range(1, 6)]
    network = "sum((sum(W[j, k]*x[k] for k in range(len(x))) - y[j])^2 for j in range(len(y)))"
    assert sizes(network) == [{"W": (n, n), "x": (n,), "y": (n,)} for n in range(1, 6)]
    reversed_ = "sum(x[len(y) - 1 - i]*y[i] for i in range(len(y)))"
    assert sizes(reversed_) == [{"x": (n,), "y": (n,)} for n in range(1, 6)]


# --- verify of array programs ------------------------------------------------------------------------

ROSENBROCK_METHOD = (
    "symbolic; unrolled at len(x) = 1, 2, 3, 4, 5 "
    "(no unsimplified sweep to compare: the textbook reverse() does not know loops)"
)

PROVEN = [
    ROSENBROCK,
    "log(sum(exp(x[i]) for i in range(len(x))))",
    "m = sum(x[i] for i in range(len(x)))/len(x); sum((x[i] - m)^2 for i in range(len(x)))",
    "sum(1/(x[i] - x[j])^2 for i in range(len(x)) for j in range(i + 1, len(x)))",
    "sum((sum(W[j, k]*x[k] for k in range(len(x))) - y[j])^2 for j in range(len(y)))",
    "x[0]*x[1] + sum((i + 1)*x[i]^2 for i in range(len(x)))",
    "sum(x[len(x) - 1 - i]*x[i]^3 for i in range(len(x)))",
    "prod(x[i] + 1 for i in range(len(x))) + sum(sin(x[i + 2])*x[i] for i in range(len(x) - 2))",
    NETWORK,
]


@pytest.mark.parametrize("source", PROVEN)
def test_verify_proves_array_programs_and_runs_their_code(source):
    report = symdiff.verify(source)
    assert report.ok, str(report)
    assert [check.subject for check in report.gradient] == [f"d/d{name}" for name in symdiff.compile_grad(source).wrt]
    assert [check.subject for check in report.emitted] == ["python f", "python grad", "python value_and_grad"]


def test_the_report_says_how_and_at_which_lengths():
    report = symdiff.verify(ROSENBROCK)
    (gradient,) = report.gradient
    assert (gradient.equal, gradient.method) == (True, ROSENBROCK_METHOD)
    assert report.simplification == ()
    assert [check.subject for check in report.rules] == [
        "powi'(x)",
        "sub'(x)",
        "sub'(y)",
        "mul'(y)",
        "add'(x)",
        "add'(y)",
        # The loop body's partials, proven with i a symbolic integer and len(x) a symbolic length.
        "loop i: d(w3 = x[i] ^ 2)/d(x[i])",
        "loop i: d(w4 = x[i + 1] - w3)/d(x[i + 1])",
        "loop i: d(w4 = x[i + 1] - w3)/d(w3)",
        "loop i: d(w5 = w4 ^ 2)/d(w4)",
        "loop i: d(w6 = 100 * w5)/d(w5)",
        "loop i: d(w7 = 1 - x[i])/d(x[i])",
        "loop i: d(w8 = w7 ^ 2)/d(w7)",
        "loop i: d(w9 = w6 + w8)/d(w6)",
        "loop i: d(w9 = w6 + w8)/d(w8)",
    ]
    assert all(check.method == "symbolic" for check in report.rules)
    assert [check.method for check in report.emitted] == [
        "run on symbols and in floats at 10 points; len(x) = 1, 2, 3, 4, 5"
    ] * 3
    assert "result: all proven equal" in str(report)


def test_data_and_scalar_parameters_are_proven_wrt_the_parameters():
    report = symdiff.verify("sum((a*exp(-b*t[i]) + c - y[i])^2 for i in range(len(t)))", wrt=["a", "b", "c"])
    assert report.ok, str(report)
    assert [check.subject for check in report.gradient] == ["d/da", "d/db", "d/dc"]
    assert report.gradient[0].method.startswith("symbolic; unrolled at len(t) = 1, 2, 3, 4, 5; len(y) = 1, 2, 3, 4, 5")


def test_a_program_that_branches_on_a_value_is_checked_in_floats():
    report = symdiff.verify("sum(sign(x[i])*x[i]^2 for i in range(len(x)))")
    assert report.ok, str(report)
    assert report.gradient[0].method.startswith("grad() in floats at 10 points where it branches; unrolled at")
    assert [check.method for check in report.emitted] == ["in floats at 10 points; len(x) = 1, 2, 3, 4, 5"] * 3


def test_compile_grad_verify_runs_the_python_backend_on_array_programs():
    g = symdiff.compile_grad("sum(1/(x[i] - x[j])^2 for i in range(len(x)) for j in range(i + 1, len(x)))")
    report = g.verify()
    assert report.ok, str(report)
    assert [check.method for check in report.emitted] == [
        "run on symbols and in floats at 10 points; len(x) = 1, 2, 3, 4, 5"
    ] * 3


@pytest.mark.parametrize("backend", ["numpy", pytest.param("c", marks=needs_compiler)])
def test_compile_grad_verify_runs_numpy_and_c_on_array_programs(backend):
    g = symdiff.compile_grad(NETWORK, backend=backend)
    report = g.verify()
    assert report.ok, str(report)
    sizes = "len(W) = 1x1, 2x2, 3x3, 4x4, 5x5; len(x) = 1, 2, 3, 4, 5; len(b) = 1, 2, 3, 4, 5; len(v) = 1, 2, 3, 4, 5"
    assert [(check.subject, check.method) for check in report.emitted] == [
        (f"{backend} {entry}", f"in floats at 10 points; {sizes}") for entry in ("f", "grad", "value_and_grad")
    ]


def test_a_wrong_partial_in_the_loop_body_is_caught_at_an_element_and_a_length():
    programs = build(ROSENBROCK)
    steps = list(programs.adjoint.steps)
    first = steps[0]  # w4_bar = 200.0 * w4, the partial of 100*w4^2
    assert first.term.args[0] == Const(200.0)
    steps[0] = dataclasses.replace(first, term=Op(first.term.op, (Const(202.0), first.term.args[1])))
    wrong = dataclasses.replace(programs.adjoint, steps=tuple(steps))
    report = verify_programs(programs.raw, wrong)
    (gradient,) = report.gradient
    assert gradient.equal is False
    assert gradient.method.endswith("at x[0], len(x) = 2")
    assert not report.ok
    assert "NOT proven" in str(report)


def test_generated_code_that_drops_a_boundary_term_is_caught():
    programs = build(ROSENBROCK)
    source = python_module_source(programs)
    # The reverse loop stops one index early: x_bar misses the terms of the last i.
    grad = source.index("def grad(")
    broken = source[:grad] + source[grad:].replace("range(len(x) - 1)", "range(len(x) - 2)", 1)
    assert broken != source
    report = verify_programs(programs.raw, programs.adjoint, modules=(python_module(broken),))
    assert report.gradient[0].equal is True  # the program itself is right
    checks = {check.subject: check for check in report.emitted}
    assert checks["python grad"].equal is False
    assert checks["python grad"].method.endswith("len(x) = 2")
    assert checks["python f"].equal is True


def test_a_wrong_value_is_caught_and_named():
    programs = build(ROSENBROCK)
    source = python_module_source(programs)
    f, grad = source.index("def f("), source.index("def grad(")
    broken = source[:f] + source[f:grad].replace("100.0", "101.0") + source[grad:]
    assert broken.count("101.0") == 1
    report = verify_programs(programs.raw, programs.adjoint, modules=(python_module(broken),))
    checks = {check.subject: check for check in report.emitted}
    assert checks["python f"].equal is False
    assert checks["python f"].method.endswith("at value, len(x) = 2")
    assert checks["python grad"].equal is True


def test_generated_code_that_raises_is_a_failed_proof():
    programs = build("log(sum(exp(x[i]) for i in range(len(x))))")
    source = python_module_source(programs).replace("x_bar = [0.0] * len(x)", "x_bar = [0.0] * (len(x) - 1)")
    report = verify_programs(programs.raw, programs.adjoint, modules=(python_module(source),))
    checks = {check.subject: check for check in report.emitted}
    assert checks["python grad"].equal is False
    assert checks["python grad"].actual.startswith("IndexError")


def python_module_source(programs) -> str:
    from symdiff.api import gradient_source

    return gradient_source(programs.tape.source)


NESTED_IN_A_NONLINEAR_BODY = "sum(cos(sum(x[l] for l in range(len(x)))) for i in range(len(x)))"


def test_regression_a_sum_nested_in_a_nonlinear_body():
    report = symdiff.verify(NESTED_IN_A_NONLINEAR_BODY)
    assert report.ok, str(report)
    (gradient,) = symdiff.compile_grad(NESTED_IN_A_NONLINEAR_BODY)([0.3, -0.5, 0.7])
    assert gradient == pytest.approx([-3 * math.sin(0.5)] * 3, rel=1e-12)


def test_regression_an_adjoint_summed_by_an_inner_loop_is_zeroed_once_per_outer_index():
    source = "sum(x[j]*a for j in range(len(x)) for k in range(len(x)))"
    # f = len(x) * a * (x[0] + x[1]): d/da = 2 * 4, d/dx[j] = 2 * a.
    assert symdiff.compile_grad(source)(2.0, [1.0, 3.0]) == (8.0, [4.0, 4.0])


def test_regression_a_value_outside_loops_read_by_a_recomputed_inner_sum_is_computed():
    source = "sum(cos(sum(exp(a) for l in range(len(x))) - x[i]) for i in range(len(x)))"
    report = symdiff.verify(source)
    assert report.ok, str(report)


def test_regression_grad_computes_a_products_factor_that_needs_no_index():
    source = "prod(1 + a^2 for i in range(len(x))) + x[0]"
    # f = (1 + a^2)^2 + x[0] at len(x) = 2: d/da = 2*(1 + a^2)*2*a.
    assert symdiff.compile_grad(source)(2.0, [1.0, 3.0]) == (40.0, [1.0, 0.0])


def test_regression_an_inner_loops_term_is_not_merged_into_an_outer_loops_line():
    source = "sum(sum(x[l]*x[i] for l in range(len(x))) - x[i] for i in range(len(x)))"
    # f = S^2 - S, S = x[0] + x[1] + x[2] = 6: every partial is 2*S - 1.
    assert symdiff.compile_grad(source)([1.0, 2.0, 3.0]) == ([11.0, 11.0, 11.0],)


def test_regression_a_value_of_an_outer_body_read_only_by_an_inner_loop():
    source = "sum((sin(x[k]) + x[j]*a)^2 for j in range(len(x)) for k in range(len(x)))"
    g = symdiff.compile_grad(source)
    assert g(0.5, [0.5, 0.25]) == g.value_and_grad(0.5, [0.5, 0.25])[1]  # grad() raised NameError (w3)
    report = symdiff.verify(source)
    assert report.ok, str(report)


def test_a_wrong_rule_is_caught_in_the_loop_body_with_a_symbolic_index(monkeypatch):
    import dataclasses
    import types

    from symdiff.core import primitives

    table = dict(primitives.TABLE)
    table["sin"] = dataclasses.replace(table["sin"], partials=("-cos(x)",))
    monkeypatch.setattr(primitives, "TABLE", types.MappingProxyType(table))
    report = symdiff.verify(
        "sum(sin(x[2*i + 1])*(i + len(x)) for i in range(len(x)/2))".replace("len(x)/2", "len(x) - 1")
    )
    wrong = [check for check in report.rules if check.equal is not True]
    assert [check.subject for check in wrong] == ["sin'(x)", "loop i: d(w3 = sin(x[2*i + 1]))/d(x[2*i + 1])"]
    assert (wrong[1].expected, wrong[1].actual) == ("cos(x[2*i + 1])", "-cos(x[2*i + 1])")
    assert wrong[1].span == (4, 19)  # sin(x[2*i + 1]) in the input
