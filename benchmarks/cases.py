"""The benchmark suite of issue 4: every case is an expression string plus how to sample it.

Sizes grow within a family so that the plot shows how build time scales; `quick` keeps the smaller
member of each family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str  # unique, e.g. "rosenbrock-1000"
    family: str  # "textbook", "rosenbrock", ...
    size: int  # the family's size parameter (n, depth)
    text: str  # the expression, in symdiff's syntax (^ for powers)
    quick: bool  # part of --quick

    @property
    def inputs(self) -> tuple[str, ...]:
        return natural_order(re.findall(r"[A-Za-z_]\w*", self.text))


FUNCTIONS = {"sin", "cos", "tan", "exp", "log", "sqrt", "atan", "atan2", "tanh", "sinh", "cosh", "abs", "pow"}


def natural_order(names) -> tuple[str, ...]:
    """Variables in natural order (x2 before x10), as symdiff orders its inputs."""
    variables = {name for name in names if name not in FUNCTIONS and name not in ("pi", "e")}

    def key(name: str):
        return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name))

    return tuple(sorted(variables, key=key))


def rosenbrock(n: int) -> str:
    return " + ".join(f"100*(x{i + 1} - x{i}^2)^2 + (1 - x{i})^2" for i in range(1, n))


def product(n: int) -> str:
    return "*".join(f"x{i}" for i in range(1, n + 1))


def nested_sin(depth: int) -> str:
    return "sin(" * depth + "x" + ")" * depth


def pairwise(n: int) -> str:
    """n^2 terms, one per ordered pair: a smooth pair potential."""
    return " + ".join(f"cos(x{i} - x{j}) * x{i} * x{j}" for i in range(1, n + 1) for j in range(1, n + 1))


TEXTBOOK = (
    ("textbook-1", "x1*x2 + sin(x1)"),
    ("textbook-2", "log(x1) + x1*x2 - sin(x2)"),
    ("textbook-3", "x*y + (x + y)*z"),
)


def suite() -> list[Case]:
    cases = [Case(name, "textbook", 1, text, True) for name, text in TEXTBOOK]
    cases += [Case(f"rosenbrock-{n}", "rosenbrock", n, rosenbrock(n), n <= 100) for n in (10, 100, 1000, 10000)]
    cases += [Case(f"product-{n}", "product", n, product(n), n <= 100) for n in (10, 100, 300, 1000)]
    cases += [Case(f"nested-sin-{d}", "nested-sin", d, nested_sin(d), d <= 1000) for d in (10, 1000, 100000)]
    cases += [Case(f"pairwise-{n}", "pairwise", n, pairwise(n), n <= 10) for n in (10, 30)]
    return cases


def by_name(name: str) -> Case:
    for case in suite():
        if case.name == name:
            return case
    raise KeyError(name)
