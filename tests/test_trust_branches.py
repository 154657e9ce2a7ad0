"""Branches that the generated code must run, not only prove: definitions used inside branches
(issue 19, item 8) and branches nested deeper than CPython's indentation allows (item 11)."""

import math

import pytest
from fuzzing import check_generated_module

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
        for depth, (condition, _) in enumerate(tape.path(index)):
            assert condition < index
            assert tape.path(index)[:depth][: len(tape.path(condition))] == tape.path(condition)


def test_a_tape_that_is_computable_in_order_keeps_its_numbering():
    tape = build_tape("u = x * y; where(x > 0, u, 0) + u")  # u is used outside the branch too
    assert [(instr.op, instr.name) for instr in tape.instrs] == [
        ("input", "x"), ("input", "y"), ("mul", ""), ("gt", ""), ("where", ""), ("add", ""),
    ]
