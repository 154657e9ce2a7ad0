"""The grammar: precedence and associativity, numbers, names, spans and every kind of bad input."""

import pytest

from symdiff import SymdiffError, SymdiffSyntaxError, UnknownNameError
from symdiff.core.expr import Apply, Num, Var
from symdiff.core.parse import parse
from symdiff.core.printing import expression_text

# Each input against the same expression written with every parenthesis explicit.
PRECEDENCE = [
    ("-x^2", "-(x^2)"),
    ("-x**2", "-(x^2)"),
    ("2^-x", "2^(-x)"),
    ("x^2^3", "x^(2^3)"),
    ("x**2**3", "x^(2^3)"),
    ("x^-y^z", "x^(-(y^z))"),
    ("a - b - c", "(a - b) - c"),
    ("a / b / c", "(a / b) / c"),
    ("a + b * c", "a + (b * c)"),
    ("a * b + c", "(a * b) + c"),
    ("a / b * c", "(a / b) * c"),
    ("-a * b", "(-a) * b"),
    ("a * -b", "a * (-b)"),
    ("--a", "-(-a)"),
    ("+a", "a"),
    ("-a + b", "(-a) + b"),
    ("(a + b) * c", "(a + b) * c"),
    ("a^b*c", "(a^b)*c"),
    ("pow(a, b)", "a^b"),
    ("2*x^2 - 3*x + 1", "((2*(x^2)) - (3*x)) + 1"),
    ("sin(x)^2", "(sin(x))^2"),
    ("x\n  +\n\ty", "x + y"),
]


@pytest.mark.parametrize(("text", "explicit"), PRECEDENCE)
def test_precedence_and_associativity(text, explicit):
    assert parse(text) == parse(explicit)


def test_tree_shapes():
    assert parse("-x^2") == Apply("neg", (Apply("pow", (Var("x"), Num(2.0))),))
    assert parse("x^2^3") == Apply("pow", (Var("x"), Apply("pow", (Num(2.0), Num(3.0)))))
    assert parse("atan2(y, x)") == Apply("atan2", (Var("y"), Var("x")))


@pytest.mark.parametrize(
    ("text", "value"),
    [("2", 2.0), ("2.5", 2.5), (".5", 0.5), ("1e-3", 0.001), ("2E2", 200.0), ("2.", 2.0), ("1.5e+2", 150.0)],
)
def test_numbers(text, value):
    assert parse(text) == Num(value)


def test_constants_and_identifiers():
    import math

    assert parse("pi") == Num(math.pi)
    assert parse("e") == Num(math.e)
    assert parse("_a1_B") == Var("_a1_B")
    assert parse("lambda") == Var("lambda")


def test_spans_point_into_the_source():
    tree = parse("x1*x2 + sin(x1)")
    assert tree.span == (0, 15)
    assert tree.args[0].span == (0, 5)
    assert tree.args[1].span == (8, 15)
    assert tree.args[1].args[0].span == (12, 14)


# (input, error class, line, column, words the message must contain)
BAD = [
    ("", SymdiffSyntaxError, 1, 1, "empty expression"),
    ("   \n ", SymdiffSyntaxError, 1, 1, "empty expression"),
    ("2x", SymdiffSyntaxError, 1, 2, "no implicit multiplication"),
    ("x y", SymdiffSyntaxError, 1, 3, "no implicit multiplication"),
    ("2(x+1)", SymdiffSyntaxError, 1, 2, "no implicit multiplication"),
    ("(a)(b)", SymdiffSyntaxError, 1, 4, "no implicit multiplication"),
    ("sin x", SymdiffSyntaxError, 1, 5, "no implicit multiplication"),
    ("x +", SymdiffSyntaxError, 1, 4, "unexpected end of input; expected an expression"),
    ("sin(", SymdiffSyntaxError, 1, 5, "unexpected end of input"),
    ("(x", SymdiffSyntaxError, 1, 3, "missing ')'"),
    ("x)", SymdiffSyntaxError, 1, 2, "unexpected ')'"),
    ("x * * y", SymdiffSyntaxError, 1, 5, "unexpected '*'"),
    ("x $ y", SymdiffSyntaxError, 1, 3, "unexpected character '$'"),
    ("x − y", SymdiffSyntaxError, 1, 3, "did you mean '-'"),
    ("x × y", SymdiffSyntaxError, 1, 3, "did you mean '*'"),
    ("2[0]", SymdiffSyntaxError, 1, 2, "only parentheses group expressions (brackets index an array input"),
    ("a{1}", SymdiffSyntaxError, 1, 2, "only parentheses"),
    ("1e400", SymdiffSyntaxError, 1, 1, "too large"),
    ("x = 1", SymdiffSyntaxError, 1, 6, "after the definitions, the last statement must be the output"),
    ("x = 1; x", SymdiffSyntaxError, 1, 1, "expected one expression, not definitions"),
    ("x; y", SymdiffSyntaxError, 1, 4, "only the last statement is the output"),
    ("x\ny = 2; y", SymdiffSyntaxError, 2, 1, "only the last statement is the output"),
    ("a = 1; a = 2; a", SymdiffSyntaxError, 1, 8, "'a' is defined twice"),
    ("b = a + 1; a = 2; b", UnknownNameError, 1, 5, "'a' is used before its definition"),
    ("sin = 2; x", UnknownNameError, 1, 1, "cannot define 'sin'"),
    ("[x, y", SymdiffSyntaxError, 1, 6, "missing ']'"),
    ("sn(x)", UnknownNameError, 1, 1, "unknown function 'sn'; did you mean sin?"),
    ("sinus(x)", UnknownNameError, 1, 1, "unknown function 'sinus'"),
    ("ln(x)", UnknownNameError, 1, 1, "unknown function 'ln'"),
    ("sin", UnknownNameError, 1, 1, "'sin' is a function"),
    ("x + exp", UnknownNameError, 1, 5, "'exp' is a function"),
    ("sin(x, y)", SymdiffSyntaxError, 1, 1, "sin() takes 1 argument (x), got 2"),
    ("atan2(x)", SymdiffSyntaxError, 1, 1, "atan2() takes 2 arguments (y, x), got 1"),
    ("pow(x)", SymdiffSyntaxError, 1, 1, "pow() takes 2 arguments"),
    ("sin()", SymdiffSyntaxError, 1, 5, "unexpected ')'"),
    ("x,y", SymdiffSyntaxError, 1, 3, "expected one output, got 2"),
    ("[x, y]", SymdiffSyntaxError, 1, 5, "expected one output, got 2"),
    ("x\n+ y\n+ 2z", SymdiffSyntaxError, 3, 4, "no implicit multiplication"),
    ("x ^^ 2", SymdiffSyntaxError, 1, 4, "unexpected '^'"),
    ("x ***2", SymdiffSyntaxError, 1, 5, "unexpected '*'"),
    ("'x'", SymdiffSyntaxError, 1, 1, "unexpected character"),
    # and, or, not are keywords everywhere, not names that happen to fit where no condition can go
    ("not + 1", SymdiffSyntaxError, 1, 1, "'not' combines conditions, inside where(condition, a, b)"),
    ("x - and", SymdiffSyntaxError, 1, 5, "'and' combines conditions"),
    ("x +\n\n   @", SymdiffSyntaxError, 3, 4, "unexpected character '@'"),
    ("2 x", SymdiffSyntaxError, 1, 3, "missing operator between '2' and 'x'"),
    # a long run of blanks before a bad character is scanned once, never split and retried
    ("x" + " " * 100_000 + "$", SymdiffSyntaxError, 1, 100_002, "unexpected character '$'"),
]


@pytest.mark.parametrize(("text", "kind", "line", "column", "words"), BAD)
def test_bad_input(text, kind, line, column, words):
    with pytest.raises(kind) as caught:
        parse(text)
    error = caught.value
    assert isinstance(error, SymdiffError)
    assert (error.line, error.column) == (line, column)
    assert words in error.message
    assert str(error).startswith(f"{line}:{column}: ")
    assert "^" in error.pretty().splitlines()[-1]


def test_caret_sits_under_the_span():
    with pytest.raises(SymdiffError) as caught:
        parse("x1*x2 + sn(x1)")
    assert caught.value.pretty().splitlines()[1:] == ["  x1*x2 + sn(x1)", "          ^^"]


def test_not_a_string():
    with pytest.raises(SymdiffError, match="expected the expression as a string"):
        parse(3)


@pytest.mark.parametrize(
    "text",
    ["x1*x2 + sin(x1)", "-x^2", "2^-x", "(-x)^2", "a - (b - c)", "a/(b*c)", "-(a+b)*c", "atan2(y, x)*pow(x, y)",
     "x^2^3", "(x^2)^3", "1e-3*x + .5", "--x", "exp(-x^2/2)/sqrt(2*pi)"],
)
def test_print_parse_round_trip(text):
    tree = parse(text)
    assert parse(expression_text(tree)) == tree


def test_deep_nesting_and_long_sums_parse_without_recursion():
    deep = "sin(" * 20_000 + "x" + ")" * 20_000
    assert parse(deep).op == "sin"
    long_sum = " + ".join(f"x{i}" for i in range(3_000))
    assert parse(long_sum).op == "add"


def _parse_in_a_new_process(cache, text="x1*x2 + sin(x1)"):
    import os
    import subprocess
    import sys

    script = "from symdiff.core.parse import parse; from symdiff.core.printing import expression_text; "
    script += f"print(expression_text(parse({text!r})))"
    env = {**os.environ, "SYMDIFF_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout.strip(), done.stderr


def test_the_parser_tables_are_cached_in_the_users_cache_and_survive_damage(tmp_path):
    code, printed, errors = _parse_in_a_new_process(tmp_path)
    [tables] = (tmp_path / "lark").iterdir()
    assert code == 0 and printed == "x1 * x2 + sin(x1)" and errors == ""
    assert _parse_in_a_new_process(tmp_path) == (0, printed, "")  # from the cache
    tables.write_bytes(b"not a pickle")  # a damaged file is analysed anew, silently, and rewritten
    assert _parse_in_a_new_process(tmp_path) == (0, printed, "")
    assert tables.read_bytes() != b"not a pickle"


def test_an_unwritable_cache_only_costs_time(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    assert _parse_in_a_new_process(blocked) == (0, "x1 * x2 + sin(x1)", "")
