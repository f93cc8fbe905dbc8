"""Records from broker message payloads: JSON objects, arrays of them, or text.

What cannot be read becomes an error record (``values`` None), which the runner stores as a
dead letter with the raw payload; it is acknowledged with its batch like any other message.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson

from tagloop.sources.base import Record

__all__ = ["Format", "item_records", "payload_records", "sha256_key", "text_headers"]

Format = Literal["json", "text"]


def sha256_key(*parts: bytes) -> str:
    """A content hash as a record key, for brokers whose messages carry no identity.

    The parts are kept apart: moving bytes from one part to the next is another key.

    >>> sha256_key(b"a/b", b"{}") == sha256_key(b"a/b", b"{}") != sha256_key(b"a/", b"b{}")
    True
    >>> sha256_key(b"a/b", b"{}")[:7], len(sha256_key(b"x"))
    ('sha256:', 71)
    """
    digest = hashlib.sha256()
    for i, part in enumerate(parts):
        if i:
            digest.update(b"\0")  # NUL cannot occur in a topic or routing key
        digest.update(part)
    return "sha256:" + digest.hexdigest()


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), type(value).__name__
    )


def _key_from_fields(values: dict[str, Any], fields: list[str]) -> str:
    """The configured key of a record: one field's value, or a JSON array of several."""
    missing = [name for name in fields if values.get(name) is None]
    if missing:
        raise KeyError(", ".join(missing))
    if len(fields) == 1:
        value = values[fields[0]]
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    return orjson.dumps([values[name] for name in fields]).decode()


def payload_records(
    payload: bytes,
    *,
    key: str,
    location: str,
    stream: str,
    meta: dict[str, Any],
    fmt: Format,
    key_fields: list[str],
) -> list[Record]:
    """The records in one message's payload.

    ``key`` is the broker's identity of the message; an array's items get ``key#index``,
    unless ``key_fields`` name payload fields to use instead. Anything unreadable gives one
    error record (``values`` None), which ends in the dead letters with ``raw``.

    >>> [r.values for r in payload_records(b'[{"a": 1}, {"a": 2}]', key="k", location="l",
    ...     stream="s", meta={}, fmt="json", key_fields=[])]
    [{'a': 1}, {'a': 2}]
    >>> payload_records(b'42', key="k", location="l", stream="s", meta={}, fmt="json",
    ...     key_fields=[])[0].error
    'expected a JSON object or an array of objects, got a number'
    """
    raw = payload.decode("utf-8", errors="replace")

    def error(message: str) -> list[Record]:
        return [Record(None, raw, location, key, stream, meta, message)]

    items: list[dict[str, Any]]
    is_array = False
    if fmt == "text":
        items = [{"value": raw}]
    else:
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return error(f"invalid JSON: {exc}")
        if isinstance(parsed, dict):
            items = [parsed]
        elif isinstance(parsed, list):
            for index, item in enumerate(parsed):
                if not isinstance(item, dict):
                    return error(
                        f"item {index} of the JSON array is a {_type_name(item)}, "
                        "expected an object"
                    )
            items, is_array = parsed, True
        else:
            return error(
                f"expected a JSON object or an array of objects, got a {_type_name(parsed)}"
            )

    return item_records(
        items,
        is_array=is_array,
        raw=raw,
        key=key,
        location=location,
        stream=stream,
        meta=meta,
        key_fields=key_fields,
    )


def item_records(
    items: list[dict[str, Any]],
    *,
    is_array: bool,
    raw: str,
    key: str,
    location: str,
    stream: str,
    meta: dict[str, Any],
    key_fields: list[str],
) -> list[Record]:
    """Records of parsed items: keys from ``key_fields``, else ``key`` (``key#i`` in arrays)."""
    records = []
    for index, values in enumerate(items):
        item_key = f"{key}#{index}" if is_array else key
        item_location = f"{location}, item {index}" if is_array else location
        error = None
        if key_fields:
            try:
                item_key = _key_from_fields(values, key_fields)
            except KeyError as exc:
                error = f"key field missing: {exc.args[0]}"
        records.append(
            Record(None if error else values, raw, item_location, item_key, stream, meta, error)
        )
    return records


def text_headers(headers: Any) -> dict[str, Any]:
    """Headers as JSON-friendly values (bytes decoded), whatever the client gave."""
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, dict) else headers
    out: dict[str, Any] = {}
    for name, value in pairs:
        if isinstance(name, bytes):
            name = name.decode("utf-8", errors="replace")
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", errors="replace")
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = str(value)
        out[str(name)] = value
    return out
