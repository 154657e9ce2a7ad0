"""Python, NumPy and C give the same numbers, value and gradient, at one point and over a batch, for
random programs of the fuzzing strategy, definitions included; and every entry point (jvp,
Jacobians in both modes, Hessians, hvp) for programs whose definitions hold branches read inside
other branches (fuzzing.branch_programs), and for some of the random programs. The backends print the same IEEE operations in the same order, so C
and Python, which both call the C library's exp, tanh, pow, ..., agree bit for bit. NumPy has its
own: on a machine with AVX-512, NumPy 2's exp, tanh, sinh, cosh, tan, arctan and power differ from
glibc's by up to 2 ulps (sin, cos, sqrt and atan2 agree), so NumPy is held to a few ulps
(RTOL, ATOL; 500 programs: at most 3e-15 of the largest result, 1e-10 relative where a result is
a cancellation, as 1 - tanh(u)^2 near u = 0 is).

Compiling C dominates, so the C of many programs goes into one library (each module's functions
named e0_..., e1_...: render_c's prefix), with every single-point entry and one of the three batch
entries per program, in turn; a few programs also go through compile_grad(backend="c") as a user's do.
SYMDIFF_FUZZ=long (SYMDIFF_FUZZ_EXAMPLES=n) runs n programs instead of 500 (and 2,000 programs with
branches instead of 20, every entry point of 100 random programs instead of 10).
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest
from fuzzing import BRANCH_INPUTS, LONG, VARIABLES, branch_programs, examples, expressions
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from support import needs_compiler

import symdiff
from symdiff.api import build
from symdiff.codegen.c import SIGNATURES, build_library, c_module, library_module, render_module
from symdiff.errors import DomainError

numpy = pytest.importorskip("numpy")

pytestmark = [needs_compiler, pytest.mark.usefixtures("private_c_cache")]

PROGRAMS = examples(500, 20_000)
THROUGH_THE_API = 100 if LONG else 6  # programs also run as compile_grad(text, backend="c") runs them
PER_LIBRARY = 50  # programs per C library: two compilers at a time, each a few seconds
# A batch: the drawn point, and points near it on both sides (eleven: a SIMD vector and a remainder).
SCALES = tuple(1 + j / 256 for j in range(-5, 6))
MIDDLE = len(SCALES) // 2  # the drawn point's number
BATCH_ENTRIES = ("value_and_grad", "grad", "f")  # program i's C library has batch entry i % 3
DOMAIN_ERRORS = (ValueError, ZeroDivisionError, OverflowError)
RTOL, ATOL = 1e-12, 1e-14  # NumPy against Python; C must give the same bits


# Programs over all four inputs, or two, or one (more reuse of each), half of them `shared` (values
# met again negated, as in issue 19's item 7, which plain programs almost never show).
STRATEGY = st.tuples(st.sampled_from((VARIABLES, ("x", "y"), ("x",))), st.booleans()).flatmap(
    lambda choice: expressions(max_depth=6, definitions=3, variables=choice[0], shared=choice[1])
)


@dataclasses.dataclass(frozen=True)
class Program:
    number: int
    text: str
    inputs: tuple[str, ...]
    points: tuple[tuple[float, ...], ...]  # the batch's points (the drawn one in the middle)


@pytest.fixture(scope="module")
def programs() -> list[Program]:
    """PROGRAMS distinct programs, drawn as Hypothesis draws (derandomised in CI); Hypothesis
    repeats small examples, so about twice as many are drawn."""
    drawn: dict[str, object] = {}

    @settings(max_examples=2 * PROGRAMS, database=None, phases=[Phase.generate])
    @given(STRATEGY)
    def draw(case):
        if len(drawn) < PROGRAMS and case.text not in drawn:
            try:
                build(case.text)
            except DomainError:  # a function of constants outside its domain: refused, rightly, when compiled
                return
            drawn[case.text] = case

    draw()
    assert len(drawn) == PROGRAMS, f"drew only {len(drawn)} distinct programs"
    result = []
    for number, case in enumerate(drawn.values()):
        inputs = build(case.text).tape.inputs
        points = tuple(tuple(case.point[name] * scale for name in inputs) for scale in SCALES)
        result.append(Program(number, case.text, inputs, points))
    return result


def test_python_numpy_and_c_agree_on_random_programs(programs):
    libraries = _c_libraries(programs)
    mismatches, compared, outside = [], 0, 0
    for program in programs:
        python = symdiff.compile_grad(program.text)
        expected = [_python(python, point) for point in program.points]
        outside += expected.count(None)
        c = _CEntries(libraries[program.number // PER_LIBRARY], f"e{program.number}", len(python.wrt))
        for backend, results, agree in (("numpy", _numpy_results, _close), ("c", c.results, _same)):
            try:
                got = results(program)
            except Exception as error:  # one program's crash is one mismatch, not the end of the run
                mismatches.append(f"{backend} raised {type(error).__name__} on {program.text!r}: {error}")
                continue
            for (what, k), (value, gradient) in got.items():
                if expected[k] is not None:
                    compared += 1
                    if not _agree(agree, expected[k], value, gradient):
                        mismatches.append(
                            f"{backend} {what} at point {k} of {program.text!r}: {value}, {gradient} "
                            f"!= python {expected[k]}"
                        )
    print(
        f"\n{len(programs)} programs, {compared} results compared, {outside} points outside the domain, "
        f"{len(mismatches)} mismatches"
    )
    assert not mismatches, f"{len(mismatches)} mismatches, the first ones:\n" + "\n".join(mismatches[:20])


def test_compile_grads_c_and_numpy_agree_with_python(programs):
    """The same comparison through the API users call (ctypes packing, batch layout and results)."""
    mismatches = []
    for program in programs[:THROUGH_THE_API]:
        python = symdiff.compile_grad(program.text)
        expected = [_python(python, point) for point in program.points]
        for backend, agree in (("numpy", _close), ("c", _same)):
            g = symdiff.compile_grad(program.text, backend=backend)
            values, grads = g.batch(_batch(program), value=True)
            value, gradient = g.value_and_grad(*program.points[MIDDLE])
            got = {("value_and_grad", MIDDLE): (value, gradient)}
            got |= {("batch", k): (values[k], grads[:, k]) for k in range(len(SCALES))}
            for (what, k), (value, gradient) in got.items():
                if expected[k] is not None and not _agree(agree, expected[k], value, gradient):
                    mismatches.append(f"{backend} {what} at point {k} of {program.text!r}: {value}, {gradient}")
    assert not mismatches, "\n".join(mismatches[:20])


# --- the backends' results ----------------------------------------------------------------------

# What each backend returns: (entry, point number) -> (value or None, gradient or None).
Results = dict[tuple[str, int], tuple]


def _python(g, point) -> tuple[float, ...] | None:
    """(value, *gradient) by the Python backend, None outside the domain."""
    try:
        value, gradient = g.value_and_grad(*point)
    except DOMAIN_ERRORS:
        return None
    return (value, *gradient)


def _agree(agree, expected: tuple[float, ...], value, gradient) -> bool:
    """Whether what an entry computed (None: not this part) agrees with Python's (value, *gradient)."""
    return (value is None or agree(expected[:1], (float(value),))) and (
        gradient is None or agree(expected[1:], tuple(float(partial) for partial in gradient))
    )


def _batch(program: Program):
    """The program's points as a batch: input i of point k at [i, k] (C-contiguous, as C reads it)."""
    return numpy.ascontiguousarray(numpy.array(program.points).T.reshape(len(program.inputs), len(SCALES)))


def _numpy_results(program: Program) -> Results:
    g = symdiff.compile_grad(program.text, backend="numpy")
    point, batch = program.points[MIDDLE], _batch(program)
    results = {
        ("value_and_grad", MIDDLE): g.value_and_grad(*point),
        ("f", MIDDLE): (g.value(*point), None),
        ("grad", MIDDLE): (None, g(*point)),
    }
    both, values, grads = g.batch(batch, value=True), g.batch(batch, value=True, grad=False), g.batch(batch)
    for k in range(len(SCALES)):
        results["value_and_grad batch", k] = (both[0][k], both[1][:, k])
        results["f batch", k] = (values[k], None)
        results["grad batch", k] = (None, grads[:, k])
    return results


@dataclasses.dataclass(frozen=True)
class _CEntries:
    """Program `prefix`'s functions in a shared library, called as CGradient calls symdiff_...'s."""

    library: ctypes.CDLL
    prefix: str
    partials: int

    def results(self, program: Program) -> Results:
        point, batch = program.points[MIDDLE], _batch(program)
        gradient = (ctypes.c_double * max(self.partials, 1))()
        value = self.function("value_and_grad")(_doubles(point), gradient)
        results = {("value_and_grad", MIDDLE): (value, gradient[: self.partials])}
        self.function("grad")(_doubles(point), gradient)
        results["grad", MIDDLE] = (None, gradient[: self.partials])
        results["f", MIDDLE] = (self.function("f")(_doubles(point)), None)
        entry = BATCH_ENTRIES[program.number % len(BATCH_ENTRIES)]
        n = len(SCALES)
        values, grads = numpy.full(n, numpy.nan), numpy.full((self.partials, n), numpy.nan)
        arrays = {"f": (values,), "grad": (grads,), "value_and_grad": (values, grads)}[entry]
        self.function(f"{entry}_batch")(n, batch.ctypes.data, *(array.ctypes.data for array in arrays))
        for k in range(n):
            results[f"{entry} batch", k] = (
                values[k] if entry != "grad" else None,
                grads[:, k] if entry != "f" else None,
            )
        return results

    def function(self, entry: str):
        function = getattr(self.library, f"{self.prefix}_{entry}")
        function.argtypes, function.restype = SIGNATURES[f"symdiff_{entry}"]
        return function


def _doubles(point):
    return (ctypes.c_double * max(len(point), 1))(*point)


def _c_libraries(programs: list[Program]) -> list[ctypes.CDLL]:
    """One library per PER_LIBRARY programs, built two at a time (the compiler runs outside the GIL)."""
    sources = [_c_source(program) for program in programs]
    groups = ["\n".join(sources[start : start + PER_LIBRARY]) for start in range(0, len(sources), PER_LIBRARY)]
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(build_library, groups))
    # build_library loads and checks the library it builds; before issue 19 it returned the path.
    return [library if isinstance(library, ctypes.CDLL) else ctypes.CDLL(str(library)) for library in built]


def _c_source(program: Program) -> str:
    """The program's C module with its single-point entries and one batch entry (each with what it
    calls), its functions named e<number>_..."""
    prefix = f"e{program.number}"
    module = c_module(build(program.text).adjoint, prefix)
    entries = ("f", "grad", "value_and_grad", f"{BATCH_ENTRIES[program.number % len(BATCH_ENTRIES)]}_batch")
    needed = [library_module(module, f"{prefix}_{entry}") for entry in entries]
    wanted = {item.name for part in needed for item in (*part.points, *part.loops, *part.wrappers)}
    trimmed = dataclasses.replace(
        module,
        points=tuple(point for point in module.points if point.name in wanted),
        loops=tuple(loop for loop in module.loops if loop.name in wanted),
        wrappers=tuple(wrapper for wrapper in module.wrappers if wrapper.name in wanted),
    )
    return render_module(trimmed)[0]


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """The same doubles, bit for bit (NaN matches NaN)."""
    return len(a) == len(b) and all(
        struct.pack("<d", x) == struct.pack("<d", y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)
    )


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Within RTOL and ATOL of each other (NaN matches NaN)."""
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=RTOL, abs_tol=ATOL) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)
    )


# --- branches, forward mode, Jacobians and Hessians in every backend ------------------------------

BRANCHED = examples(20, 2_000)  # programs with branches inside branches (fuzzing.branch_programs)
DERIVED = 100 if LONG else 10  # random programs also compared through jvp, Jacobians and Hessians


@pytest.fixture(scope="module")
def branched() -> list:
    drawn: dict[str, object] = {}

    @settings(max_examples=4 * BRANCHED, database=None, phases=[Phase.generate])
    @given(branch_programs())
    def draw(case):
        if len(drawn) < BRANCHED and case.program(2) not in drawn:
            drawn[case.program(2)] = case

    draw()
    assert len(drawn) == BRANCHED, f"drew only {len(drawn)} distinct programs with branches"
    return list(drawn.values())


def test_every_entry_point_agrees_across_backends_on_programs_with_branches(branched):
    """grad, value, value_and_grad, batch, jvp, Jacobians (both modes) and Hessians (and hvp) of
    programs whose definitions hold branches read inside other branches: NumPy within a few ulps of
    Python, C bit for bit, at points on every side of the conditions."""
    mismatches = []
    for case in branched:
        points = [tuple(point[name] for name in BRANCH_INPUTS) for point in case.points]
        mismatches += _entry_mismatches(case.program(1), case.program(2), BRANCH_INPUTS, points)
    assert not mismatches, f"{len(mismatches)} mismatches, the first ones:\n" + "\n".join(mismatches[:20])


def test_every_entry_point_agrees_across_backends_on_random_programs(programs):
    mismatches = []
    for program in programs[:DERIVED]:
        mismatches += _entry_mismatches(program.text, None, program.inputs, program.points[MIDDLE - 1 : MIDDLE + 2])
    assert not mismatches, f"{len(mismatches)} mismatches, the first ones:\n" + "\n".join(mismatches[:20])


def _entry_mismatches(text: str, several: str | None, names: tuple[str, ...], points) -> list[str]:
    """Every entry point of `text` (and the Jacobian of `several` outputs, else of `text`) at `points`
    (values of `names`) in NumPy and C against Python; points outside the domain are skipped."""
    inputs = build(text).tape.inputs
    points = [tuple(dict(zip(names, point))[name] for name in inputs) for point in points]
    expected = _entries("python", text, several or text, points)
    found = []
    for backend, agree in (("numpy", _close), ("c", _same)):
        got = _entries(backend, text, several or text, points)
        for key, want in expected.items():
            if want is not None and not agree(_flat(want), _flat(got[key])):
                found.append(f"{backend} {key[0]} at {key[1]} of {text!r}: {got[key]} != python {want}")
    return found


def _entries(backend: str, text: str, several: str, points) -> dict:
    """(entry, point) -> what the entry returned, None where Python raised a domain error."""
    g = symdiff.compile_grad(text, backend=backend)
    jvp, hessian = symdiff.compile_jvp(text, backend=backend), symdiff.compile_hessian(text, backend=backend)
    jacobians = {mode: symdiff.compile_jacobian(several, mode=mode, backend=backend) for mode in ("forward", "reverse")}
    results = {}
    for point in points:
        direction = tuple(0.5 - 0.25 * k for k in range(len(point)))
        calls = {  # name -> (function, its arguments)
            "grad": (g, point),
            "value": (g.value, point),
            "value_and_grad": (g.value_and_grad, point),
            "jvp": (jvp, (point, direction)),
            "hessian": (hessian, point),
            "hvp": (hessian.hvp, (point, direction)),
            **{f"{mode} jacobian": (J.value_and_jacobian, point) for mode, J in jacobians.items()},
        }
        for name, (function, arguments) in calls.items():
            try:
                results[name, point] = function(*arguments)
            except DOMAIN_ERRORS:
                if backend != "python":
                    raise
                results[name, point] = None
    if backend != "python" and g.inputs:
        values, grads = g.batch(numpy.array(points).T.copy(), value=True)
        for k, point in enumerate(points):
            results["batch", point] = (values[k], tuple(grads[:, k]))
    elif g.inputs:
        for point in points:
            results["batch", point] = results["value_and_grad", point]
    return results


def _flat(result) -> tuple[float, ...]:
    """A nested result (value, (gradient), ((rows))) as one tuple of floats."""
    if isinstance(result, tuple | list) or (hasattr(result, "shape") and result.shape):
        return tuple(x for item in result for x in _flat(item))
    return (float(result),)
