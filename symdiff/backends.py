"""Backends other than plain Python: compile_backend(name, programs, simplified) -> a callable with
the interface of symdiff.api.Gradient (g(*point), keywords by input name, value, value_and_grad,
source, save, inputs, wrt, verify).

"numpy" runs elementwise over arrays (symdiff.numpy_backend); "c" compiles C99 with the system
compiler and calls it through ctypes (symdiff.c_backend).
"""

from __future__ import annotations

import hashlib
import linecache
from functools import cached_property

from .errors import ArgumentError, SymdiffError
from .files import write_atomic
from .verify import DEFAULT_TIMEOUT, Report, verify_programs

BACKENDS = ("python", "numpy", "c")


def compile_backend(name: str, programs, simplified: bool = True):
    adjoint = programs.adjoint if simplified else programs.raw
    if name == "numpy":
        from .numpy_backend import render_numpy

        return NumpyGradient(programs, render_numpy(adjoint))
    if name == "c":
        from .c_backend import CGradient

        return CGradient(programs, adjoint)
    raise SymdiffError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


class CompiledGradient:
    """What every backend's callable shares: the programs, the names, binding of arguments."""

    def __init__(self, programs, source: str):
        self.programs = programs
        self.expression: str = programs.tape.source
        self.inputs: tuple[str, ...] = programs.tape.inputs
        self.wrt: tuple[str, ...] = programs.adjoint.wrt
        self.source = source

    def __call__(self, *args, **kwargs):
        return self._functions["grad"](*self._point(args, kwargs))

    def value(self, *args, **kwargs):
        return self._functions["f"](*self._point(args, kwargs))

    def value_and_grad(self, *args, **kwargs):
        return self._functions["value_and_grad"](*self._point(args, kwargs))

    def save(self, path, force: bool = False):
        """Write the generated source to `path` atomically (see symdiff.files.write_atomic)."""
        return write_atomic(path, self.source, force)

    def verify(self, timeout: float = DEFAULT_TIMEOUT) -> Report:
        return verify_programs(self.programs.raw, self.programs.adjoint, timeout)

    @cached_property
    def _functions(self) -> dict:
        raise NotImplementedError

    def _point(self, args: tuple, kwargs: dict) -> tuple:
        if kwargs:
            args = bind(self.inputs, args, kwargs)
        if len(args) != len(self.inputs):
            raise ArgumentError(
                f"expected {len(self.inputs)} values ({', '.join(self.inputs) or 'none'}), got {len(args)}"
            )
        return args

    def __repr__(self) -> str:
        return f"<symdiff {self.backend} gradient of {self.expression!r} wrt ({', '.join(self.wrt)})>"

    backend = ""


class NumpyGradient(CompiledGradient):
    """g(*arrays) -> tuple of arrays, elementwise over inputs that broadcast together."""

    backend = "numpy"

    @cached_property
    def _functions(self) -> dict:
        # Compiled on first use; a stable file name (a digest of the text) lets tracebacks show lines.
        digest = hashlib.sha256(self.source.encode()).hexdigest()[:12]
        filename = f"<symdiff-numpy-{digest}>"
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        namespace: dict = {"__name__": f"symdiff_numpy_{digest}"}
        exec(compile(self.source, filename, "exec"), namespace)
        return namespace


def bind(inputs: tuple[str, ...], args: tuple, kwargs: dict) -> tuple:
    """Positional and keyword arguments as one tuple in the order of `inputs`."""
    values = dict(zip(inputs, args))
    for name, value in kwargs.items():
        if name not in inputs:
            raise ArgumentError(f"unknown input {name!r}; inputs are {', '.join(inputs) or 'none'}")
        if name in values:
            raise ArgumentError(f"input {name!r} given twice")
        values[name] = value
    missing = [name for name in inputs if name not in values]
    if missing:
        raise ArgumentError(f"missing value for {', '.join(missing)}")
    return tuple(values[name] for name in inputs)
