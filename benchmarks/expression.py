"""A flat reader of symdiff's expression syntax for peers that have no parser (CasADi, JAX).

to_postfix(text) is a shunting-yard pass (no recursion, so 100,000-deep nesting is fine);
evaluate(postfix, variables, ops) replays it with any library's operations.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_]\w*)|(\*\*|[-+*/^(),]))")
# precedence, right-associative
_BINARY = {"+": (1, False), "-": (1, False), "*": (2, False), "/": (2, False), "^": (4, True)}
_NEG = (3, True)
CONSTANTS = {"pi": 3.141592653589793, "e": 2.718281828459045}


def to_postfix(text: str) -> list[tuple]:
    """Tokens in postfix: ("num", value), ("var", name), ("op", symbol), ("neg",), ("call", name, argc)."""
    out: list[tuple] = []
    stack: list[tuple] = []  # ("op", symbol) | ("neg",) | ("(",) | ("fn", name)
    argcs: list[int] = []
    expect_operand = True
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip():
                raise ValueError(f"cannot read {text[position : position + 20]!r}")
            break
        position = match.end()
        number, name, symbol = match.groups()
        if number is not None:
            out.append(("num", float(number)))
            expect_operand = False
        elif name is not None:
            if text[position:].lstrip().startswith("("):
                stack.append(("fn", name))
            elif name in CONSTANTS:
                out.append(("num", CONSTANTS[name]))
                expect_operand = False
            else:
                out.append(("var", name))
                expect_operand = False
        elif symbol == "(":
            if stack and stack[-1][0] == "fn":
                argcs.append(1)
            stack.append(("(",))
            expect_operand = True
        elif symbol == ",":
            while stack[-1][0] != "(":
                out.append(stack.pop())
            argcs[-1] += 1
            expect_operand = True
        elif symbol == ")":
            while stack[-1][0] != "(":
                out.append(stack.pop())
            stack.pop()
            if stack and stack[-1][0] == "fn":
                out.append(("call", stack.pop()[1], argcs.pop()))
            expect_operand = False
        elif expect_operand and symbol in "+-":
            if symbol == "-":
                stack.append(("neg",))
        else:
            symbol = "^" if symbol == "**" else symbol
            precedence, right = _BINARY[symbol]
            while stack and stack[-1][0] in ("op", "neg"):
                top = _NEG if stack[-1][0] == "neg" else _BINARY[stack[-1][1]]
                if top[0] > precedence or (top[0] == precedence and not right):
                    out.append(stack.pop())
                else:
                    break
            stack.append(("op", symbol))
            expect_operand = True
    while stack:
        out.append(stack.pop())
    return out


def evaluate(postfix: list[tuple], variables: dict, ops: dict):
    """Replay `postfix`: ops maps "+", "-", "*", "/", "^", "neg" and function names to callables."""
    values: list = []
    for token in postfix:
        kind = token[0]
        if kind == "num":
            values.append(token[1])
        elif kind == "var":
            values.append(variables[token[1]])
        elif kind == "neg":
            values.append(ops["neg"](values.pop()))
        elif kind == "op":
            right = values.pop()
            values.append(ops[token[1]](values.pop(), right))
        else:
            _, name, count = token
            args = values[len(values) - count :]
            del values[len(values) - count :]
            values.append(ops[name](*args))
    (result,) = values
    return result
