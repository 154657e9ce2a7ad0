"""program: Adjoint (and tangent sweeps) -> Program, the one structured program every backend prints.

In: a tape with its simplified reverse sweep (build_program; derivatives.py builds the jvp,
Jacobian and Hessian programs from tangent sweeps with `straight_line_entry`). Out: a Program, all
data and no text a backend must parse: every mathematical decision is taken here, once.

    Program(header, tape, entries)
      Header    what the module is (kind of module, expression source, inputs, wrt): a backend
                writes its own docstring or comment from it.
      Entry     one function: name ("f", "grad", "value_and_grad", "jvp", "jacobian",
                "value_and_jacobian", "hessian", "hvp"), params (input names; `tangent` ones are a
                direction, x_dot), doc (one sentence), body (Sections) and results.
      Result    Scalar (one term), Vector (a tuple: gradient, jvp product) or Matrix (rows: Jacobian,
                Hessian), each with its role; a backend returns them in order (Python: `a, (b, c)`).
    Nodes of a body, to print in order:
      Section   a titled part ("forward sweep", "reverse sweep" with its `seed`): a comment and its body.
      Assign    `target mode term`: target a forward value (Ref), an adjoint (Bar), a tangent (Dot) or
                a branch flag (Flag); mode "=", "+=" or "-="; the term's operations are rows of
                primitives.TABLE (Op.op), its leaves Const, Ref, Bar, Dot, Flag or a loop Index.
                `origins`: the tape entries whose partials the line adds, for a note back to the
                formula. `read` False: nothing reads the value, it is evaluated only so that a
                point outside the row's domain raises (a backend that cannot raise may drop it).
      Check     evaluate tape entry `index` only where its row's `guard_domain` fails, so that the
                derivative raises where f() raises (Python: `if not x > 0.0: log(x)`).
      If        run `body` when the truth value `condition` (a Ref, or a Flag) holds, else `orelse`.
                Built nested exactly as Tape.paths and Step.path say: a branch's lines run only in
                it, since outside it an operation may be undefined (log of a negative number).
      Loop      run `body` for `index` from `start` to `stop` - 1 (expr.Affine bounds over enclosing
                indices and array lengths): a reduction's body. In the forward sweep it adds the body's
                value into the reduction (`w9 = 0.0` before, `w9 += w8` in it); in the reverse sweep it
                recomputes the body's forward values for each index, then its adjoints, adding those
                of array elements into the array's (`x_bar[i + 1] += ...`, target Bar of a READ entry)
                and those of values outside the loop into theirs (`a_bar += ...`, zeroed before it).
    Leaves of array programs: Ref of a READ entry is an array element (x[i + 1]), of a COUNTER entry
    the loop index as a number, of a LENGTH entry an array's length; ArrayBar is a whole array's
    adjoint (`x_bar = 0` allocates it, zeros of x's shape; a Vector of the gradient returns it).
    A product's reverse loop reads the product of the factors before i (Prefix, `*=` each factor at
    the loop's end) and after i (Suffix, element i - start + shift of the buffer `Suffixes`, filled
    first by a `descending` Loop): never a division, so zero factors are exact.

A backend chooses names, spellings and buffers, and prints. It must print every node (a line
nobody reads has already been dropped here), keep the order, and evaluate a branch's lines only
in that branch. A `where` Op in a term (w9 = where(w2, w7, w8), after both branches' Ifs) must read
only the operand its condition selects: the other was not computed. Ifs nest as deep as the
where()s (a thousand is a valid program): walk them with a loop, not recursion. `flat` turns nested Ifs into one level of Ifs testing one flag each (`w9 = w5 and
not w2`), for printers that must not indent per level (CPython refuses 100 levels); `operations`
lists the rows a program uses, from which a backend writes its imports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from . import primitives
from .adjoint import Adjoint, ArrayBar, Bar, Op, Prefix, Step, Suffix, sign_into_constant
from .bounds import combine
from .expr import Affine
from .forward import Assign as Line
from .forward import Dot
from .tape import INPUT, LEAVES, REDUCTIONS, Const, Ref, Tape, is_primitive

Path = tuple[tuple[int, bool], ...]  # a branch: ((condition entry, value taken), ...), outermost first


@dataclass(frozen=True, slots=True)
class Flag:
    """The truth value of branch `path` (every condition on it holds), made by `flat`."""

    path: Path


@dataclass(frozen=True, slots=True)
class Index:
    """A loop's index, as a leaf of a term."""

    name: str


@dataclass(frozen=True, slots=True)
class Assign:
    target: Ref | Bar | Dot | Flag | ArrayBar
    mode: str  # "=", "+=", "-=", or "*=" (a product's factor)
    term: object  # a term over Const, Ref, Bar, Dot, Flag, Index leaves and Op applications
    origins: tuple[int, ...] = ()  # entries whose local partials this adds (for a note); () for none
    read: bool = True  # False: evaluated only so that a point outside the domain raises


@dataclass(frozen=True, slots=True)
class Check:
    """Evaluate entry `index` where its row's guard_domain fails: raise where f() raises."""

    index: int


@dataclass(frozen=True, slots=True)
class If:
    condition: Ref | Flag  # a truth value
    body: tuple[Node, ...]  # runs when it holds
    orelse: tuple[Node, ...] = ()  # runs when it does not


@dataclass(frozen=True, slots=True)
class Loop:
    index: Index
    start: object  # expr.Affine
    stop: object  # expr.Affine, exclusive
    body: tuple[Node, ...]
    reduction: int = -1  # the tape entry (a REDUCTIONS op) whose body it runs
    descending: bool = False  # from stop - 1 down to start (a product's suffixes are made so)


@dataclass(frozen=True, slots=True)
class Suffixes:
    """As an Assign's target (`= 1.0`): the buffer of product `reduction`'s suffix products, one
    more than its range is long, every element 1.0 (see adjoint.Suffix)."""

    reduction: int


def buffer_position(tape: Tape, suffix: Suffix) -> Affine:
    """Where Suffix(reduction, shift) sits in its buffer: index - start + shift, an Affine over the
    loop's index and the lengths (every printer indexes the buffer with it)."""
    loop = tape.loop_of(suffix.reduction)
    return combine(Affine(suffix.shift, ((loop.index, 1),)), loop.start, -1)


def buffer_length(tape: Tape, reduction: int) -> Affine:
    """How long product `reduction`'s buffer of suffixes is: its range's length, plus one (the 1 past the end)."""
    loop = tape.loop_of(reduction)
    return combine(combine(loop.stop, loop.start, -1), Affine(1))


# A path step (reduction, BACKWARD): in the loop of that product that runs backwards to fill Suffixes.
BACKWARD = "backward"

# An item (path, SPLIT) for `nested`: close every loop or branch deeper than `path` (two loops over one
# range in a row are two loops, when the first must finish before the second starts).
SPLIT = object()


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    body: tuple[Node, ...]
    seed: Bar | None = None  # a reverse sweep's seeded adjoint (it starts at 1)


@dataclass(frozen=True, slots=True)
class Rows:
    """A list of rows built as the entry runs (a vector output's Jacobian: one row per output, its
    length known only at run time). As an Assign's target (`= 0.0`) it starts empty; `Append` adds a
    row; as a Result it is returned."""

    role: str  # "values", "jacobian"


@dataclass(frozen=True, slots=True)
class Append:
    """Add one row to Rows(role): the terms in order, an ArrayBar as its elements (row-major); with
    `scalar`, the one term itself (a list of values, not of rows)."""

    role: str
    terms: tuple
    scalar: bool = False


Node = Assign | Check | If | Loop | Section | Append


@dataclass(frozen=True, slots=True)
class Param:
    name: str  # the user's input name
    tangent: bool = False  # the direction's component along that input (x_dot), not its value


@dataclass(frozen=True, slots=True)
class Scalar:
    role: str  # "value", "derivative"
    term: object


@dataclass(frozen=True, slots=True)
class Vector:
    role: str  # "gradient", "values", "hvp"
    terms: tuple


@dataclass(frozen=True, slots=True)
class Matrix:
    role: str  # "jacobian", "hessian"
    rows: tuple[tuple, ...]


Result = Scalar | Vector | Matrix | Rows


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    params: tuple[Param, ...]
    doc: str
    body: tuple[Section, ...]
    results: tuple[Result, ...]


@dataclass(frozen=True, slots=True)
class Header:
    kind: str  # "gradient", "jvp", "jacobian" or "hessian"
    source: str  # the expression or program as the user wrote it
    inputs: tuple[str, ...]  # in parameter order
    wrt: tuple[str, ...]  # what the derivatives are taken with respect to (() for a jvp)
    mode: str = ""  # a Jacobian's: "reverse" or "forward"


@dataclass(frozen=True)
class Program:
    header: Header
    tape: Tape  # the entries a body's Ref, Bar and Dot leaves and its Checks number
    entries: tuple[Entry, ...]


GRADIENT_ENTRIES = ("f", "grad", "value_and_grad")


def build_program(adjoint: Adjoint, entries: Collection[str] = GRADIENT_ENTRIES) -> Program:
    """The gradient module's program with `entries` (a subset of GRADIENT_ENTRIES, in that order).

    f computes what the output reads; grad only what the reverse sweep reads, and checks the domain
    of every row f evaluates (so it raises where f raises); value_and_grad both from one forward
    sweep. A forward value that one reverse term alone reads is computed inside that term."""
    tape = adjoint.tape
    output_needs = refs([tape.output])
    gradient_needs = refs([step.term for step in adjoint.steps] + list(adjoint.gradient))
    gradient_needs |= branch_conditions((step.path for step in adjoint.steps), set())
    if tape.loops:  # a loop's body values are computed again in the reverse sweep's loop, not stored
        # A product's reverse loops read its factor (to fill its suffixes and grow its prefix).
        swept = {step.path[depth][0] for step in adjoint.steps for depth in range(len(step.path))}
        gradient_needs |= {i for r in swept if tape.instrs[r].op == "prod" for i in refs(tape.instrs[r].args)}
        gradient_needs = {index for index in tape.closure(gradient_needs) if not tape.path(index)}
    # Only what f() computes: a definition nothing reads raises in neither.
    guards = frozenset(
        i
        for i in closure_with_conditions(tape, output_needs)
        if is_primitive(tape.instrs[i].op) and primitives.lookup(tape.instrs[i].op).guard_domain
    )
    seed = Bar(tape.output.index, adjoint.output) if isinstance(tape.output, Ref) else None
    wrt = ", ".join(f"d/d{name}" for name in adjoint.wrt) or "no inputs"
    params = tuple(Param(name) for name in tape.inputs)
    value = Scalar("value", tape.output)

    lines: dict[int, Assign] = {}  # forward lines, the same nodes in every entry

    def with_gradient(roots: set[int], guarded: frozenset[int], extra_reads: tuple = (), fused: int | None = None):
        in_place = _read_once_by_sweep(adjoint, closure_with_conditions(tape, roots | guarded), guarded, extra_reads)
        forward = _forward(tape, lines, roots, guarded, skip=in_place)
        items = _reverse_items(adjoint, in_place)
        if tape.arrays or tape.loops:
            items = _array_adjoints(adjoint) + _recomputed(tape, lines, items, fused=fused)
        reverse = Section("reverse sweep", nested(items, tape), seed)
        gradient = Vector("gradient", tuple(_substituted(term, in_place) for term in adjoint.gradient))
        return _sections(forward, reverse), gradient

    def grad() -> Entry:
        body, gradient = with_gradient(gradient_needs, guards)
        doc = f"Gradient ({wrt}); computes only the forward values the reverse sweep reads."
        return Entry("grad", params, doc, body, (gradient,))

    def value_and_grad() -> Entry:
        fused = _summed_in_the_sweep(adjoint, gradient_needs)
        if fused is None:
            body, gradient = with_gradient(output_needs | gradient_needs, frozenset(), (tape.output,))
        else:  # the sum is added up in the reverse sweep's loop, which computes its terms anyway
            outside = {i for i in tape.closure(refs(tape.instrs[fused].args)) if not tape.path(i)}
            reads = (tape.output, *tape.instrs[fused].args)  # its term is read by the loop adding it up
            body, gradient = with_gradient(gradient_needs | outside, frozenset(), reads, fused)
        return Entry("value_and_grad", params, "Value and gradient from one forward sweep.", body, (value, gradient))

    builders = {
        "f": lambda: Entry("f", params, "Value of the expression.", _sections(_forward(tape, lines, output_needs)),
                           (value,)),
        "grad": grad,
        "value_and_grad": value_and_grad,
    }
    chosen = tuple(builders[name]() for name in GRADIENT_ENTRIES if name in entries)
    return Program(Header("gradient", tape.source, tape.inputs, adjoint.wrt), tape, chosen)


def _sections(*candidates: Section) -> tuple[Section, ...]:
    return tuple(section for section in candidates if section.body)


def _forward(
    tape: Tape, lines: dict[int, Assign], roots: set[int], guards: frozenset[int] = frozenset(), skip: Collection[int] = ()
) -> Section:
    """The forward sweep computing `roots`; `guards` are only checked (Check), unless a line computed
    for another guard reads their value. Entries in `skip` are computed where the reverse sweep reads
    them. `lines`: each entry's line, made once (updated here)."""
    return Section("forward sweep", nested(_forward_items(tape, lines, roots, guards, skip), tape))


def _forward_items(
    tape: Tape,
    lines: dict[int, Assign],
    roots: set[int],
    guards: frozenset[int] = frozenset(),
    skip: Collection[int] = (),
    inside: Path = (),
) -> list[tuple[Path, Node]]:
    """_forward's lines with their paths, of the entries in loop `inside` (all, for ())."""
    used = closure_with_conditions(tape, roots)
    needed = used | closure_with_conditions(tape, set(guards))
    read = {arg.index for index in needed for arg in tape.instrs[index].args if type(arg) is Ref}
    items: list[tuple[Path, Node]] = []
    started: set[int] = set()  # reductions whose value is set to 0 (or 1) before their loop
    for index, instr in enumerate(tape.instrs):
        if index not in needed or instr.op in LEAVES or index in skip:
            continue
        path = tape.path(index)
        if path[: len(inside)] != inside:
            continue
        if tape.loops:
            _start_reductions(tape, path, len(inside), started, items)
        if instr.op in REDUCTIONS:
            if index not in started:
                _start_reductions(tape, (*path, (index, None)), len(path), started, items)
            mode = "+=" if instr.op == "sum" else "*="
            items.append(((*path, (index, None)), Assign(Ref(index), mode, instr.args[0])))
        elif index in used or index not in guards or index in read:
            line = lines.get(index)
            if line is None:
                line = lines[index] = Assign(Ref(index), "=", Op(instr.op, instr.args))
            items.append((path, line))
        else:
            items.append((path, Check(index)))
    return items


def _start_reductions(tape: Tape, path: Path, depth: int, started: set[int], items: list) -> None:
    """`w9 = 0.0` (a sum) or `w9 = 1.0` (a product) before the first line in the loop of w9, for
    each loop on `path` below `depth` not started yet."""
    for position in range(depth, len(path)):
        entry, value = path[position]
        if value is None and entry not in started:
            started.add(entry)
            items.append((path[:position], Assign(Ref(entry), "=", REDUCTION_START[tape.instrs[entry].op])))


REDUCTION_START = {"sum": Const(0.0), "prod": Const(1.0)}


def _array_adjoints(adjoint: Adjoint) -> list[tuple[Path, Node]]:
    """`x_bar = 0` for each array in wrt: its elements' adjoints are added into it."""
    return [((), Assign(term, "=", Const(0.0))) for term in adjoint.gradient if type(term) is ArrayBar]


def _summed_in_the_sweep(adjoint: Adjoint, gradient_needs: set[int]) -> int | None:
    """The output, when it is a sum that the reverse sweep does not read and that has a loop in it:
    value_and_grad then adds it up in that loop, one loop over the terms instead of two."""
    tape, output = adjoint.tape, adjoint.tape.output
    if not tape.loops or type(output) is not Ref or tape.instrs[output.index].op != "sum" or output.index in gradient_needs:
        return None
    loop = ((output.index, None),)
    return output.index if any(step.path[:1] == loop for step in adjoint.steps) else None


def _recomputed(
    tape: Tape, lines: dict[int, Assign], items: list[tuple[Path, Node]], depth: int = 0, fused: int | None = None
) -> list[tuple[Path, Node]]:
    """The reverse sweep's items with, at the start of each loop `depth` deep, the forward lines of
    that loop's body that its lines read: a body's values are computed again for each index, not
    stored. (An array program has no branches: every step of a path is a loop.) The sum `fused` is
    added up in its loop here, and so is a sum that is its whole term and that only it reads
    (pairs i < j: the inner sum over j, in the reverse loop over j)."""
    result: list[tuple[Path, Node]] = []
    start = 0
    while start < len(items):
        path = items[start][0]
        if len(path) <= depth:
            result.append(items[start])
            start += 1
            continue
        prefix, end = path[: depth + 1], start
        while end < len(items) and items[end][0][: depth + 1] == prefix:
            end += 1
        run = items[start:end]
        read_by_run = refs(_node_terms(run))
        # What this loop's lines read at this depth, and what the lines recomputed in its inner loops
        # read at it (w7 = w6 + w3 in the loop over k reads w3 = y[j] - a of the loop over j).
        reads = {index for index in tape.closure(read_by_run) if tape.path(index) == prefix}
        reduction = prefix[-1][0]
        product = tape.instrs[reduction].op == "prod"
        inner = _inner_sum(tape, reduction, prefix, run, read_by_run) if reduction == fused else None
        if product:
            result.extend(_suffixes(tape, lines, prefix))
        if product or (reduction == fused and inner is None):
            reads |= refs(tape.instrs[reduction].args)
        elif inner is not None:  # its loop adds up a term made of values computed once per index here
            inner_term = tape.closure(refs(tape.instrs[inner].args))
            reads |= {index for index in inner_term if tape.path(index) == prefix}
        if reduction == fused:
            result.append((prefix[:-1], Assign(Ref(reduction), "=", REDUCTION_START["sum"])))
        result.extend(_forward_items(tape, lines, reads, inside=prefix))
        result.append((prefix, SPLIT))  # a loop recomputing an inner sum ends before the sweep's own loop
        result.extend(_recomputed(tape, lines, run, depth + 1, inner))
        if product:  # the factor joins the prefix for the next index
            result.append((prefix, Assign(Prefix(reduction), "*=", tape.instrs[reduction].args[0])))
        if reduction == fused:
            result.append((prefix, Assign(Ref(reduction), "+=", tape.instrs[reduction].args[0])))
        start = end
    return result


def _inner_sum(tape: Tape, reduction: int, prefix: Path, run: list, read_by_run: set[int]) -> int | None:
    """The sum that is the whole term of sum `reduction`, when the reverse sweep has its loop inside
    this run and reads its value nowhere: it can be added up in that loop too."""
    (term,) = tape.instrs[reduction].args
    if type(term) is not Ref or tape.instrs[term.index].op != "sum" or term.index in read_by_run:
        return None
    loop = (*prefix, (term.index, None))
    return term.index if any(path[: len(loop)] == loop for path, _ in run) else None


def _suffixes(tape: Tape, lines: dict[int, Assign], prefix: Path) -> list[tuple[Path, Node]]:
    """Before the reverse loop of a product: its suffix products, made by a loop running backwards
    (after[k] = after[k + 1] * factor), and its prefix product set to 1 (it grows in the loop)."""
    reduction = prefix[-1][0]
    (factor,) = tape.instrs[reduction].args
    home, backward = prefix[:-1], (*prefix[:-1], (reduction, BACKWARD))
    depth = len(home)
    items: list[tuple[Path, Node]] = [(home, Assign(Suffixes(reduction), "=", Const(1.0)))]
    for path, node in _forward_items(tape, lines, set(refs([factor])), inside=prefix):
        items.append(((*backward, *path[depth + 1 :]), node))
    items.append((backward, Assign(Suffix(reduction, 0), "=", Op("mul", (Suffix(reduction, 1), factor)))))
    items.append((home, Assign(Prefix(reduction), "=", Const(1.0))))
    return items


def _node_terms(items: list[tuple[Path, Node]]) -> list:
    """The terms the nodes read (their Assigns and Appends, in their loops and sections too)."""
    terms, stack = [], [node for _, node in items]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is Assign:
            terms.append(node.term)
        elif kind is Append:
            terms.extend(node.terms)
        elif kind is If or kind is Loop or kind is Section:
            stack.extend(node.body)
            stack.extend(getattr(node, "orelse", ()))
    return terms


def closure_with_conditions(tape: Tape, roots: set[int]) -> set[int]:
    """The entries needed for `roots`, including the conditions of the branches they are in."""
    needed, known = tape.closure(roots), set()
    while missing := branch_conditions((tape.path(i) for i in needed), known) - needed:
        needed = tape.closure(needed | missing)
    return needed


def branch_conditions(paths: Iterable[tuple], known: set[tuple]) -> set[int]:
    """The conditions of the branches `paths` and of those enclosing them, except `known` branches
    (the new ones are added to it). Each branch is visited once, not once per line in it: a path is
    as long as its branch is deep."""
    conditions = set()
    for path in paths:
        while path and path not in known:
            known.add(path)
            if type(path[-1][1]) is bool:  # (reduction, None or BACKWARD): a loop, which has no condition
                conditions.add(path[-1][0])
            path = path[:-1]
    return conditions


def _read_once_by_sweep(adjoint: Adjoint, computed: set[int], guards: frozenset[int], extra_reads: tuple) -> dict:
    """Forward entries (index -> their operation as a term) that nothing reads but one reverse term
    outside every branch: that term computes them in place, as the same operation on the same
    operands, so the bits do not change. In CPython a value that is never stored is a temporary whose
    float is recycled at once, while each stored one stays alive until the function returns (a product
    of two stored values in pairwise-30's gradient: 67 -> 51 us). Entries that raise outside their
    domain stay where f() evaluates them."""
    tape = adjoint.tape
    forward_reads: set[int] = set(refs(extra_reads))
    if tape.loops:  # a loop's body, recomputed in the reverse sweep, reads values from outside it
        computed = computed | {index for index in range(len(tape.instrs)) if tape.path(index)}
    for index in computed:
        forward_reads.update(arg.index for arg in tape.instrs[index].args if type(arg) is Ref)
    sweep_reads: dict[int, int] = defaultdict(int)
    branches: set[tuple] = set()
    for step in adjoint.steps:
        if step.path:  # in a branch: the value must exist before the branch is entered
            forward_reads |= refs([step.term]) | branch_conditions([step.path], branches)
        else:
            _count_refs(step.term, sweep_reads, forward_reads)
    for term in adjoint.gradient:
        _count_refs(term, sweep_reads, forward_reads)
    return {
        index: Op(tape.instrs[index].op, tape.instrs[index].args)
        for index, count in sorted(sweep_reads.items())
        if count == 1
        and index in computed
        and index not in forward_reads
        and index not in guards
        and is_primitive(tape.instrs[index].op)
        and not tape.path(index)
        and not primitives.lookup(tape.instrs[index].op).guard_domain
    }


def _count_refs(term, counts: dict[int, int], named: set[int]) -> None:
    """Adds each forward value's reads in `term` to `counts`; adds to `named` the bases of squares,
    which print as w * w (the correctly rounded square, where x ** 2 calls pow) and so need a name."""
    stack = [term]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is Op:
            stack.extend(node.args)
            base = node.args[0]
            if type(base) is Ref and primitives.lookup(node.op).squares_as_product and node.args[1] == TWO:
                named.add(base.index)
        elif kind is Ref:
            counts[node.index] += 1


TWO = Const(2.0)


def _substituted(term, in_place: Mapping[int, object]):
    """`term` with the forward values in `in_place` replaced by their operations (bottom up, no
    recursion: a term can be as deep as a long sum)."""
    if not in_place:
        return term
    if type(term) is Ref:
        return in_place.get(term.index, term)
    if type(term) is not Op:
        return term
    done: dict[int, object] = {}  # id(node) -> its substituted copy
    stack: list[tuple[Op, bool]] = [(term, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        children = [arg for arg in node.args if type(arg) is Op and id(arg) not in done]
        if children and not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        args = tuple(
            done[id(arg)] if type(arg) is Op else in_place.get(arg.index, arg) if type(arg) is Ref else arg
            for arg in node.args
        )
        done[id(node)] = node if args == node.args else Op(node.op, args)
    return done[id(term)]


# An adjoint's first contributions are summed in one statement, x_bar = a + b - c, as the textbook
# writes the chain rule; the rest (rare) continue with +=, so no line grows without bound.
TERMS_PER_LINE = 4


def _reverse_items(adjoint: Adjoint, in_place: Mapping[int, object]) -> list[tuple[Path, Node]]:
    """(path, Assign) per statement of the reverse sweep: a run of steps that assigns an adjoint and
    then adds to it in the same branch becomes one statement, evaluated in the same order. Forward
    values in `in_place` are computed in the term that reads them."""
    steps = adjoint.steps
    if in_place:
        steps = tuple(
            Step(step.target, step.mode, _substituted(step.term, in_place), step.origin, step.path, step.merged)
            for step in steps
        )
    items, start = [], 0
    while start < len(steps):
        first, end = steps[start], start + 1
        if first.mode == "=" and first.origin is not None:
            while (
                end < len(steps)
                and end - start < TERMS_PER_LINE
                and steps[end].target == first.target
                and steps[end].path == first.path
                and steps[end].mode != "="
            ):
                end += 1
        run = steps[start:end]
        target = Bar(first.target, adjoint.output)
        items.append((first.path, _reverse_assign(first, target) if len(run) == 1 else _sum(run, target)))
        start = end
    return items


def _sum(run: tuple[Step, ...], target: Bar) -> Assign:
    terms = [(step.mode, step.term) for step in run]
    total = terms[0][1]
    if isinstance(total, Op) and total.op == "neg" and terms[1][0] == "+=":
        # -u + t is exactly t - u in IEEE arithmetic, and one negation fewer.
        total, terms = Op("sub", (terms[1][1], total.args[0])), terms[1:]
    else:
        total = sign_into_constant(total)
    for mode, term in terms[1:]:
        total = Op("add" if mode == "+=" else "sub", (total, term))
    return Assign(target, "=", total, tuple(origin for step in run for origin in step.origins))


def _reverse_assign(step: Step, target: Bar) -> Assign:
    term = sign_into_constant(step.term) if step.mode == "=" else step.term
    return Assign(target, step.mode, term, step.origins)


def straight_line_entry(
    tape: Tape,
    name: str,
    params: tuple[Param, ...],
    doc: str,
    sections: list[tuple[str, list[Line]]],
    results: tuple[Result, ...],
) -> Entry:
    """An entry from sections of straight-line Assigns (forward.Assign, each with its branch path):
    lines nobody reads are dropped (backwards liveness), and a kept line that nothing reads (a
    domain check) is marked unread."""
    terms = result_terms(results)
    live = _leaves(terms)
    # A branch's conditions are read by every line in it: each is made live once, by the first line
    # seen in its branch, not by every line (a path is as long as the branch is deep). Exact, as a
    # condition is computed before every line of its branch: no line before its definition, where
    # liveness drops it, is in the branch.
    live_branches: set[tuple] = set()  # every branch (path) a kept line is in, enclosing ones included
    kept_sections = []
    for title, lines in reversed(sections):
        kept = []
        for line in reversed(lines):
            if line.target not in live and not _guards_domain(line, tape):
                continue
            kept.append(line)
            if line.mode == "=":
                live.discard(line.target)
            live |= _leaves([line.term])
            live |= {Ref(condition) for condition in branch_conditions([line.path], live_branches)}
        kept_sections.append((title, kept[::-1]))
    read = _leaves(terms) | _leaves([line.term for _, kept in kept_sections for line in kept])
    read |= {Ref(branch[-1][0]) for branch in live_branches}
    body = []
    for title, kept in reversed(kept_sections):
        items = [(line.path, _assign(line, line.target in read or line.mode != "=")) for line in kept]
        if items:
            body.append(Section(title, nested(items)))
    return Entry(name, params, doc, tuple(body), results)


def _assign(line: Line, read: bool) -> Assign:
    # A forward value's line is its own definition; others point back to the entry they differentiate.
    origins = () if line.origin is None or isinstance(line.target, Ref) else (line.origin,)
    return Assign(line.target, line.mode, line.term, origins, read)


def _guards_domain(line: Line, tape: Tape) -> bool:
    if not isinstance(line.target, Ref):
        return False
    instr = tape.instrs[line.target.index]
    return instr.op != INPUT and bool(primitives.lookup(instr.op).guard_domain)


def result_terms(results: Iterable[Result]) -> list:
    """Every term an entry returns, in order."""
    terms: list = []
    for result in results:
        match result:
            case Scalar(term=term):
                terms.append(term)
            case Vector(terms=vector):
                terms.extend(vector)
            case Matrix(rows=rows):
                terms.extend(term for row in rows for term in row)
            case Rows():
                pass  # filled by Appends, whose terms the body reads
    return terms


def refs(terms) -> set[int]:
    """The forward values (tape entries) the terms read."""
    found, stack = set(), list(terms)
    while stack:
        term = stack.pop()
        kind = type(term)
        if kind is Op:
            stack.extend(term.args)
        elif kind is Ref:
            found.add(term.index)
    return found


def _leaves(terms) -> set:
    found, stack = set(), list(terms)
    while stack:
        term = stack.pop()
        if isinstance(term, Op):
            stack.extend(term.args)
        elif isinstance(term, Ref | Bar | Dot):
            found.add(term)
    return found


class _Open:
    """An If (or a Loop) being built: lists that `nested` appends to, frozen when done."""

    __slots__ = ("condition", "body", "orelse", "loop")

    def __init__(self, condition: int, loop: bool | str = False):
        self.condition, self.body, self.orelse, self.loop = condition, [], [], loop


def nested(items: Iterable[tuple[Path, Node]], tape: Tape | None = None) -> tuple[Node, ...]:
    """Nodes with the branch each runs in, in order -> nodes nested in Ifs as the paths say.
    Consecutive nodes of one branch share its If; the branch `c` followed at once by the branch
    `not c` become one If with an orelse. Reading the result back in order (`flat`) gives the same
    nodes in the same order. A step (reduction, None) is the loop of `tape`'s reduction."""
    root: list = []
    stack: list[tuple[Path, list]] = [((), root)]  # the open branches, outermost first
    opened: list[_Open] = []  # every If, each after the one it is in
    for path, node in items:
        if node is SPLIT:
            while len(stack[-1][0]) > len(path):
                stack.pop()
            continue
        if path == stack[-1][0]:  # most often: the branch of the node before
            stack[-1][1].append(node)
            continue
        if not path:
            del stack[1:]  # back outside every branch
        while path[: len(stack[-1][0])] != stack[-1][0]:
            stack.pop()
        while len(stack[-1][0]) < len(path):
            outer, siblings = stack[-1]
            condition, value = path[len(outer)]
            last = siblings[-1] if siblings else None
            if type(value) is not bool:  # None or BACKWARD: a loop
                block = _Open(condition, loop=value or True)
                siblings.append(block)
                opened.append(block)
            elif type(last) is _Open and last.condition == condition and not last.orelse and not last.loop:
                block = last  # `if c:` just closed, now `not c`: its else
            else:
                block = _Open(condition)
                siblings.append(block)
                opened.append(block)
            stack.append((path[: len(outer) + 1], block.body if value or block.loop else block.orelse))
        stack[-1][1].append(node)
    # Frozen innermost first, without recursion: a branch can be 1,000 where()s deep.
    frozen: dict[int, If] = {}

    def freeze(nodes: list) -> tuple[Node, ...]:
        return tuple([frozen[id(node)] if type(node) is _Open else node for node in nodes]) if nodes else ()

    for block in reversed(opened):
        if block.loop:
            loop = tape.loop_of(block.condition)
            frozen[id(block)] = Loop(
                Index(loop.index), loop.start, loop.stop, freeze(block.body), block.condition, block.loop == BACKWARD
            )
        else:
            frozen[id(block)] = If(Ref(block.condition), freeze(block.body), freeze(block.orelse))
    return freeze(root)


def flat(entry: Entry) -> Entry:
    """`entry` with every If one level deep: a branch inside a branch is tested through a Flag,
    assigned once per entry before its first If (`w9 = w5 and not w2`: `and` reads the inner
    condition only where the outer branch runs, the only place it has a value). Nothing is
    reordered, so the lines run as in the nested program."""
    defined: set[Path] = set()
    return replace(entry, body=tuple(replace(section, body=_flat(section.body, defined)) for section in entry.body))


def _flat(nodes: tuple[Node, ...], defined: set[Path]) -> tuple[Node, ...]:
    if not any(type(node) is If or type(node) is Loop for node in nodes):
        return nodes  # straight-line code: flat already
    out: list[Node] = []
    current: Path = ()
    run: list[Node] = []
    for path, piece in _runs(nodes, ()):
        if path != current:
            if run:
                out.append(_flat_if(current, run))
            run = []
            if len(path) > 1:
                out.extend(_flags(path, defined))
            current = path
        if type(piece[0]) is Loop:
            piece = (replace(piece[0], body=_flat(piece[0].body, defined)),)
        (run if path else out).extend(piece)
    if run:
        out.append(_flat_if(current, run))
    return tuple(out)


def _runs(nodes: tuple[Node, ...], path: Path) -> Iterator[tuple[Path, tuple[Node, ...]]]:
    """The nodes but Ifs, in order, in runs of consecutive ones with the branch they run in, a Loop
    alone in its run (a loop, not recursion: a branch can be 1,000 where()s deep)."""
    stack: list[tuple[tuple[Node, ...], int, Path]] = [(nodes, 0, path)]
    while stack:
        nodes, start, path = stack.pop()
        end = start
        while end < len(nodes) and type(nodes[end]) is not If and type(nodes[end]) is not Loop:
            end += 1
        if end > start:
            yield path, nodes[start:end]
        if end == len(nodes):
            continue
        node = nodes[end]
        stack.append((nodes, end + 1, path))  # what follows the If, once its branches are done
        if type(node) is Loop:  # a run of its own, for `_flat` to flatten inside
            yield path, (node,)
        elif isinstance(node.condition, Flag):  # already flat
            if node.orelse:
                raise ValueError("a flag's If has no orelse: its branch is a path, not a condition")
            stack.append((node.body, 0, node.condition.path))
        else:  # the body first, then the orelse
            if node.orelse:
                stack.append((node.orelse, 0, (*path, (node.condition.index, False))))
            if node.body:
                stack.append((node.body, 0, (*path, (node.condition.index, True))))


def _flat_if(path: Path, run: list[Node]) -> If:
    if len(path) > 1:
        return If(Flag(path), tuple(run))
    ((condition, value),) = path
    return If(Ref(condition), tuple(run), ()) if value else If(Ref(condition), (), tuple(run))


def _flags(path: Path, defined: set[Path]) -> list[Assign]:
    """The flags of `path` and of the branches it is in that are not `defined` yet, outermost first."""
    missing = []
    while len(path) > 1 and path not in defined:
        missing.append(path)
        path = path[:-1]
    lines = []
    for path in reversed(missing):
        defined.add(path)
        lines.append(Assign(Flag(path), "=", Op("and", (_truth(path[:-1]), _truth(path[-1:])))))
    return lines


def _truth(path: Path):
    """The term that holds in branch `path`: its flag, or its one condition (negated for `not c`)."""
    if len(path) > 1:
        return Flag(path)
    ((condition, value),) = path
    return Ref(condition) if value else Op("not", (Ref(condition),))


def operations(program: Program) -> frozenset[str]:
    """The rows of primitives.TABLE the program applies (a backend's imports come from them)."""
    tape, found, stack = program.tape, set(), []
    seen: set[int] = set()  # ids of Assigns walked: entries share their forward lines
    for entry in program.entries:
        stack.extend(result_terms(entry.results))
        nodes = list(entry.body)
        while nodes:
            node = nodes.pop()
            kind = type(node)
            if kind is Assign:
                if id(node) not in seen:
                    seen.add(id(node))
                    stack.append(node.term)
            elif kind is Check:
                found.add(tape.instrs[node.index].op)
            elif kind is Append:
                stack.extend(node.terms)
            elif kind is If:
                nodes.extend(node.body)
                nodes.extend(node.orelse)
            else:  # a Section or a Loop
                nodes.extend(node.body)
    while stack:
        term = stack.pop()
        if type(term) is Op:
            found.add(term.op)
            for arg in term.args:
                if type(arg) is Op:
                    stack.append(arg)
    return frozenset(found)


__all__ = [
    "Append", "Assign", "BACKWARD", "Check", "Entry", "Flag", "GRADIENT_ENTRIES", "Header", "If", "Index", "Loop", "Matrix", "Node",
    "Param", "Program", "Result", "Rows", "Scalar", "Section", "Suffixes", "Vector", "branch_conditions", "buffer_length", "buffer_position", "build_program",
    "closure_with_conditions", "flat", "nested", "operations", "refs", "result_terms", "straight_line_entry",
]
