"""Array programs on the Python backend: x[i], sums over ranges, data, and loops that stay loops.

Gradients are checked against scipy.optimize.rosen_der and against sympy.diff of the sums unrolled
by hand here (independently of symdiff's own unrolling), at small lengths, boundary terms included."""

import math
import subprocess
import sys

import numpy
import pytest
import sympy

import symdiff
from symdiff.errors import ArgumentError

ROSENBROCK = "sum(100*(x[i + 1] - x[i]^2)^2 + (1 - x[i])^2 for i in range(len(x) - 1))"


def relative_error(got, expected) -> float:
    got, expected = numpy.asarray(got, dtype=float), numpy.asarray(expected, dtype=float)
    return float(numpy.max(numpy.abs(got - expected)) / max(1.0, float(numpy.max(numpy.abs(expected)))))


@pytest.mark.parametrize("n", [2, 3, 10, 1000, 10**6])
def test_rosenbrock_gradient_equals_scipy_rosen_der(n):
    from scipy.optimize import rosen, rosen_der

    x = numpy.random.default_rng(n).uniform(-2.0, 2.0, n)
    g = symdiff.compile_grad(ROSENBROCK)
    value, (gradient,) = g.value_and_grad(x)
    assert relative_error(gradient, rosen_der(x)) < 1e-12
    assert math.isclose(value, rosen(x), rel_tol=1e-12)


def test_the_module_is_the_same_at_every_length_and_reads_like_the_textbook():
    g = symdiff.compile_grad(ROSENBROCK)
    grad = g.source.split("def grad(x):\n")[1].split("\n\n\n")[0]
    assert grad == (
        '    """Gradient (d/dx); computes only the forward values the reverse sweep reads."""\n'
        "    # reverse sweep (seed w10_bar = 1)\n"
        "    x_bar = [0.0] * len(x)\n"
        "    for i in range(len(x) - 1):\n"
        "        w3 = x[i] * x[i]\n"
        "        w4 = x[i + 1] - w3\n"
        "        w7 = 1.0 - x[i]\n"
        "        w4_bar = 200.0 * w4  # w5 = w4 ^ 2\n"
        "        x_bar[i] -= 2.0 * (w7 + w4_bar * x[i])  # w7 = 1 - x[i]; w3 = x[i] ^ 2\n"
        "        x_bar[i + 1] += w4_bar  # w4 = x[i + 1] - w3\n"
        "    return (x_bar,)"
    )
    assert "import" not in g.source.replace("from math import", "")


def test_the_generated_module_passes_ruff_and_runs_standalone(tmp_path):
    g = symdiff.compile_grad("log(sum(exp(x[i]) for i in range(len(x))))")
    path = tmp_path / "logsumexp.py"
    g.save(path)
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", str(path)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    run = subprocess.run(
        [sys.executable, "-c", "import logsumexp; print(logsumexp.grad([1.0, 2.0, 3.0]))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    weights = [math.exp(k) / (math.exp(1) + math.exp(2) + math.exp(3)) for k in (1, 2, 3)]
    assert run.stdout.strip() == repr((weights,)) or numpy.allclose(eval(run.stdout)[0], weights, rtol=1e-15)


def sympy_gradient(expression, symbols):
    return [sympy.diff(expression, symbol) for symbol in symbols]


def symbols_of(name, n):
    return list(sympy.symbols(f"{name}0:{n}"))


def assert_matches(got, expected, point, rel=1e-12):
    expected = [float(e.subs(point)) for e in expected]
    assert relative_error(got, expected) < rel, (got, expected)


def test_exponential_fit_with_data_and_scalar_parameters():
    m = 5
    t, y = symbols_of("t", m), symbols_of("y", m)
    a, b, c = sympy.symbols("a b c")
    objective = sum((a * sympy.exp(-b * t[i]) + c - y[i]) ** 2 for i in range(m))
    rng = numpy.random.default_rng(1)
    tv, yv = rng.uniform(0, 3, m), rng.uniform(0, 2, m)
    point = {a: 1.5, b: 0.7, c: 0.2, **dict(zip(t, tv)), **dict(zip(y, yv))}
    g = symdiff.compile_grad("sum((a*exp(-b*t[i]) + c - y[i])^2 for i in range(len(t)))", wrt=["a", "b", "c"])
    assert g.inputs == ("a", "b", "c", "t", "y")
    assert_matches(g(1.5, 0.7, 0.2, tv, yv), sympy_gradient(objective, [a, b, c]), point)
    assert_matches(g(a=1.5, b=0.7, c=0.2, t=list(tv), y=tuple(yv)), sympy_gradient(objective, [a, b, c]), point)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_logsumexp_and_a_mean_inside_a_definition(n):
    x = symbols_of("x", n)
    rng = numpy.random.default_rng(n)
    values = rng.uniform(-1, 1, n)
    point = dict(zip(x, values))
    lse = symdiff.compile_grad("log(sum(exp(x[i]) for i in range(len(x))))")
    (gradient,) = lse(values)
    assert_matches(gradient, sympy_gradient(sympy.log(sum(sympy.exp(v) for v in x)), x), point)
    variance = symdiff.compile_grad(
        "m = sum(x[i] for i in range(len(x)))/len(x); sum((x[i] - m)^2 for i in range(len(x)))"
    )
    mean = sum(x) / n
    (gradient,) = variance(values)
    assert_matches(gradient, sympy_gradient(sum((v - mean) ** 2 for v in x), x), point)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_triangular_pairs(n):
    x = symbols_of("x", n)
    values = numpy.arange(n) * 1.3 + 0.1
    energy = sum(1 / (x[i] - x[j]) ** 2 for i in range(n) for j in range(i + 1, n))
    g = symdiff.compile_grad("sum(1/(x[i] - x[j])^2 for i in range(len(x)) for j in range(i + 1, len(x)))")
    value, (gradient,) = g.value_and_grad(values)
    point = dict(zip(x, values))
    assert math.isclose(value, float(energy.subs(point)), rel_tol=1e-12)
    assert_matches(gradient, sympy_gradient(energy, x), point)


def test_a_one_hidden_layer_network_over_its_weights():
    inputs, hidden, samples = 3, 2, 4
    W = sympy.Matrix(hidden, inputs, lambda j, k: sympy.Symbol(f"W{j}_{k}"))
    b, v = symbols_of("b", hidden), symbols_of("v", hidden)
    X = sympy.Matrix(samples, inputs, lambda s, k: sympy.Symbol(f"X{s}_{k}"))
    y = symbols_of("y", samples)
    loss = sum(
        (sum(v[j] * sympy.tanh(sum(W[j, k] * X[s, k] for k in range(inputs)) + b[j]) for j in range(hidden)) - y[s])
        ** 2
        for s in range(samples)
    )
    rng = numpy.random.default_rng(7)
    Wv, bv, vv = rng.normal(size=(hidden, inputs)), rng.normal(size=hidden), rng.normal(size=hidden)
    Xv, yv = rng.normal(size=(samples, inputs)), rng.normal(size=samples)
    point = {W[j, k]: Wv[j, k] for j in range(hidden) for k in range(inputs)}
    point.update({X[s, k]: Xv[s, k] for s in range(samples) for k in range(inputs)})
    point.update(zip(b, bv))
    point.update(zip(v, vv))
    point.update(zip(y, yv))
    g = symdiff.compile_grad(
        "sum((sum(v[j]*tanh(sum(W[j, k]*X[s, k] for k in range(len(W, 1))) + b[j]) for j in range(len(b)))"
        " - y[s])^2 for s in range(len(y)))",
        wrt=["W", "b", "v"],
    )
    W_bar, b_bar, v_bar = g(W=Wv, X=Xv, b=bv, v=vv, y=yv)
    assert numpy.shape(W_bar) == (hidden, inputs)
    assert_matches(numpy.ravel(W_bar), [sympy.diff(loss, W[j, k]) for j in range(hidden) for k in range(inputs)], point)
    assert_matches(b_bar, sympy_gradient(loss, b), point)
    assert_matches(v_bar, sympy_gradient(loss, v), point)


def test_indices_as_numbers_constant_reads_and_reversed_indices():
    n = 4
    x = symbols_of("x", n)
    expression = x[0] * x[1] + sum((i + 1) * x[i] ** 2 for i in range(n)) + sum(x[i] * x[n - 1 - i] for i in range(n))
    g = symdiff.compile_grad(
        "x[0]*x[1] + sum((i + 1)*x[i]^2 for i in range(len(x))) + sum(x[i]*x[len(x) - 1 - i] for i in range(len(x)))"
    )
    values = [0.5, -1.0, 2.0, 3.0]
    (gradient,) = g(values)
    assert_matches(gradient, sympy_gradient(expression, x), dict(zip(x, values)))


def test_a_read_out_of_bounds_raises_and_never_wraps():
    g = symdiff.compile_grad("sum(x[i + 1]*x[i] for i in range(len(x)))")
    with pytest.raises(
        ArgumentError, match=r"x\[i \+ 1\] for i in range\(len\(x\)\) reads x at index 3, past its end \(len 3\)"
    ):
        g([1.0, 2.0, 3.0])
    pairs = symdiff.compile_grad("sum(x[i]*y[i] for i in range(len(x)))")
    with pytest.raises(
        ArgumentError, match=r"y\[i\] for i in range\(len\(x\)\) reads y at index 2, past its end \(len 2\)"
    ):
        pairs([1.0, 2.0, 3.0], [1.0, 2.0])
    assert pairs([1.0, 2.0], [3.0, 4.0, 5.0]) == ([3.0, 4.0], [1.0, 2.0, 0.0])


def test_arguments_of_the_wrong_kind_are_argument_errors():
    g = symdiff.compile_grad("a*sum(x[i] for i in range(len(x)))")
    with pytest.raises(ArgumentError, match="a is a scalar input, got a sequence of 2"):
        g([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ArgumentError, match="x is an array input: pass a sequence of numbers, got float"):
        g(1.0, 2.0)
    with pytest.raises(ArgumentError, match=r"x is a 1-D array input, got an array of shape \(2, 2\)"):
        g(1.0, numpy.ones((2, 2)))
    with pytest.raises(ArgumentError, match="x must hold real numbers"):
        g(1.0, ["a", "b"])


def test_an_empty_range_sums_to_zero():
    g = symdiff.compile_grad(ROSENBROCK)
    assert g.value_and_grad([0.5]) == (0.0, ([0.0],))
    assert g.value_and_grad([]) == (0.0, ([],))


@pytest.mark.parametrize("values", [[1.5, 2.0, 3.0], [1.5, 0.0, 3.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [2.5]])
def test_prod_is_exact_where_factors_are_zero(values):
    n = len(values)
    x = symbols_of("x", n)
    a = sympy.Symbol("a")
    product = sympy.prod([x[i] * a + i for i in range(n)])
    g = symdiff.compile_grad("prod(x[i]*a + i for i in range(len(x)))")
    value, (a_bar, x_bar) = g.value_and_grad(1.0, [v - k for k, v in enumerate(values)])
    point = {a: 1.0, **{x[k]: v - k for k, v in enumerate(values)}}
    # Exactly: the product of the other factors, never the product divided by a factor.
    assert value == float(product.subs(point))
    assert [a_bar, *x_bar] == [float(sympy.diff(product, s).subs(point)) for s in (a, *x)]
    assert " / " not in g.source


def test_a_product_inside_a_sum():
    n, m = 3, 2
    W = sympy.Matrix(n, m, lambda i, j: sympy.Symbol(f"W{i}_{j}"))
    expression = sum(sympy.prod([W[i, j] for j in range(m)]) for i in range(n))
    values = numpy.array([[1.0, 2.0], [0.0, 3.0], [-1.5, 0.5]])
    g = symdiff.compile_grad("sum(prod(W[i, j] for j in range(len(W, 1))) for i in range(len(W)))")
    (gradient,) = g(values)
    point = {W[i, j]: values[i, j] for i in range(n) for j in range(m)}
    assert numpy.ravel(gradient).tolist() == [
        float(sympy.diff(expression, W[i, j]).subs(point)) for i in range(n) for j in range(m)
    ]


def test_a_vector_output_gives_one_jacobian_row_per_index():
    m = 4
    t, y = symbols_of("t", m), symbols_of("y", m)
    a, b, c = sympy.symbols("a b c")
    residuals = [a * sympy.exp(-b * t[i]) + c - y[i] for i in range(m)]
    rng = numpy.random.default_rng(3)
    tv, yv = rng.uniform(0, 2, m), rng.uniform(0, 1, m)
    point = {a: 1.2, b: 0.4, c: -0.3, **dict(zip(t, tv)), **dict(zip(y, yv))}
    J = symdiff.compile_jacobian("[a*exp(-b*t[i]) + c - y[i] for i in range(len(t))]", wrt=["a", "b", "c"])
    values, rows = J.value_and_jacobian(1.2, 0.4, -0.3, tv, yv)
    assert len(rows) == m and all(len(row) == 3 for row in rows)
    for row, residual, value in zip(rows, residuals, values):
        assert_matches(row, sympy_gradient(residual, [a, b, c]), point)
        assert math.isclose(value, float(residual.subs(point)), rel_tol=1e-12)
    assert J(1.2, 0.4, -0.3, tv, yv) == rows


def test_an_array_in_wrt_gives_one_jacobian_column_per_element():
    n = 4
    x = symbols_of("x", n)
    residuals = [10 * (x[i + 1] - x[i] ** 2) for i in range(n - 1)]
    values = [0.5, -1.0, 2.0, 1.5]
    J = symdiff.compile_jacobian("[10*(x[i + 1] - x[i]^2) for i in range(len(x) - 1)]")
    rows = J(values)
    point = dict(zip(x, values))
    assert [list(row) for row in rows] == [[float(sympy.diff(r, v).subs(point)) for v in x] for r in residuals]


@pytest.mark.parametrize("n", [2, 3, 10])
def test_jvp_hvp_and_the_hessian_of_rosenbrock_equal_scipy(n):
    from scipy.optimize import rosen_der, rosen_hess, rosen_hess_prod

    rng = numpy.random.default_rng(n)
    x, v = rng.uniform(-2, 2, n), rng.uniform(-1, 1, n)
    value, derivative = symdiff.compile_jvp(ROSENBROCK)([x], [v])
    assert math.isclose(derivative, rosen_der(x) @ v, rel_tol=1e-12)
    H = symdiff.compile_hessian(ROSENBROCK)
    _, (gradient,), (product,) = H.hvp([x], [v])
    assert relative_error(gradient, rosen_der(x)) < 1e-12
    assert relative_error(product, rosen_hess_prod(x, v)) < 1e-12
    _, _, rows = H(x)
    assert relative_error(rows, rosen_hess(x)) < 1e-12


def test_the_hessian_of_a_product_with_scalars_and_arrays_in_wrt():
    n = 3
    x = symbols_of("x", n)
    a = sympy.Symbol("a")
    product = sympy.prod([x[i] + a for i in range(n)]) * a
    values = [0.5, 0.0, -2.0]
    point = {a: 1.5, **dict(zip(x, values))}
    H = symdiff.compile_hessian("a*prod(x[i] + a for i in range(len(x)))")
    value, (a_bar, x_bar), rows = H(1.5, values)
    variables = [a, *x]
    assert value == float(product.subs(point))
    assert [list(row) for row in rows] == [
        [float(sympy.diff(product, u, w).subs(point)) for w in variables] for u in variables
    ]
    direction = [0.25, [1.0, -1.0, 0.5]]
    _, _, (a_hv, x_hv) = H.hvp([1.5, values], direction)
    flat_direction = numpy.array([0.25, 1.0, -1.0, 0.5])
    assert relative_error([a_hv, *x_hv], numpy.array(rows) @ flat_direction) < 1e-12
    with pytest.raises(ArgumentError, match=r"the direction's x has shape \(2,\), the point's \(3,\)"):
        H.hvp([1.5, values], [0.25, [1.0, 2.0]])


def test_the_jvp_module_reads_like_the_textbook():
    j = symdiff.compile_jvp("sum(x[i]^2 for i in range(len(x)))")
    assert j.source.split("def jvp(x, x_dot):\n")[1] == (
        '    """Value and directional derivative along (x_dot, ...), from one forward sweep."""\n'
        "    # forward sweep\n"
        "    w3 = 0.0\n"
        "    w3_dot = 0.0\n"
        "    for i in range(len(x)):\n"
        "        w2 = x[i] * x[i]\n"
        "        w2_dot = 2.0 * x[i] * x_dot[i]\n"
        "        w3 += w2\n"
        "        w3_dot += w2_dot\n"
        "    return w3, w3_dot\n"
    )


def test_an_array_program_has_no_unsimplified_sweep_and_says_so():
    # It returned a gradient of 0.0 for x: reverse() writes no loops.
    with pytest.raises(symdiff.SymdiffError, match="an array program has no unsimplified sweep"):
        symdiff.compile_grad("sum(x[i]^2 for i in range(len(x)))", simplified=False)
    with pytest.raises(symdiff.SymdiffError, match="an array program has no unsimplified sweep"):
        symdiff.gradient_source("x[0]*x[1]", simplified=False)


def test_a_loop_index_named_like_a_generated_name_or_a_builtin_is_renamed():
    # `for a_bar in range(3)` overwrote the adjoint a_bar: d/da was 4.0, not 3.0.
    g = symdiff.compile_grad("sum(a*a_bar for a_bar in range(3))")
    assert g(2.0) == (3.0,)
    assert "for a_bar_ in range(3):" in g.source
    (gradient,) = symdiff.compile_grad("sum(x[w3]*w3 for w3 in range(len(x)))")([1.0, 2.0, 3.0])
    assert gradient == [0.0, 1.0, 2.0]
    reversed_input = symdiff.compile_grad("prod(x[i]*reversed for i in range(len(x)))")
    assert reversed_input(2.0, [1.0, 3.0]) == (12.0, [12.0, 4.0])  # r^2 x0 x1


def test_a_length_is_a_float_where_it_is_the_whole_derivative():
    # d/da of len(x)*a was the int 2.
    (a_bar, _) = symdiff.compile_grad("len(x)*a + x[0]")(2.0, [1.0, 3.0])
    assert type(a_bar) is float and a_bar == 2.0


def test_lengths_checked_once_are_not_checked_again_but_new_ones_are():
    g = symdiff.compile_grad("sum(x[i + 1]*x[i] for i in range(len(x) - 1)) + y[2]")
    assert g([1.0, 2.0], [0.0, 0.0, 5.0]) == ([2.0, 1.0], [0.0, 0.0, 1.0])
    assert g([3.0, 2.0], [1.0, 0.0, 5.0]) == ([2.0, 3.0], [0.0, 0.0, 1.0])
    with pytest.raises(ArgumentError, match=r"y\[2\] reads y at index 2, past its end \(len 2\)"):
        g([1.0, 2.0], [0.0, 0.0])


# Programs the array fuzzer found reading a value that no line had computed (NameError), each in
# one of the places a recomputed loop reads from: a term summed by an inner loop in value_and_grad,
# a line recomputed in an inner loop, and a term computed in place in a reverse line.
RECOMPUTED = [
    "m = sum(x[l]^2 for l in range(len(x)))/len(x); sum((atan(b) + y[j]) for j in range(len(y)) for k in range(len(x)))",
    "sum(((exp(W[j, k]/4) + (y[j] - a)))^2 for j in range(len(y)) for k in range(len(x))) + sum(sin(x[i]) for i in range(len(x)))",
    "m = sum(sin(x[l]) for l in range(len(x))); sum((x[k] - (y[j] + 0.5)) for j in range(len(y)) for k in range(len(x)))",
    "m = sum(sin(x[l]) for l in range(len(x))); sum(exp(a/4) for i in range(len(x)))",
    "sum(((cos(x[i]) + sum(y[j] for l in range(len(x)))))^3 for i in range(len(x)) for j in range(i + 1, len(x)))",
]


@pytest.mark.parametrize("text", RECOMPUTED)
def test_every_value_a_recomputed_loop_reads_is_computed(text):
    from symdiff.core.pipeline import build_tape
    from symdiff.core.unroll import elements, scalar, unroll

    tape = build_tape(text)
    shapes = {name: (3,) * ndim for name, ndim in tape.arrays}
    symbols = {name: elements(name, shapes[name]) if name in shapes else [scalar(name)] for name in tape.inputs}
    rng = numpy.random.default_rng(5)
    point = {s: float(rng.uniform(-0.9, 0.9)) for name in tape.inputs for s in symbols[name]}
    arguments = [
        numpy.reshape([point[s] for s in symbols[name]], shapes[name]) if name in shapes else point[symbols[name][0]]
        for name in tape.inputs
    ]
    (function,) = unroll(tape, shapes)
    expected = [float(sympy.diff(function, s).subs(point)) for name in tape.inputs for s in symbols[name]]
    g = symdiff.compile_grad(text)
    for value, gradient in (g.value_and_grad(*arguments), (g.value(*arguments), g(*arguments))):
        assert math.isclose(value, float(function.subs(point)), rel_tol=1e-12)
        assert relative_error([v for part in gradient for v in numpy.ravel(part)], expected) < 1e-12


def test_the_hessian_of_a_loop_over_scalars_only():
    # KeyError 'hessian': a program with loops but no array input has an hvp module too.
    value, (a_bar,), rows = symdiff.compile_hessian("prod(a + i for i in range(4))")(1.0)
    a = sympy.Symbol("a")
    product = sympy.prod([a + i for i in range(4)])
    assert value == 24.0 and a_bar == float(sympy.diff(product, a).subs(a, 1.0))
    assert rows == ((float(sympy.diff(product, a, 2).subs(a, 1.0)),),)


def test_a_tangent_set_in_a_loop_that_nothing_in_it_reads_is_not_computed():
    # The loop over k that only computes the product w4 carried w3_dot, read only by the two loops
    # after it, which compute their own; the forward sweep carried w5_dot, which only the reverse
    # sweep reads, after computing its own.
    hvp = symdiff.compile_hessian("sum(prod(W[j, k] + x[k] for k in range(j, len(x))) for j in range(len(W)))").source
    assert hvp.count("w3_dot = W_dot[j][k] + x_dot[k]") == 2
    pairs = symdiff.compile_hessian(
        "sum(x[2*i + 1] for i in range(len(x) - 3))"
        " - sum(sum(a for l in range(len(x)))*x[i] - x[j] for i in range(len(x)) for j in range(i + 1, len(x)))"
    ).source
    forward = pairs.split("# forward sweep")[1].split("# reverse sweep")[0]
    assert "w5 += a" in forward and "_dot" not in forward


def test_the_scan_of_an_inner_products_tangent_is_kept_where_its_loop_reads_it():
    # Dropping tangents per loop once took the product's update w5_dot = w5_dot * w4 + ... (an
    # update, not a new value) for a value of the inner loop only: every backend's hvp was wrong.
    text = "prod(1 + y[j]^3/4 for i in range(len(x)) for j in range(i + 1, len(x))) + sum(sin(x[i]) for i in range(len(x)))"
    n = 3
    x, y = symbols_of("x", n), symbols_of("y", n)
    f = sympy.prod([1 + y[j] ** 3 / 4 for i in range(n) for j in range(i + 1, n)]) + sum(sympy.sin(v) for v in x)
    variables = [*x, *y]
    point = dict(zip(variables, [0.3, -0.2, 0.5, 0.7, -0.4, 0.6]))
    direction = [1.0, 0.5, -0.25, 0.3, -1.0, 2.0]
    expected = [
        float(sum(sympy.diff(f, u, w).subs(point) * d for w, d in zip(variables, direction))) for u in variables
    ]
    for backend in ("python", "numpy", "c"):
        _, _, (x_hv, y_hv) = symdiff.compile_hessian(text, backend=backend).hvp(
            [[0.3, -0.2, 0.5], [0.7, -0.4, 0.6]], [direction[:3], direction[3:]]
        )
        assert relative_error([*x_hv, *y_hv], expected) < 1e-12, backend
