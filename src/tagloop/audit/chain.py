"""The hash chain: a record's canonical form and its SHA-256.

Each record's hash covers every column but ``hash`` itself (``prev_hash`` included), so
editing any field of a record, or unlinking it from its predecessor, changes the hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""

FIELDS = (
    "seq",
    "at",
    "actor",
    "actor_kind",
    "origin",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "prev_hash",
)
"""The columns a record's hash covers, in table order."""

_INT64 = 2**63


def normalize(value: Any) -> Any:
    """A JSON value as it reads back from either backend, and as the hash sees it.

    Non-string keys become strings and dates ISO text (orjson's encoding); floats with an
    integral value become integers, and integers too large for 64 bits floats, because
    PostgreSQL's JSONB stores numbers as ``numeric`` and returns ``1e16`` as an integer.

    >>> normalize({1: 2.0, "b": [1e20, 0.5]})
    {'1': 2, 'b': [1e+20, 0.5]}
    """
    if value is None:
        return None
    return _numbers(orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)))


def _numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < _INT64:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT64:
        return float(value)
    return value


def digest(record: Mapping[Any, Any]) -> str:
    """The SHA-256 (hex) of a record's canonical serialisation: sorted-key JSON (orjson) of
    the `FIELDS`, with ``before`` and ``after`` normalised.

    >>> row = dict.fromkeys(FIELDS, "x") | {"seq": 1, "at": 0, "before": None, "after": None}
    >>> digest(row) == digest(dict(reversed(list(row.items()))))
    True
    >>> len(digest(row))
    64
    """
    body = {name: record[name] for name in FIELDS}
    body["before"] = normalize(body["before"])
    body["after"] = normalize(body["after"])
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
