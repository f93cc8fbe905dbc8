"""RabbitMQ: one durable queue (optionally bound to an exchange), acked after the commit.

.. code-block:: yaml

    kind: rabbitmq
    url: amqp://guest:guest@127.0.0.1:5672/   # amqps:// for TLS; the password is masked
    queue: tagloop.factory                    # declared durable when missing
    declare: true                 # false: queue and exchange must exist (checked, not made)
    exchange: factory             # optional: bind the queue to this exchange ...
    exchange_type: topic          # ... of this type (direct, fanout, topic, headers)
    routing_key: "device.#"       # ... with this binding key
    key: [reading_id]             # optional: payload fields that identify a record

Every message is acknowledged (``basic.ack``) only after the batch it belongs to was
committed; the channel's prefetch is ``2 * batch_size``, exactly what the source holds at
most, so a slow store stops the server from sending more (backpressure without a queue of
our own). A batch whose commit failed is nacked with requeue; messages held when the
connection drops are requeued by the server. Either way they come back marked
``redelivered``.

Record keys: AMQP has no server-side message identity (a delivery tag is per channel and
restarts at 1), so the key is the ``message_id`` property when the publisher set one
(``rabbit:<queue>/id/<message_id>``), else a SHA-256 of exchange, routing key and body
(``rabbit:<queue>/sha256:...``). Either way a redelivery has the same key and is not stored
twice. Without a ``message_id`` (or ``key`` fields), two *different* messages with the same
routing key and the same bytes count as one: publishers of repeated identical payloads
(counters, heartbeats) should set ``message_id`` or carry a time or sequence in the body.
"""

from __future__ import annotations

import logging
from typing import Literal

from aio_pika import IncomingMessage
from faststream import AckPolicy
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.message import RabbitMessage
from pydantic import field_validator, model_validator

from tagloop.sources.base import Record
from tagloop.sources.brokers.common import (
    BrokerConfig,
    BrokerSource,
    Unit,
    check_url,
    faststream_logger,
    identity_decoder,
    payload_records,
    sha256_key,
    text_headers,
)


class RabbitConfig(BrokerConfig):
    """``kind: rabbitmq``."""

    url: str = "amqp://guest:guest@127.0.0.1:5672/"
    queue: str
    declare: bool = True
    exchange: str | None = None
    exchange_type: Literal["direct", "fanout", "topic", "headers"] = "direct"
    routing_key: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("amqp", "amqps"))

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        # AMQP names are up to 255 bytes; "amq." is reserved for the server's own objects.
        if not value or len(value.encode()) > 255 or value.startswith("amq."):
            raise ValueError("must be a queue name (1-255 bytes, not starting with 'amq.')")
        return value

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, value: str | None) -> str | None:
        if value is not None and (not value or len(value.encode()) > 255):
            raise ValueError("must be an exchange name (1-255 bytes)")
        return value

    @model_validator(mode="after")
    def _binding(self) -> RabbitConfig:
        if self.routing_key and self.exchange is None:
            raise ValueError("routing_key needs an exchange to bind the queue to")
        return self


class RabbitSource(BrokerSource):
    """Consumes one queue with manual acks (FastStream `RabbitBroker`)."""

    kind = "rabbitmq"
    config_model = RabbitConfig
    config: RabbitConfig

    @property
    def url(self) -> str:
        return self.config.url

    def broker(self) -> RabbitBroker:
        cfg = self.config
        broker = RabbitBroker(
            cfg.url,
            timeout=cfg.connect_timeout_s,
            # A broken connection is reconnected by aio-pika's robust connection; a
            # refused first connection fails at once and the runner's backoff takes over.
            fail_fast=True,
            reconnect_interval=1.0,
            logger=faststream_logger(self.kind),
            log_level=logging.DEBUG,  # FastStream's per-message access log
            apply_types=False,
            graceful_timeout=self.STOP_TIMEOUT,
        )
        queue = RabbitQueue(
            cfg.queue,
            durable=True,  # survives a broker restart, like the messages it holds
            declare=cfg.declare,
            routing_key=cfg.routing_key,
        )
        exchange = None
        if cfg.exchange is not None:
            exchange = RabbitExchange(
                cfg.exchange,
                type=ExchangeType(cfg.exchange_type),
                durable=True,
                declare=cfg.declare,
            )
        subscriber = broker.subscriber(
            queue,
            exchange,
            # The server sends at most what the source may hold: one batch committing and
            # one filling. More would only wait in aio-pika's memory.
            channel=Channel(prefetch_count=2 * cfg.batch_size),
            ack_policy=AckPolicy.MANUAL,  # acked by the batcher after the commit
            decoder=identity_decoder,
            no_reply=True,
        )
        subscriber(self._handle)
        return broker

    async def _handle(self, message: RabbitMessage) -> None:
        records = self.records(message.raw_message)
        # nack requeues: the server hands the message out again at once.
        await self.intake.put(Unit(records, 1, message.ack, message.nack))

    def records(self, msg: IncomingMessage) -> list[Record]:
        """The records of one AMQP message."""
        cfg = self.config
        exchange = msg.exchange or ""
        routing_key = msg.routing_key or ""
        if msg.message_id:
            key = f"rabbit:{cfg.queue}/id/{msg.message_id}"
            where = f"message id {msg.message_id}"
        else:
            digest = sha256_key(exchange.encode(), routing_key.encode(), msg.body)
            key = f"rabbit:{cfg.queue}/{digest}"
            where = f"body {digest[:19]}"
        return payload_records(
            msg.body,
            key=key,
            location=f"queue {cfg.queue}, routing key {routing_key or '-'}, {where}",
            stream="",
            meta={
                "queue": cfg.queue,
                "exchange": exchange,
                "routing_key": routing_key,
                "message_id": msg.message_id,
                "redelivered": bool(msg.redelivered),
                "time": msg.timestamp.isoformat() if msg.timestamp else None,
                "headers": text_headers(msg.headers),
            },
            fmt=cfg.format,
            key_fields=cfg.key,
        )
