"""render: Adjoint -> the source of a standalone module (imports only from math; never symdiff).

All decisions (names, which forward entries each function needs, `=` or `+=`, comments) are made
here and handed to a logic-free Jinja template as records of strings.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import jinja2

from . import primitives
from .adjoint import Adjoint, Bar, Op, Step, Term, sign_into_constant
from .names import Names, assign_names
from .printing import format_flat, format_tree, number_text
from .resources import templates_dir
from .tape import INPUT, Const, Instr, Ref, Tape
from .version import __version__


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


@cache
def _environment() -> jinja2.Environment:
    # Jinja environments are safe to share between threads once built; @cache builds one.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(adjoint: Adjoint, template: str = "python.py.j2", functions: tuple[str, ...] | None = None) -> str:
    """The module's text; `functions` limits it to some of f, grad, value_and_grad (default: all)."""
    module = python_module(adjoint) if functions is None else python_module(adjoint, functions=functions)
    return _environment().get_template(template).render(
        docstring=module.docstring, imports=module.imports, functions=module.functions
    )


class _Printer:
    """Prints terms and forward entries of one tape with one set of names."""

    def __init__(self, tape: Tape, names: Names, dialect: str, numbered_outputs=False, numbered_seeds=False):
        self.tape, self.names, self.dialect = tape, names, dialect
        self._definitions: dict[int, str] = {}  # each entry is printed once, however often it is used
        self._comments: dict[int, str] = {}
        # With several outputs (a Jacobian) adjoints are numbered by output: x_bar1, x_bar2; with
        # several tangent sweeps (a Hessian) tangents by seed: x_bar_dot1, x_bar_dot2.
        self.numbered_outputs, self.numbered_seeds = numbered_outputs, numbered_seeds
        # A branch more than one where() deep is tested through a flag, numbered on from the tape's
        # last entry (w{n+1}, w{n+2}, ...: names no input or definition may take), the same in every function.
        self._flags: dict[tuple, str] = {}

    def branch(self, path: tuple) -> str:
        """The truth value under which a block of branch `path` runs: its condition (`w2`, `not w2`)
        when the branch is one where() deep, else the branch's flag (see flags)."""
        if len(path) > 1:
            return self._flags[path]
        ((condition, value),) = path
        return self.names.value(condition) if value else f"not {self.names.value(condition)}"

    def flags(self, path: tuple, defined: set[tuple]) -> list[Line]:
        """The lines computing the flags of `path` and of the branches it is in that are not `defined`
        yet, outermost first: a branch's flag is its enclosing branch's truth value and its own
        condition (`w9 = w5 and not w2`). `and` reads the condition only when the enclosing branch runs,
        the only place the condition has a value."""
        missing = []
        while len(path) > 1 and path not in defined:
            missing.append(path)
            path = path[:-1]
        lines = []
        for path in reversed(missing):
            defined.add(path)
            name = self._flags.get(path)
            if name is None:
                name = self._flags[path] = f"w{len(self.tape.instrs) + len(self._flags) + 1}"
            lines.append(Line(name, "=", f"{self.branch(path[:-1])} and {self.branch(path[-1:])}", ""))
        return lines

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
            text = f"{self.names.value(index)} = {format_flat(instr.op, instr.args, self._leaf, 'symdiff')}"
            self._comments[index] = text
        return text

    def _leaf(self, node) -> str:
        if isinstance(node, Ref):
            return self.names.value(node.index)
        if isinstance(node, Bar):
            number = str(node.output + 1) if self.numbered_outputs else ""
            return self.names.adjoint(node.index) + number
        of = getattr(node, "of", None)  # a forward.Dot: the tangent of a value or of an adjoint
        if of is not None:
            return f"{self._leaf(of)}_dot" + (str(node.seed + 1) if self.numbered_seeds else "")
        raise AssertionError(f"unexpected leaf {node!r}")

    def leaf(self, node) -> str:
        return self._leaf(node)


FUNCTIONS = ("f", "grad", "value_and_grad")


def python_module(adjoint: Adjoint, dialect: str = "python", functions: tuple[str, ...] = FUNCTIONS) -> Module:
    """The render context of a module defining `functions` (a subset of FUNCTIONS, in that order)."""
    tape = adjoint.tape
    names = assign_names(tape, adjoint.wrt)
    printer = _Printer(tape, names, dialect)
    params = ", ".join(names.params[name] for name in tape.inputs)
    value = printer.atom(tape.output)
    output_needs = _refs([tape.output])
    gradient_needs = _refs([step.term for step in adjoint.steps] + list(adjoint.gradient))
    gradient_needs |= branch_conditions((step.path for step in adjoint.steps), set())
    # Only what f() computes: a definition nothing reads raises in neither.
    guards = frozenset(
        i
        for i in _closure_with_conditions(tape, output_needs)
        if tape.instrs[i].op != INPUT and primitives.lookup(tape.instrs[i].op).guard_domain
    )
    seed = "" if not isinstance(tape.output, Ref) else f" (seed {names.adjoint(tape.output.index)} = 1)"
    wrt = ", ".join(f"d/d{name}" for name in adjoint.wrt) or "no inputs"

    def with_gradient(roots: set[int], guarded: frozenset[int], extra_reads: tuple = ()) -> tuple[tuple, str]:
        """The forward and reverse blocks of a function that returns the gradient, and its gradient
        text; forward values that only one reverse term reads are computed in that term."""
        in_place = _read_once_by_sweep(adjoint, _closure_with_conditions(tape, roots | guarded), guarded, extra_reads)
        flags: set[tuple] = set()  # the branch flags this function has computed
        forward = _forward(tape, roots, printer, guarded, skip=in_place, flags=flags)
        lines = nest(_reverse_lines(adjoint.steps, printer, in_place), printer, flags)
        gradient = _tuple_text([printer.atom(_substituted(term, in_place)) for term in adjoint.gradient])
        return _blocks(forward, Block(f"reverse sweep{seed}", lines)), gradient

    def grad() -> Function:
        blocks, gradient = with_gradient(gradient_needs, guards)
        doc = f"Gradient ({wrt}); computes only the forward values the reverse sweep reads."
        return Function("grad", params, doc, blocks, gradient)

    def value_and_grad() -> Function:
        blocks, gradient = with_gradient(output_needs | gradient_needs, frozenset(), (tape.output,))
        return Function("value_and_grad", params, "Value and gradient from one forward sweep.", blocks,
                        f"{value}, {gradient}")

    builders = {
        "f": lambda: Function(
            "f", params, "Value of the expression.", _blocks(_forward(tape, output_needs, printer)), value
        ),
        "grad": grad,
        "value_and_grad": value_and_grad,
    }
    chosen = tuple(builders[name]() for name in FUNCTIONS if name in functions)
    return Module(_docstring(tape.source, tape, names, adjoint.wrt), math_imports(chosen), chosen)


def _blocks(*candidates: Block) -> tuple[Block, ...]:
    return tuple(block for block in candidates if block.lines)


def _forward(
    tape: Tape,
    roots: set[int],
    printer: _Printer,
    guards: frozenset[int] = frozenset(),
    skip: Collection[int] = (),
    flags: set[tuple] | None = None,
) -> Block:
    """The forward lines computing `roots`; `guards` are computed too, for their domain check only
    (their names start with "_" since nothing reads them). Entries in `skip` are computed where the
    reverse sweep reads them. `flags`: the branch flags computed so far (see nest)."""
    used = _closure_with_conditions(tape, roots)
    needed = used | _closure_with_conditions(tape, set(guards))
    read = {arg.index for index in needed for arg in tape.instrs[index].args if type(arg) is Ref}
    lines = []
    for index, instr in enumerate(tape.instrs):
        if index not in needed or instr.op == INPUT or index in skip:
            continue
        # A guard is only checked, unless a line computed for another guard reads its value.
        if index in used or index not in guards or index in read:
            lines.append((tape.path(index), Line(printer.names.value(index), "=", printer.definition(index), "")))
        else:
            lines.extend((tape.path(index), line) for line in _guard(instr, index, printer))
    return Block("forward sweep", nest(lines, printer, flags))


def _guard(instr: Instr, index: int, printer: _Printer) -> tuple[Line, Line]:
    """`if not x > 0.0: log(x)`: outside the row's domain, evaluate it to raise as f() does."""
    row = primitives.lookup(instr.op)
    condition = row.guard_domain.format(**dict(zip(row.params, (printer.atom(arg) for arg in instr.args))))
    note = f"  # {printer.source_definition(index)} is undefined here: raise as f() does"
    return Line(f"if not {condition}:", "", "", note), Line(printer.definition(index), "", "", "", "    ")


def _closure_with_conditions(tape: Tape, roots: set[int]) -> set[int]:
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
    forward_reads: set[int] = set(_refs(extra_reads))
    for index in computed:
        forward_reads.update(arg.index for arg in tape.instrs[index].args if type(arg) is Ref)
    sweep_reads: dict[int, int] = defaultdict(int)
    branches: set[tuple] = set()
    for step in adjoint.steps:
        if step.path:  # in a branch: the value must exist before the branch is entered
            forward_reads |= _refs([step.term]) | branch_conditions([step.path], branches)
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
        and tape.instrs[index].op != INPUT
        and not tape.path(index)
        and not primitives.lookup(tape.instrs[index].op).guard_domain
    }


def _count_refs(term: Term, counts: dict[int, int], named: set[int]) -> None:
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


def _substituted(term: Term, in_place: Mapping[int, Term]) -> Term:
    """`term` with the forward values in `in_place` replaced by their operations (bottom up, no
    recursion: a term can be as deep as a long sum)."""
    if not in_place:
        return term
    if type(term) is Ref:
        return in_place.get(term.index, term)
    if type(term) is not Op:
        return term
    done: dict[int, Term] = {}  # id(node) -> its substituted copy
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


def _reverse_lines(
    steps: tuple[Step, ...], printer: _Printer, in_place: Mapping[int, Term] | None = None
) -> list[tuple[tuple, Line]]:
    """(path, line) per statement of the reverse sweep: a run of steps that assigns an adjoint and
    then adds to it in the same branch becomes one line, evaluated in the same order. Forward values
    in `in_place` are computed in the term that reads them."""
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
        items.append((first.path, _reverse_line(run[0], printer) if len(run) == 1 else _sum_line(run, printer)))
        start = end
    return items


def _sum_line(run: tuple[Step, ...], printer: _Printer) -> Line:
    terms = [(step.mode, step.term) for step in run]
    total = terms[0][1]
    if isinstance(total, Op) and total.op == "neg" and terms[1][0] == "+=":
        # -u + t is exactly t - u in IEEE arithmetic, and one negation fewer.
        total, terms = Op("sub", (terms[1][1], total.args[0])), terms[1:]
    else:
        total = sign_into_constant(total)
    for mode, term in terms[1:]:
        total = Op("add" if mode == "+=" else "sub", (total, term))
    origins = "; ".join(printer.source_definition(origin) for step in run for origin in step.origins)
    return Line(printer.names.adjoint(run[0].target), "=", printer.term(total), f"  # {origins}")


def _reverse_line(step: Step, printer: _Printer) -> Line:
    note = "; ".join(printer.source_definition(origin) for origin in step.origins)
    note = f"  # {note}" if note else ""
    term = sign_into_constant(step.term) if step.mode == "=" else step.term
    return Line(printer.names.adjoint(step.target), step.mode, printer.atom(term), note)


def nest(items: list[tuple[tuple, Line]], printer: _Printer, defined: set[tuple] | None = None) -> tuple[Line, ...]:
    """Lines that run only in a branch go under an `if`, so a branch not taken is never evaluated;
    consecutive lines of one branch share it. Branches inside branches are not nested ifs (CPython
    refuses 100 levels of indentation): each block tests one truth value, its condition or a flag
    (printer.flags), so indentation never grows with nesting. `defined`: the flags the function has
    computed already (updated here)."""
    defined = set() if defined is None else defined
    lines: list[Line] = []
    current: tuple = ()
    for path, line in items:
        if not path and not current:  # outside every branch (without where(), every line): as it is
            lines.append(line)
            continue
        if path != current:
            lines.extend(printer.flags(path, defined))
            if path:
                lines.append(Line(f"if {printer.branch(path)}:", "", "", ""))
            current = path
        lines.append(Line(line.target, line.op, line.rhs, line.note, "    " + line.indent) if path else line)
    return tuple(lines)


# Calls of math's functions, matched only where a word starts (\b): a megabyte-long name costs
# one linear scan, not one per character.
_MATH_CALL = re.compile(r"\b(" + "|".join(sorted(primitives.PYTHON_IMPORTS)) + r")\(")


def math_imports(functions: tuple[Function, ...]) -> tuple[str, ...]:
    """`from math import cos, sin`: the functions the printed lines call (a search of the text, no
    walk over the terms), or nothing."""
    called: set[str] = set()
    for text in _printed(functions):
        if "(" in text:
            called.update(_MATH_CALL.findall(text))
    used = sorted(called)
    return (f"from math import {', '.join(used)}",) if used else ()


def _printed(functions: tuple[Function, ...]):
    """The code text of every statement and return value of `functions`."""
    for function in functions:
        yield function.result
        for block in function.blocks:
            yield from (line.text for line in block.lines)


def _refs(terms) -> set[int]:
    """The forward values the adjoint terms read."""
    found, stack = set(), list(terms)
    while stack:
        term = stack.pop()
        kind = type(term)
        if kind is Op:
            stack.extend(term.args)
        elif kind is Ref:
            found.add(term.index)
    return found


def _tuple_text(items: list[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _docstring(source: str, tape: Tape, names: Names, wrt: tuple[str, ...]) -> str:
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
