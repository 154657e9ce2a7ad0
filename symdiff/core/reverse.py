"""reverse: Tape -> Adjoint, the textbook reverse sweep, unsimplified.

Every adjoint starts at 0, the output's adjoint is seeded with 1, then for each entry p from last to
first and each variable operand i: w_i_bar += w_p_bar * dw_p/dw_i, the local partial taken from the
entry's row and written over forward values. Constant operands get no derivative term.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache

from ..errors import SymdiffError
from . import primitives
from .adjoint import Adjoint, Bar, Op, Prefix, Step, Suffix, Term
from .expr import Apply, Num, Var, postorder
from .parse import parse_partial
from .tape import LEAVES, REDUCTIONS, Atom, Const, Ref, Tape

# The chain rule multiplies an adjoint by a local partial; this is the table row it multiplies with.
CHAIN = "mul"


def reverse(tape: Tape, wrt: tuple[str, ...] | None = None, output: int = 0) -> Adjoint:
    """The sweep for output number `output` of the tape (its adjoints are tagged with it)."""
    wrt = tape.inputs if wrt is None else check_wrt(wrt)
    seed = (tape.outputs or (tape.output,))[output]
    seeded = seed.index if isinstance(seed, Ref) else None
    # Every adjoint starts at 0 but the output's, which is seeded with d out / d out = 1.
    zero, one = Const(0.0), Const(1.0)
    steps = [Step(index, "=", one if index == seeded else zero, None) for index in range(len(tape.instrs))]
    steps.extend(sweep(tape, output))
    gradient = tuple(_input_adjoint(tape, name, output) for name in wrt)
    return Adjoint(tape, wrt, tuple(steps), gradient, output)


def sweep(tape: Tape, output: int = 0) -> Iterator[Step]:
    """The accumulation steps w_i_bar += w_p_bar * dw_p/dw_i, last entry first."""
    for p, parts in local_partials(tape):
        for target, partial, path, position in parts:
            yield Step(target, "+=", Op(CHAIN, (Bar(p, output), partial)), p, path, operand=position)


Partials = list[tuple[int, Term, tuple, int]]  # (operand entry, d entry / d operand, branch path, its position)


Make = Callable[[str, tuple], Term]  # how a partial's formula applies an op: Op (the raw term), or a folding one


def local_partials(tape: Tape, make: Make = Op) -> Iterator[tuple[int, Partials]]:
    """Per entry p, last first: the local partial of p by each variable operand, with the path it
    runs in. Made as they are consumed (simplify reads them once, so compile_grad never holds the
    raw sweep whole) and without the chain-rule product around them, which simplify builds itself;
    each application in a partial's formula is `make(op, args)`, so simplify folds them as they are made."""
    builders: dict[str, tuple] = {}  # op -> per operand, the partial's builder (None: no partial)
    for p in range(len(tape.instrs) - 1, -1, -1):
        instr = tape.instrs[p]
        if instr.op in LEAVES:
            continue
        if instr.op in REDUCTIONS:
            yield p, _reduction_partials(tape, p)
            continue
        row = primitives.lookup(instr.op)
        built = builders.get(row.name)
        if built is None:
            built = builders[row.name] = tuple(
                None if text is None else _builder(text, row.params) for text in row.partials
            )
        args, out, parts = instr.args, Ref(p), []
        for position, operand in enumerate(args):
            if type(operand) is Ref and built[position] is not None:  # conditions have no partial
                path = _branch(tape, p, row, position) if tape.paths else ()
                parts.append((operand.index, built[position](args, out, make), path, position))
        yield p, parts


def _reduction_partials(tape: Tape, p: int) -> Partials:
    """s = sum over i of b(i): ds/db(i) = 1, for every i, so the term runs in the loop (a step
    (p, None) on its path), where b and everything it is made of are recomputed for each i.
    s = prod over i of b(i): ds/db(i) is the product of the factors before i times those after it."""
    (body,) = tape.instrs[p].args
    if type(body) is not Ref:
        return []
    partial = Const(1.0) if tape.instrs[p].op == "sum" else Op("mul", (Prefix(p), Suffix(p)))
    return [(body.index, partial, (*tape.path(p), (p, None)), 0)]


def _branch(tape: Tape, p: int, row: primitives.Primitive, position: int) -> tuple:
    """Where the derivative term for operand `position` of entry p runs: p's own branch, and for a
    where() operand, only when its condition has the value that selects it."""
    branch = row.branches[position] if row.branches else None
    if branch is None:
        return tape.path(p)
    return tape.path(p) + ((tape.instrs[p].args[0].index, branch),)


def local_partial(row: primitives.Primitive, position: int, args: tuple[Atom, ...], out: Ref, make: Make = Op) -> Term:
    """d out / d args[position] as a term: the row's formula with its params bound to `args`."""
    text = row.partials[position]
    if text is None:
        raise AssertionError(f"{row.name} has no partial for {row.params[position]}, which must be constant")
    return _builder(text, row.params)(args, out, make)


Builder = Callable[[tuple, Ref, Make], Term]


@cache
def _builder(text: str, params: tuple[str, ...]) -> Builder:
    """A function building the partial `text` from operands and `out`: the formula is walked once,
    here, and every use afterwards only assembles terms (reverse calls this once per operand)."""
    built: list[Builder] = []
    for node in postorder(parse_partial(text)):
        match node:
            case Num(value=value):
                built.append(_constant(Const(value)))
            case Var(name="out"):
                built.append(_output)
            case Var(name=name):
                built.append(_operand(params.index(name)))
            case Apply(op=op, args=node_args):
                operands = tuple(built[len(built) - len(node_args) :])
                del built[len(built) - len(node_args) :]
                built.append(_application(op, operands))
    return built[0]


def _constant(value: Const) -> Builder:
    return lambda args, out, make: value


def _operand(position: int) -> Builder:
    return lambda args, out, make: args[position]


def _output(args: tuple, out: Ref, make: Make) -> Term:
    return out


def _application(op: str, operands: tuple) -> Builder:
    if len(operands) == 1:  # unrolled for one and two operands: every partial is built this way
        (only,) = operands
        return lambda args, out, make: make(op, (only(args, out, make),))
    if len(operands) == 2:
        first, second = operands
        return lambda args, out, make: make(op, (first(args, out, make), second(args, out, make)))
    return lambda args, out, make: make(op, tuple([operand(args, out, make) for operand in operands]))


def check_wrt(wrt) -> tuple[str, ...]:
    if isinstance(wrt, str):
        wrt = [part.strip() for part in wrt.split(",")]
    names = tuple(wrt)
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise SymdiffError(f"wrt: {name!r} is not a variable name")
    if len(set(names)) != len(names):
        raise SymdiffError(f"wrt: names repeat in {', '.join(names)}")
    return names


def _input_adjoint(tape: Tape, name: str, output: int) -> Term:
    index = tape.input_index(name)
    return Const(0.0) if index is None else Bar(index, output)
