"""The one small interface every source kind implements.

A source kind reads records from a business system; everything else (mapping records to
events, checking them, dead letters, committing them together with the source's position,
retries, health, metrics) is the runner's (`tagloop.sources.runner`), the same for all.

Two shapes:

- `PullSource` (sql, rest, file): the runner calls `PullSource.pull` on a schedule with
  the checkpoint committed last time; it yields `Page`\\ s of records, each with the
  checkpoint reached *after* them. The runner commits a page's events, dead letters and
  checkpoint in one transaction, so after a crash the next pull resumes exactly after the
  last committed page.
- `StreamSource` (nats, rabbitmq, mqtt, redis, kafka): `StreamSource.run` listens and
  hands batches of records to ``deliver``, which returns once they are durably committed;
  only then does the source acknowledge the messages to the broker. A crash between the
  commit and the acknowledgement redelivers them, and their deterministic event ids
  (`Record.key`) make the second delivery a duplicate that is not stored again.

Kinds register through the ``tagloop_source_kinds`` hook (`tagloop.hookspecs`), the
built-in ones too.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel


@dataclass
class Record:
    """One record as read from a business system, before mapping.

    ``values`` is the parsed record (column or field name to value), None when it could not
    be read (``error`` says why; the record goes to the dead letters with ``raw``).
    ``raw`` is the record as received (a JSON text, a CSV line), kept in dead letters.
    ``location`` names it for people: ``"table equipment_status, id 42"``,
    ``"page 3, item 7"``, ``"subject factory.a.vibration, sequence 1881"``.
    ``key`` is its stable identity in its system (primary key and version, message id,
    stream id, file and line); the event id is derived from it so that reading the same
    record twice stores it once. ``stream`` names the mapping that applies (a table of
    ``table_mapping``, a topic pattern); ``meta`` holds what the transport adds (topic,
    subject, headers, the named segments of an MQTT topic), which mappings may use.
    """

    values: dict[str, Any] | None
    raw: str
    location: str
    key: str
    stream: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # Snapshot sources set a version (a hash of the row): the runner then stores an event
    # only when it differs from the version last committed for ``key``.
    version: str | None = None
    # The version committed before (set by the runner): part of the event id, so that a row
    # changed back to an earlier content (A, B, A) is a new event, not a duplicate of the
    # first, while reading the same change again after a crash still is one.
    previous: str | None = None


@dataclass
class Page:
    """Records and the checkpoint reached after them (None: unchanged).

    A checkpoint is any JSON value the source understands (a cursor value, a page link, a
    file offset); the runner stores the latest one per ``(source, stream)``.
    """

    records: list[Record]
    checkpoints: dict[str, Any] = field(default_factory=dict)  # stream -> position


class SourceConfig(BaseModel):
    """Base of the kind-specific part of a source file (``sources/<name>.yaml``)."""

    model_config = {"extra": "forbid"}

    def streams(self) -> dict[str, dict[str, Any]]:
        """The streams of this source (the tables of a SQL source, the subjects of a NATS
        one) with what each adds to the source's ``mapping`` (e.g. its event ``type``).
        Records name theirs in `Record.stream`. Default: one stream, ``""``."""
        return {"": {}}

    def resolve(self, root: Any) -> SourceConfig:
        """This config with paths relative to the workspace folder ``root`` made absolute."""
        return self


class Source(ABC):
    """What both shapes share: the kind's name and config model, and an instance's name
    and validated config."""

    kind: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config


class PullSource(Source):
    """A source read on a schedule (``every: 5m``, ``cron: "0 2 * * *"``)."""

    @abstractmethod
    def pull(self, checkpoints: Mapping[str, Any]) -> Iterator[Page]:
        """Read what is new since ``checkpoints`` (stream -> position, as committed)."""

    def close(self) -> None:
        """Release connections (called when the runner stops)."""


Deliver = Callable[[list[Record]], Awaitable[None]]
"""Commit records (mapped, checked, dead letters kept); returns once durable."""


class StreamSource(Source):
    """A source that listens to a broker and acknowledges what was committed."""

    @abstractmethod
    async def run(self, deliver: Deliver) -> None:
        """Consume until cancelled; acknowledge messages only after ``deliver`` returned
        for them. Raise on connection or authentication failure (the runner retries with
        backoff and marks the source unhealthy meanwhile)."""


SourceKind = type[PullSource] | type[StreamSource]


def stopping() -> bool:
    """Whether the running task was asked to stop (cancelled), even if a client library
    caught the `asyncio.CancelledError` on the way.

    >>> stopping()  # outside of any task
    False
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        return False
    return task is not None and task.cancelling() > 0
