"""explain and graph at where(), min() and max(): the branch taken at the point, and only it, is traced.

Before issue 20 both refused such expressions; every test here failed then.
"""

import json
import math
import sys
from pathlib import Path

import pytest

import symdiff
from symdiff import cli
from symdiff.teaching.explain import SCHEMA, explain

LEARN = Path(__file__).resolve().parent.parent / "docs" / "learn-reverse-mode.md"
LOG_OR_SQUARE = "where(x > 0, log(x), x^2)"
NESTED = "where(x > 0, where(y > 0, sqrt(x*y), log(x)), exp(x) + sqrt(-x))"


def table(trace):
    return [(e.name, e.definition, e.value, e.adjoint, e.computed) for e in trace.entries]


def sweep(trace):
    return [(s.step, s.target, s.origin, s.operand, s.partial, s.partial_value, s.total) for s in trace.steps]


def gradient_agrees(expr, trace):
    expected = symdiff.compile_grad(expr).value_and_grad(*(value for _, value in trace.point))
    assert (trace.value, tuple(p.value for p in trace.partials)) == expected


def test_where_at_a_point_where_the_condition_holds():
    trace = explain(LOG_OR_SQUARE, {"x": 2})
    assert table(trace) == [
        ("w1", "x", 2.0, 0.5, True),
        ("w2", "w1 > 0", True, None, True),  # a truth value: no adjoint
        ("w3", "log(w1)", math.log(2), 1.0, True),
        ("w4", "w1 ^ 2", None, None, False),  # the branch not taken: no value, no adjoint
        ("w5", "where(w2, w3, w4)", math.log(2), 1.0, True),
    ]
    assert [e.branch for e in trace.entries] == [(), (), (("w2", True),), (("w2", False),), ()]
    assert sweep(trace) == [(1, "w3", "w5", 1, "1", 1.0, 1.0), (2, "w1", "w3", 0, "1 / w1", 0.5, 0.5)]
    assert [(p.wrt, p.formula, p.value) for p in trace.partials] == [("x", "1 / x", 0.5)]
    (branch,) = trace.branches
    assert (branch.entry, branch.function, branch.source, branch.condition, branch.condition_text) == (
        "w5", "where", LOG_OR_SQUARE, "w2", "x > 0",
    )
    assert (branch.value, branch.taken, branch.taken_text, branch.not_taken, branch.not_taken_text) == (
        True, "w3", "log(x)", "w4", "x^2",
    )
    assert branch.skipped == ("w4",)
    assert "   w2 = x > 0 is true: where(x > 0, log(x), x^2) takes log(x) (w3), so x^2 (w4) is not computed.\n" in str(
        trace
    )
    gradient_agrees(LOG_OR_SQUARE, trace)


def test_where_at_a_point_where_log_is_undefined_never_evaluates_it():
    trace = explain(LOG_OR_SQUARE, {"x": -3})  # log(-3) raised a DomainError if it were evaluated
    assert table(trace) == [
        ("w1", "x", -3.0, -6.0, True),
        ("w2", "w1 > 0", False, None, True),
        ("w3", "log(w1)", None, None, False),
        ("w4", "w1 ^ 2", 9.0, 1.0, True),
        ("w5", "where(w2, w3, w4)", 9.0, 1.0, True),
    ]
    assert sweep(trace) == [(1, "w4", "w5", 2, "1", 1.0, 1.0), (2, "w1", "w4", 0, "2 * w1 ^ (2 - 1)", -6.0, -6.0)]
    assert [(p.formula, p.value) for p in trace.partials] == [("2 * x", -6.0)]
    assert trace.branches[0].skipped == ("w3",)
    text = str(trace)
    assert "nan" not in text and "nan" not in trace.json()
    lines = text.splitlines()
    assert "   w3     log(w1)            not computed" in lines
    assert "   w2     w1 > 0                    false" in lines
    assert "   w2 = x > 0 is false: where(x > 0, log(x), x^2) takes x^2 (w4), so log(x) (w3) is not computed." in lines
    assert "   ∂z/∂x = w̄1 = 2 · x = -6" in lines
    gradient_agrees(LOG_OR_SQUARE, trace)


@pytest.mark.parametrize(
    ("point", "condition", "taken", "other", "gradient", "line"),
    [
        ({"x": 3, "y": 1}, True, ("w1", "x"), ("w2", "y"), (1.0, 0.0), "w3 = x >= y is true: max(x, y) takes x (w1), not y (w2)."),
        ({"x": 1, "y": 2}, False, ("w2", "y"), ("w1", "x"), (0.0, 1.0), "w3 = x >= y is false: max(x, y) takes y (w2), not x (w1)."),
    ],
)
def test_max_names_what_the_user_wrote(point, condition, taken, other, gradient, line):
    trace = explain("max(x, y)", point)
    assert [(e.name, e.definition, e.value, e.adjoint) for e in trace.entries][2:] == [
        ("w3", "w1 >= w2", condition, None),
        ("w4", "where(w3, w1, w2)", max(point.values()), 1.0),
    ]
    (branch,) = trace.branches
    assert (branch.function, branch.source, branch.condition_text, branch.value) == ("max", "max(x, y)", "x >= y", condition)
    assert ((branch.taken, branch.taken_text), (branch.not_taken, branch.not_taken_text)) == (taken, other)
    assert branch.skipped == ()  # both operands are inputs: given, whichever is taken
    assert sweep(trace) == [(1, taken[0], "w4", 1 if condition else 2, "1", 1.0, 1.0)]
    assert tuple(p.value for p in trace.partials) == gradient
    assert f"   {line}" in str(trace).splitlines()
    gradient_agrees("max(x, y)", trace)


def test_min_of_three_reads_as_min():
    trace = explain("min(x, y, x*y)", {"x": 2, "y": 3})  # min(min(x, y), x*y): two where() entries
    assert [(b.entry, b.function, b.source, b.condition_text, b.value, b.taken_text) for b in trace.branches] == [
        ("w4", "min", "min(x, y, x*y)", "x <= y", True, "x"),
        ("w7", "min", "min(x, y, x*y)", "w4 <= w5", True, "w4"),  # one pairwise step of the min: by entry
    ]
    assert trace.value == 2.0 and tuple(p.value for p in trace.partials) == (1.0, 0.0)
    gradient_agrees("min(x, y, x*y)", trace)


@pytest.mark.parametrize(
    ("point", "computed", "branches", "steps", "gradient"),
    [
        # x > 0 and y <= 0: the inner where() takes log(x); the outer branch exp(x) + sqrt(-x) is not computed.
        (
            {"x": 2, "y": -1},
            ["w1", "w2", "w3", "w4", "w7", "w8", "w13"],
            [("w8", "w4", False, "w7", ("w5", "w6")), ("w13", "w2", True, "w8", ("w9", "w10", "w11", "w12"))],
            [("w8", "w13"), ("w7", "w8"), ("w1", "w7")],
            (0.5, 0.0),
        ),
        # x <= 0: the whole inner where() is not computed, nor is its condition; only the outer is a branch that ran.
        (
            {"x": -4, "y": 1},
            ["w1", "w2", "w3", "w9", "w10", "w11", "w12", "w13"],
            [("w13", "w2", False, "w12", ("w4", "w5", "w6", "w7", "w8"))],
            [("w12", "w13"), ("w9", "w12"), ("w11", "w12"), ("w10", "w11"), ("w1", "w10"), ("w1", "w9")],
            (math.exp(-4) - 0.25, 0.0),
        ),
    ],
)
def test_a_where_nested_in_a_where(point, computed, branches, steps, gradient):
    trace = explain(NESTED, point)
    assert [e.name for e in trace.entries if e.computed] == computed
    assert all(e.value is None and e.adjoint is None for e in trace.entries if not e.computed)
    assert [(b.entry, b.condition, b.value, b.taken, b.skipped) for b in trace.branches] == branches
    assert [(s.target, s.origin) for s in trace.steps] == steps
    assert [s.step for s in trace.steps] == list(range(1, len(steps) + 1))
    assert tuple(p.value for p in trace.partials) == gradient
    gradient_agrees(NESTED, trace)
    inner = trace.entries[6]  # w7 = log(w1), only where x > 0 and y <= 0
    assert (inner.name, inner.branch) == ("w7", (("w2", True), ("w4", False)))


def test_a_definition_holding_a_branch_used_later():
    expr = "r = max(x, 0); r^2 + y*r"
    trace = explain(expr, {"x": 3, "y": 2})
    assert [b.source for b in trace.branches] == ["max(x, 0)"]
    assert (trace.value, [(p.formula, p.value) for p in trace.partials]) == (15.0, [("2 * x + y", 8.0), ("x", 3.0)])
    gradient_agrees(expr, trace)
    trace = explain(expr, {"x": -2, "y": 2})
    assert "   w2 = x >= 0 is false: max(x, 0) takes 0, not x (w1)." in str(trace).splitlines()
    assert (trace.value, tuple(p.value for p in trace.partials)) == (0.0, (0.0, 0.0))
    gradient_agrees(expr, trace)
    # A definition used only inside a branch is named in it, and not computed outside it.
    trace = explain("u = log(x); where(x > 0, u, 0)", {"x": -1})
    (branch,) = trace.branches
    assert (branch.taken_text, branch.not_taken_text, branch.skipped) == ("0", "u", ("w3",))
    assert [e.computed for e in trace.entries] == [True, True, False, True]
    assert "   No steps: the branches taken at this point give z a constant value." in str(trace).splitlines()


def test_json_keys_values_and_documentation():
    data = json.loads(explain(LOG_OR_SQUARE, {"x": -3}).json())
    assert data["schema"] == SCHEMA == "symdiff.explain/2"
    assert list(data)[5:8] == ["forward", "branches", "seed"]
    assert data["forward"][1] == {
        "entry": "w2", "op": "gt", "definition": "w1 > 0", "operands": ["w1"], "value": False, "adjoint": None,
        "span": [6, 11], "computed": True, "branch": [],
    }
    assert data["forward"][2] == {
        "entry": "w3", "op": "log", "definition": "log(w1)", "operands": ["w1"], "value": None, "adjoint": None,
        "span": [13, 19], "computed": False, "branch": [{"condition": "w2", "value": True}],
    }
    assert data["branches"] == [
        {
            "entry": "w5", "function": "where", "source": LOG_OR_SQUARE, "condition": "w2", "condition_text": "x > 0",
            "value": False, "taken": "w4", "taken_text": "x^2", "not_taken": "w3", "not_taken_text": "log(x)",
            "skipped": ["w3"],
        }
    ]
    assert [step["target"] for step in data["reverse"]] == ["w4", "w1"]
    assert data["gradient"] == [{"wrt": "x", "entry": "w1", "formula": "2 * x", "value": -6.0}]
    # Every key, the new ones included, is documented in the module docstring and in the docs.
    records = [data, data["forward"][2], data["forward"][2]["branch"][0], data["branches"][0]]
    keys = {key for record in records for key in record}
    documentation = sys.modules["symdiff.teaching.explain"].__doc__
    assert [key for key in sorted(keys) if key not in documentation or f"`{key}`" not in LEARN.read_text()] == []
    # Without branches the new keys are there too, empty: a tool reads one shape.
    plain = json.loads(explain("x*y", {"x": 1, "y": 2}).json())
    assert plain["branches"] == [] and plain["forward"][2]["computed"] is True and plain["forward"][2]["branch"] == []


def test_markdown_latex_and_html_show_the_branch():
    trace = explain(LOG_OR_SQUARE, {"x": -3})
    markdown = trace.markdown()
    assert "| w3 | log(w1) | not computed |" in markdown
    assert "| w2 | w1 \\> 0 | false |" in markdown
    assert (
        "- w2 = `x > 0` is false: `where(x > 0, log(x), x^2)` takes `x^2` (w4), so `log(x)` (w3) is not computed.\n"
        in markdown
    )
    latex = trace.latex()
    assert r"$w_{3}$ & $\operatorname{log}\left(w_{1}\right)$ & \text{not computed} \\" in latex
    assert (
        r"$w_{2}$ = \texttt{x > 0} is false: \texttt{where(x > 0, log(x), x\^{}2)} takes \texttt{x\^{}2} ($w_{4}$), "
        r"so \texttt{log(x)} ($w_{3}$) is not computed." in latex
    )
    html = trace.html()
    assert "<tr><td>w3</td><td>log(w1)</td><td>not computed</td></tr>" in html
    assert (
        "<li>w2 = <code>x &gt; 0</code> is false: <code>where(x &gt; 0, log(x), x^2)</code> takes <code>x^2</code> "
        "(w4), so <code>log(x)</code> (w3) is not computed.</li>" in html
    )
    ascii_text = trace.text(ascii=True)
    assert "   dz/dx = w1_bar = 2 * x = -6" in ascii_text.splitlines()
    assert ascii_text.isascii()


def test_cli_explains_max(capsys):
    assert cli.main(["explain", "max(x, y)", "--at", "x=1,y=2", "--ascii"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0] == "Reverse mode, step by step: z = max(x, y) at x = 1, y = 2"
    for line in [
        "   w3     w1 >= w2           false",
        "   w4     where(w3, w1, w2)      2",
        "   w3 = x >= y is false: max(x, y) takes y (w2), not x (w1).",
        "      1  w2_bar += w4_bar * dw4/dw2  1                   1  w2_bar = 1",
        "   dz/dx = w1_bar = 0",
        "   dz/dy = w2_bar = 1",
    ]:
        assert line in lines


def test_graph_marks_the_branch_not_taken():
    dot = symdiff.graph(LOG_OR_SQUARE, at={"x": -3}).dot
    lines = dot.splitlines()
    for line in [
        '  "w2" [label=<w2 = w1 &gt; 0 is false>];',
        '  "w3" [label=<w3 = log(w1)<br/>not taken>, style="rounded,dashed", color="grey", fontcolor="grey"];',
        '  "w4" [label=<w4 = w1 ^ 2 = 9<br/><font color="#b03a2e">w̄4 = 1</font>>];',
        '  "w1" -> "w2" [label=<>, style=dotted];',
        '  "w1" -> "w3" [label=<∂w3/∂w1 = 1 / w1, not taken>, style=dashed, color="grey", fontcolor="grey"];',
        '  "w1" -> "w4" [label=<∂w4/∂w1 = 2 · w1 ^ (2 - 1) = -6>];',
        '  "w2" -> "w5" [label=<condition>, style=dotted];',
        '  "w3" -> "w5" [label=<∂w5/∂w3 = 1, not taken>, style=dashed, color="grey", fontcolor="grey"];',
        '  "w4" -> "w5" [label=<∂w5/∂w4 = 1>];',
    ]:
        assert line in lines
    assert "nan" not in dot
    # At x = 2 the other branch is the one not taken.
    dot = symdiff.graph(LOG_OR_SQUARE, at={"x": 2}).dot
    assert '  "w4" [label=<w4 = w1 ^ 2<br/>not taken>, style="rounded,dashed", color="grey", fontcolor="grey"];' in dot
    assert '  "w3" -> "w5" [label=<∂w5/∂w3 = 1>];' in dot


def test_graph_without_a_point_shows_both_branches_with_their_conditions():
    lines = symdiff.graph("max(x, y)").dot.splitlines()
    assert [line for line in lines if "->" in line] == [
        '  "w1" -> "w3" [label=<>, style=dotted];',
        '  "w2" -> "w3" [label=<>, style=dotted];',
        '  "w3" -> "w4" [label=<condition>, style=dotted];',
        '  "w1" -> "w4" [label=<∂w4/∂w1 = 1 if w3>];',
        '  "w2" -> "w4" [label=<∂w4/∂w2 = 1 if not w3>];',
    ]
    assert "dashed" not in "\n".join(lines) and "not taken" not in "\n".join(lines)


def test_graph_of_a_nested_where_greys_the_inner_where_with_its_branch():
    dot = symdiff.graph(NESTED, at={"x": -4, "y": 1}).dot
    grey = [line.split('"')[1] for line in dot.splitlines() if "->" not in line and "rounded,dashed" in line]
    assert grey == ["w4", "w5", "w6", "w7", "w8"]  # the condition y > 0 too: it is never computed
    assert '  "w4" -> "w8" [label=<not taken>, style=dotted, color="grey", fontcolor="grey"];' in dot
    assert '  "w8" -> "w13" [label=<∂w13/∂w8 = 1, not taken>, style=dashed, color="grey", fontcolor="grey"];' in dot
