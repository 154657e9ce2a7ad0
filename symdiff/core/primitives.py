"""The one table of primitives: everything symdiff knows about an operation lives on its row.

Every stage reads rows from here (parser: names and symbols; lowering: evaluation; reverse: partials;
printers: spellings; verify: the SymPy counterpart; tests: sampling domains). No other module names a
transcendental function. A partial is written in symdiff's own syntax over the row's parameter names
and `out`, the row's own result, so generated code can reuse forward values (exp' = out).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import sympy

# Printing precedence: higher binds tighter. Atoms (numbers, names, calls) are ATOM.
# Conditions bind loosest, as in Python: or < and < not < comparisons < arithmetic.
OR, AND, NOT, COMPARE = -3, -2, -1, 0
SUM, PRODUCT, UNARY, POWER, ATOM = 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class Notation:
    """How a row is written. `kind` is "call", "infix" or "prefix"; for operators, the operands
    need parentheses when their own precedence is below `operand_min` (one entry per operand)."""

    kind: str
    symbol: str = ""
    precedence: int = ATOM
    operand_min: tuple[int, ...] = ()


CALL = Notation("call")


@dataclass(frozen=True, slots=True)
class Primitive:
    name: str  # table key; also what the user calls it when `user_callable`
    params: tuple[str, ...]  # by mathematical role, in call order (atan2: y then x)
    partials: tuple[str | None, ...]  # d out / d param, over params and `out`; None: always constant
    evaluate: Callable[..., float]  # real evaluation, for constant folding; raises outside the domain
    sympy: Callable[..., sympy.Expr]
    python: str  # generated Python: a call template ("sin({x})", from math) or an operator symbol ("+")
    numpy: str  # generated NumPy: the same for NumPy
    c: str  # generated C99 (math.h only): the same for C
    domain: tuple[tuple[float, float], ...]  # a box where tests may sample every param
    notation: Notation = CALL
    user_callable: bool = True  # users may write NAME(args)
    internal: bool = False  # only symdiff produces it (through `refine`); never parsed
    integer_params: tuple[int, ...] = ()  # params that are always integral constants (printed as ints)
    refine: Callable[[tuple], str | None] | None = None  # a more specific row for these operands
    # A Python condition over the params that holds where the row is defined ("{x} > 0.0" for log).
    # grad() checks it even when no partial reads the row's value, and evaluates the row where it
    # fails, so that a point outside the domain raises in grad() as it does in f(): log's partial
    # 1/x alone is defined at x = -1. (A comparison costs far less than the call it guards.)
    guard_domain: str = ""
    # Rows whose value is a truth value (comparisons, and/or/not): never differentiated, and only
    # usable as conditions. `boolean_params` are the params that must be truth values.
    boolean: bool = False
    boolean_params: tuple[int, ...] = ()
    # A branch row (where): per param, None, or the condition value under which the param is used.
    # Its derivative terms flow only into the branch taken, and code for the other is never run.
    branches: tuple[bool | None, ...] = ()
    # "even" (f(-x) = f(x)) or "odd" (f(-x) = -f(x)), exactly so as libm computes them: a backend may
    # then compute f(-x) from f(x) (the NumPy backend makes cos(x1 - x2) and cos(x2 - x1) one call).
    parity: str = ""
    # f(x, y) = f(y, x) exactly in IEEE arithmetic: the tape shares x * y and y * x.
    commutative: bool = False
    # f(x, y) = -f(y, x) exactly, zeros included (x - y): the tape computes an even function of
    # f(y, x) as the same function of f(x, y).
    antisymmetric: bool = False
    # Dialects that print the row with exponent 2 as x * x: correctly rounded, where libm's pow(x, 2)
    # misses the last bit about once in 1,200 squares (NumPy's square is x * x too); in CPython 3x
    # faster than x ** 2, and in C no longer up to the compiler's folding.
    squares_as_product: tuple[str, ...] = ()

    @property
    def arity(self) -> int:
        return len(self.params)


def _powi(x: float, n: float) -> float:
    return x * x if n == 2 else x ** int(n)  # a square as every backend computes it (squares_as_product)


def _sign(x: float) -> float:
    return math.copysign(1.0, x) if x else 0.0


class _Sign(sympy.Function):
    """SymPy's sign with symdiff's convention sign' = 0 everywhere (SymPy's own derivative is a
    DiracDelta, and it leaves d sign(log(x))/dx unevaluated). Numbers evaluate as sympy.sign."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        value = sympy.sign(arg)
        return None if isinstance(value, sympy.sign) else value

    def fdiff(self, argindex=1):
        return sympy.Integer(0)

    def _eval_evalf(self, prec):
        return sympy.sign(self.args[0].evalf(prec))

    def _sympystr(self, printer):
        return f"sign({printer.doprint(self.args[0])})"


class _Abs(sympy.Function):
    """|x| whose SymPy derivative is symdiff's sign (so abs'(0) = 0 on both sides of a proof)."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        value = sympy.Abs(arg)
        return None if isinstance(value, sympy.Abs) else value

    def fdiff(self, argindex=1):
        return _Sign(self.args[0])

    def _eval_evalf(self, prec):
        return sympy.Abs(self.args[0].evalf(prec))

    def _sympystr(self, printer):
        return f"abs({printer.doprint(self.args[0])})"


def _integral_exponent(args: tuple) -> str | None:
    """x^n with a constant integral n is `powi`: printed x ** n, defined for negative x."""
    exponent = args[1]
    value = getattr(exponent, "value", None)
    if value is not None and float(value).is_integer() and abs(value) <= 2**31:
        return "powi"
    return None


def _row(name, params, partials, evaluate, to_sympy, domain, python=None, numpy=None, c=None, **more):
    """A row; a call's spelling defaults to NAME(params) in Python (imported from math) and C, and
    numpy.NAME(params) in NumPy."""
    names = tuple(params.split())
    arguments = ", ".join("{" + param + "}" for param in names)
    return Primitive(
        name=name,
        params=names,
        partials=tuple(partials),
        evaluate=evaluate,
        sympy=to_sympy,
        python=python or f"{name}({arguments})",
        numpy=numpy or f"numpy.{name}({arguments})",
        c=c or f"{name}({arguments})",
        domain=domain,
        **more,
    )


def _infix(symbol: str, precedence: int, operand_min: tuple[int, int]) -> Notation:
    return Notation("infix", symbol, precedence, operand_min)


_ROWS = (
    # Arithmetic. Left-associative operators need a tighter right operand: a - (b - c).
    _row("add", "x y", ("1", "1"), operator.add, operator.add, ((-3, 3), (-3, 3)), "+", "+", c="+",
         notation=_infix("+", SUM, (SUM, PRODUCT)), user_callable=False, commutative=True),
    _row("sub", "x y", ("1", "-1"), operator.sub, operator.sub, ((-3, 3), (-3, 3)), "-", "-", c="-",
         notation=_infix("-", SUM, (SUM, PRODUCT)), user_callable=False, antisymmetric=True),
    _row("mul", "x y", ("y", "x"), operator.mul, operator.mul, ((-3, 3), (-3, 3)), "*", "*", c="*",
         notation=_infix("*", PRODUCT, (PRODUCT, UNARY)), user_callable=False, commutative=True),
    _row("div", "x y", ("1 / y", "-out / y"), operator.truediv, operator.truediv,
         ((-3, 3), (0.5, 3)), "/", "/", c="/", notation=_infix("/", PRODUCT, (PRODUCT, UNARY)),
         user_callable=False),
    _row("neg", "x", ("-1",), operator.neg, operator.neg, ((-3, 3),), "-", "-", c="-",
         notation=Notation("prefix", "-", UNARY, (UNARY,)), user_callable=False),
    # Power is right-associative and its exponent may be a unary minus: 2^-x.
    _row("pow", "x y", ("y * x^(y - 1)", "out * log(x)"), math.pow, operator.pow,
         ((0.2, 3), (-2, 2)), "pow({x}, {y})", "numpy.power({x}, {y})",
         c="pow({x}, {y})", notation=_infix("^", POWER, (ATOM, UNARY)), refine=_integral_exponent),
    _row("powi", "x n", ("n * x^(n - 1)", None), _powi, operator.pow, ((-3, 3), (-3, 3)),
         "**", "**", c="pow({x}, {n})", notation=_infix("^", POWER, (ATOM, UNARY)), user_callable=False,
         internal=True, integer_params=(1,), squares_as_product=("python", "c")),
    # Elementary functions.
    _row("sin", "x", ("cos(x)",), math.sin, sympy.sin, ((-3, 3),), parity="odd"),
    _row("cos", "x", ("-sin(x)",), math.cos, sympy.cos, ((-3, 3),), parity="even"),
    _row("tan", "x", ("1 + out^2",), math.tan, sympy.tan, ((-1.2, 1.2),), parity="odd"),
    _row("asin", "x", ("1 / sqrt(1 - x^2)",), math.asin, sympy.asin, ((-0.9, 0.9),),
         numpy="numpy.arcsin({x})", parity="odd"),
    _row("acos", "x", ("-1 / sqrt(1 - x^2)",), math.acos, sympy.acos, ((-0.9, 0.9),),
         numpy="numpy.arccos({x})"),
    _row("atan", "x", ("1 / (1 + x^2)",), math.atan, sympy.atan, ((-3, 3),), numpy="numpy.arctan({x})", parity="odd"),
    _row("sinh", "x", ("cosh(x)",), math.sinh, sympy.sinh, ((-3, 3),), parity="odd"),
    _row("cosh", "x", ("sinh(x)",), math.cosh, sympy.cosh, ((-3, 3),), parity="even"),
    _row("tanh", "x", ("1 - out^2",), math.tanh, sympy.tanh, ((-3, 3),), parity="odd"),
    _row("exp", "x", ("out",), math.exp, sympy.exp, ((-3, 3),)),
    _row("log", "x", ("1 / x",), math.log, sympy.log, ((0.1, 5),), guard_domain="{x} > 0.0"),
    _row("sqrt", "x", ("0.5 / out",), math.sqrt, sympy.sqrt, ((0.1, 5),)),
    # |x| has a kink at 0; by convention abs'(0) = sign(0) = 0, and sign' = 0 everywhere.
    _row("abs", "x", ("sign(x)",), abs, _Abs, ((0.2, 3),), python="fabs({x})",
         numpy="numpy.abs({x})", c="fabs({x})", parity="even"),
    _row("sign", "x", ("0",), _sign, _Sign, ((0.2, 3),), python="(copysign(1.0, {x}) if {x} else 0.0)",
         c="({x} == 0.0 ? 0.0 : copysign(1.0, {x}))"),
    _row("atan2", "y x", ("x / (x^2 + y^2)", "-y / (x^2 + y^2)"), math.atan2, sympy.atan2,
         ((-2, 2), (0.2, 2)), numpy="numpy.arctan2({y}, {x})"),
)

def _compare(symbol: str, function, python: str) -> Primitive:
    return _row(
        {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}[symbol],
        "x y", (None, None), lambda x, y: float(function(x, y)), function, ((-3, 3), (-3, 3)),
        python, python, c=python, notation=_infix(symbol, COMPARE, (SUM, SUM)), user_callable=False, boolean=True,
    )


def _where(c, a, b):
    return a if c else b


_CONDITIONS = (
    _compare("<", operator.lt, "<"),
    _compare("<=", operator.le, "<="),
    _compare(">", operator.gt, ">"),
    _compare(">=", operator.ge, ">="),
    _compare("==", operator.eq, "=="),
    _compare("!=", operator.ne, "!="),
    _row("and", "x y", (None, None), lambda x, y: float(bool(x and y)), sympy.And, ((0, 1), (0, 1)), "and", "&",
         c="&&", notation=_infix("and", AND, (AND, NOT)), user_callable=False, boolean=True, boolean_params=(0, 1)),
    _row("or", "x y", (None, None), lambda x, y: float(bool(x or y)), sympy.Or, ((0, 1), (0, 1)), "or", "|",
         c="||", notation=_infix("or", OR, (OR, AND)), user_callable=False, boolean=True, boolean_params=(0, 1)),
    _row("not", "x", (None,), lambda x: float(not x), sympy.Not, ((0, 1),), "not ", "~", c="!",
         notation=Notation("prefix", "not ", NOT, (NOT,)), user_callable=False, boolean=True, boolean_params=(0,)),
    # where(c, a, b) is a when c holds, else b; only the branch taken is evaluated or differentiated.
    _row("where", "c a b", (None, "1", "1"), _where, lambda c, a, b: sympy.Piecewise((a, c), (b, True)),
         ((0, 1), (-3, 3), (-3, 3)), "({a} if {c} else {b})", "numpy.where({c}, {a}, {b})",
         c="({c} ? {a} : {b})", user_callable=False, boolean_params=(0,), branches=(None, True, False)),
)

TABLE: Mapping[str, Primitive] = MappingProxyType({row.name: row for row in _ROWS + _CONDITIONS})


def lookup(name: str) -> Primitive:
    """The row for `name`; reads TABLE at call time so tests can substitute a table."""
    return TABLE[name]


def user_functions() -> tuple[str, ...]:
    return tuple(sorted(name for name, row in TABLE.items() if row.user_callable))


def is_user_function(name: str) -> bool:
    row = TABLE.get(name)
    return row is not None and row.user_callable


# Every name a Python spelling calls: generated modules import them from math (`from math import
# cos, sin`, a global lookup cheaper than math.cos), so they are never free for a variable.
PYTHON_IMPORTS: frozenset[str] = frozenset(
    name for row in TABLE.values() for name in re.findall(r"([A-Za-z_]\w*)\(", row.python)
)

# Constants the grammar knows by name.
CONSTANTS: Mapping[str, float] = MappingProxyType({"pi": math.pi, "e": math.e})
