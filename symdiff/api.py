"""The Python API: compile_grad, gradient_source, verify. Runs the pipeline
parse -> lower -> reverse -> simplify -> render, and wraps the generated module in a callable."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .adjoint import Adjoint
from .calling import bind, load, paused_gc
from .errors import ArgumentError, SymdiffError
from .files import write_atomic
from .limits import DEFAULT_LIMITS, Limits
from .lower import lower
from .parse import parse_program, single_output
from .render import render
from .reverse import check_wrt, reverse
from .simplify import simplify_sweep
from .tape import Tape
from .verify import DEFAULT_TIMEOUT, Emitted, Report, verify_programs


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

    `backend` is "python" (a module importing only math), or "numpy" / "c" (see symdiff.backends).
    """
    programs = build(expr, wrt, limits)
    if backend == "python":
        return Gradient(programs, simplified)
    from .backends import compile_backend

    return compile_backend(backend, programs, simplified)


class _Point:
    """Binding of call arguments to a point, in the order of `inputs`."""

    inputs: tuple[str, ...]

    def _point(self, args: tuple, kwargs: dict) -> list[float]:
        args = bind(self.inputs, args, kwargs)
        try:
            return [float(value) for value in args]
        except (TypeError, ValueError) as error:
            raise ArgumentError(f"point values must be real numbers: {error}") from None


class Gradient(_Point):
    """g(*point) -> gradient tuple. Positional arguments follow `g.inputs`; keywords use input names.

    Only the functions actually called are compiled (CPython's compile is the slowest step for large
    expressions), and the full module text is rendered only when `g.source` is read.
    """

    def __init__(self, programs: Programs, simplified: bool = True):
        self.programs = programs
        self.expression = programs.tape.source
        self.inputs: tuple[str, ...] = programs.tape.inputs
        self.wrt: tuple[str, ...] = programs.adjoint.wrt
        self._program = programs.adjoint if simplified else programs.raw
        self._compiled: dict[str, object] = {}

    @cached_property
    def source(self) -> str:
        return render_module(self._program)

    def _function(self, name: str):
        function = self._compiled.get(name)
        if function is None:
            function = self._compiled[name] = load(render_module(self._program, (name,)), "python")[name]
        return function

    @property
    def grad_function(self):
        """The generated grad() itself, for hot loops: positional floats in g.inputs order, no checks."""
        return self._function("grad")

    _grad = None  # the generated grad(), compiled on the first call

    def __call__(self, *args, **kwargs) -> tuple[float, ...]:
        grad = self._grad or self._compile_grad()
        if not kwargs and len(args) == len(self.inputs):
            for value in args:
                if type(value) is not float:
                    break
            else:  # the common case, already floats: nothing to bind or convert
                return grad(*args)
        return grad(*self._point(args, kwargs))

    def _compile_grad(self):
        self._grad = self._function("grad")
        return self._grad

    def value(self, *args, **kwargs) -> float:
        return self._function("f")(*self._point(args, kwargs))

    def value_and_grad(self, *args, **kwargs) -> tuple[float, tuple[float, ...]]:
        return self._function("value_and_grad")(*self._point(args, kwargs))

    def save(self, path, force: bool = False):
        """Write the generated module to `path` atomically (see symdiff.files.write_atomic)."""
        return write_atomic(path, self.source, force)

    def verify(self, timeout: float = DEFAULT_TIMEOUT) -> Report:
        """Prove the gradient right with SymPy, and the functions this object runs with it."""
        entries = {"f": self.value, "grad": self, "value_and_grad": self.value_and_grad}
        module = Emitted("python", entries.__getitem__, python=lambda name: render_module(self._program, (name,)))
        return verify_programs(self.programs.raw, self.programs.adjoint, timeout, modules=(module,))

    def __repr__(self) -> str:
        return f"<symdiff gradient of {self.expression!r} wrt ({', '.join(self.wrt)})>"


def compile_jvp(expr, *, limits: Limits = DEFAULT_LIMITS) -> Jvp:
    """j(point, direction) -> (value, directional derivative), both sequences in `j.inputs` order."""
    return Jvp(build_tape(expr, limits, several_outputs=False))


def compile_jacobian(exprs, wrt=None, *, mode: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Jacobian:
    """J(*point) -> the m x n Jacobian as a tuple of rows; `exprs` is a list of strings, or one string
    "f1, f2" or "[f1, f2]". `mode` "reverse" (one sweep per output) or "forward" (one per input);
    by default whichever needs fewer sweeps."""
    tape = build_tape(exprs, limits)
    wrt = tape.inputs if wrt is None else check_wrt(wrt)
    if mode is None:
        mode = "reverse" if len(tape.outputs) <= len(wrt) else "forward"
    if mode not in ("reverse", "forward"):
        raise SymdiffError(f"mode must be 'reverse' or 'forward', not {mode!r}")
    return Jacobian(tape, wrt, mode)


def compile_hessian(expr, wrt=None, *, limits: Limits = DEFAULT_LIMITS) -> Hessian:
    """H(*point) -> (value, gradient, Hessian rows), and H.hvp(point, direction), forward over reverse."""
    return Hessian(build(expr, wrt, limits))


class _Module(_Point):
    """A generated module compiled on first use."""

    source: str

    def _function(self, name: str):
        compiled = self.__dict__.setdefault("_compiled", {})
        if name not in compiled:
            compiled[name] = load(self.source, "python")[name]
        return compiled[name]

    def save(self, path, force: bool = False):
        return write_atomic(path, self.source, force)


class Jvp(_Module):
    def __init__(self, tape: Tape):
        from .derivatives import jvp_source

        self.expression, self.inputs = tape.source, tape.inputs
        self.source = jvp_source(tape)

    def __call__(self, point, direction) -> tuple[float, float]:
        values = self._point(tuple(point), {})
        directions = self._point(tuple(direction), {})
        return self._function("jvp")(*values, *directions)


class Jacobian(_Module):
    def __init__(self, tape: Tape, wrt: tuple[str, ...], mode: str):
        from .derivatives import jacobian_source

        self.expression, self.inputs, self.wrt, self.mode = tape.source, tape.inputs, wrt, mode
        self.outputs = len(tape.outputs)
        self.source = jacobian_source(tape, wrt, mode)

    def __call__(self, *args, **kwargs) -> tuple[tuple[float, ...], ...]:
        return self._function("jacobian")(*self._point(args, kwargs))

    def value_and_jacobian(self, *args, **kwargs):
        return self._function("value_and_jacobian")(*self._point(args, kwargs))


class Hessian(_Module):
    def __init__(self, programs: Programs):
        from .derivatives import hessian_source

        self.programs = programs
        self.expression, self.inputs, self.wrt = programs.tape.source, programs.tape.inputs, programs.adjoint.wrt
        self.source = hessian_source(programs.tape, programs.adjoint)

    def __call__(self, *args, **kwargs):
        return self._function("hessian")(*self._point(args, kwargs))

    def hvp(self, point, direction):
        values = self._point(tuple(point), {})
        directions = self._point(tuple(direction), {})
        return self._function("hvp")(*values, *directions)


def render_module(program: Adjoint, functions: tuple[str, ...] | None = None) -> str:
    """render(), with the cycle collector paused: a large program's text is millions of objects."""
    with paused_gc():
        return render(program, functions=functions)


__all__ = [
    "compile_grad", "compile_hessian", "compile_jacobian", "compile_jvp", "gradient_source", "verify", "Gradient",
    "Hessian", "Jacobian", "Jvp", "SymdiffError",
]
