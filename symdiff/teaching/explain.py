"""explain: an expression and a point -> a Trace, the textbook walk-through of reverse mode.

Takes the tape and the raw (unsimplified) sweep that core.pipeline.build derives, runs them at the point, and
gives the forward table, the seed, every accumulation step in execution order and the gradient, each
with its symbolic form. The numbers are those the generated code computes; the formulas come from SymPy.
At a where() (and min and max, written with it) the point decides: the trace records which condition
held and which operand was taken; entries of the branch not taken are not computed (no value, no
adjoint) and their steps do not run, as in the generated code.

`str(trace)` is the terminal text; `trace.markdown()`, `.latex()`, `.html()` and `.json()` give the
other formats, and Jupyter shows the trace as an HTML table (`_repr_html_`) or Markdown.

JSON schema "symdiff.explain/2" (keys always in this order; formulas are in symdiff's own syntax, so
they parse back; entries are named w1, w2, ... in tape order, or v1, v2, ... if an input is named w1):
    schema      "symdiff.explain/2" (/1 had no branches, computed nor branch keys)
    expression  the source text
    point       {input: value}, inputs in natural order (x2 before x10)
    value       the expression's value at the point
    output      {name: "z", entry: "w5" or null (a constant), definition: "w5" or the constant}
    forward     [{entry, op ("input" or a primitive), definition (an input's name, else over earlier
                  entries: "w1 * w2"), operands [entry names], value (a number; true or false for a
                  condition; null when not computed), adjoint (after the sweep; null for a condition
                  and when not computed), span [start, end] (character offsets of the entry's first
                  occurrence), computed (false for an entry of a branch not taken at the point),
                  branch [{condition (an entry), value (true or false)}] (the conditions under which
                  the entry is computed, outermost first; [] when every branch needs it)}]
    branches    [{entry (a where() that ran), function ("where", "if", "max" or "min", as written),
                  source (the text written), condition (its condition's entry), condition_text (the
                  condition as written, or for max and min over the inputs: "x >= y"), value (the
                  condition's value at the point), taken (the operand used: an entry or a constant),
                  taken_text (it as written), not_taken, not_taken_text, skipped [the entries not
                  computed because of this choice]}], in tape order; [] without where()
    seed        {adjoint: "w5", value: 1.0}, or null when the output is a constant
    reverse     [{step (from 1), target (the entry whose adjoint is updated), origin (the entry whose
                  local partial is used), operand (its position among origin's operands, from 0),
                  partial (d origin / d target, over entries), partial_value, origin_adjoint,
                  contribution (origin_adjoint * partial_value), total (target's adjoint after the
                  step), total_formula (that total over entries, or null when too long to show)}],
                  the steps that ran (none of a branch not taken)
    gradient    [{wrt, entry (null if the input does not occur), formula (over the inputs, or null
                  when too long to show; in the branches taken), value}], one per differentiated input
"""

from __future__ import annotations

import html
import json
import math
import re
import textwrap
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import sympy
from sympy.printing.str import StrPrinter

from ..core import primitives
from ..core.adjoint import Adjoint, Bar, Op, Step, Term
from ..core.expr import Apply, Num, Var, postorder
from ..core.parse import parse
from ..core.pipeline import Programs, build
from ..core.primitives import ATOM
from ..core.printing import expression_text, format_tree, number_text
from ..core.tape import INPUT, Const, Instr, Ref, Tape
from ..errors import ArgumentError, DomainError, SymdiffError
from ..resources import templates
from ..version import __version__

SCHEMA = "symdiff.explain/2"
FORMATS = ("text", "markdown", "latex", "json", "html")

# Formulas are shown only while they stay small. Each limit bounds the work of one SymPy operation as
# well as the printed size, so a long expression costs linear time instead of a quadratic pile of
# ever-growing formulas: past the limit a formula is simply not shown (its number always is).
_TOTAL_NODES, _TOTAL_CHARS = 40, 60  # running totals over entries, in the reverse table
_RESULT_NODES, _RESULT_CHARS = 400, 600  # gradient formulas over the inputs
_DEPTH = 40  # nesting levels of any formula (SymPy recurses about three frames per level)
_SHOWN_SOURCE = 200  # characters of the expression repeated in a title
_LISTED = 6  # steps listed in an accumulation note before "..."

# The raw sweep accumulates with += (and may subtract with -=); these are the rows that do it.
_ACCUMULATE = {"+=": "add", "-=": "sub"}
_UNDEFINED = (ValueError, ZeroDivisionError, OverflowError)


# ---------------------------------------------------------------------------------------------------
# The trace


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the forward table: a tape entry, its definition and its value."""

    name: str  # "w3"
    op: str  # "input", or a primitive's table name
    definition: str  # an input's own name ("x1"), else symdiff syntax over earlier entries ("w1 * w2")
    operands: tuple[str, ...]  # the entries it reads, constants left out
    value: float | bool | None  # True or False for a condition; None when not computed
    adjoint: float | None  # d output / d entry, once the sweep is done; None for a condition or when not computed
    span: tuple[int, int]
    computed: bool = True  # False: the entry lies in a branch not taken at this point
    branch: tuple[tuple[str, bool], ...] = ()  # computed only where these conditions have these values


@dataclass(frozen=True, slots=True)
class Branch:
    """A where() that ran (min and max are written with it): which condition held, which operand it took."""

    entry: str  # the where() entry: "w5"
    function: str  # as the user wrote it: "where", "if", "max" or "min"
    source: str  # the text written: "where(x > 0, log(x), x^2)", "max(x, y)"
    condition: str  # the condition's entry: "w2"
    condition_text: str  # the condition as written ("x > 0"), or over inputs and entries ("x >= y")
    value: bool  # the condition's value at the point
    taken: str  # the operand used: an entry's name or a constant
    taken_text: str  # that operand as the user wrote it: "log(x)", a definition's name, "x"
    not_taken: str
    not_taken_text: str
    skipped: tuple[str, ...]  # entries not computed because of this choice, in tape order


@dataclass(frozen=True, slots=True)
class Accumulation:
    """One step of the reverse sweep: target_bar += origin_bar * d origin / d target."""

    step: int  # from 1, in execution order
    target: str
    origin: str
    operand: int  # position of target among origin's operands
    partial: str  # d origin / d target, symdiff syntax over entries ("cos(w1)")
    partial_value: float
    origin_adjoint: float
    contribution: float
    total: float  # target's adjoint after this step
    total_formula: str | None  # that total over entries ("w2 + cos(w1)"); None when too long


@dataclass(frozen=True, slots=True)
class Partial:
    """One component of the gradient."""

    wrt: str
    entry: str | None  # the input's entry; None when the input does not occur
    formula: str | None  # over the inputs ("x2 + cos(x1)"); None when too long to show
    value: float


@dataclass(frozen=True, slots=True, repr=False)
class Trace:
    expression: str
    point: tuple[tuple[str, float], ...]
    output: str  # what the walk-through calls the expression's value: "z"
    output_entry: str | None  # the entry holding it; None when the expression is a constant
    output_definition: str
    value: float
    entries: tuple[Entry, ...]
    branches: tuple[Branch, ...]  # the where() entries that ran, in tape order
    steps: tuple[Accumulation, ...]  # the steps that ran
    partials: tuple[Partial, ...]

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        point = ", ".join(f"{name}={number_text(value, True)}" for name, value in self.point)
        return f"<symdiff trace of {self.expression!r} at {point or 'no inputs'}: {len(self.steps)} steps>"

    def text(self, ascii: bool = False, digits: int = 3, width: int = 100) -> str:
        """For a terminal: aligned columns within `width` where possible; `ascii` avoids Unicode."""
        return _render("explain.txt.j2", _page(self, Style("ascii" if ascii else "text", digits, width)))

    def markdown(self, digits: int = 3) -> str:
        return _render("explain.md.j2", _page(self, Style("markdown", digits)))

    def html(self, digits: int = 3) -> str:
        return _render("explain.html.j2", _page(self, Style("html", digits)))

    def latex(self, digits: int = 3, standalone: bool = True) -> str:
        """A document that compiles with pdflatex; `standalone=False` gives the body alone, which
        needs \\usepackage{amsmath,longtable} in the enclosing document."""
        body = _render("explain.tex.j2", _page(self, Style("latex", digits)))
        if not standalone:
            return body
        return templates().get_template("explain-document.tex.j2").render(body=body, generator=_generator())

    def to_dict(self) -> dict:
        """The JSON document as Python data (see the module docstring for the schema)."""
        return _document(self)

    def json(self) -> str:
        return json.dumps(_document(self), indent=2) + "\n"

    def format(self, kind: str, *, ascii: bool = False, digits: int = 3) -> str:
        """The trace as `kind`: one of FORMATS."""
        match kind:
            case "text":
                return self.text(ascii, digits)
            case "markdown":
                return self.markdown(digits)
            case "latex":
                return self.latex(digits)
            case "json":
                return self.json()
            case "html":
                return self.html(digits)
        raise SymdiffError(f"unknown format {kind!r}; choose one of {', '.join(FORMATS)}")

    # Jupyter asks for these by name; no IPython import is needed.
    def _repr_html_(self) -> str:
        return self.html()

    def _repr_markdown_(self) -> str:
        return self.markdown()


def explain(expr, at: Mapping[str, float], wrt=None) -> Trace:
    """The reverse-mode walk-through of `expr` at the point `at` ({"x1": 2, "x2": 3})."""
    return trace(build(expr, wrt), at)


def trace(programs: Programs, at: Mapping[str, float]) -> Trace:
    """The walk-through of programs that core.pipeline.build made (graph.py shares them with its picture)."""
    tape, raw = programs.tape, programs.raw
    point = check_point(tape, at)
    names = entry_names(tape)
    numbers = _Numbers()
    # The numbers decide every where(): an entry of a branch not taken stays None, and the symbolic
    # runs below follow the same decisions, so their formulas are those of the branches taken.
    forward = _forward(tape, numbers, point)
    run = _run(tape, raw, numbers, forward, forward)
    # Running totals over entries treat every entry as a symbol (w2 + cos(w1)); the gradient's formulas
    # are over the inputs, with the forward values substituted (x2 + cos(x1)).
    over_entries = _Formulas(_TOTAL_NODES)
    totals = _run(tape, raw, over_entries, [sympy.Symbol(name, real=True) for name in names], forward)
    over_inputs = _Formulas(_RESULT_NODES)
    inputs = {name: sympy.Symbol(name, real=True) for name in tape.inputs}
    results = _run(tape, raw, over_inputs, _forward(tape, over_inputs, inputs, forward), forward)
    return Trace(
        expression=tape.source,
        point=tuple(point.items()),
        output=output_name(tape),
        output_entry=names[tape.output.index] if isinstance(tape.output, Ref) else None,
        output_definition=atom_text(tape.output, names),
        value=run.output,
        entries=_entries(tape, names, run),
        branches=_branches(tape, names, run),
        steps=_accumulations(tape, raw, names, run, totals),
        partials=_partials(tape, raw, names, run, results),
    )


# ---------------------------------------------------------------------------------------------------
# Names and symbolic text shared with graph.py

_ENTRY_LETTERS = "wvuts"
_OUTPUT_NAMES = ("z", "f", "g", "h", "y", "F", "G", "H", "Z", "out")


def entry_names(tape: Tape) -> tuple[str, ...]:
    """w1, w2, ... by tape index, as in the textbook; another letter if an input is itself named w1."""
    taken = set(tape.inputs)
    for letter in (*_ENTRY_LETTERS, _longer_than(taken, "w")):
        names = tuple(f"{letter}{index + 1}" for index in range(len(tape.instrs)))
        if not taken & set(names):
            return names
    raise AssertionError("a name longer than every input is free")


def output_name(tape: Tape) -> str:
    """The expression's value is z, unless z is an input."""
    return next((name for name in _OUTPUT_NAMES if name not in tape.inputs), _longer_than(tape.inputs, "z"))


def _longer_than(names, letter: str) -> str:
    """`letter` padded with underscores past the longest name: it cannot be any of them."""
    return letter + "_" * max(map(len, names), default=0)


def definition_text(instr: Instr, names: tuple[str, ...]) -> str:
    if instr.op == INPUT:
        return instr.name
    return term_text(Op(instr.op, instr.args), names)


def term_text(term: Term, names: tuple[str, ...]) -> str:
    """A term over forward values in symdiff syntax, entries by name: `cos(w1)`."""
    return format_tree(term, lambda ref: names[ref.index], "symdiff")


def atom_text(atom, names: tuple[str, ...]) -> str:
    return names[atom.index] if isinstance(atom, Ref) else number_text(atom.value, True)


def accumulations(tape: Tape, raw: Adjoint):
    """The raw sweep's += steps in execution order, as (step, operand position, local partial term):
    each raw step is adjoint(origin) * partial and knows its operand's position (reverse.sweep)."""
    for step in raw.steps:
        if step.origin is None:
            continue
        match step.term:
            case Op(args=(Bar(index=p), partial)) if p == step.origin and step.operand is not None:
                yield step, step.operand, partial
            case _:
                raise AssertionError(f"unexpected raw step {step!r}")


def check_point(tape: Tape, at) -> dict[str, float]:
    """The point as {input: float} in the tape's input order; a clear error for anything else."""
    if not isinstance(at, Mapping):
        raise ArgumentError("expected the point as a mapping from input names to numbers, e.g. {'x1': 2, 'x2': 3}")
    inputs = ", ".join(tape.inputs) or "none"
    unknown = [str(name) for name in at if name not in tape.inputs]
    if unknown:
        raise ArgumentError(f"the point gives {', '.join(unknown)}, not in the expression (inputs: {inputs})")
    missing = [name for name in tape.inputs if name not in at]
    if missing:
        raise ArgumentError(f"the point has no value for {', '.join(missing)} (inputs: {inputs})")
    return {name: _real(name, at[name]) for name in tape.inputs}


def _real(name: str, value) -> float:
    try:
        if isinstance(value, str | bytes):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"the point's {name} = {value!r} is not a real number") from None
    if not math.isfinite(number):
        raise ArgumentError(f"the point's {name} = {number} is not a finite number")
    return number


# ---------------------------------------------------------------------------------------------------
# Running the programs: once with numbers, twice with SymPy (over entries, and over the inputs)


class _Numbers:
    """Real arithmetic by the table's rows, as the generated code does it."""

    def number(self, value: float) -> float:
        return value

    def apply(self, op: str, args: tuple) -> float:
        value = primitives.lookup(op).evaluate(*args)
        if isinstance(value, complex) or not math.isfinite(value):
            raise ValueError("the result is not a finite real number")
        return float(value)


class _Formulas:
    """SymPy arithmetic by the table's rows that gives up (None) on formulas over `limit` nodes or
    _DEPTH levels. The limits are checked before SymPy sees the operands, so SymPy (which recurses)
    only ever works on small, shallow formulas, and each operation costs bounded time."""

    def __init__(self, limit: int):
        self.limit = limit
        self._measures: dict[sympy.Basic, tuple[int, int]] = {}  # formula -> (tree size, depth)

    def number(self, value: float) -> sympy.Expr:
        if value.is_integer():
            return sympy.Integer(int(value))
        text = repr(value)
        # A short decimal is most likely what the user typed; kept exact, 0.5 * 2 prints as 1.
        return sympy.Rational(text) if "e" not in text and len(text) <= 10 else sympy.Float(value)

    def apply(self, op: str, args: tuple) -> sympy.Expr | None:
        if any(arg is None for arg in args):
            return None
        measures = [self._measure(arg) for arg in args]
        if any(m is None for m in measures) or not self._within(
            1 + sum(size for size, _ in measures), 1 + max(depth for _, depth in measures)
        ):
            return None
        try:
            value = primitives.lookup(op).sympy(*args)
        except (ArithmeticError, ValueError, TypeError, RecursionError):
            return None
        return value if self._measure(value) is not None else None

    def _within(self, size: int, depth: int) -> bool:
        return size <= self.limit and depth <= _DEPTH

    def _measure(self, root: sympy.Basic) -> tuple[int, int] | None:
        """(tree size, depth) of `root`, reusing recorded subtrees and visiting at most `limit` new
        nodes; None past the limits."""
        known = self._measures.get(root)
        if known is not None or not root.args:
            return known or (1, 1)
        found: dict[sympy.Basic, tuple[int, int]] = {}
        stack, visited = [(root, False)], 0
        while stack:
            node, expanded = stack.pop()
            recorded = self._measures.get(node) or found.get(node)
            if recorded is not None or not node.args:
                found[node] = recorded or (1, 1)
            elif expanded:
                parts = [found[arg] for arg in node.args]
                found[node] = (1 + sum(size for size, _ in parts), 1 + max(depth for _, depth in parts))
            else:
                visited += 1
                if visited > self.limit:
                    return None
                stack.append((node, True))
                stack.extend((arg, False) for arg in node.args)
        size, depth = found[root]
        if not self._within(size, depth):
            return None
        self._measures[root] = (size, depth)
        return size, depth


@dataclass(frozen=True, slots=True)
class _Run:
    forward: tuple  # per entry; None for an entry of a branch not taken
    ran: tuple[int, ...]  # the accumulation steps that ran, by number among all of them (from 0)
    partials: tuple  # per step that ran: the local partial
    origins: tuple  # per step that ran: the origin's adjoint it multiplies
    contributions: tuple
    totals: tuple  # per step that ran: the target's adjoint after it
    adjoints: tuple  # per entry, at the end
    gradient: tuple  # per wrt
    output: object


def _run(tape: Tape, raw: Adjoint, algebra, forward: list, decided: list) -> _Run:
    """Execute the raw program over `forward` values, recording every accumulation step that runs:
    those of the branches taken by `decided`, the forward values at the point."""
    adjoints: list = [algebra.number(0.0)] * len(tape.instrs)
    ran, partials, origins, contributions, totals = [], [], [], [], []
    steps = enumerate(accumulations(tape, raw))
    for step in raw.steps:
        if step.origin is None:  # the zeroing and the seed
            adjoints[step.target] = _term(step.term, forward, adjoints, algebra)
            continue
        number, (_, _, partial_term) = next(steps)
        if not _taken(step.path, decided):
            continue
        ran.append(number)
        origins.append(adjoints[step.origin])
        partial, contribution, total = _accumulate(tape, step, partial_term, forward, adjoints, algebra)
        adjoints[step.target] = total
        partials.append(partial)
        contributions.append(contribution)
        totals.append(total)
    return _Run(
        forward=tuple(forward),
        ran=tuple(ran),
        partials=tuple(partials),
        origins=tuple(origins),
        contributions=tuple(contributions),
        totals=tuple(totals),
        adjoints=tuple(adjoints),
        gradient=tuple(_term(term, forward, adjoints, algebra) for term in raw.gradient),
        output=_term(tape.output, forward, adjoints, algebra),
    )


def _forward(tape: Tape, algebra, inputs: Mapping, decided: list | None = None) -> list:
    """Every entry's value, inputs taken from `inputs` (numbers, or SymPy symbols); None for an entry
    of a branch not taken. The branches are those the numbers `decided` take (None: these values)."""
    values: list = []
    for index, instr in enumerate(tape.instrs):
        if instr.op == INPUT:  # a parameter: given, whichever branch needs it
            values.append(inputs[instr.name])
            continue
        decisions = values if decided is None else decided
        if not _taken(tape.path(index), decisions):
            values.append(None)  # never evaluated: outside its branch it may be undefined (log(-3))
            continue
        row = primitives.lookup(instr.op)
        if row.branches:  # where(c, a, b) is the operand its condition picks
            values.append(_term(instr.args[1 if decisions[instr.args[0].index] else 2], values, (), algebra))
            continue
        if row.boolean and decided is not None:  # the numbers decided the conditions; no formula needs them
            values.append(None)
            continue
        args = tuple(_term(arg, values, (), algebra) for arg in instr.args)
        try:
            values.append(algebra.apply(instr.op, args))
        except _UNDEFINED as error:
            message = f"{_applied(instr, args)} has no real value at this point ({error})"
            raise DomainError(message, tape.source, instr.span) from None
    return values


def _taken(path: tuple[tuple[int, bool], ...], decided: list) -> bool:
    """Whether every condition on `path` has its value in the numbers `decided` (a condition not
    computed, None, has neither: the entry lies inside a branch not taken)."""
    return all(decided[condition] is not None and bool(decided[condition]) == value for condition, value in path)


def _applied(instr: Instr, values) -> str:
    """The operation on numbers, as the user would write it: `log(-2)`, `0 ^ -1`."""
    return format_tree(Op(instr.op, tuple(Const(value) for value in values)), str, "symdiff")


def _accumulate(tape: Tape, step: Step, partial_term: Term, forward, adjoints, algebra) -> tuple:
    """One += step: the local partial, the contribution adjoint(origin) * partial, the new total."""
    try:
        partial = _term(partial_term, forward, adjoints, algebra)
        contribution = algebra.apply(step.term.op, (adjoints[step.origin], partial))
        total = algebra.apply(_ACCUMULATE[step.mode], (adjoints[step.target], contribution))
    except _UNDEFINED as error:
        origin = tape.instrs[step.origin]
        operands = [_term(arg, forward, adjoints, algebra) for arg in origin.args]
        message = f"{_applied(origin, operands)} has no derivative at this point ({error})"
        raise DomainError(message, tape.source, origin.span) from None
    return partial, contribution, total


def _term(term: Term, forward, adjoints, algebra):
    match term:
        case Const(value=value):
            return algebra.number(value)
        case Ref(index=index):
            return forward[index]
        case Bar(index=index):
            return adjoints[index]
        case Op(op=op, args=args):
            return algebra.apply(op, tuple(_term(arg, forward, adjoints, algebra) for arg in args))
    raise AssertionError(f"unexpected term {term!r}")


# ---------------------------------------------------------------------------------------------------
# Assembling the trace's records


def _entries(tape: Tape, names: tuple[str, ...], numbers: _Run) -> tuple[Entry, ...]:
    return tuple(_entry(tape, names, numbers, index) for index in range(len(tape.instrs)))


def _entry(tape: Tape, names: tuple[str, ...], numbers: _Run, index: int) -> Entry:
    instr = tape.instrs[index]
    value, adjoint = numbers.forward[index], numbers.adjoints[index]
    condition = instr.op != INPUT and primitives.lookup(instr.op).boolean
    if value is None or condition:  # a truth value has no derivative; an entry not computed has neither
        adjoint = None
    if value is not None and condition:
        value = bool(value)
    return Entry(
        name=names[index],
        op=instr.op,
        definition=definition_text(instr, names),
        operands=tuple(names[arg.index] for arg in instr.args if isinstance(arg, Ref)),
        value=value,
        adjoint=adjoint,
        span=tuple(instr.span),
        computed=value is not None,
        branch=() if instr.op == INPUT else tuple((names[c], v) for c, v in tape.path(index)),
    )


def _branches(tape: Tape, names: tuple[str, ...], numbers: _Run) -> tuple[Branch, ...]:
    """Every where() that ran, with the operand its condition picked and what that left uncomputed."""
    records = []
    for index, instr in enumerate(tape.instrs):
        if instr.op == INPUT or not primitives.lookup(instr.op).branches or numbers.forward[index] is None:
            continue
        condition, yes, no = instr.args
        value = bool(numbers.forward[condition.index])
        taken, other = (yes, no) if value else (no, yes)
        source = " ".join(tape.source[instr.span[0] : instr.span[1]].split())
        function = re.match(r"\s*(\w*)", source)[1]
        function = function if function in _BRANCHING else "where"
        skipped = () if type(other) is not Ref else tape.closure({other.index})
        records.append(
            Branch(
                entry=names[index],
                function=function,
                source=source or term_text(Op(instr.op, instr.args), names),
                condition=names[condition.index],
                condition_text=_condition_text(tape, names, condition.index, function),
                value=value,
                taken=atom_text(taken, names),
                taken_text=_operand_text(tape, names, taken, instr.span),
                not_taken=atom_text(other, names),
                not_taken_text=_operand_text(tape, names, other, instr.span),
                skipped=tuple(names[k] for k in sorted(skipped) if numbers.forward[k] is None),
            )
        )
    return tuple(records)


# What a where() entry may have been written as (max(a, b) is where(a >= b, a, b), min uses <=).
_BRANCHING = ("where", "if", "max", "min")


def _condition_text(tape: Tape, names: tuple[str, ...], index: int, function: str) -> str:
    """The condition as the user wrote it; for max and min, which wrote none, the comparison over the
    inputs' own names and other entries' names (x >= y)."""
    instr = tape.instrs[index]
    if function in ("where", "if") and instr.span != (0, 0):
        return " ".join(tape.source[instr.span[0] : instr.span[1]].split())

    def leaf(atom):
        if type(atom) is Const:
            return atom
        operand = tape.instrs[atom.index]
        if operand.op == INPUT:
            return operand.name
        if primitives.lookup(operand.op).boolean:  # and/or/not over comparisons: spelled out
            return Op(operand.op, tuple(leaf(arg) for arg in operand.args))
        return names[atom.index]

    return format_tree(Op(instr.op, tuple(leaf(arg) for arg in instr.args)), str, "symdiff")


def _operand_text(tape: Tape, names: tuple[str, ...], atom, span) -> str:
    """A where() operand as the user wrote it: a definition's name, the source text, or the constant;
    an entry's name where the text is the whole where() (one step of a max of three or more)."""
    if type(atom) is Const:
        return number_text(atom.value, True)
    instr = tape.instrs[atom.index]
    if atom.index in tape.labels:
        return tape.labels[atom.index]
    if instr.op == INPUT:
        return instr.name
    if instr.span == span or instr.span == (0, 0):
        return names[atom.index]
    return " ".join(tape.source[instr.span[0] : instr.span[1]].split())


def _accumulations(tape, raw, names, run: _Run, totals: _Run) -> tuple[Accumulation, ...]:
    every = list(accumulations(tape, raw))
    records = []
    for k, number in enumerate(run.ran):
        step, position, partial = every[number]
        records.append(
            Accumulation(
                step=k + 1,
                target=names[step.target],
                origin=names[step.origin],
                operand=position,
                partial=term_text(partial, names),
                partial_value=run.partials[k],
                origin_adjoint=run.origins[k],
                contribution=run.contributions[k],
                total=run.totals[k],
                total_formula=formula_text(totals.totals[k], _TOTAL_CHARS),
            )
        )
    return tuple(records)


def _partials(tape, raw, names, numbers: _Run, results: _Run) -> tuple[Partial, ...]:
    rows = []
    for k, name in enumerate(raw.wrt):
        index = tape.input_index(name)
        entry = None if index is None else names[index]
        rows.append(Partial(name, entry, formula_text(results.gradient[k], _RESULT_CHARS), numbers.gradient[k]))
    return tuple(rows)


# ---------------------------------------------------------------------------------------------------
# SymPy formulas back in symdiff syntax


class _SympyText(StrPrinter):
    """SymPy's text in symdiff's spelling: the table's function names, floats as Python writes them."""

    # Print every function through _print_Function below, even one whose class prints itself.
    printmethod = "_symdiff_text"

    def _print_Float(self, expr) -> str:
        return number_text(float(expr))

    def _print_Exp1(self, expr) -> str:
        return "e"

    def _print_Function(self, expr) -> str:
        # SymPy's name for a table function is the same word, perhaps capitalised (Abs) or private
        # (a row's own subclass, _Abs); anything else is left as SymPy spells it and fails to parse.
        name = expr.func.__name__
        word = name.lstrip("_").lower()
        return f"{word if word in primitives.user_functions() else name}({self.stringify(expr.args, ', ')})"


_NOT_REAL = (sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)


def formula_text(expr, limit: int) -> str | None:
    """A SymPy formula in symdiff syntax (printed as symdiff prints, so `parse` reads it back), or None
    when it gave up, has no real meaning, or is longer than `limit` characters."""
    if expr is None or expr.has(*_NOT_REAL):
        return None
    text = _SympyText().doprint(expr).replace("**", "^")
    if len(text) > limit:
        return None
    try:
        return expression_text(parse(text))
    except SymdiffError:
        return None


# ---------------------------------------------------------------------------------------------------
# Formats: one _Page of styled strings, printed by a logic-free template per format


def format_number(value: float, digits: int = 3) -> str:
    """For reading, not for round trips: integers exactly, `digits` decimals from 1 up, `digits`
    significant digits below 1 (0.909), exponent form outside [1e-4, 1e6)."""
    if not 1 <= digits <= 15:
        raise ArgumentError(f"digits must be between 1 and 15, got {digits}")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) < 1:
        return f"{value:.{digits}g}"
    if abs(value) < 1e6:
        return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return f"{value:.{digits + 1}g}"


@dataclass(frozen=True, slots=True)
class _Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    rule: str  # Markdown: the alignment row; LaTeX: the column spec; otherwise ""
    lines: tuple[str, ...]  # text: the table laid out in columns; otherwise ()


@dataclass(frozen=True, slots=True)
class _Page:
    title: str  # text formats: the whole title line, wrapped; the other templates compose their own
    output: str
    expression: str
    point: str
    forward: _Table
    branches: tuple[str, ...]  # one sentence per where() that ran: the condition and the operand taken
    seed: str
    why: str
    rule: str
    reverse: _Table
    notes: tuple[str, ...]
    results: tuple[str, ...]


_SUBSCRIPTED = re.compile(r"([A-Za-z])(\d+)")
_GREEK = frozenset(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi rho sigma tau upsilon phi chi "
    "psi omega Gamma Delta Theta Lambda Xi Sigma Upsilon Phi Psi Omega".split()
)
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\^{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\~{}",
}
_MACRON = "\u0304"  # combining: w̄ is "w" followed by it
_RIGHT = frozenset({"value", "contribution", "step"})
_LOCAL_FORMULAS = "These formulas are those of the branches taken: they hold while every condition keeps its value."


@dataclass(frozen=True, slots=True)
class Style:
    """How one format writes names, adjoints, partials, formulas and numbers (graph.py draws with the text one)."""

    kind: str  # "text", "ascii", "markdown", "html" or "latex"
    digits: int = 3
    width: int = 100

    def name(self, name: str) -> str:
        return _latex_name(name) if self.kind == "latex" else name

    def bar(self, name: str) -> str:
        match self.kind:
            case "ascii":
                return f"{name}_bar"
            case "latex":
                return _latex_bar(name)
        return name[0] + _MACRON + name[1:]

    def partial(self, top: str, bottom: str) -> str:
        match self.kind:
            case "ascii":
                return f"d{top}/d{bottom}"
            case "latex":
                return rf"\partial {_latex_name(top)}/\partial {_latex_name(bottom)}"
        return f"∂{top}/∂{bottom}"

    def formula(self, text: str) -> str:
        match self.kind:
            case "ascii":
                return text
            case "latex":
                return _latex_formula(text)
        return text.replace(" * ", " · ")

    def words(self, text: str) -> str:
        """Plain words in a cell or a sentence that is otherwise mathematics."""
        return rf"\text{{{text}}}" if self.kind == "latex" else text

    def number(self, value: float) -> str:
        text = format_number(value, self.digits)
        return _latex_number(text) if self.kind == "latex" else text

    @property
    def times(self) -> str:
        return {"ascii": "*", "latex": r"\cdot"}.get(self.kind, "·")

    @property
    def plus_equals(self) -> str:
        return r"\mathrel{+}=" if self.kind == "latex" else "+="

    def math(self, text: str) -> str:
        """A finished piece of mathematics, ready to drop into this format's prose or table cell."""
        match self.kind:
            case "latex":
                return f"${text}$"
            case "markdown":
                return re.sub(r"([\\`*_|<>\[\]])", r"\\\1", text)
            case "html":
                return html.escape(text)
        return text

    def wrap(self, text: str, indent: int = 3) -> str:
        """Text formats break long prose lines to fit the width; continuation lines hang by 2."""
        if self.kind not in ("text", "ascii"):
            return text
        hang = " " * (indent + 2)
        # "x1 = 2" stays on one line: textwrap breaks only at ASCII whitespace, so glue it with NUL.
        glued = text.replace(" = ", "\0=\0")
        lines = textwrap.fill(glued, self.width - indent, subsequent_indent=hang, break_on_hyphens=False)
        return lines.replace("\0", " ")

    def code(self, source: str) -> str:
        shown = " ".join(source.split())
        if len(shown) > _SHOWN_SOURCE:
            shown = shown[: _SHOWN_SOURCE - 3] + "..."
        match self.kind:
            case "latex":
                return r"\texttt{" + "".join(_LATEX_SPECIAL.get(c, c) for c in shown) + "}"
            case "markdown":
                return f"`{shown}`"
            case "html":
                return f"<code>{html.escape(shown)}</code>"
        return shown

    def sweep_rule(self, letter: str) -> tuple[str, str]:
        """The accumulation rule and the partial's column header, for entries named `letter`1, ..."""
        match self.kind:
            case "ascii":
                return f"{letter}i_bar += {letter}p_bar * d{letter}p/d{letter}i", f"d{letter}p/d{letter}i"
            case "latex":
                partial = rf"\partial {letter}_p/\partial {letter}_i"
                return rf"\bar{{{letter}}}_i \mathrel{{+}}= \bar{{{letter}}}_p \cdot {partial}", f"${partial}$"
        bar = letter + _MACRON
        return f"{bar}ᵢ += {bar}ₚ · ∂{letter}ₚ/∂{letter}ᵢ", self.math(f"∂{letter}ₚ/∂{letter}ᵢ")


def _render(template: str, page: _Page) -> str:
    return templates().get_template(template).render(page=page, generator=_generator())


def _generator() -> str:
    return f"symdiff {__version__}"


def _page(trace: Trace, style: Style) -> _Page:
    letter = trace.entries[0].name[0] if trace.entries else "w"
    rule, partial_header = style.sweep_rule(letter)
    point = ", ".join(style.math(f"{style.name(name)} = {number_text(value, True)}") for name, value in trace.point)
    output, expression = style.math(style.name(trace.output)), style.code(trace.expression)
    results = tuple(style.wrap(_result(trace, partial, style)) for partial in trace.partials)
    if trace.branches and results:
        results += (style.wrap(_LOCAL_FORMULAS),)
    return _Page(
        title=style.wrap(f"Reverse mode, step by step: {output} = {expression} at {point or 'no inputs'}", 0),
        output=output,
        expression=expression,
        point=point or "no inputs",
        forward=_forward_table(trace, style),
        branches=tuple(style.wrap(line) for line in _branch_lines(trace, style)),
        seed=style.math(_seed(trace, style)),
        why=style.math(f"{style.partial(trace.output, trace.output)} = 1"),
        rule=style.math(rule),
        reverse=_reverse_table(trace, style, partial_header),
        notes=tuple(style.wrap(note) for note in _notes(trace, style)),
        results=results or ("Nothing to differentiate: no inputs.",),
    )


def _seed(trace: Trace, style: Style) -> str:
    if trace.output_entry is None:
        return f"{style.bar(trace.output)} = 1"
    return f"{style.bar(trace.output)} = {style.bar(trace.output_entry)} = 1"


def _forward_table(trace: Trace, style: Style) -> _Table:
    rows = [
        tuple(map(style.math, (style.name(entry.name), style.formula(entry.definition)))) + (_value_cell(entry, style),)
        for entry in trace.entries
    ]
    output = (style.name(trace.output), style.formula(trace.output_definition), style.number(trace.value))
    rows.append(tuple(style.math(cell) for cell in output))
    return _table(("entry", "definition", "value"), tuple(rows), style)


def _value_cell(entry: Entry, style: Style) -> str:
    if not entry.computed:
        return style.words("not computed")
    if isinstance(entry.value, bool):  # a condition
        return style.words("true" if entry.value else "false")
    return style.math(style.number(entry.value))


def _branch_lines(trace: Trace, style: Style) -> tuple[str, ...]:
    """`w2 = x > 0 is true: where(x > 0, log(x), x^2) takes log(x) (w3), so x^2 (w4) is not computed.`"""
    lines = []
    for branch in trace.branches:
        taken = _operand(branch.taken, branch.taken_text, style)
        other = _operand(branch.not_taken, branch.not_taken_text, style)
        line = (
            f"{style.math(style.name(branch.condition))} = {style.code(branch.condition_text)} is "
            f"{'true' if branch.value else 'false'}: {style.code(branch.source)} takes {taken}"
        )
        rest = [style.math(style.name(name)) for name in branch.skipped if name != branch.not_taken]
        if branch.not_taken in branch.skipped:
            nor = f" (nor {_listed(rest)})" if rest else ""
            line += f", so {other} is not computed{nor}."
        else:
            line += f", not {other}." + (f" Not computed: {_listed(rest)}." if rest else "")
        lines.append(line)
    return tuple(lines)


def _operand(name: str, text: str, style: Style) -> str:
    """A where() operand: `log(x) (w3)`, or just `w3` or `0` when that is all there is to say."""
    entry = style.math(style.name(name) if name[:1].isalpha() else name)
    return entry if text == name else f"{style.code(text)} ({entry})"


def _reverse_table(trace: Trace, style: Style, partial_header: str) -> _Table:
    headers = ("step", "update", partial_header, "contribution", "running total")
    full, short = [], []
    for step in trace.steps:
        update = (
            f"{style.bar(step.target)} {style.plus_equals} {style.bar(step.origin)} {style.times} "
            f"{style.partial(step.origin, step.target)}"
        )
        cells = (update, with_value(step.partial, step.partial_value, style), style.number(step.contribution))
        total = f"{style.bar(step.target)} = "
        full.append(
            (
                str(step.step),
                *map(style.math, cells),
                style.math(total + with_value(step.total_formula, step.total, style)),
            )
        )
        short.append(style.math(total + style.number(step.total)))
    if style.kind in ("text", "ascii"):
        full = _fit_last_column(headers, full, short, style.width - 3)
    return _table(headers, tuple(full), style)


def with_value(formula: str | None, value: float, style: Style) -> str:
    """`cos(w1) = -0.416`, or just the number when the formula is missing or is itself a number."""
    number = style.number(value)
    if formula is None or not any(isinstance(node, Var) for node in postorder(parse(formula))):
        return number
    return f"{style.formula(formula)} = {number}"


def _fit_last_column(headers, rows: list, short: list, width: int) -> list:
    """Keep a running total's formula only where the row still fits `width` columns."""
    if not rows:
        return rows
    widths = [max(_width(row[k]) for row in [headers, *rows]) for k in range(len(headers) - 1)]
    room = width - sum(widths) - 2 * (len(headers) - 1)
    return [row if _width(row[-1]) <= room else (*row[:-1], brief) for row, brief in zip(rows, short, strict=True)]


def _notes(trace: Trace, style: Style) -> tuple[str, ...]:
    """Where an adjoint receives several contributions: the heart of reverse mode."""
    if not trace.steps:
        output = [entry for entry in trace.entries if entry.name == trace.output_entry]
        if output and output[0].op != INPUT:  # where(x > 0, 1, 2): the branch taken is a constant
            name = style.math(style.name(trace.output))
            return (f"No steps: the branches taken at this point give {name} a constant value.",)
        inputs = [entry.definition for entry in output]
        why = f"is the input {style.math(style.name(inputs[0]))} itself" if inputs else "is a constant"
        return (f"No steps: {style.math(style.name(trace.output))} {why}.",)
    by_target: dict[str, list[Accumulation]] = defaultdict(list)
    for step in trace.steps:
        by_target[step.target].append(step)
    notes = []
    if trace.branches:
        notes.append(
            "Only the steps of the branches taken run: a where() passes its adjoint to the operand it took, "
            "and an entry not computed gets no adjoint."
        )
    for target, steps in by_target.items():
        if len(steps) > 1:
            numbers = _listed([str(step.step) for step in steps])
            users = _listed([style.math(style.name(step.origin)) for step in steps])
            notes.append(
                f"{style.math(style.bar(target))} adds up {len(steps)} contributions (steps {numbers}), "
                f"one for each use of {style.math(style.name(target))} (by {users})."
            )
    return tuple(notes)


def _listed(items: list[str]) -> str:
    return ", ".join(items if len(items) <= _LISTED else [*items[: _LISTED - 1], "...", items[-1]])


def _result(trace: Trace, partial: Partial, style: Style) -> str:
    symbol = style.partial(trace.output, partial.wrt)
    if partial.entry is None:
        return f"{style.math(symbol + ' = 0')} ({style.math(style.name(partial.wrt))} does not occur)"
    line = f"{symbol} = {style.bar(partial.entry)} = {with_value(partial.formula, partial.value, style)}"
    remark = " (the formula is too long to show)" if partial.formula is None else ""
    return style.math(line) + remark


def _table(headers: tuple[str, ...], rows: tuple[tuple[str, ...], ...], style: Style) -> _Table:
    right = [header in _RIGHT for header in headers]
    match style.kind:
        case "markdown":
            rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
            return _Table(headers, rows, rule, ())
        case "latex":
            return _Table(headers, rows, "".join("r" if r else "l" for r in right), ())
        case "text" | "ascii":
            return _Table(headers, rows, "", _columns(headers, rows, right, "-" if style.kind == "ascii" else "─"))
    return _Table(headers, rows, "", ())


def _columns(headers, rows, right: list[bool], dash: str) -> tuple[str, ...]:
    """Rows laid out in aligned columns; widths count what a terminal shows (w̄ is one column wide)."""
    widths = [max(_width(row[k]) for row in [headers, *rows]) for k in range(len(headers))]
    rule = tuple(dash * width for width in widths)
    lines = []
    for row in [headers, rule, *rows]:
        cells = [_pad(cell, width, r and row is not headers) for cell, width, r in zip(row, widths, right, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return tuple(lines)


def _pad(cell: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(cell))
    return gap + cell if right else cell + gap


def _width(text: str) -> int:
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


# LaTeX pieces


def _latex_name(name: str) -> str:
    if match := _SUBSCRIPTED.fullmatch(name):
        return f"{match[1]}_{{{match[2]}}}"
    if len(name) == 1:
        return name
    if name in _GREEK:
        return "\\" + name
    return r"\mathit{" + name.replace("_", r"\_") + "}"


def _latex_bar(name: str) -> str:
    if match := _SUBSCRIPTED.fullmatch(name):
        return rf"\bar{{{match[1]}}}_{{{match[2]}}}"
    if len(name) == 1:
        return rf"\bar{{{name}}}"
    return rf"\overline{{{_latex_name(name)}}}"


def _latex_number(text: str) -> str:
    mantissa, _, exponent = text.partition("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}" if exponent else text


def _latex_formula(text: str) -> str:
    """symdiff syntax -> LaTeX: the table's notation decides operators and parentheses."""
    out: list[tuple[str, int]] = []
    try:
        tree = parse(text)
    except SymdiffError:  # a condition ("w1 > 0", "w3 and w5") is not an expression
        return _latex_condition(text)
    for node in postorder(tree):
        match node:
            case Num(value=value):
                out.append((_latex_number(number_text(value, True)), ATOM))
            case Var(name=name):
                out.append((_latex_name(name), ATOM))
            case Apply(op=op, args=args):
                operands = out[len(out) - len(args) :]
                del out[len(out) - len(args) :]
                out.append(_latex_apply(primitives.lookup(op), operands))
    return out[0][0]


def _latex_apply(row: primitives.Primitive, operands: list[tuple[str, int]]) -> tuple[str, int]:
    notation = row.notation
    if notation.kind == "call":
        return rf"\operatorname{{{row.name}}}\left({', '.join(text for text, _ in operands)}\right)", ATOM
    texts = [
        rf"\left({text}\right)" if precedence < minimum else text
        for (text, precedence), minimum in zip(operands, notation.operand_min, strict=True)
    ]
    if notation.kind == "prefix":
        return f"{_LATEX_LOGIC.get(notation.symbol, notation.symbol)}{texts[0]}", notation.precedence
    (left, _), (right, _) = operands
    match notation.symbol:
        case "/":  # a fraction groups its parts itself
            return rf"\frac{{{left}}}{{{right}}}", ATOM
        case "^":  # so does an exponent
            return f"{{{texts[0]}}}^{{{right}}}", notation.precedence
        case "*":
            return rf"{texts[0]} \cdot {texts[1]}", notation.precedence
    return f"{texts[0]} {_LATEX_LOGIC.get(notation.symbol, notation.symbol)} {texts[1]}", notation.precedence


def _latex_condition(text: str) -> str:
    """A condition over entries and numbers, word by word: names as names, and/or/not as logic."""
    return _CONDITION_WORD.sub(lambda word: _LATEX_LOGIC.get(word[0]) or _latex_name(word[0]), text)


_CONDITION_WORD = re.compile(r"[A-Za-z_]\w*|>=|<=|!=|==")
# Conditions: comparisons and and/or/not, as mathematics writes them.
_LATEX_LOGIC = {
    ">=": r"\geq",
    "<=": r"\leq",
    "!=": r"\neq",
    "==": "=",
    "and": r"\land",
    "or": r"\lor",
    "not": r"\lnot",
    "not ": r"\lnot ",
    "where": r"\operatorname{where}",
}


# JSON


def _document(trace: Trace) -> dict:
    seed = None if trace.output_entry is None else {"adjoint": trace.output_entry, "value": 1.0}
    return {
        "schema": SCHEMA,
        "expression": trace.expression,
        "point": dict(trace.point),
        "value": trace.value,
        "output": {"name": trace.output, "entry": trace.output_entry, "definition": trace.output_definition},
        "forward": [_entry_record(entry) for entry in trace.entries],
        "branches": [_branch_record(branch) for branch in trace.branches],
        "seed": seed,
        "reverse": [_step_record(step) for step in trace.steps],
        "gradient": [{"wrt": p.wrt, "entry": p.entry, "formula": p.formula, "value": p.value} for p in trace.partials],
    }


def _entry_record(entry: Entry) -> dict:
    return {
        "entry": entry.name,
        "op": entry.op,
        "definition": entry.definition,
        "operands": list(entry.operands),
        "value": entry.value,
        "adjoint": entry.adjoint,
        "span": list(entry.span),
        "computed": entry.computed,
        "branch": [{"condition": condition, "value": value} for condition, value in entry.branch],
    }


def _branch_record(branch: Branch) -> dict:
    return {
        "entry": branch.entry,
        "function": branch.function,
        "source": branch.source,
        "condition": branch.condition,
        "condition_text": branch.condition_text,
        "value": branch.value,
        "taken": branch.taken,
        "taken_text": branch.taken_text,
        "not_taken": branch.not_taken,
        "not_taken_text": branch.not_taken_text,
        "skipped": list(branch.skipped),
    }


def _step_record(step: Accumulation) -> dict:
    return {
        "step": step.step,
        "target": step.target,
        "origin": step.origin,
        "operand": step.operand,
        "partial": step.partial,
        "partial_value": step.partial_value,
        "origin_adjoint": step.origin_adjoint,
        "contribution": step.contribution,
        "total": step.total,
        "total_formula": step.total_formula,
    }


__all__ = ["Accumulation", "Branch", "Entry", "FORMATS", "Partial", "SCHEMA", "Trace", "explain", "format_number"]
