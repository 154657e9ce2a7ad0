"""The Python API: compile_grad, compile_jvp, compile_jacobian, compile_hessian, gradient_source, verify.
Runs the core (core.pipeline, then a Program) and wraps what a backend prints in a callable."""

from __future__ import annotations

from .callables import derivatives, gradient
from .callables.base import Hessian, Jacobian, Jvp
from .callables.python import Gradient, render_module
from .core.derivatives import (
    array_hvp_program,
    array_jvp_program,
    hessian_program,
    jacobian_program,
    jvp_program,
    rows_jacobian_program,
)
from .core.pipeline import build, build_tape
from .core.reverse import check_wrt
from .errors import SymdiffError
from .limits import DEFAULT_LIMITS, Limits
from .verify import DEFAULT_TIMEOUT, Report, verify_programs


def gradient_source(expr: str, wrt=None, *, simplified: bool = True, limits: Limits = DEFAULT_LIMITS) -> str:
    """The standalone Python module (imports only math) for value and gradient of `expr`."""
    programs = build(expr, wrt, limits)
    return render_module(programs.sweep(simplified))


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
    if _has_arrays(tape):
        return Jvp(derivatives(array_jvp_program(tape), backend), tape.source, tape.inputs, backend, tape)
    return Jvp(derivatives(jvp_program(tape), backend), tape.source, tape.inputs, backend)


def compile_jacobian(
    exprs, wrt=None, *, mode: str | None = None, backend: str = "python", limits: Limits = DEFAULT_LIMITS
) -> Jacobian:
    """J(*point) -> the m x n Jacobian as a tuple of rows; `exprs` is a list of strings, or one string
    "f1, f2" or "[f1, f2]". `mode` "reverse" (one sweep per output) or "forward" (one per input);
    by default whichever needs fewer sweeps."""
    tape = build_tape(exprs, limits)
    wrt = tape.inputs if wrt is None else check_wrt(wrt)
    if tape.rows is not None:  # [b for i in range(...)]: one reverse sweep per output, in a loop
        if mode not in (None, "reverse"):
            raise SymdiffError("the Jacobian of a vector output [... for ...] is computed in reverse mode only")
        entries = derivatives(rows_jacobian_program(tape, wrt), backend)
        return Jacobian(entries, tape.source, tape.inputs, backend, wrt, "reverse", None, tape)
    if tape.arrays or tape.loops:
        raise SymdiffError("compile_jacobian of an array program takes one vector output [... for i in range(...)]")
    if mode is None:
        mode = "reverse" if len(tape.outputs) <= len(wrt) else "forward"
    if mode not in ("reverse", "forward"):
        raise SymdiffError(f"mode must be 'reverse' or 'forward', not {mode!r}")
    entries = derivatives(jacobian_program(tape, wrt, mode), backend)
    return Jacobian(entries, tape.source, tape.inputs, backend, wrt, mode, len(tape.outputs))


def compile_hessian(expr, wrt=None, *, backend: str = "python", limits: Limits = DEFAULT_LIMITS) -> Hessian:
    """H(*point) -> (value, gradient, Hessian rows), and H.hvp(point, direction), forward over reverse."""
    programs = build(expr, wrt, limits)
    tape = programs.tape
    if _has_arrays(tape):
        entries = derivatives(array_hvp_program(tape, programs.adjoint), backend)
        return Hessian(entries, tape.source, tape.inputs, backend, programs.adjoint.wrt, programs, tape)
    entries = derivatives(hessian_program(tape, programs.adjoint), backend)
    return Hessian(entries, tape.source, tape.inputs, backend, programs.adjoint.wrt, programs)


def _has_arrays(tape) -> bool:
    return bool(tape.arrays or tape.loops)


__all__ = [
    "compile_grad", "compile_hessian", "compile_jacobian", "compile_jvp", "gradient_source", "verify", "Gradient",
    "Hessian", "Jacobian", "Jvp", "SymdiffError",
]
