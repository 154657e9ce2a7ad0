"""The Python API: compile_grad, gradient_source, verify. Runs the pipeline
parse -> lower -> reverse -> simplify -> render, and wraps the generated module in a callable."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .adjoint import Adjoint
from .callables import derivatives, gradient
from .callables.base import Hessian, Jacobian, Jvp
from .callables.python import Gradient, render_module
from .calling import paused_gc
from .derivatives import hessian_program, jacobian_program, jvp_program
from .errors import SymdiffError
from .limits import DEFAULT_LIMITS, Limits
from .lower import lower
from .parse import parse_program, single_output
from .reverse import check_wrt, reverse
from .simplify import simplify_sweep
from .tape import Tape
from .verify import DEFAULT_TIMEOUT, Report, verify_programs


@dataclass(frozen=True)
class Programs:
    """Everything the pipeline derives from one expression."""

    tape: Tape
    adjoint: Adjoint  # the simplified program that is rendered

    @cached_property
    def raw(self) -> Adjoint:
        """The textbook sweep, unsimplified: made only when asked for (verify, simplified=False)."""
        return reverse(self.tape, self.adjoint.wrt, self.adjoint.output)


def build(expr, wrt=None, limits: Limits = DEFAULT_LIMITS) -> Programs:
    """Parse (or convert, for a SymPy expression), lower, sweep and simplify."""
    with paused_gc():
        return _build(expr, wrt, limits)


def _build(expr, wrt, limits: Limits) -> Programs:
    tape = build_tape(expr, limits, several_outputs=False)
    wrt = tape.inputs if wrt is None else check_wrt(wrt)
    return Programs(tape, simplify_sweep(tape, wrt))


def build_tape(expr, limits: Limits = DEFAULT_LIMITS, several_outputs: bool = True) -> Tape:
    """The tape of a string (a program), a list of strings (one output each) or a SymPy expression."""
    with paused_gc():
        if isinstance(expr, list | tuple) and all(isinstance(item, str) for item in expr) and expr:
            expr = ", ".join(f"({item})" if "," in item else item for item in expr)
        if isinstance(expr, str):
            source = expr
            tree = parse_program(expr, limits.max_chars)
            if not several_outputs:
                single_output(tree, source)
        else:
            from .from_sympy import convert  # SymPy input: no string round trip

            source, tree = convert(expr)
        return lower(tree, source, limits.max_entries, limits.max_branch_depth)


def gradient_source(expr: str, wrt=None, *, simplified: bool = True, limits: Limits = DEFAULT_LIMITS) -> str:
    """The standalone Python module (imports only math) for value and gradient of `expr`."""
    programs = build(expr, wrt, limits)
    return render_module(programs.adjoint if simplified else programs.raw)


def verify(expr: str, wrt=None, *, timeout: float = DEFAULT_TIMEOUT, limits: Limits = DEFAULT_LIMITS) -> Report:
    """Prove with SymPy that symdiff's gradient of `expr`, and its simplification, are right, and
    that the module gradient_source(expr) writes computes it."""
    programs = build(expr, wrt, limits)
    return verify_programs(programs.raw, programs.adjoint, timeout, limits)


def compile_grad(
    expr, wrt=None, *, backend: str = "python", simplified: bool = True, limits: Limits = DEFAULT_LIMITS
) -> Gradient:
    """Compile `expr` into a callable returning the gradient (one float per name in `wrt`).

    `backend` is "python" (a module importing only math), or "numpy" / "c" (see symdiff.callables).
    """
    programs = build(expr, wrt, limits)
    return gradient(programs, backend, simplified)


def compile_jvp(expr, *, backend: str = "python", limits: Limits = DEFAULT_LIMITS) -> Jvp:
    """j(point, direction) -> (value, directional derivative), both sequences in `j.inputs` order."""
    tape = build_tape(expr, limits, several_outputs=False)
    return Jvp(derivatives(jvp_program(tape), backend), tape.source, tape.inputs, backend)


def compile_jacobian(
    exprs, wrt=None, *, mode: str | None = None, backend: str = "python", limits: Limits = DEFAULT_LIMITS
) -> Jacobian:
    """J(*point) -> the m x n Jacobian as a tuple of rows; `exprs` is a list of strings, or one string
    "f1, f2" or "[f1, f2]". `mode` "reverse" (one sweep per output) or "forward" (one per input);
    by default whichever needs fewer sweeps."""
    tape = build_tape(exprs, limits)
    wrt = tape.inputs if wrt is None else check_wrt(wrt)
    if mode is None:
        mode = "reverse" if len(tape.outputs) <= len(wrt) else "forward"
    if mode not in ("reverse", "forward"):
        raise SymdiffError(f"mode must be 'reverse' or 'forward', not {mode!r}")
    entries = derivatives(jacobian_program(tape, wrt, mode), backend)
    return Jacobian(entries, tape.source, tape.inputs, backend, wrt, mode, len(tape.outputs))


def compile_hessian(expr, wrt=None, *, backend: str = "python", limits: Limits = DEFAULT_LIMITS) -> Hessian:
    """H(*point) -> (value, gradient, Hessian rows), and H.hvp(point, direction), forward over reverse."""
    programs = build(expr, wrt, limits)
    entries = derivatives(hessian_program(programs.tape, programs.adjoint), backend)
    return Hessian(entries, programs.tape.source, programs.tape.inputs, backend, programs.adjoint.wrt, programs)


__all__ = [
    "compile_grad", "compile_hessian", "compile_jacobian", "compile_jvp", "gradient_source", "verify", "Gradient",
    "Hessian", "Jacobian", "Jvp", "SymdiffError",
]
