"""compile_jvp, compile_jacobian and compile_hessian with backend="numpy" (issue 20, item 2): the
NumPy printer prints the core's derivative Programs, and every entry point (jvp, jacobian in both
modes, value_and_jacobian, hessian, hvp) returns what the Python backend's does, with the same call
interface, elementwise over arrays. Branches run only on the elements that take them, in every
derivative: no nan, inf or warning from the branch not taken (numpy.errstate(all="raise"))."""

import math
import shutil
import subprocess
import warnings

import pytest
from support import WORKED

import symdiff
from symdiff.errors import ArgumentError

numpy = pytest.importorskip("numpy")

# (expression, points where the Python backend is defined), each branch taken at some point.
BRANCHES = [
    ("where(x > 0, x*sqrt(x), 0)", [(-1.0,), (4.0,), (0.25,)]),
    ("max(x, y) * sin(x) + min(x*y, 1)", [(2.0, -1.0), (-0.5, 3.0), (1.5, 0.25)]),
    ("where(x > 0, where(y > 0, sqrt(x*y), log(x)), exp(x) + sqrt(-x))", [(-1.0, 2.0), (2.0, 3.0), (2.0, -1.0)]),
    ("where(x > -1 and x < 1, acos(x), x^2)", [(-3.0,), (0.5,), (7.0,)]),
    ("u = where(x > 0, log(x), -x); v = max(u, y); where(v > 1, v * sqrt(v - 1), u * y)", [(4.0, 0.5), (0.5, 3.0), (-2.0, 1.0)]),
]
CASES = [(text, [tuple(point.values())]) for text, point, _, _ in WORKED] + BRANCHES
CASES[0] = (CASES[0][0], CASES[0][1] + [(-0.75, 1.5)])
DIRECTION = (0.5, -1.25, 2.0)
ULPS = 4  # NumPy's sin, exp, log, arccos may be an ulp from libm's (tests/test_cross_backend.py)


def _leaves(result) -> list:
    """The numbers of a nested result, in order."""
    if isinstance(result, tuple):
        return [leaf for item in result for leaf in _leaves(item)]
    return [result]


def _shape(result):
    """The nesting of a result: tuples of tuples, with None for each number."""
    return tuple(_shape(item) for item in result) if isinstance(result, tuple) else None


def _close(got: float, want: float) -> bool:
    if got == want or (math.isnan(got) and math.isnan(want)):
        return True
    return abs(got - want) <= ULPS * math.ulp(max(abs(got), abs(want)))


def _calls(text):
    """(entry point name, Python callable, NumPy callable, takes a direction) for every entry point."""
    jvp = [symdiff.compile_jvp(text, backend=backend) for backend in ("python", "numpy")]
    hessian = [symdiff.compile_hessian(text, backend=backend) for backend in ("python", "numpy")]
    calls = [("jvp", jvp[0], jvp[1], True), ("hessian", hessian[0], hessian[1], False),
             ("hvp", hessian[0].hvp, hessian[1].hvp, True)]
    for mode in ("reverse", "forward"):
        pair = [symdiff.compile_jacobian(text, mode=mode, backend=backend) for backend in ("python", "numpy")]
        calls.append((f"jacobian {mode}", pair[0], pair[1], False))
        calls.append((f"value_and_jacobian {mode}", pair[0].value_and_jacobian, pair[1].value_and_jacobian, False))
    return calls


def _run(call, point, directed):
    return call(point, DIRECTION[: len(point)]) if directed else call(*point)


@pytest.mark.parametrize(("text", "points"), CASES)
def test_every_entry_point_gives_the_python_backends_numbers(text, points):
    arrays = tuple(numpy.array(column) for column in zip(*points))
    for name, python, array_code, directed in _calls(text):
        expected = [_run(python, point, directed) for point in points]
        with numpy.errstate(all="raise"), warnings.catch_warnings():
            warnings.simplefilter("error")
            one_at_a_time = [_run(array_code, point, directed) for point in point_values(points)]
            together = _run(array_code, arrays, directed)
        assert _shape(together) == _shape(expected[0]), name
        for k, (want, got) in enumerate(zip(expected, one_at_a_time)):
            assert _shape(got) == _shape(want), name
            for g, w in zip(_leaves(got), _leaves(want)):
                assert isinstance(g, numpy.float64) and _close(float(g), w), (name, points[k], got, want)
        for position, leaf in enumerate(_leaves(together)):
            assert leaf.shape == (len(points),), name
            for k, want in enumerate(expected):
                assert _close(float(leaf[k]), _leaves(want)[position]), (name, points[k], together, want)


def point_values(points):
    return [tuple(float(v) for v in point) for point in points]


def test_the_textbook_hessian_is_exact():
    h = symdiff.compile_hessian("x1*x2 + sin(x1)", backend="numpy")
    value, gradient, rows = h(2.0, 3.0)
    assert (value, gradient) == (6.909297426825682, (2.5838531634528574, 2.0))
    assert rows == ((-math.sin(2.0), 1.0), (1.0, 0.0))
    value, gradient, rows = h(numpy.array([2.0, 2.0]), numpy.array([3.0, -1.0]))
    assert [[row[0].tolist(), row[1].tolist()] for row in rows] == [[[-math.sin(2.0)] * 2, [1.0, 1.0]],
                                                                    [[1.0, 1.0], [0.0, 0.0]]]


def test_the_branch_not_taken_poisons_no_derivative():
    x = numpy.array([-1.0, 4.0])
    with numpy.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        hessian = symdiff.compile_hessian("where(x > 0, x*sqrt(x), 0)", backend="numpy")
        value, (gradient,), ((second,),) = hessian(x)
        _, _, (product,) = hessian.hvp([x], [2.0])
        inverse = symdiff.compile_jvp("where(x != 0, 1/x, 0)", backend="numpy")([numpy.array([0.0, -4.0, 2.0])], [1.0])
        root = symdiff.compile_jvp("sqrt(max(x, 0.25))", backend="numpy")([numpy.array([-9.0, 4.0])], [1.0])
        jacobian = symdiff.compile_jacobian(["where(x > 0, log(x), -x)", "where(x > -1 and x < 1, acos(x), x^2)"],
                                            mode="forward", backend="numpy")
        values, rows = jacobian.value_and_jacobian(numpy.array([-2.0, 0.5, 3.0]))
    assert (value.tolist(), gradient.tolist(), second.tolist(), product.tolist()) == (
        [0.0, 8.0], [0.0, 3.0], [0.0, 0.375], [0.0, 0.75])
    assert [a.tolist() for a in inverse] == [[0.0, -0.25, 0.5], [0.0, -0.0625, -0.25]]
    assert [a.tolist() for a in root] == [[0.5, 2.0], [0.0, 0.25]]
    # NumPy's arccos is an ulp from libm's acos.
    assert [v.tolist() for v in values] == [[2.0, math.log(0.5), math.log(3.0)], [4.0, numpy.arccos(0.5), 9.0]]
    assert [row[0].tolist() for row in rows] == [[-1.0, 2.0, 1 / 3], [-4.0, pytest.approx(-1 / math.sqrt(0.75)), 6.0]]


def test_many_blocks_broadcasting_and_out():
    """More points than a block, a direction that broadcasts, and arrays written into (`out=`)."""
    text = "where(x > 0, where(y > x, log(y - x), sqrt(x)), max(x, y) * 2)"
    python = symdiff.compile_hessian(text)
    h = symdiff.compile_hessian(text, backend="numpy")
    x = numpy.linspace(-2, 3, 40_001)
    y = numpy.linspace(3, -1, 3).reshape(3, 1)
    namespace: dict = {}
    exec(h.source, namespace)
    with numpy.errstate(all="raise"):
        value, gradient, products = h.hvp([x, y], [1.0, numpy.array([0.5, -1.0, 2.0]).reshape(3, 1)])
        out = numpy.empty((7, 3, x.size))
        namespace["hessian"](x, y, out=out)
    rows = out[3:].reshape(2, 2, 3, x.size)
    for i, j in ((0, 0), (1, 17_000), (2, 40_000), (1, 20_000), (0, 8_000)):
        point, direction = (float(x[j]), float(y[i, 0])), (1.0, (0.5, -1.0, 2.0)[i])
        want_value, want_gradient, want_products = python.hvp(point, direction)
        assert (value[i, j], gradient[0][i, j], gradient[1][i, j]) == (want_value, *want_gradient)
        assert all(_close(products[k][i, j], want_products[k]) for k in range(2))
        want_value, want_gradient, want_rows = python(*point)
        assert out[0, i, j] == want_value and tuple(out[1:3, i, j]) == want_gradient
        assert all(_close(rows[a, b, i, j], want_rows[a][b]) for a in range(2) for b in range(2))


def test_dask_arrays_through_safe_substitutes():
    da = pytest.importorskip("dask.array")
    h = symdiff.compile_hessian("where(x > 0, where(y > 0, sqrt(x*y), log(x)), exp(x) + sqrt(-x))", backend="numpy")
    x, y = numpy.linspace(-3, 3, 40), numpy.linspace(2, -2, 40)
    lazy = h(da.from_array(x, chunks=16), da.from_array(y, chunks=16))
    with numpy.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        computed = [leaf.compute(scheduler="synchronous") for leaf in _leaves(lazy)]
        eager = h(x, y)
    for got, want in zip(computed, _leaves(eager)):
        numpy.testing.assert_array_equal(got, want)


def test_wrong_numbers_of_values_raise_what_python_raises():
    jvp = symdiff.compile_jvp("x*y", backend="numpy")
    hessian = symdiff.compile_hessian("x*y", backend="numpy")
    jacobian = symdiff.compile_jacobian("x*y, x", backend="numpy")
    wrong = [
        (lambda: jvp([1.0], [1.0, 2.0]), "expected 2 values (x, y), got 1"),
        (lambda: jvp([1.0, 2.0], [1.0, 2.0, 3.0]), "expected 2 values (x, y), got 3"),
        (lambda: hessian(1.0), "expected 2 values (x, y), got 1"),
        (lambda: hessian.hvp([1.0, 2.0], [1.0]), "expected 2 values (x, y), got 1"),
        (lambda: jacobian(1.0, 2.0, 3.0), "expected 2 values (x, y), got 3"),
        (lambda: jacobian.value_and_jacobian(), "expected 2 values (x, y), got 0"),
    ]
    for call, message in wrong:
        with pytest.raises(ArgumentError) as error:
            call()
        assert str(error.value) == message


def test_source_is_a_deterministic_numpy_module_that_lints_clean(tmp_path):
    texts = ["x1*x2 + sin(x1)", "where(x > 0, where(y > 0, sqrt(x*y), log(x)), exp(x) + sqrt(-x))"]
    sources = []
    for text in texts:
        for make in (lambda text=text: symdiff.compile_jvp(text, backend="numpy"),
                     lambda text=text: symdiff.compile_jacobian(text, mode="forward", backend="numpy"),
                     lambda text=text: symdiff.compile_jacobian(text, mode="reverse", backend="numpy"),
                     lambda text=text: symdiff.compile_hessian(text, backend="numpy")):
            source = make().source
            assert source == make().source
            sources.append(source)
    jvp, forward, reverse, hessian = sources[:4]
    assert jvp.startswith('"""Generated by symdiff') and "NumPy backend" in jvp.splitlines()[0]
    assert "Directional derivative (forward mode) of\n\n    x1*x2 + sin(x1)\n" in jvp
    assert "Jacobian (forward mode)" in forward and "Jacobian (reverse mode)" in reverse
    assert "def jacobian(x1, x2, *, out=None):" in forward and "def value_and_jacobian(" in forward
    assert "def hessian(x1, x2, *, out=None):" in hessian and "def hvp(x1, x2, x1_dot, x2_dot, *, out=None):" in hessian
    assert "import numpy\n" in jvp and "from math" not in "".join(sources) and "import math" not in "".join(sources)
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for number, source in enumerate(sources):
        (tmp_path / f"m{number}.py").write_text(source)
    done = subprocess.run([ruff, "check", "--no-cache", "--isolated", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_deeply_nested_branches():
    """A where() inside a where() 60 deep: each level's values are entered into the next once."""
    text = "x"
    for level in range(60):
        text = f"where(x > {level / 40}, {text} + x*x, sin(x))"
    python = symdiff.compile_hessian(text)
    h = symdiff.compile_hessian(text, backend="numpy")
    points = [-1.0, 0.01, 0.3, 0.74, 1.2, 1.49, 2.0]
    with numpy.errstate(all="raise"):
        got = h(numpy.array(points))
    for k, point in enumerate(points):
        want = python(point)
        assert all(_close(float(g[k]), w) for g, w in zip(_leaves(got), _leaves(want))), (point, want)
