"""Lowering to the Wengert list: the textbook trace, sharing, folding, invariants, depth."""

import math

import pytest

import symdiff
from symdiff import DomainError
from symdiff.core import primitives
from symdiff.core.lower import lower, natural_order
from symdiff.core.parse import parse
from symdiff.core.tape import INPUT, Const, Instr, Ref


def tape_of(text):
    return lower(parse(text), text)


def assert_invariants(tape):
    for index, instr in enumerate(tape.instrs):
        for arg in instr.args:
            if isinstance(arg, Ref):
                assert arg.index < index  # defined before use
        assert tape.keys[instr.key] == index  # every entry is its key's only entry
    for (op, args), index in tape.keys.items():  # besides, a commutative entry's operands reversed
        instr = tape.instrs[index]
        assert (op, args) == instr.key or (primitives.lookup(op).commutative and args == instr.args[::-1])


def test_textbook_forward_trace():
    tape = tape_of("x1*x2 + sin(x1)")
    assert tape.instrs == (
        Instr(INPUT, (), "x1"),
        Instr(INPUT, (), "x2"),
        Instr("mul", (Ref(0), Ref(1))),
        Instr("sin", (Ref(0),)),
        Instr("add", (Ref(2), Ref(3))),
    )
    assert tape.output == Ref(4)
    assert_invariants(tape)


def test_identical_subexpressions_are_shared():
    tape = tape_of("sin(x*y) + cos(x*y)")
    assert [instr.op for instr in tape.instrs] == [INPUT, INPUT, "mul", "sin", "cos", "add"]
    assert_invariants(tape)


def test_constants_fold():
    tape = tape_of("x * (2 + 3) + sin(0) * y + 2^3")
    assert Instr("mul", (Ref(0), Const(5.0))) in tape.instrs
    assert Instr("add", (Ref(1), Const(8.0))) in tape.instrs or any(Const(8.0) in i.args for i in tape.instrs)
    assert tape_of("2*pi").output == Const(2 * math.pi)


def test_integral_exponent_is_powi_and_others_pow():
    assert tape_of("x^2").instrs[1].op == "powi"
    assert tape_of("x^2.5").instrs[1].op == "pow"
    assert tape_of("x^y").instrs[2].op == "pow"


@pytest.mark.parametrize(
    ("text", "words"),
    [("log(-1)", "log(-1.0) has no real value"), ("1/0", "div(1.0, 0.0)"), ("sqrt(-4)", "sqrt(-4.0)"),
     ("exp(1000)", "exp(1000.0)"), ("x + asin(2)", "asin(2.0)")],
)
def test_constant_domain_errors_point_at_the_subexpression(text, words):
    with pytest.raises(DomainError) as caught:
        tape_of(text)
    assert words in caught.value.message
    assert caught.value.span[1] > caught.value.span[0]


def test_inputs_in_natural_order():
    assert tape_of("x10 + x2 + x1 + b + a").inputs == ("a", "b", "x1", "x2", "x10")
    assert natural_order(["x10", "x9", "y", "x1", "x"]) == ("x", "x1", "x9", "x10", "y")


def test_deep_and_wide_expressions_lower_without_recursion():
    deep = "sin(" * 20_000 + "x" + ")" * 20_000
    tape = tape_of(deep)
    assert len(tape.instrs) == 20_001
    wide = " + ".join(f"x{i}*x{i + 1}" for i in range(3_000))
    tape = tape_of(wide)
    assert len(tape.inputs) == 3_001
    assert_invariants(tape)


def test_signed_zeros_are_different_constants():
    # atan2 tells -0.0 from 0.0 on its cut: sharing y * -0.0 with y * 0.0 would give -2 pi, not 0.
    tape = tape_of("atan2(y*-0.0, x) + atan2(y*0.0, x)")
    products = [instr for instr in tape.instrs if instr.op == "mul"]
    assert [math.copysign(1.0, instr.args[1].value) for instr in products] == [-1.0, 1.0]
    assert symdiff.compile_grad("atan2(y*-0.0, x) + atan2(y*0.0, x)").value(-1.0, 1.0) == 0.0
    assert Const(0.0) != Const(-0.0) and len({Const(0.0), Const(-0.0)}) == 2


def test_commutative_operands_in_either_order_are_one_entry():
    tape = tape_of("x*y + y*x + (x + 1) * (1 + x)")
    assert [instr.op for instr in tape.instrs].count("mul") == 2  # x*y, and (x + 1)^2 as a product
    assert [instr.op for instr in tape.instrs].count("add") == 3
    assert_invariants(tape)
    gradient = symdiff.compile_grad("x*y + y*x")
    assert gradient.value(3.0, 5.0) == 30.0 and gradient(3.0, 5.0) == (10.0, 6.0)


def test_an_even_function_of_b_minus_a_is_the_entry_of_a_minus_b():
    tape = tape_of("cos(x - y) * cos(y - x) + cosh(y - x) + abs(x - y) + abs(y - x)")
    ops = [instr.op for instr in tape.instrs]
    assert ops.count("cos") == ops.count("abs") == 1 and ops.count("sub") == 2  # y - x stays: cosh reads it
    assert_invariants(tape)
    assert ops == ["input", "input", "sub", "cos", "mul", "sub", "cosh", "add", "abs", "add", "add"]
    # The operand y - x added only for the shared function is taken back: no unused entry.
    assert [instr.op for instr in tape_of("cos(x - y) + cos(y - x)").instrs] == ["input", "input", "sub", "cos", "add"]


def test_odd_functions_of_b_minus_a_stay_apart():
    # At x = y, sin(y - x) is +0.0 while -sin(x - y) would be -0.0 (and 1/sin of them +-inf).
    ops = [instr.op for instr in tape_of("sin(x - y) + sin(y - x)").instrs]
    assert ops.count("sin") == 2
    shared_wrongly = -2 * math.pi  # what atan2(-0.0, -1) - atan2(+0.0, -1) would give
    assert symdiff.compile_grad("atan2(sin(y - x), -1) - atan2(sin(x - y), -1)").value(2.0, 2.0) == 0.0 != shared_wrongly


def test_shared_twins_compute_exactly_what_the_text_says():
    text = "cos(x - y) * x * y + cos(y - x) * y * x + cosh(y - x) * abs(y - x) - abs(x - y)"
    gradient = symdiff.compile_grad(text)
    rng = __import__("random").Random(5)
    for _ in range(200):
        x, y = rng.uniform(-4, 4), rng.uniform(-4, 4)
        as_written = math.cos(x - y) * x * y + math.cos(y - x) * y * x + math.cosh(y - x) * abs(y - x) - abs(x - y)
        assert gradient.value(x, y) == as_written  # bit for bit: the identities are exact in IEEE
    assert gradient.verify().ok
