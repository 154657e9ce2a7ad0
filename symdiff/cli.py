"""The `symdiff` command: grad (write the module), check (prove it), eval (numbers at a point).

Exit status: 0 success, 1 a check that did not prove the gradient right, 2 bad input or usage, or
output that could not be written. A user error prints one message with a caret under the offending
text, never a traceback; standard output is flushed and checked before symdiff says it succeeded.
"""

from __future__ import annotations

import argparse
import codecs
import errno
import math
import os
import re
import sys
from decimal import Decimal
from pathlib import Path

from .api import build, compile_grad, render_module
from .errors import SymdiffError
from .files import write_all, write_atomic
from .verify import DEFAULT_TIMEOUT, verify_programs
from .version import __version__

EXPR_HELP = "the expression, e.g. 'x1*x2 + sin(x1)'; '-' reads it from standard input"
AT_HELP = (
    "the point, e.g. x1=2,x2=3; an array input in brackets, quoted for the shell: 'x=[1,2,3]' "
    "(a 2-D one as rows: 'W=[[1,2],[3,4]]')"
)

# The name of a C file symdiff writes goes into `#include "NAME.h"`: only characters that need no
# escaping there and are portable in file names, and no leading '-' or '.'.
C_FILE_STEM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
# Numbers in messages longer than this are shortened (a 300-digit value helps nobody).
SHOWN_NUMBER = 20
_DEEPEST = 8  # nesting of --at lists: an array has a few dimensions, not hundreds


class _OutputError(SymdiffError):
    """Standard output could not be written (a full disk, a closed descriptor, a closed pipe)."""

    def __init__(self, error: OSError | ValueError | None = None):
        reason = os.strerror(errno.EBADF) if error is None else getattr(error, "strerror", None) or str(error)
        super().__init__(f"cannot write to standard output: {reason}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2, like bad input
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")

    def _print_message(self, message: str, file=None) -> None:
        # argparse ignores a failed write; --help and --version on standard output are checked.
        if message and file is not None and file is sys.stdout:
            _write(message)
        else:
            super()._print_message(message, file)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symdiff", description="Readable, standalone gradient code, proven right with SymPy.")
    parser.add_argument("--version", action="version", version=f"symdiff {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    grad = commands.add_parser("grad", help="write the gradient module (standard output without -o)")
    grad.add_argument("expr", help=EXPR_HELP)
    grad.add_argument("-o", "--output", help="file to write (atomically)")
    grad.add_argument("--wrt", help="comma-separated inputs to differentiate, in order (default: all)")
    grad.add_argument("--force", action="store_true", help="replace an existing file symdiff did not write")
    grad.add_argument("--no-simplify", action="store_true", help="print the textbook sweep as is")
    grad.add_argument(
        "--lang",
        choices=("python", "numpy", "c"),
        default="python",
        help="python: a module importing only math (default); numpy: elementwise over arrays; "
        "c: C99 source, and with -o NAME.c also NAME.h, functions prefixed NAME_",
    )

    check = commands.add_parser("check", help="prove the gradient right with SymPy; exit 1 if not")
    check.add_argument("expr", help=EXPR_HELP)
    check.add_argument("--wrt", help="comma-separated inputs to differentiate (default: all)")
    check.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, help="seconds of simplification per check")

    evaluate = commands.add_parser("eval", help="print the value and gradient at a point")
    evaluate.add_argument("expr", help=EXPR_HELP)
    evaluate.add_argument("--at", default="", help=AT_HELP)
    evaluate.add_argument("--wrt", help="comma-separated inputs to differentiate (default: all)")

    explain = commands.add_parser("explain", help="walk through reverse mode at a point, step by step")
    explain.add_argument("expr", help=EXPR_HELP)
    explain.add_argument("--at", required=True, help=AT_HELP + " (explain lists every iteration: 50 at most)")
    explain.add_argument("--wrt", help="comma-separated inputs to differentiate (default: all)")
    explain.add_argument(
        "--format", default="text", choices=("text", "markdown", "latex", "json", "html"), help="default: text"
    )
    explain.add_argument(
        "--ascii",
        action="store_true",
        help="text without Unicode (w3_bar, dw3/dw1); automatic if the terminal needs it",
    )
    explain.add_argument("--digits", type=int, default=3, help="decimals shown (default 3; JSON keeps every digit)")

    drawing = commands.add_parser(
        "graph",
        help="draw the computational graph as Graphviz DOT, SVG or PNG",
        description="Exit status 1 when a picture was asked for but Graphviz is missing (the .dot is written instead).",
    )
    drawing.add_argument("expr", help=EXPR_HELP)
    drawing.add_argument(
        "--at", help="a point, e.g. x1=2,x2=3: show values, adjoints and partials there (not for loops)"
    )
    drawing.add_argument("--wrt", help="comma-separated inputs to differentiate (default: all)")
    drawing.add_argument("-o", "--output", help="FILE.dot, FILE.svg or FILE.png (default: DOT on standard output)")
    drawing.add_argument("--force", action="store_true", help="replace an existing file symdiff did not write")
    return parser


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number of seconds, got {text!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    try:
        status = _run(argv)
    except SystemExit as done:  # --help, --version and usage errors: their output is checked too
        if done.code == 0 and not _flushed():
            raise SystemExit(2) from None
        raise
    return status if _flushed() else 2


def _run(argv: list[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
        expr = _read_input() if args.expr == "-" else args.expr
        return _COMMANDS[args.command](args, expr)
    except SymdiffError as error:
        _report(error)
        return 2
    except KeyboardInterrupt:
        return 130


def _report(error: SymdiffError) -> None:
    """One message on standard error; after a failed write, standard output is silenced so that
    Python's own flush at exit does not print a traceback of the same failure."""
    if isinstance(error, _OutputError):
        _silence_stdout()
    try:
        print(SymdiffError(_shorten_numbers(error.message), error.source, error.span).pretty(), file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # nowhere left to say it: the exit status does
        pass


def _shorten_numbers(message: str) -> str:
    """Numbers longer than SHOWN_NUMBER characters, shown as the shortest float that reads back."""

    def short(match: re.Match) -> str:
        number = match.group()
        if len(number) <= SHOWN_NUMBER:
            return number
        value = float(number)  # the pattern only matches what float() reads; too large is inf
        return repr(value) if math.isfinite(value) else f"{Decimal(number):.6e}"

    return re.sub(r"(?<![\w./\\])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w/\\])", short, message)


def _read_input() -> str:
    """The expression from standard input, decoded strictly (a stray byte is an error, not text)."""
    stream = sys.stdin
    if stream is None:  # started with standard input closed
        raise SymdiffError(f"cannot read standard input: {os.strerror(errno.EBADF)}")
    try:
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    except (OSError, ValueError) as error:
        raise SymdiffError(f"cannot read standard input: {getattr(error, 'strerror', None) or error}") from None
    if isinstance(data, str):
        return data
    encoding = codecs.lookup(stream.encoding or "utf-8").name
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise SymdiffError(
            f"standard input is not {encoding} text: byte 0x{data[error.start]:02x} at offset {error.start}"
        ) from None


def _write(text: str) -> None:
    """Standard output, every byte or an _OutputError. The bytes are written in a loop: with
    PYTHONUNBUFFERED the text layer drops what a short write (a full disk, a closed pipe) left over.
    Text the locale cannot encode goes out as UTF-8 (generated code, Markdown, LaTeX, HTML and DOT
    are files, so UTF-8 whatever the locale says)."""
    stream = sys.stdout
    if stream is None:  # started with standard output closed
        raise _OutputError()
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text-only stream, e.g. io.StringIO
            stream.write(text)
            return
        try:
            data = memoryview(text.encode(stream.encoding or "utf-8"))
        except (UnicodeEncodeError, LookupError):
            data = memoryview(text.encode("utf-8"))
        stream.flush()  # what the text layer holds goes first
        while data:
            written = buffer.write(data)
            if not written:  # a non-blocking descriptor that is full
                raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            data = data[written:]
    except (OSError, ValueError) as error:
        raise _OutputError(error) from None


def _flushed() -> bool:
    """Push out what is buffered for standard output; on failure, say so once."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError) as error:
        _report(_OutputError(error))
        return False
    return True


def _silence_stdout() -> None:
    stream = sys.stdout
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # no descriptor (closed, or a test's capture)
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)


def _grad(args, expr: str) -> int:
    programs = build(expr, args.wrt)
    adjoint = programs.sweep(not args.no_simplify)
    if args.lang == "c":
        return _grad_c(args, adjoint)
    if args.lang == "numpy":
        from .codegen.numpy import render_numpy  # imports NumPy, which only this language needs

        source = render_numpy(adjoint)
    else:
        source = render_module(adjoint)
    if args.output:
        write_atomic(args.output, source, args.force)
    else:
        _write(source)
    return 0


def _grad_c(args, adjoint) -> int:
    """The .c (standard output without -o), and beside it the .h, named and prefixed after -o."""
    from .codegen.c import render_c

    if not args.output:
        _write(render_c(adjoint)[0])
        return 0
    target = Path(args.output)
    if not target.name.endswith(".c"):
        raise SymdiffError(f"--lang c: the output file name must end in .c (its header is NAME.h), got {target.name!r}")
    if not C_FILE_STEM.fullmatch(target.name[:-2]):
        raise SymdiffError(
            f"--lang c: {target.name!r} cannot go into an #include line; name the file with letters, digits "
            "and _ . + - only, starting with a letter, digit or _"
        )
    prefix = re.sub(r"\W", "_", target.stem)
    if prefix[0].isdigit():
        prefix = f"_{prefix}"
    header = target.with_suffix(".h")
    source, declarations = render_c(adjoint, prefix, header.name)
    write_all(((header, declarations), (target, source)), args.force)
    return 0


def _check(args, expr: str) -> int:
    programs = build(expr, args.wrt)
    report = verify_programs(programs.raw, programs.adjoint, args.timeout)
    _write(f"{report}\n")
    return 0 if report.ok else 1


def _eval(args, expr: str) -> int:
    gradient = compile_grad(expr, args.wrt)
    point = _parse_point(args.at)
    unknown = sorted(set(point) - set(gradient.inputs))
    if unknown:
        raise SymdiffError(f"--at: {', '.join(unknown)} not in the expression (inputs: {', '.join(gradient.inputs)})")
    missing = [name for name in gradient.inputs if name not in point]
    if missing:
        raise SymdiffError(f"--at: no value for {', '.join(missing)}")
    try:
        value, partials = gradient.value_and_grad(**point)
    except (ValueError, ZeroDivisionError, OverflowError) as error:
        raise SymdiffError(f"cannot evaluate at this point: {error}") from None
    lines = [
        f"value = {value!r}",
        *(f"d/d{name} = {_listed(partial)!r}" for name, partial in zip(gradient.wrt, partials)),
    ]
    _write("".join(f"{line}\n" for line in lines))
    return 0


def _listed(partial):
    """An array's gradient as a list of floats (of lists, for 2-D), whichever backend made it."""
    if hasattr(partial, "tolist"):
        partial = partial.tolist()
    return [_listed(item) for item in partial] if isinstance(partial, list | tuple) else partial


def _parse_point(text: str) -> dict[str, float | list]:
    """`--at` for every command that takes a point: each name once, each value a finite number or,
    for an array, numbers in brackets (nested for 2-D): x=[1,2,3], W=[[1,2],[3,4]]."""
    point: dict[str, float | list] = {}
    for item in filter(None, (part.strip() for part in _items(text))):
        name, equals, number = (part.strip() for part in item.partition("="))
        if not equals or not name:
            raise SymdiffError(f"--at: expected name=value, got {item!r}")
        if name in point:
            raise SymdiffError(f"--at: {name} given twice")
        point[name] = _array(name, number, item) if number.startswith("[") else _number(name, number, item)
    return point


def _items(text: str) -> list[str]:
    """`--at` split at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise SymdiffError(f"--at: a ] closes no [ in {text!r}")
        elif char == "," and depth == 0:
            items.append(text[start:position])
            start = position + 1
    if depth:
        raise SymdiffError(f"--at: a [ is never closed in {text!r}")
    return [*items, text[start:]]


def _number(name: str, number: str, item: str) -> float:
    try:
        value = float(number)
    except ValueError:
        raise SymdiffError(f"--at: {number!r} is not a number (in {item!r})") from None
    if not math.isfinite(value):
        raise SymdiffError(f"--at: {name}={number} is not a finite number")
    return value


def _array(name: str, text: str, item: str) -> list:
    """`[1, 2.5, -3]` or `[[1, 2], [3, 4]]` as nested lists of floats (the shape is the caller's to check)."""
    tokens = [token.strip() for token in re.findall(r"\[|\]|,|[^\[\],]+", text) if token.strip()]
    position = 0

    def fail(why: str):
        raise SymdiffError(f"--at: {why} (in {item!r})")

    def value(depth: int):
        nonlocal position
        token = tokens[position] if position < len(tokens) else None
        position += 1
        if token != "[":
            if token in (None, "]", ","):
                fail("a number is missing")
            try:
                number = float(token)
            except ValueError:
                fail(f"{token!r} is not a number")
            if not math.isfinite(number):
                fail(f"{token} is not a finite number")
            return number
        if depth == _DEEPEST:
            fail(f"lists nest more than {_DEEPEST} deep")
        items: list = []
        if tokens[position : position + 1] == ["]"]:
            position += 1
            return items
        while True:
            items.append(value(depth + 1))
            token = tokens[position] if position < len(tokens) else None
            position += 1
            if token == "]":
                return items
            if token != ",":
                fail(f"expected , or ] after {tokens[position - 2]!r}")

    result = value(0)
    if position != len(tokens):
        fail(f"unexpected {tokens[position]!r} after the list")
    return result


def _explain(args, expr: str) -> int:
    from .teaching.explain import explain

    trace = explain(expr, _parse_point(args.at), args.wrt)
    # A terminal that cannot show w̄ or ∂ gets the ASCII spelling of the text format.
    plain = args.ascii or not _shows_unicode(sys.stdout)
    _write(trace.format(args.format, ascii=plain, digits=args.digits))
    return 0


def _shows_unicode(stream) -> bool:
    try:
        "w̄∂·ᵢₚ─".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _graph(args, expr: str) -> int:
    from pathlib import Path

    from .teaching.graph import GraphvizNotFound, graph

    drawing = graph(expr, None if args.at is None else _parse_point(args.at), args.wrt)
    if not args.output:
        _write(drawing.dot)
        return 0
    try:
        drawing.save(args.output, args.force)
    except GraphvizNotFound as error:
        fallback = drawing.save(Path(args.output).with_suffix(".dot"), args.force)
        kind = Path(args.output).suffix[1:].lower()
        print(f"error: {error.message}", file=sys.stderr)
        print(
            f"wrote {fallback} instead; draw it later with: dot -T{kind} {fallback} -o {args.output}", file=sys.stderr
        )
        return 1
    return 0


_COMMANDS = {"grad": _grad, "check": _check, "eval": _eval, "explain": _explain, "graph": _graph}

if __name__ == "__main__":
    sys.exit(main())
