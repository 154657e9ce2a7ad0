"""graph: an expression (and optionally a point) -> its computational graph, as Graphviz DOT text.

One node per tape entry (inputs included), labelled with its definition, and at a point with its value
and its adjoint; one edge per variable operand, from the operand to the result, labelled with the local
partial (and its value). A shared subexpression is one node with several out-edges. A condition has no
partial: its edges are dotted. The edge of each where() operand says when it is used; at a point, the
branch not taken (entries not computed, steps not run) is dashed grey and labelled "not taken". The DOT text is
deterministic and needs nothing; SVG and PNG pictures are drawn by Graphviz's `dot` program.
"""

from __future__ import annotations

import html
import shutil
import struct
import subprocess
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core import primitives
from ..core.pipeline import Programs, build
from ..core.tape import COUNTER, INPUT, LENGTH, READ, Ref, Tape, is_primitive
from ..errors import SymdiffError
from ..files import MARKER, write_atomic
from ..resources import templates
from ..version import __version__
from .explain import (
    Accumulation,
    Style,
    Trace,
    accumulations,
    definition_text,
    entry_names,
    output_name,
    point_text,
    term_text,
    trace,
    with_value,
)

INSTALL_HINT = (
    "Graphviz's `dot` program is not installed, so symdiff cannot draw SVG or PNG pictures. Install Graphviz "
    "(Debian/Ubuntu: sudo apt-get install graphviz; Fedora: sudo dnf install graphviz; macOS: brew install "
    "graphviz; conda: conda install graphviz) and run the command again."
)
PICTURES = ("svg", "png")
_TITLE_CHARS = 120
# Forward values are black; the reverse sweep (adjoints and local partials) is drawn in one other colour.
_REVERSE_COLOUR = "#b03a2e"
_INPUT_FILL = "#dbe9f6"
# What a point leaves out (the branch not taken) is drawn dashed and grey; a condition's edges are dotted.
_NOT_TAKEN = 'color="grey", fontcolor="grey"'
_NOT_TAKEN_NODE = f'style="rounded,dashed", {_NOT_TAKEN}'
_NOT_TAKEN_EDGE = f"style=dashed, {_NOT_TAKEN}"
_CONDITION_EDGE = "style=dotted"
_INTEGERS = (COUNTER, LENGTH)
_DOT_TIMEOUT = 120  # seconds; dot lays out thousands of nodes in far less


class GraphvizNotFound(SymdiffError):
    """A picture was asked for, but Graphviz's `dot` is not installed."""


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str  # the inside of an HTML-like label, escaped
    attributes: str  # more DOT attributes, each after ", " ("" for none)


@dataclass(frozen=True, slots=True)
class Edge:
    tail: str
    head: str
    label: str
    attributes: str = ""  # more DOT attributes, each after ", " ("" for none)


@dataclass(frozen=True, slots=True)
class Graph:
    expression: str
    dot: str

    def __str__(self) -> str:
        return self.dot

    def render(self, kind: str) -> bytes:
        """The picture as "svg" or "png" bytes, drawn by Graphviz's dot."""
        if kind not in PICTURES:
            raise SymdiffError(f"cannot draw {kind!r}; choose {' or '.join(PICTURES)}")
        return render_dot(self.dot, kind)

    def save(self, path, force: bool = False) -> Path:
        """Write FILE.dot, FILE.svg or FILE.png atomically, never over a file symdiff did not write
        unless `force`. Raises GraphvizNotFound for a picture when dot is missing."""
        target = Path(path)
        match target.suffix.lower():
            case ".dot" | ".gv":
                return write_atomic(target, self.dot, force)
            case ".svg":
                return write_atomic(target, self.render("svg").decode("utf-8"), force)
            case ".png":
                return write_atomic(target, _mark_png(self.render("png")), force)
        raise SymdiffError(f"{target}: choose a file name ending in .dot, .svg or .png")

    def _repr_svg_(self) -> str | None:  # Jupyter shows the picture when Graphviz is there
        try:
            return self.render("svg").decode("utf-8")
        except SymdiffError:
            return None


def graph(expr, at: Mapping[str, float] | None = None, wrt=None) -> Graph:
    """The computational graph of `expr`; with a point `at`, every node and edge also shows numbers.
    An array program's loop body is drawn once, its nodes marked with their loop's index ("for each
    i"); with a point it would need one set of numbers per iteration, which explain lists instead."""
    programs = build(expr, wrt)
    tape = programs.tape
    if at is not None and tape.loops:
        reduction = tape.instrs[tape.loops[0].entry]
        raise SymdiffError(
            "graph draws a loop body once, so it cannot show numbers at a point (they change with the index): "
            "draw it without a point, and see every iteration's numbers with explain",
            tape.source,
            reduction.span,
        )
    walk = None if at is None else trace(programs, at)
    return Graph(programs.tape.source, dot_text(programs, walk))


def dot_text(programs: Programs, walk: Trace | None) -> str:
    tape = programs.tape
    names = entry_names(tape)
    style = Style("text")
    nodes = tuple(_node(tape, index, names, walk, style) for index in range(len(tape.instrs)))
    edges = tuple(_edges(programs, names, walk, style))
    return (
        templates()
        .get_template("graph.dot.j2")
        .render(
            marker=f"{MARKER} {__version__}",
            source=" ".join(tape.source.split()),
            title=_title(tape, names, walk),
            colour=_REVERSE_COLOUR,
            nodes=nodes,
            edges=edges,
        )
    )


def _node(tape: Tape, index: int, names: tuple[str, ...], walk: Trace | None, style: Style) -> Node:
    instr = tape.instrs[index]
    line = f"{names[index]} = {style.formula(definition_text(instr, names, tape))}"
    loops = [tape.loop_of(step).index for step, value in tape.path(index) if value is None]
    if loops:  # computed once per index of its loops
        line += f"  (for each {', '.join(loops)})"
    attributes = []
    if instr.op in (INPUT, READ):  # what the function is given: an input, an element of an array input
        attributes.append(f'shape=ellipse, style=filled, fillcolor="{_INPUT_FILL}"')
    if getattr(tape.output, "index", None) == index:
        attributes.append("peripheries=2")
    entry = None if walk is None else walk.entries[index]
    if entry is not None and not entry.computed:
        attributes.append(_NOT_TAKEN_NODE)
    extra = "".join(f", {attribute}" for attribute in attributes)
    if entry is None:
        return Node(names[index], html.escape(line), extra)
    if not entry.computed:
        return Node(names[index], f"{html.escape(line)}<br/>not taken", extra)
    if isinstance(entry.value, bool):  # a condition: a truth value, with no adjoint
        return Node(names[index], html.escape(f"{line} is {'true' if entry.value else 'false'}"), extra)
    adjoint = html.escape(f"{style.bar(entry.name)} = {style.number(entry.adjoint)}")
    value = html.escape(f"{line} = {style.number(entry.value)}")
    return Node(names[index], f'{value}<br/><font color="{_REVERSE_COLOUR}">{adjoint}</font>', extra)


def _edges(programs: Programs, names: tuple[str, ...], walk: Trace | None, style: Style):
    """One edge per operand, from the operand to the result, in tape order: a derivative's edge for each
    accumulation step of the raw sweep, a dotted one for each operand that has no partial (conditions)."""
    tape = programs.tape
    ran = {} if walk is None else {(step.origin, step.operand): step for step in walk.steps}
    edges = [
        (step.origin, position, _partial_edge(tape, names, step.origin, position, partial, walk, ran, style))
        for step, position, partial in accumulations(tape, programs.raw)
        if tape.instrs[step.target].op not in _INTEGERS
    ]
    edges.extend(_integer_edges(tape, names))
    edges.extend(_condition_edges(tape, names, walk))
    # The sweep visits entries from the last to the first; the picture lists them in tape order.
    yield from (edge for _, _, edge in sorted(edges, key=lambda item: item[:2]))


def _partial_edge(
    tape: Tape, names, origin: int, position: int, partial, walk: Trace | None, ran: dict, style: Style
) -> Edge:
    target = tape.instrs[origin].args[position].index
    symbol = style.partial(names[origin], names[target])
    step: Accumulation | None = ran.get((names[origin], position))
    attributes = ""
    if walk is None:
        label = f"{symbol} = {style.formula(term_text(partial, names))}{_when(tape, names, origin, position)}"
    elif step is None:  # a step of a branch not taken: it never ran
        label, attributes = f"{symbol} = {style.formula(term_text(partial, names))}, not taken", f", {_NOT_TAKEN_EDGE}"
    else:
        label = f"{symbol} = {with_value(step.partial, step.partial_value, style)}"
    return Edge(names[target], names[origin], html.escape(label), attributes)


def _when(tape: Tape, names, origin: int, position: int) -> str:
    """For an operand of a where(), the condition under which it is used: ` if w2`, ` if not w2`."""
    instr = tape.instrs[origin]
    branches = primitives.lookup(instr.op).branches if is_primitive(instr.op) else None
    if not branches or branches[position] is None:
        return ""
    return f" if {'' if branches[position] else 'not '}{names[instr.args[0].index]}"


def _integer_edges(tape: Tape, names):
    """Dotted edges from a loop index or a length used as a number: integers, they get no adjoint."""
    for origin, instr in enumerate(tape.instrs):
        for position, arg in enumerate(instr.args):
            if type(arg) is Ref and tape.instrs[arg.index].op in _INTEGERS:
                yield origin, position, Edge(names[arg.index], names[origin], "", f", {_CONDITION_EDGE}")


def _condition_edges(tape: Tape, names, walk: Trace | None):
    """Dotted edges for the operands that have no partial: a where()'s condition, a comparison's operands."""
    for origin, instr in enumerate(tape.instrs):
        if not is_primitive(instr.op):
            continue
        row = primitives.lookup(instr.op)
        for position, arg in enumerate(instr.args):
            if type(arg) is not Ref or row.partials[position] is not None:
                continue
            label = "condition" if row.branches else ""
            attributes = f", {_CONDITION_EDGE}"
            if walk is not None and not walk.entries[origin].computed:
                label, attributes = "not taken" if row.branches else "", f", {_CONDITION_EDGE}, {_NOT_TAKEN}"
            yield origin, position, Edge(names[arg.index], names[origin], label, attributes)


def _title(tape: Tape, names: tuple[str, ...], walk: Trace | None) -> str:
    source = " ".join(tape.source.split())
    if len(source) > _TITLE_CHARS:
        source = source[: _TITLE_CHARS - 3] + "..."
    output = output_name(tape)
    text = f"{output} = {source}"
    if walk is not None:
        point = ", ".join(f"{name} = {point_text(value)}" for name, value in walk.point)
        text += f" at {point or 'no inputs'}"
    index = getattr(tape.output, "index", None)
    held = "" if index is None else f"{output} is {names[index]} (double border); "
    legend = "each edge carries the local partial ∂result/∂operand"
    if walk is not None:
        legend = "values in black; in red, the reverse sweep: each adjoint, and on each edge the local partial"
    if any(is_primitive(instr.op) and primitives.lookup(instr.op).branches for instr in tape.instrs):  # a where()
        taken = (
            "dashed grey: the branch not taken" if walk is not None else "each edge into a where() says when it is used"
        )
        legend += f"; dotted: conditions; {taken}"
    if tape.loops:
        legend += (
            "; (for each i): computed for every index of its loop, the values added up by sum() or multiplied by prod()"
        )
    if any(instr.op == "prod" for instr in tape.instrs):
        legend += "; wk_before, wk_after: the product of wk's factors before the index and after it"
    if any(instr.op in _INTEGERS for instr in tape.instrs):
        legend += "; dotted: an index or a length, a whole number with no adjoint"
    return f"{html.escape(text)}<br/>{html.escape(held + legend)}"


def render_dot(dot: str, kind: str) -> bytes:
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFound(INSTALL_HINT)
    try:
        done = subprocess.run(
            [program, f"-T{kind}"], input=dot.encode("utf-8"), capture_output=True, timeout=_DOT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SymdiffError(f"Graphviz's dot failed: {error}") from None
    if done.returncode != 0:
        raise SymdiffError(f"Graphviz's dot failed: {done.stderr.decode('utf-8', 'replace').strip()}")
    return done.stdout


def _mark_png(data: bytes) -> bytes:
    """Add a tEXt chunk naming symdiff right after the PNG header chunk, where files.generated_by_symdiff
    finds it, so that drawing the same picture again may replace it."""
    header_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes of data, CRC
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise SymdiffError("Graphviz's dot did not produce a PNG image")
    text = f"Software\0{MARKER} {__version__}".encode("latin-1")
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    return data[:header_end] + chunk + data[header_end:]


__all__ = ["Graph", "GraphvizNotFound", "INSTALL_HINT", "graph", "render_dot"]
