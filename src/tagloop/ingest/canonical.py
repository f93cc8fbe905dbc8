"""The canonical event format of ``POST /v1/events``.

``{id?, type, entity: {type, id}, related?: {entity_type: id}, time?, properties?,
attributes?, context?}``: ``id`` makes delivery idempotent (a UUIDv7 is assigned when it is
absent); ``attributes`` set profile attributes of ``entity``; ``time`` defaults to the time
of receipt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch, Event, new_event_id
from tagloop.ingest.pydantic_errors import field_errors
from tagloop.timeutil import to_us


def _id_text(value: Any) -> Any:
    # Many systems send numeric ids; they mean the same as their decimal text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Name = Annotated[str, Field(min_length=1, max_length=255)]
Ident = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=255)]


class EntityRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Name
    id: Ident


class CanonicalEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Ident | None = None
    type: Name
    entity: EntityRef
    related: dict[Name, Ident] | None = None
    time: datetime | None = None
    properties: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


_MANY = TypeAdapter(list[CanonicalEvent])


def to_events(items: list[Any], batch: Batch, ctx: ParseContext) -> None:
    """Validate each item as a canonical event and add it (or its rejections) to ``batch``."""
    try:
        parsed: list[CanonicalEvent | None] = list(_MANY.validate_python(items))
    except ValidationError as exc:
        # One call validates the whole batch (fast); errors carry the item index.
        parsed = [None] * len(items)
        bad: set[int] = set()
        for loc, name, reason in field_errors(exc, skip=1):
            index = int(loc[0])
            bad.add(index)
            batch.reject(index, name, reason)
        good = [i for i in range(len(items)) if i not in bad]
        for index, event in zip(good, _MANY.validate_python([items[i] for i in good]), strict=True):
            parsed[index] = event
    tz, received, source = ctx.timezone, ctx.received_at, ctx.source
    for index, item in enumerate(parsed):
        if item is None:
            continue
        batch.events.append(
            (
                index,
                Event(
                    id=item.id or new_event_id(),
                    type=item.type,
                    entity_type=item.entity.type,
                    entity_id=item.entity.id,
                    time=to_us(item.time, tz) if item.time else received,
                    properties=item.properties or {},
                    related=dict(item.related) if item.related else {},
                    attributes=item.attributes,
                    context=item.context,
                    source=source,
                    received_at=received,
                ),
            )
        )
