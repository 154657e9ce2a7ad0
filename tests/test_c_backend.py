"""The C backend's batch loops: tiles of points (a partial last tile, one point, batches on either
side of the threading threshold) give the same bits as single points; big programs build cheaply."""

from __future__ import annotations

import pytest
from support import needs_compiler

import symdiff
from symdiff import c_backend
from symdiff.api import build

try:
    import numpy
except ImportError:  # the test extra does not need NumPy
    numpy = None

needs_numpy = pytest.mark.skipif(numpy is None, reason="NumPy is not installed")


pytestmark = pytest.mark.usefixtures("private_c_cache")


@pytest.fixture(scope="module")
def gradient():
    return symdiff.compile_grad("exp(sin(x)*y) / (1 + x^2) + atan2(y, x) + z*x^3", backend="c")


SIZES = (1, 2, c_backend.TILE - 1, c_backend.TILE, c_backend.TILE + 1, 3 * c_backend.TILE + 7)
SIZES += (c_backend.PARALLEL_FROM - 1, c_backend.PARALLEL_FROM, c_backend.PARALLEL_FROM + 1)


@needs_compiler
@needs_numpy
@pytest.mark.parametrize("n", SIZES)
def test_every_tile_gives_the_bits_of_single_points(gradient, n):
    points = numpy.random.default_rng(n).uniform(0.2, 2.0, (3, n))
    values, grads = gradient.batch(points, value=True, grad=True)
    assert (gradient.batch(points) == grads).all() and (gradient.batch(points, value=True, grad=False) == values).all()
    for k in sorted({0, n // 2, n - 1, min(n - 1, c_backend.TILE - 1), min(n - 1, c_backend.TILE)}):
        assert tuple(grads[:, k]) == gradient(*points[:, k]), k
        assert values[k] == gradient.value(*points[:, k]), k


@needs_compiler
@needs_numpy
@pytest.mark.parametrize("n", (c_backend.TILE + 3, c_backend.PARALLEL_FROM + 1))
def test_a_batch_writes_every_point_of_a_partial_last_tile(gradient, n):
    out = numpy.full((3, n), numpy.nan), numpy.full((3, n), numpy.nan)
    values = numpy.full(n, numpy.nan)
    points = numpy.random.default_rng(5).uniform(0.2, 2.0, (3, n))
    gradient.batch(points, out=out[0])
    gradient.batch(points, value=True, grad=True, out=(values, out[1]))
    assert not numpy.isnan(out[0]).any() and not numpy.isnan(values).any() and (out[0] == out[1]).all()


def test_the_loops_tile_points_and_keep_simd_inside():
    source = c_backend.render_c(build("x*y + sin(x)*start + end").adjoint)[0]
    assert f"#pragma omp parallel for schedule(guided) if (n >= {c_backend.PARALLEL_FROM})" in source
    assert f"for (long start_ = 0; start_ < n; start_ += {c_backend.TILE}) {{" in source  # `start` is an input
    assert "#pragma omp simd\n        for (long k = start_; k < end_; ++k) {" in source


def test_each_gradient_entry_is_computed_and_stored_before_the_next_is_started():
    source = c_backend.render_c(build("100*(y - x^2)^2 + (1 - x)^2 + 100*(z - y^2)^2 + (1 - y)^2").adjoint)[0]
    grad = source[source.index("void symdiff_grad_batch") :]
    assert grad.index("grad[k] = x_bar;") < grad.index("const double z = ") < grad.index("grad[2 * n + k] = z_bar;")


def test_steps_keep_the_reverse_order_if_an_adjoint_is_read_before_it_is_complete():
    from symdiff.adjoint import Step
    from symdiff.tape import Const

    adjoint = build("sin(x*y) + x").adjoint
    number, read = next(
        (number, index)
        for number, step in enumerate(adjoint.steps)
        for kind, index in c_backend._reads(step.term)
        if kind == "bar"
    )
    late = Step(read, "+=", Const(1.0), None)  # updates an adjoint after a step has read it
    steps = (*adjoint.steps, late)
    odd = type(adjoint)(adjoint.tape, adjoint.wrt, steps, adjoint.gradient)
    names = c_backend.c_names(adjoint.tape, adjoint.wrt)
    grad = next(loop for loop in c_backend.c_module(odd).loops if "_grad_batch" in loop.signature)
    step_lines = [line for line in grad.lines if not line.target.startswith("const ") and "[" not in line.target]
    assert [line.target.removeprefix("double ") for line in step_lines] == [names.adjoint(s.target) for s in steps]


@needs_compiler
@needs_numpy
def test_long_programs_build_scalar_loops_with_cheap_flags_and_the_same_bits(monkeypatch):
    text = "exp(sin(x)*y) / (1 + x^2) + atan2(y, x) + z*x^3"
    fast = symdiff.compile_grad(text, backend="c")
    monkeypatch.setattr(c_backend, "SIMD_LINES", 3)
    cheap = symdiff.compile_grad(text, backend="c")
    assert "#pragma omp simd" not in cheap.source and "#pragma omp simd" in fast.source
    points = numpy.random.default_rng(9).uniform(0.2, 2.0, (3, c_backend.TILE + 5))
    assert (cheap.batch(points) == fast.batch(points)).all()
    assert cheap(0.5, 1.5, 2.5) == fast(0.5, 1.5, 2.5)


@needs_compiler
@needs_numpy
@pytest.mark.parametrize("n", (1, c_backend.TILE + 1, c_backend.PARALLEL_FROM + 3))
def test_a_body_cut_into_loops_gives_the_bits_of_single_points(n):
    text = " + ".join(f"100*(x{i + 1} - x{i}^2)^2 + sin(x{i})*x{i + 2}" for i in range(1, 21))
    gradient = symdiff.compile_grad(text, backend="c")
    grad_loop = gradient.source[gradient.source.index("void symdiff_grad_batch") :].split("\n}\n")[0]
    assert grad_loop.count("#pragma omp simd") == 3 and "carry[" in grad_loop  # 22 rows, 8 a loop
    points = numpy.random.default_rng(n).uniform(0.2, 2.0, (22, n))
    values, grads = gradient.batch(points, value=True, grad=True)
    assert (gradient.batch(points) == grads).all()
    for k in sorted({0, n // 2, n - 1}):
        assert tuple(grads[:, k]) == gradient(*points[:, k])
        assert values[k] == gradient.value(*points[:, k])
