"""MQTT (IoT telemetry): QoS 1 subscriptions in a persistent session, acked after the commit.

.. code-block:: yaml

    kind: mqtt
    url: mqtt://127.0.0.1:1883          # mqtts:// for TLS; mqtt://user:password@host
    topics:                             # topic pattern -> what it adds to the mapping
      "factory/+/device/{device_id}/vibration": vibration   # its event type
      "factory/+/line/{line}/#": {type: line_status}
    client_id: tagloop-<source name>    # the session's identity (default); unique per broker
    session_expiry_s: 604800            # how long the broker keeps the session while away
    version: "5.0"                      # or "3.1.1"
    qos: 1                              # or 2
    shared_group: null                  # a name: share the topics among several hosts
    receive_maximum: null               # MQTT 5 in-flight bound (not for Mosquitto 2.0)
    key: [msg_id]                       # payload fields naming a message (recommended)
    mapping:
      entity_type: device
      entity_id: meta.segments.device_id

Topic patterns use MQTT's wildcards (``+`` one level, ``#`` the rest, last) and named
levels: ``{device_id}`` subscribes as ``+`` and puts the level's value into
``meta.segments.device_id``, so a mapping can take the entity id from the topic. ``meta``
also holds ``topic``, ``retain``, ``qos`` and ``headers`` (MQTT 5 user properties). Each
pattern is a stream of the source (its records use its mapping); patterns should not
overlap (a message matching two would be read twice, and stored once).

Delivery: the source subscribes with QoS 1 and acknowledges (PUBACK) a message only after
the batch it belongs to was committed. The session is persistent (fixed ``client_id``,
no clean start, ``session_expiry_s``) and is not unsubscribed when the source stops, so
the broker keeps queueing while the source is down and, on reconnect, sends again every
message that was not acknowledged. Backpressure: the source holds at most
``2 * batch_size`` messages; behind it zmqtt buffers at most 1000 per topic pattern, then
stops reading the socket, so a slow store slows the broker down through TCP. MQTT 5's
receive maximum (``receive_maximum``, unset by default) would bound the un-acked messages
at the broker itself, but Mosquitto 2.0 exceeds it when it resumes a session (zmqtt then
drops the connection, on every reconnect): set it only for brokers that honour it.
Mosquitto keeps at most ``max_queued_messages`` (default 1000) per session, connected ones
too, and silently drops QoS 1 messages beyond it (after acknowledging them to their
publisher): set it to 0 for telemetry that must not be lost (docs/sources-brokers.md).

Record keys: MQTT has no message identity that survives a reconnect (packet ids are
reused per connection), so a message is known by the ``key`` fields of its payload when
configured (an id the device sends) or else by a SHA-256 of its topic and payload. A
redelivered message therefore has the same key and is stored once. With the hash, two
*different* readings with the same topic and the same bytes are taken for one: devices
that may repeat a payload should send a message id or a timestamp in it (most telemetry
carries a time). A retained message, sent again on every subscribe, is stored once too.

Library: FastStream 0.7's MQTT broker (on zmqtt) is used as it is, with one reach inside:
FastStream unsubscribes when a subscriber stops, which would end the persistent session's
subscriptions and lose what is published while the source is down; `MqttSource.before_stop`
detaches the subscriptions instead (zmqtt's ``Subscription.detach``), keeping them on the
broker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import zmqtt
from faststream import AckPolicy
from faststream.mqtt import MQTTBroker, ReconnectConfig
from faststream.mqtt.message import MQTTMessage
from pydantic import Field, field_validator

from tagloop.sources.base import Record
from tagloop.sources.brokers import stream_map
from tagloop.sources.brokers.common import (
    BrokerConfig,
    BrokerSource,
    Unit,
    check_url,
    faststream_logger,
    identity_decoder,
    name_pattern,
    payload_records,
    sha256_key,
    text_headers,
)

MAX_RECEIVE = 65_535  # MQTT 5's receive maximum is a two-byte integer


class TopicPattern:
    """A topic pattern: its subscription filter and the names of its named levels.

    >>> p = TopicPattern("factory/+/device/{device_id}/vibration")
    >>> p.filter
    'factory/+/device/+/vibration'
    >>> p.segments("factory/f1/device/D-7/vibration")
    {'device_id': 'D-7'}
    >>> TopicPattern("a/{x}/#").segments("a/b/c/d")
    {'x': 'b'}
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        levels = pattern.split("/")
        self.names: list[str | None] = []
        for index, level in enumerate(levels):
            if level == "#":
                if index != len(levels) - 1:
                    raise ValueError(f"{pattern!r}: '#' may only be the last level")
                self.names.append(None)
            elif level.startswith("{") or level.endswith("}"):
                name = level[1:-1]
                if not (level.startswith("{") and level.endswith("}")) or not name.isidentifier():
                    raise ValueError(
                        f"{pattern!r}: a named level is a whole level like {{device_id}}"
                    )
                if name in self.names:
                    raise ValueError(f"{pattern!r}: the level name {name!r} repeats")
                self.names.append(name)
            elif level != "+" and any(c in level for c in "+#{}"):
                raise ValueError(
                    f"{pattern!r}: wildcards '+' and '#' must be whole levels ({level!r})"
                )
            else:
                self.names.append(None)
        if pattern.startswith("$share/"):
            raise ValueError(f"{pattern!r}: use shared_group instead of '$share/...'")
        if not pattern or "\0" in pattern:
            raise ValueError("a topic pattern must be non-empty text")
        self.filter = "/".join(
            "+" if name else level for name, level in zip(self.names, levels, strict=True)
        )

    def segments(self, topic: str) -> dict[str, str]:
        """The named levels of ``topic`` (which the broker matched against the filter)."""
        levels = topic.split("/")
        return {
            name: levels[index]
            for index, name in enumerate(self.names)
            if name is not None and index < len(levels)
        }


class MqttConfig(BrokerConfig):
    """``kind: mqtt``."""

    url: str = "mqtt://127.0.0.1:1883"
    topics: dict[str, dict[str, Any]]
    client_id: str | None = None
    session_expiry_s: int = Field(7 * 24 * 3600, ge=1, le=0xFFFFFFFF)
    version: Literal["5.0", "3.1.1"] = "5.0"
    qos: Literal[1, 2] = 1
    shared_group: str | None = None
    receive_maximum: int | None = Field(None, ge=1, le=MAX_RECEIVE)

    @field_validator("topics", mode="before")
    @classmethod
    def _topic_map(cls, value: Any) -> Any:
        return stream_map(value, "topics")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("mqtt", "mqtts"))

    @field_validator("topics")
    @classmethod
    def _patterns(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        filters = [TopicPattern(pattern).filter for pattern in value]
        if len(set(filters)) != len(filters):
            raise ValueError("two topic patterns subscribe to the same filter")
        return value

    @field_validator("client_id", "shared_group")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else name_pattern("name", value, " \t/+#")

    def streams(self) -> dict[str, dict[str, Any]]:
        return self.topics


class MqttSource(BrokerSource):
    """Subscribes to topic patterns with manual PUBACKs (FastStream `MQTTBroker`)."""

    kind = "mqtt"
    config_model = MqttConfig
    config: MqttConfig

    def __init__(self, name: str, config: MqttConfig) -> None:
        super().__init__(name, config)
        self.client_id = config.client_id or f"tagloop-{name}"
        self.patterns = [TopicPattern(pattern) for pattern in config.topics]

    @property
    def url(self) -> str:
        return self.config.url

    def broker(self) -> MQTTBroker:
        cfg = self.config
        v5 = cfg.version == "5.0"
        broker = MQTTBroker(
            cfg.url,
            client_id=self.client_id,
            # A persistent session: the broker queues for us while we are away and
            # resends what we did not acknowledge (MQTT 3.1.1: clean_session=0; 5: no
            # clean start, and an expiry, without which the session ends with the socket).
            clean_session=False,
            session_expiry_interval=cfg.session_expiry_s if v5 else 0,
            # Not sent by default: Mosquitto 2.0 exceeds it when it resumes a session, and
            # zmqtt then (rightly) drops the connection, again on every reconnect.
            receive_maximum=cfg.receive_maximum if v5 else None,
            version=cfg.version,
            mqtt_connect_timeout=cfg.connect_timeout_s,
            # A few quick reconnections, then the runner's backoff takes over (and shows
            # the source unhealthy meanwhile).
            reconnect=ReconnectConfig(initial_delay=0.5, max_delay=5.0, max_attempts=3),
            logger=faststream_logger(self.kind),
            log_level=logging.DEBUG,  # FastStream's per-message access log
            apply_types=False,
            graceful_timeout=self.STOP_TIMEOUT,
        )
        for pattern in self.patterns:
            subscriber = broker.subscriber(
                pattern.filter,
                qos=zmqtt.QoS(cfg.qos),
                shared=cfg.shared_group,
                ack_policy=AckPolicy.MANUAL,  # PUBACK by the batcher after the commit
                decoder=identity_decoder,
                no_reply=True,
            )
            subscriber(self._handler(pattern))
        return broker

    def _handler(self, pattern: TopicPattern) -> Any:
        async def handle(message: MQTTMessage) -> None:
            records = self.records(message, pattern)
            # MQTT has no nack: what is not acknowledged comes back on the next session.
            await self.intake.put(Unit(records, 1, message.ack))

        return handle

    def records(self, message: MQTTMessage, pattern: TopicPattern) -> list[Record]:
        """The records of one MQTT message."""
        msg: zmqtt.Message = message.raw_message
        key = sha256_key(msg.topic.encode(), msg.payload)
        return payload_records(
            msg.payload,
            key=key,
            location=f"topic {msg.topic}, payload {key[:19]}",
            stream=pattern.pattern,
            meta={
                "topic": msg.topic,
                "segments": pattern.segments(msg.topic),
                "retain": msg.retain,
                "qos": int(msg.qos),
                "headers": text_headers(message.headers),
            },
            fmt=self.config.format,
            key_fields=self.config.key,
        )

    async def before_stop(self, broker: Any) -> None:
        # FastStream's subscriber.stop() sends UNSUBSCRIBE, which removes the topics from
        # the persistent session: messages published until the next start would be lost.
        # Detaching stops local delivery and keeps them; what we hold un-acked is resent.
        for subscriber in broker.subscribers:
            subscription: zmqtt.Subscription | None = getattr(subscriber, "_subscription", None)
            if subscription is None:
                continue
            # The reading task first: it would fail on the detached subscription.
            tasks: list[asyncio.Task[Any]] = list(getattr(subscriber, "tasks", []))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await subscription.detach()
            subscriber._subscription = None
