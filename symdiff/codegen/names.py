"""Python names for everything a generated module mentions (the C backend adds its own rule).

User names are kept where Python allows; a keyword (`lambda`), or a name that would clash with a
generated one (`w1`, `x_bar`, `grad`, `fabs` from math), gets trailing underscores until it is free: `lambda_`.
Intermediates are w1, w2, ... (numbered by tape index, as in the textbook); adjoints add `_bar`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..core.primitives import PYTHON_IMPORTS
from ..core.tape import INPUT, Tape

_GENERATED = re.compile(r"_?w\d+|.*_(bar|dot)\d*")
RESERVED = frozenset(keyword.kwlist) | {
    "__debug__", "math", "numpy", "f", "grad", "value_and_grad", "jvp", "jacobian", "hessian",
} | PYTHON_IMPORTS


def usable(name: str) -> bool:
    return name not in RESERVED and not _GENERATED.fullmatch(name)


@dataclass(frozen=True)
class Names:
    values: tuple[str, ...]  # per tape index: the Python name of its forward value
    params: dict[str, str]  # user input name -> parameter name

    def value(self, index: int) -> str:
        return self.values[index]

    def adjoint(self, index: int) -> str:
        return f"{self.values[index]}_bar"


def assign_names(
    tape: Tape,
    extra_inputs: tuple[str, ...] = (),
    usable: Callable[[str], bool] = usable,
    respell: Callable[[str], str] = str,
) -> Names:
    """Names for a tape's entries; `extra_inputs` are parameters the expression doesn't use.

    Another language passes its own `usable`, and `respell` for names no trailing underscore can
    save (C reserves every name that starts with `_X` or `__`): `respell(name)` must be a name that
    is usable once underscores are appended."""
    inputs = tuple(dict.fromkeys(tape.inputs + extra_inputs))
    taken = {name for name in inputs if usable(name)}
    params: dict[str, str] = {}
    for name in inputs:
        candidate = respell(name)
        while not usable(candidate) or (candidate != name and candidate in taken):
            candidate += "_"
        taken.add(candidate)
        params[name] = candidate
    # A definition's name labels its entry where it is a usable name no input or earlier label took.
    labelled: dict[int, str] = {}
    for index, label in sorted(tape.labels.items()):
        if usable(label) and label not in taken:
            labelled[index] = label
            taken.add(label)
    values = tuple(
        params[instr.name] if instr.op == INPUT else labelled.get(index, f"w{index + 1}")
        for index, instr in enumerate(tape.instrs)
    )
    return Names(values, params)
