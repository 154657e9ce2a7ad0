"""symdiff: readable, standalone gradient code from a math expression, proven right with SymPy."""

from .api import Gradient, compile_grad, gradient_source, verify
from .errors import (
    ArgumentError,
    CompilerError,
    DomainError,
    LimitError,
    SymdiffError,
    SymdiffSyntaxError,
    UnknownNameError,
)
from .version import __version__

__all__ = [
    "ArgumentError",
    "CompilerError",
    "DomainError",
    "Gradient",
    "LimitError",
    "SymdiffError",
    "SymdiffSyntaxError",
    "UnknownNameError",
    "__version__",
    "compile_grad",
    "gradient_source",
    "verify",
]
