"""The program representation itself: what the core hands every backend (symdiff/core/program.py)."""

import pytest

from symdiff.api import build, build_tape
from symdiff.codegen.python import program_text, python_imports
from symdiff.core.adjoint import Bar, Op
from symdiff.core.derivatives import hessian_program, jacobian_program, jvp_program
from symdiff.core.expr import Affine
from symdiff.core.forward import Dot
from symdiff.core.program import (
    Assign,
    Check,
    Entry,
    Flag,
    Header,
    If,
    Index,
    Loop,
    Matrix,
    Param,
    Program,
    Scalar,
    Section,
    Vector,
    build_program,
    flat,
    nested,
    operations,
)
from symdiff.core.tape import Const, Ref

TEXTBOOK = "x1*x2 + sin(x1)"  # entries: 0 x1, 1 x2, 2 x1*x2, 3 sin(x1), 4 w3 + w4


def targets(section: Section) -> list:
    return [node.target for node in section.body]


def test_the_textbook_program_has_three_entries_and_a_header_of_data():
    program = build_program(build(TEXTBOOK).adjoint)
    assert program.header == Header("gradient", TEXTBOOK, ("x1", "x2"), ("x1", "x2"))
    assert [entry.name for entry in program.entries] == ["f", "grad", "value_and_grad"]
    assert all(entry.params == (Param("x1"), Param("x2")) for entry in program.entries)
    f, grad, value_and_grad = program.entries
    assert f.results == (Scalar("value", Ref(4)),)
    assert grad.results == (Vector("gradient", (Bar(0), Bar(1))),)
    assert value_and_grad.results == (Scalar("value", Ref(4)), Vector("gradient", (Bar(0), Bar(1))))


def test_f_computes_the_forward_sweep_and_grad_only_what_its_reverse_sweep_reads():
    f, grad, value_and_grad = build_program(build(TEXTBOOK).adjoint).entries
    assert [section.title for section in f.body] == ["forward sweep"]
    assert f.body[0].body == (
        Assign(Ref(2), "=", Op("mul", (Ref(0), Ref(1)))),
        Assign(Ref(3), "=", Op("sin", (Ref(0),))),
        Assign(Ref(4), "=", Op("add", (Ref(2), Ref(3)))),
    )
    # grad reads no forward value: no forward sweep at all; each adjoint is one statement whose
    # origins are the entries whose partials it adds (w4 = sin(x1), then w3 = x1 * x2).
    (reverse,) = grad.body
    assert reverse.title == "reverse sweep" and reverse.seed == Bar(4)
    assert reverse.body == (
        Assign(Bar(0), "=", Op("add", (Op("cos", (Ref(0),)), Ref(1))), (3, 2)),
        Assign(Bar(1), "=", Ref(0), (2,)),
    )
    assert [targets(section) for section in value_and_grad.body] == [[Ref(2), Ref(3), Ref(4)], [Bar(0), Bar(1)]]


def test_grad_checks_a_domain_f_would_leave_instead_of_computing_it():
    # log(x1) + x1*x2 - sin(x2): entry 1 is log(x1). grad reads 1/x1, not log(x1), but raises where f raises.
    grad = build_program(build("log(x1) + x1*x2 - sin(x2)").adjoint, ("grad",)).entries[0]
    assert grad.body[0] == Section("forward sweep", (Check(1),))


def test_a_value_one_reverse_term_reads_is_computed_inside_it():
    # x*y + (x + y)*z (entries 0 x, 1 y, 2 x*y, 3 x + y, 4 z, 5 w4 * z): w4 is read only by z's
    # adjoint, so no forward line computes it.
    (grad,) = build_program(build("x*y + (x + y)*z").adjoint, ("grad",)).entries
    assert [section.title for section in grad.body] == ["reverse sweep"]
    assert grad.body[0].body[-1] == Assign(Bar(4), "=", Op("add", (Ref(0), Ref(1))), (5,))


NESTED = "where(x > 0, where(y > 0, log(x*y), x), -x)"
# entries: 0 x, 1 x > 0, 2 y, 3 y > 0, 4 x*y, 5 log(w5), 6 inner where, 7 -x, 8 outer where
X_POSITIVE = Assign(Ref(1), "=", Op("gt", (Ref(0), Const(0.0))))
Y_POSITIVE = Assign(Ref(3), "=", Op("gt", (Ref(2), Const(0.0))))
PRODUCT = Assign(Ref(4), "=", Op("mul", (Ref(0), Ref(2))))
LOG = Assign(Ref(5), "=", Op("log", (Ref(4),)))
INNER = Assign(Ref(6), "=", Op("where", (Ref(3), Ref(5), Ref(0))))
MINUS = Assign(Ref(7), "=", Op("neg", (Ref(0),)))
OUTER = Assign(Ref(8), "=", Op("where", (Ref(1), Ref(6), Ref(7))))


def test_a_where_inside_a_where_is_an_if_inside_an_if():
    (f,) = build_program(build(NESTED).adjoint, ("f",)).entries
    assert f.body == (
        Section("forward sweep", (
            X_POSITIVE,
            If(Ref(1), (Y_POSITIVE, If(Ref(3), (PRODUCT, LOG)), INNER), (MINUS,)),
            OUTER,
        )),
    )


def test_flat_tests_one_flag_per_branch_and_keeps_the_order():
    (f,) = build_program(build(NESTED).adjoint, ("f",)).entries
    both = Flag(((1, True), (3, True)))
    assert flat(f).body[0].body == (
        X_POSITIVE,
        If(Ref(1), (Y_POSITIVE,)),
        Assign(both, "=", Op("and", (Ref(1), Ref(3)))),
        If(both, (PRODUCT, LOG)),
        If(Ref(1), (INNER,)),
        If(Ref(1), (), (MINUS,)),
        OUTER,
    )


def test_a_flag_for_the_branch_not_taken_negates_its_condition_and_is_assigned_once():
    inner_else = ((1, True), (3, False))
    body = nested([((), X_POSITIVE), (inner_else[:1], Y_POSITIVE), (inner_else, INNER), (inner_else, MINUS),
                   ((), OUTER), (inner_else, LOG)])
    assert body == (X_POSITIVE, If(Ref(1), (Y_POSITIVE, If(Ref(3), (), (INNER, MINUS)))), OUTER,
                    If(Ref(1), (If(Ref(3), (), (LOG,)),)))
    entry = Entry("f", (), "", (Section("s", body),), ())
    flag = Flag(inner_else)
    assert flat(entry).body[0].body == (
        X_POSITIVE, If(Ref(1), (Y_POSITIVE,)), Assign(flag, "=", Op("and", (Ref(1), Op("not", (Ref(3),))))),
        If(flag, (INNER, MINUS)), OUTER, If(flag, (LOG,)),
    )


def test_nested_code_a_thousand_branches_deep_is_built_and_flattened_without_recursion():
    depth = 1000
    path = tuple((k, True) for k in range(depth))
    body = nested([(path, X_POSITIVE)])
    node = body[0]
    for _ in range(depth - 1):
        node = node.body[0]
    assert node == If(Ref(depth - 1), (X_POSITIVE,))
    flattened = flat(Entry("f", (), "", (Section("s", body),), ())).body[0].body
    assert len(flattened) == depth - 1 + 1  # one flag per branch below the first, then one If
    assert flattened[-1] == If(Flag(path), (X_POSITIVE,))


def test_imports_come_from_the_rows_the_program_applies():
    program = build_program(build("atan2(y, x) + abs(x) + sign(y)").adjoint)
    assert operations(program) == {"atan2", "abs", "sign", "add", "sub", "div", "powi"}
    assert python_imports(operations(program)) == ("from math import atan2, copysign, fabs",)
    # Only what is computed: f alone never calls cos; grad alone never calls sin (its forward sweep is dead).
    textbook = build(TEXTBOOK).adjoint
    assert python_imports(operations(build_program(textbook, ("f",)))) == ("from math import sin",)
    assert python_imports(operations(build_program(textbook, ("grad",)))) == ("from math import cos",)
    assert python_imports(frozenset({"add", "where", "gt"})) == ()


def test_a_loop_is_printed_as_a_for_loop_and_runs():
    tape = build_tape("x*y")  # entries: 0 x, 1 y, 2 x*y
    i = Index("i")
    body = (
        Assign(Ref(2), "=", Const(0.0)),
        Loop(i, Affine(0), Affine(4), (Assign(Ref(2), "+=", Op("mul", (Op("mul", (Ref(0), Ref(1))), i)), (2,)),)),
    )
    entry = Entry("f", (Param("x"), Param("y")), "x*y summed over i*x*y.", (Section("loop", body),),
                  (Scalar("value", Ref(2)),))
    source = program_text(Program(Header("gradient", "x*y", ("x", "y"), ()), tape, (entry,)))
    assert source.split("\n\n\n")[1] == (
        "def f(x, y):\n"
        '    """x*y summed over i*x*y."""\n'
        "    # loop\n"
        "    w3 = 0.0\n"
        "    for i in range(4):\n"
        "        w3 += x * y * i  # w3 = x * y\n"
        "    return w3\n"
    )
    namespace: dict = {}
    exec(source, namespace)
    assert namespace["f"](2.0, 3.0) == 36.0


def test_a_branch_inside_a_loop_is_flattened_inside_it():
    path = ((1, True), (3, True))
    loop = Loop(Index("i"), Affine(0), Affine(2), nested([(path, PRODUCT)]))
    entry = flat(Entry("f", (), "", (Section("s", (loop,)),), ()))
    assert entry.body[0].body == (
        Loop(Index("i"), Affine(0), Affine(2), (Assign(Flag(path), "=", Op("and", (Ref(1), Ref(3)))), If(Flag(path), (PRODUCT,)))),
    )


def test_derivative_programs_say_what_they_return():
    tape = build_tape("x*y, sin(x)")
    jacobian = jacobian_program(tape, ("x", "y"), "forward")
    assert jacobian.header == Header("jacobian", "x*y, sin(x)", ("x", "y"), ("x", "y"), "forward")
    assert [entry.name for entry in jacobian.entries] == ["jacobian", "value_and_jacobian"]
    (rows,) = jacobian.entries[0].results
    assert type(rows) is Matrix and [len(row) for row in rows.rows] == [2, 2]
    assert [type(result) for result in jacobian.entries[1].results] == [Vector, Matrix]

    jvp = jvp_program(build_tape("x*y"))
    assert jvp.entries[0].params == (Param("x"), Param("y"), Param("x", tangent=True), Param("y", tangent=True))
    assert [result.role for result in jvp.entries[0].results] == ["value", "derivative"]

    programs = build("x^2*y")
    hessian = hessian_program(programs.tape, programs.adjoint)
    assert [entry.name for entry in hessian.entries] == ["hessian", "hvp"]
    assert [result.role for result in hessian.entries[1].results] == ["value", "gradient", "hvp"]
    assert all(isinstance(term, Dot | Const | Op) for term in hessian.entries[1].results[2].terms)


def test_a_derivative_program_marks_a_domain_check_nobody_reads():
    # log(x) * 0 + x: the Jacobian reads no forward value, but log(x) raises where f raises.
    program = jacobian_program(build_tape("log(x) * 0 + x"), ("x",), "reverse")
    jacobian = program.entries[0]
    assert jacobian.body == (Section("forward sweep", (Assign(Ref(1), "=", Op("log", (Ref(0),)), (), read=False),)),)
    assert jacobian.results == (Matrix("jacobian", ((Const(1.0),),)),)
    namespace: dict = {}
    exec(program_text(program), namespace)
    assert namespace["jacobian"](2.0) == ((1.0,),)
    with pytest.raises(ValueError, match="math domain error"):
        namespace["jacobian"](-1.0)
