"""Broker sources: NATS JetStream, RabbitMQ, MQTT, Redis streams and Kafka, on FastStream.

Every kind delivers micro-batches (``batch_size`` messages, ``max_wait_ms``) to the runner's
``deliver`` and acknowledges them to the broker only after it returned; see
`tagloop.sources.brokers.common` for the shared behaviour and each module for its YAML.
"""

from __future__ import annotations

from typing import Any

from tagloop.sources.base import StreamSource
from tagloop.sources.brokers.common import BrokerError, BrokerUnavailable

__all__ = ["BrokerError", "BrokerUnavailable", "kinds", "stream_map"]


def kinds() -> dict[str, type[StreamSource]]:
    """The broker source kinds by name."""
    from tagloop.sources.brokers.jetstream import NatsSource
    from tagloop.sources.brokers.kafka import KafkaSource
    from tagloop.sources.brokers.mqtt import MqttSource
    from tagloop.sources.brokers.rabbit import RabbitSource
    from tagloop.sources.brokers.redis import RedisSource

    found: list[type[StreamSource]] = [
        NatsSource,
        RabbitSource,
        MqttSource,
        RedisSource,
        KafkaSource,
    ]
    return {kind.kind: kind for kind in found}


def stream_map(value: Any, what: str) -> Any:
    """``topics``/``streams`` as written, normalised to ``{name: mapping additions}``.

    A list names the streams (each uses the source's ``mapping`` as it is); a mapping gives
    each one what it adds to the source's ``mapping``: a text is its event ``type``, an
    object any mapping keys (``type``, ``fields`` ...), null nothing. Used as a pydantic
    ``mode="before"`` validator; what is not a list or a mapping is left to pydantic.

    >>> stream_map(["a", "b"], "topics")
    {'a': {}, 'b': {}}
    >>> stream_map({"a": "vibration", "b": None, "c": {"type": "t"}}, "topics")
    {'a': {'type': 'vibration'}, 'b': {}, 'c': {'type': 't'}}
    """
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if len(set(map(str, value))) != len(value):
            raise ValueError(f"{what} must not repeat")
        value = dict.fromkeys(value)
    if not isinstance(value, dict):
        return value
    if not value:
        raise ValueError(f"name at least one of the {what}")
    out: dict[Any, Any] = {}
    for name, extra in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} must be non-empty names")
        if extra is None:
            extra = {}
        elif isinstance(extra, str):
            extra = {"type": extra}
        elif not isinstance(extra, dict):
            raise ValueError(
                f"{name!r}: give its event type or the mapping keys it adds, not a "
                f"{type(extra).__name__}"
            )
        out[name] = extra
    return out
