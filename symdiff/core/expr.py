"""The AST the parser builds: numbers, variables, and applications of a primitive (by table name).

Nodes are frozen; spans are (start, end) offsets into the source and take no part in equality.
Trees can be 100,000 levels deep, so every walk over them here is iterative.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import Span


@dataclass(frozen=True, slots=True)
class Num:
    value: float
    span: Span = field(default=(0, 0), compare=False)


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    span: Span = field(default=(0, 0), compare=False)


@dataclass(frozen=True, slots=True, eq=False)
class Apply:
    op: str
    args: tuple[Expr, ...]
    span: Span = field(default=(0, 0), compare=False)

    # Equality is structural but iterative: the generated __eq__ would recurse on deep trees.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Apply) and same_tree(self, other)

    __hash__ = None  # type: ignore[assignment]  # trees are compared, never used as keys


Expr = Num | Var | Apply


def postorder(root: Expr) -> Iterator[Expr]:
    """Every node, children before their parent, left to right, without recursion."""
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded or not isinstance(node, Apply):
            yield node
            continue
        stack.append((node, True))
        args = node.args
        for position in range(len(args) - 1, -1, -1):
            stack.append((args[position], False))


def same_tree(a: Expr, b: Expr) -> bool:
    pairs = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if isinstance(x, Apply) and isinstance(y, Apply):
            if x.op != y.op or len(x.args) != len(y.args):
                return False
            pairs.extend(zip(x.args, y.args))
        elif isinstance(x, Apply) or isinstance(y, Apply) or x != y:
            return False
    return True


def variables(root: Expr) -> set[str]:
    return {node.name for node in postorder(root) if isinstance(node, Var)}


@dataclass(frozen=True, slots=True)
class Definition:
    """`name = expr`: names an intermediate result (not an input)."""

    name: str
    expr: Expr
    span: Span = field(default=(0, 0), compare=False)


@dataclass(frozen=True, slots=True)
class Program:
    """What the user wrote: definitions in order, then one or more outputs."""

    definitions: tuple[Definition, ...]
    outputs: tuple[Expr, ...]
