"""unroll: an array program at given array lengths -> its outputs as SymPy expressions, every sum and
product written out term by term, so that sympy.diff gives the exact gradient (verify's oracle).

Built from the AST, not the tape, so it shares nothing with lowering. Element x[2] is the real
Symbol "x[2]" (W[1, 0] for 2-D), a scalar input x the real Symbol "x"; numbers are exact Rationals
of their binary values. Unrolling never compiles generated code: it is for checks at small sizes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import sympy

from ..errors import ArgumentError
from . import primitives
from .bounds import evaluate
from .expr import Apply, Counter, Definition, Expr, Item, Length, Num, Program, Range, Reduce, Var, postorder
from .parse import parse_program
from .tape import Tape

Shapes = Mapping[str, tuple[int, ...]]  # array name -> its lengths, one per dimension


def scalar(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


def element(array: str, index: tuple[int, ...]) -> sympy.Symbol:
    """The symbol of one array element: element("W", (1, 0)) is W[1, 0]."""
    return sympy.Symbol(f"{array}[{', '.join(str(i) for i in index)}]", real=True)


def elements(array: str, shape: tuple[int, ...]) -> list[sympy.Symbol]:
    """Every element's symbol, in row-major order (as NumPy's ravel lists them)."""
    indices: list[tuple[int, ...]] = [()]
    for length in shape:
        indices = [(*index, i) for index in indices for i in range(length)]
    return [element(array, index) for index in indices]


def unroll(program: Program | Tape, shapes: Shapes, source: str = "") -> tuple[sympy.Expr, ...]:
    """The outputs of `program` (a Tape is parsed again from its source) with every array of the
    shape `shapes` gives it; a vector output [... for i in range(n)] gives one expression per i.
    A read outside its array raises ArgumentError pointing at the read."""
    if isinstance(program, Tape):
        source = program.source
        program = parse_program(source)
    lengths = {}
    for array, dims in program.arrays:
        shape = tuple(shapes[array])
        if len(shape) != dims:
            raise ArgumentError(f"{array} has {dims} dimension{'s' * (dims != 1)}, got a shape {shape}")
        lengths.update(((array, dim), length) for dim, length in enumerate(shape))
    unroller = _Unroller(lengths, source)
    for definition in program.definitions:
        unroller.define(definition)
    outputs: list[sympy.Expr] = []
    for output in program.outputs:
        if isinstance(output, Reduce) and output.op == "vector":
            outputs.extend(unroller.value(output.body, index) for index in unroller.iterations(output.ranges, {}))
        else:
            outputs.append(unroller.value(output, {}))
    return tuple(outputs)


class _Unroller:
    def __init__(self, lengths: dict[tuple[str, int], int], source: str):
        self.lengths, self.source = lengths, source
        self.defined: dict[str, sympy.Expr] = {}

    def define(self, definition: Definition) -> None:
        self.defined[definition.name] = self.value(definition.expr, {})

    def value(self, expr: Expr, indices: dict[str, int]) -> sympy.Expr:
        """The SymPy value of `expr` with the loop indices at `indices`. Postorder over the tree;
        a reduction recurses into its body (as deep as reductions nest, a few levels)."""
        results: list[sympy.Expr] = []
        for node in postorder(expr):
            kind = type(node)
            if kind is Apply:
                arity = len(node.args)
                args = results[len(results) - arity :]
                del results[len(results) - arity :]
                results.append(primitives.lookup(node.op).sympy(*args))
            elif kind is Num:
                results.append(sympy.Rational(node.value))  # exact: Rational(0.1) is the double's value
            elif kind is Var:
                results.append(self.defined[node.name] if node.name in self.defined else scalar(node.name))
            elif kind is Counter:
                results.append(sympy.Integer(indices[node.name]))
            elif kind is Length:
                results.append(sympy.Integer(self.lengths[(node.array, node.dim)]))
            elif kind is Item:
                results.append(self.item(node, indices))
            else:
                results.append(self.reduce(node, indices))
        return results[0]

    def item(self, node: Item, indices: dict[str, int]) -> sympy.Symbol:
        at = tuple(evaluate(affine, self.lengths, indices) for affine in node.indices)
        for dim, i in enumerate(at):
            length = self.lengths[(node.array, dim)]
            if not 0 <= i < length:
                shown = f"{node.array}[{', '.join(map(str, at))}]"
                raise ArgumentError(
                    f"{shown} is outside {node.array} (dimension {dim} has length {length})",
                    self.source or None,
                    node.span,
                )
        return element(node.array, at)

    def reduce(self, node: Reduce, indices: dict[str, int]) -> sympy.Expr:
        terms = [self.value(node.body, inner) for inner in self.iterations(node.ranges, indices)]
        return sympy.Mul(*terms) if node.op == "prod" else sympy.Add(*terms)  # empty: 1 and 0

    def iterations(self, ranges: tuple[Range, ...], indices: dict[str, int]) -> Iterator[dict[str, int]]:
        """Every assignment of the ranges' indices, outermost first, each range's bounds evaluated
        with the indices outside it."""
        if not ranges:
            yield indices
            return
        first, rest = ranges[0], ranges[1:]
        start, stop = (evaluate(bound, self.lengths, indices) for bound in (first.start, first.stop))
        for i in range(start, stop):
            yield from self.iterations(rest, {**indices, first.index: i})
