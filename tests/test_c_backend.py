"""The C backend's batch loops: tiles of points (a partial last tile, one point, batches on either
side of the threading threshold) give the same bits as single points; big programs build cheaply."""

from __future__ import annotations

import os
import shutil

import pytest

import symdiff
from symdiff import c_backend
from symdiff.api import build

try:
    import numpy
except ImportError:  # the test extra does not need NumPy
    numpy = None

HAVE_COMPILER = any(shutil.which(c) for c in filter(None, (os.environ.get("CC"), "cc", "gcc", "clang")))
needs_compiler = pytest.mark.skipif(
    not HAVE_COMPILER and os.environ.get("CI") != "true", reason="no C compiler (CI=true makes this a failure)"
)
needs_numpy = pytest.mark.skipif(numpy is None, reason="NumPy is not installed")


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """Compiled C goes to a fresh cache, not the user's."""
    old = os.environ.get("SYMDIFF_CACHE")
    os.environ["SYMDIFF_CACHE"] = str(tmp_path_factory.mktemp("symdiff-cache"))
    yield
    if old is None:
        del os.environ["SYMDIFF_CACHE"]
    else:
        os.environ["SYMDIFF_CACHE"] = old


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
    assert f"#pragma omp parallel for schedule(static) if (n >= {c_backend.PARALLEL_FROM})" in source
    assert f"for (long start_ = 0; start_ < n; start_ += {c_backend.TILE}) {{" in source  # `start` is an input
    assert "#pragma omp simd\n        for (long k = start_; k < end_; ++k) {" in source
