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
from .explain import Trace, explain
from .graph import Graph, graph
from .limits import Limits
from .version import __version__

__all__ = [
    "ArgumentError",
    "CompilerError",
    "DomainError",
    "Gradient",
    "Graph",
    "LimitError",
    "Limits",
    "SymdiffError",
    "SymdiffSyntaxError",
    "Trace",
    "UnknownNameError",
    "__version__",
    "compile_grad",
    "explain",
    "gradient_source",
    "graph",
    "verify",
]
