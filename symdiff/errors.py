"""The one exception family users see. A span is a pair of character offsets into the source;
line and column are derived only when the error is printed."""

from __future__ import annotations

Span = tuple[int, int]


class SymdiffError(Exception):
    """Anything wrong with what the user asked for. `span` points into `source` when known."""

    def __init__(self, message: str, source: str | None = None, span: Span | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.span = span

    @property
    def line(self) -> int | None:
        return None if self.span is None or self.source is None else _line_col(self.source, self.span[0])[0]

    @property
    def column(self) -> int | None:
        return None if self.span is None or self.source is None else _line_col(self.source, self.span[0])[1]

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.line}:{self.column}: {self.message}"

    def pretty(self) -> str:
        """The message, then the offending line with a caret under the span (for terminals)."""
        if self.span is None or self.source is None:
            return f"error: {self.message}"
        line, column = _line_col(self.source, self.span[0])
        text = self.source.splitlines()[line - 1] if self.source.strip("\r\n") else ""
        text = text.replace("\t", " ")
        shown, offset = _window(text, column - 1)
        width = max(1, min(self.span[1] - self.span[0], len(shown) - offset))
        return f"error: {line}:{column}: {self.message}\n  {shown}\n  {' ' * offset}{'^' * width}"


class SymdiffSyntaxError(SymdiffError):
    """The text is not an expression in symdiff's grammar."""


class UnknownNameError(SymdiffError):
    """A function or name symdiff does not know, or a name used the wrong way."""


class DomainError(SymdiffError):
    """A constant subexpression has no real value (log(-1), 1/0, exp(1000))."""


class LimitError(SymdiffError):
    """The input exceeds a configured size limit."""


class ArgumentError(SymdiffError, TypeError):
    """A compiled gradient, or an API function, was called with the wrong arguments."""


class CompilerError(SymdiffError):
    """A native backend could not be built (no C compiler, or the compiler failed)."""


def _line_col(source: str, offset: int) -> tuple[int, int]:
    line_start = source.rfind("\n", 0, offset) + 1
    return source.count("\n", 0, offset) + 1, offset - line_start + 1


def _window(text: str, column: int, width: int = 76) -> tuple[str, int]:
    """Cut a long line around `column` so the caret line stays readable; keep printable text only."""
    safe = "".join(ch if ch.isprintable() else "?" for ch in text)
    if len(safe) <= width:
        return safe, column
    start = max(0, min(column - width // 2, len(safe) - width))
    shown = safe[start : start + width]
    prefix = "..." if start else ""
    suffix = "..." if start + width < len(safe) else ""
    return prefix + shown + suffix, column - start + len(prefix)


class CacheWarning(UserWarning):
    """Part of symdiff's cache was not read because someone else could have written it (a warning,
    not an error: symdiff goes on without that cache)."""

