"""CloudEvents 1.0, structured JSON mode (single events and batches).

The entity comes from the extension attributes ``entitytype`` and ``entityid`` (``entityid``
falls back to ``subject``); the optional extension ``related`` lists related entities as
``type=id,type=id``. ``data`` (a JSON object) becomes the properties. CloudEvents makes
``source`` + ``id`` unique, so the tagloop event id is ``<source>|<id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch, Event, FieldProblem
from tagloop.timeutil import to_us

REQUIRED = ("specversion", "id", "source", "type")
_TIME = TypeAdapter(datetime)
_CONTEXT_KEYS = ("source", "subject", "dataschema", "datacontenttype")


def _string(ce: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = ce.get(key)
    if value is None:
        if required:
            raise FieldProblem(key, "is required")
        return None
    if not isinstance(value, str) or not value:
        raise FieldProblem(key, "must be a non-empty string")
    return value


def _related(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    related: dict[str, str] = {}
    for part in text.split(","):
        entity_type, sep, entity_id = part.strip().partition("=")
        if not sep or not entity_type.strip() or not entity_id.strip():
            raise FieldProblem("related", f"expected 'type=id,type=id', got {part.strip()!r}")
        related[entity_type.strip()] = entity_id.strip()
    return related


def to_event(ce: dict[str, Any], ctx: ParseContext) -> Event:
    for key in REQUIRED:
        _string(ce, key, required=True)
    if ce["specversion"] != "1.0":
        raise FieldProblem("specversion", f"must be '1.0' (got {ce['specversion']!r:.20})")
    if "data_base64" in ce:
        raise FieldProblem(
            "data_base64", "binary data is not supported; send a JSON object in 'data'"
        )
    content_type = _string(ce, "datacontenttype")
    if content_type and "json" not in content_type:
        raise FieldProblem("datacontenttype", f"must be a JSON type (got {content_type!r:.60})")
    data = ce.get("data")
    if data is not None and not isinstance(data, dict):
        raise FieldProblem("data", "must be a JSON object")
    entity_type = _string(ce, "entitytype", required=True)
    entity_id = _string(ce, "entityid") or _string(ce, "subject")
    if entity_id is None:
        raise FieldProblem("entityid", "entityid (or subject) is required")
    event_id = f"{ce['source']}|{ce['id']}"
    if len(event_id) > 255:
        raise FieldProblem("id", "source and id together are longer than 254 characters")
    time = ctx.received_at
    if ce.get("time") is not None:
        try:
            time = to_us(_TIME.validate_python(ce["time"]), ctx.timezone)
        except ValidationError:
            raise FieldProblem(
                "time", f"is not an RFC 3339 time (got {ce['time']!r:.60})"
            ) from None
    context = {key: ce[key] for key in _CONTEXT_KEYS if key in ce}
    known = {*REQUIRED, *_CONTEXT_KEYS, "time", "data", "entitytype", "entityid", "related"}
    extensions = {k: v for k, v in ce.items() if k not in known}
    if extensions:
        context["extensions"] = extensions
    assert entity_type is not None
    return Event(
        id=event_id,
        type=ce["type"],
        entity_type=entity_type,
        entity_id=entity_id,
        time=time,
        properties=data or {},
        related=_related(_string(ce, "related")),
        context=context,
        source=ctx.source,
        received_at=ctx.received_at,
    )


def to_events(items: list[Any], batch: Batch, ctx: ParseContext) -> None:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            batch.reject(index, "", "each CloudEvent must be a JSON object")
            continue
        try:
            batch.events.append((index, to_event(item, ctx)))
        except FieldProblem as bad:
            batch.reject(index, bad.field, bad.reason)
