"""scope: the parser's provisional array nodes -> checked Expr. Takes a Program whose trees may hold
Subscript, Comprehension and RangeCall (as written) and gives one of Item, Reduce, Counter and Length
only: every name is exactly one of a scalar input, an array input (one number of dimensions), a
definition or a loop index used inside its loop, and every index and bound is affine.

Walks are iterative (array programs can be deep, too). Errors carry spans; parse adds the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import Span, SymdiffSyntaxError, UnknownNameError
from .expr import (
    Affine,
    Apply,
    Counter,
    Definition,
    Expr,
    Item,
    Length,
    Num,
    Program,
    Range,
    Reduce,
    Var,
    postorder,
    symbol_key,
)

# --- What the parser builds before anything is known about the names ---------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Subscript:
    """x[...] as written: the indices are expressions, not yet known to be affine."""

    array: str
    indices: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class Clause:
    """`for index in range(start, stop)` as written (start None: range(stop))."""

    index: str
    index_span: Span
    start: Expr | None
    stop: Expr
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class Comprehension:
    """sum(...), prod(...) or [... for ...] as written; op is "sum", "prod" or "vector"."""

    op: str
    body: Expr
    clauses: tuple[Clause, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class RangeCall:
    """range(...) as written; only the iterable of a for clause may be one."""

    args: tuple[Expr, ...]
    span: Span


# The spelling users wrote, for messages.
_WRITTEN = {"add": "+", "sub": "-", "mul": "*", "div": "/", "neg": "-", "pow": "^"}


@dataclass(frozen=True, slots=True)
class _Names:
    """What each name of the program is (loop indices: the first clause binding each)."""

    arrays: dict[str, int]
    definitions: frozenset[str]
    loops: dict[str, Clause]


def resolve(program: Program) -> Program:
    """The checked program, with Program.arrays filled in (unchanged if it holds no array syntax)."""
    trees = [definition.expr for definition in program.definitions] + list(program.outputs)
    subscripts, clauses, lengths = _collect(trees, program.outputs)
    if not subscripts and not clauses and not lengths:
        return program
    names = _name_kinds(program, subscripts, clauses, lengths)
    definitions = tuple(
        Definition(definition.name, _resolve_tree(definition.expr, names), definition.span)
        for definition in program.definitions
    )
    outputs = tuple(_resolve_tree(output, names) for output in program.outputs)
    arrays = tuple(names.arrays.items())
    return Program(definitions, outputs, arrays)


def every_node(root: Expr) -> Iterator[Expr]:
    """Every node of a checked tree, reduction bodies included (postorder stops at a Reduce)."""
    roots = [root]
    while roots:
        for node in postorder(roots.pop()):
            yield node
            if isinstance(node, Reduce):
                roots.append(node.body)


# --- Collecting: which names are arrays, which are loop indices ------------------------------------


def _children(node) -> tuple:
    kind = type(node)
    if kind is Apply:
        return node.args
    if kind is Subscript or kind is RangeCall:
        return node.indices if kind is Subscript else node.args
    if kind is Comprehension:
        bounds = [bound for clause in node.clauses for bound in (clause.start, clause.stop) if bound is not None]
        return (node.body, *bounds)
    return ()


def _collect(trees: list, outputs: tuple) -> tuple[list[Subscript], list[Clause], list[Length]]:
    """Every subscript, clause and len(...) written, in the order written. A range(...) outside a for
    clause, or a vector comprehension that is not the only output, is refused here."""
    subscripts: list[Subscript] = []
    clauses: list[Clause] = []
    lengths: list[Length] = []
    for tree in trees:
        stack = [tree]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is Subscript:
                subscripts.append(node)
            elif kind is Length:
                lengths.append(node)
            elif kind is RangeCall:
                raise SymdiffSyntaxError(
                    "range(...) gives the values of a loop index; use it in a for clause: sum(BODY for i in range(n))",
                    span=node.span,
                )
            elif kind is Comprehension:
                clauses.extend(node.clauses)
                if node.op == "vector" and not (node is tree and len(outputs) == 1 and tree is outputs[0]):
                    raise SymdiffSyntaxError(_misplaced_vector(outputs, node), span=node.span)
            stack.extend(_children(node))
    subscripts.sort(key=lambda node: node.span[0])
    clauses.sort(key=lambda node: node.span[0])
    lengths.sort(key=lambda node: node.span[0])
    return subscripts, clauses, lengths


def _misplaced_vector(outputs: tuple, node: Comprehension) -> str:
    if len(outputs) > 1 and any(output is node for output in outputs):
        return "a vector output [BODY for i in range(...)] must be the only output; it cannot be listed with others"
    return (
        "a vector [BODY for i in range(...)] can only be the whole output (one output per index); "
        "to add its elements write sum(BODY for i in range(...))"
    )


def _name_kinds(program: Program, subscripts: list, clauses: list, lengths: list) -> _Names:
    definitions = frozenset(definition.name for definition in program.definitions)
    arrays: dict[str, int] = {}
    first: dict[str, Subscript] = {}
    for node in subscripts:
        if node.array in definitions:
            raise UnknownNameError(
                f"'{node.array}' is defined ({node.array} = ...), so it is a number and cannot be indexed; "
                "only inputs can be arrays",
                span=node.span,
            )
        ndim = len(node.indices)
        if node.array not in arrays:
            arrays[node.array], first[node.array] = ndim, node
        elif arrays[node.array] != ndim:
            raise SymdiffSyntaxError(
                f"'{node.array}' has {_count(ndim, 'index')} here but {_count(arrays[node.array], 'index')} at "
                f"offset {first[node.array].span[0]}; an array has one number of dimensions",
                span=node.span,
            )
    loops: dict[str, Clause] = {}
    for clause in clauses:
        if clause.index in arrays:
            raise UnknownNameError(
                f"loop index '{clause.index}' has the name of an array input; choose another name", span=clause.index_span
            )
        if clause.index in definitions:
            raise UnknownNameError(
                f"loop index '{clause.index}' has the name of a definition; choose another name", span=clause.index_span
            )
        loops.setdefault(clause.index, clause)
    for length in lengths:
        _check_length(length, arrays)
    return _Names(arrays, definitions, loops)


def _count(number: int, noun: str) -> str:
    plural = "indices" if noun == "index" else noun + "s"
    return f"{number} {noun if number == 1 else plural}"


def _check_length(length: Length, arrays: dict[str, int]) -> None:
    if length.array not in arrays:
        raise UnknownNameError(
            f"len({length.array}): '{length.array}' is not an array input (a name is an array when it is "
            f"indexed somewhere, as in {length.array}[i])",
            span=length.span,
        )
    ndim = arrays[length.array]
    if length.dim >= ndim:
        raise SymdiffSyntaxError(
            f"len({length.array}, {length.dim}): '{length.array}' has {_count(ndim, 'dimension')}, so the "
            f"dimension must be 0{f' to {ndim - 1}' if ndim > 1 else ''}",
            span=length.span,
        )


# --- Resolving: provisional nodes become Item, Reduce, Counter --------------------------------------


def _resolve_tree(root: Expr, names: _Names) -> Expr:
    """The checked tree. Walks with an explicit stack; `scope` holds the loop indices open at a node,
    outermost first. A comprehension's bounds are resolved when it is entered, its body after."""
    results: list[Expr] = []
    stack: list[tuple] = [(root, (), None)]
    while stack:
        node, scope, ranges = stack.pop()
        kind = type(node)
        if kind is Apply:
            if ranges is None:
                stack.append((node, scope, ()))
                stack.extend((arg, scope, None) for arg in reversed(node.args))
                continue
            arity = len(node.args)
            args = tuple(results[len(results) - arity :])
            del results[len(results) - arity :]
            same = all(new is old for new, old in zip(args, node.args))
            results.append(node if same else Apply(node.op, args, node.span))
        elif kind is Comprehension:
            if ranges is None:
                ranges, inner = _ranges(node, scope, names)
                stack.append((node, scope, ranges))
                stack.append((node.body, inner, None))
                continue
            results.append(Reduce(node.op, results.pop(), ranges, node.span))
        else:
            results.append(_resolve_leaf(node, scope, names))
    return results[0]


def _resolve_leaf(node: Expr, scope: tuple[str, ...], names: _Names) -> Expr:
    kind = type(node)
    if kind is Var:
        if node.name in scope:
            return Counter(node.name, node.span)
        if node.name in names.arrays:
            return _array_without_index(node)
        if node.name in names.loops:
            raise UnknownNameError(
                f"'{node.name}' is a loop index (for {node.name} in range(...)) but is used outside that loop; "
                "a loop index cannot also be a scalar input: rename one of them",
                span=node.span,
            )
        return node
    if kind is Subscript:
        indices = tuple(_affine(index, scope, names, "index") for index in node.indices)
        return Item(node.array, indices, node.span)
    return node  # Num, Length (checked when collected)


def _array_without_index(node: Var) -> None:
    raise UnknownNameError(
        f"'{node.name}' is an array input (indexed elsewhere); use one element, such as {node.name}[i], "
        f"or sum(... for i in range(len({node.name})))",
        span=node.span,
    )


def _ranges(node: Comprehension, scope: tuple[str, ...], names: _Names) -> tuple[tuple[Range, ...], tuple[str, ...]]:
    """The Ranges of a comprehension, outermost first (a later bound may read an earlier index),
    and the scope of its body."""
    ranges = []
    for clause in node.clauses:
        if clause.index in scope:
            raise UnknownNameError(
                f"loop index '{clause.index}' is already the index of an enclosing loop; choose another name",
                span=clause.index_span,
            )
        start = Affine(0, (), clause.span) if clause.start is None else _affine(clause.start, scope, names, "bound")
        stop = _affine(clause.stop, scope, names, "bound")
        _check_not_empty(clause, start, stop)
        ranges.append(Range(clause.index, start, stop, clause.span))
        scope = (*scope, clause.index)
    return tuple(ranges), scope


def _check_not_empty(clause: Clause, start: Affine, stop: Affine) -> None:
    """A range whose length is a constant (range(3, 3), range(len(x), len(x) - 1)) must have values."""
    difference = dict(stop.terms)
    for symbol, coefficient in start.terms:
        difference[symbol] = difference.get(symbol, 0) - coefficient
    if any(difference.values()) or stop.constant - start.constant > 0:
        return
    raise SymdiffSyntaxError(
        f"for {clause.index} in range(...) has no values (its stop minus its start is "
        f"{stop.constant - start.constant}); a range needs start < stop",
        span=clause.span,
    )


# --- Affine index arithmetic ---------------------------------------------------------------------

_AFFINE_HELP = {
    "index": "an index must be an integer expression affine in loop indices, such as i, 2*i + 1 or len(x) - 1 - i",
    "bound": "a range bound must be an integer expression of constants, len(...) and enclosing loop indices, "
    "such as len(x) - 1 or i + 1",
}


def _affine(expr: Expr, scope: tuple[str, ...], names: _Names, what: str) -> Affine:
    """expr as constant + sum of coefficient * symbol, or a SymdiffSyntaxError at the whole of expr."""
    values: list[tuple[int, dict]] = []
    for node in postorder(expr):
        kind = type(node)
        if kind is Num:
            if not node.value.is_integer():
                _not_affine(expr, what, f"{node.value:g} is not an integer")
            values.append((int(node.value), {}))
        elif kind is Var:
            if node.name not in scope:
                _not_affine(expr, what, _not_an_index(node.name, names, what))
            values.append((0, {node.name: 1}))
        elif kind is Length:
            values.append((0, {node: 1}))
        elif kind is Apply and node.op in ("add", "sub"):
            right_constant, right = values.pop()
            left_constant, left = values[-1]
            sign = 1 if node.op == "add" else -1
            for symbol, coefficient in right.items():
                left[symbol] = left.get(symbol, 0) + sign * coefficient
            values[-1] = (left_constant + sign * right_constant, left)
        elif kind is Apply and node.op == "neg":
            constant, terms = values[-1]
            values[-1] = (-constant, {symbol: -coefficient for symbol, coefficient in terms.items()})
        elif kind is Apply and node.op == "mul":
            right_constant, right = values.pop()
            left_constant, left = values.pop()
            if left and right:
                _not_affine(expr, what, "it multiplies two indices (or lengths) together")
            factor, (constant, terms) = (left_constant, (right_constant, right)) if not left else (right_constant, (left_constant, left))
            values.append((factor * constant, {symbol: factor * coefficient for symbol, coefficient in terms.items()}))
        else:
            _not_affine(expr, what, _why_not_affine(node))
    constant, terms = values.pop()
    ordered = sorted(((symbol, coefficient) for symbol, coefficient in terms.items() if coefficient), key=_by_symbol)
    return Affine(constant, tuple(ordered), expr.span)


def _by_symbol(term: tuple) -> tuple:
    return symbol_key(term[0])


def _not_an_index(name: str, names: _Names, what: str) -> str:
    if name in names.loops:
        return f"'{name}' is a loop index, but no enclosing for clause binds it here"
    if name in names.arrays:
        return f"'{name}' is an array, not a number"
    if what == "bound":
        return f"'{name}' is not a loop index nor a length (for the length of an array x, write len(x))"
    return f"'{name}' is not a loop index (only a name bound by an enclosing `for {name} in range(...)` may be)"


def _why_not_affine(node: Expr) -> str:
    kind = type(node)
    if kind is Subscript:
        return f"it reads the array '{node.array}' (an index cannot depend on data)"
    if kind is Apply and node.op in ("div", "pow"):
        return f"'{_WRITTEN[node.op]}' is not allowed in it"
    if kind is Apply:
        return f"{node.op}(...) is not allowed in it"
    if kind is Comprehension:
        return "a reduction is not allowed in it"
    if kind is RangeCall:
        return "range(...) belongs in a for clause"
    return "it is not an integer expression"


def _not_affine(expr: Expr, what: str, reason: str) -> None:
    raise SymdiffSyntaxError(f"{_AFFINE_HELP[what]}; here {reason}", span=expr.span)
