"""verify: prove an adjoint program right with SymPy.

Each partial is rebuilt as a SymPy expression by running the program symbolically, then compared
with sympy.diff of the expression: symbolically first (the difference simplifies to 0, under a time
budget), else numerically at seeded random points. The unsimplified program is checked against the
simplified one the same way, and every derivative rule the tape uses is checked on its own, so a
wrong rule is reported at the place in the input that uses it.
"""

from __future__ import annotations

import math
import operator
import random
import signal
import threading
from dataclasses import dataclass

import sympy

from . import primitives
from .adjoint import Adjoint, Bar, Op, Term
from .errors import LimitError, Span, SymdiffError
from .limits import DEFAULT_LIMITS, Limits
from .reverse import local_partial
from .tape import INPUT, Const, Ref, Tape

DEFAULT_TIMEOUT = 5.0  # seconds of sympy.simplify per comparison before falling back to numbers
_POINTS, _NEEDED = 40, 4


@dataclass(frozen=True)
class Check:
    subject: str  # what was compared: "d/dx1", or "rule sin'(x)"
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

    @property
    def ok(self) -> bool:
        return all(check.equal is True for check in self.gradient + self.simplification + self.rules)

    def __str__(self) -> str:
        lines = [f"verify: {self.expression}"]
        for title, checks in (
            ("gradient vs sympy.diff", self.gradient),
            ("simplified vs unsimplified program", self.simplification),
            ("derivative rules used", self.rules),
        ):
            lines.append(f"  {title}:")
            for check in checks:
                verdict = {True: "ok", False: "MISMATCH", None: "inconclusive"}[check.equal]
                lines.append(f"    {check.subject:<14} {verdict:<12} {check.method}")
                if check.equal is not True:
                    lines.append(f"      expected {_short(check.expected)}")
                    lines.append(f"      program  {_short(check.actual)}")
            if not checks:
                lines.append("    (nothing to check)")
        lines.append("result: " + ("all proven equal" if self.ok else "NOT proven"))
        return "\n".join(lines)


def verify_programs(
    raw: Adjoint, simplified: Adjoint, timeout: float = DEFAULT_TIMEOUT, limits: Limits = DEFAULT_LIMITS
) -> Report:
    tape = raw.tape
    _check_size(tape, limits)
    try:
        return _verify(raw, simplified, timeout)
    except RecursionError:
        raise LimitError("expression is nested too deeply for SymPy to verify", tape.source, (0, 0)) from None


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
    families = [None if instr.op == INPUT else _family(primitives.lookup(instr.op)) for instr in tape.instrs]
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


def _verify(raw: Adjoint, simplified: Adjoint, timeout: float) -> Report:
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
    return Report(tape.source, gradient, simplification, check_rules(tape, timeout))


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
        if instr.op == INPUT:
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
            exact = {s: sympy.Rational(*v.as_integer_ratio()) for s, v in point.items()}
            a, b = _real(expected, exact), _real(actual, exact)
            if a is None or b is None:
                continue
            if abs(a - b) > 1e-9 * (1 + abs(a) + abs(b)):
                return False, count + 1
            count += 1
            if count >= _NEEDED:
                break
        return (True, count) if count else (None, 0)


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


__all__ = ["Check", "Report", "verify_programs", "SymdiffError"]
