"""Hypothesis strategies over the primitive table, and the generated-code whitelist.

`expressions()` draws an expression together with a point at which every primitive in it is applied
inside its row's sampling domain (values are tracked while the tree is built), so the expression,
its gradient and SymPy's are all defined and well-conditioned there.
"""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import dataclass

from hypothesis import strategies as st

from symdiff import primitives

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
