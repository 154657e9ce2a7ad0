"""explain: the textbook walk-through. Golden traces, numbers against compile_grad, formulas against
SymPy, every format's structure, linear size on long expressions, errors, the CLI, the docs section."""

import html.parser
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy
from support import REGENERATE, WORKED

import symdiff
from symdiff import ArgumentError, DomainError, SymdiffError
from symdiff.core import primitives
from symdiff.teaching.explain import FORMATS, SCHEMA, _width, explain, format_number

GOLDEN = Path(__file__).parent / "golden" / "explain"
ROOT = Path(__file__).resolve().parent.parent
LEARN = ROOT / "docs" / "learn-reverse-mode.md"  # the page the README links to
GOLDEN_CASES = {
    "textbook": ("x1*x2 + sin(x1)", {"x1": 2, "x2": 3}),
    "log_example": ("log(x1) + x1*x2 - sin(x2)", {"x1": 2, "x2": 5}),
    "xyz": ("x*y + (x + y)*z", {"x": 2, "y": 3, "z": 5}),
}
SUFFIXES = {"text": "txt", "ascii": "ascii.txt", "markdown": "md", "latex": "tex", "json": "json", "html": "html"}

# Expressions across the table, each with a point inside every function's domain.
CASES = [
    ("x1*x2 + sin(x1)", {"x1": 2, "x2": 3}),
    ("log(x1) + x1*x2 - sin(x2)", {"x1": 2, "x2": 5}),
    ("x*y + (x + y)*z", {"x": 2, "y": 3, "z": 5}),
    ("exp(-0.5*x^2)/sqrt(2*pi)", {"x": 0.7}),
    ("atan2(y, x) + abs(x - y)", {"x": 1.5, "y": -0.4}),
    ("x^y + y^x", {"x": 1.3, "y": 2.1}),
    ("tanh(a*b) - cos(a)/b", {"a": 0.3, "b": 1.7}),
    ("log(1 + exp(x)) - x", {"x": 0.2}),
    ("-x^2 + 2^-x", {"x": 0.9}),
    ("x*x*x", {"x": 2}),
    ("sqrt(x^2 + y^2)", {"x": 3, "y": 4}),
    ("asin(x) + acos(x)*atan(x)", {"x": 0.3}),
    ("sinh(x)*cosh(y) + tan(x*y)", {"x": 0.4, "y": 0.5}),
    ("sign(x)*x + 0.1*x", {"x": -2}),
    ("(x + y)^3 / (1 + x^2)", {"x": 0.5, "y": 1.5}),
    ("exp(exp(x)) * log(y)", {"x": 0.1, "y": 2}),
    ("x^0.5 * log(y)", {"x": 2, "y": 3}),
    ("pow(x, 2.5) + pow(y, 2)", {"x": 1.2, "y": -0.7}),
    ("1/(1 + exp(-(w*x + b)))", {"w": 0.5, "x": 2, "b": -0.3}),
    ("(x - y)/(x + y) - x/y", {"x": 3, "y": 2}),
    ("atan2(sin(t), cos(t)) * r", {"t": 0.4, "r": 2}),
    ("cos(x)^2 + sin(x)^2", {"x": 0.7}),
    ("a*b*c*d + a*c", {"a": 1, "b": 2, "c": 3, "d": 4}),
    ("abs(sin(x)) / (1 + x^2)", {"x": -1.1}),
    ("x - x", {"x": 1}),
    ("x", {"x": 5}),
]


def golden(name, text):
    path = GOLDEN / name
    if REGENERATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"regenerate with SYMDIFF_REGENERATE=1 if intended: {name}"


def formatted(trace, kind):
    return trace.text(ascii=True) if kind == "ascii" else trace.format(kind)


def to_sympy(text, names):
    """Our formula syntax read by SymPy's own parser (independent of symdiff's)."""
    functions = {row.name: row.sympy for row in primitives.TABLE.values() if row.user_callable}
    symbols = {name: sympy.Symbol(name, real=True) for name in names}
    return sympy.parse_expr(text.replace("^", "**"), local_dict={**functions, **symbols, "pi": sympy.pi})


def agree(a, b, points):
    """Equal as formulas: expand to the same thing, or the same number at every point."""
    if sympy.expand(a - b) == 0:
        return True
    for point in points:
        x, y = complex(a.evalf(30, subs=point)), complex(b.evalf(30, subs=point))
        if not math.isclose(x.real, y.real, rel_tol=1e-9, abs_tol=1e-12) or abs(x.imag - y.imag) > 1e-9:
            return False
    return True


# ---------------------------------------------------------------------------------------------------
# Golden traces and the textbook's numbers


@pytest.mark.parametrize("kind", sorted(SUFFIXES))
@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_traces(name, kind):
    expression, point = GOLDEN_CASES[name]
    golden(f"{name}.{SUFFIXES[kind]}", formatted(explain(expression, point), kind))


def test_textbook_trace_is_the_textbook():
    trace = explain("x1*x2 + sin(x1)", at={"x1": 2, "x2": 3})
    text = str(trace)
    forward = {line.split()[0]: line.split() for line in text.splitlines() if re.match(r"   (w\d|z) ", line)}
    assert [forward[f"w{i}"][-1] for i in range(1, 6)] == ["2", "3", "6", "0.909", "6.909"]
    assert forward["w3"][1:4] == ["w1", "·", "w2"] and forward["z"][1:] == ["w5", "6.909"]
    assert "z̄ = w̄5 = 1, because ∂z/∂z = 1" in text
    totals = [line.split("  ")[-1] for line in text.splitlines() if re.match(r"\s+\d  w̄", line)]
    assert totals == ["w̄3 = 1", "w̄4 = 1", "w̄1 = cos(w1) = -0.416", "w̄1 = w2 + cos(w1) = 2.584", "w̄2 = w1 = 2"]
    assert "∂z/∂x1 = w̄1 = x2 + cos(x1) = 2.584" in text and "∂z/∂x2 = w̄2 = x1 = 2" in text
    # x1 feeds w3 and w4: two += rows for its adjoint, and a note saying so.
    assert [step.origin for step in trace.steps if step.target == "w1"] == ["w4", "w3"]
    assert "w̄1 adds up 2 contributions (steps 3, 4), one for each use of w1 (by w4, w3)." in text
    steps = {(s.origin, s.target): s for s in trace.steps}
    assert steps["w3", "w1"].partial == "w2" and steps["w4", "w1"].partial == "cos(w1)"


@pytest.mark.parametrize(("expression", "point", "value", "gradient"), WORKED)
def test_worked_examples_numbers(expression, point, value, gradient):
    trace = explain(expression, point)
    assert math.isclose(trace.value, value, rel_tol=1e-12)
    assert [p.value for p in trace.partials] == pytest.approx(gradient, rel=1e-12)


def test_worked_example_formulas():
    formulas = {e: [p.formula for p in explain(e, pt).partials] for e, pt, *_ in WORKED}
    assert formulas == {
        "x1*x2 + sin(x1)": ["x2 + cos(x1)", "x1"],
        "log(x1) + x1*x2 - sin(x2)": ["x2 + 1 / x1", "x1 - cos(x2)"],
        "x*y + (x + y)*z": ["y + z", "x + z", "x + y"],
    }


# ---------------------------------------------------------------------------------------------------
# Numbers equal compile_grad's; formulas equal sympy.diff; the trace's own arithmetic adds up


@pytest.mark.parametrize(("expression", "point"), CASES)
def test_numbers_equal_compile_grad(expression, point):
    trace = explain(expression, point)
    value, gradient = symdiff.compile_grad(expression).value_and_grad(**point)
    assert math.isclose(trace.value, value, rel_tol=1e-12, abs_tol=1e-15)
    assert [p.wrt for p in trace.partials] == list(symdiff.compile_grad(expression).wrt)
    for partial, expected in zip(trace.partials, gradient, strict=True):
        assert math.isclose(partial.value, expected, rel_tol=1e-12, abs_tol=1e-15), (partial, expected)


@pytest.mark.parametrize(("expression", "point"), CASES)
def test_gradient_formulas_equal_sympy_diff(expression, point):
    trace = explain(expression, point)
    names = [name for name, _ in trace.point]
    function = to_sympy(expression, names)
    symbols = {name: sympy.Symbol(name, real=True) for name in names}
    points = [{symbols[n]: sympy.Float(v * scale) for n, v in trace.point} for scale in (1, 1.01, 0.97)]
    for partial in trace.partials:
        assert partial.formula is not None, partial
        expected = sympy.diff(function, symbols[partial.wrt])
        assert agree(to_sympy(partial.formula, names), expected, points), (partial.formula, expected)


@pytest.mark.parametrize(("expression", "point"), CASES)
def test_step_formulas_and_arithmetic_are_consistent(expression, point):
    """Every partial and running total, read over the entries, has the number shown beside it; each
    contribution is adjoint * partial; each total is the previous total plus the contribution."""
    trace = explain(expression, point)
    values = {sympy.Symbol(e.name, real=True): sympy.Float(e.value, 30) for e in trace.entries}
    names = [e.name for e in trace.entries]
    running = {e.name: 0.0 for e in trace.entries} | ({trace.output_entry: 1.0} if trace.output_entry else {})
    for step in trace.steps:
        assert step.origin_adjoint == running[step.origin]
        assert step.contribution == step.origin_adjoint * step.partial_value
        assert step.total == running[step.target] + step.contribution
        running[step.target] = step.total
        assert math.isclose(float(to_sympy(step.partial, names).evalf(subs=values)), step.partial_value, rel_tol=1e-12)
        if step.total_formula is not None:
            shown = float(to_sympy(step.total_formula, names).evalf(subs=values))
            assert math.isclose(shown, step.total, rel_tol=1e-9, abs_tol=1e-12)
    assert {e.name: e.adjoint for e in trace.entries} == running


def test_wrt_chooses_and_orders_the_partials():
    trace = explain("x*y + z", {"x": 2, "y": 3, "z": 4}, wrt="z,x")
    assert [(p.wrt, p.formula, p.value) for p in trace.partials] == [("z", "1", 1.0), ("x", "y", 3.0)]
    absent = explain("x^2", {"x": 3}, wrt=["x", "q"]).partials[1]
    assert (absent.entry, absent.formula, absent.value) == (None, "0", 0.0)
    assert "∂z/∂q = 0 (q does not occur)" in str(explain("x^2", {"x": 3}, wrt=["x", "q"]))


def test_names_never_clash_with_the_users():
    trace = explain("w1*w2 + v1", {"w1": 1, "w2": 2, "v1": 3})
    assert [e.name for e in trace.entries] == ["u1", "u2", "u3", "u4", "u5"]
    assert [e.definition for e in trace.entries][:3] == ["w1", "w2", "u1 * u2"]
    inputs = [f"{letter}1" for letter in "wvuts"] + ["w1_"]
    crowded = explain(" + ".join(inputs), dict.fromkeys(inputs, 1))
    assert crowded.entries[0].name == "w___1" and not {entry.name for entry in crowded.entries} & set(inputs)
    renamed_output = explain("z*f + y", {"z": 1, "f": 2, "y": 3})
    assert renamed_output.output == "g" and "∂g/∂z = w̄1 = f = 2" in str(renamed_output)


def test_constant_and_bare_input():
    constant = explain("3 + sin(2)", {})
    assert (constant.entries, constant.steps, constant.partials, constant.output_entry) == ((), (), (), None)
    assert "No steps: z is a constant." in str(constant) and "Nothing to differentiate" in str(constant)
    assert constant.to_dict()["seed"] is None
    bare = explain("x", {"x": 5})
    assert bare.steps == () and bare.partials[0].value == 1.0 and "No steps: z is the input x itself." in str(bare)


def test_long_formulas_are_left_out_not_truncated():
    trace = explain("sin(" * 30 + "x" + ")" * 30, {"x": 0.5})
    assert trace.partials[0].formula is None and trace.partials[0].value == pytest.approx(
        symdiff.compile_grad("sin(" * 30 + "x" + ")" * 30)(0.5)[0], rel=1e-12
    )
    assert "(the formula is too long to show)" in str(trace)


# ---------------------------------------------------------------------------------------------------
# Formats


def test_text_fits_100_columns_and_ascii_is_ascii():
    for expression, point in CASES:
        trace = explain(expression, point)
        assert max(map(_width, trace.text().splitlines())) <= 100, expression
        ascii_text = trace.text(ascii=True)
        assert ascii_text.isascii() and max(map(len, ascii_text.splitlines())) <= 100


def test_markdown_tables_are_rectangular():
    markdown = explain("atan2(y, x_1) * x_1", {"y": 1, "x_1": 2}).markdown()
    tables = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [len(re.findall(r"(?<!\\)\|", line)) for line in tables]
    assert set(cells) == {4, 6}
    assert r"x\_1" in markdown  # an underscore would start emphasis
    assert explain("x*y", {"x": 1, "y": 2})._repr_markdown_() == explain("x*y", {"x": 1, "y": 2}).markdown()


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.open, self.seen = [], set()

    def handle_starttag(self, tag, attrs):
        if tag != "br":
            self.open.append(tag)
            self.seen.add(tag)

    def handle_endtag(self, tag):
        assert self.open.pop() == tag


def test_html_is_well_formed_and_escaped():
    trace = explain("x1*x2 + sin(x1)", {"x1": 2, "x2": 3})
    parser = _Tags()
    parser.feed(trace._repr_html_())
    assert parser.open == [] and {"table", "thead", "tbody", "tr", "th", "td"} <= parser.seen
    assert "<td>w̄1 = w2 + cos(w1) = 2.584</td>" in trace.html()


def test_latex_structure():
    """No TeX on this machine: the document's structure is checked; it is also compiled if pdflatex is."""
    for expression, point in [*GOLDEN_CASES.values(), ("x_bar^2 / lambda", {"x_bar": 1, "lambda": 2})]:
        document = explain(expression, point).latex()
        assert document.isascii()
        assert _environments_nest(document) and _braces_balance(document.replace(r"\{", "").replace(r"\}", ""))
        body = document.split(r"\begin{document}")[1]
        assert all(line.count("$") % 2 == 0 for line in body.splitlines())
        assert r"\bar{w}_{1}" in document and r"\begin{longtable}" in document
    fragment = explain("x*y", {"x": 1, "y": 2}).latex(standalone=False)
    assert r"\documentclass" not in fragment and r"\begin{longtable}{rllrl}" in fragment


def _environments_nest(text):
    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", text):
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def _braces_balance(text):
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_latex_math_parses_as_tex():
    """Every $...$ piece is read by a TeX math parser (matplotlib's mathtext, where installed). It lacks
    \\mathrel, which writes += as one relation in real LaTeX, so that is spelled out plainly for it."""
    mathtext = pytest.importorskip("matplotlib.mathtext")
    parser = mathtext.MathTextParser("path")
    expression = "x_bar^2 / lambda + atan2(y, x_bar) - 1e-5*abs(y)^-2 + exp(-0.5*y^2)/sqrt(2*pi)"
    document = explain(expression, {"x_bar": 1.5, "lambda": 2, "y": 0.3}).latex()
    pieces = re.findall(r"\$([^$]*)\$", document)
    assert len(pieces) > 100
    for piece in pieces:
        parser.parse("$" + piece.replace(r"\mathrel{+}=", "+=") + "$")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles(tmp_path):
    (tmp_path / "trace.tex").write_text(explain("log(x1) + x1*x2 - sin(x2)", {"x1": 2, "x2": 5}).latex())
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "trace.tex"], cwd=tmp_path, capture_output=True)
    assert result.returncode == 0 and (tmp_path / "trace.pdf").exists()


def test_json_is_stable_documented_and_round_trips():
    trace = explain("x1*x2 + sin(x1)", {"x1": 2, "x2": 3})
    text = trace.json()
    data = json.loads(text)
    assert data == trace.to_dict() and json.dumps(data, indent=2) + "\n" == text
    assert list(data) == [
        "schema", "expression", "point", "value", "output", "forward", "branches", "seed", "reverse", "gradient",
    ]
    assert data["schema"] == SCHEMA
    assert list(data["forward"][0]) == [
        "entry", "op", "definition", "operands", "value", "adjoint", "span", "computed", "branch",
    ]
    assert list(data["reverse"][0]) == [
        "step", "target", "origin", "operand", "partial", "partial_value", "origin_adjoint", "contribution",
        "total", "total_formula",
    ]
    assert data["gradient"][0] == {"wrt": "x1", "entry": "w1", "formula": "x2 + cos(x1)", "value": 2.5838531634528574}
    # Every key is documented, in the module docstring and in the docs.
    keys = {key for record in [data, data["output"], data["forward"][0], data["reverse"][0]] for key in record}
    documentation = sys.modules["symdiff.teaching.explain"].__doc__
    assert all(key in documentation and key in LEARN.read_text() for key in keys)


def test_format_rejects_unknown_kinds_and_digits():
    trace = explain("x*y", {"x": 1, "y": 2})
    with pytest.raises(SymdiffError, match="unknown format"):
        trace.format("pdf")
    with pytest.raises(ArgumentError, match="digits"):
        trace.text(digits=0)
    assert set(FORMATS) == {"text", "markdown", "latex", "json", "html"}


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.0, "2"), (0.9092974268256817, "0.909"), (6.909297426825682, "6.909"), (-0.4161468365471424, "-0.416"),
     (11.652071455223084, "11.652"), (0.0012345, "0.00123"), (1.5e-7, "1.5e-07"), (123456789.5, "1.235e+08"),
     (0.0, "0"), (-3.0, "-3")],
)
def test_format_number(value, text):
    assert format_number(value) == text


# ---------------------------------------------------------------------------------------------------
# Long expressions stay linear


def _chain(n):
    """An expression of about n entries mixing sharing, nesting and fan-out."""
    terms = [f"x{i}*sin(x{i + 1}) + exp(-x{i})/(1 + x{i + 1}^2)" for i in range(n // 10)]
    return " + ".join(terms)


def test_trace_size_is_linear_in_entries():
    sizes = {}
    for n in (200, 400):
        expression = _chain(n)
        program = symdiff.compile_grad(expression)
        trace = explain(expression, {name: 0.5 for name in program.inputs})
        text = trace.text()
        entries, steps = len(trace.entries), len(trace.steps)
        assert entries >= 0.9 * n
        assert len(text.splitlines()) <= 2 * (entries + steps) + 60
        assert max(map(_width, text.splitlines())) <= 100
        sizes[n] = {kind: len(formatted(trace, kind)) for kind in SUFFIXES} | {"entries": entries}
    ratio = sizes[400]["entries"] / sizes[200]["entries"]
    for kind in SUFFIXES:
        assert sizes[400][kind] / sizes[200][kind] <= 1.1 * ratio, kind


def test_a_deep_expression_is_explained_without_recursion_trouble():
    expression = "x"
    for i in range(300):
        expression = f"{['sin', 'tanh', 'exp'][i % 3]}(0.5*{expression})"
    trace = explain(expression, {"x": 0.3})
    assert len(trace.entries) == 601
    assert math.isclose(trace.partials[0].value, symdiff.compile_grad(expression)(0.3)[0], rel_tol=1e-9)


# ---------------------------------------------------------------------------------------------------
# Errors point at the user's text


def test_bad_points_are_clear_errors():
    with pytest.raises(ArgumentError, match="no value for x2"):
        explain("x1*x2", {"x1": 1})
    with pytest.raises(ArgumentError, match="gives q, not in the expression"):
        explain("x1", {"x1": 1, "q": 2})
    with pytest.raises(ArgumentError, match="is not a real number"):
        explain("x", {"x": "2"})
    with pytest.raises(ArgumentError, match="not a finite number"):
        explain("x", {"x": math.inf})
    with pytest.raises(ArgumentError, match="mapping"):
        explain("x", None)


def test_points_outside_the_domain_point_at_the_function():
    with pytest.raises(DomainError) as forward:
        explain("x + log(x - 3)", {"x": 1})
    assert forward.value.span == (4, 14) and "log(-2) has no real value" in forward.value.message
    with pytest.raises(DomainError) as backward:
        explain("1 + sqrt(x)", {"x": 0})
    assert backward.value.span == (4, 11) and "sqrt(0) has no derivative at this point" in backward.value.message
    with pytest.raises(DomainError, match=r"1:1: 0 \^ -1 has no real value"):
        explain("x^-1", {"x": 0})


# ---------------------------------------------------------------------------------------------------
# The command line


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "symdiff", *args], capture_output=True, text=True, encoding="utf-8",
        env={**os.environ, **(env or {})},
    )


def test_cli_prints_every_format_byte_for_byte_across_hash_seeds():
    trace = explain("log(x1) + x1*x2 - sin(x2)", {"x1": 2, "x2": 5})
    for kind, seed in [("text", "0"), ("json", "1"), ("latex", "2")]:
        result = run("explain", "log(x1) + x1*x2 - sin(x2)", "--at", "x1=2,x2=5", "--format", kind,
                     env={"PYTHONHASHSEED": seed})
        assert result.returncode == 0 and result.stderr == ""
        assert result.stdout == trace.format(kind)


def test_cli_ascii_digits_and_unicode_fallback():
    ascii_flag = run("explain", "x*y", "--at", "x=1,y=2", "--ascii", "--digits", "5")
    assert ascii_flag.stdout == explain("x*y", {"x": 1, "y": 2}).text(ascii=True, digits=5)
    fallback = run("explain", "x*y", "--at", "x=1,y=2", env={"PYTHONIOENCODING": "ascii"})
    assert fallback.returncode == 0 and fallback.stdout == ascii_flag.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("x*y", "--at", "x=1"), "error: the point has no value for y (inputs: x, y)\n"),
        (("x*y", "--at", "x=1,y=two"), "error: --at: 'two' is not a number (in 'y=two')\n"),
        (("log(x)", "--at", "x=-1"), "error: 1:1: log(-1) has no real value at this point (math domain error)\n"
                                     "  log(x)\n  ^^^^^^\n"),
        (("sin(x)", "--at", "x=1", "--digits", "99"), "error: digits must be between 1 and 15, got 99\n"),
    ],
)
def test_cli_errors_exit_2_with_a_message(args, message):
    result = run("explain", *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message)


def test_cli_explain_requires_a_point():
    result = run("explain", "x")
    assert result.returncode == 2 and "--at" in result.stderr


# ---------------------------------------------------------------------------------------------------
# The docs section runs as written (it is pasted into the README, whose test runs it again)

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _learn_blocks(kind):
    return [body for language, body in BLOCK.findall(LEARN.read_text(encoding="utf-8")) if language == kind]


def test_learn_section_python_examples_run():
    examples = _learn_blocks("python")
    assert len(examples) >= 2
    for body in examples:
        exec(compile(body, str(LEARN), "exec"), {"__name__": "learn_example"})


def test_learn_section_console_examples_print_what_they_show():
    examples = _learn_blocks("console")
    assert len(examples) >= 2
    for body in examples:
        for command in re.split(r"^(?=\$ )", body, flags=re.M):
            if not command.strip():
                continue
            first, _, expected = command.partition("\n")
            words = shlex.split(first.removeprefix("$ "))
            assert words[0] == "symdiff"
            result = run(*words[1:])
            assert result.stdout + result.stderr == expected, first


def test_learn_page_is_linked_from_the_readme():
    text = LEARN.read_text(encoding="utf-8")
    assert text.startswith("# Learn reverse mode with symdiff\n")
    assert "docs/learn-reverse-mode.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](textbook-graph.png)" in text and (ROOT / "docs" / "textbook-graph.png").exists()
    # The Markdown pasted into the section is the tool's own output, rendered in place.
    assert explain("x*y + (x + y)*z", {"x": 2, "y": 3, "z": 5}).markdown() in text
