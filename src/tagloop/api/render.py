"""Database rows to API payloads (times as ISO 8601 UTC)."""

from __future__ import annotations

import base64
from typing import Any

from tagloop.errors import ValidationFailed
from tagloop.timeutil import iso


def ts(micros: int | None) -> str | None:
    text = iso(micros)
    return text.replace("+00:00", "Z") if text else None


def entity(row: Any) -> dict[str, Any]:
    return {
        "type": row.type,
        "id": row.id,
        "attributes": row.attributes,
        "first_seen": ts(row.first_seen),
        "last_seen": ts(row.last_seen),
        "event_count": row.event_count,
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
    }


def assignment(row: Any) -> dict[str, Any]:
    return {
        "tag": row.tag,
        "value": row.value,
        "status": row.status,
        "source": row.source,
        "version": row.version,
        "confidence": row.confidence,
        "since": ts(row.since),
        "updated_at": ts(row.updated_at),
        "expires_at": ts(row.expires_at) if row.expires_at is not None else None,
        "evidence": row.evidence,
    }


def event(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "entity": {"type": row.entity_type, "id": row.entity_id},
        "related": row.related,
        "time": ts(row.time),
        "received_at": ts(row.received_at),
        "source": row.source,
        "properties": row.properties,
        "attributes": row.attributes,
        "context": row.context,
        "sent_entity_id": row.sent_entity_id,
    }


def alias(row: Any) -> dict[str, Any]:
    return {"id": row.alias, "field": row.field, "event": row.event_id, "since": ts(row.created_at)}


def merge(row: Any) -> dict[str, Any]:
    return {"id": row.merged_id, "cause": row.cause, "at": ts(row.at)}


def tag_change(row: Any) -> dict[str, Any]:
    return {
        "tag": row.tag,
        "change": row.change,
        "value": row.value,
        "previous": row.previous,
        "version": row.version,
        "source": row.source,
        "at": ts(row.at),
    }


def encode_cursor(last_id: str) -> str:
    """An opaque cursor for keyset pagination.

    >>> decode_cursor(encode_cursor("客户-42"))
    '客户-42'
    """
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeError):
        value = ""
    if not value or "\x00" in value:
        raise ValidationFailed("invalid cursor: pass next_cursor from the previous page")
    return value
