"""Array programs on the NumPy backend: loops print as whole-array arithmetic (slices of a block for a
top loop, index arrays and bincount for nested ones), checked against scipy.optimize.rosen_der, the
Python backend (which test_arrays.py checks against SymPy), formulas written here with NumPy, and Dask.
"""

import math

import numpy
import pytest

import symdiff
import symdiff.codegen.numpy as numpy_printer
from symdiff.calling import load
from symdiff.errors import ArgumentError

ROSENBROCK = "sum(100*(x[i + 1] - x[i]^2)^2 + (1 - x[i])^2 for i in range(len(x) - 1))"
FIT = "sum((a*exp(-b*t[i]) + c - y[i])^2 for i in range(len(t)))"
PAIRS = "sum(1/(x[i] - x[j])^2 for i in range(len(x)) for j in range(i + 1, len(x)))"
MATRIX = "sum((sum(W[j, k]*x[k] for k in range(len(x))) - y[j])^2 for j in range(len(y)))"
RESIDUALS = "[a*exp(-b*t[i]) + c - y[i] for i in range(len(t))]"


def relative_error(got, expected) -> float:
    """The largest difference relative to the largest magnitude expected (elementwise relative
    errors mean nothing where the terms of a partial cancel)."""
    got, expected = numpy.asarray(got, dtype=float), numpy.asarray(expected, dtype=float)
    return float(numpy.max(numpy.abs(got - expected), initial=0.0) / max(1e-300, numpy.max(numpy.abs(expected))))


def assert_same(got, expected, tolerance=1e-13):
    """Results of the same shape (a tuple of gradients, or value then gradients), equal to `tolerance`:
    sums add in another order than the Python backend's one-by-one loop."""
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for one, other in zip(got, expected):
            assert_same(one, other, tolerance)
        return
    assert numpy.shape(got) == numpy.shape(expected)
    assert relative_error(got, expected) <= tolerance, (got, expected)


@pytest.mark.parametrize("n", [2, 3, 10, 1000, 10**6])
def test_rosenbrock_gradient_equals_scipy_rosen_der(n):
    from scipy.optimize import rosen, rosen_der

    x = numpy.random.default_rng(n).uniform(-2.0, 2.0, n)
    g = symdiff.compile_grad(ROSENBROCK, backend="numpy")
    (gradient,) = g(x)
    assert type(gradient) is numpy.ndarray and gradient.dtype == numpy.float64 and gradient.shape == (n,)
    assert relative_error(gradient, rosen_der(x)) < 1e-12
    value, (both,) = g.value_and_grad(x)
    assert numpy.array_equal(both, gradient)
    assert math.isclose(value, rosen(x), rel_tol=1e-12)
    assert math.isclose(g.value(x), rosen(x), rel_tol=1e-12)


def test_a_top_loop_prints_as_slices_of_a_block():
    g = symdiff.compile_grad(ROSENBROCK, backend="numpy")
    grad = g.source.split("def grad(x):\n")[1].split("\n\n\n")[0]
    assert grad == (
        '    """Gradient (d/dx); computes only the forward values the reverse sweep reads."""\n'
        "    # reverse sweep (seed w10_bar = 1)\n"
        "    x_bar = numpy.zeros(x.shape)\n"
        "    for lo, hi in _blocks(len(x) - 1, x):\n"
        "        w3 = x[lo:hi] ** 2\n"
        "        w4 = x[lo + 1:hi + 1] - w3\n"
        "        w7 = 1.0 - x[lo:hi]\n"
        "        w4_bar = 200.0 * w4  # w5 = w4 ^ 2\n"
        "        x_bar[lo:hi] -= 2.0 * (w7 + w4_bar * x[lo:hi])  # w7 = 1 - x[i]; w3 = x[i] ^ 2\n"
        "        x_bar[lo + 1:hi + 1] += w4_bar  # w4 = x[i + 1] - w3\n"
        "    return (x_bar,)"
    )
    assert g.source == symdiff.compile_grad(ROSENBROCK, backend="numpy").source


def test_the_generated_module_passes_ruff_and_imports_only_numpy(tmp_path):
    import subprocess
    import sys

    triangle = "sum(x[i]*prod(x[j]*x[k] for j in range(i) for k in range(j)) for i in range(len(x)))"
    modules = [
        symdiff.compile_grad(PAIRS, backend="numpy"),
        symdiff.compile_jvp(triangle, backend="numpy"),  # a nest in a nest: no unread map k_of_i
        symdiff.compile_hessian(triangle, backend="numpy"),
        symdiff.compile_jacobian(RESIDUALS, wrt=["a", "b"], backend="numpy"),
    ]
    for number, module in enumerate(modules):
        path = tmp_path / f"module{number}.py"
        module.save(path)
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", str(path)],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout
        assert [line for line in module.source.splitlines() if "import" in line] == ["import numpy"]


# Programs the core supports, with arguments: each backend's gradient and value must agree.
PROGRAMS = [
    ("rosenbrock", ROSENBROCK, None, lambda rng: [rng.uniform(-2, 2, 9)]),
    ("fit", FIT, ["a", "b", "c"], lambda rng: [1.5, 0.7, 0.2, numpy.linspace(0, 3, 11), rng.normal(size=11)]),
    ("fit wrt data too", FIT, None, lambda rng: [1.5, 0.7, 0.2, numpy.linspace(0, 3, 7), rng.normal(size=7)]),
    ("logsumexp", "log(sum(exp(x[i]) for i in range(len(x))))", None, lambda rng: [rng.normal(size=8)]),
    (
        "mean in a definition",
        "m = sum(x[i] for i in range(len(x)))/len(x); sum((x[i] - m)^2 for i in range(len(x)))",
        None,
        lambda rng: [rng.normal(size=7)],
    ),
    ("pairs i < j", PAIRS, None, lambda rng: [numpy.arange(9.0) + rng.uniform(0, 0.5, 9)]),
    (
        "matrix times vector",
        MATRIX,
        None,
        lambda rng: [rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=5)],
    ),
    (
        "index as a number, constant reads, reversed indices",
        "x[0]*x[1] + sum((i + 1)*x[i]^2 for i in range(len(x))) + sum(x[i]*x[len(x) - 1 - i] for i in range(len(x)))",
        None,
        lambda rng: [rng.normal(size=7)],
    ),
    (
        "strides, shifted starts and a constant read in a loop",
        "sum(x[2*i]*y[i] + x[len(x) - 1 - 2*i]*x[0] for i in range(len(y))) + sum(y[i - 1]*y[i] for i in range(1, len(y)))",
        None,
        lambda rng: [rng.normal(size=10), rng.normal(size=5)],
    ),
    (
        "a sum inside a body, over an outer index",
        "sum(x[i]*sum(x[j]*(i - j) for j in range(i)) for i in range(len(x)))",
        None,
        lambda rng: [rng.normal(size=8)],
    ),
    (
        "a one-hidden-layer network",
        "sum((sum(v[j]*tanh(sum(W[j, k]*X[s, k] for k in range(len(W, 1))) + b[j]) for j in range(len(b)))"
        " - y[s])^2 for s in range(len(y)))",
        ["W", "b", "v"],
        lambda rng: [
            rng.normal(size=(3, 4)),
            rng.normal(size=(6, 4)),
            rng.normal(size=3),
            rng.normal(size=3),
            rng.normal(size=6),
        ],
    ),
    ("an array read without loops", "x[0]*x[1] - sin(x[2])*a", None, lambda rng: [rng.normal(), rng.normal(size=3)]),
    (
        "a column of a matrix",
        "sum(W[i, 1]*W[i, 0] for i in range(len(W)))",
        None,
        lambda rng: [rng.normal(size=(6, 2))],
    ),
]


@pytest.mark.parametrize("block", [3, None], ids=["blocks of 3", "default blocks"])
@pytest.mark.parametrize("program", PROGRAMS, ids=[program[0] for program in PROGRAMS])
def test_agrees_with_the_python_backend(program, block, monkeypatch):
    if block is not None:  # loops longer than a block: reductions and scatters cross block boundaries
        monkeypatch.setattr(numpy_printer, "ARRAY_BLOCK", block)
        monkeypatch.setattr(numpy_printer, "NEST_BLOCK", 2 * block + 1)  # blocks of 1 to 7 outer iterations
    _, source, wrt, arguments = program
    args = arguments(numpy.random.default_rng(3))
    fast = symdiff.compile_grad(source, wrt, backend="numpy")
    textbook = symdiff.compile_grad(source, wrt)
    expected_value, expected_gradient = textbook.value_and_grad(*args)
    expected_gradient = tuple(numpy.asarray(partial, dtype=float) for partial in expected_gradient)
    assert_same(fast(*args), expected_gradient)
    assert_same(fast.value_and_grad(*args), (numpy.float64(expected_value), expected_gradient))
    assert_same(fast.value(*args), numpy.float64(expected_value))
    if block is not None:
        assert f"\nBLOCK = {block}\n" in fast.source and f"\nNEST_BLOCK = {2 * block + 1}\n" in fast.source


def test_pairs_add_every_term_of_a_repeated_index():
    x = numpy.array([0.0, 1.0, 3.0, 7.0, 8.5])
    g = symdiff.compile_grad(PAIRS, backend="numpy")
    difference = x[:, None] - x[None, :]
    with numpy.errstate(divide="ignore"):
        terms = numpy.where(difference == 0.0, 0.0, -2.0 / difference**3)
    (gradient,) = g(x)
    assert relative_error(gradient, terms.sum(axis=1)) < 1e-14
    assert "_scatter(x_bar, (j,), -w3_bar)" in g.source
    assert "_scatter(x_bar, (i[j_of_i],), w3_bar)" in g.source


def test_a_matrix_times_a_vector_against_its_formula():
    rng = numpy.random.default_rng(5)
    W, x, y = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=4)
    residual = W @ x - y
    g = symdiff.compile_grad(MATRIX, backend="numpy")
    W_bar, x_bar, y_bar = g(W, x, y)
    assert relative_error(W_bar, 2.0 * numpy.outer(residual, x)) < 1e-14
    assert relative_error(x_bar, 2.0 * W.T @ residual) < 1e-14
    assert relative_error(y_bar, -2.0 * residual) < 1e-14
    assert math.isclose(g.value(W, x, y), residual @ residual, rel_tol=1e-14)


def test_call_styles_and_result_types():
    g = symdiff.compile_grad(FIT, wrt=["a", "t"], backend="numpy")
    t, y = [0.0, 0.5, 1.0], (1.0, 0.8, 0.5)
    by_position = g(1.0, 2.0, 0.5, t, y)
    by_name = g(y=numpy.array(y), t=numpy.array(t), a=1.0, b=2.0, c=0.5)
    assert_same(by_position, by_name, 0.0)
    a_bar, t_bar = by_position
    assert numpy.ndim(a_bar) == 0 and isinstance(float(a_bar), float)
    assert type(t_bar) is numpy.ndarray and t_bar.dtype == numpy.float64 and t_bar.shape == (3,)
    model = 1.0 * numpy.exp(-2.0 * numpy.array(t)) + 0.5 - numpy.array(y)
    assert math.isclose(a_bar, float(numpy.sum(2.0 * model * numpy.exp(-2.0 * numpy.array(t)))), rel_tol=1e-14)


def test_a_read_out_of_bounds_raises_and_never_wraps():
    g = symdiff.compile_grad("sum(x[i + 1]*x[i] for i in range(len(x)))", backend="numpy")
    with pytest.raises(
        ArgumentError, match=r"^x\[i \+ 1\] for i in range\(len\(x\)\) reads x at index 3, past its end \(len 3\)$"
    ):
        g(numpy.array([1.0, 2.0, 3.0]))
    reversed_ = symdiff.compile_grad("sum(x[len(x) - 2 - i]*y[i] for i in range(len(y)))", backend="numpy")
    with pytest.raises(
        ArgumentError,
        match=r"^x\[len\(x\) - 2 - i\] for i in range\(len\(y\)\) reads x at index -1, before its start \(len 3\)$",
    ):
        reversed_([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert_same(reversed_([1.0, 2.0, 3.0], [5.0, 7.0]), (numpy.array([7.0, 5.0, 0.0]), numpy.array([2.0, 1.0])), 0.0)


def test_an_empty_range_sums_to_zero():
    g = symdiff.compile_grad(ROSENBROCK, backend="numpy")
    value, (gradient,) = g.value_and_grad([0.5])
    assert value == 0.0 and gradient.tolist() == [0.0]
    assert g(numpy.zeros(0))[0].shape == (0,)


def test_dask_data_run_lazily_in_chunks_and_give_the_numpy_results():
    dask_array = pytest.importorskip("dask.array")
    m = 50_000
    rng = numpy.random.default_rng(11)
    t = numpy.linspace(0.0, 5.0, m)
    y = 2.0 * numpy.exp(-0.7 * t) + 0.3 + rng.normal(scale=0.01, size=m)
    lazy_t, lazy_y = dask_array.from_array(t, chunks=7_000), dask_array.from_array(y, chunks=7_000)
    assert lazy_t.numblocks == (8,)
    g = symdiff.compile_grad(FIT, wrt=["a", "b", "c"], backend="numpy")
    expected = g(1.5, 0.5, 0.1, t, y)
    assert_same(g(1.5, 0.5, 0.1, lazy_t, lazy_y), expected, 1e-12)
    value, gradient = g.value_and_grad(1.5, 0.5, 0.1, lazy_t, lazy_y)
    assert_same((value, gradient), g.value_and_grad(1.5, 0.5, 0.1, t, y), 1e-12)
    # The generated function itself builds a Dask graph over the chunks, and computes nothing.
    grad = load(g.source, "numpy")["grad"]
    partials = grad(1.5, 0.5, 0.1, lazy_t, lazy_y)
    assert all(type(partial).__module__.startswith("dask") for partial in partials)
    assert float(partials[0].compute()) == pytest.approx(float(expected[0]), rel=1e-12)


def test_an_array_in_wrt_passed_as_dask_is_computed_once_into_numpy():
    dask_array = pytest.importorskip("dask.array")
    x = numpy.random.default_rng(2).uniform(-2.0, 2.0, 100)
    g = symdiff.compile_grad(ROSENBROCK, backend="numpy")
    (gradient,) = g(dask_array.from_array(x, chunks=30))
    assert type(gradient) is numpy.ndarray
    assert numpy.array_equal(gradient, g(x)[0])


def test_an_array_program_has_no_batch():
    g = symdiff.compile_grad(ROSENBROCK, backend="numpy")
    with pytest.raises(ArgumentError, match="an array program takes its arrays whole"):
        g.batch(numpy.ones((1, 3)))


def test_a_loop_recomputed_over_the_same_pairs_computes_its_body_once():
    g = symdiff.compile_grad(PAIRS, backend="numpy")
    both = g.source.split("def value_and_grad(x):\n")[1]
    assert both.count("_nest(") == 1
    assert both.count("w3 = x[i[j_of_i]] - x[j]") == 1
    assert "w6 = _segment_total(w5, j_of_i, hi - lo)" in both
    assert "for lo, hi in _blocks(len(x), x, width=max(len(x) - 1, 0)):" in both


def test_names_of_the_runtime_and_of_blocks_taken_by_inputs_are_renamed():
    source = "_total*sum(x[i]*lo*hi for i in range(len(x))) + sum(x[i]*x[j_of_i] for i in range(len(x)) for j_of_i in range(i))"
    g = symdiff.compile_grad(source, backend="numpy")
    assert "\n_total_ = _total\n" in g.source
    assert "for lo_, hi_ in _blocks(len(x), x):" in g.source
    x = numpy.array([0.5, -1.0, 2.0, 3.0])
    assert_same(g(2.0, 3.0, 4.0, x), tuple(numpy.asarray(p) for p in symdiff.compile_grad(source)(2.0, 3.0, 4.0, x)))


def test_a_loop_that_only_checked_a_domain_prints_no_empty_block():
    g = symdiff.compile_grad(
        "sum(log(x[i]) for i in range(len(x)))*0 + sum(x[i] for i in range(len(x)))", backend="numpy"
    )
    grad = g.source.split("def grad(x):\n")[1].split("\n\n\n")[0]
    assert grad.count("for lo, hi in _blocks(len(x), x):") == 1
    assert g(numpy.array([1.0, 2.0]))[0].tolist() == [1.0, 1.0]


def test_a_loop_running_loops_goes_in_blocks_of_at_most_nest_block_inner_iterations(monkeypatch):
    blocks = []
    namespace = load(symdiff.compile_grad(MATRIX, backend="numpy").source, "numpy")
    original = namespace["_blocks"]
    monkeypatch.setitem(
        namespace, "_blocks", lambda *args, **kwargs: blocks.append(kwargs) or original(*args, **kwargs)
    )
    monkeypatch.setitem(namespace, "NEST_BLOCK", 9)
    rng = numpy.random.default_rng(4)
    W, x, y = rng.normal(size=(7, 4)), rng.normal(size=4), rng.normal(size=7)
    W_bar, x_bar, y_bar = namespace["grad"](W, x, y)
    assert blocks == [{"width": 4}]
    assert original(7, W, x, y, width=4) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    residual = W @ x - y
    assert relative_error(x_bar, 2.0 * W.T @ residual) < 1e-14


def ulps(got, expected) -> float:
    """The largest difference in units in the last place of the expected values (0 where equal)."""
    got, expected = numpy.asarray(got, dtype=float), numpy.asarray(expected, dtype=float)
    return float(numpy.max(numpy.abs(got - expected) / numpy.spacing(numpy.abs(expected)), initial=0.0))


@pytest.mark.parametrize("values", [[1.5, 2.0, 3.0], [1.5, 0.0, 3.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [2.5]])
def test_prod_is_exact_where_factors_are_zero(values):
    source = "prod(x[i]*a + i for i in range(len(x)))"
    x = [v - k for k, v in enumerate(values)]
    value, (a_bar, x_bar) = symdiff.compile_grad(source, backend="numpy").value_and_grad(1.0, x)
    expected_value, (expected_a, expected_x) = symdiff.compile_grad(source).value_and_grad(1.0, x)
    # The running products multiply in the loop's order (numpy.cumprod), the partials are the
    # product before i times the product after it: the Python backend's bits, zeros exact.
    assert value == expected_value
    assert x_bar.tolist() == expected_x
    assert ulps(a_bar, expected_a) <= 2  # a sum over i: NumPy adds in another order
    assert (a_bar == 0.0) == (expected_a == 0.0)
    assert " / " not in symdiff.compile_grad(source, backend="numpy").source


PRODUCTS = [
    (
        "a product over pairs, read in the loop over j",
        "prod(1 + x[j]/4 for i in range(len(x)) for j in range(i + 1, len(x)))",
        lambda rng: [rng.normal(size=5)],
    ),
    (
        "a product in a sum in a sum",
        "sum(sum(prod(W[i, k] + x[j] for k in range(len(W, 1))) for j in range(len(x))) for i in range(len(W)))",
        lambda rng: [rng.normal(size=(3, 4)), numpy.array([0.5, -1.0, 0.0])],
    ),
    (
        "a product over a triangle of pairs, its factors' products recomputed",
        "sum(x[i]*prod(x[j]*x[k] for j in range(i) for k in range(j)) for i in range(len(x)))",
        lambda rng: [rng.uniform(0.5, 1.5, 6)],
    ),
    (
        "scalar factor",
        "prod(a for i in range(len(x))) + sum(x[i] for i in range(len(x)))",
        lambda rng: [1.1, rng.normal(size=5)],
    ),
    (
        "product in a sum, rows of W",
        "sum(prod(W[i, j] for j in range(len(W, 1))) for i in range(len(W)))",
        lambda rng: [numpy.array([[1.0, 2.0, 0.5], [0.0, 3.0, 1.5], [-1.5, 0.5, 2.0], [0.0, 0.0, 1.0]])],
    ),
    (
        "product over a triangle",
        "sum(x[i]*prod(x[j] + a for j in range(i)) for i in range(len(x)))",
        lambda rng: [0.7, numpy.array([0.3, -0.7, 1.2, -1.1, 0.9, 2.0, -0.4])],
    ),
    (
        "product inside a log, shifted start",
        "log(prod(exp(x[i]) + 1 for i in range(1, len(x))))*x[0]",
        lambda rng: [rng.normal(size=8)],
    ),
    (
        "two products, one reversed",
        "prod(x[i] for i in range(len(x)))*prod(x[len(x) - 1 - i]^2 for i in range(len(x)))",
        lambda rng: [numpy.array([1.5, 0.0, 2.0, -1.0, 0.5])],
    ),
]


@pytest.mark.parametrize("block", [1, 2, None], ids=["blocks of 1", "blocks of 2", "default blocks"])
@pytest.mark.parametrize("program", PRODUCTS, ids=[program[0] for program in PRODUCTS])
def test_products_agree_with_the_python_backend(program, block, monkeypatch):
    if block is not None:  # the running products cross blocks; the suffixes fill from the last block
        monkeypatch.setattr(numpy_printer, "ARRAY_BLOCK", block)
        monkeypatch.setattr(numpy_printer, "NEST_BLOCK", 3 * block)
    _, source, arguments = program
    args = arguments(numpy.random.default_rng(7))
    fast, textbook = symdiff.compile_grad(source, backend="numpy"), symdiff.compile_grad(source)
    expected_value, expected_gradient = textbook.value_and_grad(*args)
    value, gradient = fast.value_and_grad(*args)
    assert ulps(value, expected_value) <= 4 and ulps(fast.value(*args), expected_value) <= 4
    for got, again, expected in zip(gradient, fast(*args), expected_gradient):
        assert ulps(got, expected) <= 8 and ulps(again, expected) <= 8
        assert numpy.array_equal(numpy.asarray(got) == 0.0, numpy.asarray(expected) == 0.0)


def test_a_product_in_a_sum_prints_scans_over_the_rows_of_a_nest():
    g = symdiff.compile_grad("sum(prod(W[i, j] for j in range(len(W, 1))) for i in range(len(W)))", backend="numpy")
    grad = g.source.split("def grad(W):\n")[1].split("\n\n\n")[0]
    assert grad == (
        '    """Gradient (d/dW); computes only the forward values the reverse sweep reads."""\n'
        "    # reverse sweep (seed w3_bar = 1)\n"
        "    W_bar = numpy.zeros(W.shape)\n"
        "    for lo, hi in _blocks(len(W), W, width=W.shape[1]):\n"
        "        i = numpy.arange(lo, hi)\n"
        "        w2_after = 1.0\n"
        "        j_of_i, j = _nest(0, W.shape[1], hi - lo)\n"
        "        w2_after = _segment_scan(w2_after, W[i[j_of_i], j], None, j_of_i, hi - lo, True)\n"
        "        w2_before = 1.0\n"
        "        w2_before_states = _segment_scan(w2_before, W[i[j_of_i], j], None, j_of_i, hi - lo)\n"
        "        j_in_i = _positions(j_of_i, hi - lo)\n"
        "        _scatter(W_bar, (i[j_of_i], j), w2_before_states[j_of_i, j_in_i] * w2_after[j_of_i, j_in_i + 1])"
        "  # w2 = prod(W[i][j] for j in range(len(W, 1)))\n"
        "    return (W_bar,)"
    )


def flattened(results) -> list:
    """The arrays and numbers of nested result tuples, in order."""
    if isinstance(results, tuple):
        return [item for result in results for item in flattened(result)]
    return [results]


@pytest.mark.parametrize("n", [2, 3, 10, 1000])
def test_jvp_and_hvp_of_rosenbrock_equal_scipy(n):
    from scipy.optimize import rosen, rosen_der, rosen_hess_prod

    rng = numpy.random.default_rng(n)
    x, v = rng.uniform(-2, 2, n), rng.uniform(-1, 1, n)
    value, derivative = symdiff.compile_jvp(ROSENBROCK, backend="numpy")([x], [v])
    assert math.isclose(value, rosen(x), rel_tol=1e-12)
    assert math.isclose(derivative, rosen_der(x) @ v, rel_tol=1e-12)
    value, (gradient,), (product,) = symdiff.compile_hessian(ROSENBROCK, backend="numpy").hvp([x], [v])
    assert type(product) is numpy.ndarray and product.shape == (n,)
    assert math.isclose(value, rosen(x), rel_tol=1e-12)
    assert relative_error(gradient, rosen_der(x)) < 1e-12
    assert relative_error(product, rosen_hess_prod(x, v)) < 1e-12


@pytest.mark.parametrize("n", [2, 3, 10])
def test_the_dense_hessian_of_rosenbrock_equals_scipy_rosen_hess(n):
    from scipy.optimize import rosen_der, rosen_hess

    x = numpy.random.default_rng(n).uniform(-2, 2, n)
    _, (gradient,), rows = symdiff.compile_hessian(ROSENBROCK, backend="numpy")(x)
    assert relative_error(gradient, rosen_der(x)) < 1e-12
    assert relative_error(rows, rosen_hess(x)) < 1e-12


TANGENT_PROGRAMS = [(name, source, arguments) for name, source, _, arguments in PROGRAMS] + PRODUCTS


@pytest.mark.parametrize("block", [2, None], ids=["blocks of 2", "default blocks"])
@pytest.mark.parametrize("program", TANGENT_PROGRAMS, ids=[program[0] for program in TANGENT_PROGRAMS])
def test_jvp_and_hvp_agree_with_the_python_backend(program, block, monkeypatch):
    if block is not None:  # tangents of sums and running products cross blocks
        monkeypatch.setattr(numpy_printer, "ARRAY_BLOCK", block)
        monkeypatch.setattr(numpy_printer, "NEST_BLOCK", 3 * block)
    _, source, arguments = program
    rng = numpy.random.default_rng(8)
    point = arguments(rng)
    direction = [rng.normal(size=numpy.shape(value)) if numpy.ndim(value) else rng.normal() for value in point]
    for compile_ in (symdiff.compile_jvp, symdiff.compile_hessian):
        fast, textbook = compile_(source, backend="numpy"), compile_(source)
        call = (
            (lambda f: f(point, direction)) if compile_ is symdiff.compile_jvp else (lambda f: f.hvp(point, direction))
        )
        got, expected = flattened(call(fast)), flattened(call(textbook))
        assert len(got) == len(expected)
        for one, other in zip(got, expected):
            assert numpy.shape(one) == numpy.shape(other)
            assert relative_error(one, other) <= 1e-12, (one, other)


def test_the_hessian_of_a_product_is_exact_where_factors_are_zero():
    """Each Hessian row as an hvp along a unit direction: the products of the other factors
    (prefixes, suffixes and their tangents), never a division; zeros where SymPy has zeros."""
    sympy = pytest.importorskip("sympy")
    n = 4
    x = sympy.symbols(f"x0:{n}")
    a = sympy.Symbol("a")
    product = sympy.prod([x[i] + a for i in range(n)]) * a
    values = [0.5, -1.5, -2.0, 1.0]  # two factors x[i] + a are zero at a = 1.5
    point = {a: 1.5, **dict(zip(x, values))}
    hvp = symdiff.compile_hessian("a*prod(x[i] + a for i in range(len(x)))", backend="numpy").hvp
    variables = [a, *x]
    for row, u in enumerate(variables):
        direction = [float(row == 0), numpy.array([float(row == k + 1) for k in range(n)])]
        value, _, (a_hv, x_hv) = hvp([1.5, numpy.array(values)], direction)
        expected = [float(sympy.diff(product, u, w).subs(point)) for w in variables]
        assert value == float(product.subs(point)) == 0.0
        assert ulps([a_hv, *x_hv], expected) <= 4
        assert [item == 0.0 for item in [a_hv, *x_hv]] == [item == 0.0 for item in expected]


def test_the_tangent_of_a_product_prints_as_scans():
    source = symdiff.compile_jvp("prod(x[i]*a + i for i in range(len(x)))", backend="numpy").source
    jvp = source.split("def jvp(a, x, a_dot, x_dot):\n")[1]
    assert jvp == (
        '    """Value and directional derivative along (x_dot, ...), from one forward sweep."""\n'
        "    # forward sweep\n"
        "    w6 = 1.0\n"
        "    w6_dot = 0.0\n"
        "    for lo, hi in _blocks(len(x), x):\n"
        "        i = numpy.arange(lo, hi)\n"
        "        w3 = x[lo:hi] * a\n"
        "        w3_dot = a * x_dot[lo:hi] + x[lo:hi] * a_dot\n"
        "        w5 = w3 + i\n"
        "        w6_states = _scan(w6, w5, None, hi - lo)\n"
        "        w6_dot_states = _scan(w6_dot, w5, w6_states[:-1] * w3_dot, hi - lo)\n"
        "        w6_dot = w6_dot_states[-1]\n"
        "        w6 = w6_states[-1]\n"
        "    return w6, w6_dot\n"
    )


@pytest.mark.parametrize("block", [2, None], ids=["blocks of 2", "default blocks"])
def test_the_exponential_fit_residual_jacobian_agrees_with_the_python_backend(block, monkeypatch):
    if block is not None:
        monkeypatch.setattr(numpy_printer, "ARRAY_BLOCK", block)
    rng = numpy.random.default_rng(12)
    t = numpy.linspace(0.0, 3.0, 11)
    y = 2.0 * numpy.exp(-0.7 * t) + 0.3 + rng.normal(scale=0.05, size=11)
    fast = symdiff.compile_jacobian(RESIDUALS, wrt=["a", "b", "c"], backend="numpy")
    textbook = symdiff.compile_jacobian(RESIDUALS, wrt=["a", "b", "c"])
    rows = fast(1.5, 0.5, 0.1, t, y)
    assert type(rows) is numpy.ndarray and rows.dtype == numpy.float64 and rows.shape == (11, 3)
    assert relative_error(rows, numpy.array(textbook(1.5, 0.5, 0.1, t, y))) <= 1e-15
    values, both = fast.value_and_jacobian(1.5, 0.5, 0.1, t, y)
    expected_values, _ = textbook.value_and_jacobian(1.5, 0.5, 0.1, t, y)
    assert values.shape == (11,) and relative_error(values, expected_values) <= 1e-15
    assert numpy.array_equal(both, rows)
    assert "jacobian.append(_columns(hi - lo, a_bar, b_bar, 1.0))" in fast.source


def test_the_exponential_fit_jacobian_over_many_points_against_its_formula():
    m = 100_000
    t = numpy.linspace(0.0, 5.0, m)
    y = numpy.cos(t)
    rows = symdiff.compile_jacobian(RESIDUALS, wrt=["a", "b", "c"], backend="numpy")(1.5, 0.5, 0.1, t, y)
    decay = numpy.exp(-0.5 * t)
    assert relative_error(rows, numpy.column_stack([decay, -1.5 * t * decay, numpy.ones(m)])) < 1e-15


@pytest.mark.parametrize("block", [1, None], ids=["blocks of 1", "default blocks"])
def test_a_jacobian_with_arrays_in_wrt_has_one_column_per_element(block, monkeypatch):
    if block is not None:  # each row's adjoint arrays go in blocks of rows
        monkeypatch.setattr(numpy_printer, "ARRAY_BLOCK", block)
        monkeypatch.setattr(numpy_printer, "NEST_BLOCK", 7)
    x = numpy.array([0.5, -1.0, 2.0, 1.5])
    rows = symdiff.compile_jacobian("[10*(x[i + 1] - x[i]^2) for i in range(len(x) - 1)]", backend="numpy")(x)
    expected = numpy.zeros((3, 4))
    for i in range(3):
        expected[i, i], expected[i, i + 1] = -20.0 * x[i], 10.0
    assert numpy.array_equal(rows, expected)
    rng = numpy.random.default_rng(6)
    W, v, y = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=4)
    linear = "[sum(W[i, k]*x[k] for k in range(len(x))) - y[i]*x[0] for i in range(len(y))]"
    values, rows = symdiff.compile_jacobian(linear, wrt=["W", "x"], backend="numpy").value_and_jacobian(W, v, y)
    assert relative_error(values, W @ v - y * v[0]) < 1e-15
    W_columns = numpy.zeros((4, 4, 3))  # d(row i)/dW[j, k] = x[k] where j == i
    for i in range(4):
        W_columns[i, i] = v
    x_columns = W.copy()
    x_columns[:, 0] -= y
    assert numpy.array_equal(rows, numpy.hstack([W_columns.reshape(4, 12), x_columns]))


@pytest.mark.parametrize(
    ("source", "point"),
    [
        ("[prod(x[j] for j in range(i + 1)) for i in range(len(x))]", [numpy.array([1.5, 0.0, 2.0, -1.0])]),
        ("[sum(x[j]*x[i] for j in range(i)) + a for i in range(len(x))]", [0.3, numpy.array([0.5, -1.0, 2.0, 0.25])]),
        (RESIDUALS, [1.2, 0.4, -0.3, numpy.array([0.0, 0.5, 1.0]), numpy.array([1.0, 0.7, 0.4])]),
        (
            "[sum(v[j]*tanh(sum(W[j, k]*X[s, k] for k in range(len(W, 1))) + b[j]) for j in range(len(b))) - y[s]"
            " for s in range(len(y))]",
            [
                numpy.arange(12.0).reshape(3, 4) / 10 - 0.5,
                numpy.cos(numpy.arange(24.0)).reshape(6, 4),
                numpy.array([0.1, -0.2, 0.3]),
                numpy.array([1.0, -1.0, 0.5]),
                numpy.sin(numpy.arange(6.0)),
            ],
        ),
    ],
)
def test_vector_output_jacobians_agree_with_the_python_backend(source, point):
    fast, textbook = symdiff.compile_jacobian(source, backend="numpy"), symdiff.compile_jacobian(source)
    values, rows = fast.value_and_jacobian(*point)
    expected_values, expected_rows = textbook.value_and_jacobian(*point)
    assert relative_error(values, expected_values) <= 1e-15
    assert rows.shape == numpy.array(expected_rows).shape
    assert relative_error(rows, numpy.array(expected_rows)) <= 1e-15
    assert numpy.array_equal(rows == 0.0, numpy.array(expected_rows) == 0.0)


def test_an_empty_vector_output_has_no_rows():
    values, rows = symdiff.compile_jacobian(RESIDUALS, wrt=["a"], backend="numpy").value_and_jacobian(
        1.0, 1.0, 1.0, numpy.zeros(0), numpy.zeros(0)
    )
    assert values.shape == (0,) and rows.shape == (0, 0)


def test_a_jacobian_and_a_jvp_over_dask_data_run_lazily_and_give_the_numpy_results():
    dask_array = pytest.importorskip("dask.array")
    m = 20_000
    t = numpy.linspace(0.0, 5.0, m)
    y = numpy.cos(t)
    lazy_t, lazy_y = dask_array.from_array(t, chunks=3_000), dask_array.from_array(y, chunks=3_000)
    J = symdiff.compile_jacobian(RESIDUALS, wrt=["a", "b", "c"], backend="numpy")
    rows = J(1.5, 0.5, 0.1, lazy_t, lazy_y)
    assert type(rows) is numpy.ndarray and numpy.array_equal(rows, J(1.5, 0.5, 0.1, t, y))
    lazy = load(J.source, "numpy")["jacobian"](1.5, 0.5, 0.1, lazy_t, lazy_y)
    assert type(lazy).__module__.startswith("dask") and lazy.shape == (m, 3)
    jvp = symdiff.compile_jvp(FIT, backend="numpy")
    direction = [1.0, -0.5, 0.25, numpy.zeros(m), numpy.zeros(m)]
    value, derivative = jvp([1.5, 0.5, 0.1, lazy_t, lazy_y], direction)
    expected_value, expected_derivative = jvp([1.5, 0.5, 0.1, t, y], direction)
    assert not type(derivative).__module__.startswith("dask")
    assert relative_error(value, expected_value) < 1e-12 and relative_error(derivative, expected_derivative) < 1e-12


def test_a_value_the_same_for_every_iteration_is_read_in_an_inner_loop():
    # 'float' object is not subscriptable: w11_bar = a * 0.5 ** 9 is one number for every i, and the
    # loop over l inside read it as one per i (the long array fuzzer's find).
    text = "sum(a*(3 + sum(tanh(x[i]) for l in range(len(x))))*sin(a)/512 for i in range(len(x) - 1))"
    point = (-0.3, numpy.array([0.19, 0.7, 0.2]))
    value, (a_bar, x_bar) = symdiff.compile_grad(text, backend="numpy").value_and_grad(*point)
    expected_value, (expected_a, expected_x) = symdiff.compile_grad(text).value_and_grad(*point)
    assert value == pytest.approx(expected_value, rel=1e-13) and a_bar == pytest.approx(expected_a, rel=1e-13)
    assert x_bar == pytest.approx(expected_x, rel=1e-13)
