"""Backends other than plain Python: compile_backend(name, programs, simplified) -> a callable with
the interface of symdiff.api.Gradient (g(*point), keywords by input name, value, value_and_grad,
source, save, inputs, wrt, verify).

"numpy" runs elementwise over arrays (symdiff.numpy_backend); "c" compiles C99 with the system
compiler and calls it through ctypes (symdiff.c_backend).
"""

from __future__ import annotations

from functools import cached_property

from .calling import bind, load
from .errors import ArgumentError, SymdiffError
from .files import write_atomic
from .verify import DEFAULT_TIMEOUT, Report, verify_programs

BACKENDS = ("python", "numpy", "c")


def compile_backend(name: str, programs, simplified: bool = True):
    adjoint = programs.adjoint if simplified else programs.raw
    if name == "numpy":
        return NumpyGradient(programs, adjoint)
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
        """Prove the gradient right with SymPy, and run this backend's code against the proof."""
        from .verify import Emitted

        entries = {"f": self.value, "grad": self, "value_and_grad": self.value_and_grad}
        if hasattr(self, "batch"):
            entries["batch"] = self.batch
        module = Emitted(self.backend, entries.__getitem__, tuple(entries))
        return verify_programs(self.programs.raw, self.programs.adjoint, timeout, modules=(module,))

    @cached_property
    def _functions(self) -> dict:
        raise NotImplementedError

    def _point(self, args: tuple, kwargs: dict) -> tuple:
        return bind(self.inputs, args, kwargs)

    def __repr__(self) -> str:
        return f"<symdiff {self.backend} gradient of {self.expression!r} wrt ({', '.join(self.wrt)})>"

    backend = ""


class NumpyGradient(CompiledGradient):
    """g(*arrays) -> tuple of arrays, elementwise over inputs that broadcast together.

    As in the Python backend, only the entry points called are rendered and compiled (a first
    gradient does not wait for f and value_and_grad), and the full module text only when read."""

    backend = "numpy"

    def __init__(self, programs, adjoint):
        self.programs = programs
        self.expression: str = programs.tape.source
        self.inputs: tuple[str, ...] = programs.tape.inputs
        self.wrt: tuple[str, ...] = programs.adjoint.wrt
        self._adjoint = adjoint
        self._compiled: dict[str, object] = {}

    @cached_property
    def source(self) -> str:
        from .numpy_backend import render_numpy

        return render_numpy(self._adjoint)

    @cached_property
    def _functions(self) -> dict:
        return _LazyFunctions(self._entry)

    def batch(self, points, *, value: bool = False, grad: bool = True, out=None):
        """Many points at once, laid out input by input as for the C backend: `points[i]` is input i
        at every point, an array of shape (inputs, n) or (inputs, *shape).

        Returns the gradients as (wrt, *shape) (`grad`), the values as (*shape) (`value`), or both
        as a pair. `out`: arrays to write into instead (a pair when both are asked for); reused
        across calls, they spare each call its fresh memory, about 0.1 ns per byte of results."""
        import numpy  # the numpy backend needs NumPy

        if not (value or grad):
            raise ArgumentError("batch: ask for value, grad or both")
        points = numpy.asarray(points, dtype=numpy.float64)
        if points.ndim == 1 and len(self.inputs) == 1:
            points = points.reshape(1, -1)
        if points.ndim == 0 or points.shape[0] != len(self.inputs):
            raise ArgumentError(f"batch: points must have shape ({len(self.inputs)}, n), got {points.shape}")
        values, grads = batch_outputs(points, out, value, grad, len(self.wrt))
        into = (values, grads) if value and grad else values if value else grads
        if not self.inputs:  # no input carries the points' shape: the one value, at every point
            if value:
                values[...] = self._functions["f"]()
            if grad:
                for row, partial in zip(grads, self._functions["grad"]()):
                    row[...] = partial
            return into
        name = "value_and_grad" if value and grad else "f" if value else "grad"
        self._functions[name](*points, **{self._out_keyword: into})
        return into

    @cached_property
    def _out_keyword(self) -> str:
        from .numpy_backend import out_keyword

        return out_keyword(self._adjoint)

    def _entry(self, name: str):
        from .numpy_backend import render_numpy

        function = self._compiled.get(name)
        if function is None:
            alone = name in ("f", "grad")
            text = render_numpy(self._adjoint, (name,)) if alone else self.source
            function = self._compiled[name] = load(text, "numpy")[name]
        return function


class _LazyFunctions(dict):
    """name -> the compiled entry point, compiled when first looked up."""

    def __init__(self, compile_one):
        super().__init__()
        self._compile_one = compile_one

    def __missing__(self, name: str):
        self[name] = self._compile_one(name)
        return self[name]


def batch_outputs(points, out, value: bool, grad: bool, partials: int) -> tuple:
    """(values, gradients) for a batch over `points` (inputs, *shape): the caller's `out` arrays,
    checked, or new ones; None for what was not asked for."""
    import numpy  # the caller passed NumPy arrays

    shape = points.shape[1:]
    wanted = [shape if value else None, (partials, *shape) if grad else None]
    asked = [target for target in wanted if target is not None]
    if out is None:
        given = [numpy.empty(target) for target in asked]
    elif len(asked) == 2:
        given = list(out) if isinstance(out, tuple | list) and len(out) == 2 else None
        if given is None:
            raise ArgumentError("batch: out must be a pair (values, gradients) when both are asked for")
    else:
        given = [out]
    for array, target in zip(given, asked):
        if not (
            isinstance(array, numpy.ndarray)
            and array.shape == target
            and array.dtype == numpy.float64
            and array.flags.c_contiguous
            and array.flags.writeable
        ):
            raise ArgumentError(f"batch: out must be a writeable C-contiguous float64 array of shape {target}")
        if numpy.may_share_memory(array, points):
            raise ArgumentError("batch: out must not share memory with the points")
    arrays = iter(given)
    return tuple(next(arrays) if target is not None else None for target in wanted)


def header_text(docstring: str, backend: str) -> str:
    """The Python renderer's module docstring for another backend: its "Generated by symdiff" line
    first (where symdiff looks for it before overwriting a file), naming the backend."""
    lines = docstring.rstrip("\n").split("\n")
    generated = [line for line in lines if line.startswith("Generated by symdiff")]
    rest = [line for line in lines if not line.startswith("Generated by symdiff")]
    while rest and not rest[-1]:
        rest.pop()
    first = [line.replace(". Do not edit", f", {backend}. Do not edit", 1) for line in generated]
    return "\n".join([*first, "", *rest])
