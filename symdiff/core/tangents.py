"""tangents: forward mode over a structured Program entry, loops included.

An array program's sweeps are loops (program.py): a tangent sweep (forward.TangentSweep) cannot run
over them as a flat list of lines, because a loop recomputes its body for every index and adds into
values that live outside it. Here the sweep walks the entry's nodes in order and writes each line's
tangent beside it, inside the same loop: w_dot = sum of partial * operand_dot, the same table
partials. A value that a loop adds into (a sum, an adjoint, a product's running prefix) gets a
tangent variable of its own, zeroed where the value is first set; a product's factor (`*=`) has its
tangent taken before the value changes. Over the value-and-gradient entry this is forward over
reverse: the tangent of the gradient along a direction is the Hessian-vector product.
"""

from __future__ import annotations

from dataclasses import replace

from .adjoint import ArrayBar, Bar, Op, Prefix, Suffix
from .algebra import ZERO, fold, is_zero
from .forward import Assign as Line
from .forward import Dot, TangentSweep
from .program import Append, Assign, Check, Entry, Loop, Rows, Section, Suffixes, result_terms
from .tape import INPUT, READ, Ref, Tape


def direction_seeds(tape: Tape) -> dict[int, object]:
    """The tangents of the inputs along a direction given as parameters: x_dot for a scalar input,
    x_dot[i + 1] (Dot of the READ entry) for an array element."""
    return {
        index: Dot(Ref(index))
        for index, instr in enumerate(tape.instrs)
        if instr.op == INPUT or instr.op == READ
    }


class ProgramTangents:
    """The tangent sweep of one entry's nodes along one direction (`seeds`: input entry -> tangent)."""

    def __init__(self, tape: Tape, entry: Entry, seeds: dict[int, object]):
        self.sweep = TangentSweep(tape, seeds)
        self.sweep.explicit = _accumulated(entry.body)

    def of(self, term):
        """The tangent of a term; an array's adjoint, a running product and its buffer have tangent
        variables of their own (an array for ArrayBar)."""
        return self.sweep.of(term)

    def nodes(self, nodes: tuple) -> tuple:
        out: list = []
        for node in nodes:
            kind = type(node)
            if kind is Assign:
                lines = self._lines(node)
                if node.mode == "*=":  # d(w * f) = w_dot * f + w * f_dot: w before it changes
                    out.extend(lines)
                    out.append(node)
                else:
                    out.append(node)
                    out.extend(lines)
            elif kind is Loop or kind is Section:
                out.append(replace(node, body=self.nodes(node.body)))
            elif kind is Check or kind is Append:
                out.append(node)
            else:
                raise AssertionError(f"no tangent for {node!r} (array programs have no branches)")
        return tuple(out)

    def _lines(self, node: Assign) -> list[Assign]:
        target, mode, term = node.target, node.mode, node.term
        kind = type(target)
        if kind is Rows:
            return []
        if kind is ArrayBar or kind is Suffixes:  # a new array: its tangent starts at zeros
            return [Assign(Dot(target), "=", ZERO)]
        if kind is Suffix or kind is Prefix:
            return self._stateful(node)
        if mode == "*=":
            change = self._product(target, term)
            return [Assign(Dot(target), "=", change, node.origins)] if change is not None else []
        if mode != "=" and type(target) is not Ref and self._is_element(target):
            change = self.of(term)  # x_bar[i + 1] += ...: added into the array's tangent
            return [] if is_zero(change) else [Assign(Dot(target), mode, change, node.origins)]
        origin = node.origins[0] if node.origins else None
        lines = self.sweep.step(Line(target, mode, term, origin))
        return [Assign(line.target, line.mode, line.term, node.origins) for line in lines]

    def _stateful(self, node: Assign) -> list[Assign]:
        target, mode, term = node.target, node.mode, node.term
        if mode == "*=":
            change = self._product(target, term)
        else:
            change = self.of(term) if mode == "=" else fold("add", (Dot(target), self.of(term)), self.sweep.tape)
        return [Assign(Dot(target), "=", ZERO if change is None else change)]

    def _product(self, target, factor):
        """The tangent of target * factor, from the target's value before the product."""
        value_dot = self.of(target) if type(target) is not Ref else self.sweep.current.get(target, ZERO)
        tape = self.sweep.tape
        return fold(
            "add",
            (fold("mul", (value_dot, factor), tape), fold("mul", (target, self.of(factor)), tape)),
            tape,
        )

    def _is_element(self, target) -> bool:
        index = getattr(target, "index", None)
        return index is not None and self.sweep.tape.tape.instrs[index].op == READ


def _accumulated(nodes: tuple) -> set:
    """Targets that some line adds into or multiplies (`+=`, `-=`, `*=`): their tangents must be
    variables from their first assignment on, not folded into the line that reads them."""
    found, stack = set(), list(nodes)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is Assign:
            if node.mode != "=":
                found.add(node.target)
        elif kind is Loop or kind is Section:
            stack.extend(node.body)
    return found


def tangent_entry(tape: Tape, entry: Entry, name: str, params: tuple, doc: str, results) -> Entry:
    """`entry` with tangent lines along the direction parameters; `results(tangents)` gives the new
    entry's results from the sweep (it reads the tangents of the old results). Tangent lines whose
    value nothing reads are dropped (hvp returns the value, not its tangent)."""
    tangents = ProgramTangents(tape, entry, direction_seeds(tape))
    body = tangents.nodes(entry.body)
    made = results(tangents)
    return Entry(name, params, doc, _read_tangents(tape, body, made), made)


def _read_tangents(tape: Tape, body: tuple, results: tuple) -> tuple:
    """The nodes without the tangent lines nobody else reads, until none is left (dropping one can
    leave the tangents it read unread)."""
    while True:
        read = _dots(tape, result_terms(results))
        for node in _assigns(body):
            found = _dots(tape, [node.term])
            if type(node.target) is Dot:
                found.discard(_base(tape, node.target))  # w4_dot = w4_dot * w3 + ...: not a reader of itself
            read |= found
        kept = _loop_locals(tape, _without(tape, body, read), read_outside=_dots(tape, result_terms(results)))
        if kept == body:
            return body
        body = kept


def _loop_locals(tape: Tape, nodes: tuple, read_outside: set) -> tuple:
    """The nodes without the tangents a loop sets (`w3_dot = ...`) and nothing in that loop reads: a
    value set in a loop lives one iteration (a loop that recomputes a body for another loop's sake
    carries no tangent the other one reads: that one computes its own). A value set outside every
    loop (a sum's tangent, zeroed before its loop and added to in it) is not such a value."""
    return _pruned(tape, nodes, _set_outside_loops(tape, nodes), read_outside)


def _set_outside_loops(tape: Tape, nodes: tuple) -> set:
    found, stack = set(), list(nodes)
    while stack:
        node = stack.pop()
        if type(node) is Assign and node.mode == "=" and type(node.target) is Dot:
            found.add(_base(tape, node.target))
        elif type(node) is Section:
            stack.extend(node.body)
    return found


def _pruned(tape: Tape, nodes: tuple, outside: set, read_outside: set) -> tuple:
    """`outside`: values set around these nodes (outside every loop, or in an enclosing loop's body):
    a loop inside that updates one (w5_dot = w5_dot * w4 + ..., a product's scan) does not own it."""
    out = []
    for node in nodes:
        if type(node) is Loop:
            set_here, read = set(), set()
            for line in _assigns(node.body):
                found = _dots(tape, [line.term])
                if type(line.target) is Dot:
                    base = _base(tape, line.target)
                    if line.mode == "=" and base not in found and type(base.of) in (Ref, Bar, Prefix):
                        set_here.add(base)
                    found.discard(base)
                read |= found
            local = set_here - outside - read - read_outside
            body = _without_bases(tape, node.body, local) if local else node.body
            around = outside | _set_outside_loops(tape, body)  # what this loop's body sets for its inner loops
            node = replace(node, body=_pruned(tape, body, around, read_outside))
        elif type(node) is Section:
            node = replace(node, body=_pruned(tape, node.body, outside, read_outside))
        out.append(node)
    return tuple(out)


def _without_bases(tape: Tape, nodes: tuple, dropped: set) -> tuple:
    out = []
    for node in nodes:
        if type(node) is Assign and type(node.target) is Dot and _base(tape, node.target) in dropped:
            continue
        if type(node) is Loop or type(node) is Section:
            node = replace(node, body=_without_bases(tape, node.body, dropped))
        out.append(node)
    return tuple(out)


def _without(tape: Tape, nodes: tuple, read: set) -> tuple:
    out = []
    for node in nodes:
        kind = type(node)
        if kind is Assign and type(node.target) is Dot and _base(tape, node.target) not in read:
            continue
        if kind is Loop or kind is Section:
            node = replace(node, body=_without(tape, node.body, read))
        out.append(node)
    return tuple(out)


def _assigns(nodes: tuple):
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if type(node) is Assign:
            yield node
        elif type(node) is Loop or type(node) is Section:
            stack.extend(node.body)


def _base(tape: Tape, dot: Dot):
    """The variable a tangent lives in: one per array or buffer, whatever element a line touches."""
    of = dot.of
    if type(of) is Suffix:
        return Dot(Suffixes(of.reduction))
    if type(of) is Bar and tape.instrs[of.index].op == READ:
        return Dot(ArrayBar(tape.instrs[of.index].name))  # x_bar_dot[i + 1]: the array x_bar_dot
    return dot


def _dots(tape: Tape, terms) -> set:
    found, stack = set(), list(terms)
    while stack:
        term = stack.pop()
        if type(term) is Op:
            stack.extend(term.args)
        elif type(term) is Dot:
            found.add(_base(tape, term))
    return found


__all__ = ["ProgramTangents", "direction_seeds", "tangent_entry"]

