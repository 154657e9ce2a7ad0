"""The C backend's callables: the generated C (codegen.c) compiled into a shared library, called through
ctypes, one point at a time or over a batch. An array program's functions take whole arrays (one
call, no batch): its arguments are converted and checked against every read before the call."""

from __future__ import annotations

import array
import ctypes
import functools
import struct

from ..codegen.c import (
    SIGNATURES,
    array_outputs,
    build_library,
    c_module,
    find_compiler,
    library_flags,
    library_module,
    program_module,
    render_module,
)
from ..core.adjoint import Adjoint
from ..core.bounds import evaluate
from ..core.program import Matrix, Program, Scalar, Vector
from ..errors import ArgumentError
from .base import ArrayArguments, CompiledGradient, batch_outputs


class CGradient(CompiledGradient):
    """g(*point) -> gradient tuple, computed by compiled C; g.batch(points) evaluates many points. An
    array program (x[i], sum(...)) takes whole arrays, lists or NumPy arrays, and returns a float64
    NumPy array for each array of wrt; it has no batch."""

    backend = "c"
    _arrays: ArrayArguments | None = None  # an array program's conversion and bounds check

    def __init__(self, programs, adjoint: Adjoint):
        self._module = c_module(adjoint)
        source, header = render_module(self._module)
        super().__init__(programs, source)
        self.header = header
        find_compiler()  # no compiler: a clear error now, not at the first call
        self._compiled: dict[str, ctypes._CFuncPtr] = {}
        if self._module.arrays:
            self._arrays = ArrayArguments(programs.tape, "c")

    def _point(self, args: tuple, kwargs: dict) -> tuple:
        point = super()._point(args, kwargs)
        return point if self._arrays is None else self._arrays(point)

    def _c(self, entry: str):
        """The C function symdiff_`entry`, compiled on first use with only what it needs (as the
        Python backend compiles only what is called): a first gradient does not wait for the batch
        loops, whose SIMD bodies cost the compiler most."""
        function = self._compiled.get(entry)
        if function is None:
            module = library_module(self._module, f"symdiff_{entry}")
            library = build_library(render_module(module)[0], library_flags(module))
            for name in (*(loop.name for loop in module.loops), *(wrapper.name for wrapper in module.wrappers)):
                self._compiled[name.removeprefix("symdiff_")] = _bind(library, name)
            function = self._compiled[entry]
        return function

    @functools.cached_property
    def _functions(self) -> dict:
        if self._arrays is not None:
            return _array_functions(self._module, self.programs.tape, self.wrt)
        pack = self._point_struct.pack
        result = struct.Struct(f"{len(self.wrt)}d")
        size, unpack = result.size, result.unpack_from
        c = self._c

        def call_f(*point):
            return c("f")(_pack(pack, point))

        def call_grad(*point):
            out = ctypes.create_string_buffer(size)
            c("grad")(_pack(pack, point), out)
            return unpack(out)

        def call_both(*point):
            out = ctypes.create_string_buffer(size)
            value = c("value_and_grad")(_pack(pack, point), out)
            return value, unpack(out)

        return {"f": call_f, "grad": call_grad, "value_and_grad": call_both}

    def grad_array(self, x, out=None):
        """The gradient at one point given as an array of `inputs` float64 values (a NumPy array, or
        any sequence of numbers such as array.array("d") or a list): the fast path for optimisers.
        Returns a NumPy array for NumPy input (written into `out` if given), else an array.array("d")."""
        self._no_arrays("grad_array")
        if type(x).__module__.split(".")[0] == "numpy":
            import numpy  # the caller passed NumPy arrays, so NumPy is installed

            if not (x.dtype == numpy.float64 and x.flags.c_contiguous and x.flags.writeable):
                x = numpy.array(x, dtype=numpy.float64)
            result = numpy.empty(len(self.wrt)) if out is None else out
            point = _address(x) if len(x) == len(self.inputs) else None
        else:  # packed to bytes: three times faster than array.array("d", x) from a list of 1,000
            result = array.array("d", self._zero_gradient)
            point = _pack(self._point_struct.pack, x) if len(x) == len(self.inputs) else None
        if point is None or len(result) != len(self.wrt):
            raise ArgumentError(f"grad_array: expected {len(self.inputs)} inputs and room for {len(self.wrt)} partials")
        self._c("grad")(point, _address(result))
        return result

    def value_array(self, x) -> float:
        """f at one point given as an array (see grad_array)."""
        self._no_arrays("value_array")
        if len(x) != len(self.inputs):
            raise ArgumentError(f"value_array: expected {len(self.inputs)} inputs, got {len(x)}")
        if type(x).__module__.split(".")[0] == "numpy":
            import numpy  # the caller passed NumPy arrays, so NumPy is installed

            x = numpy.ascontiguousarray(x, dtype=numpy.float64)  # no copy for float64 in order
            return self._c("f")(x.ctypes.data)
        # Packed to bytes the call keeps alive (the address of a temporary array.array of a list was
        # freed memory by the time C read it).
        return self._c("f")(_pack(self._point_struct.pack, x))

    @functools.cached_property
    def _point_struct(self) -> struct.Struct:
        return struct.Struct(f"{len(self.inputs)}d")

    @functools.cached_property
    def _zero_gradient(self) -> bytes:
        return bytes(8 * len(self.wrt))

    def batch(self, points, *, value: bool = False, grad: bool = True, out=None):
        """Many points at once, laid out input by input: `points[i][k]` is input i of point k (a NumPy
        array of shape (inputs, n), or a sequence of `inputs` sequences of n numbers).

        Returns the gradients as (wrt, n) (`grad`), the values as (n,) (`value`), or both as a pair:
        NumPy arrays for NumPy input, else lists. `out` (NumPy input only): arrays to write into,
        (values, gradients) when both are asked for."""
        self._no_arrays("batch")
        if not (value or grad):
            raise ArgumentError("batch: ask for value, grad or both")
        if type(points).__module__.split(".")[0] == "numpy":
            return self._numpy_batch(points, value, grad, out)
        if out is not None:
            raise ArgumentError("batch: out= needs NumPy arrays")
        columns = [list(map(float, column)) for column in points]
        if len(columns) != len(self.inputs):
            raise ArgumentError(f"batch: expected {len(self.inputs)} rows of points, one per input, got {len(columns)}")
        n = len(columns[0]) if columns else 1
        if any(len(column) != n for column in columns):
            raise ArgumentError("batch: every input needs the same number of points")
        flat = array.array("d", [x for column in columns for x in column])
        values, grads = array.array("d", bytes(8 * n)), array.array("d", bytes(8 * n * len(self.wrt)))
        self._run_batch(n, flat.buffer_info()[0], values.buffer_info()[0], grads.buffer_info()[0], value, grad)
        rows = [list(grads[j * n : (j + 1) * n]) for j in range(len(self.wrt))]
        return _select(list(values), rows, value, grad)

    def _numpy_batch(self, points, value: bool, grad: bool, out):
        import numpy  # the caller passed NumPy arrays, so NumPy is installed

        points = numpy.ascontiguousarray(points, dtype=numpy.float64)
        if points.ndim == 1 and len(self.inputs) == 1:
            points = points.reshape(1, -1)
        if points.ndim != 2 or points.shape[0] != len(self.inputs):
            raise ArgumentError(f"batch: points must have shape ({len(self.inputs)}, n), got {points.shape}")
        n = points.shape[1]
        values, grads = batch_outputs(points, out, value, grad, len(self.wrt))
        self._run_batch(
            n, points.ctypes.data, values.ctypes.data if value else 0, grads.ctypes.data if grad else 0, value, grad
        )
        return _select(values, grads, value, grad)

    def _no_arrays(self, what: str) -> None:
        if self._arrays is not None:
            raise ArgumentError(
                f"{what} is not available for array programs: each call takes whole arrays "
                f"(call g({', '.join(self.inputs)}) once per point)"
            )

    def _run_batch(self, n: int, points: int, values: int, grads: int, value: bool, grad: bool) -> None:
        if value and grad:
            self._c("value_and_grad_batch")(n, points, values, grads)
        elif value:
            self._c("f_batch")(n, points, values)
        else:
            self._c("grad_batch")(n, points, grads)


def _array_functions(module, tape, wrt: tuple[str, ...]) -> dict:
    """f, grad and value_and_grad of an array program's module (codegen.c.array_module), from one
    library: each takes the converted arguments (ArrayArguments) and returns what the Python backend
    does, with a float64 NumPy array for each array of wrt. The ABI: each scalar a double, each array
    its address and its lengths; then the scalars' gradient (when wrt has scalars), then one output
    per array of wrt, in wrt's order, each shaped as its input."""
    import numpy  # ArrayArguments made the arrays with NumPy

    library = build_library(render_module(module)[0], library_flags(module))
    dims = dict(tape.arrays)
    inputs = []
    for name in tape.inputs:
        inputs += [ctypes.c_void_p, *[ctypes.c_long] * dims[name]] if name in dims else [ctypes.c_double]
    scalars = sum(name not in dims for name in wrt)
    arrays = [tape.inputs.index(name) for name in wrt if name in dims]  # the input each output is shaped as
    outputs = [ctypes.c_void_p] * ((scalars > 0) + len(arrays))
    functions = {}
    for name, result in (("f", ctypes.c_double), ("grad", None), ("value_and_grad", ctypes.c_double)):
        function = getattr(library, f"symdiff_{name}")
        function.argtypes = inputs if name == "f" else inputs + outputs
        function.restype = result
        functions[name] = function
    f, grad, both = functions["f"], functions["grad"], functions["value_and_grad"]

    def arguments(point) -> list:
        values = []
        for value in point:
            if type(value) is float:
                values.append(value)
            else:
                values.append(_data(value))
                values.extend(value.shape)
        return values

    def results(point) -> tuple[list, list]:
        """New output arrays (the scalars' first, then one per array of wrt) and their addresses."""
        made = [numpy.empty(scalars)] if scalars else []
        made += [numpy.empty(point[index].shape) for index in arrays]
        return made, [_data(array) for array in made]

    def gradient(made: list) -> tuple:
        """The filled outputs as the gradient tuple, in wrt's order."""
        scalar = iter(made[0].tolist() if scalars else ())
        array = iter(made[1:] if scalars else made)
        return tuple(next(array) if name in dims else next(scalar) for name in wrt)

    def call_f(*point):
        return f(*arguments(point))

    def call_grad(*point):
        made, addresses = results(point)
        grad(*arguments(point), *addresses)
        return gradient(made)

    def call_both(*point):
        made, addresses = results(point)
        value = both(*arguments(point), *addresses)
        return value, gradient(made)

    return {"f": call_f, "grad": call_grad, "value_and_grad": call_both}


def _data(array) -> int:
    """The address of a NumPy array's first element (through its buffer: a quarter of the time of
    array.ctypes.data, which a read-only or empty array still needs)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):
        return array.ctypes.data


def _bind(library: ctypes.CDLL, name: str):
    function = getattr(library, name)
    function.argtypes, function.restype = SIGNATURES[name]
    return function


def _select(values, grads, value: bool, grad: bool):
    if value and grad:
        return values, grads
    return values if value else grads


def _address(buffer) -> int:
    """The address of a writeable buffer's first byte (NumPy arrays, array.array, ctypes arrays)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def _pack(pack, point) -> bytes:
    try:
        return pack(*point)  # bytes pass as a const double *
    except struct.error as error:
        raise ArgumentError(f"point values must be real numbers: {error}") from None


class CEntries:
    """The entry points of a derivative Program as compiled C (see callables.derivatives): each is
    called with the point's floats, then the direction's (jvp, hvp), and returns what the Python
    module's function returns (floats, tuples of floats, tuples of rows). Of an array program (jvp,
    hvp, a vector output's Jacobian), each takes the converted arrays (ArrayArguments) and returns a
    float64 NumPy array for each array result, a 2-D one for a Jacobian's rows."""

    def __init__(self, program: Program):
        self._tape, self._wrt = program.tape, program.header.wrt
        self._arrays = bool(program.tape.arrays or program.tape.loops)
        self._module = program_module(program)
        self.source, self.header = render_module(self._module)
        find_compiler()  # no compiler: a clear error now, not at the first call
        self._inputs = len(program.header.inputs)
        self._entries = {entry.name: entry for entry in program.entries}
        self._library: ctypes.CDLL | None = None
        self._functions: dict = {}

    def function(self, name: str):
        function = self._functions.get(name)
        if function is None:
            if self._library is None:  # one library for every entry: they are small beside a batch
                self._library = build_library(self.source, library_flags(self._module))
            entry = self._entries[name]
            if self._arrays:
                function = _array_entry_function(self._library, name, entry, self._tape, self._wrt)
            else:
                function = _entry_function(self._library, name, entry, self._inputs)
            self._functions[name] = function
        return function


def _array_entry_function(library: ctypes.CDLL, name: str, entry, tape, wrt: tuple[str, ...]):
    """A Python function calling an array program's symdiff_`name` (codegen.c.array_program_module):
    takes the converted point (then the direction), makes the output arrays (a Jacobian's rows and
    columns from the lengths), and returns the results as the Python module does, arrays as NumPy."""
    import numpy  # ArrayArguments made the arrays with NumPy

    dims = dict(tape.arrays)
    outputs, returns = array_outputs(entry)
    directions = any(param.tangent for param in entry.params)
    argtypes = []
    for input_name in tape.inputs:
        argtypes += [ctypes.c_void_p, *[ctypes.c_long] * dims[input_name]] if input_name in dims else [ctypes.c_double]
    if directions:
        argtypes += [ctypes.c_void_p if input_name in dims else ctypes.c_double for input_name in tape.inputs]
    function = getattr(library, f"symdiff_{name}")
    function.argtypes = argtypes + [ctypes.c_void_p] * len(outputs)
    function.restype = ctypes.c_double if returns else None
    count = len(tape.inputs)
    position = {input_name: number for number, input_name in enumerate(tape.inputs)}

    def call(*values):
        if len(values) != count * (1 + directions):
            raise ArgumentError(f"{name}: expected {count * (1 + directions)} values, got {len(values)}")
        point, direction = values[:count], values[count:]
        arguments, lengths = [], {}
        for input_name, value in zip(tape.inputs, point):
            if input_name in dims:
                arguments += [_data(value), *value.shape]
                lengths.update(((input_name, dim), length) for dim, length in enumerate(value.shape))
            else:
                arguments.append(value)
        for input_name, value, along in zip(tape.inputs, point, direction):
            if input_name not in dims:
                arguments.append(float(along))
                continue
            along = numpy.ascontiguousarray(along, dtype=numpy.float64)
            if along.shape != value.shape:  # C would read past its end
                raise ArgumentError(f"the direction's {input_name} has shape {along.shape}, the point's {value.shape}")
            arguments.append(_data(along))
        made = [_output_array(output, point, position, lengths, tape, wrt) for output in outputs]
        value = function(*arguments, *map(_data, made))
        return _array_results(entry, outputs, made, value if returns else None)

    return call


def _array_results(entry, outputs, made: list, value: float | None):
    """The entry's results as the Python module returns them, from the filled outputs: the value (when
    the function returned it), a float for a number, a tuple for a vector (floats and arrays), an
    array for rows."""
    results: list = [value] if value is not None else []
    results += [None] * (len(entry.results) - len(results))
    for output, filled in zip(outputs, made):
        result = entry.results[output.result]
        if type(result) is Scalar:
            results[output.result] = float(filled[0])
        elif type(result) is Vector:
            terms = results[output.result] = results[output.result] or [None] * len(result.terms)
            items = filled.tolist() if output.kind == "scalars" else [filled]
            for term_position, item in zip(output.positions, items):
                terms[term_position] = item
        else:
            results[output.result] = filled
    results = [tuple(item) if isinstance(item, list) else item for item in results]
    return results[0] if len(results) == 1 else tuple(results)


def _output_array(output, point: tuple, position: dict, lengths: dict, tape, wrt: tuple[str, ...]):
    """A new float64 array for one output of an array program's entry (see codegen.c.ArrayOutput)."""
    import numpy  # ArrayArguments made the arrays with NumPy

    if output.kind == "scalars":
        return numpy.empty(len(output.positions))
    if output.kind == "array":
        return numpy.empty(point[position[output.array]].shape)
    rows = max(evaluate(tape.rows.stop, lengths) - evaluate(tape.rows.start, lengths), 0)
    if output.kind == "rows":
        return numpy.empty(rows)
    dims = dict(tape.arrays)
    columns = sum(point[position[name]].size if name in dims else 1 for name in wrt)
    return numpy.empty((rows, columns))


def _entry_function(library: ctypes.CDLL, name: str, entry, inputs: int):
    """A Python function calling symdiff_`name`: packs the point (and the direction), makes one output
    array per result and unpacks each as the Python backend returns it."""
    function = getattr(library, f"symdiff_{name}")
    arrays = 2 if any(param.tangent for param in entry.params) else 1
    shapes = [_shape(result) for result in entry.results]
    function.argtypes = (ctypes.c_void_p,) * (arrays + len(shapes))
    function.restype = None
    pack = struct.Struct(f"{inputs}d").pack
    sizes = [rows * columns for _, rows, columns in shapes]

    def call(*values):
        if len(values) != arrays * inputs:
            raise ArgumentError(f"{name}: expected {arrays * inputs} values, got {len(values)}")
        given = [_pack(pack, values[i * inputs : (i + 1) * inputs]) for i in range(arrays)]
        outs = [(ctypes.c_double * max(size, 1))() for size in sizes]
        function(*given, *outs)
        results = []
        for out, (kind, rows, columns) in zip(outs, shapes):
            if kind is Scalar:
                results.append(out[0])
            elif kind is Vector:
                results.append(tuple(out[:rows]))
            else:
                results.append(tuple(tuple(out[r * columns : (r + 1) * columns]) for r in range(rows)))
        return results[0] if len(results) == 1 else tuple(results)

    return call


def _shape(result) -> tuple[type, int, int]:
    """(kind, rows, columns): a scalar is 1 x 1, a vector a column."""
    match result:
        case Scalar():
            return Scalar, 1, 1
        case Vector(terms=terms):
            return Vector, len(terms), 1
        case Matrix(rows=rows):
            return Matrix, len(rows), len(rows[0]) if rows else 0
    raise AssertionError(f"unexpected result {result!r}")
