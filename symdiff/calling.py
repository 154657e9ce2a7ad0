"""calling: what every compiled callable shares, whatever the backend: binding call arguments to the
inputs, and loading generated Python source as a module whose lines tracebacks can show."""

from __future__ import annotations

import gc
import hashlib
import linecache
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ArgumentError


def bind(inputs: tuple[str, ...], args: tuple, kwargs: dict) -> tuple:
    """Positional and keyword arguments as one tuple in the order of `inputs`, each input once."""
    if kwargs:
        values = dict(zip(inputs, args))
        for name, value in kwargs.items():
            if name not in inputs:
                raise ArgumentError(f"unknown input {name!r}; inputs are {', '.join(inputs) or 'none'}")
            if name in values:
                raise ArgumentError(f"input {name!r} given twice")
            values[name] = value
        missing = [name for name in inputs if name not in values]
        if missing:
            raise ArgumentError(f"missing value for {', '.join(missing)}")
        args = tuple(values[name] for name in inputs)
    if len(args) != len(inputs):
        raise ArgumentError(f"expected {len(inputs)} values ({', '.join(inputs) or 'none'}), got {len(args)}")
    return args


def real_point(values) -> tuple[float, ...]:
    """A point's values as floats, or the ArgumentError every backend gives for anything else."""
    try:
        return tuple(float(value) for value in values)
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"point values must be real numbers: {error}") from None


def load(source: str, kind: str = "generated", builtins: dict | None = None) -> dict:
    """Run generated source and return its namespace. Its file name is a digest of the text, and the
    text is registered with linecache, so a traceback through generated code shows its lines.
    `builtins` replaces the builtins the code sees (verify runs modules over SymPy symbols so)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<symdiff-{kind}-{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict = {"__name__": f"symdiff_{kind}_{digest}"}
    if builtins is not None:
        namespace["__builtins__"] = builtins
    with paused_gc():
        exec(compile(source, filename, "exec"), namespace)
    return namespace


@contextmanager
def paused_gc() -> Iterator[None]:
    """symdiff's data is acyclic, so the cycle collector only costs time while large expressions are
    built (it rescans the growing heap); it is switched back on afterwards if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
