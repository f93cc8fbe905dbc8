"""The error hierarchy: every user-facing failure is a `TagloopError`.

Each error knows the HTTP status it maps to and renders a readable message that names the
file, field or record at fault; the API and the CLI render them without stack traces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One precise complaint: where (``file:line:col``, ``events[3].time``...) and what."""

    where: str
    message: str
    detail: str = ""  # e.g. the source line with a caret under the fault

    def __str__(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        return f"{head}\n{self.detail}" if self.detail else head

    def as_dict(self) -> dict[str, Any]:
        body = {"where": self.where, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class TagloopError(Exception):
    """Base of all errors a user may see.

    >>> str(TagloopError("boom"))
    'boom'
    >>> TagloopError.status
    500
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def render(self) -> str:
        """The message followed by one line per problem."""
        lines = [self.message]
        for problem in self.problems:
            lines.extend("  " + line for line in str(problem).splitlines())
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.problems:
            body["problems"] = [p.as_dict() for p in self.problems]
        return body


class ValidationFailed(TagloopError):
    """Input that does not satisfy its schema (HTTP 400, CLI exit 1)."""

    status = 400
    code = "invalid"


class WorkspaceError(ValidationFailed):
    """A workspace that does not load; `problems` carry ``file:line:col`` locations."""

    code = "invalid_workspace"


class NotFound(TagloopError):
    status = 404
    code = "not_found"


class Conflict(TagloopError):
    """The request does not fit the resource's current state (e.g. retrying a run that
    did not fail): HTTP 409, CLI exit 1."""

    status = 409
    code = "conflict"


class Unprocessable(TagloopError):
    """Well-formed input that cannot apply to its target (e.g. starting a flow for an
    entity type it does not run on): HTTP 422, CLI exit 1."""

    status = 422
    code = "unprocessable"


class Unauthenticated(TagloopError):
    status = 401
    code = "unauthenticated"


class Forbidden(TagloopError):
    status = 403
    code = "forbidden"


class PayloadTooLarge(TagloopError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(TagloopError):
    status = 415
    code = "unsupported_media_type"


class StorageError(TagloopError):
    """The database refused or is unreachable (HTTP 503: the client may retry)."""

    status = 503
    code = "storage_unavailable"


class RequestTimeout(TagloopError):
    """The client did not send its request body in time (HTTP 408)."""

    status = 408
    code = "request_timeout"


class RateLimited(TagloopError):
    """A rate limit was reached (HTTP 429); ``retry_after`` is whole seconds, at least 1.

    >>> RateLimited("slow down", retry_after=0.2).retry_after
    1
    """

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))
