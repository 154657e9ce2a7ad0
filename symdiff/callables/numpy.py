"""The NumPy backend's callables: the generated module (codegen/numpy.py) run elementwise over arrays."""

from __future__ import annotations

from functools import cached_property

from ..calling import load
from ..errors import ArgumentError
from .base import ArrayArguments, CompiledGradient, LazyFunctions, batch_outputs


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
        tape = programs.tape
        self._arrays = None
        if tape.arrays or tape.loops:  # an array program: the function takes the arrays themselves
            self._arrays = ArrayArguments(tape, "numpy")
            self._wrt_arrays = frozenset(name for name in self.wrt if tape.is_array(name))

    def __call__(self, *args, **kwargs):
        return self._run("grad", args, kwargs)

    def value(self, *args, **kwargs):
        return self._run("f", args, kwargs)

    def value_and_grad(self, *args, **kwargs):
        return self._run("value_and_grad", args, kwargs)

    def _run(self, name: str, args: tuple, kwargs: dict):
        if self._arrays is None:
            return self._functions[name](*self._point(args, kwargs))
        values = self._arrays(self._point(args, kwargs))
        if self._wrt_arrays:  # a gradient array is written in place: its array must be a NumPy one
            import numpy

            values = tuple(
                numpy.asarray(value, dtype=numpy.float64) if name in self._wrt_arrays else value
                for name, value in zip(self.inputs, values)
            )
        return _computed(self._functions[name](*values))

    @cached_property
    def source(self) -> str:
        from ..codegen.numpy import render_numpy

        return render_numpy(self._adjoint)

    @cached_property
    def _functions(self) -> dict:
        return LazyFunctions(self._entry)

    def batch(self, points, *, value: bool = False, grad: bool = True, out=None):
        """Many points at once, laid out input by input as for the C backend: `points[i]` is input i
        at every point, an array of shape (inputs, n) or (inputs, *shape).

        Returns the gradients as (wrt, *shape) (`grad`), the values as (*shape) (`value`), or both
        as a pair. `out`: arrays to write into instead (a pair when both are asked for); reused
        across calls, they spare each call its fresh memory, about 0.1 ns per byte of results."""
        import numpy  # the numpy backend needs NumPy

        if self._arrays is not None:
            raise ArgumentError("batch: an array program takes its arrays whole; call it once per point")
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
        from ..codegen.numpy import out_keyword

        return out_keyword(self._adjoint)

    def _entry(self, name: str):
        from ..codegen.numpy import render_numpy

        function = self._compiled.get(name)
        if function is None and self._arrays is not None:  # one module, rendered in milliseconds, holds all three
            namespace = load(self.source, "numpy")
            self._compiled.update((entry, namespace[entry]) for entry in ("f", "grad", "value_and_grad"))
            return self._compiled[name]
        if function is None:
            alone = name in ("f", "grad")
            text = render_numpy(self._adjoint, (name,)) if alone else self.source
            function = self._compiled[name] = load(text, "numpy")[name]
        return function


class NumpyEntries:
    """The entry points of a derivative Program as a NumPy module (see callables.derivatives): each
    takes arrays (or numbers) that broadcast together, inputs then directions, and returns what the
    Python module's function does, with an array of the points' shape for each number. Of an array
    program, each takes the arrays whole and returns NumPy values (a vector output's Jacobian as a
    2-D array), Dask data computed once at the end."""

    def __init__(self, program):
        from ..codegen.numpy import is_array_program, program_text  # imports NumPy, which only this backend needs

        self.source = program_text(program)
        self._arrays = is_array_program(program)
        self._namespace: dict | None = None

    def function(self, name: str):
        if self._namespace is None:
            self._namespace = load(self.source, "numpy")
        function = self._namespace[name]
        if not self._arrays:
            return function
        return lambda *values: _computed(function(*values))


def _computed(results):
    """The results with every Dask value computed, in one pass over the data (the generated function
    ran lazily on Dask arrays); other values as they are."""
    flat = [results] if not isinstance(results, tuple) else [
        item for result in results for item in (result if isinstance(result, tuple) else (result,))
    ]
    if not any(type(item).__module__.split(".")[0] == "dask" for item in flat):
        return results
    import dask  # the caller passed Dask arrays

    (computed,) = dask.compute(results)  # a tuple of tuples is traversed: every value computed once
    return computed
