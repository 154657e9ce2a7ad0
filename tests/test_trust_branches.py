"""Branches that the generated code must run, not only prove: definitions used inside branches
(issue 19, item 8) and branches nested deeper than CPython's indentation allows (item 11)."""

import math
import subprocess
import sys

import pytest
from fuzzing import BRANCH_INPUTS, branch_programs, check_generated_module, examples, reference
from hypothesis import given, settings

import symdiff
from symdiff.api import build_tape

# (program, point, value, gradient): a definition used only inside a branch whose condition is
# written after it. The generated code tested the condition before computing it (UnboundLocalError).
DEFINED_BEFORE_THEIR_BRANCH = [
    ("u = max(x, y); where(z > 0, u, 1)", (1.0, 2.0, 3.0), 2.0, (0.0, 1.0, 0.0)),
    ("u = max(x, y); where(z > 0, u, 1)", (1.0, 2.0, -3.0), 1.0, (0.0, 0.0, 0.0)),
    ("u = where(x > 0, x, y); where(y > 0, u, 1)", (1.0, 2.0), 1.0, (1.0, 0.0)),
    ("u = where(x > 0, x, y); where(y > 0, u, 1)", (-1.0, 2.0), 2.0, (0.0, 1.0)),
    ("u = where(x > 0, x, y); where(y > 0, u, 1)", (1.0, -2.0), 1.0, (0.0, 0.0)),
    # The branch not taken is never evaluated, definitions included: log(-1) is not computed.
    ("u = log(x); where(x > 0, u, 0)", (-1.0,), 0.0, (0.0,)),
    ("u = log(x); where(x > 0, u, 0)", (math.e,), 1.0, (1 / math.e,)),
    ("v = where(x > 0, log(x) + 1, 0); where(y > 0, v * y, -y)", (2.0, 3.0), (math.log(2) + 1) * 3,
     (1.5, math.log(2) + 1)),
    ("v = where(x > 0, log(x) + 1, 0); where(y > 0, v * y, -y)", (-2.0, -3.0), 3.0, (0.0, -1.0)),
    # u is used under x > 0 twice, once inside y > 0 too: it is computed only where x > 0 (it was
    # computed wherever the two uses' paths shared a prefix, here everywhere: log(-1) raised).
    ("u = log(x); where(x > 0, u, 0) + where(y > 0, where(x > 0, 2*u, 1), 3)", (-1.0, 1.0), 1.0, (0.0, 0.0)),
    ("u = log(x); where(x > 0, u, 0) + where(y > 0, where(x > 0, 2*u, 1), 3)", (-1.0, -1.0), 3.0, (0.0, 0.0)),
    ("u = log(x); where(x > 0, u, 0) + where(y > 0, where(x > 0, 2*u, 1), 3)", (2.0, 1.0), 3 * math.log(2),
     (1.5, 0.0)),
    ("where(x > 0, sqrt(x), 0) + where(y > 0, where(x > 0, sqrt(x) * y, y), 0)", (-4.0, 2.0), 2.0, (0.0, 1.0)),
    ("where(x > 0, sqrt(x), 0) + where(y > 0, where(x > 0, sqrt(x) * y, y), 0)", (4.0, 2.0), 6.0, (0.75, 2.0)),
]


@pytest.mark.parametrize(("program", "point", "value", "gradient"), DEFINED_BEFORE_THEIR_BRANCH)
def test_definitions_used_inside_a_later_branch_run(program, point, value, gradient):
    g = symdiff.compile_grad(program)
    assert g.value(*point) == pytest.approx(value, rel=1e-15)
    assert g(*point) == pytest.approx(gradient, rel=1e-15)
    assert g.value_and_grad(*point) == (pytest.approx(value, rel=1e-15), pytest.approx(gradient, rel=1e-15))
    check_generated_module(g.source)


@pytest.mark.parametrize(("program", "point", "value", "gradient"), DEFINED_BEFORE_THEIR_BRANCH)
def test_definitions_used_inside_a_later_branch_run_in_derivative_modules(program, point, value, gradient):
    n = len(point)
    ones = [1.0] * n
    assert symdiff.compile_jvp(program)(point, ones) == pytest.approx((value, sum(gradient)), rel=1e-15)
    assert symdiff.compile_jacobian(program)(*point) == (pytest.approx(gradient, rel=1e-15),)
    hessian = symdiff.compile_hessian(program)
    h_value, h_gradient, _ = hessian(*point)
    assert (h_value, h_gradient) == (pytest.approx(value, rel=1e-15), pytest.approx(gradient, rel=1e-15))
    assert hessian.hvp(point, ones)[:2] == (pytest.approx(value, rel=1e-15), pytest.approx(gradient, rel=1e-15))


@pytest.mark.parametrize("program", sorted({case[0] for case in DEFINED_BEFORE_THEIR_BRANCH}))
def test_every_entry_comes_after_the_conditions_of_its_branch(program):
    tape = build_tape(program)
    for index, instr in enumerate(tape.instrs):
        if instr.op == "input":
            continue
        # Computed after each condition of its branch, and, where a condition is itself computed in a
        # branch, inside it: the steps before the condition's include the condition's own.
        for depth, (condition, _) in enumerate(tape.path(index)):
            assert condition < index
            assert set(tape.path(condition)) <= set(tape.path(index)[:depth])


def test_a_tape_that_is_computable_in_order_keeps_its_numbering():
    tape = build_tape("u = x * y; where(x > 0, u, 0) + u")  # u is used outside the branch too
    assert [(instr.op, instr.name) for instr in tape.instrs] == [
        ("input", "x"), ("input", "y"), ("mul", ""), ("gt", ""), ("where", ""), ("add", ""),
    ]


def test_a_domain_check_whose_value_another_check_reads_is_computed():
    # grad wrt x needs no value of y's branch, only the domain checks of both logs; the outer one reads
    # where(y > 0.25, log(y), y), which read a log(y) that was only checked, never stored (NameError).
    g = symdiff.compile_grad("log(where(y > 0.25, log(y), y)) + x", wrt="x")
    assert g(1.0, 2.0) == (1.0,) and g(1.0, 0.1) == (1.0,)
    with pytest.raises(ValueError):
        g(1.0, -2.0)  # as f() does: log(-2)
    check_generated_module(g.source)


def test_grad_checks_the_domain_of_what_f_computes_only():
    # d is read by nothing: f(-1) is -1, and grad(-1) raised ValueError for log(-1).
    g = symdiff.compile_grad("d = log(x); x")
    assert g.value(-1.0) == -1.0 and g(-1.0) == (1.0,) and g.value_and_grad(-1.0) == (-1.0, (1.0,))


def nested(depth: int) -> str:
    """where() nested `depth` deep in the else branches: for x in (k - 1, k), k <= depth, the branch
    k deep is taken, with value k*x and derivative k; beyond, the innermost else branch, x."""
    text = "x"
    for k in range(depth, 0, -1):
        text = f"where(x < {k}, {k}*x, {text})"
    return text


def expected(depth: int, x: float) -> tuple[float, tuple[float]]:
    k = math.floor(x) + 1
    return (k * x, (float(k),)) if k <= depth else (x, (1.0,))


def indentation(source: str) -> int:
    return max(len(line) - len(line.lstrip(" ")) for line in source.splitlines() if line.strip())


@pytest.mark.parametrize("depth", [99, 1000])
def test_deeply_nested_branches_compile_and_give_the_right_numbers(depth):
    g = symdiff.compile_grad(nested(depth))
    for x in (0.5, 1.5, depth / 2 + 0.25, depth - 0.5, depth + 0.5):
        value, gradient = expected(depth, x)
        assert g.value(x) == value and g(x) == gradient and g.value_and_grad(x) == (value, gradient)
    # Indentation does not grow with the nesting: the body, a branch's if, a domain check's if.
    assert indentation(g.source) <= 12
    check_generated_module(g.source)


def test_deeply_nested_branches_in_derivative_modules():
    text = nested(99).replace("*x", "*x*y")  # two inputs, so that the Hessian has a cross term
    x, y, k = 49.75, 2.0, 50
    assert symdiff.compile_jvp(text)([x, y], [1.0, 0.0]) == (k * x * y, k * y)
    assert symdiff.compile_jacobian(text)(x, y) == ((k * y, k * x),)
    assert symdiff.compile_hessian(text)(x, y) == (k * x * y, (k * y, k * x), ((0.0, k), (k, 0.0)))
    for module in (symdiff.compile_jvp(text), symdiff.compile_jacobian(text), symdiff.compile_hessian(text)):
        assert indentation(module.source) <= 12


def test_branches_beyond_the_limit_fail_fast_with_a_limit_error():
    text = nested(10_000)
    with pytest.raises(symdiff.LimitError, match=r"nested more than 1,000 deep here \(Limits.max_branch_depth\)") as error:
        symdiff.compile_grad(text)
    # The span is the where() 1,001 deep.
    assert error.value.span[0] == text.index("where(x < 1001,")
    with pytest.raises(symdiff.LimitError, match="more than 3 deep"):
        symdiff.compile_grad(nested(4), limits=symdiff.Limits(max_branch_depth=3))
    assert symdiff.compile_grad(nested(3), limits=symdiff.Limits(max_branch_depth=3))(2.5) == (3.0,)


def test_the_cli_writes_no_module_beyond_the_limit(tmp_path):
    target = tmp_path / "deep.py"
    result = subprocess.run(
        [sys.executable, "-m", "symdiff", "grad", "-", "-o", str(target)],
        input=nested(1001), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "Limits.max_branch_depth" in result.stderr
    assert not target.exists()


# ---------------------------------------------------------------- random programs (item 8's property)
DIRECTION = {"x": 1.0, "y": -0.5, "z": 0.25}


def agree(got, want, scale: float) -> bool:
    """Equal up to rounding: simplify may reorder sums, each rounding by at most an ulp of the
    largest quantity on the way."""
    return abs(got - want) <= 1e-9 * max(1.0, scale)


@settings(max_examples=examples(50, 20_000))
@given(branch_programs())
def test_programs_with_branches_in_branches_run_and_agree_with_the_reference(case):
    """Every generated Python module of a program whose definitions hold branches used inside other
    branches runs, at every point, and agrees with the program's meaning (fuzzing.reference: its tree
    walked with second-order dual numbers, the branch taken only)."""
    text, both = case.program(1), case.program(2)
    g = symdiff.compile_grad(text)
    jvp, hessian = symdiff.compile_jvp(text), symdiff.compile_hessian(text)
    jacobians = [symdiff.compile_jacobian(both, mode=mode) for mode in ("forward", "reverse")]
    for point in case.points:
        references = [reference(tree, point) for tree in case.trees]
        if None in references:
            continue  # a comparison on the way is (nearly) a tie
        first, second = references
        scale = max(first.scale, second.scale)
        args = [point[name] for name in g.inputs]
        at = [BRANCH_INPUTS.index(name) for name in g.inputs]
        value, gradient = first.value, [first.gradient[k] for k in at]
        hess = [[first.hessian[r][c] for c in at] for r in at]
        direction = [DIRECTION[name] for name in g.inputs]

        assert agree(g.value(*args), value, scale)
        assert all(map(agree, g(*args), gradient, [scale] * len(at)))
        got_value, got_gradient = g.value_and_grad(*args)
        assert agree(got_value, value, scale) and all(map(agree, got_gradient, gradient, [scale] * len(at)))

        got_value, slope = jvp(args, direction)
        assert agree(got_value, value, scale) and agree(slope, sum(map(float.__mul__, gradient, direction)), scale)

        got_value, got_gradient, got_hessian = hessian(*args)
        assert agree(got_value, value, scale) and all(map(agree, got_gradient, gradient, [scale] * len(at)))
        assert all(agree(got_hessian[r][c], hess[r][c], scale) for r in range(len(at)) for c in range(len(at)))
        _, _, product = hessian.hvp(args, direction)
        assert all(agree(product[r], sum(map(float.__mul__, hess[r], direction)), scale) for r in range(len(at)))

        for jacobian in jacobians:
            rows = jacobian(*[point[name] for name in jacobian.inputs])
            want = [[ref.gradient[BRANCH_INPUTS.index(name)] for name in jacobian.inputs] for ref in references]
            assert all(agree(got, w, scale) for row, want_row in zip(rows, want) for got, w in zip(row, want_row))
    for module in (g, jvp, hessian, *jacobians):
        check_generated_module(module.source)
