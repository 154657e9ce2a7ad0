"""Beyond one gradient: programs for directional derivatives (jvp), Jacobians and Hessians.

Each builds straight-line sweeps of Assigns from the tape, the reverse sweeps (reverse.py,
simplify.py) and tangent sweeps (forward.py) - the same table partials throughout - and hands them to
program.straight_line_entry, which drops the lines nobody reads and nests branches; the Program is
printed by each backend (codegen/python.py, numpy.py, c.py).
"""

from __future__ import annotations

from .adjoint import Adjoint
from .forward import Assign, Dot, TangentSweep, adjoint_assigns, forward_assigns, input_seeds, unit_seeds
from .program import (
    Append,
    Entry,
    Header,
    Index,
    Loop,
    Matrix,
    Param,
    Program,
    Rows,
    Scalar,
    Section,
    Vector,
    build_program,
    straight_line_entry,
)
from .program import (
    Assign as ProgramAssign,
)
from .simplify import simplify_sweep
from .tangents import tangent_entry
from .tape import Const, Ref, Tape


def jvp_program(tape: Tape) -> Program:
    """`jvp(*point, *direction) -> (value, directional derivative)`: one forward sweep with tangents."""
    directions = {name: Dot(Ref(tape.input_index(name))) for name in tape.inputs}
    sweep = TangentSweep(tape, input_seeds(tape, directions))
    lines: list[Assign] = []
    for assign in forward_assigns(tape):
        lines.append(assign)
        lines.extend(sweep.step(assign))
    params = tuple(Param(name) for name in tape.inputs) + tuple(Param(name, tangent=True) for name in tape.inputs)
    entry = straight_line_entry(
        tape,
        "jvp",
        params,
        "Value and directional derivative along (x_dot, ...), from one forward sweep.",
        [("forward sweep with tangents (w_dot = sum of partial * operand_dot)", lines)],
        (Scalar("value", tape.output), Scalar("derivative", sweep.of(tape.output))),
    )
    return Program(Header("jvp", tape.source, tape.inputs, ()), tape, (entry,))


def jacobian_program(tape: Tape, wrt: tuple[str, ...], mode: str) -> Program:
    """`jacobian(*point) -> rows` and `value_and_jacobian(*point) -> (values, rows)`: one reverse sweep
    per output (mode "reverse") or one tangent sweep per input (mode "forward")."""
    outputs = tape.outputs
    sections: list[tuple[str, list[Assign]]]
    if mode == "reverse":
        adjoints = [simplify_sweep(tape, wrt, k) for k in range(len(outputs))]
        sections = [("forward sweep", forward_assigns(tape))]
        sections += [(f"reverse sweep of output {k + 1}", adjoint_assigns(a)) for k, a in enumerate(adjoints)]
        rows = [tuple(a.gradient) for a in adjoints]
    else:
        sweeps = [TangentSweep(tape, unit_seeds(tape, wrt, j), seed=j) for j in range(len(wrt))]
        sections = [(f"forward sweep with one tangent per input ({', '.join(wrt)})", _interleave(forward_assigns(tape), sweeps))]
        rows = [tuple(sweep.of(output) for sweep in sweeps) for output in outputs]
    params = tuple(Param(name) for name in tape.inputs)
    jacobian = Matrix("jacobian", tuple(rows))
    entries = (
        straight_line_entry(tape, "jacobian", params,
                            f"The {len(outputs)}x{len(wrt)} Jacobian as a tuple of rows ({mode} mode).",
                            sections, (jacobian,)),
        straight_line_entry(tape, "value_and_jacobian", params, "The outputs and the Jacobian, from one forward sweep.",
                            sections, (Vector("values", tuple(outputs)), jacobian)),
    )
    return Program(Header("jacobian", tape.source, tape.inputs, wrt, mode), tape, entries)


def rows_jacobian_program(tape: Tape, wrt: tuple[str, ...]) -> Program:
    """The Jacobian of a vector output [b for i in range(...)]: for each i, the gradient program of b
    (a function of i) runs and its gradient is one row (an array in wrt gives one column per element).
    `jacobian` returns the rows, `value_and_jacobian` the outputs too."""
    adjoint = simplify_sweep(tape, wrt)
    grad, both = build_program(adjoint, ("grad", "value_and_grad")).entries
    row = tape.rows
    params = tuple(Param(name) for name in tape.inputs)

    def per_output(name: str, entry: Entry, roles: tuple[str, ...], doc: str) -> Entry:
        terms = {"values": (entry.results[0].term,) if len(entry.results) > 1 else (), "jacobian": entry.results[-1].terms}
        starts = tuple(ProgramAssign(Rows(role), "=", Const(0.0)) for role in roles)
        appends = tuple(Append(role, terms[role], role == "values") for role in roles)
        loop = Loop(Index(row.index), row.start, row.stop, (*entry.body, *appends))
        title = f"one reverse sweep per output ({row.index} = each output's index)"
        return Entry(name, params, doc, (Section(title, (*starts, loop)),), tuple(Rows(role) for role in roles))

    entries = (
        per_output("jacobian", grad, ("jacobian",), "The Jacobian as a list of rows, one per output (reverse mode)."),
        per_output("value_and_jacobian", both, ("values", "jacobian"), "The outputs and the Jacobian's rows."),
    )
    return Program(Header("jacobian", tape.source, tape.inputs, wrt, "reverse"), tape, entries)


def array_jvp_program(tape: Tape) -> Program:
    """jvp of an array program: the value's program (loops and all) with its tangents beside it."""
    (value,) = build_program(simplify_sweep(tape, ()), ("f",)).entries
    params = tuple(Param(name) for name in tape.inputs) + tuple(Param(name, tangent=True) for name in tape.inputs)
    entry = tangent_entry(
        tape, value, "jvp", params, "Value and directional derivative along (x_dot, ...), from one forward sweep.",
        lambda tangents: (Scalar("value", tape.output), Scalar("derivative", tangents.of(tape.output))),
    )
    return Program(Header("jvp", tape.source, tape.inputs, ()), tape, (entry,))


def array_hvp_program(tape: Tape, adjoint: Adjoint) -> Program:
    """hvp of an array program: forward over reverse through the value-and-gradient program's loops."""
    (both,) = build_program(adjoint, ("value_and_grad",)).entries
    value, gradient = both.results
    params = tuple(Param(name) for name in tape.inputs) + tuple(Param(name, tangent=True) for name in tape.inputs)
    entry = tangent_entry(
        tape, both, "hvp", params,
        "Value, gradient and the Hessian-vector product H (x_dot, ...), from one tangent sweep.",
        lambda tangents: (value, gradient, Vector("hvp", tuple(tangents.of(term) for term in gradient.terms))),
    )
    return Program(Header("hessian", tape.source, tape.inputs, adjoint.wrt), tape, (entry,))


def hessian_program(tape: Tape, adjoint: Adjoint) -> Program:
    """`hessian(*point) -> (value, gradient, rows)` by forward over reverse: one tangent sweep per input
    through the forward and reverse sweeps; and `hvp(*point, *direction) -> (value, gradient, H v)`,
    one tangent sweep along the direction (a small multiple of the gradient's cost)."""
    wrt = adjoint.wrt
    program = forward_assigns(tape) + adjoint_assigns(adjoint)
    params = tuple(Param(name) for name in tape.inputs)
    value, gradient = Scalar("value", tape.output), Vector("gradient", adjoint.gradient)

    sweeps = [TangentSweep(tape, unit_seeds(tape, wrt, j), seed=j) for j in range(len(wrt))]
    lines = _interleave(program, sweeps)
    rows = Matrix("hessian", tuple(tuple(sweep.of(g) for sweep in sweeps) for g in adjoint.gradient))
    hessian = straight_line_entry(
        tape, "hessian", params, "Value, gradient and Hessian (rows), forward over reverse.",
        [("forward and reverse sweeps, with one tangent sweep per input", lines)], (value, gradient, rows),
    )

    directions = {name: Dot(Ref(tape.input_index(name))) for name in tape.inputs}
    sweep = TangentSweep(tape, input_seeds(tape, directions))
    hv_lines = _interleave(program, [sweep])
    products = Vector("hvp", tuple(sweep.of(g) for g in adjoint.gradient))
    hvp = straight_line_entry(
        tape, "hvp", params + tuple(Param(name, tangent=True) for name in tape.inputs),
        "Value, gradient and the Hessian-vector product H (x_dot, ...), from one tangent sweep.",
        [("forward and reverse sweeps, with tangents along the direction", hv_lines)], (value, gradient, products),
    )
    return Program(Header("hessian", tape.source, tape.inputs, wrt), tape, (hessian, hvp))


def _interleave(program: list[Assign], sweeps: list[TangentSweep]) -> list[Assign]:
    lines: list[Assign] = []
    for assign in program:
        lines.append(assign)
        for sweep in sweeps:
            lines.extend(sweep.step(assign))
    return lines


__all__ = ["array_hvp_program", "array_jvp_program", "hessian_program", "jacobian_program", "jvp_program", "rows_jacobian_program"]
