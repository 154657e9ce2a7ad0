"""The reverse sweep and its simplification: exact programs for the worked examples."""

import math

import pytest
from fuzzing import examples, expressions
from hypothesis import given, settings
from hypothesis import strategies as st
from support import evaluate_term

from symdiff.api import build_tape
from symdiff.core.adjoint import Bar, Op, Step, sign_into_constant
from symdiff.core.lower import lower
from symdiff.core.parse import parse
from symdiff.core.reverse import reverse
from symdiff.core.simplify import simplify, simplify_sweep
from symdiff.core.tape import INPUT, Const, Ref


def programs(text, wrt=None):
    tape = lower(parse(text), text)
    raw = reverse(tape, wrt)
    return tape, raw, simplify(raw)


def run(adjoint, point):
    """Execute an adjoint program numerically (independent of rendering)."""
    tape = adjoint.tape
    forward = []
    for instr in tape.instrs:
        if instr.op == INPUT:
            forward.append(point[instr.name])
        else:
            forward.append(evaluate_term(Op(instr.op, instr.args), forward))
    adjoints = {}
    for step in adjoint.steps:
        value = evaluate_term(step.term, forward, adjoints)
        current = adjoints.get(step.target, 0.0)
        adjoints[step.target] = {"=": value, "+=": current + value, "-=": current - value}[step.mode]
    return [evaluate_term(term, forward, adjoints) for term in adjoint.gradient]


def test_textbook_raw_sweep_is_the_textbook():
    _, raw, _ = programs("x1*x2 + sin(x1)")
    zero = [Step(i, "=", Const(0.0), None) for i in range(4)]
    seed = Step(4, "=", Const(1.0), None)
    assert raw.steps == (
        *zero,
        seed,
        Step(2, "+=", Op("mul", (Bar(4), Const(1.0))), 4, operand=0),  # w3_bar += w5_bar * 1 (w5 = w3 + w4)
        Step(3, "+=", Op("mul", (Bar(4), Const(1.0))), 4, operand=1),  # w4_bar += w5_bar * 1
        Step(0, "+=", Op("mul", (Bar(3), Op("cos", (Ref(0),)))), 3, operand=0),  # x1_bar += w4_bar * cos(x1)
        Step(0, "+=", Op("mul", (Bar(2), Ref(1))), 2, operand=0),  # x1_bar += w3_bar * x2 (w3 = x1 * x2)
        Step(1, "+=", Op("mul", (Bar(2), Ref(0))), 2, operand=1),  # x2_bar += w3_bar * x1
    )
    assert raw.gradient == (Bar(0), Bar(1))


def test_textbook_simplified_program():
    _, _, adjoint = programs("x1*x2 + sin(x1)")
    assert adjoint.steps == (
        Step(0, "=", Op("cos", (Ref(0),)), 3),
        Step(0, "+=", Ref(1), 2),
        Step(1, "=", Ref(0), 2),
    )


def test_worked_example_three_symbolic():
    # V = x*y + (x + y)*z: dV/dx = y + z, dV/dy = x + z, dV/dz = x + y
    _, raw, adjoint = programs("x*y + (x + y)*z")
    for program in (raw, adjoint):
        assert run(program, {"x": 2.0, "y": 3.0, "z": 5.0}) == [8.0, 7.0, 5.0]


def test_constant_operands_get_no_derivative_terms():
    _, raw, adjoint = programs("x^2")
    ops = {term.op for step in raw.steps for term in _walk(step.term) if isinstance(term, Op)}
    assert "log" not in ops
    assert adjoint.steps == (Step(0, "=", Op("mul", (Const(2.0), Ref(0))), 1),)
    _, raw, _ = programs("x^y")
    assert "log" in {t.op for step in raw.steps for t in _walk(step.term) if isinstance(t, Op)}


def test_partials_reuse_forward_values():
    _, _, adjoint = programs("exp(x)")
    assert adjoint.steps == (Step(0, "=", Ref(1), 1),)  # x_bar = w2: exp' is exp itself
    _, _, adjoint = programs("sin(x) + cos(x)")
    # sin' = cos(x) and cos' = -sin(x): both were computed by the forward sweep (w3 and w2)
    assert adjoint.steps == (Step(0, "=", Op("neg", (Ref(1),)), 2), Step(0, "+=", Ref(2), 1))


def test_irrelevant_adjoints_are_not_computed():
    _, _, adjoint = programs("sin(x)*exp(y)", wrt=["x"])
    targets = {step.target for step in adjoint.steps}
    assert targets == {0}  # only x_bar; nothing flows to y or to exp(y)'s adjoint
    assert run(adjoint, {"x": 0.5, "y": 0.25}) == [math.cos(0.5) * math.exp(0.25)]


def test_wrt_subset_order_and_absent_names():
    _, _, adjoint = programs("x*y", wrt=["y", "q", "x"])
    assert adjoint.wrt == ("y", "q", "x")
    assert run(adjoint, {"x": 2.0, "y": 3.0}) == [2.0, 0.0, 3.0]


def test_first_contribution_assigns_and_negatives_subtract():
    _, _, adjoint = programs("cos(y) - x*y")
    y_steps = [step for step in adjoint.steps if step.target == 0]
    assert y_steps == [Step(0, "=", Op("neg", (Ref(2),)), 3), Step(0, "-=", Op("sin", (Ref(0),)), 1)]
    assert run(adjoint, {"x": 2.0, "y": 5.0}) == [-5.0, -2.0 - math.sin(5.0)]


def test_simplification_never_changes_numbers():
    for text in ["x1*x2 + sin(x1)", "log(x1) + x1*x2 - sin(x2)", "3*(-x) * -(2*x) - 100*(x - y^2)^2", "x*y + (x + y)*z", "exp(x*y)/(1 + x^2)",
                 "atan2(y, x)^2 - sqrt(x*x + y*y)", "x^y + y^x", "tanh(x - y)*abs(x)"]:
        tape, raw, adjoint = programs(text)
        point = {name: 0.3 + 0.4 * i for i, name in enumerate(tape.inputs)}
        for a, b in zip(run(raw, point), run(adjoint, point)):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_minus_times_minus_is_plus_when_negated_adjoints_are_used_in_place():
    # w3_bar = -w4_bar is substituted where it is read, so (-w2) * (-sin(w2)) must fold to +w2*sin(w2).
    tape, raw, adjoint = programs("sin(x) * -(cos(sin(x)))")
    [slope] = run(adjoint, {"x": 1.0})
    s = math.sin(1.0)
    assert math.isclose(slope, math.cos(1.0) * (s * math.sin(s) - math.cos(s)), rel_tol=1e-15)
    assert run(raw, {"x": 1.0}) == [slope]


def test_constant_factors_multiply_into_one():
    # 100 * (x - 1)^2: the adjoint of w = x - 1 is 100 * (2 * w) before folding, 200 * w after; read
    # once (by x), it is used in place: x_bar = 200 * w.
    _, _, adjoint = programs("100*(x - 1)^2")
    assert [(step.target, step.term) for step in adjoint.steps] == [(0, Op("mul", (Const(200.0), Ref(1))))]


def test_product_gradient_is_linear_in_size():
    from symdiff.core.adjoint import sweep_ops

    n = 300
    tape, _, adjoint = programs("*".join(f"x{i}" for i in range(1, n + 1)))
    function_ops = len(tape.instrs) - len(tape.inputs)
    gradient_ops = sweep_ops(adjoint)
    assert gradient_ops <= 3 * function_ops


def _walk(term):
    stack = [term]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(getattr(node, "args", ()))


def test_contributions_sharing_a_power_of_two_are_summed_under_it():
    # d/dx of (1 - x)^2 + 100*(y - x^2)^2 is -2*(1 - x) - 200*(y - x^2)*(2*x): the two 2s are one.
    tape, raw, adjoint = programs("(1 - x)^2 + 100*(y - x^2)^2")
    x = tape.input_index("x")
    [step] = [step for step in adjoint.steps if step.target == x]
    assert step.mode == "=" and step.term.op == "mul" and step.term.args[0] == Const(-2.0)  # the minus in the 2
    assert set(step.origins) == {index for index, instr in enumerate(tape.instrs) if instr.op in ("sub", "powi") and Ref(x) in instr.args}
    for point in ({"x": 0.3, "y": -1.7}, {"x": 2.5, "y": 6.0}, {"x": -1e60, "y": 3.0}):
        simplified, unsimplified = run(adjoint, point), run(raw, point)
        assert all(math.isclose(a, b, rel_tol=1e-15) for a, b in zip(simplified, unsimplified))
    # Factors other than powers of two stay where the chain rule put them (3*(a + b) is not 3*a + 3*b).
    _, _, thirds = programs("3*x*y + 3*x*z")
    assert all(not step.merged for step in thirds.steps)


def test_a_merged_step_names_every_origin_in_its_comment():
    import symdiff

    source = symdiff.compile_grad("(1 - x)^2 + 100*(y - x^2)^2").source
    assert "x_bar = -2.0 * (w6_bar * x + w2)  # w5 = x ^ 2; w2 = 1 - x" in source


def test_a_shared_factor_gathers_a_few_contributions_at_a_time():
    # x in 9 squares: 2*(four) + 2*(four) + the ninth on its own, so no term grows with the sum.
    text = " + ".join(f"(x - {i})^2" for i in range(1, 10))
    tape, raw, adjoint = programs(text)
    [first, second, third] = [step for step in adjoint.steps if step.target == tape.input_index("x")]
    assert (len(first.origins), len(second.origins), len(third.origins)) == (4, 4, 1)
    assert run(adjoint, {"x": 0.25}) == [sum(2 * (0.25 - i) for i in range(1, 10))]


# compile_grad folds each local partial as it is made (simplify_sweep); simplify(reverse(...)) builds
# the raw sweep first and folds it after. Both must give the very same program.
SWEEP_CASES = [
    "x1*x2 + sin(x1)",
    "log(x1) + x1*x2 - sin(x2)",
    "x^2 - 2^x + pow(x, y) + sqrt(x)/y - atan2(y, x)",
    "100*(x2 - x1^2)^2 + (1 - x1)^2 + 100*(x3 - x2^2)^2 + (1 - x2)^2",
    "cos(x1 - x2)*x1*x2 + cos(x2 - x1)*x2*x1 + tanh(x1) * exp(-x2)",
    "where(x > 0 and not y == 1, x*y, -x) + max(x, y, 2) * min(x, 1)",
    "r = sqrt(x^2 + y^2); exp(-r) * r",
]


@pytest.mark.parametrize("text", SWEEP_CASES)
def test_folding_partials_as_they_are_made_gives_the_simplified_raw_sweep(text):
    tape = build_tape(text, several_outputs=False)
    for wrt in (tape.inputs, tape.inputs[:1], tape.inputs[::-1]):
        assert simplify_sweep(tape, wrt) == simplify(reverse(tape, wrt)), wrt


@settings(max_examples=examples(150, 2_000))
@given(expressions())
def test_both_simplify_paths_agree_on_random_expressions(case):
    tape = build_tape(case.text, several_outputs=False)
    assert simplify_sweep(tape, tape.inputs) == simplify(reverse(tape))


def test_partials_to_one_operand_are_summed():
    # d(x*x)/dx is x + x = 2*x (exact); d(x - x)/dx is 1 - 1 = 0, so w2 = x - x adds nothing to x_bar
    # (the raw program adds w2_bar and subtracts it again), and cos(x - x) contributes nothing either.
    tape, raw, adjoint = programs("x*x")
    assert [(step.mode, step.term) for step in adjoint.steps] == [("=", Op("mul", (Const(2.0), Ref(0))))]
    tape, raw, adjoint = programs("cos(x - x)*y + y*y*x")
    assert all(step.origin != 1 for step in adjoint.steps)  # entry 1 is x - x
    for point in ({"x": 0.3, "y": -1.7}, {"x": 2.5, "y": 6.0}):
        got, want = run(adjoint, point), run(raw, point)
        assert got[0] == point["y"] * point["y"] and math.isclose(got[1], want[1], rel_tol=1e-15)


def test_equal_contributions_are_one_doubled_term():
    # Both orders of one pair: cos(x - y)'s adjoint gets x*y from one product and y*x from the other
    # (one term, 2*(x*y)), and x gets cos(x - y)*y twice (the forward value w5, doubled).
    tape, raw, adjoint = programs("cos(x - y)*x*y + cos(y - x)*y*x")
    x = tape.input_index("x")
    doubled, difference = [step for step in adjoint.steps if step.target == x]
    assert doubled.term.op == "mul" and doubled.term.args[0] == Const(2.0) and len(doubled.origins) == 2
    assert tape.instrs[doubled.term.args[1].index].op == "mul" and difference.term == Bar(2)
    text = "cos(x - y)*x*y + cos(y - x)*y*x"
    import symdiff

    assert "-2.0 * (x * y) * sin(w3)" in symdiff.compile_grad(text).source
    for point in ({"x": 0.3, "y": -1.7}, {"x": 2.5, "y": 6.0}, {"x": -3.0, "y": 1e-3}):
        simplified, unsimplified = run(adjoint, point), run(raw, point)
        assert all(math.isclose(a, b, rel_tol=1e-14) for a, b in zip(simplified, unsimplified))
    # x with five partners: 15 contributions (compared by key, not pair by pair), 5 of them doubled.
    text = " + ".join(f"cos(x - y{i})*x*y{i} + cos(y{i} - x)*y{i}*x + y{i}" for i in range(1, 6))
    tape, raw, adjoint = programs(text)
    x = tape.input_index("x")
    origins = sorted(origin for step in adjoint.steps if step.target == x for origin in step.origins)
    assert len(origins) == 15 and len(set(origins)) == 15
    assert len([step for step in adjoint.steps if step.target == x]) == 1 + 1 + 5  # 2*(four), 2*w, five subs
    point = {"x": 0.7, **{f"y{i}": 0.1 * i for i in range(1, 6)}}
    assert math.isclose(run(adjoint, point)[0], run(raw, point)[0], rel_tol=1e-14)


def test_an_adjoint_only_a_vanishing_partial_reads_is_not_written():
    # cos(x - x)'s adjoint has two contributions (a variable), but the one entry that reads it,
    # x - x, has no partial left: the variable would be dead code.
    import symdiff

    gradient = symdiff.compile_grad("cos(x - x)*y + cos(x - x)*exp(y)")
    assert "w3_bar" not in gradient.source
    assert gradient(0.5, 2.0) == (0.0, 1.0 + math.exp(2.0))


def test_a_stored_negated_product_carries_its_sign_in_the_constant():
    # cos(x - y)'s partial is -sin: the adjoint of x - y is -(2*(x*y)*sin(w3)) and is read twice, so
    # it is stored, as (-2*(x*y))*sin(w3): no negation left to compute in any backend.
    from symdiff.api import build
    from symdiff.codegen.c import render_c
    from symdiff.codegen.numpy import render_numpy

    text = "cos(x - y)*x*y + cos(y - x)*y*x"
    tape, raw, adjoint = programs(text)
    stored = next(step for step in adjoint.steps if step.target == 2)  # entry 2 is x - y
    assert stored.mode == "=" and stored.term.op == "mul" and stored.term.args[0].args[0] == Const(-2.0)
    c_source = render_c(build(text).adjoint)[0]
    assert "w3_bar = -2.0 * (x * y) * sin(w3);" in c_source and "-(" not in c_source
    # Rosenbrock's x_bar is -(2*(...)): NumPy multiplies by -2.0 instead of negating the array after.
    rosenbrock = build("100*(y - x^2)^2 + (1 - x)^2").adjoint
    assert "numpy.array(-2.0)" in render_numpy(rosenbrock) and "negative" not in render_numpy(rosenbrock)


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(), st.floats(), st.sampled_from(["mul", "div"]))
def test_moving_the_sign_into_the_constant_is_exact(c, u, v, op):
    # -((c * u) op v) and ((-c) * u) op v agree bit for bit, signed zeros and infinities included
    # (folded constants are finite; the values need not be).
    term = Op("neg", (Op(op, (Op("mul", (Const(c), Ref(0))), Ref(1))),))
    moved = sign_into_constant(term)
    assert moved.args[0].args[0] == Const(-c)
    try:
        want = evaluate_term(term, [u, v])
    except ZeroDivisionError:
        return
    got = evaluate_term(moved, [u, v])
    assert got == want or (math.isnan(got) and math.isnan(want))
    assert math.copysign(1.0, got) == math.copysign(1.0, want) or math.isnan(want)
