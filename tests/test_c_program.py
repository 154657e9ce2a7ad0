"""The C backend prints the core's derivative Programs (issue 20): compile_jvp, compile_jacobian and
compile_hessian with backend="c" give the Python backend's results, bit for bit (the same operations
in the same order), with its call interface; branches as if blocks; long bodies cut into parts;
branches nested hundreds deep build in seconds; value_array of a list reads the point it was given."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import platform
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fuzzing import branch_programs, examples
from hypothesis import Phase, given, settings
from support import WORKED, needs_compiler

import symdiff
from symdiff.api import build
from symdiff.codegen.c import (
    DEEP_BRANCHES,
    PART_LINES,
    SIGNATURES,
    build_library,
    c_module,
    find_compiler,
    program_module,
    render_c,
    render_module,
)
from symdiff.core.derivatives import jvp_program
from symdiff.core.pipeline import build_tape
from symdiff.errors import ArgumentError

pytestmark = [needs_compiler, pytest.mark.usefixtures("private_c_cache")]

STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror")

# The golden expressions, and branches: where/min/max, a where() inside a where(), guarded domains.
EXPRESSIONS = [text for text, *_ in WORKED] + [
    "where(x > 0, log(x) * y, y^2) + max(x, y) * min(x, 1)",
    "where(x > 0, where(y > 0, log(x * y), sqrt(x)), acos(y / 4))",
    "u = x*y; v = sin(u) + x; where(v > 1, v^3, exp(-u)) * y",
]
POINTS = [(2.0, 3.0, 5.0), (-1.5, 0.5, 0.25), (0.5, -2.0, 1.5)]


def _point(text: str, at: tuple[float, ...]) -> tuple[float, ...]:
    return at[: len(build(text).tape.inputs)]


def _flat(result) -> list[float]:
    if isinstance(result, tuple):
        return [x for item in result for x in _flat(item)]
    return [result]


def _same(c, python, *args) -> None:
    """c(*args) == python(*args). Where Python raises (a point outside log's domain, checked as f
    checks it) C, which cannot raise, returns floats (the value is nan; its Checks are dropped)."""
    try:
        want = python(*args)
    except ValueError:
        assert all(isinstance(x, float) for x in _flat(c(*args)))
    else:
        assert c(*args) == want


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_jvp_and_hessian_give_the_python_bits(text):
    jvp, python_jvp = symdiff.compile_jvp(text, backend="c"), symdiff.compile_jvp(text)
    hessian, python_hessian = symdiff.compile_hessian(text, backend="c"), symdiff.compile_hessian(text)
    for at in POINTS:
        point = _point(text, at)
        direction = tuple(0.25 - k for k in range(len(point)))
        _same(jvp, python_jvp, point, direction)
        _same(hessian, python_hessian, *point)
        _same(hessian.hvp, python_hessian.hvp, point, direction)


JACOBIANS = [
    ["x1*x2 + sin(x1)", "log(x1) + x1*x2 - sin(x2)", "x1 / x2"],
    ["where(x > 0, log(x), y)", "x*y", "max(x, y)^2"],
    ["where(x > 0, where(y > 0, sqrt(x * y), x), -y)", "min(x, 0) * y"],
]


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("texts", JACOBIANS)
def test_jacobians_in_both_modes_give_the_python_bits(texts, mode):
    c, python = symdiff.compile_jacobian(texts, mode=mode, backend="c"), symdiff.compile_jacobian(texts, mode=mode)
    for at in POINTS:
        point = at[:2]
        _same(c, python, *point)
        _same(c.value_and_jacobian, python.value_and_jacobian, *point)


def test_the_textbook_hessian_is_exact():
    hessian = symdiff.compile_hessian("x1*x2 + sin(x1)", backend="c")
    value, gradient, rows = hessian(2.0, 3.0)
    assert rows == ((-math.sin(2.0), 1.0), (1.0, 0.0))
    assert (value, gradient) == (6.909297426825682, (2.5838531634528574, 2.0))
    assert hessian(x1=2.0, x2=3.0) == (value, gradient, rows)
    assert "void symdiff_hessian(const double *restrict point, double *restrict value" in hessian.source


@pytest.mark.parametrize(
    ("call", "values"),
    [
        (lambda e: e.jvp((1.0, 2.0, 3.0), (1.0, 0.0)), "point"),
        (lambda e: e.jvp((1.0, 2.0), (1.0,)), "direction"),
        (lambda e: e.hessian(1.0), "point"),
        (lambda e: e.hessian.hvp((1.0, 2.0), (1.0, 0.0, 0.0)), "direction"),
        (lambda e: e.jacobian(1.0, 2.0, 3.0), "point"),
    ],
)
def test_wrong_numbers_of_values_raise_what_python_raises(call, values):
    def entries(backend):
        class E:
            jvp = symdiff.compile_jvp("x*y", backend=backend)
            hessian = symdiff.compile_hessian("x*y", backend=backend)
            jacobian = symdiff.compile_jacobian(["x*y", "x"], backend=backend)

        return E

    with pytest.raises(ArgumentError) as python:
        call(entries("python"))
    with pytest.raises(ArgumentError) as c:
        call(entries("c"))
    assert str(c.value) == str(python.value)


def _compile_strictly(folder, source: str, header: str, *flags: str) -> subprocess.CompletedProcess:
    (folder / "m.c").write_text(source)
    (folder / "m.h").write_text(header)
    command = [*find_compiler(), *STRICT, *flags, "-c", "m.c", "-o", "m.o"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True)


def test_derivative_modules_compile_strictly(tmp_path):
    tape = build_tape(EXPRESSIONS[4])
    source, header = render_module(program_module(jvp_program(tape), "m", "m.h"))
    for flags in ((), ("-O2",)):
        done = _compile_strictly(tmp_path, source, header, *flags)
        assert done.returncode == 0, done.stderr
    assert "void m_jvp(const double *restrict point, const double *restrict direction" in source


def test_a_long_derivative_body_is_cut_into_parts_and_gives_the_python_bits():
    """A jvp with a branch holding more statements than a part (PART_LINES): the cut falls inside the
    branch, and values computed in it are carried to later parts."""
    text = "where(x > 0, {}, -x) * y1".format(" + ".join(f"log(x * {k}) * sin(y{k})" for k in range(1, 80)))
    module = program_module(jvp_program(build_tape(text)))
    (point,) = module.points
    assert len(point.parts) >= 2 and point.length > PART_LINES
    c, python = symdiff.compile_jvp(text, backend="c"), symdiff.compile_jvp(text)
    n = len(c.inputs)
    for x in (0.5, -0.5):
        at = tuple(x if name == "x" else 0.1 * k for k, name in enumerate(c.inputs))
        assert c(at, (1.0,) * n) == python(at, (1.0,) * n)


def nested(depth: int) -> str:
    """where() nested `depth` deep in the else branches: for x in (k - 1, k), k <= depth, the branch
    k deep is taken, with value k*x (beyond: x)."""
    text = "x"
    for k in range(depth, 0, -1):
        text = f"where(x < {k}, {k}*x, {text})"
    return text


def test_where_300_deep_builds_in_seconds_and_compiles_strictly(tmp_path):
    """Before: over 300 s at -O2 (GCC's post-reload CSE and scheduling on hundreds of blocks)."""
    assert 300 > DEEP_BRANCHES
    source, header = render_c(build(nested(300)).adjoint, "m", "m.h")
    done = _compile_strictly(tmp_path, source, header)
    assert done.returncode == 0, done.stderr[-3000:]
    started = time.perf_counter()
    g = symdiff.compile_grad(nested(300), backend="c")
    for x in (0.5, 150.25, 299.5, 300.5):
        k = math.floor(x) + 1
        value, gradient = (k * x, (float(k),)) if k <= 300 else (x, (1.0,))
        assert g.value(x) == value and g(x) == gradient and g.value_and_grad(x) == (value, gradient)
        assert g.batch([[x, 0.5]], value=True) == ([value, 0.5], [[gradient[0], 1.0]])
    assert time.perf_counter() - started < 60


# A long program whose branches hold more statements than a part of a cut function (PART_LINES).
LONG = "where(x > 0, {}, acos(x) * y1) + where(y1 > 0, sqrt(y1) * x, -x)".format(
    " + ".join(f"log(x * {k}) * sin(y{k})" for k in range(1, 81))
)


def test_a_long_gradient_with_branches_is_cut_and_gives_the_python_bits():
    module = c_module(build(LONG).adjoint)
    grad_at = next(point for point in module.points if point.name == "symdiff_grad_at")
    assert len(grad_at.parts) >= 2 and grad_at.length > PART_LINES
    # A part after the first opens a block of the long branch again, testing the condition it loads.
    assert any(line.text.startswith("if (") for part in grad_at.parts[1:] for line in part.lines)
    g, python = symdiff.compile_grad(LONG, backend="c"), symdiff.compile_grad(LONG)
    points = [[0.5 + 0.01 * i - 2 * (k % 2) for k in range(4)] for i in range(len(g.inputs))]
    points[g.inputs.index("x")] = [0.5, -0.5, 2.0, -0.25]
    values, grads = g.batch(points, value=True)
    for k in range(4):
        at = [row[k] for row in points]
        want = python.value_and_grad(*at)
        assert g.value_and_grad(*at) == want
        assert (values[k], tuple(row[k] for row in grads)) == want
        assert all(map(math.isfinite, (values[k], *want[1])))


def test_value_array_of_a_list_reads_the_point_it_was_given():
    """The array a list was copied into must live until C has read it (it was freed first, and the
    allocator's bookkeeping overwrote the first inputs)."""
    g = symdiff.compile_grad("x*y + 3*z - w", backend="c")
    for point in ([1.0, 2.0, 3.0, 4.0], [0.5, -7.0, 1e300, 2.0], [-3.0, 0.25, 0.0, -1.5]):
        assert g.value_array(point) == g.value(*point)
        assert g.value_array(tuple(point)) == g.value(*point)


# ---------------------------------------------------------------- random programs against Python
PROGRAMS = examples(60, 5_000)
PER_LIBRARY = 30  # programs per C library: two compilers at a time
# FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW and all flags, as <fenv.h> numbers them on x86-64 and AArch64.
FE_FLAGS = {"x86_64": (0x01 | 0x04 | 0x08, 0x3D), "aarch64": (0x01 | 0x02 | 0x04, 0x1F)}


def _drawn() -> list[tuple[str, tuple[str, ...], tuple[tuple[float, ...], ...]]]:
    drawn: dict[str, object] = {}

    @settings(max_examples=3 * PROGRAMS, database=None, phases=[Phase.generate])
    @given(branch_programs())
    def draw(case):
        if len(drawn) < PROGRAMS:
            drawn.setdefault(case.program(1), case)

    draw()
    result = []
    for text, case in drawn.items():
        inputs = build(text).tape.inputs
        result.append((text, inputs, tuple(tuple(p[name] for name in inputs) for p in case.points)))
    return result


def _bits(values) -> tuple[bytes, ...]:
    return tuple(struct.pack("<d", x) for x in values)


def test_random_branch_programs_give_the_python_bits_and_raise_no_exception():
    """Every gradient entry of the C module of random programs with branches in branches, at one point
    and as a batch of the drawn points, gives Python's bits and raises no floating-point exception
    (the branch not taken never runs)."""
    programs = _drawn()
    assert len(programs) >= PROGRAMS * 0.9
    sources = [render_module(c_module(build(text).adjoint, f"e{number}"))[0] for number, (text, _, _) in enumerate(programs)]
    groups = ["\n".join(sources[start : start + PER_LIBRARY]) for start in range(0, len(sources), PER_LIBRARY)]
    with ThreadPoolExecutor(2) as pool:
        libraries = list(pool.map(build_library, groups))
    libm, flags = ctypes.CDLL(ctypes.util.find_library("m")), FE_FLAGS.get(platform.machine())

    def function(number: int, entry: str):
        found = getattr(libraries[number // PER_LIBRARY], f"e{number}_{entry}")
        found.argtypes, found.restype = SIGNATURES[f"symdiff_{entry}"]
        return found

    mismatches = []
    for number, (text, inputs, points) in enumerate(programs):
        python = symdiff.compile_grad(text)
        partials, n = max(len(python.wrt), 1), len(points)
        batch = (ctypes.c_double * (len(inputs) * n or 1))(*(point[i] for i in range(len(inputs)) for point in points))
        values, grads, both_values, both_grads = (
            (ctypes.c_double * (size or 1))() for size in (n, n * partials, n, n * partials)
        )
        if flags:
            libm.feclearexcept(flags[1])
        function(number, "f_batch")(n, batch, values)
        function(number, "grad_batch")(n, batch, grads)
        function(number, "value_and_grad_batch")(n, batch, both_values, both_grads)
        got = []
        for k, point in enumerate(points):
            single = (ctypes.c_double * max(len(point), 1))(*point)
            gradient = (ctypes.c_double * partials)()
            value = function(number, "value_and_grad")(single, gradient)
            got.append(("value_and_grad", (value, *gradient[: len(python.wrt)])))
            function(number, "grad")(single, gradient)
            got.append(("f, grad", (function(number, "f")(single), *gradient[: len(python.wrt)])))
            got.append(("batch", (values[k], *(grads[j * n + k] for j in range(len(python.wrt))))))
            got.append(("value_and_grad batch", (both_values[k], *(both_grads[j * n + k] for j in range(len(python.wrt))))))
        if flags and libm.fetestexcept(flags[0]):
            mismatches.append(f"floating-point exception in {text!r}")
        for k, point in enumerate(points):
            value, gradient = python.value_and_grad(*point)
            want = _bits((value, *gradient))
            mismatches += [f"{what} at {point} of {text!r}" for what, result in got[4 * k : 4 * k + 4]
                           if _bits(result) != want]
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:10])
