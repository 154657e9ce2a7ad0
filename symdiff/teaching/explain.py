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

Array programs (x[i], sum(... for i in range(...))) give schema "symdiff.explain/3": the loops run at
the point, and every iteration is listed (at most MAX_ITERATIONS in all, every run of a nested loop
counted; more is an ArgumentError saying how many). The reverse sweep runs each loop again, index by
index as the generated code does: a body's adjoints start at 0 in each iteration, and a read (w1 = x[i])
adds its share straight into the array's adjoint at the index read. /3 has /2's keys, and:
    point       an array's value is a list (a list of rows for W[j, k])
    loops       [{entry (the reduction), function ("sum" or "prod"), index ("i"), range (range()'s
                  arguments as written: "len(x) - 1"), source, runs [{outer {index: value} (the
                  enclosing loops' indices), values [the index's values]}], iterations}], in tape
                  order; placed after output
    forward     each record also has iteration {index: value} ({} outside loops); a read's definition
                  is "x[i + 1]", an index's "i", a length's "len(x)", a reduction's
                  "sum(w9 for i in range(len(x) - 1))"; lengths and indices have adjoint null
    branches    always [] (array programs have no where())
    reverse     each record also has iteration, and read: for a step into an array element (target
                  "x[2]"), the entry that read it ("w1"), else null. A product's partial reads
                  w5_before and w5_after: the products of its factors before and after the index
    gradient    one record per scalar input and per element of an array (row by row; wrt and entry
                  "x[2]"), each also with array (null for a scalar) and index ([] for a scalar)
"""

from __future__ import annotations

import html
import itertools
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
from ..core.adjoint import Adjoint, Bar, Op, Prefix, Step, Suffix, Term
from ..core.bounds import bounds, evaluate, range_text, violation
from ..core.expr import Apply, Item, Length, Num, Var, postorder
from ..core.parse import parse
from ..core.pipeline import Programs, build
from ..core.primitives import ATOM
from ..core.printing import affine_text, expression_text, format_tree, number_text
from ..core.reverse import local_partials
from ..core.tape import COUNTER, INPUT, LEAVES, LENGTH, READ, REDUCTIONS, Const, Instr, Ref, Tape
from ..errors import ArgumentError, DomainError, SymdiffError
from ..resources import templates
from ..version import __version__

Label = tuple[tuple[str, int], ...]  # loop index values, outermost first: (("i", 0), ("j", 2))

SCHEMA = "symdiff.explain/2"
SCHEMA_ARRAYS = "symdiff.explain/3"  # array programs: /2 plus loops and iterations
# An array program's trace lists every iteration of every loop; past these it would be a wall of rows.
MAX_ITERATIONS = 50
MAX_ELEMENTS = 100  # numbers in the point's arrays (the gradient lists one row per element)
# Loops counted before "at least": the count of a point far too large stops here.
_COUNTED = 100_000
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
    iteration: Label = ()  # inside loops: the index values this row was computed at, outermost first


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
    iteration: Label = ()  # inside loops: the index values the step ran at, outermost first
    read: str | None = None  # target is an array element (x[2]): the entry reading it (w1 = x[i]), whose
    # contribution the step adds straight into the element's adjoint, as the generated code does


@dataclass(frozen=True, slots=True)
class Partial:
    """One component of the gradient."""

    wrt: str  # a scalar input, or an element of an array input: "x[2]", "W[1, 0]"
    entry: str | None  # the input's entry (an element's own name); None when the input does not occur
    formula: str | None  # over the inputs ("x2 + cos(x1)"); None when too long to show
    value: float
    array: str | None = None  # for an element: its array
    index: tuple[int, ...] = ()  # for an element: its indices


@dataclass(frozen=True, slots=True)
class LoopRun:
    """A reduction's loop as it ran at the point: the index values of each run (a loop nested in
    another runs once per outer iteration)."""

    entry: str  # the reduction's entry: "w3"
    function: str  # "sum" or "prod"
    index: str  # "i"
    range: str  # range()'s arguments as written: "len(x) - 1", "i + 1, len(x)"
    source: str  # the reduction as written
    runs: tuple[tuple[Label, tuple[int, ...]], ...]  # (the outer loops' index values, this index's values)

    @property
    def iterations(self) -> int:
        return sum(len(values) for _, values in self.runs)


@dataclass(frozen=True, slots=True, repr=False)
class Trace:
    expression: str
    point: tuple[tuple[str, float | tuple], ...]  # an array's value is a tuple (of tuples for 2-D)
    output: str  # what the walk-through calls the expression's value: "z"
    output_entry: str | None  # the entry holding it; None when the expression is a constant
    output_definition: str
    value: float
    entries: tuple[Entry, ...]
    branches: tuple[Branch, ...]  # the where() entries that ran, in tape order
    steps: tuple[Accumulation, ...]  # the steps that ran
    partials: tuple[Partial, ...]
    loops: tuple[LoopRun, ...] = ()  # array programs: every reduction's loop, in tape order
    schema: str = SCHEMA  # SCHEMA_ARRAYS for a program with arrays

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        point = ", ".join(f"{name}={point_text(value)}" for name, value in self.point)
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
    """The reverse-mode walk-through of `expr` at the point `at` ({"x1": 2, "x2": 3}; an array input
    takes a list: {"x": [1.0, 2.0, 3.0]}, a list of rows for W[j, k])."""
    return trace(build(expr, wrt), at)


def trace(programs: Programs, at: Mapping[str, float]) -> Trace:
    """The walk-through of programs that core.pipeline.build made (graph.py shares them with its picture)."""
    if has_arrays(programs.tape):
        return _array_trace(programs, at)
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


def definition_text(instr: Instr, names: tuple[str, ...], tape: Tape | None = None) -> str:
    """An entry as symdiff syntax over earlier entries; a reduction's range needs its `tape`."""
    match instr.op:
        case "input":
            return instr.name
        case "read":
            indices, _ = instr.detail
            return f"{instr.name}[{', '.join(affine_text(index, symbol_text) for index in indices)}]"
        case "counter":
            return instr.name
        case "length":
            return symbol_text(Length(instr.name, instr.detail))
        case "sum" | "prod":
            loop = tape.loops[instr.detail]
            body = atom_text(instr.args[0], names)
            return f"{instr.op}({body} for {loop.index} in range({range_text(loop.start, loop.stop)}))"
    return term_text(Op(instr.op, instr.args), names)


def term_text(term: Term, names: tuple[str, ...]) -> str:
    """A term over forward values in symdiff syntax, entries by name: `cos(w1)`. A product's partial
    reads the product of its factors before the index (`w5_before`) and after it (`w5_after`)."""

    def leaf(node) -> str:
        match node:
            case Prefix(reduction=reduction):
                return f"{names[reduction]}_before"
            case Suffix(reduction=reduction):
                return f"{names[reduction]}_after"
        return names[node.index]

    return format_tree(term, leaf, "symdiff")


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


def has_arrays(tape: Tape) -> bool:
    """Whether the program reads arrays (and so may loop): its trace is labelled by iteration."""
    return bool(tape.arrays or tape.loops)


def symbol_text(symbol) -> str:
    """A symbol of an index or a bound as written: a loop index, `len(x)` or `len(W, 1)`."""
    if isinstance(symbol, Length):
        return f"len({symbol.array})" if symbol.dim == 0 else f"len({symbol.array}, {symbol.dim})"
    return symbol


def element_text(array: str, index: tuple[int, ...]) -> str:
    """`x[2]`, `W[1, 0]`."""
    return f"{array}[{', '.join(map(str, index))}]"


def label_text(label: Label) -> str:
    """`i = 0, j = 2`."""
    return ", ".join(f"{index} = {value}" for index, value in label)


def point_text(value) -> str:
    """A point's value as Python writes it, integers without `.0`: `2`, `[1, 2.5, 3]`, `[[1, 2], [3, 4]]`."""
    if isinstance(value, tuple):
        return "[" + ", ".join(map(point_text, value)) + "]"
    return number_text(value, True)


def check_point(tape: Tape, at) -> dict[str, float]:
    """The point as {input: float} in the tape's input order; a clear error for anything else."""
    _check_names(tape, at)
    return {name: _real(name, at[name]) for name in tape.inputs}


def _check_names(tape: Tape, at) -> None:
    """A mapping giving every input, and nothing else."""
    if not isinstance(at, Mapping):
        raise ArgumentError("expected the point as a mapping from input names to numbers, e.g. {'x1': 2, 'x2': 3}")
    inputs = ", ".join(tape.inputs) or "none"
    unknown = [str(name) for name in at if name not in tape.inputs]
    if unknown:
        raise ArgumentError(f"the point gives {', '.join(unknown)}, not in the expression (inputs: {inputs})")
    missing = [name for name in tape.inputs if name not in at]
    if missing:
        raise ArgumentError(f"the point has no value for {', '.join(missing)} (inputs: {inputs})")


def check_array_point(tape: Tape, at) -> tuple[dict, dict[tuple[str, int], int]]:
    """The point of an array program, {input: a float, or for an array nested tuples of floats}, and
    the arrays' lengths ((array, dimension) -> length), every read checked against them."""
    _check_names(tape, at)
    shape = dict(tape.arrays)
    lengths: dict[tuple[str, int], int] = {}
    point = {
        name: _array(name, at[name], shape[name], lengths) if name in shape else _real(name, at[name])
        for name in tape.inputs
    }
    for name, ndim in tape.arrays:
        for dim in range(ndim):  # an empty array has no rows to measure: its rows are empty too
            lengths.setdefault((name, dim), 0)
    for bound in bounds(tape):
        message = violation(bound, lengths)
        if message is not None:
            raise ArgumentError(message, tape.source, tape.instrs[bound.entry].span)
    return point, lengths


def _check_elements(tape: Tape, lengths: Mapping[tuple[str, int], int]) -> None:
    count = sum(math.prod(lengths[(name, dim)] for dim in range(ndim)) for name, ndim in tape.arrays)
    if count > MAX_ELEMENTS:
        raise ArgumentError(
            f"the point's arrays hold {count:,} numbers; explain lists the gradient element by element and takes "
            f"at most {MAX_ELEMENTS} (compile_grad takes arrays of any length)"
        )


_INDEXED = " (the expression indexes it: it is an array)"


def _array(name: str, value, ndim: int, lengths: dict[tuple[str, int], int]) -> tuple:
    """An array's value as nested tuples of floats, `ndim` levels deep and rectangular; records its lengths."""

    def level(value, dim: int, where: str) -> tuple:
        if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # a NumPy array
            value = value.tolist()
        if not isinstance(value, list | tuple):
            rows = f" ({name} has {ndim} dimensions: give a list of lists)" if ndim > 1 else ""
            raise ArgumentError(f"the point's {name}{where} = {value!r} is not a list of numbers{rows or _INDEXED}")
        length = lengths.setdefault((name, dim), len(value))
        if len(value) != length:
            raise ArgumentError(
                f"the point's {name} is not rectangular: {name}{where} has {len(value)} element"
                f"{'s' * (len(value) != 1)}, {name}{'[0]' * dim} has {length}"
            )
        if dim + 1 == ndim:
            return tuple(_real(f"{name}{where}[{k}]", item) for k, item in enumerate(value))
        return tuple(level(item, dim + 1, f"{where}[{k}]") for k, item in enumerate(value))

    return level(value, 0, "")


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
# Array programs: the loops run at the point, iteration by iteration, in the generated code's order
#
# Values and adjoints are kept per (entry, label), the label being the index values of the loops the
# entry lies in: a loop body's entries have one value per iteration, and their adjoints start at 0 in
# each. A read wk = x[i] passes what it receives straight into x's adjoint at that index (x_bar[i] +=
# ...), as the generated code does; adjoints of entries outside the loop gather every iteration's share.


@dataclass(frozen=True, slots=True)
class _LoopStep:
    origin: int
    operand: int
    target: int
    element: tuple[str, tuple[int, ...]] | None  # target is a read: the element it read
    label: Label
    partial_term: Term
    partial: object
    origin_adjoint: object
    contribution: object
    total: object  # the target's adjoint after the step (the element's, for a read)


def _array_trace(programs: Programs, at) -> Trace:
    tape = programs.tape
    if tape.rows is not None:
        raise SymdiffError(
            "explain walks through one output, and [... for i in range(...)] has one per index; explain one "
            "of them (the body with i written as a number)",
            tape.source,
            tape.rows.start.span,
        )
    point, lengths = check_array_point(tape, at)
    levels = _levels(tape)
    _check_iterations(tape, levels, lengths)
    _check_elements(tape, lengths)
    names = entry_names(tape)
    # Indices and lengths are integers: nothing flows back into them (the generated code has no such lines).
    partials = {
        p: [part for part in parts if tape.instrs[part[0]].op not in _INTEGERS] for p, parts in local_partials(tape)
    }
    run = _Loops(tape, levels, partials, _Numbers(), point, lengths).run()
    over_entries = _EntrySymbols(names)
    totals = _Loops(tape, levels, partials, _Formulas(_TOTAL_NODES), point, lengths, over_entries).run()
    over_inputs = _InputSymbols(tape, point)
    results = _Loops(tape, levels, partials, _Formulas(_RESULT_NODES), over_inputs.point, lengths).run()
    output = tape.output
    return Trace(
        expression=tape.source,
        point=tuple(point.items()),
        output=output_name(tape),
        output_entry=names[output.index] if isinstance(output, Ref) else None,
        output_definition=atom_text(output, names),
        value=run.value(output, ()),
        entries=tuple(_loop_entry(tape, names, run, index, label) for index, label in run.order),
        branches=(),
        steps=tuple(_loop_step(names, k, step, totals.steps[k], over_entries) for k, step in enumerate(run.steps)),
        partials=_loop_partials(programs, names, run, results, lengths, over_inputs.text),
        loops=tuple(_loop_run(tape, names, run, index) for index in _reductions(tape)),
        schema=SCHEMA_ARRAYS,
    )


_INTEGERS = (COUNTER, LENGTH)


def _levels(tape: Tape) -> dict[tuple, list[int]]:
    """The entries of each loop nest (by path: () outside every loop), in tape order."""
    levels: dict[tuple, list[int]] = defaultdict(list)
    for index in range(len(tape.instrs)):
        levels[tape.path(index)].append(index)
    return levels


def _reductions(tape: Tape) -> list[int]:
    return [index for index, instr in enumerate(tape.instrs) if instr.op in REDUCTIONS]


class _EntrySymbols:
    """For running totals over entries: each entry's value in each iteration is a symbol of its own (w2 of
    i = 0 is not w2 of i = 1); `origins` says whose, so that a total can be shown over entry names when
    every symbol in it is visible from the step's iteration (_visible_text)."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.origins: dict[sympy.Symbol, tuple[str, Label]] = {}

    def __call__(self, index: int, label: Label) -> sympy.Symbol:
        made = sympy.Symbol(f"{self.names[index]}_{len(self.origins)}", real=True)
        self.origins[made] = (self.names[index], label)
        return made


class _InputSymbols:
    """The point over SymPy symbols, for the gradient's formulas. x[2] is no name symdiff parses back,
    so an element stands in as a name no input has, and `text` writes it back as x[2]."""

    def __init__(self, tape: Tape, point: Mapping):
        self.prefix = _longer_than(tape.inputs, "e") + "_"
        self.elements: dict[str, str] = {}
        self.point = {
            name: _map_array(value, lambda index, name=name: self._element(name, index))
            if tape.is_array(name)
            else sympy.Symbol(name, real=True)
            for name, value in point.items()
        }

    def _element(self, array: str, index: tuple[int, ...]) -> sympy.Symbol:
        stand_in = f"{self.prefix}{len(self.elements)}"
        self.elements[stand_in] = element_text(array, index)
        return sympy.Symbol(stand_in, real=True)

    def text(self, formula) -> str | None:
        text = formula_text(formula, _RESULT_CHARS)
        if text is None:
            return None
        return re.sub(rf"\b{re.escape(self.prefix)}\d+\b", lambda found: self.elements[found[0]], text)


def _range(loop, lengths, env: Mapping[str, int]) -> range:
    return range(evaluate(loop.start, lengths, env), evaluate(loop.stop, lengths, env))


def _check_iterations(tape: Tape, levels, lengths) -> None:
    """A clear error when the loops run more than MAX_ITERATIONS iterations in all at these lengths
    (every run of a nested loop counted); the caret points at the reduction that runs the most."""

    def reductions(path: tuple) -> list[int]:
        return [index for index in levels.get(path, ()) if tape.instrs[index].op in REDUCTIONS]

    def iterations(index: int, path: tuple, env: dict) -> int:
        """The iterations of reduction `index` and of the loops inside it, stopping past _COUNTED."""
        loop, inner, total = tape.loops[tape.instrs[index].detail], (*path, (index, None)), 0
        for k in _range(loop, lengths, env):
            total += 1 + sum(iterations(nested, inner, {**env, loop.index: k}) for nested in reductions(inner))
            if total > _COUNTED:
                break
        return total

    counts = {index: iterations(index, (), {}) for index in reductions(())}
    total = sum(counts.values())
    if total <= MAX_ITERATIONS:
        return
    heaviest = max(counts, key=counts.get)
    many = f"more than {_COUNTED:,}" if counts[heaviest] > _COUNTED else f"{total:,}"
    raise ArgumentError(
        f"at this point the loops run {many} iterations (each run of a nested loop counted); explain lists "
        f"every iteration and takes at most {MAX_ITERATIONS}: explain shorter arrays, or read the loops in the "
        "generated code (symdiff grad)",
        tape.source,
        tape.instrs[heaviest].span,
    )


def _map_array(value, make, index: tuple[int, ...] = ()):
    """Nested tuples shaped like `value`, element at `index` replaced by make(index)."""
    if isinstance(value, tuple):
        return tuple(_map_array(item, make, (*index, k)) for k, item in enumerate(value))
    return make(index)


class _Loops:
    """One run of an array program at a point over `algebra` (numbers, or SymPy): the forward sweep
    loop by loop, then the reverse sweep, each loop run again with its steps, as the generated code
    runs them. With `symbols`, every entry's value is symbols(entry, label) instead of being computed."""

    def __init__(self, tape: Tape, levels, partials, algebra, point, lengths, symbols=None):
        self.tape, self.levels, self.partials, self.algebra = tape, levels, partials, algebra
        self.point, self.lengths, self.symbols = point, lengths, symbols
        self.depths = [len(tape.path(index)) for index in range(len(tape.instrs))]
        self.zero = algebra.number(0.0)
        self.values: dict[tuple[int, Label], object] = {}
        self.order: list[tuple[int, Label]] = []  # forward values in the order computed
        self.factors: dict[tuple[int, Label], list] = {}  # a reduction's body value per iteration
        self.runs: dict[int, list[tuple[Label, tuple[int, ...]]]] = defaultdict(list)
        self.adjoints: dict[tuple[int, Label], object] = {}
        self.elements: dict[tuple[str, tuple[int, ...]], object] = {}  # an array element's adjoint
        self.products: dict[int, tuple] = {}  # a product's (prefix, suffixes, position) in its reverse loop
        self.steps: list[_LoopStep] = []

    def run(self) -> _Loops:
        self._forward((), {}, ())
        output = self.tape.output
        if isinstance(output, Ref):
            seed = self.algebra.number(1.0)
            self.adjoints[(output.index, ())] = seed
            if self.tape.instrs[output.index].op == READ:  # the expression is one element: x[0]
                self.elements[self._element(output.index, {})] = seed
        self._reverse((), {}, ())
        return self

    def value(self, atom, label: Label):
        if type(atom) is Const:
            return self.algebra.number(atom.value)
        return self.values[(atom.index, label[: self.depths[atom.index]])]

    def adjoint(self, index: int, label: Label):
        return self.adjoints.get((index, label[: self.depths[index]]), self.zero)

    # The forward sweep

    def _forward(self, path: tuple, env: dict, label: Label) -> None:
        for index in self.levels.get(path, ()):
            instr = self.tape.instrs[index]
            if instr.op in REDUCTIONS:
                value = self._loop(index, path, env, label)
            elif self.symbols is None:
                value = self._compute(index, env, label)
            if self.symbols is not None:
                value = self.symbols(index, label)
            self.values[(index, label)] = value
            self.order.append((index, label))

    def _loop(self, index: int, path: tuple, env: dict, label: Label):
        instr = self.tape.instrs[index]
        loop = self.tape.loops[instr.detail]
        operation = "add" if instr.op == "sum" else "mul"
        total = self.algebra.number(0.0 if instr.op == "sum" else 1.0)
        factors = []
        for k in _range(loop, self.lengths, env):
            inner = (*label, (loop.index, k))
            self._forward((*path, (index, None)), {**env, loop.index: k}, inner)
            factors.append(self.value(instr.args[0], inner))
            total = self._apply(instr, operation, (total, factors[-1]))
        self.factors[(index, label)] = factors
        self.runs[index].append((label, tuple(_range(loop, self.lengths, env))))
        return total

    def _compute(self, index: int, env: dict, label: Label):
        instr = self.tape.instrs[index]
        match instr.op:
            case "input":
                return self.point[instr.name]
            case "read":
                value = self.point[instr.name]
                for position in self._element(index, env)[1]:
                    value = value[position]
                return value
            case "counter":
                return self.algebra.number(float(env[instr.name]))
            case "length":
                return self.algebra.number(float(self.lengths[(instr.name, instr.detail)]))
        return self._apply(instr, instr.op, tuple(self.value(arg, label) for arg in instr.args))

    def _apply(self, instr: Instr, op: str, args: tuple):
        try:
            return self.algebra.apply(op, args)
        except _UNDEFINED as error:
            message = f"{_applied(Instr(op, ()), args)} has no real value at this point ({error})"
            raise DomainError(message, self.tape.source, instr.span) from None

    def _element(self, index: int, env: Mapping[str, int]) -> tuple[str, tuple[int, ...]]:
        instr = self.tape.instrs[index]
        indices, _ = instr.detail
        return instr.name, tuple(evaluate(affine, self.lengths, env) for affine in indices)

    # The reverse sweep

    def _reverse(self, path: tuple, env: dict, label: Label) -> None:
        for index in reversed(self.levels.get(path, ())):
            instr = self.tape.instrs[index]
            if instr.op in LEAVES:
                continue
            if instr.op not in REDUCTIONS:
                for part in self.partials[index]:
                    self._step(index, part, env, label)
                continue
            # A sum's terms are independent: its adjoint loop runs forwards, as the generated code's does.
            loop = self.tape.loops[instr.detail]
            factors = self.factors[(index, label)]
            prefixes, suffixes = self._products(factors) if instr.op == "prod" else ((), ())
            for position, k in enumerate(_range(loop, self.lengths, env)):
                inner, inner_env = (*label, (loop.index, k)), {**env, loop.index: k}
                if instr.op == "prod":
                    self.products[index] = (prefixes[position], suffixes, position)
                for part in self.partials[index]:
                    self._step(index, part, inner_env, inner)
                self._reverse((*path, (index, None)), inner_env, inner)

    def _products(self, factors: list) -> tuple[list, list]:
        """The products of the factors before each position (a running product, as the reverse loop
        keeps it) and from each position to the end (filled backwards, as the buffer is)."""
        one = self.algebra.number(1.0)
        prefixes, suffixes = [one], [one]
        for factor in factors[:-1]:
            prefixes.append(self.algebra.apply("mul", (prefixes[-1], factor)))
        for factor in reversed(factors):
            suffixes.append(self.algebra.apply("mul", (suffixes[-1], factor)))
        return prefixes, suffixes[::-1]

    def _step(self, origin: int, part: tuple, env: dict, label: Label) -> None:
        target, partial_term, _, position = part
        algebra, own = self.algebra, (target, label[: self.depths[target]])
        element = self._element(target, env) if self.tape.instrs[target].op == READ else None
        origin_adjoint = self.adjoint(origin, label)
        try:
            partial = self._term(partial_term, label)
            contribution = algebra.apply("mul", (origin_adjoint, partial))
            self.adjoints[own] = algebra.apply("add", (self.adjoints.get(own, self.zero), contribution))
            if element is not None:
                self.elements[element] = algebra.apply("add", (self.elements.get(element, self.zero), contribution))
        except _UNDEFINED as error:
            instr = self.tape.instrs[origin]
            operands = [self.value(arg, label) for arg in instr.args]
            message = f"{_applied(instr, operands)} has no derivative at this point ({error})"
            raise DomainError(message, self.tape.source, instr.span) from None
        total = self.adjoints[own] if element is None else self.elements[element]
        self.steps.append(
            _LoopStep(
                origin, position, target, element, label, partial_term, partial, origin_adjoint, contribution, total
            )
        )

    def _term(self, term: Term, label: Label):
        match term:
            case Const() | Ref():
                return self.value(term, label)
            case Op(op=op, args=args):
                return self.algebra.apply(op, tuple(self._term(arg, label) for arg in args))
            case Prefix(reduction=reduction):
                return self.products[reduction][0]
            case Suffix(reduction=reduction, shift=shift):
                _, suffixes, position = self.products[reduction]
                return suffixes[position + shift]
        raise AssertionError(f"unexpected term {term!r}")


def _loop_entry(tape: Tape, names: tuple[str, ...], run: _Loops, index: int, label: Label) -> Entry:
    instr = tape.instrs[index]
    return Entry(
        name=names[index],
        op=instr.op,
        definition=definition_text(instr, names, tape),
        operands=tuple(names[arg.index] for arg in instr.args if isinstance(arg, Ref)),
        value=run.values[(index, label)],
        adjoint=None if instr.op in _INTEGERS else run.adjoint(index, label),
        span=tuple(instr.span),
        iteration=label,
    )


def _loop_step(
    names: tuple[str, ...], k: int, step: _LoopStep, symbolic: _LoopStep, symbols: _EntrySymbols
) -> Accumulation:
    target = names[step.target] if step.element is None else element_text(*step.element)
    return Accumulation(
        step=k + 1,
        target=target,
        origin=names[step.origin],
        operand=step.operand,
        partial=term_text(step.partial_term, names),
        partial_value=step.partial,
        origin_adjoint=step.origin_adjoint,
        contribution=step.contribution,
        total=step.total,
        total_formula=_visible_text(symbolic.total, step.label, symbols.origins),
        iteration=step.label,
        read=None if step.element is None else names[step.target],
    )


def _visible_text(formula, label: Label, symbols: Mapping) -> str | None:
    """A running total over entries, when every entry in it is one of the step's own iteration (or
    of an enclosing one, or outside the loops): only then does `w2` name one value."""
    if formula is None:
        return None
    free = formula.free_symbols
    if any(symbols[symbol][1] != label[: len(symbols[symbol][1])] for symbol in free):
        return None
    return formula_text(
        formula.xreplace({symbol: sympy.Symbol(symbols[symbol][0], real=True) for symbol in free}), _TOTAL_CHARS
    )


def _loop_partials(
    programs: Programs, names, run: _Loops, results: _Loops, lengths, result_text
) -> tuple[Partial, ...]:
    """One row per scalar in wrt, one per element of an array in wrt (row by row)."""
    tape, rows = programs.tape, []
    for name in programs.adjoint.wrt:
        if tape.is_array(name):
            ndim = dict(tape.arrays)[name]
            for index in itertools.product(*(range(lengths[(name, dim)]) for dim in range(ndim))):
                key, text = (name, index), element_text(name, index)
                formula = result_text(results.elements.get(key, results.zero))
                rows.append(Partial(text, text, formula, run.elements.get(key, 0.0), name, index))
            continue
        index = tape.input_index(name)
        if index is None:
            rows.append(Partial(name, None, "0", 0.0))
            continue
        formula = result_text(results.adjoint(index, ()))
        rows.append(Partial(name, names[index], formula, run.adjoint(index, ())))
    return tuple(rows)


def _loop_run(tape: Tape, names: tuple[str, ...], run: _Loops, index: int) -> LoopRun:
    instr = tape.instrs[index]
    loop = tape.loops[instr.detail]
    return LoopRun(
        entry=names[index],
        function=instr.op,
        index=loop.index,
        range=range_text(loop.start, loop.stop),
        source=" ".join(tape.source[instr.span[0] : instr.span[1]].split()),
        runs=tuple(run.runs[index]),
    )


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
                element = _ELEMENT.fullmatch(name)  # x_bar[2], as the generated code names it
                return f"{element[1]}_bar[{element[2]}]" if element else f"{name}_bar"
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
    point = ", ".join(style.math(f"{style.name(name)} = {point_text(value)}") for name, value in trace.point)
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
        branches=tuple(style.wrap(line) for line in (_loop_lines if trace.loops else _branch_lines)(trace, style)),
        seed=style.math(_seed(trace, style)),
        why=style.math(f"{style.partial(trace.output, trace.output)} = 1"),
        rule=style.math(rule),
        reverse=_reverse_table(trace, style, partial_header),
        notes=tuple(style.wrap(note) for note in (_loop_notes if looped(trace) else _notes)(trace, style)),
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
    if not trace.loops:
        return _table(("entry", "definition", "value"), tuple(rows), style)
    labels = _iteration_cells([entry.iteration for entry in trace.entries] + [()], style)
    return _table(("iteration", "entry", "definition", "value"), tuple(zip(labels, *zip(*rows))), style)


def looped(trace: Trace) -> bool:
    """Whether the trace is of an array program (its rows carry iterations)."""
    return trace.schema == SCHEMA_ARRAYS


def _iteration_cells(labels: list[Label], style: Style) -> list[str]:
    """`i = 0` where an iteration starts, blank on the rows that follow in the same one."""
    cells, previous = [], ()
    for label in labels:
        cells.append(style.math(label_text(label)) if label and label != previous else "")
        previous = label
    return cells


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
    if trace.loops:
        headers = (headers[0], "iteration", *headers[1:])
        labels = _iteration_cells([step.iteration for step in trace.steps], style)
        full = [(row[0], label, *row[1:]) for row, label in zip(full, labels, strict=True)]
    if style.kind in ("text", "ascii"):
        full = _fit_last_column(headers, full, short, style.width - 3)
    return _table(headers, tuple(full), style)


def with_value(formula: str | None, value: float, style: Style) -> str:
    """`cos(w1) = -0.416`, or just the number when the formula is missing or is itself a number."""
    number = style.number(value)
    if formula is None or not _mentions_names(formula):
        return number
    return f"{style.formula(formula)} = {number}"


def _mentions_names(formula: str) -> bool:
    """Whether a formula reads any name or element (`2 * x[0]`), rather than being a number."""
    try:
        return any(isinstance(node, Var | Item) for node in postorder(parse(formula)))
    except SymdiffError:  # x[i] outside its loop: a name all the same
        return True


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


def _loop_lines(trace: Trace, style: Style) -> tuple[str, ...]:
    """One sentence per loop: which index values it ran at this point."""
    definitions = {entry.name: entry.definition for entry in trace.entries}
    lines = []
    for loop in trace.loops:
        # The definition, not the source: nested for clauses share one text, sum(... for i ... for j ...).
        head = f"{style.math(style.name(loop.entry) + ' = ' + style.formula(definitions[loop.entry]))}:"
        index = style.math(loop.index)
        if len(loop.runs) == 1:
            ((_, values),) = loop.runs
            lines.append(f"{head} {index} runs over {_values(values, style)}.")
            continue
        runs = "; ".join(f"{_values(values, style)} at {style.math(label_text(label))}" for label, values in loop.runs)
        lines.append(
            f"{head} once per outer iteration, {index} runs over {runs} ({loop.iterations} iterations in all)."
        )
    return tuple(lines)


def _values(values: tuple[int, ...], style: Style) -> str:
    if not values:
        return "nothing (an empty range)"
    return (
        style.math(", ".join(map(str, values)))
        if len(values) <= _LISTED
        else style.math(f"{values[0]}, {values[1]}, ..., {values[-1]}")
    )


def _loop_notes(trace: Trace, style: Style) -> tuple[str, ...]:
    """How the loops' adjoints work, and where an adjoint receives several contributions."""
    if not trace.steps:
        return (f"No steps: nothing in {style.math(style.name(trace.output))} depends on the inputs here.",)
    notes = []
    if trace.loops:
        notes.append(
            "The reverse sweep runs each loop again, index by index as the generated code does (a sum's terms are "
            "independent, so their order does not matter); the generated code recomputes a body's values there "
            "instead of storing them. In each iteration the body's adjoints start at 0."
        )
    reads = [step for step in trace.steps if step.read is not None]
    if reads:
        example = reads[0]
        at = f"at {style.math(label_text(example.iteration))}, " if example.iteration else ""
        notes.append(
            f"A read passes what it receives straight into the array's adjoint at the index it read: {at}"
            f"{style.math(style.name(example.read))} read {style.math(style.name(example.target))}, so step "
            f"{example.step} adds into {style.math(style.bar(example.target))}."
        )
    if any(partial.startswith(f"{step.origin}_before") for step in trace.steps for partial in [step.partial]):
        notes.append(
            "In a product's reverse loop, wk_before is the product of its factors before the index and "
            "wk_after that of the factors after it: the product of every other factor, without dividing by one "
            "(exact when a factor is 0)."
        )
    depth = {entry.name: len(entry.iteration) for entry in trace.entries}
    by_target: dict[tuple, list[Accumulation]] = defaultdict(list)
    for step in trace.steps:
        own = () if step.read is not None else step.iteration[: depth.get(step.target, 0)]
        by_target[(step.target, own)].append(step)
    for (target, own), steps in by_target.items():
        if len(steps) < 2:
            continue
        numbers = _listed([str(step.step) for step in steps])
        users = _listed([_use(step, style) for step in steps])
        where = f" at {style.math(label_text(own))}" if own else ""
        notes.append(
            f"{style.math(style.bar(target))}{where} adds up {len(steps)} contributions (steps {numbers}): {users}."
        )
    return tuple(notes)


def _use(step: Accumulation, style: Style) -> str:
    """`w2 at i = 0` (through the read w1, when the target is an element)."""
    text = style.math(style.name(step.origin))
    if step.iteration:
        text += f" at {style.math(label_text(step.iteration))}"
    if step.read is not None:
        text += f" via {style.math(style.name(step.read))}"
    return text


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
    if match := _ELEMENT.fullmatch(name):  # an array element: x[2] is x_{2}
        return f"{_latex_name(match[1])}_{{{_latex_condition(match[2])}}}"
    if len(name) == 1:
        return name
    if name in _GREEK:
        return "\\" + name
    return r"\mathit{" + name.replace("_", r"\_") + "}"


def _latex_bar(name: str) -> str:
    if match := _SUBSCRIPTED.fullmatch(name):
        return rf"\bar{{{match[1]}}}_{{{match[2]}}}"
    if match := _ELEMENT.fullmatch(name):
        return f"{_latex_bar(match[1])}_{{{_latex_condition(match[2])}}}"
    if len(name) == 1:
        return rf"\bar{{{name}}}"
    return rf"\overline{{{_latex_name(name)}}}"


def _latex_number(text: str) -> str:
    mantissa, _, exponent = text.partition("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}" if exponent else text


def _latex_formula(text: str) -> str:
    """symdiff syntax -> LaTeX: the table's notation decides operators and parentheses."""
    if match := _REDUCTION.fullmatch(text):  # an array program's sum(w2 for i in range(len(x)))
        function, body, index, bounds = match.groups()
        over = rf"{index} \in \operatorname{{range}}({_latex_condition(bounds)})"
        return rf"\{function}_{{{over}}} {_latex_formula(body)}"
    out: list[tuple[str, int]] = []
    # Elements (x[i + 1]) stand in as names while the rest is parsed: x[i] alone is no expression.
    elements: dict[str, str] = {}

    def stand_in(found: re.Match) -> str:
        elements[f"_element{len(elements)}"] = _latex_name(found[0])
        return f"_element{len(elements) - 1}"

    text = _ELEMENT.sub(stand_in, text)
    try:
        tree = parse(text)
    except SymdiffError:  # a condition ("w1 > 0", "w3 and w5") is not an expression
        return _latex_condition(text, elements)
    for node in postorder(tree):
        match node:
            case Num(value=value):
                out.append((_latex_number(number_text(value, True)), ATOM))
            case Var(name=name):
                out.append((elements.get(name) or _latex_name(name), ATOM))
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


def _latex_condition(text: str, elements: Mapping[str, str] | None = None) -> str:
    """A condition over entries and numbers, word by word: names as names, and/or/not as logic (and
    `elements` standing in for array elements)."""
    known = {**_LATEX_LOGIC, **(elements or {})}
    return _CONDITION_WORD.sub(lambda word: known.get(word[0]) or _latex_name(word[0]), text)


_ELEMENT = re.compile(r"([A-Za-z_]\w*)\[([^\[\]]*)\]")
_REDUCTION = re.compile(r"(sum|prod)\((\S+) for (\w+) in range\((.*)\)\)")


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
    "len": r"\operatorname{len}",
}


# JSON


def _document(trace: Trace) -> dict:
    seed = None if trace.output_entry is None else {"adjoint": trace.output_entry, "value": 1.0}
    if looped(trace):
        return _array_document(trace, seed)
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


def _array_document(trace: Trace, seed: dict | None) -> dict:
    """Schema /3: /2's keys (branches always []), arrays as lists in the point, the loops, an iteration
    on every forward and reverse record, the read behind an element's step, one gradient row per element."""
    return {
        "schema": SCHEMA_ARRAYS,
        "expression": trace.expression,
        "point": {name: _listed_value(value) for name, value in trace.point},
        "value": trace.value,
        "output": {"name": trace.output, "entry": trace.output_entry, "definition": trace.output_definition},
        "loops": [_loop_record(loop) for loop in trace.loops],
        "forward": [{**_entry_record(entry), "iteration": dict(entry.iteration)} for entry in trace.entries],
        "branches": [],
        "seed": seed,
        "reverse": [
            {**_step_record(step), "iteration": dict(step.iteration), "read": step.read} for step in trace.steps
        ],
        "gradient": [
            {
                "wrt": p.wrt,
                "entry": p.entry,
                "formula": p.formula,
                "value": p.value,
                "array": p.array,
                "index": list(p.index),
            }
            for p in trace.partials
        ],
    }


def _listed_value(value):
    return [_listed_value(item) for item in value] if isinstance(value, tuple) else value


def _loop_record(loop: LoopRun) -> dict:
    return {
        "entry": loop.entry,
        "function": loop.function,
        "index": loop.index,
        "range": loop.range,
        "source": loop.source,
        "runs": [{"outer": dict(label), "values": list(values)} for label, values in loop.runs],
        "iterations": loop.iterations,
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


__all__ = [
    "Accumulation",
    "Branch",
    "Entry",
    "FORMATS",
    "LoopRun",
    "MAX_ITERATIONS",
    "Partial",
    "SCHEMA",
    "SCHEMA_ARRAYS",
    "Trace",
    "explain",
    "format_number",
]
