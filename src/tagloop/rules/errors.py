"""Rule errors carry the character span they complain about, so callers can point at it."""

from __future__ import annotations

from tagloop.errors import ValidationFailed
from tagloop.names import caret_line


class RuleError(ValidationFailed):
    """A rule that does not parse or check; ``start``/``end`` are offsets into its text."""

    code = "invalid_rule"

    def __init__(self, message: str, start: int, end: int | None = None) -> None:
        super().__init__(message)
        self.start = start
        self.end = max(end if end is not None else start + 1, start + 1)

    def caret(self, text: str) -> str:
        """The offending line of ``text`` with ``^`` under the span.

        >>> print(RuleError("x", 4, 7).caret("a == bcd"))
        a == bcd
            ^^^
        """
        line_start = text.rfind("\n", 0, self.start) + 1
        line_end = text.find("\n", self.start)
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        width = max(1, min(self.end, line_start + len(line)) - self.start)
        return caret_line(line, self.start - line_start + 1, width)
