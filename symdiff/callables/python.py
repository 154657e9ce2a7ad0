"""The Python backend's callables: the generated module (codegen.python) run by CPython, importing only math."""

from __future__ import annotations

from functools import cached_property

from ..calling import bind, load, paused_gc, real_point
from ..codegen.python import program_text, render
from ..core.adjoint import Adjoint
from ..core.program import Program
from ..files import write_atomic
from ..verify import DEFAULT_TIMEOUT, Emitted, Report, verify_programs
from .base import ArrayArguments


class _Point:
    """Binding of call arguments to a point, in the order of `inputs`."""

    inputs: tuple[str, ...]
    _arrays: ArrayArguments | None = None  # an array program's conversion and bounds check

    def _point(self, args: tuple, kwargs: dict) -> tuple[float, ...]:
        if self._arrays is not None:
            return self._arrays(bind(self.inputs, args, kwargs))
        return real_point(bind(self.inputs, args, kwargs))


class Gradient(_Point):
    """g(*point) -> gradient tuple. Positional arguments follow `g.inputs`; keywords use input names.

    Only the functions actually called are compiled (CPython's compile is the slowest step for large
    expressions), and the full module text is rendered only when `g.source` is read.
    """

    def __init__(self, programs, simplified: bool = True):
        self.programs = programs
        self.expression = programs.tape.source
        self.inputs: tuple[str, ...] = programs.tape.inputs
        self.wrt: tuple[str, ...] = programs.adjoint.wrt
        self._program = programs.sweep(simplified)
        self._compiled: dict[str, object] = {}
        if programs.tape.arrays:
            self._arrays = ArrayArguments(programs.tape, "python")

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
        if not kwargs and len(args) == len(self.inputs) and self._arrays is None:
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


class PythonEntries:
    """The entry points of a derivative Program as a Python module (see callables.derivatives)."""

    def __init__(self, program: Program):
        self.source = program_text(program)
        self._namespace: dict | None = None

    def function(self, name: str):
        if self._namespace is None:
            self._namespace = load(self.source, "python")
        return self._namespace[name]


def render_module(program: Adjoint, functions: tuple[str, ...] | None = None) -> str:
    """render(), with the cycle collector paused: a large program's text is millions of objects."""
    with paused_gc():
        return render(program, functions=functions)
