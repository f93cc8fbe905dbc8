"""``kind: webhook``: systems that push, to ``POST /v1/sources/{name}/push``.

A push is authenticated by an HMAC-SHA256 signature of the body with the source's own
secret (``X-Signature-256: sha256=<hex>``, as GitHub and many SaaS webhooks send it), or
by an API key with ``events:write``. The body is one JSON object, an array of them, or
NDJSON; each object is a record, mapped like any source's.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from pydantic import Field

from tagloop.errors import ValidationFailed
from tagloop.sources.base import Deliver, Record, SourceConfig, StreamSource
from tagloop.sources.secrets import resolve_secrets


class WebhookConfig(SourceConfig):
    secret: str | None = None  # e.g. ${env:MES_WEBHOOK_SECRET}; without it, keys only
    signature_header: str = "X-Signature-256"
    # Fields identifying a record (default: a hash of the record).
    key: list[str] = Field(default_factory=list)


class WebhookSource(StreamSource):
    """Nothing to listen to: the API endpoint delivers the pushes."""

    kind = "webhook"
    config_model = WebhookConfig

    async def run(self, deliver: Deliver) -> None:  # pragma: no cover - never started
        raise ValidationFailed(f"source {self.name} is a webhook: it receives pushes")


def signature_ok(config: WebhookConfig, source: str, body: bytes, sent: str) -> bool:
    """Whether ``sent`` (``sha256=<hex>`` or bare hex) is the body's HMAC-SHA256.

    >>> import os; os.environ["TAGLOOP_DOC_HOOK"] = "k"
    >>> config = WebhookConfig(secret="${env:TAGLOOP_DOC_HOOK}")
    >>> good = hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    >>> signature_ok(config, "mes", b"{}", "sha256=" + good)
    True
    >>> signature_ok(config, "mes", b"{}", "sha256=0")
    False
    """
    if not config.secret:
        return False
    secret = resolve_secrets(config.secret, f"source {source}: secret").encode()
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sent.strip().removeprefix("sha256=").lower(), expected)


def records(source: str, config: WebhookConfig, body: bytes, push_id: str) -> list[Record]:
    """The records of a pushed body (an unreadable one is a single unreadable record)."""
    raw = body.decode("utf-8", errors="replace")
    try:
        items: list[Any] = [orjson.loads(body)]
    except orjson.JSONDecodeError:
        try:
            items = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            return [
                Record(
                    None, raw, f"push {push_id}", f"push\0{push_id}", error=f"invalid JSON: {exc}"
                )
            ]
    if len(items) == 1 and isinstance(items[0], list):
        items = items[0]
    out = []
    for index, item in enumerate(items, 1):
        text = orjson.dumps(item).decode()
        where = f"push {push_id}, item {index}"
        if not isinstance(item, dict):
            out.append(
                Record(
                    None,
                    text,
                    where,
                    f"push\0{push_id}\0{index}",
                    error="record is not a JSON object",
                )
            )
            continue
        if config.key and all(k in item for k in config.key):
            key = "\0".join(str(item[k]) for k in config.key)
        else:
            key = hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()
        out.append(Record(item, text, where, key))
    return out
