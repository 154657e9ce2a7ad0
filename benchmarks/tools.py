"""One adapter per tool: build(case) turns the expression string into a ready gradient callable.

Every adapter returns a Built: `call(point)` evaluates the gradient at one point (a list of floats,
inputs in natural order), `batch(X)` at the columns of X (inputs x points, float64) when the tool
has a batch mode, and `ops()` counts operations in the gradient program and in the function.
Imports happen in `load()`, outside the timed build.
"""

from __future__ import annotations

import operator
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from cases import Case
from expression import evaluate, to_postfix

TOOLS = ("symdiff-python", "symdiff-numpy", "symdiff-c", "sympy", "symengine", "casadi", "jax")


@dataclass
class Built:
    call: Callable
    batch: Callable | None = None
    ops: Callable | None = None  # -> dict with "gradient", "function" (and any detail)
    note: str = ""
    # Makes (after the build is timed) the function alone at one point, where the tool has it cheap.
    make_value: Callable[[], Callable] | None = None
    checked: Callable | None = None  # the public call that binds and checks its arguments, if not `call`
    fresh_batch: Callable | None = None  # the batch returning new arrays, where `batch` reuses the caller's


def load(tool: str):
    """Import what `tool` needs (not timed); raises ImportError when the peer is missing."""
    if tool.startswith("symdiff"):
        import numpy  # noqa: F401

        import symdiff  # noqa: F401

        if tool == "symdiff-c":
            from symdiff.codegen.c import find_compiler

            find_compiler()
    elif tool == "sympy":
        import numpy  # noqa: F401
        import sympy  # noqa: F401
    elif tool == "symengine":
        import symengine  # noqa: F401
    elif tool == "casadi":
        import casadi  # noqa: F401
    elif tool == "jax":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax

        jax.config.update("jax_enable_x64", True)
    else:
        raise ValueError(f"unknown tool {tool}")
    return BUILDERS[tool]


# --- symdiff ------------------------------------------------------------------------------------


def _symdiff_ops(gradient) -> dict:
    from symdiff.core.adjoint import sweep_ops
    from symdiff.core.tape import INPUT

    adjoint = gradient.programs.adjoint
    tape = adjoint.tape
    terms = [step.term for step in adjoint.steps] + list(adjoint.gradient)
    reverse = sweep_ops(adjoint)
    needed: set[int] = set()
    stack = list(terms)
    while stack:
        term = stack.pop()
        if type(term).__name__ == "Ref":
            needed.add(term.index)
        stack.extend(getattr(term, "args", ()))
    forward = sum(1 for i in tape.closure(needed) if tape.instrs[i].op != INPUT)
    function = sum(1 for instr in tape.instrs if instr.op != INPUT)
    return {"gradient": forward + reverse, "reverse": reverse, "function": function}


def build_symdiff_python(case: Case) -> Built:
    import symdiff

    gradient = symdiff.compile_grad(case.text)
    grad = gradient.grad_function  # the generated grad(), as lambdify's function is SymPy's

    def make_value():  # f from the generated module, unchecked as grad is (g.value binds arguments)
        module: dict = {}
        exec(compile(gradient.source, f"<symdiff {case.name}>", "exec"), module)
        f = module["f"]
        return lambda point: f(*point)

    return Built(
        call=lambda point: grad(*point),
        ops=lambda: _symdiff_ops(gradient),
        make_value=make_value,
        checked=lambda point: gradient(*point),
        note="per call through g.grad_function (the generated grad); the checked g(*point) has its own table",
    )


def build_symdiff_numpy(case: Case) -> Built:
    import symdiff

    gradient = symdiff.compile_grad(case.text, backend="numpy")
    return Built(
        call=lambda point: gradient(*point),
        batch=_into_reused(gradient),
        fresh_batch=lambda columns: gradient(*columns),
        ops=lambda: _symdiff_ops(gradient),
        note="batch through g.batch into a reused out= array, as for C; g(*columns) (new arrays) has its own table",
    )


def _into_reused(gradient):
    """g.batch(points, out=...) into one array per shape, reused across calls, as a caller would."""
    import numpy

    outputs: dict = {}

    def batch(points):
        out = outputs.get(points.shape)
        if out is None:
            out = outputs[points.shape] = numpy.empty((len(gradient.wrt), points.shape[1]))
        return gradient.batch(points, out=out)

    return batch


def build_symdiff_c(case: Case) -> Built:

    import symdiff

    gradient = symdiff.compile_grad(case.text, backend="c")
    return Built(
        call=lambda point: gradient.grad_array(point),
        batch=_into_reused(gradient),
        ops=lambda: _symdiff_ops(gradient),
        note="per call through grad_array (a float64 array in and out); batch into a reused out= array",
    )


def fresh_c_cache() -> None:
    """Each timed C build starts from an empty cache: it pays for the compiler."""
    os.environ["SYMDIFF_CACHE"] = tempfile.mkdtemp(prefix="symdiff-bench-cache-")


# --- SymPy: diff + cse + lambdify ---------------------------------------------------------------


def build_sympy(case: Case) -> Built:
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    symbols = [sympy.Symbol(name) for name in case.inputs]
    local = dict(zip(case.inputs, symbols))
    expr = parse_expr(case.text.replace("^", "**"), local_dict=local)
    partials = [sympy.diff(expr, s) for s in symbols]
    scalar = sympy.lambdify(symbols, partials, modules="math", cse=True)

    def batch(columns, cache={}):  # noqa: B006  # the NumPy lambdify is built once, untimed
        if "f" not in cache:
            cache["f"] = sympy.lambdify(symbols, partials, modules="numpy", cse=True)
        return cache["f"](*columns)

    def ops():
        replacements, reduced = sympy.cse(partials)
        gradient = sum(sympy.count_ops(e) for _, e in replacements) + sum(sympy.count_ops(e) for e in reduced)
        return {"gradient": int(gradient), "function": int(sympy.count_ops(expr))}

    return Built(call=lambda point: scalar(*point), batch=batch, ops=ops)


# --- SymEngine: diff + Lambdify (LLVM backend when available) -----------------------------------


def build_symengine(case: Case) -> Built:
    import numpy
    import symengine

    symbols = symengine.symbols(" ".join(case.inputs)) if len(case.inputs) > 1 else [symengine.Symbol(case.inputs[0])]
    expr = symengine.sympify(case.text.replace("^", "**"))
    partials = [expr.diff(s) for s in symbols]
    try:
        function = symengine.Lambdify(list(symbols), partials, backend="llvm", cse=True)
        note = "LLVM backend"
    except (RuntimeError, ValueError, TypeError):
        function = symengine.Lambdify(list(symbols), partials, cse=True)
        note = "lambda backend (LLVM unavailable)"

    def ops():
        replacements, reduced = symengine.cse(partials)
        gradient = symengine.count_ops(*[e for _, e in replacements], *reduced) if replacements or reduced else 0
        return {"gradient": int(gradient), "function": int(symengine.count_ops(expr))}

    return Built(
        call=lambda point: function(numpy.asarray(point)),
        batch=lambda columns: function(numpy.ascontiguousarray(columns.T)),
        ops=ops,
        note=note,
    )


# --- CasADi: SX gradient + Function (no parser: a flat rewrite of the text) ---------------------


def build_casadi(case: Case) -> Built:
    import casadi
    import numpy

    x = casadi.SX.sym("x", len(case.inputs))
    variables = {name: x[i] for i, name in enumerate(case.inputs)}
    expr = evaluate(to_postfix(case.text), variables, _ops(casadi, {"abs": casadi.fabs, "pow": operator.pow}))
    function = casadi.Function("g", [x], [casadi.gradient(expr, x)])
    mapped: dict = {}

    def batch(columns):
        if columns.shape[1] not in mapped:
            mapped[columns.shape[1]] = function.map(columns.shape[1])
        return mapped[columns.shape[1]](columns)

    def ops():
        value = casadi.Function("f", [x], [expr])
        return {"gradient": int(function.n_instructions()), "function": int(value.n_instructions())}

    return Built(call=lambda point: function(numpy.asarray(point)), batch=batch, ops=ops, note="SX instructions")


# --- JAX: jit(grad), CPU, float64 (no parser: a flat rewrite of the text) -----------------------


def build_jax(case: Case) -> Built:
    import jax
    import jax.numpy as jnp

    names = case.inputs
    postfix = to_postfix(case.text)
    operations = _ops(jnp, {"abs": jnp.abs, "pow": jnp.power, "atan2": jnp.arctan2, "atan": jnp.arctan})

    def f(*xs):
        return evaluate(postfix, dict(zip(names, xs)), operations)

    argnums = tuple(range(len(names)))
    gradient = jax.jit(jax.grad(f, argnums=argnums))
    batched: dict = {}

    def call(point):
        return jax.block_until_ready(gradient(*point))

    def batch(columns):
        if "f" not in batched:
            batched["f"] = jax.jit(jax.vmap(jax.grad(f, argnums=argnums)))
            batched["columns"] = {}
        key = id(columns)
        if key not in batched["columns"]:
            batched["columns"] = {key: [jax.device_put(c) for c in columns]}
        return jax.block_until_ready(batched["f"](*batched["columns"][key]))

    def ops():
        point = [0.5] * len(names)
        return {
            "gradient": len(jax.make_jaxpr(jax.grad(f, argnums=argnums))(*point).jaxpr.eqns),
            "function": len(jax.make_jaxpr(f)(*point).jaxpr.eqns),
        }

    return Built(call=call, batch=batch, ops=ops, note="jaxpr equations; inputs as separate scalars")


def _ops(module, extra: dict) -> dict:
    names = ("sin", "cos", "tan", "exp", "log", "sqrt", "sinh", "cosh", "tanh", "atan2", "atan", "sign")
    table = {name: getattr(module, name) for name in names if hasattr(module, name)}
    table.update({"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv})
    table.update({"^": operator.pow, "neg": operator.neg})
    table.update(extra)
    return table


BUILDERS = {
    "symdiff-python": build_symdiff_python,
    "symdiff-numpy": build_symdiff_numpy,
    "symdiff-c": build_symdiff_c,
    "sympy": build_sympy,
    "symengine": build_symengine,
    "casadi": build_casadi,
    "jax": build_jax,
}
