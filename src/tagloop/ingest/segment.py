"""The Segment tracking API format, so existing analytics SDKs work unchanged.

Message types map onto canonical events as follows (``U`` is the configured user entity type,
default ``customer``; ``G`` the group entity type, default ``account``):

- ``track``: event type = ``event``, entity ``U:userId`` (else ``anonymousId``),
  properties = ``properties``
- ``identify``: event type ``identify``, ``traits`` become profile attributes
- ``page`` / ``screen``: event type ``page`` / ``screen``, properties plus ``name``/``category``
- ``group``: event type ``group`` on ``G:groupId`` with the user related; ``traits`` become
  the group's attributes
- ``alias``: event type ``alias`` on ``U:userId`` with ``previous_id`` in its properties

``messageId`` is the idempotency key; the event time is ``timestamp``, else
``originalTimestamp`` corrected for the client's clock skew using ``sentAt``, else the time
of receipt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch, Event, FieldProblem, new_event_id
from tagloop.timeutil import to_us

TYPES = ("track", "identify", "page", "screen", "group", "alias")
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500

_TIME = TypeAdapter(datetime)


def _text(message: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = message.get(key)
    if value is None or value == "":
        if required:
            raise FieldProblem(key, "is required")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise FieldProblem(key, f"must be a string (got {type(value).__name__})")
    if len(value) > 255:
        raise FieldProblem(key, "is longer than 255 characters")
    return value


def _object(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldProblem(key, "must be an object")
    return value


def _time(message: dict[str, Any], key: str, ctx: ParseContext) -> int | None:
    value = message.get(key)
    if value is None:
        return None
    try:
        return to_us(_TIME.validate_python(value), ctx.timezone)
    except ValidationError:
        raise FieldProblem(key, f"is not an ISO 8601 time (got {value!r:.60})") from None


def _event_time(message: dict[str, Any], ctx: ParseContext) -> int:
    timestamp = _time(message, "timestamp", ctx)
    if timestamp is not None:
        return timestamp
    original = _time(message, "originalTimestamp", ctx)
    sent = _time(message, "sentAt", ctx)
    if original is not None and sent is not None:
        # Segment's clock-skew correction: the device clock may be wrong, but the interval
        # between recording and sending is right.
        return ctx.received_at - (sent - original)
    return original if original is not None else ctx.received_at


def to_event(
    message: dict[str, Any], kind: str, ctx: ParseContext, batch_context: dict[str, Any]
) -> Event:
    """One Segment message as a canonical event; raises `FieldProblem` naming the field at fault."""
    if kind not in TYPES:
        raise FieldProblem("type", f"must be one of {', '.join(TYPES)} (got {kind!r:.40})")
    user = _text(message, "userId")
    anonymous = _text(message, "anonymousId")
    if kind != "group" and user is None and anonymous is None:
        raise FieldProblem("userId", "userId or anonymousId is required")
    context = {**batch_context, **_object(message, "context")}
    if anonymous is not None:
        context["anonymousId"] = anonymous
    entity_type, entity_id = ctx.user_entity, user or anonymous
    properties = _object(message, "properties")
    attributes: dict[str, Any] | None = None
    related: dict[str, str] = {}
    if kind == "track":
        event_type = _text(message, "event", required=True)
    elif kind == "identify":
        event_type, attributes = "identify", _object(message, "traits")
    elif kind in ("page", "screen"):
        event_type = kind
        extra = {k: message[k] for k in ("name", "category") if message.get(k) is not None}
        properties = {**properties, **extra}
    elif kind == "group":
        event_type = "group"
        entity_type, entity_id = ctx.group_entity, _text(message, "groupId", required=True)
        if user is not None or anonymous is not None:
            related[ctx.user_entity] = user or anonymous  # type: ignore[assignment]
        attributes = _object(message, "traits")
    else:  # alias
        if user is None:
            raise FieldProblem("userId", "is required for alias")
        event_type = "alias"
        properties = {"previous_id": _text(message, "previousId", required=True)}
    assert event_type is not None and entity_id is not None
    return Event(
        id=_text(message, "messageId") or new_event_id(),
        type=event_type,
        entity_type=entity_type,
        entity_id=entity_id,
        time=_event_time(message, ctx),
        properties=properties,
        related=related,
        attributes=attributes,
        context=context or None,
        source=ctx.source,
        received_at=ctx.received_at,
    )


def to_events(
    messages: list[Any],
    kinds: list[str] | None,
    batch: Batch,
    ctx: ParseContext,
    batch_context: dict[str, Any],
    sizes: list[int],
) -> None:
    """Add each message to ``batch``; ``kinds`` fixes the type (single-message endpoints),
    otherwise each message's own ``type`` is used. ``sizes`` are the serialised sizes."""
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            batch.reject(index, "", "each message must be a JSON object")
            continue
        if sizes[index] > MAX_EVENT_BYTES:
            batch.reject(index, "", f"message is {sizes[index]} bytes; Segment's limit is 32 KB")
            continue
        kind = kinds[index] if kinds else message.get("type")
        if kind is None:
            batch.reject(index, "type", "is required in a batch message")
            continue
        try:
            batch.events.append((index, to_event(message, str(kind), ctx, batch_context)))
        except FieldProblem as bad:
            batch.reject(index, bad.field, bad.reason)
