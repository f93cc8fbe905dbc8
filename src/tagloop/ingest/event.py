"""The normalised event every ingestion format produces, and the rejections they report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import uuid_utils


def new_event_id() -> str:
    """A UUIDv7: time-ordered, so ids assigned by tagloop sort by arrival."""
    return str(uuid_utils.uuid7())


@dataclass(slots=True)
class Event:
    id: str
    type: str
    entity_type: str
    entity_id: str
    time: int  # event time, epoch microseconds UTC
    properties: dict[str, Any] = field(default_factory=dict)
    related: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] | None = None  # profile attributes this event sets
    context: dict[str, Any] | None = None
    source: str = "api"
    received_at: int = 0
    # The id it was sent with, when that is an alias of ``entity_id`` (set by identities).
    sent_entity_id: str | None = None


class FieldProblem(Exception):
    """Raised by format converters: ``field`` of the input item is wrong because ``reason``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the event at ``index`` (0-based position in the request) was refused."""

    index: int
    field: str
    reason: str
    line: int | None = None  # for NDJSON and files: 1-based line number

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "field": self.field, "reason": self.reason}
        if self.line is not None:
            body["line"] = self.line
        return body

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"event {self.index}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class Batch:
    """Events parsed from one request (or one chunk of a file), with their input positions."""

    events: list[tuple[int, Event]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    lines: dict[int, int] = field(default_factory=dict)  # index -> line, where lines exist

    def reject(self, index: int, field_name: str, reason: str) -> None:
        self.rejections.append(Rejection(index, field_name, reason, self.lines.get(index)))

    @property
    def size(self) -> int:
        return len(self.events) + len({r.index for r in self.rejections})
