"""Turn pydantic validation errors into per-event `Rejection`s with readable reasons."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

_REASONS = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "dict_type": "must be an object",
    "model_type": "must be a JSON object",
    "string_type": "must be a string",
    "datetime_from_date_parsing": "is not an ISO 8601 time",
    "datetime_parsing": "is not an ISO 8601 time",
    "datetime_type": "must be an ISO 8601 time",
}


def field_errors(exc: ValidationError, skip: int = 0) -> list[tuple[tuple[Any, ...], str, str]]:
    """``(loc, dotted field, reason)`` per error; ``skip`` drops leading loc parts (the
    list index when a whole batch was validated at once)."""
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        name = ".".join(str(part) for part in loc[skip:])
        reason = _REASONS.get(error["type"])
        if error["type"] in ("string_too_long", "too_long"):
            reason = f"must be at most {error.get('ctx', {}).get('max_length', 255)} characters"
        if reason is None:
            reason = str(error["msg"]).removeprefix("Value error, ")
            reason = reason[0].lower() + reason[1:] if reason else reason
        if error["type"] not in ("missing", "extra_forbidden", "model_type") and "input" in error:
            shown = repr(error["input"])
            if len(shown) <= 60:
                reason = f"{reason} (got {shown})"
        out.append((loc, name, reason))
    return out
