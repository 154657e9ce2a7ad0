"""where(), min() and max() in the NumPy backend (issue 20, item 3): each branch runs only on the
elements that take it, in the value and in every derivative, so the branch not taken puts no nan or
inf into any result and raises no warning (every test runs under numpy.errstate(all="raise")); the
results are the Python backend's at every element."""

import math
import shutil
import subprocess
import warnings

import pytest
from fuzzing import BRANCH_INPUTS, branch_programs, examples
from hypothesis import given, settings

import symdiff
from symdiff import cli
from symdiff.resources import templates_dir

numpy = pytest.importorskip("numpy")

# (expression, points): outside the branch the guarded function is undefined at some points.
GUARDED = [
    ("where(x > 0, sqrt(x), 0)", [-1.0, 4.0]),
    ("where(x > 0, log(x), -x)", [-2.0, 0.0, math.e]),
    ("where(x != 0, 1/x, 0)", [0.0, -4.0, 2.0]),
    ("where(x > -1 and x < 1, acos(x), x^2)", [-3.0, -0.5, 0.5, 1.0, 7.0]),
    ("sqrt(max(x, 0))", [-9.0, 4.0, 0.25]),
    ("where(x > 0, where(y > 0, sqrt(x*y), log(x)), exp(x) + sqrt(-x))", None),  # nested
    ("u = log(x); v = where(x > 0, u + 1, 0); where(y > 0, v * sqrt(y), -y*v)", None),  # definitions
    ("u = where(x > 0, sqrt(x), 0); where(u > 1, log(u - 1), acos(u)) + max(x, y, x*y)", None),
    # sqrt(x) is read under (not 0.5 < x, x > 0.25) and (0.5 < x, x > 0.25): its adjoint, assigned
    # where x > 0.25, is added to in both (the NumPy backend failed an assertion).
    ("u = where(not (0.5 < x), sin(where(x > 0.25, sqrt(x), 0.5)), 0.5 + where(x > 0.25, sqrt(x), 1));"
     " where(not (u < 1.5), u, u * 2)", [-1.0, 0.3, 0.6, 4.0]),
    # w4_bar = 0.0 + 1.0 in a branch is a number, not an array: compressing it into the inner branch
    # was an IndexError.
    ("where(x > 0.25, where(x > 0, x + x*x, sin(x)) + x*x, sin(x))", [-1.0, 0.1, 0.3, 2.0]),
]
GRID = [(x, y) for x in (-4.0, -1.0, -0.25, 0.5, 2.0, 6.0) for y in (-3.0, 0.0, 1.5)]


def _points(expr, points):
    gradient = symdiff.compile_grad(expr)
    if points is not None:
        return [tuple(p for p in (x,) if p is not None) for x in points]
    n = len(gradient.inputs)
    return [point[:n] for point in GRID]


def _python(expr, points):
    """The Python backend's value and gradient at each point (None where it raises)."""
    gradient = symdiff.compile_grad(expr)
    results = []
    for point in points:
        try:
            results.append(gradient.value_and_grad(*point))
        except (ValueError, ZeroDivisionError, OverflowError):
            results.append(None)
    return results


@pytest.mark.parametrize(("expr", "points"), GUARDED)
def test_the_branch_not_taken_puts_nothing_into_any_result(expr, points):
    points = _points(expr, points)
    expected = _python(expr, points)
    assert all(e is not None for e in expected), "the programs are defined at every point"
    g = symdiff.compile_grad(expr, backend="numpy")
    arrays = [numpy.array(column) for column in zip(*points)]
    values = numpy.array([e[0] for e in expected])
    partials = [numpy.array([e[1][i] for e in expected]) for i in range(len(g.wrt))]
    with numpy.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        got_grad = g(*arrays)
        got_value = g.value(*arrays)
        got_both = g.value_and_grad(*arrays)
        got_batch = g.batch(numpy.array(arrays), value=True, grad=True)
    # Equal but for NumPy's own arccos, log, exp (an ulp from libm's: tests/test_cross_backend.py).
    for value in (got_value, got_both[0], got_batch[0]):
        numpy.testing.assert_allclose(value, values, rtol=1e-15, atol=0)
    for gradient in (got_grad, got_both[1], tuple(got_batch[1])):
        for got, want in zip(gradient, partials):
            numpy.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    with numpy.errstate(all="raise"):  # one point at a time, as numbers
        for point, (value, gradient) in zip(points, expected):
            assert g.value_and_grad(*point) == (pytest.approx(value, rel=1e-15), pytest.approx(gradient, rel=1e-15))


def test_the_issues_example():
    with numpy.errstate(all="raise"):
        result = symdiff.compile_grad("where(x > 0, sqrt(x), 0)", backend="numpy")(numpy.array([-1.0, 4.0]))
    assert len(result) == 1 and result[0].tolist() == [0.0, 0.25]


def test_branches_over_many_blocks_with_out_and_broadcasting():
    """More points than a block (16,384), inputs that broadcast, and arrays written into (`out=`)."""
    expr = "where(x > 0, where(y > x, log(y - x), sqrt(x)), max(x, y) * 2)"
    g = symdiff.compile_grad(expr, backend="numpy")
    python = symdiff.compile_grad(expr)
    x = numpy.linspace(-2, 3, 40_001)
    y = numpy.linspace(3, -1, 7).reshape(7, 1)
    namespace: dict = {}
    exec(g.source, namespace)
    with numpy.errstate(all="raise"):
        dx, dy = g(x, y)
        out = numpy.empty((2, 7, x.size))
        namespace["grad"](x, y, out=out)
        value = g.value(x, y)
    assert dx.shape == (7, x.size) and numpy.array_equal(out, numpy.array([dx, dy]))
    for i, j in ((0, 0), (3, 17_000), (6, 40_000), (2, 20_000), (5, 8_000)):
        want_value, want_gradient = python.value_and_grad(float(x[j]), float(y[i, 0]))
        assert (value[i, j], (dx[i, j], dy[i, j])) == (want_value, want_gradient)


def test_scalars_zero_d_and_empty_arrays():
    g = symdiff.compile_grad("where(x > 0, log(x) * y, min(y, 1))", backend="numpy")
    with numpy.errstate(all="raise"):
        assert g(-1.0, 3.0) == (0.0, 0.0) and g(-1.0, 0.5) == (0.0, 1.0)
        assert g(numpy.array(math.e), numpy.array(2.0)) == (2 / math.e, 1.0)
        dx, dy = g(numpy.array([]), numpy.array([]))
        assert dx.shape == dy.shape == (0,)
        assert g.value(numpy.array([]), 1.0).shape == (0,)


def test_dask_arrays_get_correct_results_from_safe_substitutes():
    da = pytest.importorskip("dask.array")
    expr = "where(x > 0, where(y > 0, sqrt(x*y), log(x)), acos(max(x, -0.5)) + sqrt(-x))"
    g = symdiff.compile_grad(expr, backend="numpy")
    x, y = numpy.linspace(-3, 3, 50), numpy.linspace(2, -2, 50)
    lazy = g.value_and_grad(da.from_array(x, chunks=16), da.from_array(y, chunks=16))
    assert isinstance(lazy[0], da.Array) and all(isinstance(p, da.Array) for p in lazy[1])
    with numpy.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        value = lazy[0].compute(scheduler="synchronous")
        partials = [p.compute(scheduler="synchronous") for p in lazy[1]]
        eager = g.value_and_grad(x, y)
    numpy.testing.assert_array_equal(value, eager[0])
    for got, want in zip(partials, eager[1]):
        numpy.testing.assert_array_equal(got, want)


def test_masked_arrays_keep_their_mask_through_branches():
    g = symdiff.compile_grad("where(x > 0, sqrt(x), -x)", backend="numpy")
    x = numpy.ma.masked_array([-4.0, 4.0, 9.0], mask=[False, False, True])
    (dx,) = g(x)
    value = g.value(x)
    assert isinstance(value, numpy.ma.MaskedArray) and list(value.mask) == [False, False, True]
    assert value[:2].tolist() == [4.0, 2.0] and dx[:2].tolist() == [-1.0, 0.25]


@settings(max_examples=examples(50, 20_000), deadline=None)
@given(branch_programs())
def test_random_branch_programs_agree_with_python_at_every_element(program):
    text = program.program()
    python = symdiff.compile_grad(text)
    g = symdiff.compile_grad(text, backend="numpy")
    rng = numpy.random.default_rng(len(text))
    points = [tuple(p[name] for name in g.inputs) for p in program.points]
    points += [tuple(row) for row in rng.uniform(-3, 3, (40, len(g.inputs)))]
    kept, expected = [], []
    for point in points:
        try:
            result = python.value_and_grad(*point)
        except (ValueError, ZeroDivisionError, OverflowError):
            continue
        if all(math.isfinite(v) for v in (result[0], *result[1])):
            kept.append(point)
            expected.append(result)
    if not kept or not g.inputs:
        return
    arrays = numpy.array(kept).T
    with numpy.errstate(all="raise"):
        value, gradient = g.value_and_grad(*arrays)
        batch_value, batch_gradient = g.batch(arrays, value=True, grad=True)
        only_gradient = g(*arrays)
    want_value = numpy.array([e[0] for e in expected])
    want_gradient = numpy.array([e[1] for e in expected]).T.reshape(len(g.wrt), -1)
    # NumPy's exp, tanh, ... differ from libm's by a few ulps (tests/test_cross_backend.py).
    for got in (value, batch_value):
        numpy.testing.assert_allclose(got, want_value, rtol=1e-12, atol=1e-14)
    for got in (numpy.array(gradient), batch_gradient, numpy.array(only_gradient)):
        numpy.testing.assert_allclose(got.reshape(len(g.wrt), -1), want_gradient, rtol=1e-12, atol=1e-14)
    assert set(g.inputs) <= set(BRANCH_INPUTS)


def test_generated_modules_and_the_runtime_lint_clean(tmp_path):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    runtime = (templates_dir() / "numpy_runtime.py").read_text(encoding="utf-8")
    for number, (expr, _) in enumerate(GUARDED + [("_merge * where(_run > 0, _safe, _enter)", None)]):
        source = symdiff.compile_grad(expr, backend="numpy").source
        assert runtime in source  # included verbatim
        (tmp_path / f"m{number}.py").write_text(source)
    (tmp_path / "numpy_runtime.py").write_text(runtime)
    done = subprocess.run([ruff, "check", "--no-cache", "--isolated", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_runtime_names_taken_by_inputs_are_called_through_aliases():
    g = symdiff.compile_grad("_merge * where(_run > 0, sqrt(_run), _update)", backend="numpy")
    assert "_merge_ = _merge" in g.source and "_run_ = _run" in g.source
    with numpy.errstate(all="raise"):
        assert g(numpy.array([2.0, 2.0]), numpy.array([4.0, -1.0]), numpy.array([5.0, 5.0]))[0].tolist() == [2.0, 5.0]


def test_the_cli_writes_a_numpy_module_with_branches(tmp_path, capsys):
    target = tmp_path / "softplus.py"
    assert cli.main(["grad", "where(x > 0, x + log(1 + exp(-x)), log(1 + exp(x)))", "--lang", "numpy",
                     "-o", str(target)]) == 0
    namespace: dict = {}
    exec(target.read_text(), namespace)
    points = [-30.0, 0.0, 30.0]
    with numpy.errstate(all="raise"):
        (dx,) = namespace["grad"](numpy.array(points))
    python = symdiff.compile_grad("where(x > 0, x + log(1 + exp(-x)), log(1 + exp(x)))")
    assert dx.tolist() == pytest.approx([python(point)[0] for point in points], rel=1e-15)
