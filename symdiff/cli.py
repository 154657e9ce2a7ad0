"""The `symdiff` command: grad (write the module), check (prove it), eval (numbers at a point).

Exit status: 0 success, 1 a check that did not prove the gradient right, 2 bad input or usage.
A user error prints one message with a caret under the offending text, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from .api import build, compile_grad
from .errors import SymdiffError
from .files import write_atomic
from .render import render
from .verify import DEFAULT_TIMEOUT, verify_programs
from .version import __version__

EXPR_HELP = "the expression, e.g. 'x1*x2 + sin(x1)'; '-' reads it from standard input"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2, like bad input
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


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

    check = commands.add_parser("check", help="prove the gradient right with SymPy; exit 1 if not")
    check.add_argument("expr", help=EXPR_HELP)
    check.add_argument("--wrt", help="comma-separated inputs to differentiate (default: all)")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds of simplification per check")

    evaluate = commands.add_parser("eval", help="print the value and gradient at a point")
    evaluate.add_argument("expr", help=EXPR_HELP)
    evaluate.add_argument("--at", default="", help="the point, e.g. x1=2,x2=3")
    evaluate.add_argument("--wrt", help="comma-separated inputs to differentiate (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        expr = sys.stdin.read() if args.expr == "-" else args.expr
        return _COMMANDS[args.command](args, expr)
    except SymdiffError as error:
        print(error.pretty(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _grad(args, expr: str) -> int:
    programs = build(expr, args.wrt)
    source = render(programs.raw if args.no_simplify else programs.adjoint)
    if args.output:
        write_atomic(args.output, source, args.force)
    else:
        sys.stdout.write(source)
    return 0


def _check(args, expr: str) -> int:
    programs = build(expr, args.wrt)
    report = verify_programs(programs.raw, programs.adjoint, args.timeout)
    print(report)
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
    print(f"value = {value!r}")
    for name, partial in zip(gradient.wrt, partials):
        print(f"d/d{name} = {partial!r}")
    return 0


def _parse_point(text: str) -> dict[str, float]:
    point: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, number = item.partition("=")
        if not equals or not name.strip():
            raise SymdiffError(f"--at: expected name=value, got {item!r}")
        try:
            point[name.strip()] = float(number)
        except ValueError:
            raise SymdiffError(f"--at: {number.strip()!r} is not a number (in {item!r})") from None
    return point


_COMMANDS = {"grad": _grad, "check": _check, "eval": _eval}

if __name__ == "__main__":
    sys.exit(main())
