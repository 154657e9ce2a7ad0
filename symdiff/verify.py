"""verify: prove an adjoint program, and the code generated from it, right with SymPy.

Each partial is rebuilt as a SymPy expression by running the program symbolically, then compared
with sympy.diff of the expression: symbolically first (the difference simplifies to 0, under a time
budget), else numerically at seeded random points. The unsimplified program is checked against the
simplified one the same way, and every derivative rule the tape uses is checked on its own, so a
wrong rule is reported at the place in the input that uses it. Last, the generated code itself is
run: a Python module on SymPy symbols where it does not branch, and every module at points chosen
so that each where() goes both ways. A module that raises or differs is a failed proof.

Array programs (x[i], sums over ranges) are proven at each array length from the least the bounds
allow up to 5, against sympy.diff of the program unrolled term by term there (core.unroll); see
verify_arrays.
"""

from __future__ import annotations

import builtins
import itertools
import math
import operator
import random
import re
import signal
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import sympy

from .calling import load
from .codegen import python as python_printer  # the printed code is part of what is proven
from .core import primitives
from .core.adjoint import Adjoint, Bar, Op, Term
from .core.bounds import bounds, violation
from .core.expr import Length
from .core.parse import parse_program
from .core.printing import affine_text, format_flat
from .core.reverse import local_partial
from .core.tape import COUNTER, INPUT, LENGTH, READ, Const, Ref, Tape, is_primitive
from .core.unroll import elements, scalar, unroll
from .errors import LimitError, Span, SymdiffError
from .limits import DEFAULT_LIMITS, Limits

DEFAULT_TIMEOUT = 5.0  # seconds of sympy.simplify per comparison before falling back to numbers
_POINTS, _NEEDED = 40, 4
# Generated code is run at no fewer than this many points, more when its branches need them, chosen
# among this many seeded candidates.
_MODULE_POINTS, _CANDIDATES = 3, 256
ENTRY_POINTS = ("f", "grad", "value_and_grad")


@dataclass(frozen=True)
class Check:
    subject: str  # what was compared: "d/dx1", "rule sin'(x)", or generated code: "python grad"
    equal: bool | None  # None: neither proven nor refuted
    method: str  # "symbolic", "numeric (N points)", or why neither worked
    expected: str  # the two sides, printed when they were not proven equal (printing costs more
    actual: str  # than the proof of a large sum)
    span: Span | None = None


@dataclass(frozen=True)
class Report:
    expression: str
    gradient: tuple[Check, ...]  # program vs sympy.diff, one per wrt
    simplification: tuple[Check, ...]  # simplified vs unsimplified program, one per wrt
    rules: tuple[Check, ...]  # each (row, operand) the tape uses: partial vs sympy.diff of the row
    emitted: tuple[Check, ...] = ()  # each entry point of the generated code vs the proven values
    unreached: tuple[str, ...] = ()  # branches of the input no check point took (none ran their code)

    @property
    def ok(self) -> bool:
        checks = self.gradient + self.simplification + self.rules + self.emitted
        return all(check.equal is True for check in checks)

    def __str__(self) -> str:
        lines = [f"verify: {self.expression}"]
        for title, checks, got in (
            ("gradient vs sympy.diff", self.gradient, "program"),
            ("simplified vs unsimplified program", self.simplification, "program"),
            ("derivative rules used", self.rules, "program"),
            ("generated code vs proven gradient", self.emitted, "code"),
        ):
            lines.append(f"  {title}:")
            width = max((len(check.subject) for check in checks), default=0) if got == "code" else 14
            for check in checks:
                verdict = {True: "ok", False: "MISMATCH", None: "inconclusive"}[check.equal]
                lines.append(f"    {check.subject:<{width}} {verdict:<12} {check.method}")
                if check.equal is not True:
                    lines.append(f"      expected {_short(check.expected)}")
                    lines.append(f"      {got:<8} {_short(check.actual)}")
            if not checks:
                lines.append("    (nothing to check)")
        lines.extend(f"    branch never taken at the check points: {branch}" for branch in self.unreached)
        lines.append("result: " + ("all proven equal" if self.ok else "NOT proven"))
        return "\n".join(lines)


@dataclass(frozen=True)
class Emitted:
    """Generated code to check against the proof, as users run it.

    `entry(name)` gives entry point `name` ("f", "grad", "value_and_grad", and "batch" for the array
    backends), loading it if need be; it may raise, as may the entry point. For Python code,
    `python(name)` is the source text that defines entry point `name`, to run on SymPy symbols."""

    backend: str
    entry: Callable[[str], Callable]
    names: tuple[str, ...] = ENTRY_POINTS
    python: Callable[[str], str] | None = None


def verify_programs(
    raw: Adjoint,
    simplified: Adjoint,
    timeout: float = DEFAULT_TIMEOUT,
    limits: Limits = DEFAULT_LIMITS,
    modules: Sequence[Emitted] | None = None,
) -> Report:
    """Prove `simplified` (and `raw`) right, and the generated `modules` with them. By default the
    module checked is the Python module rendered from `simplified`, as `symdiff grad` writes it.
    An array program goes to verify_arrays (`raw`, which reverse() makes without its loops, is unused)."""
    tape = raw.tape
    _check_size(tape, limits)
    if modules is None:
        modules = (python_module(_render(simplified)),)
    try:
        if tape.arrays:
            return verify_arrays(simplified, timeout, tuple(modules))
        return _verify(raw, simplified, timeout, tuple(modules))
    except RecursionError:
        raise LimitError("expression is nested too deeply for SymPy to verify", tape.source, (0, 0)) from None


def _render(adjoint: Adjoint) -> str:
    return python_printer.render(adjoint)


def python_module(source: str) -> Emitted:
    """A generated Python module's text, loaded once as it would be imported."""
    namespace: dict = {}

    def entry(name: str) -> Callable:
        if not namespace:
            namespace.update(load(source, "verified"))
        return namespace[name]

    return Emitted("python", entry, python=lambda name: source)


def _check_size(tape: Tape, limits: Limits) -> None:
    if len(tape.instrs) > limits.verify_max_entries:
        raise LimitError(
            f"expression has {len(tape.instrs):,} operations; verify handles up to "
            f"{limits.verify_max_entries:,} (Limits.verify_max_entries)",
            tape.source,
            (0, len(tape.source)),
        )
    # Nesting as SymPy sees it: a chain of sums (or of products) is one flat Add (Mul), one level.
    depth: list[int] = []
    families = [_family(primitives.lookup(instr.op)) if is_primitive(instr.op) else None for instr in tape.instrs]
    for index, instr in enumerate(tape.instrs):
        level = 1
        for a in instr.args:
            if isinstance(a, Ref):
                flat = families[index] is not None and families[a.index] == families[index]
                level = max(level, depth[a.index] + (0 if flat else 1))
        depth.append(level)
        if level > limits.verify_max_depth:
            raise LimitError(
                f"expression is nested {level} deep here; verify handles up to "
                f"{limits.verify_max_depth} (Limits.verify_max_depth)",
                tape.source,
                instr.span,
            )


def _verify(raw: Adjoint, simplified: Adjoint, timeout: float, modules: tuple[Emitted, ...]) -> Report:
    tape = raw.tape
    symbols = {name: sympy.Symbol(name, real=True) for name in tape.inputs + raw.wrt}
    forward = sympy_forward(tape, symbols)
    function = _atom(tape.output, forward)
    expected = gradient_of(function, [symbols[name] for name in raw.wrt])
    from_simplified = run_symbolically(simplified, forward)
    from_raw = run_symbolically(raw, forward)
    subjects = [f"d/d{name}" for name in raw.wrt]
    points = _Sampler(list(symbols.values()))
    gradient = tuple(
        compare(s, e, a, timeout, points) for s, e, a in zip(subjects, expected, from_simplified)
    )
    simplification = tuple(
        compare(s, e, a, timeout, points) for s, e, a in zip(subjects, from_raw, from_simplified)
    )
    # The programs' partials that are proven equal to sympy.diff's (the raw one through the simplified).
    programs = [from_simplified] if all(c.equal for c in gradient) else []
    if programs and all(c.equal for c in simplification):
        programs.append(from_raw)
    proven = _Proven(tape, forward, raw.wrt, symbols, function, tuple(expected), timeout, points, programs)
    emitted = tuple(check for module in modules for check in _check_module(module, proven))
    return Report(tape.source, gradient, simplification, check_rules(tape, timeout), emitted, proven.unreached())


# SymPy's Add and Mul are flat: a chain of rows whose SymPy counterparts are + and - (or * and /) is
# built as one n-ary Add (Mul), in time linear in its length and without recursion. The sign (or
# exponent) of a row's second operand: a - b is a + (-b), a / b is a * b^-1, as SymPy writes them.
_FAMILIES = {operator.add: "sum", operator.sub: "sum", operator.mul: "product", operator.truediv: "product"}
_SECOND = {operator.add: 1, operator.sub: -1, operator.mul: 1, operator.truediv: -1}


def _family(row: primitives.Primitive) -> str | None:
    return _FAMILIES.get(row.sympy)


class _Builder:
    """SymPy values of a graph of table rows, built bottom-up with an explicit stack.

    `parts(node)` is (row, operands) for an operation and None for a leaf, `leaf(node)` a leaf's
    value, `key(node)` an operation's identity (operations are built once, leaves when read)."""

    def __init__(self, parts, leaf, key):
        self.parts, self.leaf, self.key = parts, leaf, key
        self.built: dict = {}

    def __call__(self, root) -> sympy.Expr:
        built, stack = self.built, [root]
        while stack:
            node = stack[-1]
            parts = self.parts(node)
            if parts is None or self.key(node) in built:
                stack.pop()
                continue
            row, args = parts
            operands = self._chain(row, args) if _family(row) else [(a, 1) for a in args]
            waiting = [a for a, _ in operands if self.parts(a) is not None and self.key(a) not in built]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            built[self.key(node)] = self._combine(row, operands)
        return self.value(root)

    def value(self, node) -> sympy.Expr:
        return self.leaf(node) if self.parts(node) is None else self.built[self.key(node)]

    def _chain(self, row, args) -> list[tuple[object, int]]:
        """The operands of a chain of sums (products) ending in this node, each with its sign
        (exponent); operations already built are operands, not links."""
        family, operands, links = _family(row), [], [(row, args, 1)]
        while links:
            row, args, sign = links.pop()
            for arg, s in zip(args, (sign, sign * _SECOND[row.sympy])):
                parts = self.parts(arg)
                if parts is not None and self.key(arg) not in self.built and _family(parts[0]) == family:
                    links.append((*parts, s))
                else:
                    operands.append((arg, s))
        return operands

    def _combine(self, row, operands) -> sympy.Expr:
        values = [(self.value(a), s) for a, s in operands]
        match _family(row):
            case "sum":
                return sympy.Add(*(v if s > 0 else -v for v, s in values))
            case "product":
                return sympy.Mul(*(v if s > 0 else 1 / v for v, s in values))
        return row.sympy(*(v for v, _ in values))


class SympyForward:
    """The tape's forward values as SymPy expressions, each built when first read."""

    def __init__(self, tape: Tape, symbols: dict[str, sympy.Symbol]):
        self.tape = tape

        def parts(atom):
            if isinstance(atom, Const) or tape.instrs[atom.index].op == INPUT:
                return None
            instr = tape.instrs[atom.index]
            return primitives.lookup(instr.op), instr.args

        def leaf(atom):
            return sympy_number(atom.value) if isinstance(atom, Const) else symbols[tape.instrs[atom.index].name]

        self._build = _Builder(parts, leaf, key=lambda atom: atom.index)

    def __getitem__(self, index: int) -> sympy.Expr:
        return self._build(Ref(index))

    def __len__(self) -> int:
        return len(self.tape.instrs)


def sympy_forward(tape: Tape, symbols: dict[str, sympy.Symbol]) -> SympyForward:
    return SympyForward(tape, symbols)


def gradient_of(function: sympy.Expr, symbols: list[sympy.Symbol]) -> list[sympy.Expr]:
    """sympy.diff of `function` by each symbol. A sum is differentiated term by term, as SymPy's Add
    does, but each term only by the symbols it has (the others give 0): linear in the number of
    terms, where one sympy.diff per symbol would read every term once per symbol."""
    if not isinstance(function, sympy.Add):
        return [sympy.diff(function, s) for s in symbols]
    having: dict[sympy.Symbol, list[sympy.Expr]] = {s: [] for s in symbols}
    for term in function.args:
        for s in term.free_symbols & having.keys():
            having[s].append(term)
    return [sympy.Add(*(_derivative(term, s) for term in having[s])) for s in symbols]


def _derivative(term: sympy.Expr, symbol: sympy.Symbol) -> sympy.Expr:
    """d term / d symbol by SymPy's own rule for the term (its _eval_derivative, which sympy.diff
    calls), without sympy.diff's assumption query whether the result is zero: on a term such as
    (a*t + b - y)^2 with real a, b that query costs several times the derivative."""
    derivative = term._eval_derivative(symbol)
    return sympy.diff(term, symbol) if derivative is None else derivative


class _Adjoints:
    """Adjoints while a program runs: the terms added into each, summed as one Add when read."""

    def __init__(self):
        self.terms: dict[int, list[sympy.Expr]] = {}

    def get(self, index: int, default: sympy.Expr) -> sympy.Expr:
        terms = self.terms.get(index)
        if not terms:
            return default
        if len(terms) > 1:
            terms[:] = [sympy.Add(*terms)]
        return terms[0]

    def update(self, index: int, mode: str, value: sympy.Expr) -> None:
        if mode == "=":
            self.terms[index] = [value]
        else:
            self.terms.setdefault(index, []).append(value if mode == "+=" else -value)


def run_symbolically(adjoint: Adjoint, forward) -> list[sympy.Expr]:
    """Execute the program with SymPy values; adjoints never assigned are 0."""
    adjoints = _Adjoints()
    for step in adjoint.steps:
        value = to_sympy(step.term, forward, adjoints)
        if step.path and step.mode != "=":  # a step inside branches adds only when they are taken
            taken = sympy.And(*(forward[c] if holds else sympy.Not(forward[c]) for c, holds in step.path))
            value = sympy.Piecewise((value, taken), (0, True))
        adjoints.update(step.target, step.mode, value)
    return [to_sympy(term, forward, adjoints) for term in adjoint.gradient]


def to_sympy(term: Term, forward, adjoints) -> sympy.Expr:
    """A term's SymPy value; `adjoints.get(index, 0)` reads an adjoint. Iterative: a merged
    accumulation may be a chain of thousands of additions."""

    def parts(node):
        return (primitives.lookup(node.op), node.args) if isinstance(node, Op) else None

    def leaf(node):
        if isinstance(node, Bar):
            return adjoints.get(node.index, sympy.Integer(0))
        return _atom(node, forward)

    return _Builder(parts, leaf, key=id)(term)  # the term keeps its nodes, and so their ids, alive


def _atom(atom: Const | Ref, forward) -> sympy.Expr:
    if isinstance(atom, Const):
        return sympy_number(atom.value)
    return forward[atom.index]


def sympy_number(value: float) -> sympy.Expr:
    """The exact binary value of a float, so that both sides of a comparison see the same number."""
    return sympy.Integer(int(value)) if float(value).is_integer() else sympy.Rational(*float(value).as_integer_ratio())


def check_rules(tape: Tape, timeout: float) -> tuple[Check, ...]:
    """Each derivative rule the tape uses, once per (row, operand), against sympy.diff of the row."""
    checks, seen = [], set()
    for instr in tape.instrs:
        if not is_primitive(instr.op):  # inputs, array reads, indices, lengths and sums have no rule
            continue
        row = primitives.lookup(instr.op)
        for position, arg in enumerate(instr.args):
            # Constant operands take part too: x^2 (powi) is checked with 2 in its place.
            if not isinstance(arg, Ref) or row.partials[position] is None or (row.name, position) in seen:
                continue
            seen.add((row.name, position))
            checks.append(_check_rule(row, position, instr.args, instr.span, timeout))
    return tuple(checks)


def _check_rule(row: primitives.Primitive, position: int, args, span: Span, timeout: float) -> Check:
    symbols = [sympy.Symbol(param, real=True) for param in row.params]
    forward = list(symbols)
    # A branch row's partial holds in the branch that uses the operand: check it with its condition set.
    for i in row.boolean_params:
        forward[i] = sympy.true if not row.branches or row.branches[position] is None else sympy.sympify(row.branches[position])
    # Integral parameters (powi's exponent) stay the constants the tape has.
    for i in row.integer_params:
        forward[i] = sympy_number(args[i].value)
    out = row.sympy(*forward)
    forward.append(out)
    bound = tuple(Const(args[i].value) if i in row.integer_params else Ref(i) for i in range(row.arity))
    partial = to_sympy(local_partial(row, position, bound, Ref(row.arity)), forward, {})
    expected = sympy.diff(out, symbols[position])
    subject = f"{row.name}'({row.params[position]})"
    return compare(subject, expected, partial, timeout, _Sampler(symbols, row.domain), span)


def compare(
    subject: str, expected: sympy.Expr, actual: sympy.Expr, timeout: float, points: _Sampler, span=None
) -> Check:
    if expected == actual:  # the same tree: no subtraction needed (it costs 0.1 ms even for x + y)
        return Check(subject, True, "symbolic", "", "", span)
    difference = expected - actual
    if difference == 0:
        return Check(subject, True, "symbolic", "", "", span)
    simplified = _simplify_within(difference, timeout)
    if simplified is not None and simplified == 0:
        return Check(subject, True, "symbolic", "", "", span)
    why = "simplification timed out" if simplified is None else "simplification inconclusive"
    equal, count = points.agree(expected, actual)
    shown = ("", "") if equal else (str(expected), str(actual))
    if equal is None:
        return Check(subject, None, f"{why}; no sample point where both sides are real", *shown, span)
    return Check(subject, equal, f"numeric ({count} points; {why})", *shown, span)


def _simplify_within(expr: sympy.Expr, timeout: float) -> sympy.Expr | None:
    """sympy.simplify with a time budget; None when it runs out.

    In the main thread an alarm interrupts the simplification itself, so it unwinds and restores
    what it changed: SymPy keeps working precision in mpmath's global context, and a simplification
    left running in a background thread lowers it under everything else (1/pi became 32/101). Other
    threads, or a process whose own alarm is set, fall back to a thread that is left to finish."""
    if _alarm_is_free():
        return _simplify_until_alarm(expr, timeout)
    return _simplify_in_thread(expr, timeout)


class _Overrun(BaseException):
    """The alarm, inside sympy.simplify; not an Exception, so no `except Exception` in SymPy stops it."""


def _alarm_is_free() -> bool:
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )


def _simplify_until_alarm(expr: sympy.Expr, timeout: float) -> sympy.Expr | None:
    def overrun(signum, frame):
        raise _Overrun

    previous = signal.signal(signal.SIGALRM, overrun)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            result = sympy.simplify(expr)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
    except _Overrun:  # also one that fires just as simplify returns: counted as out of time
        result = None
    except Exception:  # a SymPy internal failure only means "not proven"
        result = expr
    finally:
        signal.signal(signal.SIGALRM, previous)
    return result


def _simplify_in_thread(expr: sympy.Expr, timeout: float) -> sympy.Expr | None:
    result: list[sympy.Expr] = []

    def work() -> None:
        try:
            result.append(sympy.simplify(expr))
        except Exception:  # a SymPy internal failure only means "not proven"
            result.append(expr)

    worker = threading.Thread(target=work, daemon=True, name="symdiff-simplify")
    worker.start()
    worker.join(timeout)
    return result[0] if result else None


class _Sampler:
    """Seeded random points; a point counts when both sides are finite reals there."""

    def __init__(self, symbols: list[sympy.Symbol], domain=None):
        self.symbols = symbols
        self.domain = domain

    def _points(self):
        rng = random.Random(20261122)
        boxes = [(0.1, 0.9), (1.0, 3.0), (-0.9, -0.1), (-3.0, -1.0)]
        for attempt in range(_POINTS):
            if self.domain is not None:
                yield {s: rng.uniform(*self.domain[i]) for i, s in enumerate(self.symbols)}
            else:
                yield {s: rng.uniform(*rng.choice(boxes[: 1 + attempt % 4])) for s in self.symbols}

    def agree(self, expected: sympy.Expr, actual: sympy.Expr) -> tuple[bool | None, int]:
        count = 0
        for point in self._points():
            exact = {s: float_exactly(v) for s, v in point.items()}
            a, b = _real(expected, exact), _real(actual, exact)
            if a is None or b is None:
                continue
            if abs(a - b) > 1e-9 * (1 + abs(a) + abs(b)):
                return False, count + 1
            count += 1
            if count >= _NEEDED:
                break
        return (True, count) if count else (None, 0)


def float_exactly(value: float) -> sympy.Float:
    """A double as a 40-digit SymPy Float: its exact value, where a Rational with a 2^52 denominator
    makes SymPy look for exact roots of huge integers in x^y (minutes, gigabytes)."""
    return sympy.Float(value, 40)


def _real(expr: sympy.Expr, point) -> float | None:
    try:
        value = complex(expr.evalf(30, subs=point))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if abs(value.imag) > 1e-12 * (1 + abs(value.real)) or not math.isfinite(value.real):
        return None
    return value.real


def _short(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# --- The generated code itself -------------------------------------------------------------------


@dataclass(frozen=True)
class _Point:
    values: tuple[float, ...]  # the inputs, in the tape's order
    proven: tuple[float, ...]  # the value, then each partial, from the proof (30 digits, rounded)
    scale: float  # the sum of |forward value| over the tape there: what rounding may cost

    def close(self, index: int, got: float) -> bool:
        want = self.proven[index]
        return abs(want - got) <= 1e-9 * (1 + abs(want) + abs(got)) + 64 * 2.0**-52 * self.scale


class _Proven:
    """What generated code must compute: the proven value and gradient, symbolically, and at check
    points chosen (once, when first needed) so that every where() of the input goes both ways."""

    def __init__(self, tape: Tape, forward, wrt, symbols, function, expected, timeout, sampler, programs=()):
        self.tape, self.forward, self.wrt, self.timeout, self.sampler = tape, forward, wrt, timeout, sampler
        self.inputs = [symbols[name] for name in tape.inputs]
        self.function, self.expected = function, expected
        # Per result (value, then each partial): expressions proven equal to it. Code whose symbolic
        # result is one of them, term for term, needs no simplification of its own.
        self.equivalents = ((function,), *((e, *alternatives) for e, *alternatives in zip(expected, *programs)))
        self._points: tuple[_Point, ...] | None = None
        self._unreached: tuple[str, ...] = ()

    def labels(self, entry: str) -> tuple[str, ...]:
        partials = tuple(f"d/d{name}" for name in self.wrt)
        return tuple(("value", *partials)[slot] for slot in self.slots(entry))

    def slots(self, entry: str) -> tuple[int, ...]:
        """Where each of an entry point's results sits in a point's `proven` (value first)."""
        n = len(self.wrt)
        return {"f": (0,), "grad": tuple(range(1, n + 1))}.get(entry, tuple(range(n + 1)))

    def points(self) -> tuple[_Point, ...]:
        if self._points is None:
            self._points, self._unreached = _choose_points(self)
        return self._points

    def unreached(self) -> tuple[str, ...]:
        return self._unreached

    def where(self, point: _Point) -> str:
        return _short(", ".join(f"{n}={v!r}" for n, v in zip(self.tape.inputs, point.values)), 120)


def _check_module(module: Emitted, proven: _Proven) -> list[Check]:
    checks, run = [], _SymbolicRun(proven.tape, proven.forward, proven.inputs)
    for entry in module.names:
        symbolic = _on_symbols(module, entry, proven, run) if module.python is not None else None
        checks.extend(symbolic if symbolic is not None else _at_points(module, entry, proven))
    return checks


def _describe(error: BaseException) -> str:
    return _short(f"{type(error).__name__}: {error}")


# Running Python code on symbols: each value is a node that records the row applied, so the results
# become SymPy through the same flat builder as the tape. A test of a node's truth (an if, a where,
# a domain guard) is a branch: that entry point is then run at the check points instead. Generated
# code imports math's functions: here they are the rows spelled NAME(params) in Python.


class _Branch(Exception):
    """Generated code tested a symbolic value."""


@cache
def _spelled(symbol: str, arity: int) -> primitives.Primitive:
    """The row that generated Python writes with this operator."""
    for row in primitives.TABLE.values():
        if row.python.strip() == symbol and row.arity == arity:
            return row
    raise KeyError(f"no row is written {symbol!r} in Python")


def _binary(symbol: str, reflected: bool = False):
    def apply(self, other):
        return self.run.node(_spelled(symbol, 2), (other, self) if reflected else (self, other))

    return apply


class _Traced:
    __slots__ = ("row", "args", "run", "entry")

    def __init__(self, row: primitives.Primitive | None, args: tuple, run: _SymbolicRun, entry: int | None):
        self.row, self.args, self.run = row, args, run  # row None: an input, args (its symbol,)
        self.entry = entry  # the tape entry computing the same row of the same operands, if any

    def __bool__(self):
        return self.run.truth(self)

    def __neg__(self):
        return self.run.node(_spelled("-", 1), (self,))

    __add__, __radd__ = _binary("+"), _binary("+", True)
    __sub__, __rsub__ = _binary("-"), _binary("-", True)
    __mul__, __rmul__ = _binary("*"), _binary("*", True)
    __truediv__, __rtruediv__ = _binary("/"), _binary("/", True)
    __pow__, __rpow__ = _binary("**"), _binary("**", True)
    __lt__, __le__, __gt__, __ge__ = _binary("<"), _binary("<="), _binary(">"), _binary(">=")
    __eq__, __ne__ = _binary("=="), _binary("!=")
    __hash__ = object.__hash__


class _SymbolicRun:
    """Runs of one module's entry points on symbols. Nodes are shared by (row, operands), so lines
    that several entry points compute alike (f's forward sweep is value_and_grad's) become SymPy
    once; a node that applies a tape entry's row to that entry's operands takes its proven value."""

    def __init__(self, tape: Tape, forward, symbols: list[sympy.Symbol]):
        self.tape, self.forward = tape, forward
        self.nodes: dict[tuple, _Traced] = {}
        self.inputs = [
            _Traced(None, (symbol,), self, tape.input_index(name)) for name, symbol in zip(tape.inputs, symbols)
        ]
        self.math = self._math()
        self.value = _Builder(self._parts, self._leaf, key=id)  # the nodes table keeps every node alive

    def _math(self) -> types.ModuleType:
        """math as generated code imports it: each row spelled NAME(params) makes a node."""
        module = types.ModuleType("math")
        for row in primitives.TABLE.values():
            call = re.fullmatch(r"(\w+)\((.*)\)", row.python)
            if call and call[2] == ", ".join("{" + param + "}" for param in row.params):
                setattr(module, call[1], lambda *args, row=row: self.node(row, args))
        return module

    def truth(self, node: _Traced) -> bool:
        raise _Branch

    def node(self, row: primitives.Primitive, args: tuple) -> _Traced:
        key = (row.name, *(id(a) if type(a) is _Traced else (type(a), repr(a)) for a in args))
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = _Traced(row, args, self, self._entry(row, args))
        return node

    def _entry(self, row: primitives.Primitive, args: tuple) -> int | None:
        operands = []
        for a in args:
            if type(a) is _Traced and a.entry is not None:
                operands.append(Ref(a.entry))
            elif type(a) is float:
                operands.append(Const(a))
            else:
                return None
        return self.tape.keys.get((row.name, tuple(operands)))

    def run(self, source: str, entry: str, arguments: tuple | None = None):
        def import_(name, globals=None, locals=None, fromlist=(), level=0):
            if name == "math":
                return self.math
            raise ImportError(f"generated code run on symbols may import only math, not {name}")

        namespace = load(source, "symbolic", {**vars(builtins), "__import__": import_})
        return namespace[entry](*(self.inputs if arguments is None else arguments))

    @staticmethod
    def _parts(node):
        return (node.row, node.args) if type(node) is _Traced and node.entry is None else None

    def _leaf(self, node) -> sympy.Expr:
        if type(node) is _Traced:
            return self.forward[node.entry]
        if type(node) in (float, int):
            return sympy_number(node)
        raise TypeError(f"generated code computed a {type(node).__name__}")


def _results(entry: str, result, partials: int) -> list:
    """An entry point's results as one list, the value first (shape checked)."""
    if entry == "f":
        return [result]
    if entry == "value_and_grad":
        value, gradient = result
        return [value, *_results("grad", gradient, partials)]
    gradient = list(result)
    if len(gradient) != partials:
        raise ValueError(f"returned {len(gradient)} partials, expected {partials}")
    return gradient


def _on_symbols(module: Emitted, entry: str, proven: _Proven, run: _SymbolicRun) -> list[Check] | None:
    """Checks of an entry point run on SymPy symbols; None when it cannot be (it branches, or uses
    a function with no symbolic counterpart, or fails): the check points then decide."""
    try:
        result = run.run(module.python(entry), entry)
        got = [run.value(value) for value in _results(entry, result, len(proven.wrt))]
    except Exception:  # the code under test may fail in any way; the numbers will say how
        return None
    subject = f"{module.backend} {entry}"
    checks = [
        _compare_proven(f"{subject}: {label}", proven.equivalents[slot], have, proven)
        for label, slot, have in zip(proven.labels(entry), proven.slots(entry), got)
    ]
    failed = [check for check in checks if check.equal is not True]
    if failed:
        return failed
    numeric = sum(check.method != "symbolic" for check in checks)
    return [Check(subject, True, "run on symbols" + (f"; {numeric} compared at points" if numeric else ""), "", "")]


def _compare_proven(subject: str, equivalents: tuple[sympy.Expr, ...], got: sympy.Expr, proven: _Proven) -> Check:
    for known in equivalents[1:]:
        if got == known or got - known == 0:
            return Check(subject, True, "symbolic", "", "")
    return compare(subject, equivalents[0], got, proven.timeout, proven.sampler)


def _at_points(module: Emitted, entry: str, proven: _Proven) -> list[Check]:
    subject = f"{module.backend} {entry}"
    points = proven.points()
    if not points:
        return [Check(subject, None, "no check point where the expression and its gradient are defined", "", "")]
    try:
        function = module.entry(entry)
    except Exception as error:  # the code under test may fail in any way
        return [Check(subject, False, "could not be loaded", "an entry point", _describe(error))]
    if entry == "batch":
        return [_batch(subject, function, points, proven)]
    slots, labels = proven.slots(entry), proven.labels(entry)
    for point in points:
        wanted = tuple(point.proven[i] for i in slots)
        try:
            got = [float(value) for value in _results(entry, function(*point.values), len(proven.wrt))]
        except Exception as error:  # the code under test may fail in any way
            return [Check(subject, False, f"raised at {proven.where(point)}", repr(wanted), _describe(error))]
        for label, slot, value in zip(labels, slots, got):
            if not point.close(slot, value):
                return [Check(subject, False, f"{label} differs at {proven.where(point)}", repr(wanted), repr(tuple(got)))]
    return [Check(subject, True, f"numeric ({len(points)} points)", "", "")]


def _batch(subject: str, batch: Callable, points: tuple[_Point, ...], proven: _Proven) -> Check:
    """All check points in one batch call, laid out input by input."""
    columns = [[point.values[i] for point in points] for i in range(len(proven.inputs))]
    wanted = [point.proven for point in points]
    try:
        values, grads = batch(columns, value=True, grad=True)
        got = [
            (float(values[k]), *(float(grads[j][k]) for j in range(len(proven.wrt)))) for k in range(len(points))
        ]
        if len(values) != len(points) or len(grads) != len(proven.wrt):
            raise ValueError(f"returned {len(values)} values and {len(grads)} rows of partials")
    except Exception as error:  # the code under test may fail in any way
        return Check(subject, False, f"raised at {len(points)} points", repr(wanted), _describe(error))
    for point, row in zip(points, got):
        for slot, label in enumerate(proven.labels("value_and_grad")):
            if not point.close(slot, row[slot]):
                return Check(subject, False, f"{label} differs at {proven.where(point)}", repr(point.proven), repr(row))
    return Check(subject, True, f"numeric ({len(points)} points)", "", "")


# Check points: seeded candidates, evaluated in floats along the tape; a candidate is kept while
# fewer than _MODULE_POINTS are, or when it takes a branch no kept point takes. Branches are the
# (where entry, condition) pairs; candidates also try the constants that conditions compare with.


def _choose_points(proven: _Proven) -> tuple[tuple[_Point, ...], tuple[str, ...]]:
    tape = proven.tape
    branches = [
        index
        for index, instr in enumerate(tape.instrs)
        if instr.op != INPUT and primitives.lookup(instr.op).branches and isinstance(instr.args[0], Ref)
    ]
    wanted = {(index, holds) for index in branches for holds in (True, False)}
    taken: set[tuple[int, bool]] = set()
    chosen: list[_Point] = []
    for values in _candidates(tape):
        run = _run_tape(tape, values)
        if run is None:
            continue
        outcomes, scale = run
        if len(chosen) >= _MODULE_POINTS and outcomes <= taken:
            continue
        exact = _proven_at(proven, values, outcomes)
        if exact is None:
            continue
        chosen.append(_Point(values, exact, scale))
        taken |= outcomes
        if len(chosen) >= _MODULE_POINTS and taken >= wanted:
            break
    unreached = tuple(
        f"{tape.source[slice(*tape.instrs[index].span)]} with its condition {'true' if holds else 'false'}"
        for index, holds in sorted(wanted - taken)
    )
    return tuple(chosen), unreached


def _candidates(tape: Tape):
    rng = random.Random(20261122)
    boxes = [(0.1, 0.9), (1.0, 3.0), (-0.9, -0.1), (-3.0, -1.0)]
    specials = sorted(
        {0.0}
        | {
            arg.value
            for instr in tape.instrs
            if instr.op != INPUT and primitives.lookup(instr.op).boolean
            for arg in instr.args
            if isinstance(arg, Const) and math.isfinite(arg.value)
        }
    )
    for attempt in range(_CANDIDATES):
        values: list[float] = []
        for _ in tape.inputs:
            draw = rng.random() if attempt % 2 else 1.0  # every other candidate tries special values
            if draw < 0.2:
                values.append(rng.choice(specials))
            elif draw < 0.3 and values:
                values.append(rng.choice(values))  # so that x == y can hold
            else:
                values.append(rng.uniform(*rng.choice(boxes[: 1 + attempt % 4])))
        yield tuple(values)


def _run_tape(tape: Tape, point: tuple[float, ...]) -> tuple[set[tuple[int, bool]], float] | None:
    """The branches taken at `point` and the sum of |forward value|; None where the expression is not
    a finite real (outside a domain, or overflowing)."""
    inputs = dict(zip(tape.inputs, point))
    values: list[float | None] = []
    taken, scale = set(), 0.0
    try:
        for index, instr in enumerate(tape.instrs):
            if instr.op == INPUT:
                values.append(inputs.get(instr.name))
                continue
            if not all(values[c] is not None and bool(values[c]) == holds for c, holds in tape.path(index)):
                values.append(None)  # in a branch not taken: not computed
                continue
            row = primitives.lookup(instr.op)
            value = row.evaluate(*(a.value if isinstance(a, Const) else values[a.index] for a in instr.args))
            if row.branches and isinstance(instr.args[0], Ref):
                taken.add((index, bool(values[instr.args[0].index])))
            if not row.boolean:
                # Exact arithmetic has one zero: where floats carry -0.0 (atan2(-0.0, -1) is -pi,
                # atan2(0, -1) is pi) the two may rightly differ.
                if not math.isfinite(value) or (value == 0.0 and math.copysign(1.0, value) < 0):
                    return None
                scale += abs(value)
            values.append(value)
    except (ArithmeticError, ValueError, TypeError):
        return None
    output = tape.output.value if isinstance(tape.output, Const) else values[tape.output.index]
    return (taken, scale) if output is not None and math.isfinite(output) else None


def _proven_at(proven: _Proven, values: tuple[float, ...], outcomes) -> tuple[float, ...] | None:
    """The proven value and gradient at a point, as reals; None where one is not a finite real, or
    where exact arithmetic takes another branch than floats do (a condition decided by rounding)."""
    exact = {symbol: float_exactly(value) for symbol, value in zip(proven.inputs, values)}
    for index, holds in outcomes:
        condition = proven.forward[proven.tape.instrs[index].args[0].index].xreplace(exact)
        if condition not in (sympy.true, sympy.false) or bool(condition) != holds:
            return None
    result = []
    for expr in (proven.function, *proven.expected):
        value = _real(expr.xreplace(exact), {})
        if value is None:
            return None
        result.append(value)
    return tuple(result)


# --- Array programs ------------------------------------------------------------------------------
# The oracle is sympy.diff of the program unrolled (core.unroll) at each size from the least the
# bounds allow up to _LARGEST. The program proven is the grad() the Python printer prints from the
# simplified sweep, run on arrays of SymPy symbols: its loops really run, its arithmetic builds
# SymPy. The textbook sweep (programs.raw) is not made for loops (reverse() does not know them), so
# array programs have no simplified-vs-raw comparison. Every module then runs at each size, on
# symbols where it is Python, and in floats at seeded random points.

_LARGEST = 5  # the last size checked has every array dimension at least this long
_SLACK = 3  # how much longer than the common length n an array may be made to keep reads in bounds
_ARRAY_POINTS = 2  # random points per size at which each module runs in floats
_NO_RAW = "no unsimplified sweep to compare: the textbook reverse() does not know loops"


def array_sizes(tape: Tape, largest: int = _LARGEST) -> list[dict[tuple[str, int], int]]:
    """Lengths ((array, dim) -> length) to check an array program at, least first: for n = 1 to
    `largest`, the lengths with every dimension in n..n + _SLACK that keep every read in bounds and
    add up least (lexicographically least among those), when there are such lengths."""
    dims = [(array, dim) for array, ndim in tape.arrays for dim in range(ndim)]
    slack = _SLACK if len(dims) <= 5 else 1  # (slack + 1)^dims candidates per n
    reads = bounds(tape)
    sizes: list[dict[tuple[str, int], int]] = []
    for n in range(1, largest + 1):
        # product() lists candidates lexicographically, and sorted() is stable: least sum first.
        for option in sorted(itertools.product(range(n, n + slack + 1), repeat=len(dims)), key=sum):
            lengths = dict(zip(dims, option))
            if all(violation(read, lengths) is None for read in reads):
                if lengths not in sizes:
                    sizes.append(lengths)
                break
    return sizes


@dataclass(frozen=True, eq=False)
class _Size:
    """One size an array program is checked at, with its unrolled value and exact gradient."""

    shapes: dict[str, tuple[int, ...]]
    arguments: tuple  # per input: its Symbol, or (nested lists of) its elements' Symbols
    function: sympy.Expr
    expected: tuple[tuple[sympy.Expr, ...], ...]  # per wrt name: each element's partial, row-major
    symbols: tuple[sympy.Symbol, ...]  # every scalar and element, for sample points
    seed: int  # of the size's points

    @cached_property
    def points(self) -> list[tuple[dict[sympy.Symbol, float], list[float]]]:
        """Seeded points, each with the value and partials there (computed once, for every module)."""
        return _array_points(self, self.seed)

    @property
    def text(self) -> str:
        return ", ".join(f"len({array}) = {'x'.join(map(str, shape))}" for array, shape in self.shapes.items())


def _sizes(adjoint: Adjoint) -> list[_Size]:
    """Every size array_sizes gives, with the program unrolled there and its exact gradient."""
    tape = adjoint.tape
    program = parse_program(tape.source)
    sizes = []
    for lengths in array_sizes(tape):
        shapes = {array: tuple(lengths[(array, dim)] for dim in range(ndim)) for array, ndim in tape.arrays}
        function = unroll(program, shapes, tape.source)[adjoint.output]
        names = dict.fromkeys((*tape.inputs, *adjoint.wrt))
        flat = {name: elements(name, shapes[name]) if name in shapes else [scalar(name)] for name in names}
        partials = iter(gradient_of(function, [s for name in adjoint.wrt for s in flat[name]]))
        expected = tuple(tuple(next(partials) for _ in flat[name]) for name in adjoint.wrt)
        arguments = tuple(
            _nested(flat[name], shapes[name]) if name in shapes else flat[name][0] for name in tape.inputs
        )
        every = tuple(s for name in names for s in flat[name])
        sizes.append(_Size(shapes, arguments, function, expected, every, seed=len(sizes)))
    return sizes


def _nested(items: list, shape: tuple[int, ...]) -> list:
    """Row-major `items` as nested lists of `shape` (lists of rows for 2-D)."""
    for length in reversed(shape[1:]):
        items = [items[i : i + length] for i in range(0, len(items), length)]
    return items


def _flat(value) -> list:
    """An array result (nested lists, or a NumPy array) as its elements in row-major order; a
    number as a list of one."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        return [value]
    out: list = []
    stack = [iter(value)]
    while stack:
        item = next(stack[-1], stack)
        if item is stack:
            stack.pop()
        elif isinstance(item, list | tuple):
            stack.append(iter(item))
        else:
            out.append(item)
    return out


class _ArrayRun(_SymbolicRun):
    """Runs generated Python on arrays of symbols. A value computed in a loop differs from one
    index to the next, so no node stands for a tape entry: each is built from its operands."""

    def __init__(self):
        self.nodes: dict[tuple, _Traced] = {}
        self.math = self._math()
        self.value = _Builder(self._parts, self._leaf, key=id)

    def traced(self, arguments: tuple) -> tuple:
        """Arguments with every Symbol (also inside lists) a node of this run."""

        def trace(value):
            if isinstance(value, list):
                return [trace(item) for item in value]  # as deep as the array's dimensions
            return _Traced(None, (value,), self, None)

        return tuple(trace(value) for value in arguments)

    def truth(self, node: _Traced) -> bool:
        """A condition SymPy decides for every real value of the symbols (a domain guard such as
        exp(x[0]) + exp(x[1]) > 0) is taken or not; any other is a branch: the points decide."""
        value = self.value(node)
        if value is sympy.true or value is sympy.false:
            return bool(value)
        raise _Branch

    def _entry(self, row: primitives.Primitive, args: tuple) -> None:
        return None  # no node is a tape entry

    @staticmethod
    def _parts(node):
        return (node.row, node.args) if type(node) is _Traced and node.row is not None else None

    def _leaf(self, node) -> sympy.Expr:
        if type(node) is _Traced:
            return node.args[0]
        if type(node) in (float, int):
            return sympy_number(node)
        raise TypeError(f"generated code computed a {type(node).__name__}")

    def results(self, source: str, entry: str, size: _Size) -> list[list[sympy.Expr]]:
        """An entry point's results on the size's symbols: [value] and/or each wrt's elements."""
        partials = len(size.expected)
        result = _results(entry, self.run(source, entry, self.traced(size.arguments)), partials)
        got = [[self.value(item) for item in _flat(part)] for part in result]
        counts, wanted = [len(part) for part in got], [len(part) for part in _wanted(entry, size)]
        if counts != wanted:
            raise ValueError(f"returned {counts} values per result, expected {wanted}")
        return got


def _wanted(entry: str, size: _Size, program: list | None = None) -> list:
    """What an entry point's results must equal: the value and/or each wrt's elements' partials
    (from sympy.diff, or the proven grad()'s equal results, `program`)."""
    value, gradient = [(size.function,)], list(size.expected) if program is None else program
    return {"f": value, "grad": gradient}.get(entry, value + gradient)


def _labels(entry: str, wrt: tuple[str, ...]) -> list[str]:
    """The names of an entry point's results: "value" and/or each wrt name."""
    value = ["value"]
    return {"f": value, "grad": list(wrt)}.get(entry, value + list(wrt))


def verify_arrays(adjoint: Adjoint, timeout: float, modules: tuple[Emitted, ...]) -> Report:
    """Prove an array program's gradient at every size array_sizes gives, and run `modules` there."""
    tape = adjoint.tape
    sizes = _sizes(adjoint)
    source = python_printer.render(adjoint, functions=("grad",))
    runs = [_ArrayRun() for _ in sizes]  # one per size, shared by every module's Python entry points
    program: list[list[list[sympy.Expr]] | None] = []  # grad()'s results on symbols, per size
    for run, size in zip(runs, sizes):
        try:
            program.append(run.results(source, "grad", size))
        except Exception:  # it branches, or fails: its floats are compared at points instead
            program.append(None)
    gradient = tuple(
        _array_gradient(adjoint, slot, sizes, program, source, timeout) for slot in range(len(adjoint.wrt))
    )
    emitted = tuple(
        _array_module(module, entry, adjoint.wrt, sizes, runs, program, timeout)
        for module in modules
        for entry in module.names
        if entry in ENTRY_POINTS  # a batch evaluates many points of scalar inputs: not for arrays
    )
    rules = check_rules(tape, timeout) + check_loop_partials(tape, timeout)
    return Report(tape.source, gradient, (), rules, emitted)


def check_loop_partials(tape: Tape, timeout: float) -> tuple[Check, ...]:
    """Every local partial of every loop body's entries, as the reverse sweep takes it, against
    sympy.diff of the entry, with each loop's index a symbolic integer and each length a symbolic
    positive integer: an element is x[i + 1] for an unknown i (sympy.Indexed), so the proof holds at
    every index and length, not only at the sizes the whole gradient is proven at. A sum's partial
    is 1 and a product's the product of the other factors: those are checked at every size."""
    indices = {loop.index: sympy.Symbol(loop.index, integer=True) for loop in (*tape.loops, tape.rows) if loop}
    lengths: dict[tuple[str, int], sympy.Symbol] = {}

    def length(symbol) -> sympy.Symbol:
        key = (symbol.array, symbol.dim)
        if key not in lengths:
            text = f"len({symbol.array})" if not symbol.dim else f"len({symbol.array}, {symbol.dim})"
            lengths[key] = sympy.Symbol(text, integer=True, positive=True)
        return lengths[key]

    def affine(value) -> sympy.Expr:
        return value.constant + sum(
            c * (indices[name] if isinstance(name, str) else length(name)) for name, c in value.terms
        )

    def operand(index: int) -> sympy.Expr:
        instr = tape.instrs[index]
        if instr.op == READ:
            return sympy.IndexedBase(instr.name, real=True)[tuple(affine(a) for a in instr.detail[0])]
        if instr.op == COUNTER:
            return indices[instr.name]
        if instr.op == LENGTH:
            return length(Length(instr.name, instr.detail))
        return sympy.Symbol(instr.name if instr.op == INPUT else f"w{index + 1}", real=True)

    checks = []
    for p, instr in enumerate(tape.instrs):
        if not tape.path(p) or not is_primitive(instr.op):
            continue
        row = primitives.lookup(instr.op)
        forward = {i: operand(i) for i in {a.index for a in instr.args if isinstance(a, Ref)}}
        values = [forward[a.index] if isinstance(a, Ref) else sympy_number(a.value) for a in instr.args]
        for position, arg in enumerate(instr.args):
            if not isinstance(arg, Ref) or row.partials[position] is None:
                continue
            if tape.instrs[arg.index].op in (COUNTER, LENGTH):
                continue  # an index or a length is no input: nothing is differentiated by it
            # d/d(operand at this position): the other positions keep their values even where the
            # same entry stands there too (x[i] * x[i] has two partials, x[i] each).
            dummy = sympy.Dummy("operand", real=True)
            out = row.sympy(*[dummy if k == position else v for k, v in enumerate(values)])
            expected = sympy.diff(out, dummy).subs(dummy, values[position])
            forward[p] = out.subs(dummy, values[position])
            partial = to_sympy(local_partial(row, position, instr.args, Ref(p)), forward, {})
            loops = ", ".join(tape.loop_of(entry).index for entry, _ in tape.path(p))
            subject = f"loop {loops}: d({_definition_text(tape, p)})/d({_operand_text(tape, arg.index)})"
            symbols = sorted(
                (partial.free_symbols | expected.free_symbols) - set(indices.values()) - set(lengths.values()),
                key=str,
            )
            sampler = _Sampler([s for s in symbols if not isinstance(s, sympy.Indexed)])
            checks.append(compare(subject, expected, partial, timeout, sampler, instr.span))
    return tuple(checks)


def _operand_text(tape: Tape, index: int) -> str:
    instr = tape.instrs[index]
    if instr.op == READ:
        return instr.name + "[" + ", ".join(affine_text(a, _symbol_text) for a in instr.detail[0]) + "]"
    if instr.op in (INPUT, COUNTER):
        return instr.name
    return f"w{index + 1}"


def _definition_text(tape: Tape, index: int) -> str:
    instr = tape.instrs[index]
    return f"w{index + 1} = {format_flat(instr.op, instr.args, lambda ref: _operand_text(tape, ref.index), 'symdiff')}"


def _symbol_text(symbol) -> str:
    if isinstance(symbol, Length):
        return f"len({symbol.array})" if not symbol.dim else f"len({symbol.array}, {symbol.dim})"
    return symbol


def _sizes_text(sizes: list[_Size]) -> str:
    """`len(x) = 1, 2, 3; len(W) = 1x1, 2x2, 3x3`: each array's lengths at the sizes checked."""
    if not sizes:
        return "no array lengths keep every read in bounds"
    return "; ".join(
        f"len({array}) = " + ", ".join("x".join(map(str, size.shapes[array])) for size in sizes)
        for array in sizes[0].shapes
    )


def _array_gradient(adjoint: Adjoint, slot: int, sizes, program, source: str, timeout: float) -> Check:
    """grad()'s partials by wrt[slot], on symbols, against sympy.diff of the unrolled program (in
    floats at points at a size where grad() cannot run on symbols)."""
    name = adjoint.wrt[slot]
    subject = f"d/d{name}"
    if not sizes:
        return Check(subject, None, _sizes_text(sizes), "", "")
    numeric = points = 0
    for size, got in zip(sizes, program):
        if got is None:
            count, failed = _in_floats(lambda: load(source)["grad"], "grad", adjoint.wrt, [size])
            if failed is not None:
                return Check(subject, False, *failed)
            points += count
            continue
        sampler = _Sampler(list(size.symbols))
        for k, (want, have) in enumerate(zip(size.expected[slot], got[slot])):
            check = compare(subject, want, have, timeout, sampler)
            if check.equal is not True:
                where = f"{_element_text(name, size, k)}, {size.text}"
                return Check(subject, check.equal, f"{check.method} at {where}", str(want), str(have))
            numeric += check.method != "symbolic"
    ways = []
    if any(got is not None for got in program):
        ways.append("symbolic" + (f" ({numeric} element{'s' * (numeric > 1)} numerically)" if numeric else ""))
    if points:
        ways.append(f"grad() in floats at {points} points where it branches")
    how = "; ".join(ways)
    return Check(subject, True, f"{how}; unrolled at {_sizes_text(sizes)} ({_NO_RAW})", "", "")


def _element_text(name: str, size: _Size, k: int) -> str:
    """The k-th result of `name`: x[1, 2] of an array, a scalar's name ("value" for the value)."""
    return str(elements(name, size.shapes[name])[k]) if name in size.shapes else name


def _array_module(module: Emitted, entry: str, wrt, sizes, runs, program, timeout: float) -> Check:
    """An entry point of a module run on symbols (Python, where it does not branch) and in floats."""
    subject = f"{module.backend} {entry}"
    if not sizes:
        return Check(subject, None, _sizes_text(sizes), "", "")
    symbolic = module.python is not None
    for size, run, proven in zip(sizes, runs, program) if symbolic else ():
        try:
            got = run.results(module.python(entry), entry, size)
        except Exception:  # it branches on a value, or fails: the points decide
            symbolic = False
            break
        parts = zip(_labels(entry, wrt), _wanted(entry, size), _wanted(entry, size, proven), got)
        for label, wanted, known, have in parts:
            for k, (want, same, value) in enumerate(zip(wanted, known, have)):
                if value == same:  # the very SymPy tree of the proven grad() (or of the unrolled value)
                    continue
                check = compare(subject, want, value, timeout, _Sampler(list(size.symbols)))
                if check.equal is not True:
                    where = f"{_element_text(label, size, k)}, {size.text}"
                    return Check(subject, check.equal, f"{check.method} at {where}", str(want), str(value))
    count, failed = _in_floats(lambda: module.entry(entry), entry, wrt, sizes)
    if failed is not None:
        return Check(subject, False, *failed)
    how = "run on symbols and " if symbolic else ""
    return Check(subject, True, f"{how}in floats at {count} points; {_sizes_text(sizes)}", "", "")


def _in_floats(load_entry, entry: str, wrt, sizes: list[_Size]) -> tuple[int, tuple[str, str, str] | None]:
    """An entry point run in floats at seeded points of every size, against the proven values:
    (points run, None) or (points run, (what went wrong, expected, got))."""
    try:
        function = load_entry()
    except Exception as error:  # the code under test may fail in any way
        return 0, ("could not be loaded", "an entry point", _describe(error))
    count = 0
    for size in sizes:
        for point in size.points:
            failed = _run_at(function, entry, wrt, size, point)
            if failed is not None:
                return count, (f"{failed[0]} ({size.text})", failed[1], failed[2])
            count += 1
    return count, None


def _array_points(size: _Size, seed: int) -> list[tuple[dict[sympy.Symbol, float], list[float]]]:
    """Up to _ARRAY_POINTS seeded points where the value and gradient are finite reals, with them."""
    rng = random.Random(20261206 + seed)
    boxes = [(0.1, 0.9), (1.0, 3.0), (-0.9, -0.1), (-3.0, -1.0)]
    points = []
    for attempt in range(_POINTS):
        point = {s: rng.uniform(*rng.choice(boxes[: 1 + attempt % 4])) for s in size.symbols}
        exact = {s: float_exactly(v) for s, v in point.items()}
        values = [_real_at(expr, exact) for part in _wanted("value_and_grad", size) for expr in part]
        if all(value is not None for value in values):
            points.append((point, values))
            if len(points) == _ARRAY_POINTS:
                break
    return points


def _real_at(expr: sympy.Expr, exact: dict) -> float | None:
    """_real, with the point put in by xreplace: evalf's subs= is far slower on expressions over
    the hundred symbols of an unrolled program (minutes for a 5x5 network)."""
    try:
        return _real(expr.xreplace(exact), {})
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _run_at(function, entry, wrt, size: _Size, point) -> tuple[str, str, str] | None:
    """Why the entry point's floats at `point` differ from the proven values, or None."""
    values, proven = point
    arguments = tuple(_floats(argument, values) for argument in size.arguments)
    partials = len(size.expected)
    exact = iter(proven)  # the value, then every element's partial
    parts = [[next(exact) for _ in part] for part in _wanted("value_and_grad", size)]
    want_parts = {"f": parts[:1], "grad": parts[1:]}.get(entry, parts)
    wanted = [len(part) for part in want_parts]
    shown = ", ".join(f"{s}={v!r}" for s, v in values.items())
    try:
        got = [[float(v) for v in _flat(part)] for part in _results(entry, function(*arguments), partials)]
    except Exception as error:  # the code under test may fail in any way
        return f"raised at {_short(shown, 120)}", repr(want_parts), _describe(error)
    if [len(part) for part in got] != wanted:
        return "returned results of the wrong shape", repr(wanted), repr([len(part) for part in got])
    for label, want_part, got_part in zip(_labels(entry, wrt), want_parts, got):
        for k, (want, have) in enumerate(zip(want_part, got_part)):
            if abs(want - have) > 1e-9 * (1 + abs(want) + abs(have)):
                where = f"{_element_text(label, size, k)} differs at {_short(shown, 120)}"
                return where, repr(want_part), repr(got_part)
    return None


def _floats(argument, values: dict):
    """A size's argument (a Symbol, or nested lists of them) with each Symbol's value at a point."""
    if isinstance(argument, list):
        return [_floats(item, values) for item in argument]  # as deep as the array's dimensions
    return values[argument]


__all__ = [
    "Check", "Emitted", "Report", "array_sizes", "python_module", "verify_arrays", "verify_programs", "SymdiffError",
]
