"""verify proves the code people run (issue 19, items 9 and 10): the generated module is run on
SymPy symbols where it does not branch and at check points that take every branch otherwise, each
backend's code is compared with the proven values, and long flat sums are proven, not refused."""

import importlib
import math
import random

import pytest
from support import needs_compiler

import symdiff
from symdiff.errors import LimitError

render_module = importlib.import_module("symdiff.codegen.python")


def _emitted(report):
    return {check.subject: check for check in report.emitted}


def _with_extra_code(monkeypatch, extra: str):
    """The renderer's module with `extra` appended: a later def replaces an entry point."""
    render = render_module.render

    def broken(adjoint, *args, **kwargs):
        return render(adjoint, *args, **kwargs) + extra

    monkeypatch.setattr(render_module, "render", broken)


# --- the emitted code is part of the proof --------------------------------------------------------


def test_the_report_shows_the_generated_code_checked_on_symbols():
    report = symdiff.verify("x1*x2 + sin(x1)")
    assert report.ok
    assert [(c.subject, c.equal, c.method) for c in report.emitted] == [
        ("python f", True, "run on symbols"),
        ("python grad", True, "run on symbols"),
        ("python value_and_grad", True, "run on symbols"),
    ]
    text = str(report)
    assert "  generated code vs proven gradient:\n    python f              ok           run on symbols\n" in text
    assert text.endswith("result: all proven equal")


def test_a_module_that_raises_is_a_failed_proof(monkeypatch):
    """As item 8's module did (UnboundLocalError at every point) while verify said "all proven"."""
    _with_extra_code(monkeypatch, "\n\ndef grad(x, y):\n    raise UnboundLocalError('w6 is not assigned')\n")
    report = symdiff.verify("x*y + sin(x)")
    assert not report.ok
    assert all(check.equal for check in report.gradient + report.simplification + report.rules)
    checks = _emitted(report)
    assert checks["python f"].equal and checks["python value_and_grad"].equal
    failed = checks["python grad"]
    assert failed.equal is False
    assert failed.method.startswith("raised at x=") and ", y=" in failed.method
    assert failed.actual == "UnboundLocalError: w6 is not assigned"
    text = str(report)
    assert "python grad" in text and "MISMATCH" in text and "UnboundLocalError" in text
    assert text.endswith("result: NOT proven")


def test_a_module_with_wrong_numbers_is_caught_on_symbols(monkeypatch):
    _with_extra_code(monkeypatch, "\n\ndef grad(x, y):\n    return (y, x + 1.0)\n")  # d/dy is x
    report = symdiff.verify("x*y")
    assert not report.ok
    failed = [check for check in report.emitted if check.equal is not True]
    assert [(check.subject, check.equal) for check in failed] == [("python grad: d/dy", False)]
    assert (failed[0].expected, failed[0].actual) == ("x", "x + 1")


def test_a_branch_only_some_points_take_is_run(monkeypatch):
    """The check points take both sides of every where(): a grad wrong only for x > 2.5 is caught."""
    # Right only where x <= 2.5; its own branch keeps it from running on symbols.
    _with_extra_code(monkeypatch, "\n\ndef grad(x):\n    return (1.0 if x > 2.5 else 1.0,)\n")
    report = symdiff.verify("where(x > 2.5, x^2, x)")
    failed = _emitted(report)["python grad"]
    assert failed.equal is False and failed.method.startswith("d/dx differs at x=")
    point = float(failed.method.removeprefix("d/dx differs at x="))
    assert point > 2.5 and failed.actual == "(1.0,)"


def test_check_points_cover_both_sides_of_every_branch():
    report = symdiff.verify("u = max(x, y); where(z > 0, u, 1) + min(x, 2)")
    assert report.ok, str(report)
    assert report.unreached == ()
    assert all(check.method.startswith("numeric (") for check in report.emitted)


def test_branches_no_point_takes_are_reported():
    report = symdiff.verify("where(x*x < 0, 1, x) + y")
    assert report.ok, str(report)
    assert report.unreached == ("where(x*x < 0, 1, x) with its condition true",)
    assert "    branch never taken at the check points: where(x*x < 0, 1, x) with its condition true" in str(report)


def test_item_8_expression_is_proven_on_code_that_runs():
    """Passes once the generated module assigns w5 before `if w5:` (issue 19, item 8)."""
    report = symdiff.verify("u = max(x, y); where(z > 0, u, 1)")
    assert report.ok, str(report)
    assert {check.subject for check in report.emitted} == {"python f", "python grad", "python value_and_grad"}
    assert symdiff.compile_grad("u = max(x, y); where(z > 0, u, 1)").verify().ok


def test_anything_the_code_does_is_reported_not_raised():
    from symdiff.verify import Emitted, python_module, verify_programs

    programs = symdiff.api.build("x*y")
    rubbish = {"f": lambda x, y: "not a number", "grad": lambda x, y: (1.0,), "value_and_grad": lambda x, y: 7}
    cases = [
        Emitted("fake", rubbish.__getitem__),
        Emitted("fake", lambda name: (_ for _ in ()).throw(MemoryError("loading"))),
        python_module("def f(x, y:\n    return x\n"),  # does not compile
    ]
    for module in cases:
        report = verify_programs(programs.raw, programs.adjoint, modules=(module,))
        assert not report.ok
        assert all(check.equal is False for check in report.emitted), str(report)
    report = verify_programs(programs.raw, programs.adjoint, modules=(cases[0],))
    methods = {check.subject: (check.method, check.actual) for check in report.emitted}
    assert methods["fake f"][1] == "ValueError: could not convert string to float: 'not a number'"
    assert methods["fake grad"][1] == "ValueError: returned 1 partials, expected 2"
    assert methods["fake value_and_grad"][1] == "TypeError: cannot unpack non-iterable int object"
    report = verify_programs(programs.raw, programs.adjoint, modules=(cases[2],))
    assert {check.method for check in report.emitted} == {"could not be loaded"}


def test_gradient_verify_checks_the_functions_it_runs(monkeypatch):
    g = symdiff.compile_grad("x*y + sin(x)")
    assert g.verify().ok and len(g.verify().emitted) == 3
    render = importlib.import_module("symdiff.callables.python").render_module

    def wrong_value(program, functions=None):
        text = render(program, functions)
        return text + "\n\ndef f(x, y):\n    return 0.0\n" if functions == ("f",) else text

    monkeypatch.setattr(importlib.import_module("symdiff.callables.python"), "render_module", wrong_value)
    g = symdiff.compile_grad("x*y + sin(x)")
    checks = _emitted(g.verify())
    assert checks["python f: value"].equal is False
    assert checks["python grad"].equal and checks["python value_and_grad"].equal
    assert g.value(1.0, 2.0) == 0.0  # what was checked is what g runs


def test_numpy_gradient_verify_runs_the_numpy_code(monkeypatch):
    pytest.importorskip("numpy")
    numpy_backend = importlib.import_module("symdiff.codegen.numpy")
    g = symdiff.compile_grad("exp(-x) + (-x)*x*2 + x*y", backend="numpy")  # item 7's expression
    report = g.verify()
    assert report.ok, str(report)
    assert [check.subject for check in report.emitted] == ["numpy f", "numpy grad", "numpy value_and_grad", "numpy batch"]
    render = numpy_backend.render_numpy
    planted = "\n\ndef grad(x, y):\n    raise ZeroDivisionError('planted')\n"
    monkeypatch.setattr(numpy_backend, "render_numpy", lambda adjoint, *rest: render(adjoint, *rest) + planted)
    g = symdiff.compile_grad("exp(-x) + (-x)*x*2 + x*y", backend="numpy")
    failed = _emitted(g.verify())["numpy grad"]
    assert failed.equal is False and failed.actual == "ZeroDivisionError: planted"
    assert failed.method.startswith("raised at x=")


@needs_compiler
@pytest.mark.usefixtures("private_c_cache")
def test_c_gradient_verify_runs_the_c_code():
    g = symdiff.compile_grad("x*y + sin(x) - x/y", backend="c")
    report = g.verify()
    assert report.ok, str(report)
    assert [check.subject for check in report.emitted] == ["c f", "c grad", "c value_and_grad", "c batch"]
    g.value = lambda *point: 1.0  # what g.value returns is what is checked
    failed = _emitted(g.verify())["c f"]
    assert failed.equal is False and failed.method.startswith("value differs at x=")


# --- long flat sums are proven, and only real nesting is refused ----------------------------------


def test_a_sum_of_2000_products_is_proven():
    text = " + ".join(f"x{i}*x{i + 1}" for i in range(2000))
    report = symdiff.verify(text)  # before: a LimitError at 151 terms
    assert report.ok
    assert len(report.gradient) == 2001
    assert {check.method for check in report.gradient + report.simplification} == {"symbolic"}
    assert {check.method for check in report.emitted} == {"run on symbols"}


def test_a_least_squares_objective_over_200_points_is_proven():
    rng = random.Random(19)
    data = [(rng.uniform(0, 10), rng.uniform(0, 10)) for _ in range(200)]
    text = " + ".join(f"(a*{t:.3f} + b - {y:.3f})^2" for t, y in data)
    report = symdiff.verify(text)
    assert report.ok, str(report).splitlines()[-8:]
    assert {check.method for check in report.gradient} == {"symbolic"}


def test_an_adjoint_that_merges_1500_contributions_is_proven():
    """x_bar is one term y0 + y1 + ... : rebuilt for SymPy without recursion."""
    report = symdiff.verify(" + ".join(f"x*y{i}" for i in range(1500)), wrt=["x"])
    assert report.ok and report.gradient[0].method == "symbolic"


def test_nesting_is_measured_as_sympy_sees_it():
    """A sum of 300 terms is one level of SymPy's tree (an Add), not 300; sin(sin(...)) is real nesting."""
    with pytest.raises(LimitError, match=r"nested 151 deep here; verify handles up to 150"):
        symdiff.verify("sin(" * 150 + "x + y" + ")" * 150)
    # Counted term by term, as before, this was 303 deep; SymPy sees 4 levels.
    assert symdiff.verify("sin(" * 3 + " + ".join(f"x{i}" for i in range(300)) + ")" * 3).ok


def test_verify_runs_the_code_of_the_worked_examples():
    from support import WORKED

    for text, *_ in WORKED:
        report = symdiff.verify(text)
        assert report.ok
        assert {check.method for check in report.emitted} <= {"run on symbols", "numeric (3 points)"}
    assert math.isclose(symdiff.compile_grad(WORKED[0][0])(2.0, 3.0)[0], WORKED[0][3][0])
