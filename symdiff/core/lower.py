"""lower: Expr -> Tape. One entry per primitive application, identical ones shared, constants folded.

Identical means equal in IEEE arithmetic, not only as written: y * x is the entry x * y (a row
marked commutative), and an even function of b - a is the entry of the same function of a - b
(a row marked antisymmetric: cos(x2 - x1) is cos(x1 - x2), since b - a is exactly -(a - b),
zeros included, and libm's even functions are exactly even). Walks the tree with an explicit stack
(postorder), so depth costs memory, not recursion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace

from ..errors import DomainError, LimitError, Span, SymdiffError
from . import primitives
from .expr import Apply, Counter, Expr, Item, Length, Num, Program, Reduce, Var, postorder
from .tape import COUNTER, INPUT, LENGTH, READ, REDUCTIONS, Atom, Const, Instr, Loop, Ref, Tape, is_primitive

DEFAULT_MAX_ENTRIES = 2_000_000
ROW = -1  # the loop id of a vector output's index
DEFAULT_MAX_BRANCH_DEPTH = 1_000


def natural_key(name: str) -> tuple:
    """Order names as people do: x2 before x10 (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p), name


def natural_order(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names), key=natural_key))


def lower(
    program: Expr | Program,
    source: str = "",
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_branch_depth: int = DEFAULT_MAX_BRANCH_DEPTH,
) -> Tape:
    """The tape of one expression, or of a program (definitions, then one or more outputs)."""
    if not isinstance(program, Program):
        program = Program((), (program,))
    instrs: list[Instr] = []
    keys: dict[tuple, int] = {}
    defined: dict[str, Atom] = {}  # definitions are values, not inputs
    labels: dict[int, str] = {}
    created: list[int | None] = [None]  # the entry that the node lowered last added, if it added one
    # One Ref per entry and one Const per distinct number, however often each is used: a large
    # expression is mostly uses, and every object the tape holds is one more for the cycle collector.
    refs: list[Ref] = []
    numbers: dict[Const, Const] = {}
    # Array programs: each entry's loop scope (the ids of the loops it is computed in, outermost
    # first), the loops, and the ones open while a reduction's body is lowered (index name -> id).
    scopes: list[tuple[int, ...]] = []
    loops: list[list] = []  # [index, start, stop, reduction entry]
    open_loops: list[int] = []
    bound: dict[str, int] = {}

    def number(value: float) -> Const:
        constant = Const(value)  # equal as the tape compares constants: 0.0 and -0.0 stay apart
        return numbers.setdefault(constant, constant)

    def emit(
        instr: Instr, row: primitives.Primitive | None = None, fresh: int | None = None, scope: tuple | None = None
    ) -> Ref:
        """The entry computing `instr`, added unless the tape has it; `fresh`: the entry the
        operand's node added, if it added one. `scope`: its loops, if not those of its operands."""
        key = instr.key
        index = keys.get(key)
        if index is None and row is not None and row.parity == "even":
            index = _even_twin(instr, fresh)
        if index is None:
            if len(instrs) >= max_entries:
                raise LimitError(
                    f"expression has more than {max_entries:,} distinct operations (Limits.max_entries)",
                    source,
                    instr.span,
                )
            index = keys[key] = len(instrs)
            if row is not None and row.commutative:
                keys[(instr.op, instr.args[::-1])] = index  # found in either order, by tape.find too
            instrs.append(instr)
            if loops:  # the innermost loop of its operands: what needs no index is computed outside
                scopes.append(scope if scope is not None else max((atom_scope(a) for a in instr.args), key=len, default=()))
            refs.append(Ref(index))
            created[0] = index
        return refs[index]

    def _even_twin(instr: Instr, fresh: int | None) -> int | None:
        """f(a - b) for f(b - a), f even; drops b - a when the operand's node added it, for f alone."""
        (operand,) = instr.args
        inner = instrs[operand.index] if isinstance(operand, Ref) else None
        if inner is None or not is_primitive(inner.op) or not primitives.lookup(inner.op).antisymmetric:
            return None
        mirror = keys.get((inner.op, inner.args[::-1]))
        twin = None if mirror is None else keys.get((instr.op, (Ref(mirror),)))
        if twin is not None and fresh == operand.index == len(instrs) - 1:
            del keys[instrs.pop().key]
            refs.pop()
            if loops:
                scopes.pop()
        return twin

    def atom_scope(atom: Atom) -> tuple[int, ...]:
        return scopes[atom.index] if type(atom) is Ref else ()

    def scope_reading(loop_ids) -> tuple[int, ...]:
        """The open loops up to the innermost of `loop_ids` (a vector output's row index, ROW, is
        outside every loop: each output is a function of it)."""
        depth = max((open_loops.index(loop) + 1 for loop in loop_ids if loop != ROW), default=0)
        return tuple(open_loops[:depth])

    def lower_array_node(node, results: list[Atom]) -> None:
        kind = type(node)
        if kind is Item:
            read = sorted({bound[symbol] for affine in node.indices for symbol in affine.indices})
            instr = Instr(READ, (), node.array, node.span, (node.indices, tuple(read)))
            results.append(emit(instr, scope=scope_reading(read)))
        elif kind is Counter:
            loop = bound[node.name]
            results.append(emit(Instr(COUNTER, (), node.name, node.span, loop), scope=scope_reading([loop])))
        elif kind is Length:
            results.append(emit(Instr(LENGTH, (), node.array, node.span, node.dim), scope=()))
        else:
            results.append(lower_reduction(node))

    def lower_reduction(node: Reduce) -> Atom:
        """sum(body for i in range(a, b) for j in range(c, d)) is the sum over i of the sum over j:
        one loop per range, so what needs only i is computed once per i."""
        if node.op not in REDUCTIONS:
            raise SymdiffError("a vector [... for ...] can only be the whole output", source, node.span)
        if not loops:  # the first loop: every entry so far is outside all loops
            scopes.extend(() for _ in range(len(instrs) - len(scopes)))
        opened = []
        for loop_range in node.ranges:
            loop = len(loops)
            loops.append([loop_range.index, loop_range.start, loop_range.stop, None])
            open_loops.append(loop)
            bound[loop_range.index] = loop
            opened.append(loop)
        value = lower_one(node.body)
        for loop in reversed(opened):
            open_loops.pop()
            del bound[loops[loop][0]]
            reduction = emit(Instr(node.op, (value,), "", node.span, loop), scope=tuple(open_loops))
            loops[loop][3] = reduction.index
            value = reduction
        return value

    def lower_one(expr: Expr) -> Atom:
        results: list[Atom] = []
        for node in postorder(expr):
            _lower_node(node, results)
        return results[0]

    def _lower_node(node: Expr, results: list[Atom]) -> None:
        # Dispatched on type rather than with `match`: this runs once per node of the AST.
        fresh, created[0] = created[0], None
        kind = type(node)
        if kind is Num:
            results.append(number(node.value))
        elif kind is Var:
            name = node.name
            results.append(defined[name] if name in defined else emit(Instr(INPUT, (), name, node.span), scope=()))
        elif kind is not Apply:
            lower_array_node(node, results)
        else:
            arity = len(node.args)
            operands = tuple(results[len(results) - arity :])
            del results[len(results) - arity :]
            row = primitives.lookup(node.op)
            if row.refine is not None:
                row, operands = refined(row, operands)
            if row.branches and type(operands[0]) is Const:  # a constant condition picks its branch
                taken = bool(operands[0].value)
                results.append(operands[row.branches.index(taken)])
            elif all(type(a) is Const for a in operands):
                results.append(number(fold_constant(row, operands, source, node.span)))
            else:
                results.append(emit(Instr(row.name, operands, span=node.span), row, fresh))

    for definition in program.definitions:
        atom = defined[definition.name] = lower_one(definition.expr)
        if isinstance(atom, Ref) and instrs[atom.index].op != INPUT and atom.index not in labels:
            labels[atom.index] = definition.name
    rows = None
    if len(program.outputs) == 1 and isinstance(program.outputs[0], Reduce) and program.outputs[0].op == "vector":
        vector = program.outputs[0]
        if len(vector.ranges) != 1:
            raise SymdiffError("a vector output takes one `for` clause (one output per index)", source, vector.span)
        (row,) = vector.ranges
        rows = Loop(row.index, row.start, row.stop, -1)
        bound[row.index] = ROW
        outputs = (lower_one(vector.body),)
    else:
        outputs = tuple(lower_one(expr) for expr in program.outputs)
    if program.arrays or loops or rows:
        return _array_tape(source, instrs, outputs, labels, scopes, loops, program.arrays, rows)
    inputs = natural_order(instr.name for instr in instrs if instr.op == INPUT)
    if not any(primitives.lookup(i.op).branches for i in instrs if i.op != INPUT):
        return Tape(source, tuple(instrs), outputs[0], inputs, keys, outputs, labels)
    paths = branch_paths(instrs, outputs, source, max_branch_depth)
    order = computable_order(instrs, paths)
    if order is not None:  # a definition used only in a branch whose condition comes later
        instrs, outputs, labels, keys = _renumbered(instrs, outputs, labels, order)
        paths = branch_paths(instrs, outputs, source, max_branch_depth)
    return Tape(source, tuple(instrs), outputs[0], inputs, keys, outputs, labels, paths)


def _array_tape(
    source: str,
    instrs: list[Instr],
    outputs: tuple[Atom, ...],
    labels: dict[int, str],
    scopes: list[tuple[int, ...]],
    drafts: list[list],
    arrays: tuple[tuple[str, int], ...],
    rows: Loop | None = None,
) -> Tape:
    """The tape of an array program, each reduction's body entries placed together just before it (so
    that its loop is one block of code, after every value it reads from outside), and the path of
    each entry saying which loops it runs in."""
    scopes = scopes + [() for _ in range(len(instrs) - len(scopes))]
    for instr in instrs:
        if is_primitive(instr.op) and primitives.lookup(instr.op).branches:
            raise SymdiffError(
                "where(), min() and max() are not supported in array programs yet", source, instr.span
            )
    members: dict[tuple[int, ...], list[int]] = {}
    for index, scope in enumerate(scopes):
        members.setdefault(scope, []).append(index)
    order: list[int] = []
    placed_body: set[int] = set()
    stack: list[tuple[tuple[int, ...], int]] = [((), 0)]  # (scope, position in its members) to go on from
    while stack:
        scope, position = stack.pop()
        entries = members.get(scope, [])
        while position < len(entries):
            index = entries[position]
            instr = instrs[index]
            if instr.op in REDUCTIONS and index not in placed_body:
                placed_body.add(index)
                stack.append((scope, position))  # back to the reduction once its body is placed
                stack.append(((*scope, instr.detail), 0))
                break
            order.append(index)
            position += 1
    instrs, outputs, labels, keys = _renumbered(instrs, outputs, labels, order)
    number = {old: new for new, old in enumerate(order)}
    loops = tuple(Loop(index, start, stop, number[entry]) for index, start, stop, entry in drafts)
    paths = tuple(tuple((loops[loop].entry, None) for loop in scopes[old]) for old in order)
    names = {instr.name for instr in instrs if instr.op == INPUT} | {name for name, _ in arrays}
    return Tape(source, tuple(instrs), outputs[0], natural_order(names), keys, outputs, labels, paths, loops, arrays, rows)


def branch_paths(
    instrs: list[Instr], outputs: tuple[Atom, ...], source: str = "", max_depth: int = DEFAULT_MAX_BRANCH_DEPTH
) -> tuple:
    """The branch each entry belongs in: the steps (condition, value) that every one of its uses is
    under, where a where() entry uses its second operand under (condition, True) and its third under
    (condition, False). Users come after what they use, so one sweep from the last entry settles every
    path, outermost branches first: a where() nested more than `max_depth` deep fails before the
    deeper paths are made."""
    uses: list[list[tuple] | None] = [None] * len(instrs)
    for output in outputs:
        if isinstance(output, Ref):
            uses[output.index] = [()]
    paths: list[tuple] = [()] * len(instrs)
    for index in range(len(instrs) - 1, -1, -1):
        path = _shared(uses[index]) if uses[index] else ()
        paths[index] = path
        instr = instrs[index]
        if instr.op == INPUT:
            continue
        row = primitives.lookup(instr.op)
        if row.branches and len(path) >= max_depth:
            raise LimitError(
                f"where(), min() or max() is nested more than {max_depth:,} deep here (Limits.max_branch_depth)",
                source,
                instr.span,
            )
        for position, arg in enumerate(instr.args):
            if not isinstance(arg, Ref):
                continue
            branch = row.branches[position] if row.branches else None
            condition = instr.args[0]
            use = path if branch is None or not isinstance(condition, Ref) else path + ((condition.index, branch),)
            if uses[arg.index] is None:
                uses[arg.index] = []
            uses[arg.index].append(use)
    return tuple(paths)


def computable_order(instrs: list[Instr], paths: tuple) -> list[int] | None:
    """An order in which every entry comes after its operands and after the conditions of its branch,
    so that code computing the entries in order can test a condition before entering its branch; None
    when the tape's own order is one. The tape's order fails only where a definition is used inside a
    branch only, and the branch's condition is written after it (`u = log(x); where(x > 0, u, 0)`):
    then each entry waiting for a condition is placed after it, and all else keeps its place."""
    # An input is a parameter: it needs nothing and keeps its place. (max(path) is the step of the
    # path with the latest condition, found without a Python loop over a deep path.)
    if all(not path or max(path)[0] < index or instrs[index].op == INPUT for index, path in enumerate(paths)):
        return None
    placed = [0] * len(instrs)  # 0: not yet, 1: waiting for what it needs, 2: placed
    order: list[int] = []
    for root in range(len(instrs)):
        stack = [(root, False)]
        while stack:  # depth first, with an explicit stack: chains of entries can be long
            index, ready = stack.pop()
            if placed[index] == 2:
                continue
            if ready:
                placed[index] = 2
                order.append(index)
                continue
            if placed[index] == 1:
                raise AssertionError(f"entry {index} needs itself to be computed first")
            placed[index] = 1
            stack.append((index, True))
            needs = [] if instrs[index].op == INPUT else [condition for condition, _ in paths[index]]
            needs += [arg.index for arg in instrs[index].args if type(arg) is Ref]
            stack.extend((need, False) for need in reversed(needs) if placed[need] != 2)
    return order


def _renumbered(
    instrs: list[Instr], outputs: tuple[Atom, ...], labels: dict[int, str], order: list[int]
) -> tuple[list[Instr], tuple[Atom, ...], dict[int, str], dict[tuple, int]]:
    """The tape's entries in `order`, numbered afresh, with every reference and key following them."""
    number = [0] * len(instrs)
    for new, old in enumerate(order):
        number[old] = new
    refs = [Ref(new) for new in range(len(instrs))]

    def moved(atom: Atom) -> Atom:
        return refs[number[atom.index]] if type(atom) is Ref else atom

    renumbered = [replace(instrs[old], args=tuple(moved(arg) for arg in instrs[old].args)) for old in order]
    keys: dict[tuple, int] = {}
    for index, instr in enumerate(renumbered):
        keys[instr.key] = index
        if is_primitive(instr.op) and primitives.lookup(instr.op).commutative:
            keys[(instr.op, instr.args[::-1])] = index
    moved_labels = {number[old]: name for old, name in labels.items()}
    return renumbered, tuple(moved(output) for output in outputs), moved_labels, keys


def _shared(paths: list[tuple]) -> tuple:
    """The steps on every one of `paths`, in the order of the first. Not only their common prefix:
    log(x) used in where(x > 0, log(x), 0) and in where(y > 0, where(x > 0, 2*log(x), 1), 3) is
    needed only where x > 0, whatever y is, and computing it elsewhere raises. The order stays one in
    which a condition can be read: the steps under which a condition is computed are on every path
    through its where(), before its own step."""
    first = paths[0]
    if len(paths) == 1:
        return first
    common = set(first)
    for path in paths[1:]:
        if path != first:
            common.intersection_update(path)
    return first if len(common) == len(first) else tuple(step for step in first if step in common)


def refined(row: primitives.Primitive, operands: tuple) -> tuple[primitives.Primitive, tuple]:
    """Let a row hand these operands to a more specific row (x^2 is powi, not pow)."""
    if row.refine is not None and (better := row.refine(operands)) is not None:
        row = primitives.lookup(better)
    return row, operands


def fold_constant(row: primitives.Primitive, operands: tuple[Const, ...], source: str, span: Span) -> float:
    """Evaluate a primitive on constants, as the generated code would, or explain why it can't."""
    values = [a.value for a in operands]
    shown = f"{row.name}({', '.join(repr(v) for v in values)})"
    try:
        value = row.evaluate(*values)
    except (ValueError, ZeroDivisionError, OverflowError) as error:
        raise DomainError(f"{shown} has no real value ({error})", source, span) from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise DomainError(f"{shown} has no finite real value", source, span)
    return float(value)
