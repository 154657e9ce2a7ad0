"""SymPy input: convert() builds symdiff's AST directly (no recursion, no text parsing), and
compile_grad(sympy_expr) gives what compile_grad(text) gives."""

import pytest
import sympy
from support import WORKED, close

import symdiff
from symdiff.core import primitives
from symdiff.core.expr import Apply, Num, Var
from symdiff.core.from_sympy import convert
from symdiff.core.parse import parse
from symdiff.errors import SymdiffError

x, y, z = sympy.symbols("x y z")

CONVERSIONS = [
    (x * y + sympy.sin(x), "x * y + sin(x)"),
    (x - y, "x - y"),
    (2 * x - 3 * y, "2 * x - 3 * y"),
    (-x, "-x"),
    (x / y, "x / y"),
    (x / 3, "x / 3"),
    (y / x**2, "y / x ^ 2"),
    (sympy.sqrt(x), "sqrt(x)"),
    (1 / sympy.sqrt(x), "1 / sqrt(x)"),
    (x**y, "x ^ y"),
    (2**x, "2 ^ x"),
    (sympy.exp(x), "exp(x)"),
    (sympy.E**x, "exp(x)"),
    (sympy.Abs(x) + sympy.sign(y), "abs(x) + sign(y)"),
    (sympy.atan2(y, x), "atan2(y, x)"),
    (sympy.Float(2.5) * x, "2.5 * x"),
]


@pytest.mark.parametrize(("expr", "text"), CONVERSIONS, ids=[text for _, text in CONVERSIONS])
def test_conversion_reads_as_a_person_would_write_it(expr, text):
    source, tree = convert(expr)
    assert source == text
    assert tree == parse(text)


def test_many_terms_fold_left_into_binary_nodes():
    _, tree = convert(x + y + z)
    assert tree == Apply("add", (Apply("add", (Var("x"), Var("y"))), Var("z")))
    _, tree = convert(x * y * z)
    assert tree == Apply("mul", (Apply("mul", (Var("x"), Var("y"))), Var("z")))


def test_numbers_and_constants():
    _, tree = convert(sympy.pi * x + sympy.E + sympy.Rational(1, 4))
    values = sorted(node.value for node in _walk(tree) if isinstance(node, Num))
    assert values == pytest.approx(sorted([0.25, 2.718281828459045, 3.141592653589793]))


def _walk(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(getattr(node, "args", ()))


@pytest.mark.parametrize(("text", "point", "value", "partials"), WORKED, ids=[w[0] for w in WORKED])
def test_worked_examples_from_sympy(text, point, value, partials):
    expr = sympy.sympify(text, locals={name: sympy.Symbol(name) for name in point})
    gradient = symdiff.compile_grad(expr)
    got_value, got = gradient.value_and_grad(**point)
    assert close(got_value, value) and all(close(a, b) for a, b in zip(got, partials))


USER_ROWS = [row for row in primitives.TABLE.values() if row.user_callable]


@pytest.mark.parametrize("row", USER_ROWS, ids=[row.name for row in USER_ROWS])
def test_every_table_function_converts_and_agrees_with_text_input(row):
    symbols = [sympy.Symbol(f"{param}1") for param in row.params]
    sympy_function = {"abs": sympy.Abs, "sign": sympy.sign}.get(row.name, row.sympy)  # as users write them
    expr = sympy_function(*symbols)
    from_sympy = symdiff.compile_grad(expr)
    from_text = symdiff.compile_grad(f"{row.name}({', '.join(map(str, symbols))})")
    point = [low + 0.37 * (high - low) for low, high in row.domain]
    assert from_sympy.inputs == from_text.inputs
    value, partials = from_sympy.value_and_grad(*point)
    expected_value, expected = from_text.value_and_grad(*point)
    assert (value, *partials) == pytest.approx((expected_value, *expected), rel=1e-14)


def test_deep_sympy_trees_convert_without_recursion():
    expr = x
    for _ in range(3000):
        expr = sympy.sin(expr, evaluate=False)  # SymPy's own evaluation recurses on deep trees
    _, tree = convert(expr)
    depth = 0
    while isinstance(tree, Apply):
        tree, depth = tree.args[0], depth + 1
    assert depth == 3000


def test_no_string_round_trip(monkeypatch):
    import symdiff.core.parse

    def refuse(*_):
        raise AssertionError("convert must not parse text")

    monkeypatch.setattr(symdiff.core.parse, "parse", refuse)
    assert convert(x * sympy.cos(y))[1] == Apply("mul", (Var("x"), Apply("cos", (Var("y"),))))


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (sympy.gamma(x), "SymPy function gamma is not supported"),
        (sympy.Function("q")(x), "SymPy function q is not supported"),
        (sympy.I * x, "not supported"),
        (sympy.Symbol("a b") + 1, "not a valid symdiff variable name"),
        (sympy.Symbol("pi") * 2, "name of a symdiff constant"),
        (sympy.Symbol("sin") * 2, "name of a symdiff function"),
    ],
)
def test_unsupported_input_is_a_symdiff_error_naming_it(expr, message):
    with pytest.raises(SymdiffError, match=message):
        convert(expr)


def test_non_expressions_are_rejected():
    with pytest.raises(SymdiffError, match="string or a SymPy expression"):
        symdiff.compile_grad(3.5)
