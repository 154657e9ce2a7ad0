"""base: what every backend's callable shares: the programs and names, binding of arguments, save,
verify; the derivative callables (jvp, Jacobian, Hessian) over any backend's entry points; and the
check of a batch's output arrays."""

from __future__ import annotations

from functools import cached_property

from ..calling import bind, real_point
from ..core.bounds import bounds, violation
from ..errors import ArgumentError
from ..files import write_atomic
from ..verify import DEFAULT_TIMEOUT, Emitted, Report, verify_programs


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


class Derivatives:
    """A jvp, Jacobian or Hessian callable over one backend's entry points (callables.derivatives):
    points and directions are bound in `inputs` order; Python and C take floats, NumPy arrays."""

    def __init__(self, entries, expression: str, inputs: tuple[str, ...], backend: str, tape=None):
        self._entries, self.expression, self.inputs, self.backend = entries, expression, inputs, backend
        self._arrays = ArrayArguments(tape, backend) if tape is not None and tape.arrays else None

    @property
    def source(self) -> str:
        return self._entries.source

    def _values(self, args: tuple, kwargs: dict) -> tuple:
        args = bind(self.inputs, args, kwargs)
        if self._arrays is not None:
            return self._arrays(args)
        if self.backend == "numpy":  # arrays broadcast elementwise, as in the NumPy gradient
            return args
        return real_point(args)

    def _function(self, name: str):
        return self._entries.function(name)

    def save(self, path, force: bool = False):
        """Write the generated source to `path` atomically (see symdiff.files.write_atomic)."""
        return write_atomic(path, self.source, force)


class Jvp(Derivatives):
    def __call__(self, point, direction) -> tuple:
        """(value, directional derivative) at `point` along `direction`, both in `inputs` order."""
        return self._function("jvp")(*self._point_and_direction(point, direction))

    def _point_and_direction(self, point, direction) -> tuple:
        values, along = self._values(tuple(point), {}), self._values(tuple(direction), {})
        if self._arrays is not None:
            for name, value, tangent in zip(self.inputs, values, along):
                if _shape(value) != _shape(tangent):
                    raise ArgumentError(f"the direction's {name} has shape {_shape(tangent)}, the point's {_shape(value)}")
        return (*values, *along)


def _shape(value) -> tuple:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return tuple(shape)
    if isinstance(value, list):
        return (len(value), *(_shape(value[0]) if value and isinstance(value[0], list) else ()))
    return ()


class Jacobian(Derivatives):
    def __init__(
        self, entries, expression: str, inputs: tuple[str, ...], backend: str, wrt, mode: str, outputs, tape=None
    ):
        super().__init__(entries, expression, inputs, backend, tape)
        self.wrt, self.mode = wrt, mode
        self.outputs = outputs  # how many; None for a vector output, whose length the point decides

    def __call__(self, *args, **kwargs) -> tuple:
        return self._function("jacobian")(*self._values(args, kwargs))

    def value_and_jacobian(self, *args, **kwargs):
        return self._function("value_and_jacobian")(*self._values(args, kwargs))


class Hessian(Jvp):
    def __init__(self, entries, expression: str, inputs: tuple[str, ...], backend: str, wrt, programs, tape=None):
        super().__init__(entries, expression, inputs, backend, tape)
        self.wrt, self.programs = wrt, programs
        # An array program's module has hvp only (its Hessian's size is known only at a point).
        self._by_columns = tape is not None

    def __call__(self, *args, **kwargs):
        if self._by_columns:
            return self._columns(self._values(args, kwargs))
        return self._function("hessian")(*self._values(args, kwargs))

    def hvp(self, point, direction):
        return self._function("hvp")(*self._point_and_direction(point, direction))

    def _columns(self, point: tuple) -> tuple:
        """(value, gradient, rows) of an array program: one Hessian-vector product per unit direction
        along the scalars of wrt (an array's elements in order), the generated hvp's tangent sweep."""
        hvp = self._function("hvp")
        zero = tuple(_zeros_like(value) for value in point)
        value, gradient, _ = hvp(*point, *zero)
        rows = []
        for name in self.wrt:
            position = self.inputs.index(name)
            for element in range(_size(point[position])):
                direction = list(zero)
                direction[position] = _unit_like(point[position], element)
                _, _, product = hvp(*point, *direction)
                rows.append(tuple(item for part in product for item in _flat(part)))
        return value, gradient, tuple(rows)


def _size(value) -> int:
    size = 1
    for length in _shape(value):
        size *= length
    return size


def _zeros_like(value):
    if hasattr(value, "shape"):
        import numpy  # the value is a NumPy array

        return numpy.zeros(value.shape)
    if isinstance(value, list):
        return [_zeros_like(item) for item in value]
    return 0.0


def _unit_like(value, element: int):
    """Zeros shaped as `value` with a 1 at flat position `element` (row-major)."""
    unit = _zeros_like(value)
    if not hasattr(unit, "shape") and not isinstance(unit, list):
        return 1.0  # a scalar input
    if hasattr(unit, "shape"):
        unit.flat[element] = 1.0
        return unit
    if unit and isinstance(unit[0], list):
        width = len(unit[0])
        unit[element // width][element % width] = 1.0
    else:
        unit[element] = 1.0
    return unit


def _flat(part) -> list:
    if hasattr(part, "ravel"):
        return part.ravel().tolist()
    if isinstance(part, list):
        return [item for row in part for item in (row if isinstance(row, list) else [row])]
    return [part]


class LazyFunctions(dict):
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




FINE_LENGTHS = 64  # how many sets of checked lengths an ArrayArguments remembers


class ArrayArguments:
    """Call values of an array program, in `tape.inputs` order, as a backend's code takes them: each
    scalar a float, each array a list of floats (lists of rows for 2-D) for "python", a C-contiguous
    float64 NumPy array for "c", and for "numpy" a NumPy array or any array-like with a shape (a Dask
    array stays lazy). The lengths are checked against every read the program makes: a read out of
    bounds is an ArgumentError naming the array, the index and the length, before any code runs."""

    def __init__(self, tape, kind: str):
        self.inputs, self.kind = tape.inputs, kind
        self.dims = dict(tape.arrays)
        self.bounds = bounds(tape)
        self._fine: set[tuple] = set()  # lengths already checked: an optimiser calls with the same ones

    def __call__(self, values: tuple) -> tuple:
        lengths: dict[tuple[str, int], int] = {}
        converted = []
        for name, value in zip(self.inputs, values):
            dims = self.dims.get(name)
            if dims is None:
                converted.append(self._scalar(name, value))
            else:
                array, shape = self._array(name, value, dims)
                converted.append(array)
                lengths.update(((name, dim), length) for dim, length in enumerate(shape))
        key = tuple(lengths.items())
        if key not in self._fine:
            for bound in self.bounds:
                message = violation(bound, lengths)
                if message is not None:
                    raise ArgumentError(message)
            if len(self._fine) < FINE_LENGTHS:
                self._fine.add(key)
        return tuple(converted)

    @staticmethod
    def _scalar(name: str, value) -> float:
        if hasattr(value, "__len__") and not isinstance(value, str):
            raise ArgumentError(f"{name} is a scalar input, got a sequence of {len(value)}")
        try:
            return float(value)
        except (TypeError, ValueError) as error:
            raise ArgumentError(f"{name} must be a real number: {error}") from None

    def _array(self, name: str, value, dims: int) -> tuple[object, tuple[int, ...]]:
        module = type(value).__module__.split(".")[0]
        if self.kind == "numpy" and module == "dask":
            array = value  # stays lazy; its dtype is the caller's choice
        elif module == "numpy" or self.kind != "python":
            import numpy  # an array backend, or NumPy input

            try:
                array = numpy.asarray(value, dtype=numpy.float64)
            except (TypeError, ValueError) as error:
                raise ArgumentError(f"{name} must be an array of real numbers: {error}") from None
            if self.kind == "c":
                array = numpy.ascontiguousarray(array)
        else:
            array = value
        shape = getattr(array, "shape", None)
        if shape is None:  # a Python sequence
            array, shape = _nested_floats(name, value, dims)
        elif len(shape) != dims:
            raise ArgumentError(f"{name} is a {dims}-D array input, got an array of shape {tuple(shape)}")
        elif self.kind == "python":
            array = array.tolist()  # one conversion, not one per element read
        return array, tuple(int(length) for length in shape)


def _nested_floats(name: str, value, dims: int) -> tuple[list, tuple[int, ...]]:
    """A sequence (of sequences, for 2-D) of numbers as lists of floats, with its shape."""
    if isinstance(value, str) or not hasattr(value, "__len__"):
        raise ArgumentError(f"{name} is an array input: pass a sequence of numbers, got {type(value).__name__}")
    try:
        if dims == 1:
            return list(map(float, value)), (len(value),)  # map: about twice as fast as a comprehension
        rows = [_nested_floats(name, row, dims - 1) for row in value]
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"{name} must hold real numbers: {error}") from None
    inner = {shape for _, shape in rows}
    if len(inner) > 1:
        raise ArgumentError(f"{name}'s rows have different lengths: {sorted(shape[0] for shape in inner)}")
    return [row for row, _ in rows], (len(rows), *(inner.pop() if inner else (0,) * (dims - 1)))
