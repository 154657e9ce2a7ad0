"""verify: SymPy proves the program, the simplification and each rule; a wrong rule is caught."""

import dataclasses
import types

import pytest

import symdiff
from symdiff.core import primitives

BROAD = [
    "x1*x2 + sin(x1)",
    "log(x1) + x1*x2 - sin(x2)",
    "x*y + (x + y)*z",
    "exp(x)*cos(y) - tan(x)/y",
    "asin(x/2) + acos(y/3) + atan(x - y)",
    "sinh(x)*cosh(y) + tanh(x*y)",
    "sqrt(x^2 + y^2) + log(1 + x^2)",
    "atan2(y, x) + pow(x, y) + x^2.5",
    "x^3 - 3*x*y^2 + 1/x",
    "(x - y)^2 / (1 + x^2)",
    "exp(-x^2/2) / sqrt(2*pi)",
    "abs(x) * y",
    "x",
    "2 + 3",
]


@pytest.mark.parametrize("expr", BROAD)
def test_verify_proves_a_broad_set(expr):
    report = symdiff.verify(expr)
    assert report.ok, str(report)
    assert len(report.gradient) == len(symdiff.compile_grad(expr).wrt)


def test_report_text_and_methods():
    report = symdiff.verify("x1*x2 + sin(x1)")
    assert [check.subject for check in report.gradient] == ["d/dx1", "d/dx2"]
    assert all(check.method == "symbolic" for check in report.gradient)
    assert "result: all proven equal" in str(report)
    assert symdiff.compile_grad("x*y").verify().ok


def test_wrt_subset_and_absent_name():
    report = symdiff.verify("x*y", wrt=["y", "q"])
    assert [c.subject for c in report.gradient] == ["d/dy", "d/dq"]
    assert report.ok


@pytest.fixture
def wrong_sin(monkeypatch):
    """A table whose sin rule says d sin(x) = -cos(x)."""
    table = dict(primitives.TABLE)
    table["sin"] = dataclasses.replace(table["sin"], partials=("-cos(x)",))
    monkeypatch.setattr(primitives, "TABLE", types.MappingProxyType(table))


def test_a_wrong_rule_is_reported(wrong_sin):
    report = symdiff.verify("x1*x2 + sin(x1)")
    assert not report.ok
    by_subject = {check.subject: check for check in report.gradient}
    assert by_subject["d/dx1"].equal is False and by_subject["d/dx2"].equal is True
    bad_rules = [check for check in report.rules if check.equal is not True]
    assert [check.subject for check in bad_rules] == ["sin'(x)"]
    assert bad_rules[0].span == (8, 15)  # points at sin(x1) in the input
    assert "MISMATCH" in str(report) and "NOT proven" in str(report)


def test_numeric_fallback_when_simplification_hangs(monkeypatch):
    """A simplification that never finishes must not hang verify: it falls back to numbers."""
    import importlib
    import threading

    verify_module = importlib.import_module("symdiff.verify")  # symdiff.verify is the function

    release = threading.Event()

    def hanging_simplify(expr):
        release.wait(60)
        return expr

    monkeypatch.setattr(verify_module.sympy, "simplify", hanging_simplify)
    try:
        report = symdiff.verify("x^y", timeout=0.2)  # y*x^(y-1) is not syntactically x^y*y/x
    finally:
        release.set()
    assert report.ok
    methods = {check.subject: check.method for check in report.gradient}
    assert methods["d/dx"] == "numeric (4 points; simplification timed out)"
    assert methods["d/dy"] == "symbolic"


def test_an_overrun_leaves_working_precision_as_it_was(monkeypatch):
    """SymPy raises mpmath's global precision inside workprec(); an overrun must unwind it, or
    every later number is computed at the wrong precision (1/pi read as 32/101)."""
    import importlib
    import threading

    import mpmath

    verify_module = importlib.import_module("symdiff.verify")
    release = threading.Event()

    def low_precision_hang(expr):
        with mpmath.workprec(8):
            release.wait(60)
        return expr

    monkeypatch.setattr(verify_module.sympy, "simplify", low_precision_hang)
    try:
        report = symdiff.verify("x / pi + x^y", timeout=0.2)
    finally:
        release.set()
    assert mpmath.mp.prec == 53 and report.ok


def test_verify_from_another_thread_still_keeps_its_time_budget(monkeypatch):
    import importlib
    import threading

    verify_module = importlib.import_module("symdiff.verify")
    release = threading.Event()
    monkeypatch.setattr(verify_module.sympy, "simplify", lambda expr: release.wait(60) and expr)
    reports = []
    worker = threading.Thread(target=lambda: reports.append(symdiff.verify("x^y", timeout=0.2)))
    try:
        worker.start()
        worker.join(30)
    finally:
        release.set()
    assert reports and reports[0].ok
    assert {check.subject: check.method for check in reports[0].gradient}["d/dx"] == (
        "numeric (4 points; simplification timed out)"
    )
