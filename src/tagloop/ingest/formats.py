"""Ingestion formats of ``POST /v1/events``, chosen by Content-Type (a plugin hook)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tagloop.hookspecs import hookimpl
from tagloop.ingest import canonical, cloudevents
from tagloop.ingest.body import JSON_TYPES, NDJSON_TYPES
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch

Converter = Callable[[list[Any], Batch, ParseContext], None]


@dataclass(frozen=True)
class IngestFormat:
    """A format: the media types it answers to and how its items become events."""

    name: str
    media_types: tuple[str, ...]
    to_events: Converter


CANONICAL = IngestFormat("canonical", (*JSON_TYPES, *NDJSON_TYPES), canonical.to_events)
CLOUDEVENTS = IngestFormat(
    "cloudevents",
    ("application/cloudevents+json", "application/cloudevents-batch+json"),
    cloudevents.to_events,
)


@hookimpl
def tagloop_ingest_formats() -> list[IngestFormat]:
    return [CANONICAL, CLOUDEVENTS]
