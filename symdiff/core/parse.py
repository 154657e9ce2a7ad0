"""parse: str -> Expr. The only module that knows Lark; its errors become SymdiffErrors here.

The AST is built by callbacks run inside the LALR parser (no parse tree, no recursion), so
expressions nested 100,000 deep parse. Nothing here ever evaluates the text.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer, PatternStr

from ..errors import LimitError, SymdiffError, SymdiffSyntaxError, UnknownNameError
from ..resources import grammar_text, make_private, trusted_cache, trusted_file
from . import primitives, scope
from .expr import Apply, Definition, Expr, Length, Num, Program, Var, postorder
from .scope import Clause, Comprehension, RangeCall, Subscript

# Characters people paste from papers and word processors, and what they mean.
_LOOKALIKES = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "*", "\u22c5": "*", "\u00b7": "*",
    "\u2217": "*", "\u00f7": "/", "\u2215": "/", "\uff08": "(", "\uff09": ")", "\uff0c": ",",
}
_TOKEN_WORDS = {
    "NUMBER": "a number", "NAME": "a name", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "POW": "'^'", "$END": "end of input",
    "COMPARE": "a comparison", "AND": "'and'", "OR": "'or'", "NOT": "'not'", "WHERE": "'where'", "IF": "'if'",
    "FOR": "'for'", "IN": "'in'", "LBRACK": "'['", "RBRACK": "']'",
}
_VALUE_TOKENS = {"NUMBER", "NAME", "RPAR"}
_OPERATOR_SYMBOLS = {"**": "^"}
# Names of the array language: reductions, lengths and index ranges, always called.
_REDUCTIONS = ("sum", "prod")
_ARRAY_WORDS = {
    "sum": "'sum' must be called with a for clause: sum(BODY for i in range(n))",
    "prod": "'prod' must be called with a for clause: prod(BODY for i in range(n))",
    "len": "'len' is a function; call it as len(x), or len(W, k) for dimension k",
    "range": "'range' gives a loop index its values; write it in a for clause: sum(BODY for i in range(n))",
}
# Only a source matching this can hold array syntax (a subscript is a name, then '['; a comprehension
# needs `for`); others skip the array checks entirely.
_ARRAY_SYNTAX = re.compile(r"\w\s*\[|\b(?:for|len|range)\b")


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
        if token.value in _ARRAY_WORDS:
            raise UnknownNameError(_ARRAY_WORDS[token.value], span=_span(token))
        return Var(token.value, _span(token))

    def call(self, children):
        name, _, args, close = children
        span = (name.start_pos, close.end_pos)
        if name.value in _FOLDED:
            if len(args) < 2:
                raise SymdiffSyntaxError(f"{name.value}() takes 2 or more arguments, got {len(args)}", span=span)
            return _fold_extremum(name.value, args, span)
        if name.value in _ARRAY_WORDS:
            return _array_call(name.value, args, span)
        row = _function_row(name)
        if len(args) != row.arity:
            wanted = f"{row.arity} argument" + ("s" if row.arity != 1 else "")
            raise SymdiffSyntaxError(
                f"{row.name}() takes {wanted} ({', '.join(row.params)}), got {len(args)}", span=span
            )
        return _checked(Apply(row.name, tuple(args), span))

    def arguments(self, children):
        return children[::2]  # drop the commas

    def item(self, children):
        name, _, indices, close = children
        if name.value in primitives.CONSTANTS:
            raise UnknownNameError(f"'{name.value}' is a constant; only array inputs can be indexed", span=_span(name))
        self.name([name])  # a function or reserved word cannot be indexed either: the same errors as a bare name
        span = (name.start_pos, close.end_pos)
        return Subscript(name.value, tuple(_checked_number(index) for index in indices), span)

    def reduction(self, children):
        name, body, clauses, close = children[0], children[2], children[3:-1], children[-1]
        if name.value not in _REDUCTIONS:
            if name.value not in _FOLDED and name.value not in _ARRAY_WORDS:
                _function_row(name)  # an unknown name: "did you mean"
            raise SymdiffSyntaxError(
                f"only sum(...) and prod(...) take a for clause, not {name.value}(...)", span=_span(name)
            )
        return Comprehension(name.value, _checked_number(body), tuple(clauses), (name.start_pos, close.end_pos))

    def vector(self, children):
        open_, body, clauses, close = children[0], children[1], children[2:-1], children[-1]
        return Comprehension("vector", _checked_number(body), tuple(clauses), (open_.start_pos, close.end_pos))

    def for_clause(self, children):
        keyword, target, _, iterable = children
        if not isinstance(target, Var):
            raise SymdiffSyntaxError(
                "the loop variable must be a name, as in `for i in range(n)`", span=target.span
            )
        if not isinstance(iterable, RangeCall):
            raise SymdiffSyntaxError(
                "a for clause loops over range(stop) or range(start, stop), as in `for i in range(len(x))`",
                span=iterable.span,
            )
        start, stop = (None, *iterable.args) if len(iterable.args) == 1 else iterable.args
        return Clause(target.name, target.span, start, stop, (keyword.start_pos, iterable.span[1]))

    def recurrence(self, children):
        name, close = children[0], children[3]
        raise SymdiffSyntaxError(
            f"recurrences (a scan) are not supported: {name.value}[...] = ... would define an array element; "
            "a definition names one number (name = ...)",
            span=(name.start_pos, close.end_pos),
        )

    def binary(self, children):
        left, symbol, right = children
        row = _operator_row(symbol.value, 2)
        return _checked(Apply(row.name, (left, right), (left.span[0], right.span[1])))

    def prefix(self, children):
        symbol, operand = children
        if symbol.value == "+":
            return _checked_number(operand)
        row = _operator_row(symbol.value, 1)
        return _checked(Apply(row.name, (operand,), (symbol.start_pos, operand.span[1])))

    def where(self, children):
        keyword, _, condition, _, if_true, _, if_false, close = children
        return _checked(Apply("where", (condition, if_true, if_false), (keyword.start_pos, close.end_pos)))

    def group(self, children):
        return children[1]

    def statement(self, children):
        name, _, expr = children
        _checked_number(expr)
        if name.value in primitives.CONSTANTS or primitives.is_user_function(name.value) or name.value in _ARRAY_WORDS:
            raise UnknownNameError(f"cannot define '{name.value}': it is a built-in name", span=_span(name))
        return Definition(name.value, expr, (name.start_pos, expr.span[1]))

    def outputs(self, children):
        return tuple(_checked_number(child) for child in children if not isinstance(child, Token))

    def start(self, children):
        statements = [child for child in children if not isinstance(child, Token)]
        return Program(tuple(statements[:-1]), statements[-1])


class _Statements:
    """Lark post-lexer: a line break ends a statement when it could (depth 0, the line so far is
    complete, and the next line does not start with an operator that needs a left operand)."""

    always_accept = ()
    _CONTINUES_AFTER = {"PLUS", "MINUS", "STAR", "SLASH", "POW", "LPAR", "LBRACK", "COMMA", "EQUALS", "SEMI"}
    _CONTINUES_BEFORE = {"STAR", "SLASH", "POW", "RPAR", "RBRACK", "COMMA", "EQUALS", "SEMI"}

    def process(self, stream):
        depth, previous = 0, None
        for token in stream:
            if (
                previous is not None
                and token.line > previous.end_line
                and depth == 0
                and previous.type not in self._CONTINUES_AFTER
                and token.type not in self._CONTINUES_BEFORE
            ):
                yield Token.new_borrow_pos("_NL", "", token)
            depth += token.type in ("LPAR", "LBRACK")
            depth -= token.type in ("RPAR", "RBRACK")
            previous = token
            yield token


class _Tokens(Lexer):
    """Lark lexer: the grammar's terminals as one regular expression, each match with the blanks
    before it (Lark's own lexer costs about twice as much per token, and a large expression is
    mostly tokens). A name spelled like a keyword is the keyword, as with Lark's basic lexer."""

    __future_interface__ = 2  # lex(lexer_state, parser_state)

    def __init__(self, conf):
        self.terminals_by_name = conf.terminals_by_name
        name = re.compile(conf.terminals_by_name["NAME"].pattern.to_regexp())
        self.keywords: dict[str, str] = {}
        alternatives = []
        # Longest first where two could match at one place (`**` before `*`), as Lark orders them.
        for terminal in sorted(
            conf.terminals, key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name)
        ):
            if terminal.name in conf.ignore:
                continue
            if isinstance(terminal.pattern, PatternStr) and name.fullmatch(terminal.pattern.value):
                self.keywords[terminal.pattern.value] = terminal.name
            else:
                alternatives.append(f"(?P<{terminal.name}>{terminal.pattern.to_regexp()})")
        # Possessive (*+): a run of blanks is never split and retried, however long.
        blanks = "(?:" + "|".join(conf.terminals_by_name[kind].pattern.to_regexp() for kind in conf.ignore) + ")*+"
        self.token = re.compile(f"{blanks}(?:{'|'.join(alternatives)})")
        self.blanks = re.compile(blanks)

    def lex(self, lexer_state, parser_state):
        return self.tokens(lexer_state.text.text, parser_state)

    def tokens(self, text: str, parser_state=None):
        keywords, position, line, line_start = self.keywords, 0, 1, 0
        for match in self.token.finditer(text):
            if match.start() != position:  # finditer skipped what no terminal matches
                self._unexpected(text, position, parser_state)
            kind = match.lastgroup
            start, end = match.span(kind)
            if start != position and "\n" in text[position:start]:
                line, line_start = line + text.count("\n", position, start), text.rindex("\n", position, start) + 1
            value = text[start:end]
            if kind == "NAME":
                kind = keywords.get(value, kind)
            column = start - line_start + 1
            position = end
            yield Token(kind, value, start, line, column, line, column + end - start, end)
        if self.blanks.match(text, position).end() != len(text):
            self._unexpected(text, position, parser_state)

    def _unexpected(self, text: str, position: int, parser_state):
        position = self.blanks.match(text, position).end()  # the character itself, after any blanks
        line, column = text.count("\n", 0, position) + 1, position - text.rfind("\n", 0, position)
        raise UnexpectedCharacters(
            text, position, line, column, state=parser_state, terminals_by_name=self.terminals_by_name
        )


@cache
def _parser(statements_by_line: bool) -> Lark:
    tables = _tables(statements_by_line)
    parser = Lark(
        grammar_text("expr.lark"),
        parser="lalr",
        transformer=_Build(),
        maybe_placeholders=False,
        lexer=_Tokens,
        postlex=_Statements() if statements_by_line else None,
        cache=str(tables) if tables else False,
    )
    if tables:
        make_private(tables)  # Lark writes it with the umask's mode; only this user may write it
    return parser


def _tables(statements_by_line: bool) -> Path | None:
    """Where Lark keeps its analysis of the grammar (the LALR tables: 35-40 ms to compute in each
    process, 3 ms to load), or None to analyse it anew. The file is a pickle, which runs code when
    loaded, so it lives in the user's own cache folder and is read only where nobody else could
    have written it (resources.trusted_cache and trusted_file); a file that fails the rule is
    removed and rewritten. Lark checks that it was made from this grammar, these options and this
    Lark, else it analyses anew and rewrites it."""
    folder = trusted_cache("lark")
    if folder is None:
        return None
    kind = "lines" if statements_by_line else "expressions"
    path = folder / f"expr-{kind}-py{sys.version_info[0]}{sys.version_info[1]}.pickle"
    if not trusted_file(path) and os.path.lexists(path):  # an untrusted file that could not be removed
        return None
    return path


def parse(source: str, max_chars: int | None = None) -> Expr:
    """Parse one expression (no definitions, one output)."""
    program = parse_program(source, max_chars)
    if program.definitions:
        definition = program.definitions[0]
        raise SymdiffSyntaxError("expected one expression, not definitions", source, definition.span)
    return single_output(program, source)


def single_output(program: Program, source: str) -> Expr:
    if len(program.outputs) != 1:
        raise SymdiffSyntaxError(
            f"expected one output, got {len(program.outputs)}; several outputs make a Jacobian "
            "(compile_jacobian)",
            source,
            program.outputs[1].span,
        )
    return program.outputs[0]


def parse_program(source: str, max_chars: int | None = None) -> Program:
    """Parse definitions and outputs. Raises a SymdiffError subclass that points into `source`."""
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
    # Line breaks separate statements only in an input with definitions or `;`; a single
    # expression may spread over lines freely.
    by_line = "=" in source or ";" in source
    try:
        program = _parser(by_line).parse(source)
        if _may_hold_arrays(source):
            program = scope.resolve(program)
        _check_definitions(program)
        return program
    except SymdiffError as error:
        error.source = source
        raise
    except UnexpectedInput as error:
        raise _syntax_error(source, error, by_line) from None


def _may_hold_arrays(source: str) -> bool:
    # Substring tests first: they cost far less than the regular expression on a long scalar input.
    words = "[" in source or "for" in source or "len" in source or "range" in source
    return words and _ARRAY_SYNTAX.search(source) is not None


def _check_definitions(program: Program) -> None:
    """Each name is defined once, before it is used."""
    defined: dict[str, Definition] = {}
    later = {definition.name: definition for definition in reversed(program.definitions)}
    walk = scope.every_node if program.arrays else postorder  # postorder stops at a reduction
    for definition in program.definitions:
        _check_uses(definition.expr, defined, later, walk)
        if definition.name in defined:
            raise SymdiffSyntaxError(
                f"'{definition.name}' is defined twice (first at offset {defined[definition.name].span[0]})",
                span=definition.span,
            )
        defined[definition.name] = definition
    if not later:  # no definitions: every name is an input, nothing to check
        return
    for output in program.outputs:
        _check_uses(output, defined, later, walk)


def _check_uses(expr: Expr, defined: dict, later: dict, walk=postorder) -> None:
    for node in walk(expr):
        if isinstance(node, Var) and node.name not in defined and node.name in later:
            raise UnknownNameError(f"'{node.name}' is used before its definition", span=node.span)


def _span(token: Token) -> tuple[int, int]:
    return (token.start_pos, token.end_pos)


# max(a, b, ...) and min(a, b, ...) are written with where: max(a, b) = where(a >= b, a, b). At a tie
# the first argument is chosen, and receives the whole derivative.
_FOLDED = {"max": "ge", "min": "le"}


def _array_call(name: str, args: list[Expr], span) -> Expr:
    """sum/prod written as plain calls, len(x) or len(W, k), and range(...) (for a for clause)."""
    if name in _REDUCTIONS:
        raise SymdiffSyntaxError(
            f"{name}(...) needs a for clause: {name}(BODY for i in range(n)), such as "
            f"{name}(x[i] for i in range(len(x)))",
            span=span,
        )
    if name == "range":
        if len(args) == 3:
            raise SymdiffSyntaxError(
                "range(start, stop, step): a step is not supported; use range(start, stop) and scale the "
                "index (x[2*i] for i in range(n))",
                span=span,
            )
        if len(args) > 3:
            raise SymdiffSyntaxError(f"range() takes 1 or 2 arguments (start, stop), got {len(args)}", span=span)
        return RangeCall(tuple(_checked_number(arg) for arg in args), span)
    if len(args) > 2 or not isinstance(args[0], Var):
        raise SymdiffSyntaxError(
            "len() takes the name of an array input, and optionally a dimension: len(x) or len(W, 1)", span=span
        )
    dim = args[1] if len(args) == 2 else Num(0.0)
    if not isinstance(dim, Num) or not dim.value.is_integer() or dim.value < 0:
        raise SymdiffSyntaxError(
            f"len({args[0].name}, k): the dimension k must be a constant integer such as 0 or 1", span=dim.span
        )
    return Length(args[0].name, int(dim.value), span)


def _fold_extremum(name: str, args: list[Expr], span) -> Expr:
    result = args[0]
    for arg in args[1:]:
        condition = _checked(Apply(_FOLDED[name], (result, arg), span))
        result = Apply("where", (condition, result, arg), span)
    return result


def _is_truth_value(node: Expr) -> bool:
    return isinstance(node, Apply) and primitives.lookup(node.op).boolean


def _checked(node: Apply) -> Apply:
    """Truth values (comparisons, and/or/not) go only where a condition is expected, and nowhere else."""
    row = primitives.lookup(node.op)
    if not row.boolean_params and all(type(arg) is not Apply for arg in node.args):
        return node  # numbers and names are never truth values: nothing to check (the common case)
    for position, arg in enumerate(node.args):
        wanted = position in row.boolean_params
        if wanted and not _is_truth_value(arg):
            raise SymdiffSyntaxError(
                f"{row.name} expects a condition here (a comparison such as x > 0)", span=arg.span
            )
        if not wanted and _is_truth_value(arg):
            raise SymdiffSyntaxError(
                "a condition is not a number: use it as the first argument of where(condition, a, b)", span=arg.span
            )
    return node


def _checked_number(node: Expr) -> Expr:
    if _is_truth_value(node):
        raise SymdiffSyntaxError("a condition is not a number", span=node.span)
    return node


def _function_row(name: Token) -> primitives.Primitive:
    if primitives.is_user_function(name.value):
        return primitives.lookup(name.value)
    known = primitives.user_functions()
    # The array functions only when no primitive is close, so scalar inputs keep their hints.
    close = difflib.get_close_matches(name.value, known, n=1) or difflib.get_close_matches(
        name.value, ("sum", "prod", "len"), n=1
    )
    hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(known)})"
    raise UnknownNameError(f"unknown function '{name.value}'{hint}", span=_span(name))


@cache
def _operator_row(symbol: str, arity: int) -> primitives.Primitive:
    """The row an operator symbol denotes (cached: the parser asks once per operator in the text)."""
    symbol = _OPERATOR_SYMBOLS.get(symbol, symbol)
    if symbol == "not":
        symbol = "not "
    for row in primitives.TABLE.values():
        if row.notation.symbol == symbol and row.arity == arity and not row.internal:
            return row
    raise AssertionError(f"the grammar has operator {symbol!r} with no row in the table")


def _token_before(source: str, position: int, by_line: bool) -> Token | None:
    """The last token that ends at or before `position` (error messages name it); None when a line
    break that ends a statement lies between (the parser saw that break last)."""
    parser, previous = _parser(by_line), None
    try:
        for token in _Tokens(parser.lexer_conf).tokens(source):
            if token.end_pos > position:
                break
            previous = token
    except UnexpectedCharacters:
        pass
    if by_line and previous is not None and "\n" in source[previous.end_pos : position]:
        return None
    return previous


def _inside_for_target(source: str, position: int, by_line: bool) -> bool:
    """Whether `position` lies after a `for` whose `in` has not come yet (LALR's expected sets are
    merged across states, so IN being expected does not say that by itself)."""
    waiting = False
    try:
        for token in _Tokens(_parser(by_line).lexer_conf).tokens(source):
            if token.start_pos >= position:
                break
            waiting = token.type == "FOR" or (waiting and token.type != "IN")
    except UnexpectedCharacters:
        pass
    return waiting


def _syntax_error(source: str, error: UnexpectedInput, by_line: bool) -> SymdiffSyntaxError:
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream
        char = source[position]
        if char in _LOOKALIKES:
            message = f"unexpected character {char!r}; did you mean '{_LOOKALIKES[char]}'?"
        elif char in "{}":
            message = f"unexpected {char!r}; only parentheses group expressions"
        else:
            message = f"unexpected character {char!r}"
        return SymdiffSyntaxError(message, source, (position, position + 1))
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        token = error.token
        span = (token.start_pos, token.end_pos)
        previous = _token_before(source, token.start_pos, by_line)
        if "IN" in error.expected and _inside_for_target(source, token.start_pos, by_line):
            return SymdiffSyntaxError("expected 'in' after the loop variable: for i in range(n)", source, span)
        keywords = ("and", "or", "not")
        if token.value in keywords or (previous is not None and previous.value in keywords):
            keyword = token if token.value in keywords else previous
            return SymdiffSyntaxError(
                f"'{keyword.value}' combines conditions, inside where(condition, a, b)",
                source,
                (keyword.start_pos, keyword.end_pos),
            )
        if previous is not None and previous.type in _VALUE_TOKENS and token.type in {"NAME", "NUMBER", "LPAR"}:
            return SymdiffSyntaxError(
                f"missing operator between {previous.value!r} and {token.value!r} "
                "(symdiff has no implicit multiplication: write '*')",
                source,
                span,
            )
        if token.type == "COMMA" and "COMPARE" in error.expected:
            return SymdiffSyntaxError(
                "the first argument of where() must be a condition, such as x > 0", source, span
            )
        if token.type == "COMPARE":
            return SymdiffSyntaxError(
                "a comparison is a condition, not a number: use it as the first argument of where(condition, a, b)",
                source,
                span,
            )
        if token.type == "FOR":
            return SymdiffSyntaxError(
                "a for clause goes inside sum(...), prod(...) or a vector output [...]: sum(BODY for i in range(n))",
                source,
                span,
            )
        if token.type in ("LBRACK", "RBRACK"):
            return SymdiffSyntaxError(
                f"unexpected {token.value!r}; only parentheses group expressions (brackets index an array input, "
                "x[i], or list outputs, [f1, f2])",
                source,
                span,
            )
        if set(error.expected) <= {"SEMI", "_NL", "$END"}:
            return SymdiffSyntaxError(
                "only the last statement is the output: name the one before (`name = ...`), "
                "or list several outputs on the last line (`f1, f2`)",
                source,
                span,
            )
        return SymdiffSyntaxError(f"unexpected {token.value!r}; expected {_expected(error.expected)}", source, span)
    expected = getattr(error, "expected", None) or ()
    end = len(source.rstrip())
    if "RPAR" in expected:
        return SymdiffSyntaxError("unexpected end of input; missing ')'", source, (end, end + 1))
    if "RBRACK" in expected:
        return SymdiffSyntaxError(
            "unexpected end of input; missing ']' (brackets index an array input, x[i], or list outputs, [f1, f2]; "
            "only parentheses group expressions)",
            source,
            (end, end + 1),
        )
    if "SEMI" in expected or "_NL" in expected:
        return SymdiffSyntaxError(
            "unexpected end of input; after the definitions, the last statement must be the output", source, (end, end + 1)
        )
    return SymdiffSyntaxError(f"unexpected end of input; expected {_expected(expected)}", source, (end, end + 1))


def _expected(terminals) -> str:
    names = set(terminals)
    if {"NUMBER", "NAME", "LPAR"} <= names:
        return "an expression"
    if "PLUS" in names or "STAR" in names:
        words = ["an operator"] + [_TOKEN_WORDS[n] for n in ("RPAR", "COMMA", "$END") if n in names]
        return " or ".join(words)
    return " or ".join(sorted(_TOKEN_WORDS.get(n, n) for n in names)) or "more input"



@cache
def parse_partial(text: str) -> Expr:
    """A primitive row's partial formula as an AST over the row's params and `out` (parsed once per text)."""
    return parse(text)


__all__ = ["parse", "parse_partial", "UnexpectedEOF"]
