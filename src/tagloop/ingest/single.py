"""One canonical event from a JSON value, checked as ingestion checks it, without storing
it: what a dry run of a flow reads (``POST /v1/flows/{name}/test``, ``tagloop flows
test``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tagloop.ingest import canonical
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch, Event

if TYPE_CHECKING:
    from tagloop.ingest.pipeline import Ingestor

NOT_ONE = 'one canonical event is a JSON object {"type": …, "entity": {"type": …, "id": …}}'


def one_event(
    ingestor: Ingestor,
    value: Any,
    received_at: int,
    *,
    source: str = "api",
    restrict: Callable[[Batch], None] | None = None,
) -> Event:
    """``value`` as an `Event`: parsed as ``POST /v1/events`` parses a canonical event and
    checked against the dictionary (``restrict`` may refuse more, e.g. entity types a
    principal may not see). Raises `RejectedBatch` with every rejection, as ingestion
    does; nothing is stored."""
    from tagloop.ingest.pipeline import RejectedBatch

    batch = Batch()
    if not isinstance(value, dict):
        batch.reject(0, "", NOT_ONE)
        raise RejectedBatch(batch)
    ctx = ParseContext(received_at, ingestor.workspace.timezone, source)
    canonical.to_events([value], batch, ctx)
    if not batch.rejections:
        ingestor.check(batch)
    if not batch.rejections and restrict is not None:
        restrict(batch)
    if batch.rejections or not batch.events:
        raise RejectedBatch(batch)
    return batch.events[0][1]
