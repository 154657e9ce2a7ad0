"""numpy: Program -> the source of a standalone NumPy module (imports only numpy).

The NumPy printer: the core's Program (program.build_program; derivatives.jvp_program,
jacobian_program, hessian_program) decides what each function computes, in which branch, and what
it returns; this module prints it. Each function runs elementwise on arrays that broadcast together
(scalars too). NumPy arrays are processed in cache-sized blocks by three-address code whose every
ufunc writes into a reused buffer (`out=`), ordered so that a value is read soon after it is
computed; any other array type (Dask, ...) runs through the same code with no buffers, as plain
ufunc calls.

A where() branch runs only on the elements that take it, in the value and in every derivative: the
lines inside an If of the Program compute on values compressed to its elements, and merge and
update scatter results back (on other array types: safe substitutes; see templates/numpy_runtime.py).

An array program (x[i], sums over ranges) prints otherwise: its functions take the arrays, and each
loop becomes whole-array statements over its iterations (see "array programs" below); that holds for
its gradient, jvp, Hessian-vector product and a vector output's Jacobian alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from ..core import primitives
from ..core.adjoint import Adjoint, ArrayBar, Bar, Op, Prefix, Suffix
from ..core.bounds import combine
from ..core.expr import Affine, Length
from ..core.forward import Dot
from ..core.printing import affine_text, format_tree, number_text
from ..core.program import (
    GRADIENT_ENTRIES,
    Append,
    Assign,
    Check,
    Entry,
    Flag,
    Header,
    If,
    Index,
    Loop,
    Matrix,
    Path,
    Program,
    Rows,
    Scalar,
    Section,
    Suffixes,
    Vector,
    buffer_length,
    build_program,
    result_terms,
)
from ..core.tape import COUNTER, INPUT, LENGTH, READ, REDUCTIONS, Const, Ref, Tape
from ..errors import SymdiffError
from ..resources import templates
from ..version import __version__
from .names import Names, assign_names
from .python import NUMBERED, Printer

# Points per block: the largest power of two whose live buffers fit in 8 MiB, within these bounds.
# A ufunc call has a fixed cost, so short blocks pay in overhead; long ones pay where rows leave the
# L2 cache. A program with more buffers than 8 MiB holds at 1,024 points (a deep chain, all of whose
# forward values the reverse sweep reads) gets 1,024. The measurements behind these numbers are in
# benchmarks/RESULTS.md ("NumPy block size").
CACHE_BYTES = 8 << 20
MIN_BLOCK, MAX_BLOCK = 1024, 16384

FUNCTIONS = GRADIENT_ENTRIES  # a gradient module's entry points, in order
DERIVATIVE_ENTRIES = ("jvp", "jacobian", "value_and_jacobian", "hessian", "hvp")

# The ufuncs behind Python's operators on arrays (the table spells arithmetic as operators).
_INFIX_UFUNCS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "**": "power"}
_PREFIX_UFUNCS = {"-": "negative"}
_CALL = re.compile(r"numpy\.(\w+)\((.*)\)")
_OWN = ("outputs", "buffers", "values", "out", "b", "t", "k") + tuple(
    f"_{name}_block" for name in GRADIENT_ENTRIES + DERIVATIVE_ENTRIES
)
# The runtime's functions that generated lines call (templates/numpy_runtime.py, included verbatim):
# where an input or a definition takes one's name, the module calls it by an alias.
RUNTIME = ("_run", "_branch", "_enter", "_safe", "_merge", "_update")

# With a - b = -(b - a) and the rows' parity, cos(x1 - x2) and cos(x2 - x1) are one ufunc call.
_COMMUTATIVE = frozenset({"numpy.add", "numpy.multiply"})

# Names symdiff makes (x_bar, x_bar1, w3_dot2): no user name has that shape, so minus_x_bar is free.
_DERIVED_NAME = re.compile(r".*_(bar|dot)\d*")

# What each kind of module computes, for its docstring.
_TITLES = {
    "gradient": "Value and gradient",
    "jvp": "Directional derivative (forward mode)",
    "jacobian": "Jacobian ({mode} mode)",
    "hessian": "Hessian (forward over reverse)",
}


@dataclass(frozen=True, slots=True)
class Line:
    target: str
    rhs: str
    note: str  # "" or "  # comment"


@dataclass(frozen=True, slots=True)
class Function:
    name: str  # the public entry point: f, grad, value_and_grad, jvp, jacobian, ...
    doc: str
    signature: str  # the params, then the keyword-only out=None
    points: str  # the params as a tuple: "(x1, x2)"
    block: str  # the name of its body on one block of points
    block_doc: str
    block_params: str  # the params, then the outputs and buffers parameters
    block_size: str  # points per block
    buffer_count: str
    outputs: str  # how many results
    unpack: tuple[str, ...]  # "b0, b1, b2 = buffers", or nothing
    title: str  # what the lines compute
    lines: tuple[Line, ...]
    result: str  # what the body returns: "[x1_bar, x2_bar]"
    shape_result: str  # the entry point's return value, made from the results `values`


@dataclass(frozen=True, slots=True)
class Module:
    docstring: str
    names: dict[str, str]  # the module's own names, by role (renamed if an input takes one)
    aliases: tuple[str, ...]  # "_run_ = _run": the runtime's functions, where renamed
    constants: tuple[Line, ...]  # "k1 = 2.0": the ufuncs' constant operands, as 0-d arrays
    functions: tuple[Function, ...]


def render_numpy(adjoint: Adjoint, functions: tuple[str, ...] = FUNCTIONS) -> str:
    """The gradient module's text; `functions` ("f" or "grad" alone) limits it to that entry point,
    which is all a first call needs (value_and_grad may run f's and grad's bodies, so it takes all)."""
    return program_text(build_program(adjoint, functions if functions in (("f",), ("grad",)) else FUNCTIONS))


def program_text(program: Program) -> str:
    """The NumPy module printing `program` (a gradient's, or a jvp, Jacobian or Hessian program)."""
    if is_array_program(program):
        return array_program_text(program)
    module = numpy_module(program)
    return (
        templates()
        .get_template("numpy.py.j2")
        .render(
            docstring=module.docstring,
            aliases=module.aliases,
            names=module.names,
            constants=module.constants,
            functions=module.functions,
        )
    )


def numpy_module(program: Program) -> Module:
    """The render context of `program`: one function per entry, in order. The only import is numpy
    (every row's NumPy spelling is a numpy function; the runtime imports it), so operations(program)
    adds none."""
    tape, header = program.tape, program.header
    names = assign_names(tape, header.wrt)
    own = _own_names(set(names.values))
    aliases = tuple(f"{own[name]} = {name}" for name in RUNTIME if own[name] != name)
    body = _Body(tape, names, own)
    printers: dict[tuple[bool, bool], Printer] = {}
    functions: dict[str, Function] = {}
    for entry in program.entries:  # constants are numbered as printed: the first entry's first
        numbered = NUMBERED.get(entry.name, (False, False))
        printer = printers.get(numbered)
        if printer is None:
            printer = printers[numbered] = Printer(tape, names, "python", *numbered)
        functions[entry.name] = body.function(entry, printer)
    if set(GRADIENT_ENTRIES) <= functions.keys():
        f, grad, both = (functions[name] for name in GRADIENT_ENTRIES)
        if int(both.buffer_count) > max(16, 2 * int(grad.buffer_count) + 2 * int(f.buffer_count)):
            functions["value_and_grad"] = body.composite(both, f, grad)
    return Module(_docstring(header, names), own, aliases, _constants(body), tuple(functions.values()))


def out_keyword(adjoint: Adjoint) -> str:
    """The entry points' keyword for arrays to write into: `out`, unless an input or a definition takes that name."""
    return _own_names(set(assign_names(adjoint.tape, adjoint.wrt).values))["out"]


def _docstring(header: Header, names: Names) -> str:
    """The module docstring, from the Program's header: the "Generated by symdiff" line first (where
    symdiff looks for it before overwriting a file), then what the module computes, of what."""
    lines = [line.strip() for line in header.source.splitlines() if line.strip()]
    if len(lines) == 1:  # a gradient's f = ...; the other kinds may have several outputs
        one = " ".join(header.source.split())
        expression = f" f = {one}" if header.kind == "gradient" else f"\n\n    {one}"
    else:  # a program with definitions: one statement per line, as the user wrote them
        statements = "\n".join(f"    {line}" for line in lines)
        expression = f" the program\n\n{statements}" if header.kind == "gradient" else f"\n\n{statements}"
    inputs = ", ".join(
        name if names.params[name] == name else f"{name} (parameter {names.params[name]})" for name in header.inputs
    )
    if header.kind == "gradient":
        wrt = f"Gradient with respect to: {', '.join(header.wrt) or 'nothing'}.\n"
    else:
        wrt = f"Derivatives with respect to: {', '.join(header.wrt)}.\n" if header.wrt else ""
    return (
        f"Generated by symdiff {__version__}, NumPy backend. Do not edit: regenerate it with symdiff.\n\n"
        f"{_TITLES[header.kind].format(mode=header.mode)} of{expression}\n\n"
        f"Inputs, in order: {inputs or 'none'}.\n{wrt}"
    )


def _constants(body: _Body) -> tuple[Line, ...]:
    return tuple(Line(name, text, "") for text, name in body.constants.items())


def _own_names(taken: set[str]) -> dict[str, str]:
    """Names the module defines besides the user's (`taken`: inputs and definitions, which the block
    functions assign as locals), renamed with trailing underscores on a clash. Buffer rows,
    temporaries and constants are numbered (b0, t1, k1), so they avoid any user name of that shape too."""
    numbered = {match.group(1) for name in taken if (match := re.fullmatch(r"(.*?)\d+", name))}
    own = {}
    for base in _OWN + RUNTIME:
        name = base
        while name in taken or name in numbered:
            name += "_"
        own[base] = name
    return own


def _block_size(buffers: int) -> int:
    size = MAX_BLOCK
    while size > MIN_BLOCK and (buffers + 2) * size * 8 > CACHE_BYTES:
        size //= 2
    return size


# --- three-address code -------------------------------------------------------------------------

# The chain rule's accumulation, as table rows: w_bar += term is add, w_bar -= term is sub.
_ACCUMULATE = {"+=": "add", "-=": "sub"}

# Instruction selection for a negated operand, by NumPy ufunc: which ufunc to call instead, whether
# to swap the operands, and whether the result is then negated. All exact in IEEE arithmetic
# (-a + b is b - a; -a * b is -(a * b)), so a negation is folded into its reader, never computed.
_N, _Y = False, True
_SIGNS = {
    "numpy.add": {
        (_N, _N): ("add", _N, _N),
        (_N, _Y): ("subtract", _N, _N),
        (_Y, _N): ("subtract", _Y, _N),
        (_Y, _Y): ("add", _N, _Y),
    },
    "numpy.subtract": {
        (_N, _N): ("subtract", _N, _N),
        (_N, _Y): ("add", _N, _N),
        (_Y, _N): ("add", _N, _Y),
        (_Y, _Y): ("subtract", _Y, _N),
    },
    "numpy.multiply": {
        (_N, _N): ("multiply", _N, _N),
        (_N, _Y): ("multiply", _N, _Y),
        (_Y, _N): ("multiply", _N, _Y),
        (_Y, _Y): ("multiply", _N, _N),
    },
    "numpy.divide": {
        (_N, _N): ("divide", _N, _N),
        (_N, _Y): ("divide", _N, _Y),
        (_Y, _N): ("divide", _N, _Y),
        (_Y, _Y): ("divide", _N, _N),
    },
    "numpy.square": {(_N,): ("square", _N, _N), (_Y,): ("square", _N, _N)},
}


@dataclass(frozen=True, slots=True)
class _Arg:
    """An operand: a value id (int), an input's name or literal text (str), or a constant (float);
    `negated` when the operand is minus that (constants carry their sign instead)."""

    base: int | str | float
    negated: bool = False

    def flipped(self) -> _Arg:
        if isinstance(self.base, float):
            return _Arg(-self.base)
        return _Arg(self.base, not self.negated)


@dataclass(frozen=True, slots=True)
class _Instr:
    target: int
    ufunc: str | None  # "numpy.multiply"; None when `template` computes a fresh array instead
    template: str  # the operands, or the whole call, with positional placeholders {0}, {1}
    args: tuple[int | str | float, ...]
    note: str


class _Program:
    """Three-address code over numbered values; a value is named for the reader (w3, x1_bar, t2).
    A call the program already makes, up to operand order or a sign, is made once (value numbering
    after the tape's own sharing, which shares even functions of x2 - x1 and x1 - x2 but leaves odd
    ones apart: at x1 = x2, sin(x2 - x1) is +0.0 and -sin(x1 - x2) is -0.0).

    Every value belongs to a branch, a path as in Tape.paths (() for all elements): a value of a
    branch holds only the elements that take it, and is computed by a fresh call (buffers hold
    values of all elements). A value read in a branch inside its own is entered into it first."""

    def __init__(
        self, tape: Tape, printer: Printer, own: dict[str, str], constants: dict[str, str], params: list[str],
        spellings: dict[tuple, tuple],
    ):
        self.tape, self.printer, self.names, self.own, self.constants = tape, printer, printer.names, own, constants
        self.spellings = spellings  # (row, squares) -> (ufunc, template, substitutes), shared by the functions
        self.params = frozenset(params)  # the inputs' and directions' names: values of every element
        self.instrs: list[_Instr] = []
        self.labels: list[str | None] = []  # value id -> printed name
        self.current: dict[str, _Arg] = {}  # a forward value's, adjoint's or tangent's name -> what holds it
        self.known: dict[tuple, int] = {}  # (ufunc, template, operands, path) -> the value computing it
        self.path_of: dict[int, tuple] = {}  # value id -> the branch it is a value of
        self.home: dict[str, tuple] = {}  # an adjoint's or tangent's name -> the branch it was assigned in
        self.spaces: dict[tuple, int | str] = {(): "None"}  # branch -> the value naming its elements
        self.entered: dict[tuple, int | str] = {}  # (value, branch) -> the value entered into that branch

    def operand(self, term) -> _Arg:
        """An atom of a term: a constant, or what holds a value, an adjoint, a tangent or a parameter."""
        kind = type(term)
        if kind is _Arg:
            return term
        if kind is Const:
            return _Arg(float(term.value))
        if kind is not Ref and kind is not Bar and kind is not Dot:
            raise AssertionError(f"not an atom: {term!r}")
        name = self.printer.leaf(term)
        value = self.current.get(name)
        if value is None:
            if name not in self.params:
                raise AssertionError(f"{name} is read before it is assigned")
            return _Arg(name)
        return value

    def value(self, term, path: tuple = ()) -> _Arg:
        """A term of branch `path`: an atom, or an operation applied."""
        return self.apply(term.op, term.args, path=path) if type(term) is Op else self.operand(term)

    def apply(self, op: str, args: tuple, label: str | None = None, note: str = "", path: tuple = ()) -> _Arg:
        """Emit op(args) in branch `path`, nested terms first, each into its own temporary; return the result."""
        row = primitives.lookup(op)
        if row.branches:
            return self.where(row, args, label, note, path)
        operands: list[_Arg] = []
        for position, arg in enumerate(args):
            if position in row.integer_params:
                operands.append(_Arg(number_text(arg.value, integral=True)))
            elif position in row.boolean_params and isinstance(arg, Const):  # `c & 0.0` is a TypeError
                operands.append(_Arg(str(bool(arg.value))))
            elif isinstance(arg, Op):
                operands.append(self.apply(arg.op, arg.args, self.entry_label(arg, path), path=path))
            else:
                operands.append(self.operand(arg))
        # The call depends on the operands only for a square (x ** 2 is numpy.square).
        key = (op, len(operands) > 1 and operands[1].base == "2")
        spelled = self.spellings.get(key)
        if spelled is None:
            ufunc, template = _ufunc(row, [self.text(a.base) for a in operands])
            # Off its branch, an operand of a value of all elements (other array types) is this point of the row's domain.
            substitutes = None if row.boolean else tuple(_substitute(low, high) for low, high in row.domain)
            spelled = self.spellings[key] = (ufunc, template, substitutes)
        ufunc, template, substitutes = spelled
        if ufunc == "numpy.negative":
            return operands[0].flipped()
        negated = False
        signs = tuple(a.negated for a in operands)
        if ufunc in _SIGNS and signs in _SIGNS[ufunc]:
            name, swap, negated = _SIGNS[ufunc][signs]
            ufunc = f"numpy.{name}"
            operands = [_Arg(a.base) for a in (reversed(operands) if swap else operands)]
            if swap and substitutes:
                substitutes = substitutes[::-1]
        elif ufunc is not None and row.parity and operands[0].negated:  # f(-x) from f(x)
            negated = row.parity == "odd"
            operands = [_Arg(operands[0].base)]
        if negated and label is not None:
            # The buffer holds minus the named value: say so (names ending _bar are symdiff's).
            label = f"minus_{label}" if label.endswith("_bar") else None
        value = self.emit(ufunc, template, operands, label, note, path, substitutes)
        return _Arg(value.base, negated != value.negated)

    def entry_label(self, term: Op, path: tuple) -> str | None:
        """The name of the forward value `term` computes, where it is one (the Program computes a
        value that one reverse term alone reads inside that term), so the line reads as w3 = ..."""
        if path:
            return None
        for arg in term.args:
            if type(arg) is not Ref and type(arg) is not Const:
                return None
        index = self.tape.find(term.op, term.args)
        return None if index is None else self.names.value(index)

    def emit(
        self,
        ufunc: str | None,
        template: str,
        operands: list[_Arg],
        label: str | None,
        note: str,
        path: tuple = (),
        substitutes: tuple[float, ...] | None = None,
    ) -> _Arg:
        """The value of ufunc(operands) in branch `path`: an earlier one if the program has it, up to a sign."""
        bases = tuple(self.materialised(a, path=path) for a in operands)
        if ufunc in _COMMUTATIVE:
            bases = tuple(sorted(bases, key=_order))
        key = (ufunc, template, _exact(bases), path)
        if ufunc is not None and key in self.known:
            return _Arg(self.known[key])
        if ufunc == "numpy.subtract" and (ufunc, template, _exact(bases[::-1]), path) in self.known:
            return _Arg(self.known[ufunc, template, _exact(bases[::-1]), path], True)
        if path:  # a fresh array of the branch's elements; its operands are made safe for other array types
            template, bases = self.in_branch(template, bases, path, substitutes)
            template = template if ufunc is None else f"{ufunc}({template})"
        target = self.push(None if path else ufunc, template, bases, label, note, path)
        if ufunc is not None:
            self.known[key] = target
        return _Arg(target)

    def push(self, ufunc: str | None, template: str, bases: tuple, label: str | None, note: str, path: tuple) -> int:
        self.labels.append(label)  # a temporary (None) is numbered when it is printed
        target = len(self.labels) - 1
        self.instrs.append(_Instr(target, ufunc, template, bases, note))
        self.path_of[target] = path
        return target

    def in_branch(self, template: str, bases: tuple, path: tuple, substitutes) -> tuple[str, tuple]:
        """The call's operands read through _safe (values, not constants), with the branch as an operand."""
        if not substitutes:
            return template, bases
        space = len(bases)
        safe = self.own["_safe"]

        def wrapped(match: re.Match) -> str:
            position = int(match.group(1))
            if not self.is_value(bases[position]):
                return match.group(0)
            return f"{safe}({{{space}}}, {{{position}}}, {number_text(substitutes[position])})"

        return re.sub(r"\{(\d+)\}", wrapped, template), (*bases, self.space(path))

    def is_value(self, base: int | str | float) -> bool:
        """A computed value or an input, not a constant or literal text."""
        return isinstance(base, int) or (isinstance(base, str) and base in self.params)

    def materialised(self, arg: _Arg, label: str | None = None, path: tuple = ()) -> int | str | float:
        """The operand as a value of branch `path`: a negation still pending is computed here."""
        base = self.enter(arg.base, path)
        if not arg.negated:
            return base
        return self.emit("numpy.negative", "{0}", [_Arg(base)], label, "", path).base

    def enter(self, base: int | str | float, path: tuple) -> int | str | float:
        """`base`, a value of a branch enclosing `path` (or of `path` itself), as a value of `path`:
        compressed one branch at a time, each step shared."""
        if not path and (type(base) is not int or not self.path_of[base]):
            return base  # most often: a value of every element, read outside every branch
        if not self.is_value(base):
            return base
        original = base
        done = self.entered.get((original, path))
        if done is not None:
            return done
        source = self.path_of.get(base, ()) if isinstance(base, int) else ()
        if not set(source) <= set(path):
            raise AssertionError(f"a value of branch {source} read in branch {path}")
        # Branch (c3,) holds branch (c2, c3)'s elements in another order of tests: lifted to the branches
        # both are in, the value's elements land in place, then it is entered.
        common = _common(source, path)
        start = common + 1
        # A value read in nested branches is entered level by level, each level remembered: a branch
        # 1,000 where()s deep costs one step per level, not a walk from the top each time.
        above = self.entered.get((original, path[:-1])) if len(path) - 1 > common else None
        if above is not None:
            base, start = above, len(path)
        else:
            base = self.lift(base, source, common)
        for depth in range(start, len(path) + 1):
            inner = path[:depth]
            key = ("enter", _exact((base,)), inner)
            if key not in self.known:
                template = f"{self.own['_enter']}({{0}}, {{1}})"
                self.known[key] = self.push(None, template, (self.space(inner), base), None, "", inner)
            base = self.entered[original, inner] = self.known[key]
        return base

    def lift(self, base: int | str | float, source: tuple, depth: int) -> int | str | float:
        """`base`, a value of branch `source`, as a value of branch source[:depth] that holds 0.0 on
        the elements outside `source` (which no reader looks at)."""
        for level in range(len(source), depth, -1):
            base = self.helper("_update", (self.space(source[:level]), 0.0, base), None, "", source[: level - 1])
        return base

    def space(self, path: tuple) -> int | str:
        """The value naming the elements of branch `path` (None: all)."""
        if path not in self.spaces:
            outer = self.space(path[:-1])
            condition, taken = path[-1]
            test = self.materialised(self.operand(Ref(condition)), path=path[:-1])
            template = f"{self.own['_branch']}({{0}}, {{1}}, {taken})"
            self.spaces[path] = self.push(None, template, (outer, test), None, "", path[:-1])
        return self.spaces[path]

    def where(self, row: primitives.Primitive, args: tuple, label: str | None, note: str, path: tuple) -> _Arg:
        """A branch row in branch `path`: each branch's operand computed in that branch alone, then merged."""
        (test,) = [arg for arg, taken in zip(args, row.branches) if taken is None]
        if isinstance(test, Const):  # a branch known at compile time
            (arg,) = [arg for arg, taken in zip(args, row.branches) if taken is bool(test.value)]
            return self.apply(arg.op, arg.args, label, note, path) if isinstance(arg, Op) else self.operand(arg)
        branches = [(arg, path + ((test.index, taken),)) for arg, taken in zip(args, row.branches) if taken is not None]
        if [inner[-1][1] for _, inner in branches] != [True, False]:
            raise AssertionError(f"{row.name}: expected the branch taken, then the other")
        values = []
        for arg, inner in branches:
            operand = self.apply(arg.op, arg.args, path=inner) if isinstance(arg, Op) else self.operand(arg)
            values.append(self.materialised(operand, path=inner))
        bases = (*(self.space(inner) for _, inner in branches), *values)
        return _Arg(self.helper("_merge", bases, label, note, path))

    def helper(self, name: str, bases: tuple, label: str | None, note: str, path: tuple) -> int:
        """A call of the runtime's function `name` in branch `path`: of all elements, it writes into a
        buffer (its last positional argument), like a ufunc."""
        function = self.own[name]
        template = ", ".join(f"{{{i}}}" for i in range(len(bases)))
        key = (name, template, _exact(bases), path)
        if key not in self.known:
            if path:
                self.known[key] = self.push(None, f"{function}({template})", bases, label, note, path)
            else:
                self.known[key] = self.push(function, template, bases, label, note, path)
        return self.known[key]

    def scatter(self, inner: _Arg, old: _Arg, home: tuple, path: tuple, label: str | None, note: str) -> _Arg:
        """`old`, a value of branch `home`, with the elements of branch `path` (inside it) replaced by
        `inner`: an adjoint after a contribution made in a branch."""
        value = self.materialised(inner, path=path)
        common = _common(home, path)  # home itself, unless `path` tests home's conditions in another order
        old_base = self.lift(self.materialised(old, path=home), home, common)
        for depth in range(len(path), common, -1):
            outer = path[: depth - 1]
            bases = (self.space(path[:depth]), self.enter(old_base, outer), value)
            last = depth - 1 == common == len(home)
            value = self.helper("_update", bases, label if last else None, note if last else "", outer)
        return _Arg(self.enter(value, home))

    def text(self, base: int | str | float) -> str:
        if isinstance(base, float):
            return number_text(base)
        return self.labels[base] if isinstance(base, int) else base

    def argument(self, base: int | str | float) -> str:
        """An operand of a ufunc call: a constant is a module-level 0-d array (a Python float
        costs each call a conversion, about as long as the call itself on a small block)."""
        if not isinstance(base, float):
            return self.text(base)
        text = number_text(base)  # by its text: 0.0 and -0.0 are equal as keys, not as constants
        if text not in self.constants:
            self.constants[text] = f"{self.own['k']}{len(self.constants) + 1}"
        return self.constants[text]


def _common(a: tuple, b: tuple) -> int:
    """The length of the longest common prefix of two branches' paths."""
    length = 0
    while length < min(len(a), len(b)) and a[length] == b[length]:
        length += 1
    return length


def _substitute(low: float, high: float) -> float:
    """A point of a row's sampling domain where it is finite and quiet: 1.0, or the middle."""
    return 1.0 if low <= 1.0 <= high else (low + high) / 2


def _exact(bases: tuple) -> tuple:
    """Operands as a lookup key that tells -0.0 from 0.0 (x * -0.0 is not x * 0.0)."""
    return tuple(number_text(base) if isinstance(base, float) else base for base in bases)


def _order(base: int | str | float) -> tuple:
    """A total order on operands, for commutative ufuncs: constants, inputs, then values."""
    return (1, base, 0.0) if isinstance(base, str) else (2, "", float(base)) if isinstance(base, int) else (0, "", base)


def _ufunc(row: primitives.Primitive, operands: list[str]) -> tuple[str | None, str]:
    """The NumPy ufunc computing this row, read off the row's NumPy spelling, so that its result can
    be written into a buffer; any other spelling stays a template that makes a fresh array."""
    spelling = row.numpy
    positional = {param: "{" + str(i) + "}" for i, param in enumerate(row.params)}
    if row.notation.kind == "infix" and spelling in _INFIX_UFUNCS:
        if spelling == "**" and operands[1] == "2":
            return "numpy.square", "{0}"  # what NumPy's own x ** 2 does: a multiply, not pow()
        return f"numpy.{_INFIX_UFUNCS[spelling]}", "{0}, {1}"
    if row.notation.kind == "prefix" and spelling in _PREFIX_UFUNCS:
        return f"numpy.{_PREFIX_UFUNCS[spelling]}", "{0}"
    call = _CALL.fullmatch(spelling)
    if call and call.group(1) in _numpy_ufuncs():
        arguments = call.group(2).format(**positional)
        if arguments == ", ".join(positional.values()):
            return f"numpy.{call.group(1)}", arguments
    if row.notation.kind == "infix":
        return None, f"{{0}} {spelling} {{1}}"
    if row.notation.kind == "prefix":
        return None, f"{spelling}{{0}}"
    return None, spelling.format(**positional)


@cache
def _numpy_ufuncs() -> frozenset[str]:
    """The names of NumPy's ufuncs (rendering for NumPy needs NumPy installed)."""
    try:
        import numpy
    except ImportError:
        raise SymdiffError("the numpy backend needs NumPy: pip install numpy") from None
    return frozenset(name for name in dir(numpy) if isinstance(getattr(numpy, name), numpy.ufunc))


class _Body:
    """Builds the block bodies of one module (they share the names and the constants)."""

    def __init__(self, tape: Tape, names: Names, own: dict[str, str]):
        self.tape, self.names, self.own = tape, names, own
        self.constants: dict[str, str] = {}  # literal -> name, shared by the functions, numbered as first printed
        self.spellings: dict[tuple, tuple] = {}

    def function(self, entry: Entry, printer: Printer) -> Function:
        own = self.own
        params = [_param(param, printer.names) for param in entry.params]
        program = _Program(self.tape, printer, own, self.constants, params, self.spellings)
        for path, node in _assigns(entry.body):
            _assign(program, node, path)
        terms = result_terms(entry.results)
        outputs = [program.materialised(program.value(term), _label(printer, term)) for term in terms]
        lines, count = _allocate(program, _schedule(program.instrs, outputs), outputs)
        unpack = [_unpack([f"{own['b']}{i}" for i in range(count)], own["buffers"])] if count else []
        return Function(
            name=entry.name,
            doc=f"{entry.doc}\n\n    Elementwise over arrays that broadcast together; `{own['out']}`: "
            f"{_room(len(outputs))} to write {'it' if len(outputs) == 1 else 'them'} into.",
            signature=", ".join([*params, "*", f"{own['out']}=None"]),
            points=_tuple(params),
            block=own[f"_{entry.name}_block"],
            block_doc=f"{entry.name} on one block: each ufunc writes into a row of `{own['outputs']}` or "
            f"`{own['buffers']}` (rows of None: new arrays).",
            block_params=", ".join([*params, own["outputs"], own["buffers"]]),
            block_size=str(_block_size(count)),
            buffer_count=str(count),
            outputs=str(len(outputs)),
            unpack=tuple(unpack),
            title=_title(entry, printer),
            lines=tuple(lines),
            result=f"[{', '.join(program.text(value) for value in outputs)}]",
            shape_result=_shaped(entry.results, own["values"], len(outputs)),
        )

    def composite(self, both: Function, f: Function, grad: Function) -> Function:
        """value_and_grad as f's block then grad's: sharing the forward sweep would keep every
        forward value alive until the reverse sweep reads it, more buffers than the caches hold."""
        outputs, buffers = self.own["outputs"], self.own["buffers"]
        params = both.block_params.split(", ")[:-2]
        arguments = ", ".join(params + [""])
        first = f"{f.block}({arguments}{outputs}[:1], {buffers}[:{f.buffer_count}])"
        second = f"{grad.block}({arguments}{outputs}[1:], {buffers}[:{grad.buffer_count}])"
        count = max(int(f.buffer_count), int(grad.buffer_count))
        return Function(
            name=both.name,
            doc=f"Value and gradient (per block, the sweeps of f and of grad).\n\n    Elementwise over arrays that "
            f"broadcast together; `{self.own['out']}`: {_room(int(both.outputs))} to write them into.",
            signature=both.signature,
            points=both.points,
            block=both.block,
            block_doc=f"value_and_grad on one block: f's sweep, then grad's (one shared sweep would "
            f"keep {both.buffer_count} buffers alive).",
            block_params=both.block_params,
            block_size=str(_block_size(count)),
            buffer_count=str(count),
            outputs=both.outputs,
            unpack=(),
            title="",
            lines=(),
            result=f"{first} + {second}",
            shape_result=both.shape_result,
        )


def _param(param, names: Names) -> str:
    name = names.params[param.name]
    return f"{name}_dot" if param.tangent else name


def _room(results: int) -> str:
    """What `out=` takes for `results` arrays of the points' shape (the runtime's _out_rows)."""
    if results == 1:
        return "an array of the points' shape"
    return f"an array of shape ({results}, *points' shape), or a sequence of arrays of that shape or of rows of it"


def _title(entry: Entry, printer: Printer) -> str:
    """What the lines compute: the Program's sections, which the schedule interleaves."""
    titles = []
    for section in entry.body:
        title = section.title
        if section.seed is not None:
            title += f" (seed {printer.leaf(section.seed)} = 1)"
        titles.append(title)
    if len(titles) > 1:
        return "; ".join(titles) + ", interleaved: each value is computed just before it is read"
    return titles[0] if titles else ""


def _shaped(results, values: str, total: int) -> str:
    """The entry point's return value from the flat list of results `values`, shaped as the Program's
    results are (and as the Python backend returns them): a value, a tuple, or a tuple of rows."""
    texts, start = [], 0

    def run(length: int) -> str:
        nonlocal start
        stop, start = start + length, start + length
        first = start - length
        if first == 0 and stop == total:
            return f"tuple({values})"
        return f"tuple({values}[{first or ''}:{'' if stop == total else stop}])"

    for result in results:
        match result:
            case Scalar():
                texts.append(f"{values}[{start}]")
                start += 1
            case Vector(terms=terms):
                texts.append(run(len(terms)))
            case Matrix(rows=rows):
                texts.append(_tuple([run(len(row)) for row in rows]))
    return ", ".join(texts)


def _unpack(names: list[str], source: str) -> str:
    return f"({names[0]},) = {source}" if len(names) == 1 else f"{', '.join(names)} = {source}"


def _tuple(items: list[str]) -> str:
    if not items:
        return "()"
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _assigns(body: tuple[Section, ...]) -> Iterator[tuple[Path, Assign]]:
    """The Assigns of a body in order, each with the branch it runs in (the Ifs it is in, as in
    Tape.paths), walked with a loop: Ifs nest as deep as the where()s. A Check, and an Assign nothing
    reads, are there so that f() and its derivatives raise at the same points: array code does not
    raise (a point outside a row's domain gives nan, as numpy.errstate says), so they are dropped."""
    stack: list[tuple[tuple, int, Path]] = [(body, 0, ())]
    while stack:
        nodes, start, path = stack.pop()
        for position in range(start, len(nodes)):
            node = nodes[position]
            kind = type(node)
            if kind is Assign:
                if node.read:
                    yield path, node
                continue
            if kind is Check:
                continue
            stack.append((nodes, position + 1, path))  # what follows, once the node's body is done
            if kind is Section:
                stack.append((node.body, 0, path))
            elif kind is If:
                condition = node.condition
                if type(condition) is Flag:  # a flat program's: the flag names the whole branch
                    stack.append((node.body, 0, condition.path))
                else:
                    if node.orelse:
                        stack.append((node.orelse, 0, (*path, (condition.index, False))))
                    stack.append((node.body, 0, (*path, (condition.index, True))))
            else:
                raise NotImplementedError("the NumPy backend prints no Loop yet (no builder makes one)")
            break


def _assign(program: _Program, node: Assign, path: Path) -> None:
    """`target mode term` in branch `path`, as ufunc calls: a forward value, an adjoint or a tangent.
    A contribution made in a branch is added on its elements, then scattered into the value, which
    lives in the branch where it was first assigned."""
    target = program.printer.leaf(node.target)
    note = _note(node.origins, program.printer) if node.origins else ""
    term = node.term
    if node.mode == "=":
        # An atom is not copied: until the next contribution, the target is that atom.
        program.home[target] = path
        if type(term) is Op:
            value = program.apply(term.op, term.args, target, note, path)
        else:
            value = program.operand(term)
    else:
        home = program.home.get(target, ())
        addend = program.apply(term.op, term.args, path=path) if type(term) is Op else term
        old = program.current[target]
        if path == home:
            value = program.apply(_ACCUMULATE[node.mode], (old, addend), target, note, path)
        else:
            inner = program.apply(_ACCUMULATE[node.mode], (old, addend), path=path)
            value = program.scatter(inner, old, home, path, target, note)
    program.current[target] = value


def _note(origins: tuple[int, ...], printer: Printer) -> str:
    """`  # w4 = sin(x1); w3 = x1 * x2`: the entries whose partials the line adds, as written."""
    return "  # " + "; ".join(printer.source_definition(origin) for origin in origins)


def _label(printer: Printer, term) -> str | None:
    return printer.leaf(term) if type(term) is Ref or type(term) is Bar or type(term) is Dot else None


def _schedule(instrs: list[_Instr], outputs: list) -> list[int]:
    """The instructions the outputs need, in the order a demand-driven evaluation reaches them: for
    each output in turn, operands left to right, depth first (an iterative post-order walk).

    Program order computes every forward value before the reverse sweep reads it, which keeps
    hundreds of buffers alive at the turn; in this order a value is mostly computed just before it
    is read, so a handful stay alive and a block stays in cache."""
    producer = {instr.target: position for position, instr in enumerate(instrs)}
    done = [False] * len(instrs)
    order: list[int] = []
    for value in outputs:
        if not isinstance(value, int) or done[producer[value]]:
            continue
        stack = [(producer[value], False)]
        while stack:
            position, expanded = stack.pop()
            if done[position]:
                continue
            if expanded:
                done[position] = True
                order.append(position)
                continue
            stack.append((position, True))
            for arg in reversed(instrs[position].args):
                if isinstance(arg, int) and not done[producer[arg]]:
                    stack.append((producer[arg], False))
    return order


def _allocate(program: _Program, order: list[int], outputs: list) -> tuple[list[Line], int]:
    """Print the instructions in `order`, each ufunc writing into a buffer row: a result goes straight
    to its output row; any other value to a row no live value holds (the most recently freed, the
    warmest in cache). A ufunc may write over its own dying operand. Temporaries are numbered here,
    in the order they are printed."""
    instrs = program.instrs
    last_use: dict[int, int] = {}
    for step, position in enumerate(order):
        for arg in instrs[position].args:
            if isinstance(arg, int):
                last_use[arg] = step
    output_row: dict[int, int] = {}
    for number, value in enumerate(outputs):
        if isinstance(value, int):
            output_row.setdefault(value, number)
            last_use[value] = len(order)
    _free_names(program, order, last_use)
    readers: dict[int, int] = {}
    for position in order:
        for arg in set(instrs[position].args):
            readers[arg] = readers.get(arg, 0) + 1
    # A value read only by the next instruction, which writes an output row, is written there first:
    # the ufunc then works in place (cos(x1) into row 0, then + x2 over it), with no buffer between.
    for step in range(len(order) - 1, 0, -1):
        value, reader = instrs[order[step - 1]], instrs[order[step]]
        if (
            reader.target in output_row
            and value.target not in output_row
            and value.ufunc is not None
            and value.target in reader.args
            and readers[value.target] == 1
        ):
            output_row[value.target] = output_row[reader.target]
    buffer_of: dict[int, int] = {}
    free: list[int] = []
    count = temporaries = 0
    lines = []
    for step, position in enumerate(order):
        instr = instrs[position]
        for arg in dict.fromkeys(instr.args):
            if isinstance(arg, int) and last_use[arg] == step and arg in buffer_of:
                free.append(buffer_of.pop(arg))
        if program.labels[instr.target] is None:
            temporaries += 1
            program.labels[instr.target] = f"{program.own['t']}{temporaries}"
        if instr.ufunc is None:
            rhs = instr.template.format(*(program.text(arg) for arg in instr.args))
            lines.append(Line(program.labels[instr.target], rhs, instr.note))
            continue
        # The buffer is the ufunc's last positional argument: `out=` costs each call a keyword parse.
        call = instr.template.format(*(program.argument(arg) for arg in instr.args))
        if instr.target in output_row:
            rhs = f"{instr.ufunc}({call}, {program.own['outputs']}[{output_row[instr.target]}])"
        else:
            row = free.pop() if free else count
            count = max(count, row + 1)
            buffer_of[instr.target] = row
            rhs = f"{instr.ufunc}({call}, {program.own['b']}{row})"
        lines.append(Line(program.labels[instr.target], rhs, instr.note))
    return lines, count


def _free_names(program: _Program, order: list[int], last_use: dict[int, int]) -> None:
    """Give a name to one live value at a time, as buffers are. An adjoint's successive values all
    print as `w2_bar`, and value numbering may hand an earlier one to a later reader (2 * x is both
    w2_bar's first contribution and a term of x_bar): a value whose name is taken over by a later
    value while it is still to be read becomes a temporary, numbered when printed."""
    holder: dict[str, int] = {}  # name -> the value it holds at this point of `order`
    for step, position in enumerate(order):
        target = program.instrs[position].target
        name = program.labels[target]
        if name is None:
            continue
        previous = holder.get(name)
        if previous is not None and last_use.get(previous, -1) > step:  # read at `step` itself is fine
            program.labels[previous] = None
        holder[name] = target


# --- array programs -------------------------------------------------------------------------------
# A program with loops (core/program.py's Loop nodes over expr.Affine ranges) prints as whole-array
# arithmetic: every statement of a loop's body runs once over all of its iterations (they are
# independent: the Program only adds into reductions and adjoints across iterations). A loop at the
# top runs in blocks of iterations (`for lo, hi in _blocks(...)`), so that a block's temporaries stay
# in the caches; its reads x[c*i + d] are slices of the block. A loop inside a loop enumerates the
# iterations of the nest as index arrays (`_nest`): its reads gather, its sums and scatters add up by
# index with numpy.bincount (a fancy-index += would keep one of each repeated index's terms). A value
# carried from one iteration to the next (a product, its prefixes and suffixes, their tangents) gets
# all its states at once from a scan (_Scan). A vector output's rows are one more loop at the top:
# each block of rows runs its rows' gradient programs side by side.

# Iterations per block over NumPy arrays: a block's temporaries (256 KiB each) stay in the L2 cache,
# and a block is long enough that a NumPy call's fixed cost is small beside its work.
ARRAY_BLOCK = 1 << 15
# Inner iterations per block of a loop whose body runs loops (pairs i < j, W[j, k] x[k]): the
# index arrays of a nest hold that many elements, so that memory does not grow with len(x)^2.
NEST_BLOCK = 1 << 17


@dataclass(frozen=True, slots=True)
class ArrayLine:
    indent: str
    text: str
    note: str  # "" or "  # comment"


@dataclass(frozen=True, slots=True)
class ArrayFunction:
    name: str
    params: str
    doc: str
    lines: tuple[ArrayLine, ...]
    result: str


@dataclass(frozen=True, slots=True)
class ArrayModule:
    docstring: str
    block: str
    nest_block: str
    aliases: tuple[str, ...]  # "_total_ = _total": a runtime function whose name an input takes
    functions: tuple[ArrayFunction, ...]


def is_array_program(program: Program) -> bool:
    """Whether `program` reads arrays or runs loops: the NumPy printer then prints whole-array code."""
    return bool(program.tape.arrays or program.tape.loops)


def array_module(program: Program) -> ArrayModule:
    """The render context of an array program's module (a gradient, jvp, hvp, or a vector output's
    Jacobian): one function per entry."""
    tape, header = program.tape, program.header
    names = assign_names(tape, header.wrt)
    printer = Printer(tape, names, "python")
    printers = [_ArrayFunctionPrinter(tape, printer) for _ in program.entries]
    functions = tuple(one.function(entry) for one, entry in zip(printers, program.entries))
    helpers = printers[0].helpers if printers else {}
    aliases = tuple(f"{alias} = {name}" for name, alias in helpers.items() if alias != name)
    docstring = _docstring(header, names) + "Arrays: NumPy arrays, or Dask arrays for data (not in wrt), run lazily.\n"
    if tape.rows is not None:
        docstring += "The Jacobian is a 2-D array, one row per output; the outputs a 1-D array.\n"
    return ArrayModule(docstring, str(ARRAY_BLOCK), str(NEST_BLOCK), aliases, functions)


def array_program_text(program: Program) -> str:
    module = array_module(program)
    return (
        templates()
        .get_template("numpy_arrays.py.j2")
        .render(
            docstring=module.docstring,
            block=module.block,
            nest_block=module.nest_block,
            aliases=module.aliases,
            functions=module.functions,
        )
    )


@dataclass(eq=False)
class _Level:
    """Where a statement runs: outside every loop (depth 0), or over the iterations of a loop nest.
    A value assigned at a level holds one number per iteration of it (or one number for all)."""

    depth: int
    index: str = ""  # the innermost loop's index
    count: str = ""  # its iterations (in the current block, at depth 1)
    parent: _Level | None = None
    owners: dict[int, str] | None = None  # depth d >= 1 of an enclosing level -> each iteration's one there
    start: object = None  # depth 1: the loop's start (expr.Affine); iteration lo is index start + lo
    index_read: bool = False  # depth 1: whether a statement reads the index as an array
    nests: dict = field(default_factory=dict)  # (index, start, stop) -> the level of a loop in this one
    scans: dict = field(default_factory=dict)  # name -> _Scan: values the loop running here carries
    positions: dict = field(default_factory=dict)  # depth d -> each iteration's position among those of its one there

    def chain(self) -> list[_Level]:
        levels, level = [], self
        while level is not None:
            levels.append(level)
            level = level.parent
        return levels


@dataclass(eq=False)
class _Scan:
    """A value that a loop carries from one iteration to the next, homed in the level around it: a
    product (`w6 *= w5`), a product's running prefix, the buffer of its suffixes (filled by a
    descending loop, `w6_after[i] = w6_after[i + 1] * w5`), or their tangents (`w6_dot = w6_dot * w5
    + w6 * w5_dot`). Every update is value * factor + term, so whole-array code computes all of its
    states at once (the runtime's _scan); the statements of the loop read the state of their iteration."""

    name: str
    node: Assign  # its update in the loop
    descending: bool  # a buffer of suffixes: its elements are its states
    states: str = ""  # what holds its states, once printed
    updated: bool = False  # whether the update has been printed: reads see the state after it


_ZERO = Const(0.0)
_ONE = Const(1.0)


class _ArrayFunctionPrinter:
    """Prints one entry of an array program as statements over whole arrays."""

    def __init__(self, tape: Tape, printer: Printer):
        self.tape, self.printer, self.names = tape, printer, printer.names
        taken = set(self.names.params.values()) | set(self.names.values) | {loop.index for loop in tape.loops}
        if tape.rows is not None:
            taken.add(tape.rows.index)
        self.taken = taken
        self.lo, self.hi = _free("lo", taken), _free("hi", taken)
        self.helpers = array_helpers(taken)
        self.arrays = tuple(self.names.params[array] for array, _ in tape.arrays)
        self.lines: list[ArrayLine | None] = []
        self.level = _Level(0)
        self.levels: dict[str, _Level] = {}  # a value's name -> the level it was assigned at
        self.zeroed: dict[str, int] = {}  # a name whose value is the 0.0 that line (position) assigned
        self.complete: set[str] = set()  # forward values computed whole at their level (self.levels)
        self.recomputed: set[str] = set()  # sums whose recomputation is being skipped
        self.bars: dict[str, _Level] = {}  # an array's adjoint (or its tangent) -> the level it was zeroed at
        self.roles: dict[str, tuple[str, int]] = {}  # Rows role -> (its list's name, its rows' dimensions)
        self.maps: dict[str, tuple[int, str]] = {}  # a nest's map to an outer level, not read yet -> (line, its source)

    def function(self, entry: Entry) -> ArrayFunction:
        params = ", ".join(_param(param, self.names) for param in entry.params)
        for section in entry.body:
            title = section.title
            if section.seed is not None:
                title += f" (seed {self.printer.leaf(section.seed)} = 1)"
            self.emit(f"# {title}")
            self.nodes(section.body)
        results = []
        for result in entry.results:
            match result:
                case Scalar(term=term):
                    results.append(self.term(term))
                case Vector(terms=terms):
                    results.append(_tuple([self.term(term) for term in terms]))
                case Rows(role=role):
                    name, ndim = self.roles[role]
                    results.append(self.call("_rows", name, str(ndim)))
                case _:
                    kind = type(result).__name__
                    raise NotImplementedError(f"the NumPy backend returns no {kind} of an array program")
        for line, _ in self.maps.values():
            self.lines[line] = None  # a map from a nest to an outer loop that nothing read
        lines = tuple(line for line in self.lines if line is not None)
        return ArrayFunction(entry.name, params, entry.doc, lines, ", ".join(results))

    # --- statements

    def emit(self, text: str, note: str = "") -> int:
        indent = "    " * (self.level.depth > 0)  # only the blocks of a top loop are a Python loop
        self.lines.append(ArrayLine(indent, text, note))
        return len(self.lines) - 1

    def nodes(self, nodes) -> None:
        for node in nodes:
            kind = type(node)
            if kind is Assign:
                if node.read:  # an unread line only checks a domain: array code gives nan, it does not raise
                    self.assign(node)
            elif kind is Loop:
                self.loop(node)
            elif kind is Section:  # a part of a row's program (a vector output's Jacobian)
                self.emit(f"# {node.title}")
                self.nodes(node.body)
            elif kind is Append:
                self.append(node)
            elif kind is Check:
                continue
            else:
                raise NotImplementedError(f"the NumPy backend prints no {kind.__name__} in an array program")

    def loop(self, node: Loop) -> None:
        outer = self.level
        if outer.depth == 0:
            count = self.affine(combine(node.stop, node.start, -1))
            width = self.width(node.body, [node])
            arguments = [count, *self.arrays] + ([] if width is None else [f"width={width}"])
            # A descending loop (a product's suffixes) takes its blocks from the last: each block
            # starts from the state the block after it ended with.
            order = "[::-1]" if node.descending else ""
            self.emit(f"for {self.lo}, {self.hi} in {self.call('_blocks', *arguments)}{order}:")
            header = len(self.lines)
            self.level = _Level(1, node.index.name, f"{self.hi} - {self.lo}", outer, {}, node.start)
            self.level.scans = self.carried(node.body)
            self.nodes(node.body)
            if len(self.lines) == header:  # nothing to compute (its lines only checked a domain)
                self.lines.pop()
            elif self.level.index_read:
                first, last = (self.affine(combine(node.start, _symbol(name))) for name in (self.lo, self.hi))
                self.lines.insert(header, ArrayLine("    ", f"{node.index.name} = numpy.arange({first}, {last})", ""))
                self.zeroed = {name: line + (line >= header) for name, line in self.zeroed.items()}
                self.maps = {name: (line + (line >= header), read) for name, (line, read) in self.maps.items()}
        else:
            self.level = self.nest(node, outer)
            self.level.scans = self.carried(node.body)
            self.nodes(node.body)
        self.level = outer

    def width(self, nodes, enclosing: list[Loop]) -> str | None:
        """The most iterations that loops in `nodes` run per iteration of `enclosing[-1]` (a bound
        over lengths, exact for one loop in another, safe deeper), or the most elements of an
        array's adjoint zeroed per iteration (a row of a Jacobian): a block of the top loop is made
        short enough that its nests' index arrays and such adjoints stay small. None when `nodes`
        hold neither."""
        widths = list(dict.fromkeys(self.widths(nodes, enclosing)))
        if not widths:
            return None
        return widths[0] if len(widths) == 1 else f"max({', '.join(widths)})"

    def widths(self, nodes, enclosing: list[Loop]) -> list[str]:
        widths = []
        for node in nodes:
            kind = type(node)
            if kind is Section:
                widths.extend(self.widths(node.body, enclosing))
            elif kind is Assign and type(node.target) is ArrayBar:
                widths.append(f"{self.names.params[node.target.array]}.size")
            elif kind is Loop:
                count = self.count(_widest(combine(node.stop, node.start, -1), enclosing))
                inner = self.width(node.body, [*enclosing, node])
                widths.append(count if inner is None else f"{count} * {inner}")
        return widths

    def count(self, affine: Affine) -> str:
        """An iteration count over lengths, at least 0 (`max(len(x) - 1, 0)`: a range that may be empty)."""
        if affine.constant < 0 or any(coefficient < 0 for _, coefficient in affine.terms):
            return f"max({self.affine(affine)}, 0)"
        return self.affine(affine)

    def nest(self, node: Loop, outer: _Level) -> _Level:
        """The level of a loop inside loop `outer`: the one a loop over the same range there made
        before (the reverse sweep's loop then reuses the forward sweep's values), or a new one."""
        index, key = node.index.name, (node.index.name, node.start, node.stop)
        level = outer.nests.get(key)
        if level is not None:
            return level
        start, stop = (self.affine(bound) for bound in (node.start, node.stop))
        owner = _free(f"{index}_of_{outer.index}", self.taken)
        self.emit(f"{owner}, {index} = {self.call('_nest', start, stop, outer.count)}")
        owners = {outer.depth: owner}
        for depth, map_text in outer.owners.items():
            name = _free(f"{index}_of_{_level_at(outer, depth).index}", self.taken)
            self.maps[name] = (self.emit(f"{name} = {map_text}[{owner}]"), map_text)  # kept if read
            owners[depth] = name
        for other in [other for other in outer.nests if other[0] == index]:
            del outer.nests[other]  # its arrays are overwritten
        level = outer.nests[key] = _Level(outer.depth + 1, index, f"len({index})", outer, owners)
        return level

    def carried(self, body) -> dict[str, _Scan]:
        """The values the loop with this body carries across its iterations: those homed around it
        that a line of it multiplies (`*=`) or sets from their own value (a tangent's recurrence)."""
        scans = {}
        for node in body:
            if type(node) is not Assign or node.mode not in ("=", "*="):
                continue
            name = self.base(node.target)
            home = self.levels.get(name)
            if home is None or home.depth >= self.level.depth:
                continue
            if node.mode == "*=" or name in self.bases(node.term):
                of = node.target.of if type(node.target) is Dot else node.target
                scans[name] = _Scan(name, node, type(of) is Suffix)
        return scans

    def assign(self, node: Assign) -> None:
        target, mode, term = node.target, node.mode, node.term
        note = _note(node.origins, self.printer) if node.origins else ""
        kind = type(target)
        of = target.of if kind is Dot else target
        if type(of) is ArrayBar:  # an array's adjoint (or its tangent): zeros of its shape
            self.zeros(self.printer.leaf(target), of.array, note)
            return
        if type(of) is Suffixes:
            self.suffixes(target, of.reduction, term)
            return
        if kind is Rows:
            name = _free(target.role, self.taken)
            self.taken.add(name)
            self.roles[target.role] = (name, 2)
            self.emit(f"{name} = []")
            return
        if type(of) is Bar and self.tape.instrs[of.index].op == READ:
            self.scatter(of.index, mode, self.term(term), note, dot=kind is Dot)
            return
        name = self.base(target)
        if kind is Ref and self.computed(target.index, name, mode):
            return
        scan = self.level.scans.get(name)
        if scan is not None and scan.node is node:
            self.update(scan, note)
            return
        zero = self.zeroed.pop(name, None)  # the line that set it to 0.0, if nothing changed it since
        if mode == "=":
            line = self.emit(f"{name} = {self.term(term)}", note)
            self.levels[name] = self.level
            if term == _ZERO and self.level.depth > 0:
                self.zeroed[name] = line
            return
        home = self.levels.get(name, self.level)
        if home is self.level:
            operation = {"+=": "add", "-=": "sub", "*=": "mul"}[mode]
            self.emit(f"{name} = {self.term(Op(operation, (target, term)))}", note)
            return
        total = self.total(self.term(term), home)
        if home.depth == 0:  # a number, added up block by block
            self.emit(f"{name} {mode} {total}", note)
        elif zero is not None:
            self.lines[zero] = None  # 0.0 + total is total
            self.emit(f"{name} = {'-' if mode == '-=' else ''}{total}", note)
        else:
            self.emit(f"{name} = {name} {mode[0]} {total}", note)
        self.levels[name] = home

    def zeros(self, name: str, array: str, note: str) -> None:
        """`x_bar = 0`: zeros shaped as the array; inside a loop (a row of a Jacobian), one such
        array per iteration, stacked on a first axis."""
        shape = f"{self.names.params[array]}.shape"
        if self.level.depth:
            shape = f"({self.level.count},) + {shape}"
        self.emit(f"{name} = numpy.zeros({shape})", note)
        self.bars[name] = self.level

    def suffixes(self, target, reduction: int, start: Const) -> None:
        """The buffer of a product's suffix products (or of their tangents): around a top loop, its
        stop - start + 1 elements; around an inner loop, their start, which the loop's _segment_scan
        makes a row of states per iteration here."""
        name = self.base(target)
        value = number_text(start.value)
        if self.level.depth == 0:
            self.emit(f"{name} = numpy.full({self.count(buffer_length(self.tape, reduction))}, {value})")
        else:
            self.emit(f"{name} = {value}")
        self.levels[name] = self.level

    def update(self, scan: _Scan, note: str) -> None:
        """A carried value's update in its loop: its states over the loop's iterations, then (a
        running value) its state after the last iteration, in the level around the loop."""
        states = self.states(scan)
        scan.updated = True
        of = scan.node.target.of if type(scan.node.target) is Dot else scan.node.target
        if scan.descending or (type(of) is Prefix and self.level.depth > 1):
            return  # a buffer holds every state; a prefix is read only in its loop (a top loop's: later blocks)
        final = f"{states}[-1]" if self.level.depth == 1 else f"{states}[:, -1]"
        self.emit(f"{scan.name} = {final}", note)

    def states(self, scan: _Scan) -> str:
        """What holds the states of a carried value, printed at the first line that needs them (the
        factors and terms its update reads are computed by then: a loop's body computes a product's
        factor first)."""
        if scan.states:
            return scan.states
        level, name, node = self.level, scan.name, scan.node
        home = self.levels[name]
        if home is not level.parent:
            raise NotImplementedError("the NumPy backend carries a value only across the loop right in its level")
        if node.mode == "*=":
            factors, terms = node.term, None
        else:
            factors, terms = _linear(node.term, lambda leaf: self.is_state(leaf, scan))
        self.zeroed.pop(name, None)  # its start is read
        scan.states = name if scan.descending else _free(f"{name}_states", self.taken)
        self.taken.add(scan.states)
        arguments = ["None" if factors == _ONE else self.term(factors)]
        arguments.append("None" if terms is None else self.term(terms))
        descending = ["True"] if scan.descending else []
        if level.depth == 1 and scan.descending:  # the top loop's buffer, filled from its end block by block
            scanned = self.call("_scan", f"{name}[{self.hi}]", *arguments, level.count, *descending)
            self.emit(f"{name}[{self.lo}:{self.hi} + 1] = {scanned}")
        elif level.depth == 1:
            self.emit(f"{scan.states} = {self.call('_scan', name, *arguments, level.count)}")
        else:
            owners = self.owner(level, home.depth)
            scanned = self.call("_segment_scan", name, *arguments, owners, home.count, *descending)
            self.emit(f"{scan.states} = {scanned}")
        return scan.states

    def is_state(self, leaf, scan: _Scan) -> bool:
        """Whether `leaf` is the state an update of `scan` starts from: the value itself, or for a
        buffer of suffixes filled backwards, its element after the one the update sets."""
        if self.base(leaf) != scan.name:
            return False
        of = leaf.of if type(leaf) is Dot else leaf
        if scan.descending and (type(of) is not Suffix or of.shift != 1):
            raise NotImplementedError("a suffix is made from the one after it only")
        return True

    def scanned(self, scan: _Scan, carrier: _Level) -> str:
        """A running value, read in the loop carrying it (`carrier`, this level or one around it):
        its state at each iteration of that loop (after it, once updated)."""

        def states() -> str:
            states, after = self.states(scan), int(scan.updated)
            if carrier.depth == 1:
                return f"{states}[1:]" if after else f"{states}[:-1]"
            home = self.levels[scan.name]
            position = f"{self.positions(home)}{' + 1' if after else ''}"
            return f"{states}[{self.owner(carrier, home.depth)}, {position}]"

        return self.within(carrier, states)

    def positions(self, home: _Level) -> str:
        """Each iteration of the current level's position among those of its iteration of `home`."""
        level = self.level
        name = level.positions.get(home.depth)
        if name is None:
            name = level.positions[home.depth] = _free(f"{level.index}_in_{home.index}", self.taken)
            self.taken.add(name)
            self.emit(f"{name} = {self.call('_positions', self.owner(level, home.depth), home.count)}")
        return name

    def suffix(self, node: Suffix, dot: Dot | None = None) -> str:
        """Element i - start + shift of a product's suffix buffer (or of its tangent's), at the
        iterations of the product's loop around (or at) the current level."""
        name = self.base(node if dot is None else dot)
        home = self.levels[name]
        loop = _level_at(self.level, home.depth + 1)
        shift = f" + {node.shift}" if node.shift else ""

        def elements() -> str:
            scan = loop.scans.get(name)
            if scan is not None:
                self.states(scan)  # the buffer is filled in this loop: before this read
            if home.depth == 0:
                return f"{name}[{self.lo}{shift}:{self.hi}{shift}]"
            return f"{name}[{self.owner(loop, home.depth)}, {self.positions(home)}{shift}]"

        return self.within(loop, elements)

    def within(self, level: _Level, text) -> str:
        """`text()` printed at `level` (the current one, or one around it), read at the current
        level: a value per iteration of an enclosing loop is taken at each iteration's one there."""
        current, self.level = self.level, level
        try:
            printed = text()
        finally:
            self.level = current
        return printed if level is current else f"{printed}[{self.owner(current, level.depth)}]"

    def owner(self, level: _Level, depth: int) -> str:
        """The map from `level`'s iterations to those of the level around it at `depth` (its line,
        and those of the maps it is made from, are kept: it is read)."""
        name = level.owners[depth]
        read = name
        while read in self.maps:
            _, read = self.maps.pop(read)
        return name

    def carrier(self, name: str) -> _Level | None:
        """The loop carrying value `name` (see _Scan): the current one or one around it, if any."""
        for level in self.level.chain():
            if level.depth == 0:
                return None
            if name in level.scans:
                return level
        return None

    def base(self, node) -> str:
        """The variable a target or leaf lives in: an element of a product's suffixes lives in its buffer."""
        if type(node) is Suffix:
            return self.printer.leaf(Suffixes(node.reduction))
        if type(node) is Dot and type(node.of) is Suffix:
            return self.printer.leaf(Dot(Suffixes(node.of.reduction), node.seed))
        return self.printer.leaf(node)

    def bases(self, term) -> set[str]:
        found, stack = set(), [term]
        while stack:
            node = stack.pop()
            if type(node) is Op:
                stack.extend(node.args)
            elif type(node) is not Const:
                found.add(self.base(node))
        return found

    def append(self, node: Append) -> None:
        """A block of rows of a vector output's Jacobian (or of its values), one per iteration."""
        count = self.level.count
        if node.scalar:
            self.roles[node.role] = (self.roles[node.role][0], 1)
            (term,) = node.terms
            self.emit(f"{self.roles[node.role][0]}.append(numpy.broadcast_to({self.term(term)}, ({count},)))")
            return
        columns = []
        for term in node.terms:
            if type(term) is ArrayBar:
                columns.append(f"{self.names.array_adjoint(term.array)}.reshape({count}, -1)")
            else:
                columns.append(self.term(term))
        self.emit(f"{self.roles[node.role][0]}.append({self.call('_columns', count, *columns)})")

    def computed(self, entry: int, name: str, mode: str) -> bool:
        """Whether forward value `name` (tape entry `entry`) already holds its value at this level: a
        loop's body recomputed in the same iteration space is computed once. A sum is complete once
        its loop has added into it, and then its recomputation (`= 0.0`, `+=`) is skipped whole. A
        product is computed again: the tangent it carries restarts with it (see _Scan)."""
        op = self.tape.instrs[entry].op
        if op == "prod":
            return False
        reduction = op in REDUCTIONS
        if mode == "=" and self.levels.get(name) is self.level and name in self.complete:
            if reduction:
                self.recomputed.add(name)
            return True
        if mode != "=" and name in self.recomputed:
            self.recomputed.discard(name)
            return True
        if mode != "=" or not reduction:
            self.complete.add(name)
        return False

    def total(self, values: str, home: _Level) -> str:
        """`values` of the current level added up over the iterations of each iteration of `home`."""
        if home.depth == 0:
            return self.call("_total", values, self.level.count)
        return self.call("_segment_total", values, self.owner(self.level, home.depth), home.count)

    def scatter(self, read: int, mode: str, values: str, note: str, dot: bool = False) -> None:
        """x_bar[...] += values: into the elements the READ entry `read` reads at the current level
        (of x_bar_dot, with `dot`). An adjoint zeroed inside a loop has one array per iteration
        there: each iteration adds into its own."""
        instr = self.tape.instrs[read]
        bar = self.names.array_adjoint(instr.name) + ("_dot" if dot else "")
        indices, _ = instr.detail
        home = self.bars.get(bar, self.level)
        if home.depth:
            rows = f"numpy.arange({home.count})" if home is self.level else self.owner(self.level, home.depth)
            if mode == "-=":
                values = f"-{values}" if values.isidentifier() else f"-({values})"
            positions = _tuple([rows] + [self.affine(affine) for affine in indices])
            self.emit(self.call("_scatter", bar, positions, values), note)
            return
        if self.level.depth == 0 or not any(affine.indices for affine in indices):
            values = values if self.level.depth == 0 else self.call("_total", values, self.level.count)
            self.emit(f"{bar}[{self.element(indices)}] {mode} {values}", note)
            return
        sliced = self.sliced(indices)
        if sliced is not None:
            self.emit(f"{bar}{sliced} {mode} {values}", note)
            return
        if mode == "-=":
            values = f"-{values}" if values.isidentifier() else f"-({values})"
        positions = _tuple([self.affine(affine) for affine in indices])
        self.emit(self.call("_scatter", bar, positions, values), note)

    def call(self, helper: str, *args: str) -> str:
        """A call of a function of the module's runtime (renamed where an input takes its name)."""
        return f"{self.helpers[helper]}({', '.join(args)})"

    # --- terms

    def term(self, term) -> str:
        if type(term) is Const:
            return number_text(term.value)
        return format_tree(term, self.leaf, "numpy")

    def leaf(self, node) -> str:
        kind = type(node)
        if kind is Ref:
            instr = self.tape.instrs[node.index]
            if instr.op == READ:
                return self.read(instr)
            if instr.op == COUNTER:
                return self.index(instr.name)
            if instr.op == LENGTH:
                return self.symbol(Length(instr.name, instr.detail))
            if instr.op == INPUT:
                return self.names.params[instr.name]
        elif kind is Index:
            return self.index(node.name)
        elif kind is ArrayBar:
            return self.names.array_adjoint(node.array)
        elif kind is Suffix:
            return self.suffix(node)
        elif kind is Dot:
            of = node.of
            if type(of) is Ref and self.tape.instrs[of.index].op == READ:
                return self.read(self.tape.instrs[of.index], "_dot")  # the direction's element
            if type(of) is Ref and self.tape.instrs[of.index].op == INPUT:
                return self.names.params[self.tape.instrs[of.index].name] + "_dot"
            if type(of) is Suffix:
                return self.suffix(of, node)
        name = self.printer.leaf(node)
        carrier = self.carrier(name)
        if carrier is not None and not carrier.scans[name].descending:
            return self.scanned(carrier.scans[name], carrier)
        self.zeroed.pop(name, None)
        home = self.levels.get(name)
        if home is None or home.depth == 0 or home is self.level:
            return name
        # A value of an enclosing loop at each iteration (one number for all stays one: w_bar = a * 0.5).
        return self.call("_each", name, self.owner(self.level, home.depth))

    def read(self, instr, suffix: str = "") -> str:
        """An element of an array input (of the direction's, x_dot, with `suffix` "_dot") at the
        current level's iterations: a slice of a block, or a gather over index arrays."""
        indices, _ = instr.detail
        array = self.names.params[instr.name] + suffix
        if self.level.depth == 0 or not any(affine.indices for affine in indices):
            return f"{array}[{self.element(indices)}]"
        sliced = self.sliced(indices)
        if sliced is not None:
            return array + sliced
        return f"{array}[{self.element(indices)}]"  # a gather over index arrays

    def element(self, indices) -> str:
        return ", ".join(self.affine(affine) for affine in indices)

    def sliced(self, indices) -> str | None:
        """`[lo + 1:hi + 1]`: the elements a read reads in a block of a top loop, as basic slices,
        where one dimension moves with the index (then its elements are distinct); else None."""
        level = self.level
        moving = [affine for affine in indices if affine.indices]
        if level.depth != 1 or len(moving) != 1:
            return None
        parts, reversed_ = [], ""
        for affine in indices:
            coefficient = dict(affine.terms).get(level.index)
            if coefficient is None:
                parts.append(self.affine(affine))
                continue
            rest = Affine(affine.constant, tuple((s, c) for s, c in affine.terms if s != level.index))
            first = combine(rest, level.start, coefficient)  # the element of the loop's first iteration
            if coefficient > 0:
                start, stop = combine(first, _symbol(self.lo), coefficient), combine(first, _symbol(self.hi), coefficient)
                step = "" if coefficient == 1 else f":{coefficient}"
            else:  # descending: the same elements ascending, then reversed (a stop of -1 would wrap)
                start = combine(first, _symbol(self.hi), coefficient)
                start = Affine(start.constant - coefficient, start.terms)
                stop = combine(first, _symbol(self.lo), coefficient)
                stop = Affine(stop.constant + 1, stop.terms)
                step = "" if coefficient == -1 else f":{-coefficient}"
                reversed_ = "[::-1]"
            parts.append(f"{self.affine(start)}:{self.affine(stop)}{step}")
        return f"[{', '.join(parts)}]{reversed_}"

    def index(self, name: str) -> str:
        """Loop index `name` as an array of the current level's iterations."""
        for level in self.level.chain():
            if level.index == name:
                if level.depth == 1:
                    level.index_read = True
                if level is self.level:
                    return name
                return f"{name}[{self.owner(self.level, level.depth)}]"
        raise AssertionError(f"index {name} read outside its loop")

    def affine(self, affine: Affine) -> str:
        """An index or bound as written: lengths first, then positive terms (`len(x) - 1 - 2*hi`)."""
        ordered = sorted(affine.terms, key=lambda term: (isinstance(term[0], str), term[1] < 0))
        return affine_text(Affine(affine.constant, tuple(ordered)), self.symbol)

    def symbol(self, symbol) -> str:
        """An Affine's symbol: a length, a block's bound, or a loop index (as an array)."""
        if isinstance(symbol, Length):
            array = self.names.params[symbol.array]
            return f"len({array})" if symbol.dim == 0 else f"{array}.shape[{symbol.dim}]"
        if symbol == self.lo or symbol == self.hi:
            return symbol
        return self.index(symbol)


# The runtime's functions that array programs call (templates/numpy_arrays.py.j2).
ARRAY_HELPERS = (
    "_blocks", "_total", "_each", "_segment_total", "_nest", "_scatter", "_scan", "_segment_scan", "_positions", "_rows",
    "_columns",
)


def array_helpers(taken: set[str]) -> dict[str, str]:
    """Each runtime function's name in the functions' bodies: its own, or an alias where an input
    or a definition takes it (an input is a local of the function and would hide it)."""
    return {name: _free(name, taken) for name in ARRAY_HELPERS}


def _linear(term, is_state) -> tuple[object, object]:
    """`term` as state * factor + rest, where the leaves `is_state` picks occur linearly: (factor,
    rest), rest None for 0 (a tangent's recurrence through a product: w6_dot * w5 + w6 * w5_dot)."""
    if type(term) is not Op:
        return (_ONE, None) if type(term) is not Const and is_state(term) else (None, term)
    parts = [_linear(arg, is_state) for arg in term.args]
    if all(factor is None for factor, _ in parts):
        return None, term
    op = term.op
    if op in ("add", "sub"):
        (f1, r1), (f2, r2) = parts
        return _combined(op, f1, f2), _combined(op, r1, r2)
    if op == "neg":
        ((factor, rest),) = parts
        return Op("neg", (factor,)), None if rest is None else Op("neg", (rest,))
    if op == "mul" and parts[1][0] is None:
        (factor, rest), other = parts[0], term.args[1]
        return _product(factor, other), None if rest is None else Op("mul", (rest, other))
    if op == "mul" and parts[0][0] is None:
        other, (factor, rest) = term.args[0], parts[1]
        return _product(other, factor), None if rest is None else Op("mul", (other, rest))
    if op == "div" and parts[1][0] is None:
        (factor, rest), other = parts[0], term.args[1]
        return Op("div", (factor, other)), None if rest is None else Op("div", (rest, other))
    raise NotImplementedError(f"the NumPy backend carries no value that a loop updates through {op}")


def _combined(op: str, left, right):
    if right is None:
        return left
    if left is None:
        return right if op == "add" else Op("neg", (right,))
    return Op(op, (left, right))


def _product(left, right):
    return right if left == _ONE else left if right == _ONE else Op("mul", (left, right))


def _widest(affine: Affine, loops: list[Loop]) -> Affine:
    """The greatest value of `affine` as the indices of `loops` (outermost first) run over their
    ranges, innermost first: a bound over lengths alone."""
    for loop in reversed(loops):
        coefficient = dict(affine.terms).get(loop.index.name)
        if coefficient is None:
            continue
        rest = Affine(affine.constant, tuple((s, c) for s, c in affine.terms if s != loop.index.name))
        end = loop.start if coefficient < 0 else Affine(loop.stop.constant - 1, loop.stop.terms)
        affine = combine(rest, end, coefficient)
    return affine


def _level_at(level: _Level, depth: int) -> _Level:
    while level.depth != depth:
        level = level.parent
    return level


def _symbol(name: str) -> Affine:
    return Affine(0, ((name, 1),))


def _free(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name
