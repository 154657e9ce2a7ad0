"""The C backend prints array programs (issue 21): plain `for` loops over the Program's ranges, each
array a pointer and its lengths, the gradient into the caller's arrays. Rosenbrock's gradient equals
scipy's rosen_der; every example gives the Python backend's bits; reads out of bounds are refused
before the call; the generated C compiles cleanly under strict flags."""

from __future__ import annotations

import subprocess

import numpy
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
from support import needs_compiler

import symdiff
from symdiff.api import build, build_tape
from symdiff.codegen.c import array_module, find_compiler, render_c, render_program
from symdiff.core.derivatives import array_hvp_program, array_jvp_program, rows_jacobian_program
from symdiff.errors import ArgumentError

pytestmark = [needs_compiler, pytest.mark.usefixtures("private_c_cache")]

STRICT = ("-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror")
ROSENBROCK = "sum(100*(x[i + 1] - x[i]^2)^2 + (1 - x[i])^2 for i in range(len(x) - 1))"
FIT = "sum((a*exp(-b*t[i]) + c - y[i])^2 for i in range(len(t)))"
NETWORK = "sum((sum(W[j, k]*x[k] for k in range(len(x))) - y[j])^2 for j in range(len(y)))"

# (expression, wrt, inputs by name: a shape for an array, a number for a scalar)
PROGRAMS = [
    (ROSENBROCK, None, {"x": (7,)}),
    (FIT, ["a", "b", "c"], {"a": 1.5, "b": 0.7, "c": -0.2, "t": (9,), "y": (9,)}),
    (FIT, None, {"a": 1.5, "b": 0.7, "c": -0.2, "t": (9,), "y": (9,)}),
    ("log(sum(exp(x[i]) for i in range(len(x))))", None, {"x": (6,)}),
    ("m = sum(x[i] for i in range(len(x)))/len(x); sum((x[i] - m)^2 for i in range(len(x)))", None, {"x": (5,)}),
    ("sum(1/(x[i] - x[j])^2 for i in range(len(x)) for j in range(i + 1, len(x)))", None, {"x": (6,)}),
    (NETWORK, None, {"W": (3, 4), "x": (4,), "y": (3,)}),
    ("x[0]*x[1] + sum((i + 1)*x[i]^2 for i in range(len(x)))", None, {"x": (5,)}),
    ("sum(x[i]*x[len(x) - 1 - i] for i in range(len(x))) + len(x)*a", None, {"a": 0.3, "x": (5,)}),
    ("sum(sin(x[2*i + 1])*cos(x[2*i]) for i in range(len(x) - 1 - len(x) + 3))", None, {"x": (6,)}),
    ("sum(a*i for i in range(5))", None, {"a": 2.5}),
    (
        "sum(sum(sum(T[i, j, k]*x[k] for k in range(len(T, 2))) for j in range(len(T, 1))) for i in range(len(T)))",
        None,
        {"T": (2, 3, 4), "x": (4,)},
    ),
    ("prod(x[i] for i in range(len(x)))", None, {"x": (6,)}),
    ("sum(prod(W[j, k] + x[k] for k in range(j, len(x))) for j in range(len(W)))", None, {"W": (3, 4), "x": (4,)}),
    ("log(prod(exp(x[i]) + a for i in range(1, len(x))))*a", None, {"a": 0.7, "x": (5,)}),
    (  # the reverse loop over k recomputes w3 = W[i, k]*x[k], which only the forward one reads
        "sum(sin(sum(W[i, k]*x[k] for k in range(len(x))))*prod(x[k] + 2 for k in range(i)) for i in range(len(W)))",
        None,
        {"W": (3, 4), "x": (4,)},
    ),
]


def _arguments(inputs: dict, seed: int) -> dict:
    rng = numpy.random.default_rng(seed)
    return {
        name: rng.uniform(-1.5, 1.5, shape) if isinstance(shape, tuple) else shape for name, shape in inputs.items()
    }


def _same_bits(c_result, python_result) -> bool:
    """A float or a NumPy array from C, against a float or a list (of rows) from Python."""
    if isinstance(c_result, tuple):
        return len(c_result) == len(python_result) and all(map(_same_bits, c_result, python_result))
    if isinstance(c_result, numpy.ndarray):
        expected = numpy.array(python_result, dtype=numpy.float64)
        return c_result.shape == expected.shape and c_result.tobytes() == expected.tobytes()
    return type(c_result) is float and numpy.float64(c_result).tobytes() == numpy.float64(python_result).tobytes()


@pytest.mark.parametrize("n", [2, 3, 10, 1000])
def test_rosenbrock_gradient_equals_rosen_der(n):
    g = symdiff.compile_grad(ROSENBROCK, backend="c")
    x = numpy.random.default_rng(n).uniform(-2.0, 2.0, n)
    (gradient,) = g(x)
    expected = rosen_der(x)
    assert gradient.shape == (n,) and gradient.dtype == numpy.float64
    assert numpy.allclose(gradient, expected, rtol=1e-12, atol=1e-12 * abs(expected).max())
    value, (both,) = g.value_and_grad(x)
    assert value == pytest.approx(rosen(x), rel=1e-12) and numpy.array_equal(both, gradient)
    assert g.value(x) == value


@pytest.mark.parametrize("text, wrt, inputs", PROGRAMS, ids=[f"{number}" for number in range(len(PROGRAMS))])
def test_c_gives_the_python_backends_bits(text, wrt, inputs):
    c = symdiff.compile_grad(text, wrt=wrt, backend="c")
    python = symdiff.compile_grad(text, wrt=wrt)
    assert c.inputs == python.inputs == tuple(inputs)
    for seed in range(3):
        arguments = _arguments(inputs, seed)
        lists = {
            name: value.tolist() if isinstance(value, numpy.ndarray) else value for name, value in arguments.items()
        }
        assert _same_bits(c(**arguments), python(**lists))
        assert _same_bits(c.value(**arguments), python.value(**lists))
        assert _same_bits(c.value_and_grad(*arguments.values()), python.value_and_grad(*lists.values()))
        assert _same_bits(c(*lists.values()), python(*lists.values()))  # lists convert as arrays do


def test_a_products_gradient_is_exact_at_zero_factors():
    g = symdiff.compile_grad("prod(x[i] for i in range(len(x)))", backend="c")
    value, (gradient,) = g.value_and_grad([2.0, 0.0, 3.0, 5.0])
    assert value == 0.0 and gradient.tolist() == [0.0, 30.0, 0.0, 0.0]
    assert g([0.0, 4.0, 0.0])[0].tolist() == [0.0, 0.0, 0.0] and g([7.0])[0].tolist() == [1.0]
    value, (gradient,) = g.value_and_grad([])
    assert value == 1.0 and gradient.shape == (0,)
    assert "static int symdiff_ones(double **buffer, long size)" in g.source and "#include <stdlib.h>" in g.source
    assert "    for (long i = x_len - 1; i >= 0; --i) {\n        w2_after[i] = w2_after[i + 1] * x[i];\n" in g.source


def test_exponential_fit_gradient_wrt_the_parameters():
    g = symdiff.compile_grad(FIT, wrt=["a", "b", "c"], backend="c")
    t = numpy.linspace(0.0, 4.0, 200)
    y = 2.0 * numpy.exp(-1.3 * t) + 0.5 + numpy.random.default_rng(1).normal(0.0, 0.01, t.size)
    a, b, c = 1.8, 1.1, 0.4
    r = a * numpy.exp(-b * t) + c - y
    expected = (
        numpy.sum(2 * r * numpy.exp(-b * t)),
        numpy.sum(-2 * r * a * t * numpy.exp(-b * t)),
        numpy.sum(2 * r),
    )
    gradient = g(a, b, c, t, y)
    assert all(type(item) is float for item in gradient)
    assert gradient == pytest.approx(expected, rel=1e-12)
    assert g.value(a, b, c, t=t, y=y) == pytest.approx(numpy.sum(r * r), rel=1e-12)


def test_a_2d_array_is_row_major_and_its_gradient_has_its_shape():
    g = symdiff.compile_grad(NETWORK, backend="c")
    rng = numpy.random.default_rng(5)
    W, x, y = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=3)
    r = W @ x - y
    W_bar, x_bar, y_bar = g(W, x, y)
    assert W_bar.shape == (3, 4) and x_bar.shape == (4,) and y_bar.shape == (3,)
    assert numpy.allclose(W_bar, 2 * numpy.outer(r, x), rtol=1e-13)
    assert numpy.allclose(x_bar, 2 * W.T @ r, rtol=1e-13) and numpy.allclose(y_bar, -2 * r, rtol=1e-13)
    assert numpy.array_equal(g(numpy.asfortranarray(W), x, y)[0], W_bar)  # any layout is read as rows
    source = g.source
    assert "const double *restrict W, long W_len0, long W_len1" in source
    assert "W_bar[j * W_len1 + k] += w6_bar * x[k];  // w3 = W[j, k] * x[k]" in source


@pytest.mark.parametrize(
    "text, arguments, message",
    [
        ("sum(x[i + 1] for i in range(len(x)))", ([1.0, 2.0, 3.0],), "reads x at index 3, past its end (len 3)"),
        ("sum(x[i - 1] for i in range(len(x)))", ([1.0, 2.0],), "reads x at index -1, before its start (len 2)"),
        (FIT, (1.0, 1.0, 1.0, [0.0, 1.0, 2.0], [1.0, 2.0]), "reads y at index 2, past its end (len 2)"),
        (NETWORK, (numpy.ones((2, 3)), numpy.ones(3), numpy.ones(3)), "reads W at index 2, past its end (len 2)"),
    ],
)
def test_a_read_out_of_bounds_is_refused_before_the_call(text, arguments, message):
    g = symdiff.compile_grad(text, backend="c")
    for entry in (g, g.value, g.value_and_grad):
        with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
            entry(*arguments)


def test_wrong_arguments_are_argument_errors():
    g = symdiff.compile_grad(FIT, wrt=["a", "b", "c"], backend="c")
    t = [0.0, 1.0]
    with pytest.raises(ArgumentError, match="t is a 1-D array input, got an array of shape"):
        g(1.0, 1.0, 1.0, [[0.0, 1.0]], t)
    with pytest.raises(ArgumentError, match="a is a scalar input, got a sequence of 2"):
        g(t, 1.0, 1.0, t, t)
    with pytest.raises(ArgumentError, match="expected 5 values"):
        g(1.0, t, t)


def test_save_writes_the_c_source_and_the_header_declares_the_abi(tmp_path):
    g = symdiff.compile_grad(ROSENBROCK, backend="c")
    g.save(tmp_path / "rosenbrock.c")
    assert (tmp_path / "rosenbrock.c").read_text() == g.source
    assert (
        "double symdiff_value_and_grad(const double *SYMDIFF_RESTRICT x, long x_len, double *SYMDIFF_RESTRICT x_bar);"
        in g.header
    )
    assert "    x[i + 1] for i in range(len(x) - 1) reads x from 1 to len(x) - 1\n" in g.source


def test_empty_and_read_only_arrays():
    g = symdiff.compile_grad("sum(x[i]^2 for i in range(len(x)))", backend="c")
    value, (gradient,) = g.value_and_grad(numpy.empty(0))
    assert value == 0.0 and gradient.shape == (0,)
    x = numpy.array([1.0, -2.0, 3.0])
    x.flags.writeable = False
    assert g(x)[0].tolist() == [2.0, -4.0, 6.0] and g(x[::-1])[0].tolist() == [6.0, -4.0, 2.0]


def test_batch_and_point_arrays_are_refused_for_array_programs():
    g = symdiff.compile_grad(ROSENBROCK, backend="c")
    refusal = r"not available for array programs: each call takes whole arrays \(call g\(x\) once per point\)"
    with pytest.raises(ArgumentError, match="batch is " + refusal):
        g.batch(numpy.ones((1, 3)))
    with pytest.raises(ArgumentError, match="grad_array is " + refusal):
        g.grad_array(numpy.ones(3))
    with pytest.raises(ArgumentError, match="value_array is " + refusal):
        g.value_array(numpy.ones(3))


def test_the_abi_takes_each_array_with_its_lengths_and_writes_the_gradient_into_the_callers_arrays():
    source, header = render_c(build(FIT.replace("y[i]", "y[i]*x[i]"), wrt=["a", "x", "c"]).adjoint)
    params = (
        "double a, double b, double c, const double *restrict t, long t_len, const double *restrict x, long x_len, "
        "const double *restrict y, long y_len"
    )
    assert f"double symdiff_f({params})" in source
    assert f"void symdiff_grad({params}, double *restrict grad, double *restrict x_bar)" in source
    assert f"double symdiff_value_and_grad({params}, double *restrict grad, double *restrict x_bar)" in source
    assert "    for (long e = 0; e < x_len; ++e) x_bar[e] = 0.0;\n" in source
    assert "    grad[0] = a_bar;\n    grad[1] = c_bar;\n" in source
    assert "void symdiff_grad(double a, double b, double c, const double *SYMDIFF_RESTRICT t, long t_len," in header
    assert "    x[i] for i in range(len(t)) reads x from 0 to len(t) - 1\n" in source


def test_names_the_user_took_are_not_reused():
    # C's `double`, the gradient's `grad`, a length's `v_len`, an index named as a length would be.
    text = "sum(v[x_len]*v_len + grad*v[x_len] + x_len*double for x_len in range(len(v)))"
    module = array_module(build(text).adjoint)
    source = render_c(build(text).adjoint)[0]
    params = "double double_, double grad_, const double *restrict v, long v_len_, double v_len"
    assert f"double symdiff_f({params})" in source
    assert f"void symdiff_grad({params}, double *restrict grad, double *restrict v_bar)" in source
    assert "    for (long x_len = 0; x_len < v_len_; ++x_len) {\n" in source
    assert "        v_bar[x_len] += grad_ + v_len;  // w6 = grad_ * v[x_len]; w5 = v[x_len] * v_len\n" in source
    assert module.arrays and not module.loops and not module.wrappers
    c, python = symdiff.compile_grad(text, backend="c"), symdiff.compile_grad(text)
    v = [0.5, -1.0, 2.0]
    assert _same_bits(c.value_and_grad(1.25, 3.0, v, 1.5), python.value_and_grad(1.25, 3.0, v, 1.5))


@pytest.mark.parametrize(
    "text, arguments, gradient, index",
    [
        ("sum(a*a_bar for a_bar in range(3))", (2.0,), (3.0,), "a_bar_"),
        ("sum(x[x_bar]*a for x_bar in range(len(x)))", (2.0, [1.0, 2.0]), (3.0, [2.0, 2.0]), "x_bar_"),
        ("prod(x[w2_after] for w2_after in range(len(x)))", ([3.0, 2.0],), ([2.0, 3.0],), "w2_after_"),
    ],
)
def test_an_index_named_as_an_adjoint_or_a_buffer_would_be_is_renamed(text, arguments, gradient, index):
    g = symdiff.compile_grad(text, backend="c")
    assert [item.tolist() if isinstance(item, numpy.ndarray) else item for item in g(*arguments)] == list(gradient)
    assert f"for (long {index} = 0; {index} < " in g.source


@pytest.mark.parametrize("text, wrt, inputs", PROGRAMS, ids=[f"{number}" for number in range(len(PROGRAMS))])
def test_generated_c_compiles_under_strict_flags(text, wrt, inputs, tmp_path):
    source, header = render_c(build(text, wrt=wrt).adjoint, "arrays", "arrays.h")
    (tmp_path / "arrays.c").write_text(source)
    (tmp_path / "arrays.h").write_text(header)
    command = [*find_compiler(), *STRICT, "-c", "arrays.c"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- forward mode, Hessians and vector outputs --------------------------------------------------------------

RESIDUALS = "[a*exp(-b*t[i]) + c - y[i] for i in range(len(t))]"
# (expression, wrt): vector outputs, with arrays in wrt, rows from 1, products in rows, a 2-D W
JACOBIANS = [
    (RESIDUALS, ["a", "b", "c"]),
    (RESIDUALS, None),
    ("[10*(x[i + 1] - x[i]^2) for i in range(len(x) - 1)]", None),
    ("[x[i]*a for i in range(1, len(x))]", ["x", "a"]),
    ("[prod(x[j] for j in range(i + 1)) for i in range(1, len(x))]", None),
    ("[sum(x[j]*x[i] for j in range(i)) + a for i in range(len(x))]", None),
    ("[sum(W[i, k]*x[k] for k in range(len(x))) - y[i]*x[0] for i in range(len(y))]", ["W", "x"]),
    ("m = sum(x[l] for l in range(len(x)))/len(x); [(x[i] - m)^2 for i in range(len(x))]", None),
    ("[sin(sum(W[i, k]*x[k] for k in range(len(x))))*prod(x[k] + 2 for k in range(i)) for i in range(len(W))]", None),
    ("[a*i + b*x[len(x) - 1 - i]^3 for i in range(2, len(x))]", ["b", "x", "a"]),
]


def _point_and_direction(inputs: dict, seed: int) -> tuple[list, list]:
    point = list(_arguments(inputs, seed).values())
    rng = numpy.random.default_rng(seed + 100)
    return point, [rng.normal(size=numpy.shape(value)) if numpy.ndim(value) else rng.normal() for value in point]


def _lists(values) -> list:
    return [value.tolist() if isinstance(value, numpy.ndarray) else value for value in values]


@pytest.mark.parametrize("n", [2, 3, 10, 1000])
def test_jvp_and_hvp_of_rosenbrock_equal_scipy(n):
    rng = numpy.random.default_rng(n)
    x, v = rng.uniform(-2.0, 2.0, n), rng.uniform(-1.0, 1.0, n)
    value, derivative = symdiff.compile_jvp(ROSENBROCK, backend="c")([x], [v])
    assert type(value) is float and type(derivative) is float
    assert value == pytest.approx(rosen(x), rel=1e-12)
    assert derivative == pytest.approx(rosen_der(x) @ v, rel=1e-12, abs=1e-12 * abs(rosen_der(x)).max())
    value, (gradient,), (product,) = symdiff.compile_hessian(ROSENBROCK, backend="c").hvp([x], [v])
    expected = rosen_hess_prod(x, v)
    assert type(product) is numpy.ndarray and product.shape == (n,) and product.dtype == numpy.float64
    assert value == pytest.approx(rosen(x), rel=1e-12)
    assert numpy.allclose(gradient, rosen_der(x), rtol=1e-12, atol=1e-12 * abs(rosen_der(x)).max())
    assert numpy.allclose(product, expected, rtol=1e-12, atol=1e-12 * abs(expected).max())


@pytest.mark.parametrize("n", [2, 3, 10])
def test_the_dense_hessian_of_rosenbrock_equals_scipy_rosen_hess(n):
    x = numpy.random.default_rng(n).uniform(-2.0, 2.0, n)
    value, (gradient,), rows = symdiff.compile_hessian(ROSENBROCK, backend="c")(x)
    expected = rosen_hess(x)
    assert value == pytest.approx(rosen(x), rel=1e-12)
    assert numpy.allclose(gradient, rosen_der(x), rtol=1e-12, atol=1e-12 * abs(rosen_der(x)).max())
    assert numpy.array(rows).shape == (n, n)
    assert numpy.allclose(numpy.array(rows), expected, rtol=1e-12, atol=1e-12 * abs(expected).max())


@pytest.mark.parametrize("text, wrt, inputs", PROGRAMS, ids=[f"{number}" for number in range(len(PROGRAMS))])
def test_jvp_and_hvp_give_the_python_backends_bits(text, wrt, inputs):
    jvp, textbook_jvp = symdiff.compile_jvp(text, backend="c"), symdiff.compile_jvp(text)
    hessian, textbook = symdiff.compile_hessian(text, wrt=wrt, backend="c"), symdiff.compile_hessian(text, wrt=wrt)
    for seed in range(2):
        point, direction = _point_and_direction(inputs, seed)
        assert _same_bits(jvp(point, direction), textbook_jvp(_lists(point), _lists(direction)))
        assert _same_bits(hessian.hvp(point, direction), textbook.hvp(_lists(point), _lists(direction)))


def test_the_hessian_of_a_product_is_exact_where_factors_are_zero():
    """Rows from hvps along unit directions: products of the other factors (prefixes, suffixes and
    their tangents), never a division, so zeros where SymPy has zeros; the Python backend's bits."""
    sympy = pytest.importorskip("sympy")
    text = "a*prod(x[i] + a for i in range(len(x)))"
    hessian, textbook = symdiff.compile_hessian(text, backend="c"), symdiff.compile_hessian(text)
    point = (1.5, [0.5, -1.5, -2.0, 1.0])  # the factor x[1] + a is zero
    a, x = sympy.Symbol("a"), sympy.symbols("x0:4")
    product = a * sympy.prod([x[i] + a for i in range(4)])
    at = {a: point[0], **dict(zip(x, point[1]))}
    variables = [a, *x]
    value, (a_bar, x_bar), rows = hessian(*point)
    assert value == 0.0
    assert [a_bar, *x_bar.tolist()] == [float(sympy.diff(product, u).subs(at)) for u in variables]
    assert numpy.array(rows).tolist() == [
        [float(sympy.diff(product, u, w).subs(at)) for w in variables] for u in variables
    ]
    assert _same_bits((value, (a_bar, x_bar), rows), textbook(*point))
    assert "static int symdiff_zeros(double **buffer, long size)" in hessian.source
    assert "    if (!symdiff_zeros(&w4_after_dot, x_len + 1)) goto out_of_memory;\n" in hessian.source


# A loop recomputing a sum or a product's factors carries their tangents where only a later loop
# reads them (the forward sweep's w5_dot below; /work/notes/requests-c.md 5): in C each is a block's
# variable nothing reads, left out with whatever only it read; found by the array fuzzer (these hvps
# did not compile, or not under -Werror).
UNREAD_TANGENTS = [
    (
        "sum(x[2*i + 1] for i in range(len(x) - 3))"
        " - sum(sum(a for l in range(len(x)))*x[i] - x[j] for i in range(len(x)) for j in range(i + 1, len(x)))",
        {"a": 0.4, "x": (5,)},
        "            double w5 = 0.0;\n            for (long l = 0; l < x_len; ++l) {\n                w5 += a;\n            }\n",
    ),
    (
        "sum(prod(W[j, k] + x[k] for k in range(j, len(x))) for j in range(len(W)))",
        {"W": (3, 4), "x": (4,)},
        "            const double w3 = W[j * W_len1 + k] + x[k];\n            w4 *= w3;\n",
    ),
    (  # w4_dot reads w2_dot, and nothing reads w4_dot in the forward sweep
        "sum((1/(1 + x[i]^2))^2 for i in range(len(x))) + sum(x[i] for i in range(len(x)))",
        {"x": (4,)},
        "        const double w2 = x[i] * x[i];\n        const double w3 = 1.0 + w2;\n",
    ),
    (  # w3_dot is read by w4_dot += w3_dot two loops down, and nothing reads w4_dot there
        "sum(sum(x[i]^3 for l in range(len(x)))*a for i in range(len(x)) for j in range(i + 1, len(x)))"
        " - prod(1 + y[i] for i in range(len(x)))",
        {"a": 0.6, "x": (4,), "y": (4,)},
        "        const double w3 = pow(x[i], 3);\n        double w6 = 0.0;\n",
    ),
]


@pytest.mark.parametrize("text, inputs, loop", UNREAD_TANGENTS, ids=["inner sum", "product", "chain", "nested"])
def test_a_tangent_only_another_loop_reads_is_left_out_of_a_loop(text, inputs, loop, tmp_path):
    hessian, textbook = symdiff.compile_hessian(text, backend="c"), symdiff.compile_hessian(text)
    point, direction = _point_and_direction(inputs, 3)
    assert _same_bits(hessian.hvp(point, direction), textbook.hvp(_lists(point), _lists(direction)))
    assert loop in hessian.source  # the value alone, in the loop computing it before the loop reading it
    (tmp_path / "hvp.c").write_text(hessian.source)
    done = subprocess.run([*find_compiler(), *STRICT, "-c", "hvp.c"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_jvp_abi_takes_the_direction_after_the_inputs():
    source = symdiff.compile_jvp(FIT, backend="c").source
    params = "double a, double b, double c, const double *restrict t, long t_len, const double *restrict y, long y_len"
    directions = "double a_dot, double b_dot, double c_dot, const double *restrict t_dot, const double *restrict y_dot"
    assert f"double symdiff_jvp({params}, {directions}, double *restrict derivative)" in source
    assert "        const double w11_dot = w9_dot - y_dot[i];\n" in source
    assert "    derivative[0] = w13_dot;\n    return w13;\n" in source


def test_hvp_abi_writes_the_gradient_and_the_product_into_the_callers_arrays():
    source = symdiff.compile_hessian("a*sum(x[i]^2 for i in range(len(x)))", backend="c").source
    assert (
        "double symdiff_hvp(double a, const double *restrict x, long x_len, double a_dot, const double *restrict x_dot, "
        "double *restrict grad, double *restrict x_bar, double *restrict hvp, double *restrict x_bar_dot)"
    ) in source
    assert "    for (long e = 0; e < x_len; ++e) x_bar_dot[e] = 0.0;\n" in source
    assert "        x_bar_dot[i] += 2.0 * x[i] * a_dot + a * (2.0 * x_dot[i]);  // w3 = x[i] ^ 2\n" in source
    assert "    grad[0] = a_bar;\n    hvp[0] = w4_dot;\n    return w5;\n" in source


@pytest.mark.parametrize("text, wrt", JACOBIANS, ids=[f"{number}" for number in range(len(JACOBIANS))])
def test_vector_output_jacobians_give_the_python_backends_bits(text, wrt):
    c, python = symdiff.compile_jacobian(text, wrt=wrt, backend="c"), symdiff.compile_jacobian(text, wrt=wrt)
    shapes = {"a": 1.2, "b": 0.4, "c": -0.3, "t": (6,), "x": (5,), "y": (6,)}
    if "W" in c.inputs:
        shapes |= {"W": (4, 5), "y": (4,)}
    inputs = {name: shapes[name] for name in c.inputs}
    for seed in range(2):
        point = list(_arguments(inputs, seed).values())
        rows, expected = c(*point), python(*_lists(point))
        columns = sum(numpy.size(point[c.inputs.index(name)]) for name in python.wrt)
        assert rows.shape == (len(expected), columns)
        assert _same_bits(rows, expected)
        values, both = c.value_and_jacobian(*point)
        assert _same_bits((values, both), python.value_and_jacobian(*_lists(point)))


def test_the_exponential_fit_residual_jacobian_against_its_formula():
    t = numpy.linspace(0.0, 5.0, 10_000)
    y = numpy.cos(t)
    values, rows = symdiff.compile_jacobian(RESIDUALS, wrt=["a", "b", "c"], backend="c").value_and_jacobian(
        1.5, 0.5, 0.1, t, y
    )
    decay = numpy.exp(-0.5 * t)
    assert rows.shape == (10_000, 3) and rows.dtype == numpy.float64
    assert numpy.allclose(rows, numpy.column_stack([decay, -1.5 * t * decay, numpy.ones(t.size)]), rtol=1e-15)
    assert numpy.allclose(values, 1.5 * decay + 0.1 - y, rtol=1e-15, atol=1e-15)


def test_a_jacobians_rows_are_written_in_place():
    source = symdiff.compile_jacobian("[x[i]*a for i in range(1, len(x))]", wrt=["x", "a"], backend="c").source
    assert "void symdiff_jacobian(double a, const double *restrict x, long x_len, double *restrict jacobian)" in source
    assert "    const long columns = 1 + x_len;\n" in source
    assert "        double *x_bar = jacobian + (i - 1) * columns;\n" in source
    assert "        x_bar[i] += a;  // w3 = x[i] * a\n" in source
    assert "        jacobian[(i - 1) * columns + x_len] = a_bar;\n" in source
    assert "        values[i - 1] = w3;\n" in source


def test_an_empty_vector_output_has_no_rows():
    jacobian = symdiff.compile_jacobian(RESIDUALS, wrt=["a", "b"], backend="c")
    values, rows = jacobian.value_and_jacobian(1.0, 1.0, 1.0, numpy.zeros(0), numpy.zeros(0))
    assert values.shape == (0,) and rows.shape == (0, 2)


def test_derivatives_refuse_reads_out_of_bounds_and_wrong_directions():
    message = r"x\[i \+ 1\] for i in range\(len\(x\)\) reads x at index 3, past its end \(len 3\)"
    text = "sum(x[i]*x[i + 1] for i in range(len(x)))"
    with pytest.raises(ArgumentError, match=message):
        symdiff.compile_jvp(text, backend="c")([[1.0, 2.0, 3.0]], [[1.0, 1.0, 1.0]])
    with pytest.raises(ArgumentError, match=message):
        symdiff.compile_hessian(text, backend="c").hvp([[1.0, 2.0, 3.0]], [[1.0, 1.0, 1.0]])
    with pytest.raises(ArgumentError, match=message):
        symdiff.compile_jacobian("[x[i + 1] for i in range(len(x))]", backend="c")([1.0, 2.0, 3.0])
    with pytest.raises(ArgumentError, match=r"the direction's x has shape \(2,\), the point's \(3,\)"):
        symdiff.compile_jvp(ROSENBROCK, backend="c")([[1.0, 2.0, 3.0]], [[1.0, 1.0]])


def _derivative_programs():
    for text, wrt, _ in PROGRAMS:
        programs = build(text, wrt=wrt)
        yield f"jvp of {text}", array_jvp_program(programs.tape)
        yield f"hvp of {text}", array_hvp_program(programs.tape, programs.adjoint)
    for text, wrt in JACOBIANS:
        tape = build_tape(text)
        yield f"jacobian of {text}", rows_jacobian_program(tape, tuple(wrt) if wrt else tape.inputs)


DERIVATIVES = list(_derivative_programs())


@pytest.mark.parametrize("program", [program for _, program in DERIVATIVES], ids=[name for name, _ in DERIVATIVES])
def test_derivative_entries_compile_under_strict_flags(program, tmp_path):
    source, header = render_program(program, "arrays", "arrays.h")
    (tmp_path / "arrays.c").write_text(source)
    (tmp_path / "arrays.h").write_text(header)
    command = [*find_compiler(), *STRICT, "-c", "arrays.c"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
