"""The AST the parser builds: numbers, variables, and applications of a primitive (by table name);
for array programs also elements of arrays (Item), loop indices and lengths used as numbers
(Counter, Length), and reductions over index ranges (Reduce).

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


@dataclass(frozen=True, slots=True)
class Length:
    """len(x) (dim 0) or len(W, k): the length of one dimension of an array input."""

    array: str
    dim: int = 0
    span: Span = field(default=(0, 0), compare=False)


Symbol = str | Length  # what an Affine is affine in: a loop index (its name), or a length


@dataclass(frozen=True, slots=True)
class Affine:
    """An integer expression affine in loop indices and lengths: constant + sum of coefficient * symbol.
    `terms` are sorted by `symbol_key`, each coefficient nonzero, so equal expressions are equal."""

    constant: int
    terms: tuple[tuple[Symbol, int], ...] = ()
    span: Span = field(default=(0, 0), compare=False)

    @property
    def indices(self) -> tuple[str, ...]:
        """The loop indices it reads."""
        return tuple(symbol for symbol, _ in self.terms if isinstance(symbol, str))


def symbol_key(symbol: Symbol) -> tuple:
    return (0, symbol, 0) if isinstance(symbol, str) else (1, symbol.array, symbol.dim)


@dataclass(frozen=True, slots=True)
class Item:
    """x[i + 1], W[j, k]: one element of the array input `array` (0-based, one Affine per dimension)."""

    array: str
    indices: tuple[Affine, ...]
    span: Span = field(default=(0, 0), compare=False)


@dataclass(frozen=True, slots=True)
class Counter:
    """A loop index used as a number in a body: the i of (i + 1)*x[i]^2."""

    name: str
    span: Span = field(default=(0, 0), compare=False)


@dataclass(frozen=True, slots=True)
class Range:
    """`for index in range(start, stop)`: stop is exclusive; both may read enclosing indices and lengths."""

    index: str
    start: Affine
    stop: Affine
    span: Span = field(default=(0, 0), compare=False)


@dataclass(frozen=True, slots=True, eq=False)
class Reduce:
    """sum(body for i in range(...) for j in range(...)), prod(...) the same way, or (op "vector", only
    as an output) [body for i in range(...)]: one output per index value. Ranges are outermost first."""

    op: str  # "sum", "prod" or "vector"
    body: Expr
    ranges: tuple[Range, ...]
    span: Span = field(default=(0, 0), compare=False)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Reduce)
            and self.op == other.op
            and self.ranges == other.ranges
            and same_tree(self.body, other.body)
        )

    __hash__ = None  # type: ignore[assignment]


Expr = Num | Var | Apply | Length | Item | Counter | Reduce


def postorder(root: Expr) -> Iterator[Expr]:
    """Every node, children before their parent, left to right, without recursion. A Reduce is a
    leaf here: its body is in a scope of its own (walk `node.body` for it)."""
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
        elif isinstance(x, Apply) or isinstance(y, Apply) or x != y:  # Reduce compares its body itself
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
    """What the user wrote: definitions in order, then one or more outputs. `arrays`: each array
    input's name and number of dimensions, in order of first appearance (empty: scalars only)."""

    definitions: tuple[Definition, ...]
    outputs: tuple[Expr, ...]
    arrays: tuple[tuple[str, int], ...] = ()
