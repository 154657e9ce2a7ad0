"""Hostile and malformed input: the only exception anyone sees is a SymdiffError with a position."""

import contextlib
import io

import pytest
from fuzzing import check_generated_module, examples, hostile_text
from hypothesis import given, settings

import symdiff
from symdiff import DomainError, LimitError, SymdiffError, SymdiffSyntaxError, UnknownNameError
from symdiff.cli import main
from symdiff.core import primitives

FUNCTIONS = primitives.user_functions()


def _arity_cases():
    for name in FUNCTIONS:
        row = primitives.lookup(name)
        wanted = f"{name}() takes {row.arity} argument"
        yield f"{name}({', '.join(['x'] * (row.arity + 1))})", SymdiffSyntaxError, wanted
        if row.arity > 1:
            yield f"{name}(x)", SymdiffSyntaxError, wanted
        yield f"{name}()", SymdiffSyntaxError, "unexpected ')'; expected an expression"
        yield f"2 * {name}", UnknownNameError, f"'{name}' is a function; call it as {name}(...)"


def _character_cases():
    for char in "$#@?:&|~`'\"\\%":
        yield f"x {char} y", SymdiffSyntaxError, f"unexpected character {char!r}"
    for char in "[]{}":
        yield f"x {char} y", SymdiffSyntaxError, "only parentheses group expressions"
    yield "x = y", SymdiffSyntaxError, "the last statement must be the output"
    for symbol in ("<", ">", "<=", ">=", "==", "!="):
        yield f"x {symbol} y", SymdiffSyntaxError, "a comparison is a condition, not a number"
    yield "x ! y", SymdiffSyntaxError, "unexpected character '!'"
    yield "where(x, 1, 2)", SymdiffSyntaxError, "the first argument of where() must be a condition"
    yield "not x", SymdiffSyntaxError, "'not' combines conditions"
    yield "x and y", SymdiffSyntaxError, "'and' combines conditions"
    yield "max(x)", SymdiffSyntaxError, "max() takes 2 or more arguments, got 1"
    yield "x ; y", SymdiffSyntaxError, "only the last statement is the output"
    lookalikes = {"\u2212": "-", "\u00d7": "*", "\u00f7": "/", "\u22c5": "*", "\u00b7": "*", "\u2013": "-",
                  "\uff08": "(", "\uff09": ")", "\u2217": "*", "\u2215": "/", "\uff0c": ",", "\u2014": "-"}
    for char, meant in lookalikes.items():
        yield f"x {char} y", SymdiffSyntaxError, f"did you mean '{meant}'?"
    for char in "\x00\x01\x07\x1b\x7f\u200b\ufeff\u0445\u00e9":
        yield f"x{char}", SymdiffSyntaxError, f"unexpected character {char!r}"


def _structure_cases():
    for op in ("+", "-", "*", "/", "^", "**"):
        yield f"x {op}", SymdiffSyntaxError, "unexpected end of input; expected an expression"
    for op in ("*", "/", "^", "**"):
        yield f"{op} x", SymdiffSyntaxError, "expected an expression"
        yield f"x {op} {op} y", SymdiffSyntaxError, "expected an expression"
    yield from [
        ("", SymdiffSyntaxError, "empty expression"),
        (" \t\n", SymdiffSyntaxError, "empty expression"),
        ("()", SymdiffSyntaxError, "unexpected ')'"),
        ("(())", SymdiffSyntaxError, "unexpected ')'"),
        ("(x", SymdiffSyntaxError, "missing ')'"),
        ("((x)", SymdiffSyntaxError, "missing ')'"),
        ("sin(x", SymdiffSyntaxError, "missing ')'"),
        ("x)", SymdiffSyntaxError, "unexpected ')'"),
        ("x,y", SymdiffSyntaxError, "expected one output, got 2"),
        ("atan2(x,)", SymdiffSyntaxError, "unexpected ')'"),
        ("atan2(,x)", SymdiffSyntaxError, "unexpected ','"),
        ("2x", SymdiffSyntaxError, "no implicit multiplication"),
        ("x y", SymdiffSyntaxError, "no implicit multiplication"),
        ("2 (x)", SymdiffSyntaxError, "no implicit multiplication"),
        ("(x)(y)", SymdiffSyntaxError, "no implicit multiplication"),
        ("(x)2", SymdiffSyntaxError, "no implicit multiplication"),
        ("sin(x)cos(x)", SymdiffSyntaxError, "no implicit multiplication"),
        ("1.2.3", SymdiffSyntaxError, "no implicit multiplication"),
        ("1e", SymdiffSyntaxError, "no implicit multiplication"),
        ("1e400", SymdiffSyntaxError, "too large for a float"),
        ("2e308 * x", SymdiffSyntaxError, "too large for a float"),
        ("1" * 400, SymdiffSyntaxError, "too large for a float"),
        ("x(2)", UnknownNameError, "unknown function 'x'"),
    ]
    for name in ("ln", "sinus", "cot", "sec", "log10", "exp2", "arcsin", "Max", "minimum", "Sin", "SQRT"):
        yield f"{name}(x)", UnknownNameError, f"unknown function '{name}'"


def _domain_cases():
    yield from [
        ("log(-1)", DomainError, "log(-1.0) has no real value"),
        ("log(0)", DomainError, "log(0.0) has no real value"),
        ("sqrt(-1)", DomainError, "sqrt(-1.0) has no real value"),
        ("1/0", DomainError, "div(1.0, 0.0) has no real value"),
        ("x + 1/(2 - 2)", DomainError, "div(1.0, 0.0)"),
        ("asin(2)", DomainError, "asin(2.0)"),
        ("acos(-2)", DomainError, "acos(-2.0)"),
        ("exp(1000)", DomainError, "exp(1000.0)"),
        ("cosh(1000)", DomainError, "cosh(1000.0)"),
        ("sinh(-1000)", DomainError, "sinh(-1000.0)"),
        ("0^-1", DomainError, "powi(0.0, -1.0)"),
        ("(-8)^(1/3)", DomainError, "pow(-8.0, 0.3333333333333333)"),
        ("pow(-1, 0.5)", DomainError, "pow(-1.0, 0.5)"),
        ("x * log(-e)", DomainError, "log(-2.718281828459045)"),
        ("10^400", DomainError, "powi(10.0, 400.0)"),
    ]


CURATED = [*_arity_cases(), *_character_cases(), *_structure_cases(), *_domain_cases()]


def test_there_are_at_least_a_hundred_curated_bad_inputs():
    assert len(CURATED) >= 100
    assert len({text for text, _, _ in CURATED}) == len(CURATED)


@pytest.mark.parametrize(("text", "kind", "words"), CURATED, ids=[repr(text)[:40] for text, _, _ in CURATED])
def test_curated_bad_input(text, kind, words):
    with pytest.raises(kind) as caught:
        symdiff.compile_grad(text)
    error = caught.value
    assert words in error.message
    assert error.span is not None and error.line >= 1 and error.column >= 1
    pretty = error.pretty()
    assert pretty.startswith(f"error: {error.line}:{error.column}: ") and pretty.splitlines()[-1].strip("^ ") == ""


def _only_symdiff_errors(text):
    """compile_grad either works (and its module is safe) or raises a SymdiffError with a position."""
    try:
        g = symdiff.compile_grad(text)
    except SymdiffError as error:
        assert error.span is not None, repr(text)
        assert isinstance(error.line, int) and isinstance(error.column, int)
        error.pretty()
        return None
    check_generated_module(g.source)
    return g


@settings(max_examples=examples(1_500, 30_000))
@given(hostile_text)
def test_fuzzed_text_gives_only_symdiff_errors(text):
    _only_symdiff_errors(text)


@settings(max_examples=examples(150, 3_000))
@given(hostile_text)
def test_fuzzed_text_through_the_cli_never_shows_a_traceback(text):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["grad", "--", text])
    assert code in (0, 2)
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().startswith("error: ")


@settings(max_examples=examples(60, 1_000))
@given(hostile_text)
def test_fuzzed_text_through_verify(text):
    try:
        report = symdiff.verify(text, timeout=1.0)
    except SymdiffError as error:
        assert error.span is not None
    else:
        assert report.gradient is not None


@pytest.mark.parametrize(
    "text",
    ["(" * 1_000_000, "\x00" * 1_000_000, "1" * 1_000_000, "x*" * 500_000, "sin(" * 300_000 + "x",
     "é" * 1_000_000, "x " * 500_000],
    ids=["parens", "nul", "digits", "dangling-products", "unclosed-calls", "unicode", "juxtaposed"],
)
def test_megabyte_inputs_fail_cleanly(text):
    with pytest.raises(SymdiffError) as caught:
        symdiff.compile_grad(text)
    assert caught.value.span is not None


def test_a_megabyte_identifier_is_just_a_name():
    name = "x" * 1_000_000
    g = symdiff.compile_grad(f"{name}^2")
    assert g(3) == (6.0,)


def test_size_limits_fail_fast_and_are_configurable():
    with pytest.raises(LimitError, match="the limit is 100 "):
        symdiff.compile_grad("x+" * 100 + "x", limits=symdiff.Limits(max_chars=100))
    with pytest.raises(LimitError, match="more than 10 distinct operations"):
        symdiff.compile_grad("+".join(f"x{i}" for i in range(20)), limits=symdiff.Limits(max_entries=10))
    too_long = "x" * (symdiff.Limits().max_chars + 1)
    with pytest.raises(LimitError):
        symdiff.compile_grad(too_long)


def test_below_the_limits_depth_and_width_of_100_000_work():
    deep = symdiff.compile_grad("tanh(" * 100_000 + "x" + ")" * 100_000)
    value, (slope,) = deep.value_and_grad(0.1)
    assert 0 < value < 0.01 and 0 < slope < 1
    wide = symdiff.compile_grad(" + ".join(f"x{i}" for i in range(100_000)), wrt=["x0", "x99999"])
    assert wide(*[1.0] * 100_000) == (1.0, 1.0)


def test_verify_refuses_what_sympy_cannot_handle_with_a_limit_error():
    with pytest.raises(LimitError, match="verify handles up to 150"):
        symdiff.verify("sin(" * 200 + "x" + ")" * 200)
    with pytest.raises(LimitError, match="Limits.verify_max_entries"):
        symdiff.verify(" + ".join(f"x{i}" for i in range(30_000)))
    assert symdiff.verify("sin(" * 40 + "x" + ")" * 40).ok
