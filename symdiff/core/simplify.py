"""simplify: Adjoint -> Adjoint computing the same gradient with less work.

- the first contribution to an adjoint assigns (`=`) instead of adding to a zero;
- `*1`, `+0`, `*0` and double negation vanish, constants fold (x^(2-1) is x), and a stored
  -(2*u) is (-2)*u, its minus in the constant;
- an adjoint that is a single constant or value (or minus one), or a small term read only once, is
  used in place, not copied into a variable;
- a subterm the forward sweep already computed is reused (cos(x) for sin(x) when the tape has it);
- an entry's partials to one operand are summed (x - x adds nothing to x_bar, x*x adds 2*x), and
  equal contributions to one adjoint are one term (x1*x2 + x2*x1 is 2*(x1*x2));
- contributions that share a power-of-two factor are summed under it (-2*a - b*(2*c) is -2*(a + b*c));
- only adjoints that lie on a path to a requested input are computed.
In an array program, a loop's contributions to a value outside the loop are added as the loop runs
(the value's adjoint zeroed before it), and an array element's are added into the array's adjoint
(`x_bar[i + 1] += ...`): the sweep of a loop stays one loop.
The rewrites below are the arithmetic the chain rule itself uses (multiply, add, negate); derivative
rules stay in the primitive table.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable

from . import primitives
from .adjoint import Adjoint, ArrayBar, Bar, Op, Step, Term, is_atom, sign_into_constant
from .algebra import ONE, ZERO, fold, fold_term, is_zero, negated
from .reverse import Partials, local_partials
from .tape import READ, Const, Ref, Tape


def simplify(raw: Adjoint) -> Adjoint:
    """The raw sweep simplified. Its steps are the chain-rule products of the tape's local partials, as
    reverse() made them; those partials are taken from the tape again, not read back out of the steps."""
    return _simplify(raw.tape, raw.wrt, local_partials(raw.tape), raw.output, folded=False)


def simplify_sweep(tape: Tape, wrt: tuple[str, ...], output: int = 0) -> Adjoint:
    """simplify(reverse(tape, wrt, output)) without the raw program: the local partials are made
    entry by entry (reverse.local_partials) and folded as they are built, read once, then dropped."""

    def make(op: str, args: tuple) -> Term:
        return fold(op, args, tape)

    return _simplify(tape, wrt, local_partials(tape, make), output, folded=True)


def _simplify(
    tape: Tape, wrt: tuple[str, ...], sweep: Iterable[tuple[int, Partials]], output: int, folded: bool
) -> Adjoint:
    """The simplified program from the sweep's local partials, entry by entry; `folded`: they are
    folded already (else each is folded here)."""
    wanted = {i for name in wrt if (i := tape.input_index(name)) is not None}
    if tape.arrays:
        wanted.update(i for name in wrt if tape.is_array(name) for i in tape.reads(name))
    relevant = tape.depends_on(wanted)
    contributions: dict[int, list[tuple[Term, int | None, tuple]]] = defaultdict(list)
    settled: dict[int, Term] = {}
    steps: list[Step] = []
    unread = False  # whether some contributions were dropped unread
    # Loops (array programs): a value outside a loop gets its contributions from inside it added as
    # the loop runs (`a_bar += ...` in the loop body, after `a_bar = 0` before the loop): made later,
    # they would need the body's values again. An array element's adjoint is added into the array's
    # (`x_bar[i + 1] += ...`) once all its contributions are in: when the sweep passes its entry.
    accumulated: set[int] = set()
    zeroed: list[tuple[int, tuple, tuple]] = []  # (entry, its path, the loop step its contributions are in)
    pending_reads: list[int] = []  # a heap of -entry

    def add_read(index: int) -> None:
        parts = contributions.pop(index)
        summed = _factored(_equal_summed(parts, tape))
        term = _sum([term for term, _, _, _ in summed]) if len(summed) > 1 else summed[0][0]
        _, origin, path, merged = summed[0]
        merged += tuple(other for part in summed[1:] for other in (part[1], *part[3]))
        steps.append(_accumulate(index, term, origin, path, merged))

    def settle(index: int, materialise: bool = False, uses: int = 0) -> Term:
        """The final value of an adjoint: a constant or a value used in place, else a variable.
        `uses`: how many contributions will read it (one per operand with a nonzero partial)."""
        parts = [part for part in contributions.pop(index, ()) if type(part[0]) is not Const or part[0].value != 0.0]
        home = () if materialise else tape.path(index)  # an input's adjoint is returned: it lives outside every branch
        if index in accumulated:  # added to inside a loop already
            steps.extend(_accumulate(index, term, origin, path) for term, origin, path in parts)
            value = Bar(index, output)
        elif tape.paths and any(path != home for _, _, path in parts):  # without where(), every path is ()
            # Some contributions come from inside a branch: start from 0 where the adjoint lives.
            steps.append(Step(index, "=", ZERO, None, home))
            steps.extend(_accumulate(index, term, origin, path) for term, origin, path in parts)
            value = Bar(index, output)
        elif all(isinstance(term, Const) for term, _, _ in parts):
            value = Const(math.fsum(term.value for term, _, _ in parts))
        else:
            summed = _equal_summed(parts, tape)
            if len(summed) == 1 and not materialise and (
                _in_place(summed[0][0]) or (uses == 1 and _ops_at_most(summed[0][0], IN_PLACE_OPS))
            ):
                value = summed[0][0]
            else:
                factored = _factored(summed)
                for number, (term, origin, path, merged) in enumerate(factored):
                    if number == 0:
                        # Alone, -(c*u) is written (-c)*u; in a sum the printers turn -a + b into b - a.
                        term = sign_into_constant(term) if len(factored) == 1 else term
                        steps.append(Step(index, "=", term, origin, path, merged))
                    else:
                        steps.append(_accumulate(index, term, origin, path, merged))
                value = Bar(index, output)
        settled[index] = value
        return value

    seed = (tape.outputs or (tape.output,))[output]
    if isinstance(seed, Ref) and seed.index in relevant:
        contributions[seed.index].append((ONE, None, ()))
    for origin, group in sweep:
        while pending_reads and -pending_reads[0] > origin:  # nothing after it adds to it any more
            add_read(-heapq.heappop(pending_reads))
        if origin not in relevant:
            continue
        # The raw term is adjoint(origin) * partial; look at the partials before settling the adjoint,
        # so an adjoint whose partials are all zero is never written (it would be an unused variable).
        partials = []
        for target, partial, path, _ in group:
            if target not in relevant:
                continue
            if not folded:
                partial = fold_term(partial, tape, settled)
            if not is_zero(partial):
                partials.append((target, partial, path))
        if len(partials) > 1 and _repeats(partials):  # x - x, x * x: one partial per operand
            partials = [part for part in _by_operand(partials, tape) if not is_zero(part[1])]
        if not partials:
            # Its adjoint is never needed; adjoints written only for it are dead (dropped below).
            unread = unread or bool(contributions.pop(origin, None))
            continue
        seed = settle(origin, uses=len(partials))
        for target, partial, path in partials:
            term = fold("mul", (seed, partial), tape)
            if is_zero(term):
                continue
            if not tape.arrays and not tape.loops:
                contributions[target].append((term, origin, path))
            elif tape.instrs[target].op == READ:
                if len(path) > len(tape.path(target)):  # from a loop inside the read's: added as it runs
                    steps.append(_accumulate(target, term, origin, path))
                    continue
                if target not in contributions:
                    heapq.heappush(pending_reads, -target)
                contributions[target].append((term, origin, path))
            elif len(path) > len(home := tape.path(target)):  # from inside a loop the target is outside of
                if target not in accumulated:
                    accumulated.add(target)
                    zeroed.append((target, home, path[len(home)]))
                steps.append(_accumulate(target, term, origin, path))
            else:
                contributions[target].append((term, origin, path))
    while pending_reads:
        add_read(-heapq.heappop(pending_reads))
    gradient = []
    for name in wrt:
        index = tape.input_index(name)
        if tape.arrays and tape.is_array(name):
            gradient.append(ArrayBar(name, output))
        elif index is None:
            gradient.append(ZERO)
        else:
            gradient.append(settled[index] if index in settled else settle(index, materialise=True))
    if zeroed:
        steps = _zeroed_before_loops(steps, zeroed, output)
    if unread:
        steps = _read(steps, gradient, {i for i, instr in enumerate(tape.instrs) if instr.op == READ})
    return Adjoint(tape, wrt, tuple(steps), tuple(gradient), output)


def _zeroed_before_loops(steps: list[Step], zeroed: list[tuple[int, tuple, tuple]], output: int) -> list[Step]:
    """The steps with `x_bar = 0` before the loop that adds to x_bar, for each (x, path, loop step)."""
    first: dict[tuple, int] = {}  # a loop step (with the path to it) -> the first step in that loop
    for position, step in enumerate(steps):
        for depth in range(len(step.path)):
            first.setdefault(step.path[: depth + 1], position)
    before: dict[int, list[Step]] = defaultdict(list)
    for index, home, loop in zeroed:
        before[first[(*home, loop)]].append(Step(index, "=", ZERO, None, home))
    result: list[Step] = []
    for position, step in enumerate(steps):
        # Outermost first: `a_bar = 0` outside the loops, then `w3_bar = 0` inside the loop over j.
        result.extend(sorted(before.get(position, ()), key=lambda zero: len(zero.path)))
        result.append(step)
    return result


def _read(steps: list[Step], gradient: list[Term], elements: set[int]) -> list[Step]:
    """The steps whose adjoint something reads. One is written for the contributions it makes; where
    those land on an entry whose partials all vanish (x - x), nothing reads them, nor it. Array
    `elements` are read: their adjoints are added into the array's."""
    read = {term.index for term in gradient if type(term) is Bar} | elements
    kept = []
    for step in reversed(steps):
        if step.target in read:
            kept.append(step)
            stack = [step.term]
            while stack:
                term = stack.pop()
                if type(term) is Op:
                    stack.extend(term.args)
                elif type(term) is Bar:
                    read.add(term.index)
    kept.reverse()
    return kept


def _repeats(partials: list[tuple[int, Term, tuple]]) -> bool:
    """Whether two of an entry's partials are to one operand (on one path)."""
    if len(partials) == 2:  # a binary op: no set to build
        (a, _, a_path), (b, _, b_path) = partials
        return a == b and a_path == b_path
    return len({(target, path) for target, _, path in partials}) < len(partials)


def _by_operand(partials: list[tuple[int, Term, tuple]], tape: Tape) -> list[tuple[int, Term, tuple]]:
    """An entry's partials, those to the same operand summed: d(x - x)/dx is 1 - 1 = 0 and adds
    nothing (two contributions would add w_bar and subtract it again), d(x*x)/dx is 2*x."""
    summed: dict[tuple[int, tuple], Term] = {}
    for target, partial, path in partials:
        key = (target, path)
        summed[key] = partial if key not in summed else fold("add", (summed[key], partial), tape)
    return [(target, partial, path) for (target, path), partial in summed.items()]


def _accumulate(index: int, term: Term, origin: int | None, path: tuple, merged: tuple[int, ...] = ()) -> Step:
    if isinstance(term, Op) and term.op == "neg":
        return Step(index, "-=", term.args[0], origin, path, merged)
    return Step(index, "+=", term, origin, path, merged)


def _equal_summed(parts: list[tuple[Term, int | None, tuple]], tape: Tape) -> list[tuple]:
    """An adjoint's contributions, as (term, origin, path, merged origins), equal ones summed: u + u
    is 2*u (x1*x2 + x2*x1 is 2*(x1*x2)), exactly, where it stands first. Equal means the same
    arithmetic up to the order of a commutative op's operands, which IEEE arithmetic ignores too."""
    if len(parts) == 1:
        return [(*parts[0], ())]
    if len(parts) <= FEW_PARTS:  # pair by pair: most pairs differ at the top, and fail at once
        place, distinct = list(range(len(parts))), True
        for k in range(1, len(parts)):
            for j in range(k):
                if place[j] == j and parts[j][2] == parts[k][2] and _same(parts[j][0], parts[k][0]):
                    place[k], distinct = j, False
                    break
        if distinct:
            return [(*part, ()) for part in parts]
    else:  # by key, so that the time stays linear in the number of contributions
        first: dict[tuple, int] = {}
        place = [first.setdefault((_key(term), path), k) for k, (term, _, path) in enumerate(parts)]
    summed = {}
    for k, (term, origin, path) in enumerate(parts):
        if place[k] == k:
            summed[k] = [term, origin, path, (), 1]
        else:
            part = summed[place[k]]
            part[3] += (origin,)
            part[4] += 1
    return [
        (term if count == 1 else fold("mul", (Const(float(count)), term), tape), origin, path, merged)
        for term, origin, path, merged, count in summed.values()
    ]


# Up to this many contributions to one adjoint are compared pair by pair, more by key.
FEW_PARTS = 6


def _same(a: Term, b: Term) -> bool:
    """_key(a) == _key(b), but stopping at the first difference (most pairs differ at the top)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is not Op:
        return a == b
    if a.op != b.op or len(a.args) != len(b.args):
        return False
    if len(a.args) == 2 and primitives.TABLE[a.op].commutative:
        (p, q), (r, t) = a.args, b.args
        return (_same(p, r) and _same(q, t)) or (_same(p, t) and _same(q, r))
    return all(_same(p, r) for p, r in zip(a.args, b.args))


def _key(term: Term) -> tuple:
    """A term's arithmetic, with a commutative op's operands in one order: equal keys, equal values."""
    kind = type(term)
    if kind is Ref:
        return (1, term.index)
    if kind is Op:
        keys = tuple([_key(arg) for arg in term.args])
        return (3, term.op, tuple(sorted(keys)) if primitives.TABLE[term.op].commutative else keys)
    if kind is Const:
        return (0, term.value, math.copysign(1.0, term.value))  # -0.0 is not 0.0
    if kind is Bar:
        return (2, term.index, term.output)
    return (4, kind.__name__, *(getattr(term, name) for name in kind.__slots__))  # a product's Prefix, Suffix


def _factored(parts: list[tuple[Term, int | None, tuple, tuple[int, ...]]]) -> list[tuple]:
    """An adjoint's contributions, those that share a power-of-two factor summed under it:
    -2*a - b*(2*c) is -2*(a + b*c), a multiplication fewer (the chain rule through squares makes
    them). Scaling by a power of two only moves the exponent, so away from overflow and subnormal
    numbers the sum is the same; the order of the additions changes, as the simplified sum's may.
    At most FACTORED_TERMS contributions share one factor, so that a term stays small."""
    if len(parts) < 2:
        return parts
    scales = [_scale_of(term) for term, _, _, _ in parts]
    if sum(found is not None for found in scales) < 2:
        return parts
    groups: dict[float, list[int]] = defaultdict(list)
    for k, found in enumerate(scales):
        if found is not None:
            groups[found[0]].append(k)
    chunk_of: dict[int, list[int]] = {}  # the first contribution of each chunk -> the chunk
    for members in groups.values():
        for start in range(0, len(members), FACTORED_TERMS):
            chunk = members[start : start + FACTORED_TERMS]
            if len(chunk) > 1:
                chunk_of[chunk[0]] = chunk
    folded = {k for chunk in chunk_of.values() for k in chunk}
    result = []
    for k, part in enumerate(parts):
        if k not in folded:
            result.append(part)
        elif k in chunk_of:
            chunk = chunk_of[k]
            # Built directly, not folded: the sum of non-constant terms under a constant has nothing to fold.
            rests = [scales[j][1] for j in chunk]
            scale = Const(scales[k][0])
            if all(negated(rest) is not None for rest in rests):  # -2*a - 2*b is -(2*(a + b))
                combined = Op("neg", (Op("mul", (scale, _sum([negated(rest) for rest in rests]))),))
            else:  # a term that is not negated first, so that the others subtract from it
                combined = Op("mul", (scale, _sum(sorted(rests, key=lambda rest: negated(rest) is not None))))
            _, origin, path, merged = part
            merged += tuple(other for j in chunk[1:] for other in (parts[j][1], *parts[j][3]))
            result.append((combined, origin, path, merged))
    return result


# How many contributions one power-of-two factor may gather (as many as a line of the sum holds).
FACTORED_TERMS = 4


def _sum(terms: list[Term]) -> Term:
    """a + b - c for [a, b, -c]."""
    total = terms[0]
    for term in terms[1:]:
        inner = negated(term)
        total = Op("add", (total, term)) if inner is None else Op("sub", (total, inner))
    return total


def _scale_of(term: Term, depth: int = 3) -> tuple[float, Term] | None:
    """(c, u) with term = c * u and c a power of two other than 1 (c > 0; a sign stays in u), found
    through negations and products a few levels down; None if there is none."""
    if type(term) is not Op or depth == 0:
        return None
    if term.op == "neg":
        found = _scale_of(term.args[0], depth - 1)
        return None if found is None else (found[0], _negate(found[1]))
    if term.op != "mul":
        return None
    left, right = term.args
    if type(left) is Const and _power_of_two(left.value):
        return abs(left.value), right if left.value > 0 else _negate(right)
    if (found := _scale_of(right, depth - 1)) is not None:
        return found[0], Op("mul", (left, found[1]))
    if (found := _scale_of(left, depth - 1)) is not None:
        return found[0], Op("mul", (found[1], right))
    return None


def _power_of_two(value: float) -> bool:
    return math.isfinite(value) and value != 0.0 and abs(value) != 1.0 and math.frexp(abs(value))[0] == 0.5


def _negate(term: Term) -> Term:
    inner = negated(term)
    return inner if inner is not None else Op("neg", (term,))


def _in_place(term: Term) -> bool:
    """An adjoint this cheap is substituted where it is used, not stored: an atom, or minus one (the
    minus then folds into the reader: w_bar += -a * p is w_bar -= a * p)."""
    return is_atom(term) or (type(term) is Op and term.op == "neg" and is_atom(term.args[0]))


# An adjoint read exactly once, with a single contribution of at most this many operations, is
# written into its reader (x1_bar = -2.0 * w7 - ..., not w7_bar = 2.0 * w7 first): a statement
# fewer, as a person would write it. Small, so that chains (sin(sin(...))) stay one line per step or two.
IN_PLACE_OPS = 2


def _ops_at_most(term: Term, limit: int) -> bool:
    stack, count = [term], 0
    while stack:
        node = stack.pop()
        if type(node) is Op:
            count += 1
            if count > limit:
                return False
            stack.extend(node.args)
    return True
