"""Parsing arrays, indices and reductions (issue 21): the trees parse_program builds, and the bad inputs it
refuses with a span."""

import pytest

from symdiff.core.expr import (
    Affine,
    Apply,
    Counter,
    Definition,
    Item,
    Length,
    Num,
    Program,
    Range,
    Reduce,
    Var,
)
from symdiff.core.parse import parse, parse_program
from symdiff.errors import SymdiffError, SymdiffSyntaxError, UnknownNameError


def affine(constant=0, *terms):
    return Affine(constant, tuple(terms))


def loop(index, stop, start=0):
    """for index in range(start, stop); an int bound is a constant Affine."""
    start, stop = (bound if isinstance(bound, Affine) else affine(bound) for bound in (start, stop))
    return Range(index, start, stop)


def x(*indices):
    return Item("x", tuple(indices))


I = affine(0, ("i", 1))  # noqa: E741
LEN_X = Length("x")
UP_TO_LEN_X = affine(0, (LEN_X, 1))


GOOD = [
    ("sum(x[i + 1] for i in range(3))", Reduce("sum", x(affine(1, ("i", 1))), (loop("i", 3),))),
    ("W[0, 1]", Item("W", (affine(0), affine(1)))),
    # every affine spelling normalises: constant, terms by symbol, zero coefficients dropped
    ("sum(x[2*i + 1] for i in range(3))", Reduce("sum", x(affine(1, ("i", 2))), (loop("i", 3),))),
    ("sum(x[(i + 1)*2] for i in range(3))", Reduce("sum", x(affine(2, ("i", 2))), (loop("i", 3),))),
    ("sum(x[-i + 3] for i in range(3))", Reduce("sum", x(affine(3, ("i", -1))), (loop("i", 3),))),
    ("sum(x[i*3 - i - 2*i] for i in range(3))", Reduce("sum", x(affine(0)), (loop("i", 3),))),
    (
        "sum(x[len(x) - 1 - i] for i in range(len(x)))",
        Reduce("sum", x(affine(-1, ("i", -1), (LEN_X, 1))), (loop("i", UP_TO_LEN_X),)),
    ),
    ("sum(x[i] for i in range(2, len(x)))", Reduce("sum", x(I), (loop("i", UP_TO_LEN_X, 2),))),
    (
        "sum(x[i + 1] - x[i] for i in range(len(x) - 1))",
        Reduce("sum", Apply("sub", (x(affine(1, ("i", 1))), x(I))), (loop("i", affine(-1, (LEN_X, 1))),)),
    ),
    ("prod(x[i] for i in range(3))", Reduce("prod", x(I), (loop("i", 3),))),
    # a later range reads an earlier index; ranges outermost first
    (
        "sum(x[i]*x[j] for i in range(len(x)) for j in range(i + 1, len(x)))",
        Reduce(
            "sum",
            Apply("mul", (x(I), x(affine(0, ("j", 1))))),
            (loop("i", UP_TO_LEN_X), loop("j", UP_TO_LEN_X, affine(1, ("i", 1)))),
        ),
    ),
    # an index as a number in the body is a Counter; in a condition too
    (
        "sum((i + 1)*x[i]^2 for i in range(3))",
        Reduce(
            "sum",
            Apply("mul", (Apply("add", (Counter("i"), Num(1.0))), Apply("pow", (x(I), Num(2.0))))),
            (loop("i", 3),),
        ),
    ),
    (
        "sum(where(i > 0, x[i], 0) for i in range(3))",
        Reduce("sum", Apply("where", (Apply("gt", (Counter("i"), Num(0.0))), x(I), Num(0.0))), (loop("i", 3),)),
    ),
    # len(...) in a body is a number
    ("x[0]/len(x)", Apply("div", (x(affine(0)), LEN_X))),
    ("W[0, 0]*len(W, 1)", Apply("mul", (Item("W", (affine(0), affine(0))), Length("W", 1)))),
    # reductions inside bodies and inside reductions
    (
        "log(sum(exp(x[i]) for i in range(len(x))))",
        Apply("log", (Reduce("sum", Apply("exp", (x(I),)), (loop("i", UP_TO_LEN_X),)),)),
    ),
    (
        "sum(sum(W[i, j]*v[j] for j in range(len(W, 1)))^2 for i in range(len(W)))",
        Reduce(
            "sum",
            Apply(
                "pow",
                (
                    Reduce(
                        "sum",
                        Apply("mul", (Item("W", (I, affine(0, ("j", 1)))), Item("v", (affine(0, ("j", 1)),)))),
                        (loop("j", affine(0, (Length("W", 1), 1))),),
                    ),
                    Num(2.0),
                ),
            ),
            (loop("i", affine(0, (Length("W"), 1))),),
        ),
    ),
    # the vector comprehension as the whole output
    ("[x[i]^2 for i in range(3)]", Reduce("vector", Apply("pow", (x(I), Num(2.0))), (loop("i", 3),))),
    # a for clause may run over lines
    ("sum(x[i]\n    for i in range(3))", Reduce("sum", x(I), (loop("i", 3),))),
    # sibling reductions may reuse an index name
    (
        "sum(x[i] for i in range(3)) + sum(t[i] for i in range(3))",
        Apply("add", (Reduce("sum", x(I), (loop("i", 3),)), Reduce("sum", Item("t", (I,)), (loop("i", 3),)))),
    ),
]


@pytest.mark.parametrize(("text", "tree"), GOOD, ids=[text for text, _ in GOOD])
def test_array_syntax_parses_to_the_tree(text, tree):
    assert parse(text) == tree


def test_a_definition_holding_a_reduction_is_read_inside_the_next_reduction():
    program = parse_program("m = sum(x[i] for i in range(len(x)))/len(x); sum((x[i] - m)^2 for i in range(len(x)))")
    mean = Apply("div", (Reduce("sum", x(I), (loop("i", UP_TO_LEN_X),)), LEN_X))
    squares = Reduce("sum", Apply("pow", (Apply("sub", (x(I), Var("m"))), Num(2.0))), (loop("i", UP_TO_LEN_X),))
    assert program == Program((Definition("m", mean),), (squares,), (("x", 1),))


def test_arrays_are_listed_with_their_dimensions_in_order_of_first_appearance():
    program = parse_program("sum(a*exp(-b*t[i]) + c - y[i] for i in range(len(t))) + W[0, 1] + t[0]")
    assert program.arrays == (("t", 1), ("y", 1), ("W", 2))


def test_a_name_indexed_only_by_constants_is_still_an_array():
    program = parse_program("x[0] + x[1]")
    assert program.arrays == (("x", 1),)
    assert program.outputs == (Apply("add", (x(affine(0)), x(affine(1)))),)


def test_scalar_programs_have_no_arrays_and_keep_their_trees():
    assert parse_program("[sin(x), y*2]") == Program(
        (), (Apply("sin", (Var("x"),)), Apply("mul", (Var("y"), Num(2.0))))
    )
    # names that merely contain for, len or range are names
    assert parse("force + length*ranger") == Apply("add", (Var("force"), Apply("mul", (Var("length"), Var("ranger")))))


def test_spans_of_items_indices_and_ranges():
    text = "sum(x[i + 1] for i in range(2, len(x)))"
    tree = parse(text)
    (ranged,) = tree.ranges
    assert [text[a:b] for a, b in (tree.span, tree.body.span, tree.body.indices[0].span, ranged.span)] == [
        text,
        "x[i + 1]",
        "i + 1",
        "for i in range(2, len(x))",
    ]
    assert text[slice(*ranged.stop.terms[0][0].span)] == "len(x)"


def test_long_and_deep_array_programs_parse_without_recursion():
    terms = 20_000
    wide = parse_program(" + ".join(f"x[{k}]" for k in range(terms)))
    assert wide.arrays == (("x", 1),)
    node, count = wide.outputs[0], 1
    while isinstance(node, Apply):  # left-deep: walk down the left spine
        node, count = node.args[0], count + 1
    assert count == terms and node == x(affine(0))
    deep = parse("sin(" * 5_000 + "sum(x[i] for i in range(3))" + ")" * 5_000)
    for _ in range(5_000):
        deep = deep.args[0]
    assert deep == Reduce("sum", x(I), (loop("i", 3),))


# (input, error class, span (start, end), words the message must contain)
BAD = [
    # a name is one thing: scalar, array of one dimension count, definition or loop index
    ("x[0] + x", UnknownNameError, (7, 8), "'x' is an array input (indexed elsewhere); use one element"),
    ("x + 1 + x[0]", UnknownNameError, (0, 1), "'x' is an array input"),
    ("W[0] + W[0, 1]", SymdiffSyntaxError, (7, 14), "'W' has 2 indices here but 1 index at offset 0"),
    ("W[0, 1] + W[1]", SymdiffSyntaxError, (10, 14), "'W' has 1 index here but 2 indices at offset 0"),
    ("sum(x)", SymdiffSyntaxError, (0, 6), "sum(...) needs a for clause: sum(BODY for i in range(n))"),
    ("sum(x, y)", SymdiffSyntaxError, (0, 9), "sum(...) needs a for clause"),
    ("prod(x[0])", SymdiffSyntaxError, (0, 10), "prod(...) needs a for clause"),
    # indices must be affine in loop indices
    ("sum(x[i*i] for i in range(3))", SymdiffSyntaxError, (6, 9), "multiplies two indices"),
    ("sum(x[i*len(x)] for i in range(3))", SymdiffSyntaxError, (6, 14), "multiplies two indices (or lengths)"),
    ("sum(x[i/2] for i in range(3))", SymdiffSyntaxError, (6, 9), "'/' is not allowed"),
    ("sum(x[i^2] for i in range(3))", SymdiffSyntaxError, (6, 9), "'^' is not allowed"),
    ("sum(x[sin(i)] for i in range(3))", SymdiffSyntaxError, (6, 12), "sin(...) is not allowed"),
    ("x[x[0]]", SymdiffSyntaxError, (2, 6), "it reads the array 'x' (an index cannot depend on data)"),
    ("x[0.5]", SymdiffSyntaxError, (2, 5), "0.5 is not an integer"),
    ("sum(x[i + 0.5] for i in range(3))", SymdiffSyntaxError, (6, 13), "an index must be an integer expression affine"),
    ("a*x[a]", SymdiffSyntaxError, (4, 5), "'a' is not a loop index"),
    ("x[sum(x[i] for i in range(3))]", SymdiffSyntaxError, (2, 29), "a reduction is not allowed"),
    ("sum(x[i > 0] for i in range(3))", SymdiffSyntaxError, (8, 9), "a comparison is a condition, not a number"),
    # loop indices live inside their loop only
    ("x[i + 1]", SymdiffSyntaxError, (2, 7), "'i' is not a loop index"),
    ("sum(x[j] for i in range(3))", SymdiffSyntaxError, (6, 7), "'j' is not a loop index"),
    ("sum(x[i] for i in range(3)) + i", UnknownNameError, (30, 31), "'i' is a loop index (for i in range(...)) but"),
    ("y = i; sum(x[i] for i in range(3))", UnknownNameError, (4, 5), "used outside that loop"),
    ("sum(x[i] for i in range(3)) + x[i]", SymdiffSyntaxError, (32, 33), "no enclosing for clause binds it here"),
    ("sum(x[i] for i in range(j) for j in range(3))", SymdiffSyntaxError, (24, 25), "no enclosing for clause"),
    ("sum(sum(x[i] for i in range(3)) for i in range(3))", UnknownNameError, (17, 18), "already the index of an"),
    ("sum(x[i] for i in range(3) for i in range(2))", UnknownNameError, (31, 32), "already the index of an"),
    ("sum(x[x] for x in range(3))", UnknownNameError, (13, 14), "loop index 'x' has the name of an array input"),
    ("m = 1; sum(x[m] for m in range(3))", UnknownNameError, (20, 21), "loop index 'm' has the name of a definition"),
    # bounds: integer constants, len(...) and enclosing indices
    ("sum(x[i] for i in range(n))", SymdiffSyntaxError, (24, 25), "'n' is not a loop index nor a length"),
    ("sum(x[i] for i in range(2.5))", SymdiffSyntaxError, (24, 27), "2.5 is not an integer"),
    ("sum(x[i] for i in range(x[0]))", SymdiffSyntaxError, (24, 28), "a range bound must be an integer expression"),
    ("sum(x[i] for i in range(0))", SymdiffSyntaxError, (9, 26), "has no values (its stop minus its start is 0)"),
    ("sum(x[i] for i in range(3, 3))", SymdiffSyntaxError, (9, 29), "has no values"),
    ("sum(x[i] for i in range(4, 2))", SymdiffSyntaxError, (9, 29), "its stop minus its start is -2"),
    ("sum(x[i] for i in range(len(x), len(x)))", SymdiffSyntaxError, (9, 39), "a range needs start < stop"),
    ("sum(x[i] for i in range(0, 10, 2))", SymdiffSyntaxError, (18, 33), "a step is not supported"),
    ("sum(x[i] for i in range(0, 1, 2, 3))", SymdiffSyntaxError, (18, 35), "range() takes 1 or 2 arguments"),
    # range, sum, prod and len are used only their own way
    ("x[0]*range(3)", SymdiffSyntaxError, (5, 13), "use it in a for clause"),
    ("sum(x[i] for i in y)", SymdiffSyntaxError, (18, 19), "a for clause loops over range(stop) or range(start, stop)"),
    ("sum(x[0] for x[0] in range(3))", SymdiffSyntaxError, (13, 17), "the loop variable must be a name"),
    ("sum(x[0] for 2 in range(3))", SymdiffSyntaxError, (13, 14), "the loop variable must be a name"),
    ("sum(x[i] for i range(3))", SymdiffSyntaxError, (15, 20), "expected 'in' after the loop variable"),
    ("max(x[i] for i in range(3))", SymdiffSyntaxError, (0, 3), "only sum(...) and prod(...) take a for clause"),
    ("(x[i] for i in range(3))", SymdiffSyntaxError, (6, 9), "a for clause goes inside sum(...), prod(...)"),
    ("2*sum", UnknownNameError, (2, 5), "'sum' must be called with a for clause"),
    ("x[0] + len", UnknownNameError, (7, 10), "'len' is a function; call it as len(x)"),
    ("range + 1", UnknownNameError, (0, 5), "'range' gives a loop index its values"),
    ("len = 3; len", UnknownNameError, (0, 3), "cannot define 'len': it is a built-in name"),
    ("len(y) + x[0]", UnknownNameError, (0, 6), "'y' is not an array input"),
    ("len(W, 2) + W[0, 0]", SymdiffSyntaxError, (0, 9), "'W' has 2 dimensions, so the dimension must be 0 to 1"),
    ("len(x, 1) + x[0]", SymdiffSyntaxError, (0, 9), "'x' has 1 dimension, so the dimension must be 0"),
    ("len(x, k) + x[0]", SymdiffSyntaxError, (7, 8), "the dimension k must be a constant integer"),
    ("len(x[0])", SymdiffSyntaxError, (0, 9), "len() takes the name of an array input"),
    ("summ(x[i] for i in range(3))", UnknownNameError, (0, 4), "unknown function 'summ'; did you mean sum?"),
    ("pi[0]", UnknownNameError, (0, 2), "'pi' is a constant; only array inputs can be indexed"),
    ("sin[0]", UnknownNameError, (0, 3), "'sin' is a function"),
    # definitions name numbers: no recurrences, no defined arrays
    ("x[k + 1] = x[k]\nx[0]", SymdiffSyntaxError, (0, 8), "recurrences (a scan) are not supported"),
    ("x = 1; x[0]", UnknownNameError, (7, 11), "'x' is defined (x = ...), so it is a number and cannot be indexed"),
    # a vector comprehension is the whole output or nothing
    ("[x[i] for i in range(3)], 1", SymdiffSyntaxError, (0, 24), "must be the only output"),
    ("[x[0], [x[i] for i in range(3)]]", SymdiffSyntaxError, (7, 31), "must be the only output"),
    ("1 + [x[i] for i in range(3)]", SymdiffSyntaxError, (4, 28), "can only be the whole output"),
    ("v = [x[i] for i in range(3)]; v", SymdiffSyntaxError, (4, 28), "can only be the whole output"),
    ("sum([x[i] for i in range(3)])", SymdiffSyntaxError, (0, 29), "sum(...) needs a for clause"),
    # unbalanced brackets
    ("x[0", SymdiffSyntaxError, (3, 4), "missing ']'"),
    ("2[0]", SymdiffSyntaxError, (1, 2), "unexpected '['; only parentheses group expressions (brackets index"),
    # definitions used inside a reduction are checked as anywhere else
    ("b = sum(x[i]*a for i in range(3)); a = 2; b", UnknownNameError, (13, 14), "'a' is used before its definition"),
]


@pytest.mark.parametrize(("text", "kind", "span", "words"), BAD, ids=[text for text, *_ in BAD])
def test_bad_array_input(text, kind, span, words):
    with pytest.raises(SymdiffError) as caught:
        parse_program(text)
    error = caught.value
    assert type(error) is kind
    assert error.span == span, text[slice(*error.span)]
    assert words in error.message
    assert error.source == text
    assert error.line == 1  # every bad input here goes wrong on its first line, so the caret is easy to place
    assert error.pretty().splitlines()[-1] == "  " + " " * span[0] + "^" * (span[1] - span[0])


def test_there_are_at_least_thirty_distinct_bad_array_inputs():
    assert len({text for text, *_ in BAD}) == len(BAD) >= 30


def test_caret_sits_under_a_non_affine_index():
    with pytest.raises(SymdiffSyntaxError) as caught:
        parse("sum(x[i*i] for i in range(len(x)))")
    assert caught.value.pretty().splitlines()[1:] == ["  sum(x[i*i] for i in range(len(x)))", "        ^^^"]


def test_scalar_hints_do_not_change_and_array_functions_are_suggested_only_when_nothing_else_is_close():
    with pytest.raises(UnknownNameError, match="did you mean sin"):
        parse("sim(x)")
    with pytest.raises(UnknownNameError, match="did you mean prod"):
        parse("product(x)")
