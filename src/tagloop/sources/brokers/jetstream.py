"""NATS JetStream: a durable pull consumer per subject pattern, fetched in batches.

.. code-block:: yaml

    kind: nats
    url: nats://127.0.0.1:4222        # nats://user:password@host:4222 (password masked)
    stream: FACTORY                   # must exist; the source never creates or changes it
    subjects: [factory.>]             # each pattern is a stream of records (Record.stream)
    # or, with what each pattern adds to the source's mapping (its event type, fields ...):
    # subjects: {factory.*.vibration: vibration, factory.*.temperature: {type: temperature}}
    durable: tagloop-<source name>    # the consumer's name (default)
    deliver_policy: all               # all: everything the stream holds; new: from now on

Record keys are ``<stream>/<stream sequence>``: a redelivered message (after a crash
between the commit and the ack) has the same key and is not stored twice.

One consumer per subject pattern (server 2.9 has no multi-filter consumers): with one
pattern it is named ``durable``; with several, ``durable-<hash of the pattern>``. The
consumer is created on the first run; later changes to ``deliver_policy`` do not apply to
an existing consumer (delete it with ``nats consumer rm`` to start over).
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any, Literal

import nats.errors
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from nats.aio.msg import Msg
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.client import JetStreamContext
from pydantic import Field, field_validator

from tagloop.sources.base import Record
from tagloop.sources.brokers.common import (
    BrokerConfig,
    BrokerSource,
    Unit,
    check_url,
    faststream_logger,
    identity_decoder,
    name_pattern,
    payload_records,
)


class NatsConfig(BrokerConfig):
    """``kind: nats``.

    >>> NatsConfig(stream="S", subjects={"a.>": "alarm", "b.*": None}).streams()
    {'a.>': {'type': 'alarm'}, 'b.*': {}}
    """

    url: str = "nats://127.0.0.1:4222"
    stream: str
    # Pattern -> what it adds to the source's mapping; a list names the patterns only.
    subjects: dict[str, dict[str, Any]] = Field(min_length=1)
    durable: str | None = None
    deliver_policy: Literal["all", "new"] = "all"
    ack_wait_s: float = Field(30.0, ge=1, le=3600)
    """How long the server waits for an acknowledgement before delivering a message again:
    after a crash, what the dead run held comes back after this (and, as at most three
    batches may be un-acknowledged, new messages wait for it too)."""

    def streams(self) -> dict[str, dict[str, Any]]:
        # Each pattern is a stream: its records name it (Record.stream) and its mapping is
        # the source's, extended by what the pattern adds.
        return {subject: dict(extra) for subject, extra in self.subjects.items()}

    @field_validator("subjects", mode="before")
    @classmethod
    def _subject_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            if len(set(map(str, value))) != len(value):
                raise ValueError("subjects must not repeat")
            return {subject: {} for subject in value}
        if isinstance(value, dict):
            return {
                k: {"type": v} if isinstance(v, str) else {} if v is None else v
                for k, v in value.items()
            }
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("nats", "tls", "ws", "wss"))

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        return name_pattern("stream", value)

    @field_validator("durable")
    @classmethod
    def _durable(cls, value: str | None) -> str | None:
        return None if value is None else name_pattern("durable", value)

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for subject in value:
            tokens = subject.split(".")
            if not subject or any(not t or " " in t for t in tokens):
                raise ValueError(f"{subject!r} is not a NATS subject (tokens separated by '.')")
            if ">" in tokens[:-1]:
                raise ValueError(f"{subject!r}: '>' may only be the last token")
        return value


def _fetch_timeouts_as_nats_errors() -> None:
    """Make an idle fetch raise nats' own ``TimeoutError``.

    nats-py 2.16's ``fetch`` raises a bare ``asyncio.TimeoutError`` when a batch request
    expires with nothing new, where FastStream 0.7 catches only ``nats.errors.TimeoutError``
    (a subclass of it): every idle ``max_wait_ms`` would then kill FastStream's fetch task
    and log a traceback while its supervisor restarts it. Converting to the subclass keeps
    every ``except asyncio.TimeoutError`` elsewhere working as before.
    """
    pull = JetStreamContext.PullSubscription
    if getattr(pull.fetch, "_tagloop", False):
        return
    fetch = pull.fetch

    async def patched(self: Any, *args: Any, **kwargs: Any) -> list[Msg]:
        try:
            found: list[Msg] = await fetch(self, *args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError:
            raise nats.errors.TimeoutError from None
        return found

    patched._tagloop = True  # type: ignore[attr-defined]
    pull.fetch = patched  # type: ignore[method-assign]


_fetch_timeouts_as_nats_errors()


class NatsSource(BrokerSource):
    """Reads a JetStream stream through durable pull consumers (FastStream `PullSub`)."""

    kind = "nats"
    config_model = NatsConfig
    config: NatsConfig

    def __init__(self, name: str, config: NatsConfig) -> None:
        super().__init__(name, config)
        self.durable = config.durable or f"tagloop-{name}"
        name_pattern("durable", self.durable)

    @property
    def url(self) -> str:
        return self.config.url

    def durable_for(self, subject: str) -> str:
        """The consumer name of one subject pattern (stable when patterns are added)."""
        if len(self.config.subjects) == 1:
            return self.durable
        return f"{self.durable}-{hashlib.sha256(subject.encode()).hexdigest()[:10]}"

    def broker(self) -> NatsBroker:
        cfg = self.config
        broker = NatsBroker(
            cfg.url,
            connect_timeout=max(1, math.ceil(cfg.connect_timeout_s)),
            # nats-py retries the first connection like a reconnection: a few quick tries,
            # then the runner's backoff takes over (and shows the source unhealthy).
            max_reconnect_attempts=3,
            reconnect_time_wait=1,
            logger=faststream_logger(self.kind),
            log_level=logging.DEBUG,  # FastStream's per-message access log
            apply_types=False,
            graceful_timeout=self.STOP_TIMEOUT,
        )
        # declare=False: the stream is the publishers'; declaring would rewrite its subjects.
        stream = JStream(cfg.stream, declare=False)
        for subject in cfg.subjects:
            subscriber = broker.subscriber(
                subject,
                stream=stream,
                durable=self.durable_for(subject),
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.ALL
                    if cfg.deliver_policy == "all"
                    else DeliverPolicy.NEW,
                    ack_policy=JsAckPolicy.EXPLICIT,
                    # Above what the source holds (2 batches) plus the fetch in progress,
                    # so the server never throttles below the source's own bound.
                    max_ack_pending=3 * cfg.batch_size,
                    ack_wait=cfg.ack_wait_s,
                ),
                # FastStream keeps fetching until batch_size messages or max_wait passed.
                pull_sub=PullSub(cfg.batch_size, timeout=cfg.max_wait_ms / 1000, batch=True),
                ack_policy=AckPolicy.MANUAL,  # acked by the batcher after the commit
                decoder=identity_decoder,
                no_reply=True,
            )
            subscriber(self._handler(subject))
        return broker

    def _handler(self, pattern: str) -> Any:
        async def handle(message: NatsBatchMessage) -> None:
            batch: list[Msg] = message.raw_message
            records: list[Record] = []
            for msg in batch:
                records.extend(self.records(msg, pattern))
            # The fetch already waited up to max_wait: deliver without waiting again.
            await self.intake.put(Unit(records, len(batch), message.ack, message.nack), flush=True)

        return handle

    def records(self, msg: Msg, pattern: str) -> list[Record]:
        """The records of one JetStream message."""
        metadata = msg.metadata
        sequence = metadata.sequence.stream
        return payload_records(
            msg.data,
            key=f"{metadata.stream}/{sequence}",
            location=f"subject {msg.subject}, sequence {sequence}",
            stream=pattern,
            meta={
                "subject": msg.subject,
                "stream": metadata.stream,
                "sequence": sequence,
                "delivered": metadata.num_delivered,
                "time": metadata.timestamp.isoformat() if metadata.timestamp else None,
                "headers": dict(msg.headers or {}),
            },
            fmt=self.config.format,
            key_fields=self.config.key,
        )
