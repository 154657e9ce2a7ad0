"""parse: str -> Expr. The only module that knows Lark; its errors become SymdiffErrors here.

The AST is built by callbacks run inside the LALR parser (no parse tree, no recursion), so
expressions nested 100,000 deep parse. Nothing here ever evaluates the text.
"""

from __future__ import annotations

import difflib
import math
from functools import cache

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import primitives
from .errors import LimitError, SymdiffError, SymdiffSyntaxError, UnknownNameError
from .expr import Apply, Expr, Num, Var
from .resources import grammar_text

# Characters people paste from papers and word processors, and what they mean.
_LOOKALIKES = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "*", "\u22c5": "*", "\u00b7": "*",
    "\u2217": "*", "\u00f7": "/", "\u2215": "/", "\uff08": "(", "\uff09": ")", "\uff0c": ",",
}
_TOKEN_WORDS = {
    "NUMBER": "a number", "NAME": "a name", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "POW": "'^'", "$END": "end of input",
}
_VALUE_TOKENS = {"NUMBER", "NAME", "RPAR"}
_OPERATOR_SYMBOLS = {"**": "^"}


class _Build(Transformer):
    """Turns each reduced grammar rule into an AST node (called by the parser as it reduces)."""

    def number(self, children):
        (token,) = children
        value = float(token.value)
        if math.isinf(value):
            raise SymdiffSyntaxError(f"number {token.value} is too large for a float", span=_span(token))
        return Num(value, _span(token))

    def name(self, children):
        (token,) = children
        if token.value in primitives.CONSTANTS:
            return Num(primitives.CONSTANTS[token.value], _span(token))
        if primitives.is_user_function(token.value):
            raise UnknownNameError(
                f"'{token.value}' is a function; call it as {token.value}(...)", span=_span(token)
            )
        return Var(token.value, _span(token))

    def call(self, children):
        name, _, args, close = children
        span = (name.start_pos, close.end_pos)
        row = _function_row(name)
        if len(args) != row.arity:
            wanted = f"{row.arity} argument" + ("s" if row.arity != 1 else "")
            raise SymdiffSyntaxError(
                f"{row.name}() takes {wanted} ({', '.join(row.params)}), got {len(args)}", span=span
            )
        return Apply(row.name, tuple(args), span)

    def arguments(self, children):
        return children[::2]  # drop the commas

    def binary(self, children):
        left, symbol, right = children
        return Apply(_operator_row(symbol.value, 2).name, (left, right), (left.span[0], right.span[1]))

    def prefix(self, children):
        symbol, operand = children
        if symbol.value == "+":
            return operand
        return Apply(_operator_row(symbol.value, 1).name, (operand,), (symbol.start_pos, operand.span[1]))

    def group(self, children):
        return children[1]


@cache
def _parser() -> Lark:
    return Lark(grammar_text("expr.lark"), parser="lalr", transformer=_Build(), maybe_placeholders=False)


def parse(source: str, max_chars: int | None = None) -> Expr:
    """Parse one expression. Raises a SymdiffError subclass that points into `source`."""
    if not isinstance(source, str):
        raise SymdiffError(f"expected the expression as a string, got {type(source).__name__}")
    if max_chars is not None and len(source) > max_chars:
        raise LimitError(
            f"expression is {len(source):,} characters long; the limit is {max_chars:,} (Limits.max_chars)",
            source,
            (max_chars, len(source)),
        )
    if not source.strip():
        raise SymdiffSyntaxError("empty expression", source, (0, len(source)))
    try:
        return _parser().parse(source)
    except SymdiffError as error:
        error.source = source
        raise
    except UnexpectedInput as error:
        raise _syntax_error(source, error) from None


def _span(token: Token) -> tuple[int, int]:
    return (token.start_pos, token.end_pos)


def _function_row(name: Token) -> primitives.Primitive:
    if primitives.is_user_function(name.value):
        return primitives.lookup(name.value)
    known = primitives.user_functions()
    close = difflib.get_close_matches(name.value, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(known)})"
    raise UnknownNameError(f"unknown function '{name.value}'{hint}", span=_span(name))


def _operator_row(symbol: str, arity: int) -> primitives.Primitive:
    symbol = _OPERATOR_SYMBOLS.get(symbol, symbol)
    for row in primitives.TABLE.values():
        if row.notation.symbol == symbol and row.arity == arity and not row.internal:
            return row
    raise AssertionError(f"the grammar has operator {symbol!r} with no row in the table")


def _syntax_error(source: str, error: UnexpectedInput) -> SymdiffSyntaxError:
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream
        char = source[position]
        if char in _LOOKALIKES:
            message = f"unexpected character {char!r}; did you mean '{_LOOKALIKES[char]}'?"
        elif char in "[]{}":
            message = f"unexpected {char!r}; only parentheses group expressions"
        else:
            message = f"unexpected character {char!r}"
        return SymdiffSyntaxError(message, source, (position, position + 1))
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        token = error.token
        span = (token.start_pos, token.end_pos)
        previous = error.token_history[-1] if error.token_history else None
        if previous is not None and previous.type in _VALUE_TOKENS and token.type in {"NAME", "NUMBER", "LPAR"}:
            return SymdiffSyntaxError(
                f"missing operator between {previous.value!r} and {token.value!r} "
                "(symdiff has no implicit multiplication: write '*')",
                source,
                span,
            )
        return SymdiffSyntaxError(f"unexpected {token.value!r}; expected {_expected(error.expected)}", source, span)
    expected = getattr(error, "expected", None) or ()
    end = len(source.rstrip())
    if "RPAR" in expected:
        return SymdiffSyntaxError("unexpected end of input; missing ')'", source, (end, end + 1))
    return SymdiffSyntaxError(f"unexpected end of input; expected {_expected(expected)}", source, (end, end + 1))


def _expected(terminals) -> str:
    names = set(terminals)
    if {"NUMBER", "NAME", "LPAR"} <= names:
        return "an expression"
    if "PLUS" in names or "STAR" in names:
        words = ["an operator"] + [_TOKEN_WORDS[n] for n in ("RPAR", "COMMA", "$END") if n in names]
        return " or ".join(words)
    return " or ".join(sorted(_TOKEN_WORDS.get(n, n) for n in names)) or "more input"


__all__ = ["parse", "UnexpectedEOF"]
