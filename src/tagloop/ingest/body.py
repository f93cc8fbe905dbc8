"""Request bodies: decompression with a size cap, JSON and NDJSON with precise errors."""

from __future__ import annotations

import zlib
from collections.abc import Callable
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


class JsonTooDeep(BadJson):
    code = "json_too_deep"


class JsonArrayTooLong(BadJson):
    code = "json_array_too_long"


@dataclass(frozen=True)
class JsonBounds:
    """How deep a JSON body may nest and how long its arrays may be.

    The top-level value is at depth 1: ``[{"a": [1]}]`` is 3 deep. With ``top_exempt``,
    the length of a top-level array is left to the endpoint (the events of a batch, the
    records of an upload have limits of their own); its items are bounded all the same.
    """

    max_depth: int = 64
    max_array_length: int = 10_000
    depth_setting: str = "limits.bodies.max_json_depth"
    array_setting: str = "limits.bodies.max_array_length"


def check_bounds(value: Any, bounds: JsonBounds, *, top_exempt: bool = False) -> None:
    """Refuse (400) a parsed JSON value nested deeper or with longer arrays than ``bounds``.

    >>> check_bounds({"a": [[1, 2]]}, JsonBounds(max_depth=3, max_array_length=2))
    >>> check_bounds({"a": [[1, 2]]}, JsonBounds(max_depth=2))
    Traceback (most recent call last):
    ...
    tagloop.ingest.body.JsonTooDeep: JSON nested deeper than the limit of 2 levels \
(limits.bodies.max_json_depth), at $.a[0]
    >>> check_bounds([1, 2, 3], JsonBounds(max_array_length=2), top_exempt=True)
    """
    # One pass without paths (the cost of every accepted body: ~1 µs per event); the path
    # is worked out only for the error.
    max_depth, max_length = bounds.max_depth, bounds.max_array_length
    stack: list[tuple[Any, int]] = [(value, 1)]
    first = True
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise JsonTooDeep(
                f"JSON nested deeper than the limit of {max_depth} levels "
                f"({bounds.depth_setting}), at {_path_to(value, lambda _n, d: d > max_depth)}"
            )
        if type(node) is list:
            if len(node) > max_length and not (first and top_exempt):

                def too_long(n: Any, d: int) -> bool:
                    exempt = d == 1 and top_exempt
                    return type(n) is list and len(n) > max_length and not exempt

                where = _path_to(value, too_long)
                raise JsonArrayTooLong(
                    f"JSON array of {len(node)} items exceeds the limit of {max_length} "
                    f"({bounds.array_setting}), at {where}"
                )
            children: Any = node
        else:
            children = node.values()
        first = False
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))


def _path_to(value: Any, bad: Callable[[Any, int], bool]) -> str:
    """The JSONPath of the first node (depth first) for which ``bad(node, depth)`` holds."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        node, depth, path = stack.pop()
        if bad(node, depth):
            return path
        if isinstance(node, list):
            items = [(f"{path}[{i}]", child) for i, child in enumerate(node)]
        else:
            items = [(_member(path, key), child) for key, child in node.items()]
        for child_path, child in reversed(items):
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, child_path))
    return "$"


def _member(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{orjson.dumps(key).decode()}]"


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


def parse_json(body: bytes, bounds: JsonBounds | None = None, *, top_exempt: bool = False) -> Any:
    """Parse a whole JSON document, reporting where it is broken or too deep or long.

    >>> parse_json(b'{"a": [1, 2,]}')
    Traceback (most recent call last):
    ...
    tagloop.ingest.body.BadJson: invalid JSON at line 1, column 12: trailing comma is not allowed
    >>> parse_json(b"[" * 10_000 + b"]" * 10_000, JsonBounds())
    Traceback (most recent call last):
    ...
    tagloop.ingest.body.JsonTooDeep: JSON nested deeper than the limit of 64 levels \
(limits.bodies.max_json_depth), at line 1, column 1026
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if bounds is not None and _too_deep(exc):
            raise JsonTooDeep(_depth_message(exc, bounds)) from None
        raise BadJson(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {_reason(exc)}"
        ) from None
    if bounds is not None:
        check_bounds(value, bounds, top_exempt=top_exempt)
    return value


def _too_deep(exc: orjson.JSONDecodeError) -> bool:
    # orjson stops at 1024 levels by itself (so parsing never exhausts the stack); that is
    # deeper than any configurable limit, so it is the same refusal.
    return "depth limit" in (exc.msg or "") or "recursion" in (exc.msg or "")


def _depth_message(exc: orjson.JSONDecodeError, bounds: JsonBounds) -> str:
    return (
        f"JSON nested deeper than the limit of {bounds.max_depth} levels "
        f"({bounds.depth_setting}), at line {exc.lineno}, column {exc.colno}"
    )


def _reason(exc: orjson.JSONDecodeError) -> str:
    return exc.msg or "malformed"


def items(
    body: bytes,
    content_type: str | None,
    *,
    ndjson_default: bool = False,
    bounds: JsonBounds | None = None,
) -> Items:
    """Split a body into event values: a JSON array, a single JSON object, or NDJSON.

    With ``bounds``, each event is held to them (the length of the batch itself is the
    caller's to check): a whole JSON body is refused (400), an NDJSON line rejected.
    """
    kind = media_type(content_type)
    if not body.strip():
        raise ValidationFailed("the request body is empty")
    if kind in NDJSON_TYPES or (ndjson_default and kind == ""):
        return _ndjson(body, bounds)
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {kind!r}: send application/json or application/x-ndjson"
        )
    value = parse_json(body, bounds, top_exempt=True)
    values = value if isinstance(value, list) else [value]
    single = len(body) if not isinstance(value, list) else None
    sizes = [single] if single is not None else [_size(v) for v in values]
    return Items(values, None, sizes, {})


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def _ndjson(body: bytes, bounds: JsonBounds | None) -> Items:
    values: list[Any] = []
    lines: list[int] = []
    sizes: list[int] = []
    bad: dict[int, str] = {}
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
            if bounds is not None:
                check_bounds(value, bounds)
            values.append(value)
        except orjson.JSONDecodeError as exc:
            if bounds is not None and _too_deep(exc):
                bad[len(values)] = _depth_message(exc, bounds).replace(" at line 1,", " at")
            else:
                bad[len(values)] = f"invalid JSON at column {exc.colno}: {_reason(exc)}"
            values.append(None)
        except BadJson as exc:
            bad[len(values)] = exc.message
            values.append(None)
        lines.append(number)
        sizes.append(len(raw))
    return Items(values, lines, sizes, bad)
