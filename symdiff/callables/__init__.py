"""callables: what compile_grad, compile_jvp, compile_jacobian and compile_hessian return.

One base (base.py: argument binding, save, verify, the batch output check) and one module per
backend, which differ only in how they load the code their printer wrote: Python and NumPy run the
generated module (calling.load), C compiles it and calls it through ctypes.

    gradient(programs, backend, simplified)  -> g(*point), g.value, g.value_and_grad, g.source, ...
    derivatives(program, backend)            -> the entry points of a jvp, Jacobian or Hessian Program
"""

from __future__ import annotations

from ..core.program import Program
from ..errors import SymdiffError

BACKENDS = ("python", "numpy", "c")


def gradient(programs, backend: str, simplified: bool = True):
    """The gradient callable of `backend` (each backend's module is imported only when asked for:
    the NumPy one needs NumPy)."""
    adjoint = programs.sweep(simplified)
    if backend == "python":
        from .python import Gradient

        return Gradient(programs, simplified)
    if backend == "numpy":
        from .numpy import NumpyGradient

        return NumpyGradient(programs, adjoint)
    if backend == "c":
        from .c import CGradient

        return CGradient(programs, adjoint)
    raise unknown_backend(backend)


def derivatives(program: Program, backend: str):
    """The entry points of a derivative Program (jvp, jacobian, value_and_jacobian, hessian, hvp) for
    `backend`: an object with `source` (the module text) and `function(name)` (the entry point, taking
    positional values, inputs then directions, and returning what the Python module's function does)."""
    if backend == "python":
        from .python import PythonEntries

        return PythonEntries(program)
    if backend == "numpy":
        from .numpy import NumpyEntries

        return NumpyEntries(program)
    if backend == "c":
        from .c import CEntries

        return CEntries(program)
    raise unknown_backend(backend)


def unknown_backend(backend) -> SymdiffError:
    return SymdiffError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
