"""symdiff: readable, standalone gradient code from a math expression, proven right with SymPy."""

from .api import (
    Gradient,
    Hessian,
    Jacobian,
    Jvp,
    compile_grad,
    compile_hessian,
    compile_jacobian,
    compile_jvp,
    gradient_source,
    verify,
)
from .errors import (
    ArgumentError,
    CacheWarning,
    CompilerError,
    DomainError,
    LimitError,
    SymdiffError,
    SymdiffSyntaxError,
    UnknownNameError,
)
from .limits import Limits
from .teaching.explain import Trace, explain
from .teaching.graph import Graph, graph
from .version import __version__

__all__ = [
    "ArgumentError",
    "CacheWarning",
    "CompilerError",
    "DomainError",
    "Gradient",
    "Hessian",
    "Jacobian",
    "Jvp",
    "Graph",
    "LimitError",
    "Limits",
    "SymdiffError",
    "SymdiffSyntaxError",
    "Trace",
    "UnknownNameError",
    "__version__",
    "compile_grad",
    "compile_hessian",
    "compile_jacobian",
    "compile_jvp",
    "explain",
    "gradient_source",
    "graph",
    "verify",
]
