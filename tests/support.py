import math
import os
import random
import shutil

import pytest

from symdiff.core import primitives
from symdiff.core.adjoint import Bar, Op
from symdiff.core.tape import Const, Ref

# Inputs of the three worked examples in ../shared/WORKED-EXAMPLES.md, with their golden numbers.
WORKED = [
    ("x1*x2 + sin(x1)", {"x1": 2.0, "x2": 3.0}, 6.909297426825682, (2.5838531634528574, 2.0)),
    ("log(x1) + x1*x2 - sin(x2)", {"x1": 2.0, "x2": 5.0}, 11.652071455223084, (5.5, 1.7163378145367738)),
    ("x*y + (x + y)*z", {"x": 2.0, "y": 3.0, "z": 5.0}, 31.0, (8.0, 7.0, 5.0)),
]

REGENERATE = os.environ.get("SYMDIFF_REGENERATE") == "1"


def evaluate_term(term, forward, adjoints=None):
    """Evaluate an adjoint term with the rows' own real evaluation (independent of the printers)."""
    if isinstance(term, Const):
        return term.value
    if isinstance(term, Ref):
        return forward[term.index]
    if isinstance(term, Bar):
        return (adjoints or {})[term.index]
    assert isinstance(term, Op)
    return primitives.lookup(term.op).evaluate(*(evaluate_term(a, forward, adjoints) for a in term.args))


def sample_row_point(row, rng: random.Random):
    values = []
    for position, (low, high) in enumerate(row.domain):
        value = rng.uniform(low, high)
        if position in row.integer_params:
            value = float(round(value)) or 2.0
        values.append(value)
    return values


def close(a, b, rel=1e-9, abs_=1e-12):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


HAVE_COMPILER = any(shutil.which(c) for c in filter(None, (os.environ.get("CC"), "cc", "gcc", "clang")))
needs_compiler = pytest.mark.skipif(
    not HAVE_COMPILER and os.environ.get("CI") != "true", reason="no C compiler (CI=true makes this a failure)"
)
