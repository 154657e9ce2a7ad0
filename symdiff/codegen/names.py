"""Python names for everything a generated module mentions (the C backend adds its own rule).

User names are kept where Python allows; a keyword (`lambda`), or a name that would clash with a
generated one (`w1`, `x_bar`, `grad`, `fabs` from math), gets trailing underscores until it is free: `lambda_`.
Intermediates are w1, w2, ... (numbered by tape index, as in the textbook); adjoints add `_bar`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.expr import Length
from ..core.primitives import PYTHON_IMPORTS
from ..core.printing import affine_text
from ..core.tape import COUNTER, INPUT, LENGTH, READ, Instr, Tape

_GENERATED = re.compile(r"_?w\d+|.*_(bar|dot)\d*|w\d+_(before|after)")
RESERVED = frozenset(keyword.kwlist) | {
    "__debug__", "math", "numpy", "f", "grad", "value_and_grad", "jvp", "jacobian", "hessian",
    "len", "range", "reversed", "float",  # the builtins an array program's module calls
} | PYTHON_IMPORTS


def usable(name: str) -> bool:
    return name not in RESERVED and not _GENERATED.fullmatch(name)


@dataclass(frozen=True)
class Names:
    values: tuple[str, ...]  # per tape index: the Python name of its forward value
    params: dict[str, str]  # user input name -> parameter name
    elements: dict[int, str] = field(default_factory=dict)  # array element entries -> their adjoint (x_bar[i])
    indices: dict[str, str] = field(default_factory=dict)  # a loop index -> its name, where it must change

    def value(self, index: int) -> str:
        return self.values[index]

    def adjoint(self, index: int) -> str:
        element = self.elements.get(index)
        return f"{self.values[index]}_bar" if element is None else element

    def array_adjoint(self, array: str) -> str:
        return f"{self.params[array]}_bar"

    def prefix(self, reduction: int) -> str:
        """A product's running product of the factors before the index (adjoint.Prefix)."""
        return f"{self.values[reduction]}_before"

    def suffixes(self, reduction: int) -> str:
        """A product's buffer of the products of the factors from each index on (adjoint.Suffix)."""
        return f"{self.values[reduction]}_after"


def python_element(instr: Instr, params: dict[str, str], suffix: str = "", renamed: dict[str, str] | None = None) -> str:
    """A READ entry as Python reads it from nested lists: x[i + 1], W[j][k] (suffix "_bar": its adjoint)."""
    indices, _ = instr.detail
    symbol = python_symbol(params, renamed)
    return params[instr.name] + suffix + "".join(f"[{affine_text(index, symbol)}]" for index in indices)


def python_length(array: str, dim: int, params: dict[str, str]) -> str:
    """len(x); len(W[0]) for the second dimension."""
    return f"len({params[array]}{'[0]' * dim})"


def python_symbol(params: dict[str, str], renamed: dict[str, str] | None = None) -> Callable[[object], str]:
    """How an index or bound spells its symbols: len(x) for a length, a loop index by its name."""
    renamed = renamed or {}

    def symbol(name) -> str:
        return python_length(name.array, name.dim, params) if isinstance(name, Length) else renamed.get(name, name)

    return symbol


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
    if not tape.arrays and not tape.loops:
        return Names(values, params)
    for array, _ in tape.arrays:  # an array is a parameter even where no READ entry is left
        if array not in params:
            params[array] = array if usable(array) else array + "_"
    # A loop index keeps its name unless the module needs it for something else (an adjoint a_bar, a
    # builtin such as len, another name of the module).
    taken |= set(params.values())
    renamed: dict[str, str] = {}
    for loop in (*tape.loops, *((tape.rows,) if tape.rows is not None else ())):
        candidate = loop.index
        while not usable(candidate) or (candidate in taken and candidate != loop.index) or candidate in params.values():
            candidate += "_"
        if candidate != loop.index:
            renamed[loop.index] = candidate
    values = list(values)
    elements = {}
    for index, instr in enumerate(tape.instrs):
        if instr.op == READ:
            values[index] = python_element(instr, params, "", renamed)
            elements[index] = python_element(instr, params, "_bar", renamed)
        elif instr.op == COUNTER:
            values[index] = renamed.get(instr.name, instr.name)
        elif instr.op == LENGTH:  # a float, as every other value (len() is an int)
            values[index] = f"float({python_length(instr.name, instr.detail, params)})"
    return Names(tuple(values), params, elements, renamed)
