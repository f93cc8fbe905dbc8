"""Request bodies: decompression with a size cap, JSON and NDJSON with precise errors."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from tagloop.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
)
JSON_TYPES = ("application/json", "text/plain", "")


class BadJson(ValidationFailed):
    code = "invalid_json"


@dataclass
class Items:
    """The JSON values of a body, with the 1-based line of each item for NDJSON bodies and
    the serialised size of each item (for per-event size limits)."""

    values: list[Any]
    lines: list[int] | None
    sizes: list[int]
    bad_lines: dict[int, str]  # NDJSON: index -> parse error of that line


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``.

    >>> media_type("Application/JSON; charset=utf-8")
    'application/json'
    """
    return (content_type or "").split(";", 1)[0].strip().lower()


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip/deflate`` without letting a small body expand past
    ``limit`` bytes (a decompression bomb)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r} (use gzip)")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValidationFailed(f"body is not valid {encoding} data: {exc}") from exc
    if len(out) > limit or decoder.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
    return out


def parse_json(body: bytes) -> Any:
    """Parse a whole JSON document, reporting where it is broken.

    >>> parse_json(b'{"a": [1, 2,]}')
    Traceback (most recent call last):
    ...
    tagloop.ingest.body.BadJson: invalid JSON at line 1, column 12: trailing comma is not allowed
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadJson(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {_reason(exc)}"
        ) from None


def _reason(exc: orjson.JSONDecodeError) -> str:
    return exc.msg or "malformed"


def items(body: bytes, content_type: str | None, *, ndjson_default: bool = False) -> Items:
    """Split a body into event values: a JSON array, a single JSON object, or NDJSON."""
    kind = media_type(content_type)
    if not body.strip():
        raise ValidationFailed("the request body is empty")
    if kind in NDJSON_TYPES or (ndjson_default and kind == ""):
        return _ndjson(body)
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {kind!r}: send application/json or application/x-ndjson"
        )
    value = parse_json(body)
    values = value if isinstance(value, list) else [value]
    single = len(body) if not isinstance(value, list) else None
    sizes = [single] if single is not None else [_size(v) for v in values]
    return Items(values, None, sizes, {})


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def _ndjson(body: bytes) -> Items:
    values: list[Any] = []
    lines: list[int] = []
    sizes: list[int] = []
    bad: dict[int, str] = {}
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            values.append(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            bad[len(values)] = f"invalid JSON at column {exc.colno}: {_reason(exc)}"
            values.append(None)
        lines.append(number)
        sizes.append(len(raw))
    return Items(values, lines, sizes, bad)
