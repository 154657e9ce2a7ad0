"""codegen.python: Program -> the source of a standalone Python module (imports only from math; never symdiff).

The Python printer: program.py decides what each function computes, where and in which order; this
module chooses names and spellings, writes notes and the docstring, tests nested branches through
flags (program.flat), and hands a logic-free Jinja template records of strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ..core import primitives
from ..core.adjoint import Adjoint, ArrayBar, Bar, Op, Prefix, Suffix, Term
from ..core.bounds import range_text
from ..core.printing import affine_text, format_flat, format_tree, number_text
from ..core.program import (
    GRADIENT_ENTRIES,
    Append,
    Assign,
    Check,
    Entry,
    Flag,
    If,
    Index,
    Loop,
    Matrix,
    Program,
    Rows,
    Scalar,
    Section,
    Suffixes,
    Vector,
    buffer_length,
    buffer_position,
    build_program,
    flat,
    operations,
)
from ..core.tape import REDUCTIONS, Const, Ref, Tape
from ..resources import templates
from ..version import __version__
from .names import Names, assign_names, python_length, python_symbol


@dataclass(frozen=True, slots=True)
class Line:
    target: str
    op: str
    rhs: str
    note: str  # "" or "  # comment"
    indent: str = ""  # four spaces inside a branch's `if` (and as many again under a domain check)

    @property
    def text(self) -> str:
        """The statement: `target op rhs`, or a control line such as `if w2:` (no op)."""
        return f"{self.target} {self.op} {self.rhs}" if self.op else self.target


@dataclass(frozen=True, slots=True)
class Block:
    title: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: str
    doc: str
    blocks: tuple[Block, ...]
    result: str


@dataclass(frozen=True, slots=True)
class Module:
    docstring: str
    imports: tuple[str, ...]  # import statements
    functions: tuple[Function, ...]


def render(adjoint: Adjoint, template: str = "python.py.j2", functions: tuple[str, ...] | None = None) -> str:
    """The module's text; `functions` limits it to some of f, grad, value_and_grad (default: all)."""
    return program_text(build_program(adjoint, GRADIENT_ENTRIES if functions is None else functions), template)


def program_text(program: Program, template: str = "python.py.j2") -> str:
    """The Python module printing `program`."""
    module = print_program(program)
    return templates().get_template(template).render(
        docstring=module.docstring, imports=module.imports, functions=module.functions
    )


class Printer:
    """Prints terms and forward entries of one tape with one set of names."""

    def __init__(
        self, tape: Tape, names: Names, dialect: str, numbered_outputs=False, numbered_seeds=False, flag_names=None
    ):
        self.tape, self.names, self.dialect = tape, names, dialect
        self._definitions: dict[int, str] = {}  # each entry is printed once, however often it is used
        self._comments: dict[int, str] = {}
        # With several outputs (a Jacobian) adjoints are numbered by output: x_bar1, x_bar2; with
        # several tangent sweeps (a Hessian) tangents by seed: x_bar_dot1, x_bar_dot2.
        self.numbered_outputs, self.numbered_seeds = numbered_outputs, numbered_seeds
        # A branch more than one where() deep is tested through a flag, numbered on from the tape's
        # last entry (w{n+1}, w{n+2}, ...: names no input or definition may take), the same in every function.
        self._flags: dict[tuple, str] = {} if flag_names is None else flag_names

    def _flag(self, path: tuple) -> str:
        name = self._flags.get(path)
        if name is None:
            name = self._flags[path] = f"w{len(self.tape.instrs) + len(self._flags) + 1}"
        return name

    def term(self, term: Term) -> str:
        return format_tree(term, self._leaf, self.dialect)

    def atom(self, term: Term) -> str:
        if isinstance(term, Const):
            return number_text(term.value)
        if isinstance(term, Ref | Bar):
            return self._leaf(term)
        return self.term(term)

    def definition(self, index: int) -> str:
        text = self._definitions.get(index)
        if text is None:
            instr = self.tape.instrs[index]
            text = self._definitions[index] = format_flat(instr.op, instr.args, self._leaf, self.dialect)
        return text

    def source_definition(self, index: int) -> str:
        """The entry as the textbook writes it: `w3 = x1 * x2`, `w4 = sin(x1)`."""
        text = self._comments.get(index)
        if text is None:
            instr = self.tape.instrs[index]
            if instr.op in REDUCTIONS:
                loop = self.tape.loops[instr.detail]
                formula = f"{instr.op}({self.atom(instr.args[0])} for {loop.index} in range({range_text(loop.start, loop.stop)}))"
            else:
                formula = format_flat(instr.op, instr.args, self._leaf, "symdiff")
            text = self._comments[index] = f"{self.names.value(index)} = {formula}"
        return text

    def _leaf(self, node) -> str:
        kind = type(node)
        if kind is Ref:
            return self.names.values[node.index]
        if kind is Bar:
            number = str(node.output + 1) if self.numbered_outputs else ""
            return self.names.adjoint(node.index) + number
        if kind is Flag:
            return self._flag(node.path)
        if kind is Index:
            return node.name
        if kind is ArrayBar:
            return self.names.array_adjoint(node.array)
        if kind is Prefix:
            return self.names.prefix(node.reduction)
        if kind is Suffix:
            position = affine_text(buffer_position(self.tape, node), python_symbol(self.names.params, self.names.indices))
            return f"{self.names.suffixes(node.reduction)}[{position}]"
        if kind is Suffixes:
            return self.names.suffixes(node.reduction)
        of = getattr(node, "of", None)  # a forward.Dot: the tangent of a value or of an adjoint
        if of is not None:
            number = str(node.seed + 1) if self.numbered_seeds else ""
            if type(of) is Suffix or type(of) is Bar or type(of) is Ref:
                text = self._leaf(of)
                if "[" in text:  # an element (x[i], x_bar[i], w4_after[i + 1]): the tangent array's
                    name, _, index = text.partition("[")
                    return f"{name}_dot{number}[{index}"
            return f"{self._leaf(of)}_dot{number}"
        raise AssertionError(f"unexpected leaf {node!r}")

    def leaf(self, node) -> str:
        return self._leaf(node)


FUNCTIONS = GRADIENT_ENTRIES


def python_module(adjoint: Adjoint, dialect: str = "python", functions: tuple[str, ...] = FUNCTIONS) -> Module:
    """The render context of a module defining `functions` (a subset of FUNCTIONS, in that order)."""
    return print_program(build_program(adjoint, functions), dialect)


# Entries whose several sweeps are told apart by number: adjoints by output (x_bar1, x_bar2), tangents
# by seed (x_dot1, x_bar_dot2).
NUMBERED = {"jacobian": (True, True), "value_and_jacobian": (True, True), "hessian": (False, True)}

TITLES = {
    "jvp": "Directional derivative (forward mode)",
    "jacobian": "Jacobian ({mode} mode)",
    "hessian": "Hessian (forward over reverse)",
}


def print_program(program: Program, dialect: str = "python") -> Module:
    """The render context of `program`: one name per value in the whole module, and one per branch
    flag (w{n+1}, ...: the same flag in every function)."""
    tape, header = program.tape, program.header
    names = assign_names(tape, header.wrt)
    flag_names: dict[tuple, str] = {}
    printers: dict[tuple[bool, bool], Printer] = {}
    functions = []
    for entry in program.entries:
        numbered = NUMBERED.get(entry.name, (False, False)) if tape.rows is None else (False, False)
        printer = printers.get(numbered)
        if printer is None:
            printer = printers[numbered] = Printer(tape, names, dialect, *numbered, flag_names=flag_names)
        functions.append(_function(flat(entry), printer))
    functions = tuple(functions)
    if header.kind == "gradient":
        docstring = module_docstring(header.source, tape, names, header.wrt)
    else:
        docstring = _derivatives_docstring(TITLES[header.kind].format(mode=header.mode), header.source,
                                           header.inputs, header.wrt)
    return Module(docstring, python_imports(operations(program)), functions)


def _function(entry: Entry, printer: Printer) -> Function:
    params = []
    for param in entry.params:
        name = printer.names.params[param.name]
        params.append(f"{name}_dot" if param.tangent else name)
    blocks = []
    for section in entry.body:
        title = section.title
        if section.seed is not None:
            title += f" (seed {printer.leaf(section.seed)} = 1)"
        lines: list[Line] = []
        _lines(section.body, printer, "", lines)
        blocks.append(Block(title, tuple(lines)))
    return Function(entry.name, ", ".join(params), entry.doc, tuple(blocks), _results(entry, printer))


INDENT = "    "


def _lines(nodes, printer: Printer, indent: str, out: list[Line]) -> None:
    """Appends the statements of `nodes`, indented one step more per If or Loop they are in."""
    leaf, instrs, values, definition = printer._leaf, printer.tape.instrs, printer.names.values, printer.definition
    append = out.append
    for node in nodes:
        kind = type(node)
        if kind is Assign:
            target, term = node.target, node.term
            if type(target) is Ref:
                name = values[target.index]
                if type(term) is Op and term.args is instrs[target.index].args:
                    rhs = definition(target.index)  # its tape entry: printed once per module
                else:
                    rhs = _rhs(term, printer)
            elif type(target) is ArrayBar or type(getattr(target, "of", None)) is ArrayBar:
                name, rhs = leaf(target), _zeros(getattr(target, "of", target).array, printer)
            elif type(target) is Rows:
                name, rhs = target.role, "[]"
            elif type(target) is Suffixes or type(getattr(target, "of", None)) is Suffixes:
                length = buffer_length(printer.tape, getattr(target, "of", target).reduction)
                size = affine_text(length, python_symbol(printer.names.params, printer.names.indices))
                name, rhs = leaf(target), f"[{printer.atom(term)}] * " + (f"({size})" if " " in size else size)
            else:
                name, rhs = leaf(target), _rhs(term, printer)
            if not node.read:
                name = f"_{name}"  # evaluated only so that a point outside the domain raises
            append(Line(name, node.mode, rhs, _note(node.origins, printer) if node.origins else "", indent))
        elif kind is Check:
            instr = instrs[node.index]
            row = primitives.lookup(instr.op)
            condition = row.guard_domain.format(**dict(zip(row.params, (printer.atom(a) for a in instr.args))))
            note = f"  # {printer.source_definition(node.index)} is undefined here: raise as f() does"
            out.append(Line(f"if not {condition}:", "", "", note, indent))
            out.append(Line(printer.definition(node.index), "", "", "", indent + INDENT))
        elif kind is If:  # flat: one branch, `if w2:`, `if not w2:` or `if w9:` (a flag)
            if node.body and node.orelse:
                raise AssertionError("program.flat gives each If one branch")
            truth = leaf(node.condition)
            out.append(Line(f"if {truth}:" if node.body else f"if not {truth}:", "", "", "", indent))
            _lines(node.body or node.orelse, printer, indent + INDENT, out)
        elif kind is Loop:
            symbol = python_symbol(printer.names.params, printer.names.indices)
            start, stop = affine_text(node.start, symbol), affine_text(node.stop, symbol)
            indices = f"range({stop if start == '0' else f'{start}, {stop}'})"
            if node.descending:
                indices = f"reversed({indices})"
            index = printer.names.indices.get(node.index.name, node.index.name)
            out.append(Line(f"for {index} in {indices}:", "", "", "", indent))
            _lines(node.body, printer, indent + INDENT, out)
        elif kind is Section:
            out.append(Line(f"# {node.title}", "", "", "", indent))
            _lines(node.body, printer, indent, out)
        elif kind is Append:
            items = ", ".join(_flattened(term, printer) for term in node.terms)
            row = items if node.scalar else f"({items}{',' if len(node.terms) == 1 else ''})"
            out.append(Line(f"{node.role}.append({row})", "", "", "", indent))
        else:
            raise AssertionError(f"unexpected node {node!r}")


def _flattened(term, printer: Printer) -> str:
    """A row's item: a value, or an array's elements in order (`*x_bar`; rows of a 2-D one in turn)."""
    if type(term) is not ArrayBar:
        return printer.atom(term)
    dims = dict(printer.tape.arrays)[term.array]
    name = printer.leaf(term)
    if dims == 1:
        return f"*{name}"
    loops = " ".join(f"for row{d} in {'row' + str(d - 1) if d else name}" for d in range(dims - 1))
    return f"*[value {loops} for value in row{dims - 2}]"


def _zeros(array: str, printer: Printer) -> str:
    """A list of zeros shaped as the array: [0.0] * len(x), or a list of rows for W[j, k]."""
    params = printer.names.params
    dims = dict(printer.tape.arrays)[array]
    text = f"[0.0] * {python_length(array, dims - 1, params)}"
    for dim in range(dims - 2, -1, -1):
        text = f"[{text} for _ in range({python_length(array, dim, params)})]"
    return text


def _rhs(term, printer: Printer) -> str:
    if type(term) is Op:
        for arg in term.args:
            if type(arg) is Op:
                return printer.term(term)
        return format_flat(term.op, term.args, printer._leaf, printer.dialect)  # no walk
    return printer.atom(term)


def _note(origins: tuple[int, ...], printer: Printer) -> str:
    """`  # w4 = sin(x1); w3 = x1 * x2`: the entries whose partials the line adds, as written."""
    return "  # " + "; ".join([printer.source_definition(origin) for origin in origins])


def _results(entry: Entry, printer: Printer) -> str:
    texts = []
    for result in entry.results:
        match result:
            case Scalar(term=term):
                texts.append(printer.atom(term))
            case Vector(terms=terms):
                texts.append(_tuple_text([printer.atom(term) for term in terms]))
            case Matrix(rows=rows):
                texts.append(_tuple_text([_tuple_text([printer.atom(term) for term in row]) for row in rows]))
            case Rows(role=role):
                texts.append(role)
    return ", ".join(texts)


def python_imports(rows: frozenset[str]) -> tuple[str, ...]:
    """`from math import cos, sin`: the functions the Python spellings of `rows` call, or nothing."""
    called = {name for row in rows for name in _calls(primitives.lookup(row).python)}
    return (f"from math import {', '.join(sorted(called))}",) if called else ()


@cache
def _calls(spelling: str) -> tuple[str, ...]:
    """The functions a row's Python spelling calls ("(copysign(1.0, {x}) if {x} else 0.0)": copysign)."""
    return tuple(re.findall(r"([A-Za-z_]\w*)\(", spelling))


def _tuple_text(items: list[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def module_docstring(source: str, tape: Tape, names: Names, wrt: tuple[str, ...]) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    if len(lines) == 1:
        expression = f"f = {' '.join(source.split())}"
    else:  # a program with definitions: one statement per line, as the user wrote them
        expression = "the program\n\n" + "\n".join(f"    {line}" for line in lines)
    inputs = ", ".join(
        name if names.params[name] == name else f"{name} (parameter {names.params[name]})" for name in tape.inputs
    )
    return (
        f"Value and gradient of {expression}\n\n"
        f"Generated by symdiff {__version__}. Do not edit: regenerate it with symdiff.\n"
        f"Inputs, in order: {inputs or 'none'}.\n"
        f"Gradient with respect to: {', '.join(wrt) or 'nothing'}.\n"
    )


def _derivatives_docstring(what: str, source: str, inputs: tuple[str, ...], wrt: tuple[str, ...]) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    expression = " ".join(source.split()) if len(lines) == 1 else "\n".join(f"    {x}" for x in lines)
    return (
        f"{what} of\n\n    {expression.strip()}\n\n"
        f"Generated by symdiff {__version__}. Do not edit: regenerate it with symdiff.\n"
        f"Inputs, in order: {', '.join(inputs) or 'none'}." + (f"\nDerivatives with respect to: {', '.join(wrt)}." if wrt else "") + "\n"
    )
