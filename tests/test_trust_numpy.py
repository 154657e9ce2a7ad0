"""The NumPy backend gives the Python backend's numbers, bit for bit (issue 19, item 7), and `batch`
over zero points returns empty results of the right shapes on NumPy and C alike (item 17)."""

import itertools
import math

import pytest
from support import needs_compiler

import symdiff

numpy = pytest.importorskip("numpy")

pytestmark = pytest.mark.usefixtures("private_c_cache")

# Value numbering met an adjoint's earlier value (2 * x is both w2_bar's first contribution and x's
# term) after the adjoint's name had moved on to its sum: NumPy read the sum, -3.2131 at x = 0.5.
REUSED_ADJOINTS = [
    "exp(-x) + (-x)*x*2",
    "sin(-b) - -b*b - -b*b",
    "x*(-x) + x*(-x) + exp(-x)",
]
POINTS = (0.5, 1.3, -0.7, 2.0)


def test_the_reported_gradient_is_the_python_backends():
    g = symdiff.compile_grad("exp(-x) + (-x)*x*2", backend="numpy")
    assert g(0.5) == (-2.606530659712633,)
    assert symdiff.compile_grad("sin(-b) - -b*b - -b*b", backend="numpy")(0.5) == (1.1224174381096272,)


@pytest.mark.parametrize("text", REUSED_ADJOINTS)
def test_an_adjoints_earlier_value_is_read_where_value_numbering_reuses_it(text):
    expected = symdiff.compile_grad(text)
    g = symdiff.compile_grad(text, backend="numpy")
    xs = numpy.array(POINTS)
    gradients = [expected(x) for x in POINTS]
    values = [expected.value(x) for x in POINTS]
    assert [g(x) for x in POINTS] == gradients
    assert g(xs)[0].tolist() == [gradient[0] for gradient in gradients]
    value, (gradient,) = g.value_and_grad(xs)
    assert (value.tolist(), gradient.tolist()) == (values, [gradient[0] for gradient in gradients])
    batch_values, batch_gradients = g.batch(xs.reshape(1, -1), value=True)
    assert (batch_values.tolist(), batch_gradients[0].tolist()) == (values, [gradient[0] for gradient in gradients])


def _sharing_programs():
    """f(-v), and a product (or atan2) of v and -v scaled by c, combined either way round: 96 programs
    where value numbering meets a value again negated (36 gave wrong gradients before the fix)."""
    pairs = ("({v} * (-{v}))", "((-{v}) * {v})", "atan2({v}, -{v})")
    for v, f, pair, op, c, first in itertools.product(("x", "sin(x)"), ("exp", "sin"), pairs, "+*", "2y", (1, 0)):
        a, b = f"{f}(-{v})", f"{pair.format(v=v)} * {c}"
        yield f"{a} {op} {b}" if first else f"{b} {op} {a}"


def test_values_met_again_negated():
    wrong = []
    for text in _sharing_programs():
        expected = symdiff.compile_grad(text)
        point = (0.5, 0.7)[: len(expected.inputs)]
        got = symdiff.compile_grad(text, backend="numpy").value_and_grad(*point)
        wanted = expected.value_and_grad(*point)
        # NumPy's exp and sin may differ from the C library's in the last bit; a wrong buffer does not.
        if not all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip((got[0], *got[1]), (wanted[0], *wanted[1]))):
            wrong.append(text)
    assert wrong == []


@pytest.mark.parametrize(
    "text",
    [
        # Definitions named like the module's own names: its constants (k1), buffer rows (b0),
        # temporaries (t1) and the blocks' parameters and locals.
        "k1 = sin(x)*x; k1*k1 + x*x*2",
        "b0 = sin(x)*x; b1 = b0*3; b1*b0 + exp(-x)*x",
        "t1 = x*2; t2 = t1*sin(x); t2*cos(x) + exp(-x)*t1",
        "outputs = x*x; buffers = outputs*x; values = buffers + sin(outputs); values*x",
    ],
)
def test_definitions_named_like_the_modules_own_names(text):
    expected = symdiff.compile_grad(text)
    g = symdiff.compile_grad(text, backend="numpy")
    assert [g(x) for x in POINTS] == [expected(x) for x in POINTS]
    assert [g.value_and_grad(x) for x in POINTS] == [expected.value_and_grad(x) for x in POINTS]


# What C returns for zero points (n = 0) and for an expression without inputs, whose points carry
# nothing but their count: NumPy's results have the same shapes and numbers.
BACKENDS = [pytest.param("numpy"), pytest.param("c", marks=needs_compiler)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "text, wrt, points, values, gradients",
    [
        ("x*y + sin(x)", None, numpy.empty((2, 0)), [], [[], []]),
        ("sin(x)", None, numpy.empty(0), [], [[]]),
        ("3", None, numpy.empty((0, 0)), [], []),
        ("pi*2", None, numpy.empty((0, 3)), [6.283185307179586] * 3, []),
        ("3", ["x"], numpy.empty((0, 0)), [], [[]]),
        ("3", ["x"], numpy.empty((0, 2)), [3.0, 3.0], [[0.0, 0.0]]),
    ],
)
def test_batch_over_zero_points_or_no_inputs(backend, text, wrt, points, values, gradients):
    g = symdiff.compile_grad(text, wrt, backend=backend)
    n = points.shape[-1]
    both = g.batch(points, value=True)
    alone = g.batch(points, value=True, grad=False), g.batch(points)
    for got_values, got_gradients in (both, alone):
        assert got_values.shape == (n,) and got_values.tolist() == values
        assert got_gradients.shape == (len(g.wrt), n) and got_gradients.tolist() == gradients
    into = numpy.full(n, numpy.nan), numpy.full((len(g.wrt), n), numpy.nan)
    returned = g.batch(points, value=True, out=into)
    assert returned[0] is into[0] and returned[1] is into[1]
    assert into[0].tolist() == values and into[1].tolist() == gradients
