"""Array programs: core.unroll writes sums out term by term, and verify proves gradients against
sympy.diff of that at every length from the least the bounds allow up to 5, running the emitted code.

The expected unrolled expressions are written here by hand with SymPy, independently of symdiff."""

import pytest
import sympy

from symdiff.core.parse import parse_program
from symdiff.core.pipeline import build_tape
from symdiff.core.unroll import element, elements, unroll
from symdiff.errors import ArgumentError


def symbols(array: str, n: int) -> list[sympy.Symbol]:
    return [sympy.Symbol(f"{array}[{i}]", real=True) for i in range(n)]


def unrolled(source: str, **shapes) -> tuple[sympy.Expr, ...]:
    return unroll(parse_program(source), shapes, source)


# --- core.unroll ---------------------------------------------------------------------------------


def test_rosenbrock_unrolls_to_its_terms_at_each_length():
    source = "sum(100*(x[i + 1] - x[i]^2)^2 + (1 - x[i])^2 for i in range(len(x) - 1))"
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
