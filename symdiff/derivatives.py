"""Beyond one gradient: modules for directional derivatives (jvp), Jacobians and Hessians.

Each builds a straight-line program of Assigns from the tape, the reverse sweeps (reverse.py,
simplify.py) and tangent sweeps (forward.py) - the same table partials throughout - removes lines
whose values nobody reads, and prints it with the Python template. The modules import only math.
"""

from __future__ import annotations

from . import primitives
from .adjoint import Adjoint, Bar, Op, Term
from .forward import Assign, Dot, TangentSweep, adjoint_assigns, forward_assigns, input_seeds, unit_seeds
from .names import assign_names
from .render import (
    Block,
    Function,
    Line,
    Module,
    _environment,
    _Printer,
    _tuple_text,
    branch_conditions,
    math_imports,
    nest,
)
from .simplify import simplify_sweep
from .tape import INPUT, Const, Ref, Tape
from .version import __version__


def jvp_source(tape: Tape) -> str:
    """`jvp(*point, *direction) -> (value, directional derivative)`: one forward sweep with tangents."""
    names = assign_names(tape)
    printer = _Printer(tape, names, "python")
    directions = {name: Dot(Ref(tape.input_index(name))) for name in tape.inputs}
    sweep = TangentSweep(tape, input_seeds(tape, directions))
    lines: list[Assign] = []
    for assign in forward_assigns(tape):
        lines.append(assign)
        lines.extend(sweep.step(assign))
    value, slope = tape.output, sweep.of(tape.output)
    params = [names.params[name] for name in tape.inputs]
    function = _function(
        "jvp",
        ", ".join(params + [f"{p}_dot" for p in params]),
        "Value and directional derivative along (x_dot, ...), from one forward sweep.",
        [("forward sweep with tangents (w_dot = sum of partial * operand_dot)", lines)],
        [value, slope],
        lambda terms: f"{printer.atom(terms[0])}, {printer.atom(terms[1])}",
        printer,
    )
    return _render(tape, "Directional derivative (forward mode)", (function,))


def jacobian_source(tape: Tape, wrt: tuple[str, ...], mode: str) -> str:
    """`jacobian(*point) -> rows` and `value_and_jacobian(*point) -> (values, rows)`: one reverse sweep
    per output (mode "reverse") or one tangent sweep per input (mode "forward")."""
    outputs = tape.outputs
    names = assign_names(tape, wrt)
    printer = _Printer(tape, names, "python", numbered_outputs=True, numbered_seeds=True)
    blocks: list[tuple[str, list[Assign]]]
    if mode == "reverse":
        adjoints = [simplify_sweep(tape, wrt, k) for k in range(len(outputs))]
        blocks = [("forward sweep", forward_assigns(tape))]
        blocks += [(f"reverse sweep of output {k + 1}", adjoint_assigns(a)) for k, a in enumerate(adjoints)]
        rows = [list(a.gradient) for a in adjoints]
    else:
        sweeps = [TangentSweep(tape, unit_seeds(tape, wrt, j), seed=j) for j in range(len(wrt))]
        lines: list[Assign] = []
        for assign in forward_assigns(tape):
            lines.append(assign)
            for sweep in sweeps:
                lines.extend(sweep.step(assign))
        blocks = [(f"forward sweep with one tangent per input ({', '.join(wrt)})", lines)]
        rows = [[sweep.of(output) for sweep in sweeps] for output in outputs]
    params = ", ".join(names.params[name] for name in tape.inputs)
    flat = [term for row in rows for term in row]

    def row_text(terms: list[Term]) -> str:
        texts = [printer.atom(term) for term in terms]
        return _tuple_text([_tuple_text(texts[k * len(wrt) : (k + 1) * len(wrt)]) for k in range(len(outputs))])

    functions = (
        _function("jacobian", params, f"The {len(outputs)}x{len(wrt)} Jacobian as a tuple of rows ({mode} mode).",
                  blocks, flat, row_text, printer),
        _function("value_and_jacobian", params, "The outputs and the Jacobian, from one forward sweep.",
                  blocks, list(outputs) + flat,
                  lambda terms: f"{_tuple_text([printer.atom(t) for t in terms[: len(outputs)]])}, "
                  f"{row_text(terms[len(outputs):])}", printer),
    )
    return _render(tape, f"Jacobian ({mode} mode)", functions, wrt)


def hessian_source(tape: Tape, adjoint: Adjoint) -> str:
    """`hessian(*point) -> (value, gradient, rows)` by forward over reverse: one tangent sweep per input
    through the forward and reverse sweeps; and `hvp(*point, *direction) -> (value, gradient, H v)`,
    one tangent sweep along the direction (a small multiple of the gradient's cost)."""
    wrt = adjoint.wrt
    names = assign_names(tape, wrt)
    program = forward_assigns(tape) + adjoint_assigns(adjoint)
    params = [names.params[name] for name in tape.inputs]

    many = _Printer(tape, names, "python", numbered_seeds=True)
    sweeps = [TangentSweep(tape, unit_seeds(tape, wrt, j), seed=j) for j in range(len(wrt))]
    lines = _interleave(program, sweeps)
    rows = [[sweep.of(g) for sweep in sweeps] for g in adjoint.gradient]
    n = len(wrt)

    def hessian_result(terms: list[Term]) -> str:
        value, gradient, flat = terms[0], terms[1 : 1 + n], terms[1 + n :]
        rows_text = _tuple_text([_tuple_text([many.atom(t) for t in flat[i * n : (i + 1) * n]]) for i in range(n)])
        return f"{many.atom(value)}, {_tuple_text([many.atom(t) for t in gradient])}, {rows_text}"

    hessian = _function(
        "hessian", ", ".join(params), "Value, gradient and Hessian (rows), forward over reverse.",
        [("forward and reverse sweeps, with one tangent sweep per input", lines)],
        [tape.output, *adjoint.gradient, *(t for row in rows for t in row)], hessian_result, many,
    )

    one = _Printer(tape, names, "python")
    directions = {name: Dot(Ref(tape.input_index(name))) for name in tape.inputs}
    sweep = TangentSweep(tape, input_seeds(tape, directions))
    hv_lines = _interleave(program, [sweep])
    products = [sweep.of(g) for g in adjoint.gradient]

    def hvp_result(terms: list[Term]) -> str:
        value, gradient, product = terms[0], terms[1 : 1 + n], terms[1 + n :]
        return (f"{one.atom(value)}, {_tuple_text([one.atom(t) for t in gradient])}, "
                f"{_tuple_text([one.atom(t) for t in product])}")

    hvp = _function(
        "hvp", ", ".join(params + [f"{p}_dot" for p in params]),
        "Value, gradient and the Hessian-vector product H (x_dot, ...), from one tangent sweep.",
        [("forward and reverse sweeps, with tangents along the direction", hv_lines)],
        [tape.output, *adjoint.gradient, *products], hvp_result, one,
    )
    return _render(tape, "Hessian (forward over reverse)", (hessian, hvp), wrt)


def _interleave(program: list[Assign], sweeps: list[TangentSweep]) -> list[Assign]:
    lines: list[Assign] = []
    for assign in program:
        lines.append(assign)
        for sweep in sweeps:
            lines.extend(sweep.step(assign))
    return lines


def _function(name, params, doc, blocks, results: list[Term], result_text, printer: _Printer) -> Function:
    """A function from blocks of Assigns: lines nobody reads are dropped (backwards liveness), and a
    kept line that nothing reads (a domain check) gets a name starting with "_"."""
    live = _leaves(results)
    # A branch's conditions are read by every line in it: each is made live once, by the first line
    # seen in its branch, not by every line (a path is as long as the branch is deep). Exact, as a
    # condition is computed before every line of its branch: no line before its definition, where
    # liveness drops it, is in the branch.
    live_branches: set[tuple] = set()  # every branch (path) a kept line is in, enclosing ones included
    kept_blocks = []
    for title, assigns in reversed(blocks):
        kept = []
        for assign in reversed(assigns):
            if assign.target not in live and not _guards_domain(assign, printer.tape):
                continue
            kept.append(assign)
            if assign.mode == "=":
                live.discard(assign.target)
            live |= _leaves([assign.term])
            live |= {Ref(condition) for condition in branch_conditions([assign.path], live_branches)}
        kept_blocks.append((title, kept[::-1]))
    read = _leaves(results) | _leaves([a.term for _, kept in kept_blocks for a in kept])
    read |= {Ref(branch[-1][0]) for branch in live_branches}
    rendered, flags = [], set()  # flags: the branch flags computed so far (see render.nest)
    for title, kept in reversed(kept_blocks):
        lines = [(a.path, _line(a, printer, a.target in read or a.mode != "=")) for a in kept]
        if lines:
            rendered.append(Block(title, nest(lines, printer, flags)))
    return Function(name, params, doc, tuple(rendered), result_text(results))


def _guards_domain(assign: Assign, tape: Tape) -> bool:
    if not isinstance(assign.target, Ref):
        return False
    instr = tape.instrs[assign.target.index]
    return instr.op != INPUT and primitives.lookup(instr.op).guard_domain


def _line(assign: Assign, printer: _Printer, is_read: bool) -> Line:
    target = printer.leaf(assign.target)
    if not is_read:
        target = f"_{target}"  # evaluated only so that a point outside the domain raises
    note = ""
    if assign.origin is not None and not isinstance(assign.target, Ref):
        note = f"  # {printer.source_definition(assign.origin)}"
    return Line(target, assign.mode, printer.atom(assign.term), note)


def _leaves(terms) -> set:
    found, stack = set(), list(terms)
    while stack:
        term = stack.pop()
        if isinstance(term, Op):
            stack.extend(term.args)
        elif isinstance(term, Ref | Bar | Dot):
            found.add(term)
    return found


def _render(tape: Tape, what: str, functions: tuple[Function, ...], wrt: tuple[str, ...] | None = None) -> str:
    lines = [line.strip() for line in tape.source.splitlines() if line.strip()]
    expression = " ".join(tape.source.split()) if len(lines) == 1 else "\n".join(f"    {x}" for x in lines)
    inputs = ", ".join(tape.inputs) or "none"
    docstring = (
        f"{what} of\n\n    {expression.strip()}\n\n"
        f"Generated by symdiff {__version__}. Do not edit: regenerate it with symdiff.\n"
        f"Inputs, in order: {inputs}." + (f"\nDerivatives with respect to: {', '.join(wrt)}." if wrt else "") + "\n"
    )
    module = Module(docstring, math_imports(functions), functions)
    return _environment().get_template("python.py.j2").render(
        docstring=module.docstring, imports=module.imports, functions=module.functions
    )


__all__ = ["jvp_source", "jacobian_source", "hessian_source", "Const"]
