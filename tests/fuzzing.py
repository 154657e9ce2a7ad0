"""Hypothesis strategies over the primitive table, and the generated-code whitelist.

`expressions()` draws an expression together with a point at which every primitive in it is applied
inside its row's sampling domain (values are tracked while the tree is built), so the expression,
its gradient and SymPy's are all defined and well-conditioned there. `branch_programs()` draws
programs whose definitions hold branches read inside later branches, with what they mean (`reference`).
"""

from __future__ import annotations

import ast
import functools
import math
import os
import random
import re
from dataclasses import dataclass

from hypothesis import strategies as st

from symdiff.core import primitives

LONG = os.environ.get("SYMDIFF_FUZZ") == "long"


def examples(ci: int, long: int) -> int:
    """How many examples: `ci` in CI; with SYMDIFF_FUZZ=long, `long` (or SYMDIFF_FUZZ_EXAMPLES)."""
    if not LONG:
        return ci
    return int(os.environ.get("SYMDIFF_FUZZ_EXAMPLES", long))


VARIABLES = ("x", "y", "z", "t")
# How each user-callable row may be written; operators come from the grammar's symbols.
BINARY_SPELLINGS = {
    "add": ("({a} + {b})",),
    "sub": ("({a} - {b})",),
    "mul": ("({a} * {b})",),
    "div": ("({a} / {b})",),
    "pow": ("({a} ^ {b})", "({a} ** {b})", "pow({a}, {b})"),
}
CONSTANT_SPELLINGS = ("{:g}", "{:.1f}", "{:.2e}")


@dataclass(frozen=True)
class Case:
    text: str
    point: dict[str, float]
    size: int  # primitive applications in the text


# Where the fuzzer may apply a row: its sampling domain, widened where the function is smooth
# everywhere (the boxes in the table are deliberately narrow, for the table's own tests).
_WIDER = {
    "sin": lambda v: abs(v) < 50, "cos": lambda v: abs(v) < 50, "atan": lambda v: True,
    "tanh": lambda v: abs(v) < 20, "abs": lambda v: abs(v) > 0.05, "sign": lambda v: abs(v) > 0.05,
    "add": lambda a, b: True, "sub": lambda a, b: True, "mul": lambda a, b: True,
    "div": lambda a, b: abs(b) > 0.25,
    # atan2 jumps by 2*pi across its branch cut (y = 0, x < 0), where IEEE's signed zero decides.
    "atan2": lambda y, x: x > 0.2 or abs(y) > 0.2,
}


def _in_domain(row, values) -> bool:
    if row.name in _WIDER:
        return _WIDER[row.name](*values)
    return all(low <= v <= high for v, (low, high) in zip(values, row.domain))


def _value(row, values):
    try:
        result = row.evaluate(*values)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if isinstance(result, complex) or not math.isfinite(result) or abs(result) > 1e6:
        return None
    return float(result)


def _apply(row, values):
    return _value(row, values) if _in_domain(row, values) else None


def _maybe_negated(draw, node: tuple[str, float, int], shared: bool) -> tuple[str, float, int]:
    """`node`, or (when `shared`, half the time) minus it; no draw unless `shared`."""
    if shared and draw(st.booleans()):
        text, value, size = node
        return f"(-{text})", -value, size + 1
    return node


# Names a program's definitions take: plain ones, and ones a backend must rename or keep apart from
# its own (Python's w1 and x_bar, NumPy's k1, b0, t1 and outputs, C's keywords and its n, k, value).
DEFINITION_NAMES = ("u", "v", "a1", "speed", "w1", "x_bar", "k1", "b0", "t1", "outputs", "values", "out",
                    "int", "double", "n", "k", "value", "lambda", "M_PI")


@st.composite
def expressions(
    draw, max_depth: int = 8, definitions: int = 0, variables: tuple[str, ...] = VARIABLES, shared: bool = False
) -> Case:
    """With `definitions`, a program: up to that many lines `name = expression` (each may use the
    inputs and earlier names), then the output, which (like each later line) reads a defined name
    wherever it reads the shared pool. Leaves name only `variables` (fewer: more reuse of each).
    `shared`: values met again, and met again negated (a reused leaf or subexpression comes back as
    minus itself half the time, and a quarter of binary operations take their first operand, or minus
    it, as their second: x*x, u*(-u)), which code generators share up to a sign; each alone rarely
    makes the pattern of issue 19's item 7, exp(-x) + (-x)*x*2."""
    point = {name: draw(st.floats(0.25, 2.0)) * draw(st.sampled_from((1, 1, -1))) for name in VARIABLES}
    pool: list[tuple[str, float, int]] = []  # built subexpressions, reused to make shared ones
    unary_rows = [row for row in primitives.TABLE.values() if row.user_callable and row.arity == 1]
    binary_rows = [primitives.lookup(name) for name in BINARY_SPELLINGS] + [primitives.lookup("atan2")]

    def leaf():
        kind = draw(st.integers(0, 4))
        if kind == 0:
            number = draw(st.sampled_from((0.5, 1.0, 2.0, 3.0, 0.25, 1.5, 10.0)))
            return draw(st.sampled_from(CONSTANT_SPELLINGS)).format(number), number, 0
        if kind == 1 and pool:
            return _maybe_negated(draw, draw(st.sampled_from(pool)), shared)
        if kind == 2:
            name = draw(st.sampled_from(("pi", "e")))
            return name, primitives.CONSTANTS[name], 0
        name = draw(st.sampled_from(variables))
        return _maybe_negated(draw, (name, point[name], 0), shared)

    def build(depth):
        if depth == 0 or draw(st.integers(0, 3)) == 0:
            return leaf()
        choice = draw(st.integers(0, 9))
        if choice <= 3:
            row = draw(st.sampled_from(unary_rows))
            text, value, size = build(depth - 1)
            result = _apply(row, [value])
            if result is None:
                return text, value, size
            node = (f"{row.name}({text})", result, size + 1)
        elif choice == 4:  # a chain of unary minus (and plus)
            text, value, size = build(depth - 1)
            signs = draw(st.lists(st.sampled_from("-+"), min_size=1, max_size=3))
            negations = signs.count("-")
            node = ("(" + "".join(signs) + f"({text}))", value * (-1) ** negations, size + negations)
        else:
            row = draw(st.sampled_from(binary_rows))
            a_text, a, a_size = build(depth - 1)
            if shared and draw(st.integers(0, 3)) == 0:  # the same value twice, or it and minus it
                b_text, b, b_size = _maybe_negated(draw, (a_text, a, a_size), True)
            else:
                b_text, b, b_size = build(depth - 1)
            if row.name == "pow" and draw(st.booleans()):  # a small integral exponent: the powi row
                b_text, b_size = str(draw(st.integers(-3, 4))), 0
                b = float(b_text)
                result = _value(row, [a, b]) if a != 0 else None
            else:
                result = _apply(row, [a, b])
            if result is None:
                return a_text, a, a_size
            spelling = draw(st.sampled_from(BINARY_SPELLINGS.get(row.name, ("atan2({a}, {b})",))))
            node = (spelling.format(a=a_text, b=b_text), result, a_size + b_size + 1)
        pool.append(node)
        return node

    lines, names, defined = [], [], 0
    if definitions:  # no draw without: the examples of plain expressions stay as they were
        count = draw(st.integers(0, definitions))
        for name in draw(st.lists(st.sampled_from(DEFINITION_NAMES), min_size=count, max_size=count, unique=True)):
            body, value, body_size = build(draw(st.integers(1, max_depth)))
            lines.append(f"{name} = {body}")
            names.append((name, value, 0))
            defined += body_size
            pool[:] = names  # later lines share the defined names, not the insides of their bodies
    text, _, size = build(draw(st.integers(1, max_depth)))
    return Case(draw(st.sampled_from(("; ", "\n"))).join([*lines, text]), point, size + defined)


# ---------------------------------------------------------------- hostile text
LOOKALIKES = "\u2212\u00d7\u00f7\u22c5\u00b7\u2013\uff08\uff09\u0445\u0455\u0456\u200b\ufeff"
TOKENS = ("x", "y", "2", ".5", "1e-3", "+", "-", "*", "/", "^", "**", "(", ")", ",", "sin", "atan2", "pow",
          "pi", "e", " ", "\n")


@st.composite
def mutated(draw) -> str:
    """A valid expression's tokens, then tokens deleted, duplicated, swapped or replaced."""
    case = draw(expressions(max_depth=4))
    tokens = re.findall(r"\d*\.?\d+(?:e-?\d+)?|\w+|\*\*|\S", case.text)
    for _ in range(draw(st.integers(1, 3))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        j = draw(st.integers(0, len(tokens) - 1))
        action = draw(st.integers(0, 3))
        if action == 0:
            del tokens[i]
        elif action == 1:
            tokens.insert(i, tokens[i])
        elif action == 2:
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = draw(st.sampled_from(TOKENS + tuple(LOOKALIKES)))
    return " ".join(tokens)


hostile_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
    st.text(alphabet=st.sampled_from("xy0123456789.eE+-*/^()," + "\x00\x07\t\r\n\x1b\x7f" + LOOKALIKES), max_size=80),
    st.builds(lambda d: f"{d}e{400 + d}", st.integers(1, 9)),
    mutated(),
)


# ---------------------------------------------------------------- the whitelist
MATH_FUNCTIONS = frozenset(
    name for row in primitives.TABLE.values() for name in re.findall(r"(\w+)\(", row.python)
)
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_COMPARISONS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


class UnsafeCode(AssertionError):
    pass


def check_generated_module(source: str) -> None:
    """Prove a generated module contains only: one `from math import` of functions of the table,
    function definitions, assignments and augmented assignments to local names, arithmetic, calls to
    the imported functions, constants, tuples, returns and docstrings. Raises UnsafeCode otherwise."""
    tree = ast.parse(source)
    body = list(tree.body)
    if body and _is_docstring(body[0]):
        body.pop(0)
    imports = [node for node in body if isinstance(node, ast.Import | ast.ImportFrom)]
    if len(imports) > 1 or any(
        not isinstance(node, ast.ImportFrom) or node.module != "math" or node.level
        or any(a.name not in MATH_FUNCTIONS or a.asname for a in node.names)
        for node in imports
    ):
        raise UnsafeCode("imports other than one `from math import` of the table's functions")
    imported = {a.name for node in imports for a in node.names}
    for node in body:
        if node in imports:
            continue
        if not isinstance(node, ast.FunctionDef):
            raise UnsafeCode(f"module-level {type(node).__name__}")
        _check_function(node, imported)


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _check_function(function: ast.FunctionDef, imported: set[str]) -> None:
    arguments = function.args
    if function.decorator_list or function.returns or arguments.vararg or arguments.kwarg or arguments.kwonlyargs \
            or arguments.defaults or arguments.posonlyargs:
        raise UnsafeCode(f"{function.name}: unexpected signature features")
    local_names = {arg.arg for arg in arguments.args}
    if local_names & imported:
        raise UnsafeCode(f"a parameter hides an imported function: {sorted(local_names & imported)}")
    statements = list(function.body)
    if statements and _is_docstring(statements[0]):
        statements.pop(0)
    _check_statements(statements, local_names, imported)


def _check_statements(statements, local_names: set[str], imported: set[str]) -> None:
    for statement in statements:
        if _is_domain_guard(statement):  # `if not x > 0.0: log(x)`: raise outside the domain
            _check_expression(statement.test, local_names, imported)
            _check_expression(statement.body[0].value, local_names, imported)
            continue
        if isinstance(statement, ast.If):  # a branch of where(): `if w3:` / `if not w3:` on a local value
            test = statement.test.operand if isinstance(statement.test, ast.UnaryOp) else statement.test
            if not (isinstance(test, ast.Name) and test.id in local_names) or statement.orelse:
                raise UnsafeCode("an if statement on something other than a local truth value")
            if isinstance(statement.test, ast.UnaryOp) and not isinstance(statement.test.op, ast.Not):
                raise UnsafeCode("if on an arithmetic expression")
            _check_statements(statement.body, local_names, imported)
            continue
        if isinstance(statement, ast.Assign):
            (target,) = statement.targets
            _check_expression(statement.value, local_names, imported)
            if not isinstance(target, ast.Name) or target.id in imported:
                raise UnsafeCode("assignment to something other than a local name")
            local_names.add(target.id)
        elif isinstance(statement, ast.AugAssign):
            if not isinstance(statement.target, ast.Name) or statement.target.id not in local_names:
                raise UnsafeCode("augmented assignment to an unknown name")
            if not isinstance(statement.op, ast.Add | ast.Sub):
                raise UnsafeCode("augmented assignment other than += and -=")
            _check_expression(statement.value, local_names, imported)
        elif isinstance(statement, ast.Return):
            _check_expression(statement.value, local_names, imported)
        else:
            raise UnsafeCode(f"statement {type(statement).__name__}")


def _is_domain_guard(statement) -> bool:
    test = statement.test if isinstance(statement, ast.If) else None
    return (
        isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and isinstance(test.operand, ast.Compare)
        and not statement.orelse and len(statement.body) == 1 and isinstance(statement.body[0], ast.Expr)
        and isinstance(statement.body[0].value, ast.Call)
    )


def _check_expression(node, local_names: set[str], imported: set[str]) -> None:
    called = {id(child.func) for child in ast.walk(node) if isinstance(child, ast.Call)}
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            function = child.func
            if not (isinstance(function, ast.Name) and function.id in imported) or child.keywords:
                raise UnsafeCode(f"call to {ast.unparse(function)}")
        elif isinstance(child, ast.Name):
            if child.id not in local_names and not (child.id in imported and id(child) in called):
                raise UnsafeCode(f"name {child.id} from outside the function")
            if not isinstance(child.ctx, ast.Load):
                raise UnsafeCode("store inside an expression")
        elif isinstance(child, ast.BinOp):
            if not isinstance(child.op, _ARITHMETIC):
                raise UnsafeCode(f"operator {type(child.op).__name__}")
        elif isinstance(child, ast.UnaryOp):
            if not isinstance(child.op, ast.USub | ast.UAdd | ast.Not):
                raise UnsafeCode(f"unary {type(child.op).__name__}")
        elif isinstance(child, ast.Constant):
            if not isinstance(child.value, int | float) or isinstance(child.value, bool):
                raise UnsafeCode(f"constant {child.value!r}")
        elif isinstance(child, ast.IfExp):
            pass  # sign(x) and where(c, a, b) are spelled `(a if c else b)`; the parts are checked too
        elif isinstance(child, ast.Compare):
            if not all(isinstance(op, _COMPARISONS) for op in child.ops):
                raise UnsafeCode("comparison other than < <= > >= == !=")
        elif isinstance(child, ast.BoolOp):
            pass  # and / or of comparisons; the operands are checked too
        elif not isinstance(child, ast.Tuple | ast.Load | ast.operator | ast.unaryop | ast.expr_context | ast.cmpop
                            | ast.boolop):
            raise UnsafeCode(f"expression {type(child).__name__}")


# ---------------------------------------------------------------- programs with branches in branches
BRANCH_INPUTS = ("x", "y", "z")
# Functions defined and tame on every real number: applied anywhere.
_TOTAL_UNARY = ("sin", "cos", "tanh", "atan")
# Functions with a smaller domain, applied only in the branch of a where() whose condition keeps them
# in it (text, and the bounds of the condition): the branch not taken must never be evaluated.
_GUARDED = {
    "log": ("{e} > 0.25", ">", 0.25),
    "sqrt": ("{e} > 0.25", ">", 0.25),
    "asin": ("{e} > -0.75 and {e} < 0.75", "and", 0.75),
    "div": ("{e} < -0.5 or {e} > 0.5", "or", 0.5),  # 1 / e
}
_BRANCH_CONSTANTS = ("0.5", "1", "2", "1.5", "0.25", "3")
_COMPARE_ROWS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


@dataclass(frozen=True)
class BranchProgram:
    """Definitions holding branches (where, min, max) that later definitions and the outputs read
    inside their own branches and conditions; then two outputs (the first is the function, both make
    a Jacobian). `trees` is each output as a tree of table rows, ("input", name) and ("const", value)
    leaves, definitions shared as the same subtree: what the text means, for `reference`."""

    definitions: tuple[str, ...]
    outputs: tuple[str, ...]
    trees: tuple[tuple, ...]
    points: tuple[dict[str, float], ...]

    def program(self, outputs: int = 1) -> str:
        return "\n".join([*self.definitions, ", ".join(self.outputs[:outputs])])


@st.composite
def branch_programs(draw, definitions: int = 3, max_depth: int = 3) -> BranchProgram:
    """A program whose definitions hold where(), min() or max() and are read inside later branches
    (and conditions). Functions with a smaller domain than the reals appear only under a where()
    keeping them in it, so the program is defined everywhere and points are drawn in [-3, 3]^3."""
    defined: list[tuple[str, tuple]] = []  # (name, tree)

    def leaf(prefer_defined: bool = False) -> tuple[str, tuple]:
        if defined and (prefer_defined or draw(st.integers(0, 2)) == 0):
            return draw(st.sampled_from(defined))
        if draw(st.integers(0, 3)) == 0:
            text = draw(st.sampled_from(_BRANCH_CONSTANTS))
            return text, ("const", float(text))
        name = draw(st.sampled_from(BRANCH_INPUTS))
        return name, ("input", name)

    def condition(depth: int) -> tuple[str, tuple]:
        left, left_tree = value(depth)
        right, right_tree = value(depth) if draw(st.booleans()) else leaf()
        if right == left:  # x < x is a tie everywhere
            right, right_tree = "1.5", ("const", 1.5)
        symbol = draw(st.sampled_from(sorted(_COMPARE_ROWS)))
        text, tree = f"{left} {symbol} {right}", (_COMPARE_ROWS[symbol], left_tree, right_tree)
        joint = draw(st.integers(0, 5))
        if joint == 0:
            return f"not ({text})", ("not", tree)
        if joint in (1, 2) and depth > 0:
            other, other_tree = condition(depth - 1)
            word = ("and", "or")[joint - 1]
            return f"({text}) {word} ({other})", (word, tree, other_tree)
        return text, tree

    def where(depth: int, prefer_defined: bool = True) -> tuple[str, tuple]:
        test, test_tree = condition(depth - 1)
        yes, yes_tree = value(depth - 1, prefer_defined)
        no, no_tree = value(depth - 1, prefer_defined)
        if no == yes:  # where(c, u, u) is u: make the branches differ
            no, no_tree = f"({yes} * 2)", ("mul", yes_tree, ("const", 2.0))
        return f"where({test}, {yes}, {no})", ("where", test_tree, yes_tree, no_tree)

    def extremum(depth: int, prefer_defined: bool = True) -> tuple[str, tuple]:
        name = draw(st.sampled_from(("min", "max")))
        args = list({text: tree for text, tree in (value(depth - 1, prefer_defined) for _ in range(3))}.items())
        if len(args) == 1:  # min(x, x) is a tie everywhere
            args.append(("-1.5", ("const", -1.5)) if args[0][0] == "0.5" else ("0.5", ("const", 0.5)))
        tree = args[0][1]
        for _, arg in args[1:]:  # as the parser writes it: max(a, b) = where(a >= b, a, b)
            tree = ("where", ({"max": "ge", "min": "le"}[name], tree, arg), tree, arg)
        return f"{name}({', '.join(text for text, _ in args)})", tree

    def guarded(depth: int, prefer_defined: bool = True) -> tuple[str, tuple]:
        function = draw(st.sampled_from(sorted(_GUARDED)))
        inner, e = value(depth - 1)
        if _folded(e) is not None:  # asin(2) in the text is a DomainError, whatever branch it is in
            inner = draw(st.sampled_from(BRANCH_INPUTS))
            e = ("input", inner)
        spelling, kind, bound = _GUARDED[function]
        low, high = ("const", -bound), ("const", bound)
        test = {
            ">": ("gt", e, high),
            "and": ("and", ("gt", e, low), ("lt", e, high)),
            "or": ("or", ("lt", e, low), ("gt", e, high)),
        }[kind]
        if function == "div":
            text, tree = f"1 / ({inner})", ("div", ("const", 1.0), e)
        else:
            text, tree = f"{function}({inner})", (function, e)
        other, other_tree = value(depth - 1, prefer_defined)
        return f"where({spelling.format(e=f'({inner})')}, {text}, {other})", ("where", test, tree, other_tree)

    def value(depth: int, prefer_defined: bool = False) -> tuple[str, tuple]:
        kind = draw(st.integers(0, 7)) if depth > 0 else 0
        if kind == 0:
            return leaf(prefer_defined)
        if kind == 1:
            name = draw(st.sampled_from(_TOTAL_UNARY))
            inner, tree = value(depth - 1, prefer_defined)
            return f"{name}({inner})", (name, tree)
        if kind in (2, 3):
            symbol, name = draw(st.sampled_from((("+", "add"), ("-", "sub"), ("*", "mul"))))
            a, a_tree = value(depth - 1, prefer_defined)
            b, b_tree = value(depth - 1, prefer_defined)
            return f"({a} {symbol} {b})", (name, a_tree, b_tree)
        return (extremum, guarded, where, where)[kind - 4](depth, prefer_defined)

    lines = []
    for number in range(draw(st.integers(1, definitions))):
        # Every definition holds a branch; later ones read earlier ones, preferably inside branches.
        make = draw(st.sampled_from((where, extremum, guarded)))
        text, tree = make(draw(st.integers(1, max_depth)), number > 0)
        name = f"d{number + 1}"
        lines.append(f"{name} = {text}")
        defined.append((name, tree))
    outputs = [where(draw(st.integers(1, max_depth))) for _ in range(2)]
    # Thousandths of the way off the constants, so that x > 0.25 is never a tie; nearer ties (x < y
    # with x = y) are for the reference to notice.
    coordinate = st.integers(-3000, 3000).map(lambda k: k / 1000 + 1 / 4096)
    points = tuple({name: draw(coordinate) for name in BRANCH_INPUTS} for _ in range(draw(st.integers(2, 4))))
    return BranchProgram(tuple(lines), tuple(text for text, _ in outputs), tuple(tree for _, tree in outputs), points)


def _folded(tree: tuple) -> float | None:
    """The number symdiff makes of a program tree while compiling, or None if it reads an input
    there: constants fold, and a where() with a constant condition is the branch it takes."""
    op = tree[0]
    if op == "const":
        return tree[1]
    if op == "input":
        return None
    if op == "where":
        condition = _folded(tree[1])
        return None if condition is None else _folded(tree[2] if condition else tree[3])
    args = [_folded(arg) for arg in tree[1:]]
    return None if None in args else float(primitives.lookup(op).evaluate(*args))


@dataclass(frozen=True)
class Reference:
    value: float
    gradient: tuple[float, ...]  # over BRANCH_INPUTS
    hessian: tuple[tuple[float, ...], ...]
    scale: float  # the largest magnitude of any value, derivative or second derivative on the way


def reference(tree: tuple, point: dict[str, float], tie: float | None = None) -> Reference | None:
    """The value, gradient and Hessian of a program's output at `point`, by walking its tree with
    second-order dual numbers: each row's value from its real evaluation, its first and second partials
    from SymPy differentiating the row's SymPy counterpart (not from the table's partials), and only the
    branch taken evaluated. None where a value leaves the reals, or, given `tie`, where a comparison on
    the way is that near a tie. (Generated code computes each value with the same operations, so it
    decides ties as the reference does: no tie needs skipping there.)"""
    n = len(BRANCH_INPUTS)
    zero = (0.0,) * n
    memo: dict[int, tuple] = {}  # id(subtree) -> (value, gradient, hessian): definitions are shared
    scale = [0.0]

    def walk(node: tuple):
        known = memo.get(id(node))
        if known is not None:
            return known
        op = node[0]
        if op == "const":
            result = (node[1], zero, (zero,) * n)
        elif op == "input":
            k = BRANCH_INPUTS.index(node[1])
            result = (point[node[1]], tuple(float(j == k) for j in range(n)), (zero,) * n)
        elif op == "where":
            result = walk(node[2] if truth(node[1]) else node[3])
        else:
            result = _chain(op, [walk(arg) for arg in node[1:]])
        value, gradient, hessian = result
        scale[0] = max(scale[0], abs(value), *map(abs, gradient), *(abs(h) for row in hessian for h in row))
        memo[id(node)] = result
        return result

    def truth(node: tuple) -> bool:
        op = node[0]
        if op == "not":
            return not truth(node[1])
        if op in ("and", "or"):
            first, second = truth(node[1]), truth(node[2])  # both are comparisons: total
            return (first and second) if op == "and" else (first or second)
        left, right = walk(node[1])[0], walk(node[2])[0]
        if tie is not None and abs(left - right) <= tie * (1.0 + abs(left) + abs(right)):
            raise _Tie
        return bool(primitives.lookup(op).evaluate(left, right))

    try:
        value, gradient, hessian = walk(tree)
    except (_Tie, ValueError, ZeroDivisionError, OverflowError):
        return None
    if not all(math.isfinite(v) for v in (value, *gradient, *(h for row in hessian for h in row))):
        return None
    return Reference(value, gradient, hessian, scale[0])


class _Tie(Exception):
    pass


def _chain(op: str, args: list[tuple]):
    """op applied to second-order dual numbers: value, gradient g = sum f_i g_i, Hessian
    H = sum f_i H_i + sum f_ij g_i g_j^T."""
    values = [a[0] for a in args]
    first, second = _row_partials(op)(*values)
    n = len(args[0][1])
    gradient = tuple(sum(float(first[i]) * args[i][1][k] for i in range(len(args))) for k in range(n))
    hessian = tuple(
        tuple(
            sum(float(first[i]) * args[i][2][r][c] for i in range(len(args)))
            + sum(float(second[i][j]) * args[i][1][r] * args[j][1][c] for i in range(len(args)) for j in range(len(args)))
            for c in range(n)
        )
        for r in range(n)
    )
    return float(primitives.lookup(op).evaluate(*values)), gradient, hessian


@functools.cache
def _row_partials(op: str):
    """A row's first and second partials, from SymPy's derivative of its SymPy counterpart, as a
    function of the operands' values."""
    import sympy

    row = primitives.lookup(op)
    params = sympy.symbols(f"p0:{row.arity}", real=True)
    expr = row.sympy(*params)
    first = [sympy.diff(expr, p) for p in params]
    second = [[sympy.diff(d, p) for p in params] for d in first]
    return sympy.lambdify(params, [first, second], modules="math")


# ---------------------------------------------------------------- array programs (issue 21)
# Random sums (and products) over shifted indices, pairs i < j, strides and a 2-D array, with scalar parameters
# (a, b), a data array (y), sums inside bodies and in a definition. Every function used is smooth
# and defined on all reals, and the value of a body stays moderate for inputs in [-2, 2], so each
# program has a gradient at every point drawn; bounds hold whenever every array has one length n.

ARRAY_UNARY = ("sin({})", "cos({})", "tanh({})", "atan({})", "exp({}/4)", "({})^2", "({})^3")
ARRAY_BINARY = ("({} + {})", "({} - {})", "({} * {})", "({} / (1 + ({})^2))")
# Loop kinds: their for clauses, and the leaves a body may read (scalars and definitions are added).
ARRAY_LOOPS = {
    "shifted": ("for i in range(len(x) - 2)", ("x[i]", "x[i + 1]", "x[i + 2]", "y[i]", "i")),
    "reversed": ("for i in range(len(x))", ("x[i]", "x[len(x) - 1 - i]", "y[len(x) - 1 - i]")),
    "from one": ("for i in range(1, len(x))", ("x[i]", "x[i - 1]", "y[i]", "len(x)")),
    "pairs": ("for i in range(len(x)) for j in range(i + 1, len(x))", ("x[i]", "x[j]", "y[j]", "(j - i)")),
    "strided": ("for i in range(len(x) - 3)", ("x[2*i]", "x[2*i + 1]", "x[i]")),  # in bounds up to len 6
    "matrix": ("for j in range(len(y)) for k in range(len(x))", ("W[j, k]", "x[k]", "y[j]")),
}
ARRAY_CONSTANTS = ("0.5", "2", "1.5", "3")


@dataclass(frozen=True)
class ArrayProgram:
    text: str
    data: bool  # y is data (not in wrt); else the gradient is by every input


def array_program(rng: random.Random, max_depth: int = 3) -> ArrayProgram:
    """One random array program. A plain seeded generator: Hypothesis's draws favour the first of
    each choice, so some loop kinds and reads would hardly ever be met."""
    scalars = ["a", "b"]
    lines = []
    if rng.random() < 0.5:
        mean = rng.choice(("sum(x[l]^2 for l in range(len(x)))/len(x)", "sum(sin(x[l]) for l in range(len(x)))"))
        lines.append(f"m = {mean}")
        scalars.append("m")

    def body(leaves: tuple[str, ...], depth: int, inner: bool) -> str:
        if depth == 0 or rng.randint(0, 3) == 0:
            kind = rng.randint(0, 7)  # an element, an index or a length 5 times in 8
            if kind == 0:
                return rng.choice(ARRAY_CONSTANTS)
            if kind == 1:
                return rng.choice(scalars)
            if kind == 2 and inner:  # a sum inside the body, reading the loop's own leaves too
                term = body(("x[l]", *leaves), 1, False)
                return f"sum({term} for l in range(len(x)))"
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return rng.choice(ARRAY_UNARY).format(body(leaves, depth - 1, inner))
        return rng.choice(ARRAY_BINARY).format(body(leaves, depth - 1, inner), body(leaves, depth - 1, inner))

    sums = []
    for _ in range(rng.randint(1, 2)):
        clauses, leaves = ARRAY_LOOPS[rng.choice(sorted(ARRAY_LOOPS))]
        term = body(leaves, rng.randint(1, max_depth), True)
        if rng.randint(0, 4) == 0:  # a product, of factors near 1 so that it stays moderate
            sums.append(f"prod(1 + {term}/4 {clauses})")
        else:
            sums.append(f"sum({term} {clauses})")
    output = sums[0] if len(sums) == 1 else rng.choice(("{} + a*{}", "{} - {}", "{}*(1 + b^2) + {}"))
    if len(sums) == 2:
        output = output.format(*sums)
    # An array is a name indexed somewhere: one read only in a range's len() gets a term reading it.
    text = "; ".join([*lines, output])
    for array, term in (("x", "sum(sin(x[i]) for i in range(len(x)))"), ("y", "sum(x[i]*y[i] for i in range(len(y)))")):
        if f"len({array})" in text and f"{array}[" not in text:
            text += f" + {term}"
    return ArrayProgram(text, rng.random() < 0.5)
