"""Print expression trees (the AST, or adjoint terms) as text in one of four dialects:
"symdiff" (parses back to an equal AST), "python", "numpy" and "c" (generated code).

Parentheses come from each row's notation; the walk is iterative, so deep trees print.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from . import primitives
from .primitives import ATOM, UNARY

Leaf = Callable[[object], str]


def number_text(value: float, integral: bool = False) -> str:
    """A float literal that reads back exactly (`repr` is the shortest round-trip form)."""
    if integral and float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def affine_text(affine, symbol: Leaf) -> str:
    """An index or bound (expr.Affine) as people write it: the added symbols, then the constant, then
    the subtracted ones (`i + 1`, `2*i + 1`, `len(x) - 1 - i`, `j - i`; the same in Python and C);
    `symbol(index name or Length)` spells each symbol."""
    added = [(name, c) for name, c in affine.terms if c > 0]
    subtracted = [(name, -c) for name, c in affine.terms if c < 0]

    def term(name, magnitude: int) -> str:
        return symbol(name) if magnitude == 1 else f"{magnitude}*{symbol(name)}"

    text = " + ".join(term(name, c) for name, c in added)
    constant = affine.constant
    if not text:
        text = str(constant) if constant or not subtracted else ""
    elif constant:
        text += f" + {constant}" if constant > 0 else f" - {-constant}"
    for name, magnitude in subtracted:
        text = f"{text} - {term(name, magnitude)}" if text else f"-{term(name, magnitude)}"
    return text


def format_tree(root, leaf: Leaf, dialect: str = "python") -> str:
    """Text of `root`; `leaf(node)` names every non-application node except numbers."""
    out: list[tuple[str, int]] = []
    stack: list[tuple[object, bool, bool]] = [(root, False, False)]
    while stack:
        node, expanded, integral = stack.pop()
        if not _has(type(node), "args"):
            out.append(_leaf_text(node, leaf, integral, dialect))
        elif not expanded:
            args, row = node.args, primitives.lookup(node.op)
            stack.append((node, True, integral))
            for position in range(len(args) - 1, -1, -1):
                stack.append((args[position], False, position in row.integer_params))
        else:
            args = node.args
            operands = out[len(out) - len(args) :]
            del out[len(out) - len(args) :]
            out.append(_apply_text(primitives.lookup(node.op), operands, dialect))
    return out[0][0]


def format_flat(op: str, args: tuple, leaf: Leaf, dialect: str = "python") -> str:
    """format_tree for an application whose arguments are all leaves (every tape entry): no walk."""
    row = primitives.lookup(op)
    operands = [_leaf_text(arg, leaf, position in row.integer_params, dialect) for position, arg in enumerate(args)]
    return _apply_text(row, operands, dialect)[0]


def _leaf_text(node, leaf: Leaf, integral: bool, dialect: str) -> tuple[str, int]:
    if _has(type(node), "value"):  # a number
        text = number_text(node.value, integral or dialect == "symdiff")
        return text, UNARY if text.startswith("-") else ATOM
    return leaf(node), ATOM


@cache
def _has(kind: type, attribute: str) -> bool:
    """Whether nodes of this type have the attribute: asked of the type once, not of every node
    (getattr with a default raises and catches an AttributeError for each node that lacks it)."""
    return hasattr(kind, attribute)


# A value read, not computed: a name, or an array element (x[i + 1], W[j][k], W[j * W_len1 + k]).
_STORED = re.compile(r"[A-Za-z_]\w*(\[[\w +*-]*\])*")


def _apply_text(row: primitives.Primitive, operands: list[tuple[str, int]], dialect: str) -> tuple[str, int]:
    notation = row.notation
    spelling = notation.symbol if dialect == "symdiff" else getattr(row, dialect)
    if dialect == "symdiff" and notation.kind == "call":
        spelling = f"{row.name}(" + ", ".join("{" + param + "}" for param in row.params) + ")"
    if dialect in row.squares_as_product and operands[1][0] == "2" and _STORED.fullmatch(operands[0][0]):
        return f"{operands[0][0]} * {operands[0][0]}", primitives.PRODUCT  # a name or an element: computed once
    if "{" in spelling:  # a call template, such as math.pow({x}, {y}) for the infix ^
        return spelling.format(**dict(zip(row.params, (text for text, _ in operands)))), ATOM
    texts = [
        f"({text})" if precedence < minimum else text
        for (text, precedence), minimum in zip(operands, notation.operand_min)
    ]
    if notation.kind == "infix":
        return f"{texts[0]} {spelling} {texts[1]}", notation.precedence
    if texts[0].startswith(spelling):  # -(-x), never --x: C reads "--" as its decrement operator
        return f"{spelling}({texts[0]})", notation.precedence
    return f"{spelling}{texts[0]}", notation.precedence


def expression_text(expr) -> str:
    """An AST back in symdiff syntax: parse(expression_text(e)) == e."""
    return format_tree(expr, lambda var: var.name, "symdiff")
