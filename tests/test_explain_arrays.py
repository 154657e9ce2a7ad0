"""explain, graph and the CLI's points for array programs (issue 21): every iteration's entries and steps
labelled with its index values, in the generated code's order; the gradient per element against
compile_grad and SymPy's unrolled derivative; the iteration limit; bad array points; schema /3."""

import html.parser
import json
import math
import re
import subprocess
import sys

import pytest
import sympy

from symdiff import ArgumentError, SymdiffError, compile_grad
from symdiff.core.parse import parse_program
from symdiff.core.unroll import unroll
from symdiff.teaching.explain import MAX_ITERATIONS, SCHEMA, SCHEMA_ARRAYS, explain
from symdiff.teaching.graph import graph

SQUARES = "sum(x[i]^2 for i in range(len(x)))"
ROSENBROCK = "sum(100*(x[i + 1] - x[i]^2)^2 + (1 - x[i])^2 for i in range(len(x) - 1))"
MEAN = "m = sum(x[i] for i in range(len(x)))/len(x); sum((x[i] - m)^2 for i in range(len(x)))"
PAIRS = "sum(1/(x[i] - x[j])^2 for i in range(len(x)) for j in range(i + 1, len(x)))"
LAYER = "sum((sum(W[j, k]*x[k] for k in range(len(x))) - y[j])^2 for j in range(len(y)))"
FIT = "sum((a*exp(-b*t[i]) + c - y[i])^2 for i in range(len(t)))"

# Expressions with a small point each; every one is checked against compile_grad and SymPy.
CASES = [
    (SQUARES, {"x": [1, 2, 3]}),
    (ROSENBROCK, {"x": [1.5, 2, -1]}),
    (MEAN, {"x": [1, 2, 4]}),
    (PAIRS, {"x": [0, 1, 3, 7]}),
    (LAYER, {"W": [[1, 2], [3, 4]], "x": [1, 2], "y": [1, -1]}),
    (FIT, {"a": 1.5, "b": 0.5, "c": 0.25, "t": [0, 1, 2], "y": [1, 0.6, 0.4]}),
    ("prod(x[i] for i in range(len(x)))", {"x": [2, 0, 3]}),
    ("prod(x[i] for i in range(len(x)))", {"x": [2, -1.5, 3]}),
    ("log(sum(exp(x[i]) for i in range(len(x))))", {"x": [0.5, -1, 2]}),
    ("x[0]*x[1] + sum((i + 1)*x[i]^2 for i in range(len(x)))", {"x": [1, 2, 3]}),
    ("sum(x[len(x) - 1 - i]*x[i] for i in range(len(x)))", {"x": [1, 2, 4]}),
    ("x[0]*x[1] + y", {"x": [2, 0, 3], "y": 1}),
]


def rows(trace):
    return [(e.name, e.definition, e.value, e.iteration) for e in trace.entries]


def steps(trace):
    return [(s.target, s.origin, s.iteration, s.partial, s.partial_value, s.contribution, s.total) for s in trace.steps]


def test_sum_of_squares_lists_each_iteration_with_exact_values():
    trace = explain(SQUARES, {"x": [1.0, 2.0, 3.0]})
    assert trace.schema == SCHEMA_ARRAYS and trace.value == 14.0 and trace.point == (("x", (1.0, 2.0, 3.0)),)
    i0, i1, i2 = (("i", 0),), (("i", 1),), (("i", 2),)
    assert rows(trace) == [
        ("w1", "x[i]", 1.0, i0),
        ("w2", "w1 ^ 2", 1.0, i0),
        ("w1", "x[i]", 2.0, i1),
        ("w2", "w1 ^ 2", 4.0, i1),
        ("w1", "x[i]", 3.0, i2),
        ("w2", "w1 ^ 2", 9.0, i2),
        ("w3", "sum(w2 for i in range(len(x)))", 14.0, ()),
    ]
    # The reverse loop runs i upwards, as the generated code's; each read adds into x_bar at its index.
    assert steps(trace) == [
        ("w2", "w3", i0, "1", 1.0, 1.0, 1.0),
        ("x[0]", "w2", i0, "2 * w1 ^ (2 - 1)", 2.0, 2.0, 2.0),
        ("w2", "w3", i1, "1", 1.0, 1.0, 1.0),
        ("x[1]", "w2", i1, "2 * w1 ^ (2 - 1)", 4.0, 4.0, 4.0),
        ("w2", "w3", i2, "1", 1.0, 1.0, 1.0),
        ("x[2]", "w2", i2, "2 * w1 ^ (2 - 1)", 6.0, 6.0, 6.0),
    ]
    assert [s.read for s in trace.steps] == [None, "w1"] * 3
    assert [s.total_formula for s in trace.steps] == ["1", "2 * w1"] * 3
    assert [(p.wrt, p.entry, p.formula, p.value, p.array, p.index) for p in trace.partials] == [
        (f"x[{k}]", f"x[{k}]", f"2 * x[{k}]", 2.0 * (k + 1), "x", (k,)) for k in range(3)
    ]
    assert [(loop.entry, loop.function, loop.index, loop.range, loop.runs) for loop in trace.loops] == [
        ("w3", "sum", "i", "len(x)", (((), (0, 1, 2)),))
    ]
    assert repr(trace) == "<symdiff trace of 'sum(x[i]^2 for i in range(len(x)))' at x=[1, 2, 3]: 6 steps>"


SQUARES_TEXT = """\
Reverse mode, step by step: z = sum(x[i]^2 for i in range(len(x))) at x = [1, 2, 3]

1. Forward sweep (primal trace): each entry applies one primitive to inputs and earlier entries.

   iteration  entry  definition                      value
   ---------  -----  ------------------------------  -----
   i = 0      w1     x[i]                                1
              w2     w1 ^ 2                              1
   i = 1      w1     x[i]                                2
              w2     w1 ^ 2                              4
   i = 2      w1     x[i]                                3
              w2     w1 ^ 2                              9
              w3     sum(w2 for i in range(len(x)))     14
              z      w3                                 14

   w3 = sum(w2 for i in range(len(x))): i runs over 0, 1, 2.

2. Seed: z_bar = w3_bar = 1, because dz/dz = 1. Every other adjoint starts at 0.

3. Reverse sweep (adjoint trace): for each entry from the last to the first, and for each of its
   operands that is not a constant, wi_bar += wp_bar * dwp/dwi.

   step  iteration  update                          dwp/dwi               contribution  running total
   ----  ---------  ------------------------------  --------------------  ------------  -------------
      1  i = 0      w2_bar += w3_bar * dw3/dw2      1                                1  w2_bar = 1
      2             x_bar[0] += w2_bar * dw2/dx[0]  2 * w1 ^ (2 - 1) = 2             2  x_bar[0] = 2
      3  i = 1      w2_bar += w3_bar * dw3/dw2      1                                1  w2_bar = 1
      4             x_bar[1] += w2_bar * dw2/dx[1]  2 * w1 ^ (2 - 1) = 4             4  x_bar[1] = 4
      5  i = 2      w2_bar += w3_bar * dw3/dw2      1                                1  w2_bar = 1
      6             x_bar[2] += w2_bar * dw2/dx[2]  2 * w1 ^ (2 - 1) = 6             6  x_bar[2] = 6
   The reverse sweep runs each loop again, index by index as the generated code does (a sum's terms
     are independent, so their order does not matter); the generated code recomputes a body's
     values there instead of storing them. In each iteration the body's adjoints start at 0.
   A read passes what it receives straight into the array's adjoint at the index it read: at i = 0,
     w1 read x[0], so step 2 adds into x_bar[0].

4. Result: each partial derivative is the adjoint of its input.

   dz/dx[0] = x_bar[0] = 2 * x[0] = 2
   dz/dx[1] = x_bar[1] = 2 * x[1] = 4
   dz/dx[2] = x_bar[2] = 2 * x[2] = 6
"""


def test_text_of_the_sum_of_squares():
    assert explain(SQUARES, {"x": [1, 2, 3]}).text(ascii=True) == SQUARES_TEXT


def test_rosenbrock_at_a_small_point():
    x = [1.5, 2.0, -1.0]
    trace = explain(ROSENBROCK, {"x": x})
    # scipy.optimize.rosen_der, written out: the first, middle and last elements differ.
    expected = [
        -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]),
        200 * (x[1] - x[0] ** 2) - 400 * x[1] * (x[2] - x[1] ** 2) - 2 * (1 - x[1]),
        200 * (x[2] - x[1] ** 2),
    ]
    assert [p.value for p in trace.partials] == expected == [151.0, 3952.0, -1000.0]
    assert trace.value == 2507.5 and len(trace.steps) == 20
    assert [s.iteration for s in trace.steps] == [(("i", 0),)] * 10 + [(("i", 1),)] * 10
    # x[1] is read as x[i + 1] at i = 0 and as x[i] at i = 1 (twice): three contributions, in order.
    into = [(s.step, s.origin, s.read, s.iteration[0][1], s.contribution) for s in trace.steps if s.target == "x[1]"]
    assert into == [(8, "w4", "w1", 0, -50.0), (15, "w7", "w2", 1, 2.0), (20, "w3", "w2", 1, 4000.0)]
    # A running total mixing iterations names no entry: w4 of i = 0 is not w4 of i = 1.
    assert [s.total_formula for s in trace.steps if s.target == "x[1]"] == ["200 * w4", None, None]
    assert (
        "x̄[1] adds up 3 contributions (steps 8, 15, 20): w4 at i = 0 via w1, w7 at i = 1 via w2, w3 at i = 1 via w2."
        in trace.text(width=400)
    )


def test_mean_in_a_definition():
    trace = explain(MEAN, {"x": [1, 2, 4]})
    assert [(e.name, e.iteration) for e in trace.entries][:6] == [
        ("w1", (("i", 0),)),
        ("w1", (("i", 1),)),
        ("w1", (("i", 2),)),
        ("w2", ()),
        ("w3", ()),
        ("w4", ()),
    ]
    lengths = [e for e in trace.entries if e.op == "length"]
    assert [(e.definition, e.value, e.adjoint) for e in lengths] == [("len(x)", 3.0, None)]
    # m = w4 lies outside the second loop: its adjoint gathers one share per iteration, then the first
    # loop (run after it, as the generated code runs it) hands m_bar / len(x) to every element.
    m_bar = [(s.iteration, s.contribution, s.total) for s in trace.steps if s.target == "w4"]
    assert [label for label, _, _ in m_bar] == [(("i", 0),), (("i", 1),), (("i", 2),)]
    assert [contribution for _, contribution, _ in m_bar] == pytest.approx([8 / 3, 2 / 3, -10 / 3])
    assert not any(s.target == "w3" for s in trace.steps)  # a length gets no adjoint
    assert [s.target for s in trace.steps[-3:]] == ["x[0]", "x[1]", "x[2]"]
    assert [s.origin for s in trace.steps[-3:]] == ["w2"] * 3
    mean = 7 / 3
    assert [p.value for p in trace.partials] == pytest.approx([2 * (v - mean) for v in (1, 2, 4)], rel=1e-12)
    assert trace.partials[0].formula == "4 * x[0] / 3 - 2 * x[1] / 3 - 2 * x[2] / 3"
    assert "w̄4 adds up 3 contributions (steps 4, 8, 12): w6 at i = 0, w6 at i = 1, w6 at i = 2." in str(trace)


def test_pairs_i_below_j():
    trace = explain(PAIRS, {"x": [0.0, 1.0, 3.0]})
    inner, outer = trace.loops
    assert (inner.entry, inner.index, inner.range, outer.entry, outer.index) == ("w6", "j", "i + 1, len(x)", "w7", "i")
    assert inner.runs == (((("i", 0),), (1, 2)), ((("i", 1),), (2,)), ((("i", 2),), ()))
    assert (inner.iterations, outer.iterations) == (3, 3)
    assert [s.iteration for s in trace.steps if s.target.startswith("x")] == [
        (("i", 0), ("j", 1)),
        (("i", 0), ("j", 1)),
        (("i", 0), ("j", 2)),
        (("i", 0), ("j", 2)),
        (("i", 1), ("j", 2)),
        (("i", 1), ("j", 2)),
    ]
    # d/dx_k of sum over pairs of (x_i - x_j)^-2 is -2 (x_k - x_l)^-3 summed over the others l.
    x = [0.0, 1.0, 3.0]
    expected = [sum(-2 / (x[k] - x[m]) ** 3 for m in range(3) if m != k) for k in range(3)]
    assert [p.value for p in trace.partials] == pytest.approx(expected, rel=1e-14)
    text = trace.text(width=400)
    assert (
        "w6 = sum(w5 for j in range(i + 1, len(x))): once per outer iteration, j runs over 1, 2 at i = 0; 2 at" in text
    )
    assert "nothing (an empty range) at i = 2 (3 iterations in all)." in text


def test_product_with_a_zero_factor_is_exact():
    trace = explain("prod(x[i] for i in range(len(x)))", {"x": [2, 0, 3]})
    assert [(s.target, s.partial, s.partial_value) for s in trace.steps] == [
        ("x[0]", "w2_before * w2_after", 0.0),
        ("x[1]", "w2_before * w2_after", 6.0),
        ("x[2]", "w2_before * w2_after", 0.0),
    ]
    assert [p.formula for p in trace.partials] == ["x[1] * x[2]", "x[0] * x[2]", "x[0] * x[1]"]
    assert "wk_before is the product of its factors before the index" in str(trace)


@pytest.mark.parametrize("expression, point", CASES)
def test_numbers_agree_with_compile_grad(expression, point):
    trace = explain(expression, point)
    gradient = compile_grad(expression)
    value, partials = gradient.value_and_grad(**point)
    assert trace.value == pytest.approx(value, rel=1e-13, abs=1e-13)
    flat = []
    for partial in partials:
        flat.extend(_flatten(partial) if isinstance(partial, list | tuple) else [partial])
    assert [p.value for p in trace.partials] == pytest.approx(flat, rel=1e-12, abs=1e-12)


def _flatten(value):
    return [leaf for item in value for leaf in (_flatten(item) if isinstance(item, list | tuple) else [item])]


@pytest.mark.parametrize("expression, point", CASES)
def test_formulas_agree_with_sympy_unrolled(expression, point):
    """Each element's formula is SymPy's derivative of the expression written out term by term."""
    trace = explain(expression, point)
    shapes = {name: _shape(value) for name, value in point.items() if isinstance(value, list)}
    (unrolled,) = unroll(parse_program(expression), shapes)
    shown = [p for p in trace.partials if p.formula is not None]
    assert len(shown) == len(trace.partials) or expression == ROSENBROCK
    for partial in shown:
        assert sympy.simplify(_sympy(partial.formula) - sympy.diff(unrolled, _sympy(partial.wrt))) == 0, partial


def _shape(value):
    return (len(value), *(_shape(value[0]) if value and isinstance(value[0], list) else ()))


def _sympy(text):
    """symdiff syntax as SymPy, elements (x[2], W[1, 0]) as the unroller's symbols."""
    symbols = {}

    def element(found):
        stand_in = f"element{len(symbols)}"
        symbols[stand_in] = sympy.Symbol(found[0], real=True)
        return stand_in

    plain = re.sub(r"[A-Za-z_]\w*\[[\d, ]+\]", element, text).replace("^", "**")
    for name in re.findall(r"\b[A-Za-z_]\w*\b(?!\()", plain):
        symbols.setdefault(name, sympy.Symbol(name, real=True))
    return sympy.sympify(plain, locals=symbols)


def test_iteration_limit():
    assert MAX_ITERATIONS == 50
    explain(SQUARES, {"x": [0.5] * 50})
    with pytest.raises(ArgumentError) as error:
        explain(SQUARES, {"x": [0.5] * 51})
    assert error.value.message == (
        "at this point the loops run 51 iterations (each run of a nested loop counted); explain lists every "
        "iteration and takes at most 50: explain shorter arrays, or read the loops in the generated code (symdiff grad)"
    )
    assert error.value.span == (0, len(SQUARES))
    explain(PAIRS, {"x": list(range(9))})  # 9 values of i, 36 pairs: 45 iterations
    with pytest.raises(ArgumentError, match="the loops run 55 iterations"):
        explain(PAIRS, {"x": list(range(10))})
    with pytest.raises(ArgumentError, match="the loops run more than 100,000 iterations"):
        cube = "sum(x[i]*x[j]*x[k] for i in range(len(x)) for j in range(len(x)) for k in range(len(x)))"
        explain(cube, {"x": [1.0] * 99})


def test_two_loops_count_together_and_the_caret_finds_the_larger():
    source = "sum(x[i] for i in range(len(x))) + sum(y[i]^2 for i in range(len(y)))"
    with pytest.raises(ArgumentError, match="the loops run 60 iterations") as error:
        explain(source, {"x": [1.0] * 10, "y": [1.0] * 50})
    assert source[slice(*error.value.span)] == "sum(y[i]^2 for i in range(len(y)))"


@pytest.mark.parametrize(
    "expression, point, message",
    [
        (SQUARES, {"x": 1}, "the point's x = 1 is not a list of numbers (the expression indexes it: it is an array)"),
        (SQUARES, {"x": [1, "a"]}, "the point's x[1] = 'a' is not a real number"),
        (SQUARES, {"x": [1, math.inf]}, "the point's x[1] = inf is not a finite number"),
        (SQUARES, {"x": [[1], [2]]}, "the point's x[0] = [1] is not a real number"),
        (SQUARES, {}, "the point has no value for x (inputs: x)"),
        (SQUARES, {"x": [1], "z": 2}, "the point gives z, not in the expression (inputs: x)"),
        (
            LAYER,
            {"W": [1, 2], "x": [1], "y": [1]},
            "the point's W[0] = 1 is not a list of numbers (W has 2 dimensions: give a list of lists)",
        ),
        (
            LAYER,
            {"W": [[1, 2], [3]], "x": [1, 2], "y": [1, 2]},
            "the point's W is not rectangular: W[1] has 1 element, W[0] has 2",
        ),
        (
            "x[0] + sum(x[i] for i in range(2))",
            {"x": [1.0] * 50 + [2.0] * 51},
            "the point's arrays hold 101 numbers; explain lists the gradient element by element and takes at most 100 (compile_grad takes arrays of any length)",
        ),
    ],
)
def test_bad_points(expression, point, message):
    with pytest.raises(ArgumentError) as error:
        explain(expression, point)
    assert error.value.message == message


def test_a_read_out_of_bounds_points_at_the_read():
    source = "sum(x[i + 1] for i in range(len(x)))"
    with pytest.raises(ArgumentError) as error:
        explain(source, {"x": [1, 2]})
    assert error.value.message == "x[i + 1] for i in range(len(x)) reads x at index 2, past its end (len 2)"
    assert source[slice(*error.value.span)] == "x[i + 1]"


def test_vector_outputs_are_refused_with_a_caret():
    source = "[x[i]^2 for i in range(len(x))]"
    with pytest.raises(SymdiffError) as error:
        explain(source, {"x": [1.0]})
    assert error.value.message.startswith("explain walks through one output, and [... for i in range(...)] has one")
    assert error.value.span is not None


def test_empty_arrays_and_numpy_points():
    trace = explain(SQUARES, {"x": []})
    assert trace.value == 0.0 and trace.steps == () and trace.partials == ()
    assert "i runs over nothing (an empty range)." in str(trace)
    numpy = pytest.importorskip("numpy")
    trace = explain(LAYER, {"W": numpy.array([[1.0, 2.0], [3.0, 4.0]]), "x": numpy.arange(1.0, 3.0), "y": (1, -1)})
    assert [p.value for p in trace.partials] == [8, 16, 24, 48, 80, 112, -8, -24]
    assert [p.wrt for p in trace.partials][:4] == ["W[0, 0]", "W[0, 1]", "W[1, 0]", "W[1, 1]"]


def test_a_domain_error_inside_a_loop_points_at_the_body():
    source = "sum(log(x[i]) for i in range(len(x)))"
    with pytest.raises(SymdiffError) as error:
        explain(source, {"x": [1.0, -1.0]})
    assert error.value.message.startswith("log(-1) has no real value at this point")
    assert source[slice(*error.value.span)] == "log(x[i])"


def test_json_schema_3():
    trace = explain(PAIRS, {"x": [0, 1, 3]})
    data = json.loads(trace.json())
    assert data == trace.to_dict()
    assert list(data) == [
        "schema", "expression", "point", "value", "output", "loops", "forward", "branches", "seed", "reverse", "gradient",
    ]  # fmt: skip
    assert data["schema"] == SCHEMA_ARRAYS == "symdiff.explain/3" and data["point"] == {"x": [0.0, 1.0, 3.0]}
    assert data["loops"][0] == {
        "entry": "w6",
        "function": "sum",
        "index": "j",
        "range": "i + 1, len(x)",
        "source": PAIRS,
        "runs": [
            {"outer": {"i": 0}, "values": [1, 2]},
            {"outer": {"i": 1}, "values": [2]},
            {"outer": {"i": 2}, "values": []},
        ],
        "iterations": 3,
    }
    assert data["forward"][1]["iteration"] == {"i": 0, "j": 1} and data["forward"][1]["definition"] == "x[j]"
    step = data["reverse"][4]
    assert (step["target"], step["read"], step["iteration"], step["contribution"]) == (
        "x[0]",
        "w1",
        {"i": 0, "j": 1},
        2.0,
    )
    assert data["gradient"][2] == {
        "wrt": "x[2]",
        "entry": "x[2]",
        "formula": data["gradient"][2]["formula"],
        "value": pytest.approx(-2 / 27 - 2 / 8, rel=1e-15),
        "array": "x",
        "index": [2],
    }
    # Scalar expressions keep schema /2, unchanged.
    assert explain("x*y", {"x": 1, "y": 2}).to_dict()["schema"] == SCHEMA == "symdiff.explain/2"


def test_fit_mixes_scalars_and_data():
    trace = explain(FIT, {"a": 1.5, "b": 0.5, "c": 0.25, "t": [0, 1], "y": [1, 0.5]}, wrt=["a", "b", "c"])
    assert [(p.wrt, p.entry, p.array) for p in trace.partials] == [
        ("a", "w1", None),
        ("b", "w2", None),
        ("c", "w4", None),
    ]
    # a_bar gathers one contribution per data point, in the reverse loop.
    into_a = [s for s in trace.steps if s.target == "w1"]
    assert [s.iteration for s in into_a] == [(("i", 0),), (("i", 1),)]
    assert into_a[-1].total == trace.partials[0].value


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.open, self.seen = [], set()

    def handle_starttag(self, tag, attrs):
        self.seen.add(tag)
        self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open.pop() == tag


@pytest.mark.parametrize("expression, point", CASES[:7])
def test_every_format(expression, point):
    trace = explain(expression, point)
    markdown = trace.markdown()
    assert "| step | iteration | update |" in markdown or not trace.loops
    parser = _Tags()
    parser.feed(trace.html())
    assert parser.open == [] and {"table", "td"} <= parser.seen
    document = trace.latex()
    assert document.isascii()
    body = document.split(r"\begin{document}")[1]
    assert all(line.count("$") % 2 == 0 for line in body.splitlines())
    depth = 0
    for char in document.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert "x[" not in "".join(re.findall(r"\$[^$]*\$", body))  # elements are subscripts: x_{0}


def test_latex_of_reads_and_reductions():
    document = explain(ROSENBROCK, {"x": [1, 2, 3]}).latex()
    assert r"$x_{i + 1}$" in document
    assert r"$\sum_{i \in \operatorname{range}(\operatorname{len}(x) - 1)} w_{9}$" in document
    assert r"$\bar{x}_{1} \mathrel{+}= \bar{w}_{4} \cdot \partial w_{4}/\partial x_{1}$" in document


def test_graph_draws_the_loop_body_once():
    dot = graph(MEAN).dot
    assert '"w1" [label=<w1 = x[i]  (for each i)>, shape=ellipse, style=filled, fillcolor="#dbe9f6"];' in dot
    assert '"w2" [label=<w2 = sum(w1 for i in range(len(x)))>];' in dot
    assert '"w3" -> "w4" [label=<>, style=dotted];' in dot  # len(x): no adjoint
    assert '"w1" -> "w2" [label=<∂w2/∂w1 = 1>];' in dot
    assert "where()" not in dot
    assert "[label=<∂w2/∂w1 = w2_before · w2_after>]" in graph("prod(x[i] for i in range(len(x)))").dot
    with pytest.raises(
        SymdiffError, match="graph draws a loop body once, so it cannot show numbers at a point"
    ) as error:
        graph(SQUARES, {"x": [1.0]})
    assert error.value.span == (0, len(SQUARES))
    # Without loops the numbers are single: a point is fine.
    assert "w1 = x[0] = 2" in graph("x[0]*x[1]", {"x": [2, 3]}).dot


def run(*args):
    return subprocess.run([sys.executable, "-m", "symdiff", *args], capture_output=True, text=True)


def test_cli_eval_with_arrays():
    result = run("eval", LAYER, "--at", "W=[[1,2],[3,4]], x=[1,2], y=[1,-1]")
    assert (result.returncode, result.stderr) == (0, "")
    assert (
        result.stdout
        == "value = 160.0\nd/dW = [[8.0, 16.0], [24.0, 48.0]]\nd/dx = [80.0, 112.0]\nd/dy = [-8.0, -24.0]\n"
    )
    result = run("eval", FIT, "--wrt", "a,b,c", "--at", "a=1,b=0,c=0,t=[0,1],y=[0,0]")
    assert result.stdout == "value = 2.0\nd/da = 4.0\nd/db = -2.0\nd/dc = 4.0\n"


def test_cli_explain_with_arrays():
    result = run("explain", SQUARES, "--at", "x=[1,2,3]", "--ascii")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == SQUARES_TEXT
    data = json.loads(run("explain", SQUARES, "--at", "x=[1,2,3]", "--format", "json").stdout)
    assert data["schema"] == "symdiff.explain/3" and [g["value"] for g in data["gradient"]] == [2.0, 4.0, 6.0]


@pytest.mark.parametrize(
    "args, message",
    [
        (("eval", SQUARES, "--at", "x=[1,2"), "error: --at: a [ is never closed in 'x=[1,2'\n"),
        (("eval", SQUARES, "--at", "x=1,2]"), "error: --at: a ] closes no [ in 'x=1,2]'\n"),
        (("eval", SQUARES, "--at", "x=[1,,2]"), "error: --at: a number is missing (in 'x=[1,,2]')\n"),
        (("eval", SQUARES, "--at", "x=[1,two]"), "error: --at: 'two' is not a number (in 'x=[1,two]')\n"),
        (("eval", SQUARES, "--at", "x=[1,nan]"), "error: --at: nan is not a finite number (in 'x=[1,nan]')\n"),
        (("eval", SQUARES, "--at", "x=[1]2"), "error: --at: unexpected '2' after the list (in 'x=[1]2')\n"),
        (("eval", SQUARES, "--at", "x=[1 2]"), "error: --at: '1 2' is not a number (in 'x=[1 2]')\n"),
        (
            ("eval", SQUARES, "--at", "x=" + "[" * 9 + "1" + "]" * 9),
            "error: --at: lists nest more than 8 deep (in 'x=[[[[[[[[[1]]]]]]]]]')\n",
        ),
        (
            ("explain", SQUARES, "--at", "x=2"),
            "error: the point's x = 2.0 is not a list of numbers (the expression indexes it: it is an array)\n",
        ),
        (
            ("eval", "sum(x[i + 1] for i in range(len(x)))", "--at", "x=[1,2]"),
            "error: x[i + 1] for i in range(len(x)) reads x at index 2, past its end (len 2)\n",
        ),
    ],
)
def test_cli_bad_array_points(args, message):
    result = run(*args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message)


def test_cli_help_documents_the_array_syntax():
    assert "x=[1,2,3]" in " ".join(run("eval", "--help").stdout.split())
    assert "W=[[1,2],[3,4]]" in " ".join(run("explain", "--help").stdout.split())
