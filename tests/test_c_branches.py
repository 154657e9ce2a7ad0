"""where(), min() and max() in the C backend (issue 20, item 3): real if statements, so the branch not
taken is never evaluated (no nan, no inf, no floating-point exception), at one point and over a
batch, nested where() as flat blocks on one flag, and long functions cut into parts with branches
in them. Results equal the Python backend's."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import platform
import subprocess

import pytest
from support import needs_compiler

import symdiff
from symdiff import cli
from symdiff.codegen.c import find_compiler

pytestmark = [needs_compiler, pytest.mark.usefixtures("private_c_cache")]

# The floating-point exceptions an operation outside its domain raises (x86-64 and AArch64 values of
# <fenv.h>'s FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW), read through the C library's fetestexcept.
_FE_FLAGS = {"x86_64": (0x01 | 0x04 | 0x08, 0x3D), "aarch64": (0x01 | 0x02 | 0x04, 0x1F)}
_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))


class _Exceptions:
    """Clears the floating-point exception flags, then says which of FE_INVALID, FE_DIVBYZERO and
    FE_OVERFLOW the code run since has raised (0: none; always 0 on other machines)."""

    def __enter__(self):
        self.flags = _FE_FLAGS.get(platform.machine())
        if self.flags:
            _LIBM.feclearexcept(self.flags[1])
        return self

    def raised(self) -> int:
        return _LIBM.fetestexcept(self.flags[0]) if self.flags else 0

    def __exit__(self, *exc):
        return False


# (program, point, value, gradient): the branch not taken holds log, sqrt, 1/x or acos outside its
# domain (nan, inf and an exception if it ran).
CASES = [
    ("where(x > 0, log(x), 0)", (-1.0,), 0.0, (0.0,)),
    ("where(x > 0, log(x), 0)", (math.e,), 1.0, (1 / math.e,)),
    ("where(x > 0, sqrt(x), 0)", (-4.0,), 0.0, (0.0,)),
    ("where(x > 0, sqrt(x), 0)", (4.0,), 2.0, (0.25,)),
    ("where(x != 0, 1/x, 0)", (0.0,), 0.0, (0.0,)),
    ("where(x != 0, 1/x, 0)", (2.0,), 0.5, (-0.25,)),
    ("where(x > -1 and x < 1, acos(x), 0)", (2.0,), 0.0, (0.0,)),
    ("where(x > -1 and x < 1, acos(x), 0)", (0.5,), math.acos(0.5), (-1 / math.sqrt(0.75),)),
    ("max(x, 0)", (-2.0,), 0.0, (0.0,)),
    ("max(x, 0)", (3.0,), 3.0, (1.0,)),
    ("min(x, y)", (1.0, 2.0), 1.0, (1.0, 0.0)),
    ("min(x, y)", (3.0, 2.0), 2.0, (0.0, 1.0)),
    ("sqrt(max(x, 0) + 1)", (-3.0,), 1.0, (0.0,)),
    ("u = log(x); where(x > 0, u, 0)", (-1.0,), 0.0, (0.0,)),
    # Nested: the inner branches are flags (x > 0 and y > 0, x > 0 and not y > 0).
    ("where(x > 0, where(y > 0, log(x * y), sqrt(x)), acos(y))", (-1.0, 0.5), math.acos(0.5), (0.0, -1 / math.sqrt(0.75))),
    ("where(x > 0, where(y > 0, log(x * y), sqrt(x)), acos(y))", (4.0, -2.0), 2.0, (0.25, 0.0)),
    ("where(x > 0, where(y > 0, log(x * y), sqrt(x)), acos(y))", (2.0, 0.5), 0.0, (0.5, 2.0)),
]


@pytest.mark.parametrize(("program", "point", "value", "gradient"), CASES)
def test_branches_run_only_when_taken(program, point, value, gradient):
    g = symdiff.compile_grad(program, backend="c")
    # A batch: the point among others that take the other branches.
    points = [[coordinate, 0.5, -0.5, 2.0, coordinate] for coordinate in point]
    with _Exceptions() as flags:  # every call first, then the comparisons (Python's own arithmetic)
        got = [g.value(*point), g(*point), g.value_and_grad(*point)]
        got += [list(g.grad_array(list(point))), g.value_array(list(point))]
        values, grads = g.batch(points, value=True)
        alone = g.batch(points, value=True, grad=False), g.batch(points)
        raised = flags.raised()
    assert raised == 0
    assert got[0] == pytest.approx(value, rel=1e-15) and got[1] == pytest.approx(gradient, rel=1e-15)
    assert got[2] == (pytest.approx(value, rel=1e-15), pytest.approx(gradient, rel=1e-15))
    assert got[3] == pytest.approx(gradient, rel=1e-15) and got[4] == pytest.approx(value, rel=1e-15)
    assert (values[0], [row[0] for row in grads]) == (pytest.approx(value, rel=1e-15), pytest.approx(gradient, rel=1e-15))
    assert alone == (values, grads)
    python = symdiff.compile_grad(program)
    for k in range(len(points[0])):
        at = [row[k] for row in points]
        assert (values[k], tuple(row[k] for row in grads)) == python.value_and_grad(*at)


def test_the_batch_runs_the_branch_of_each_point_only():
    """Thousands of points (several threads with OpenMP, SIMD lanes), half outside log's domain."""
    numpy = pytest.importorskip("numpy")
    g = symdiff.compile_grad("where(x > 0, log(x), 0) + where(x < 0, sqrt(-x), 1/x)", backend="c")
    x = numpy.linspace(-4.0, 4.0, 5000).reshape(1, -1)  # 0 is not among them
    values, grads = g.batch(x, value=True)
    with numpy.errstate(all="ignore"):
        want = numpy.where(x[0] > 0, numpy.log(x[0]) + 1 / x[0], numpy.sqrt(-x[0]))
        slope = numpy.where(x[0] > 0, 1 / x[0] - 1 / x[0] ** 2, -0.5 / numpy.sqrt(-x[0]))
    assert numpy.isfinite(values).all() and numpy.isfinite(grads).all()
    numpy.testing.assert_allclose(values, want, rtol=1e-14)
    numpy.testing.assert_allclose(grads[0], slope, rtol=1e-14, atol=1e-15)  # 1/x - 1/x^2 cancels near 1
    python = symdiff.compile_grad("where(x > 0, log(x), 0) + where(x < 0, sqrt(-x), 1/x)")
    for k in range(0, 5000, 97):
        assert (values[k], (grads[0, k],)) == python.value_and_grad(x[0, k])


STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror")


def test_the_cli_writes_c_with_branches_that_compiles_strictly(tmp_path):
    assert cli.main(["grad", "where(x > 0, sqrt(x), 0)", "--lang", "c", "-o", str(tmp_path / "g.c")]) == 0
    source = (tmp_path / "g.c").read_text()
    assert "if (w2) {" in source and '#include "g.h"' in source
    for flags in ((), ("-O2",), ("-O2", "-fopenmp")):
        command = [*find_compiler(), *STRICT, *flags, "-c", "g.c", "-o", "g.o"]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
