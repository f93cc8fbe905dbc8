"""Kafka: a consumer group, offsets committed after the commit of the records before them.

.. code-block:: yaml

    kind: kafka
    bootstrap_servers: [kafka-1:9092, kafka-2:9092]   # or "kafka-1:9092,kafka-2:9092"
    topics: [mes.orders]             # or {topic: its event type, or mapping keys}
    group: tagloop-<source name>     # the consumer group (default)
    start: earliest                  # a group without committed offsets reads from:
                                     # earliest (all the topic holds) | latest (new only)

Record keys are ``<topic>/<partition>/<offset>``: a record read again (after a crash, or
after a rebalance moved its partition) has the same key and is stored once.

Delivery: records are fetched in batches (at most ``batch_size``, waiting at most
``max_wait_ms``; auto-commit is off) and, once a batch was committed to the store, the
group's offsets are committed for exactly the partitions and offsets of that batch
(``offset + 1`` of its last record per partition). Not the consumer's current position:
the next batch is already being fetched and buffered at that time, and committing the
position would skip it after a crash. After a crash the group resumes at the last
committed offsets and re-reads what came after; the keys make the duplicates. When a
commit fails (a rebalance took the partition away meanwhile) the source stops and the
runner restarts it; the new owner of the partition re-reads from the committed offset.
Backpressure: no fetch is sent while the buffer is full.

Kafka has no server on the test machine: the tests drive this same adapter through
FastStream's in-memory ``TestKafkaBroker``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

from aiokafka import (  # type: ignore[import-untyped]  # no stubs
    AIOKafkaConsumer,
    ConsumerRecord,
    TopicPartition,
)
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from pydantic import Field, field_validator

from tagloop.sources.base import Record
from tagloop.sources.brokers import stream_map
from tagloop.sources.brokers.common import (
    BrokerConfig,
    BrokerSource,
    Unit,
    faststream_logger,
    identity_decoder,
    name_pattern,
    payload_records,
    text_headers,
)


class KafkaConfig(BrokerConfig):
    """``kind: kafka``."""

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"])
    topics: dict[str, dict[str, Any]]
    group: str | None = None
    start: Literal["earliest", "latest"] = "earliest"

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _servers_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one server (host:port)")
        for server in value:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or "/" in server or "@" in server:
                raise ValueError(f"{server!r} is not host:port")
        return value

    @field_validator("topics", mode="before")
    @classmethod
    def _topic_map(cls, value: Any) -> Any:
        return stream_map(value, "topics")

    @field_validator("topics")
    @classmethod
    def _topic_names(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for topic in value:
            # Kafka's own rule: ASCII letters, digits, '.', '_' and '-', up to 249.
            if len(topic) > 249 or not all(
                c.isascii() and (c.isalnum() or c in "._-") for c in topic
            ):
                raise ValueError(f"{topic!r} is not a Kafka topic name")
        return value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else name_pattern("group", value, " \t")

    def streams(self) -> dict[str, dict[str, Any]]:
        return self.topics


def commit_offsets(records: Iterable[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    """What to commit after ``records``: per partition, the offset after its last one.

    >>> r = lambda p, o: ConsumerRecord("t", p, o, 0, 0, None, None, None, 0, 0, [])
    >>> commit_offsets([r(0, 5), r(1, 2), r(0, 7)])
    {TopicPartition(topic='t', partition=0): 8, TopicPartition(topic='t', partition=1): 3}
    """
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    return offsets


class KafkaSource(BrokerSource):
    """Reads topics as a consumer group in batches (FastStream `KafkaBroker`)."""

    kind = "kafka"
    config_model = KafkaConfig
    config: KafkaConfig

    def __init__(self, name: str, config: KafkaConfig) -> None:
        super().__init__(name, config)
        self.group = config.group or f"tagloop-{name}"

    @property
    def url(self) -> str:
        return "kafka://" + ",".join(self.config.bootstrap_servers)

    def broker(self) -> KafkaBroker:
        cfg = self.config
        broker = KafkaBroker(
            cfg.bootstrap_servers,
            request_timeout_ms=int(cfg.connect_timeout_s * 1000),
            consumer_only=True,  # a source never produces
            logger=faststream_logger(self.kind),
            log_level=logging.DEBUG,  # FastStream's per-message access log
            apply_types=False,
            graceful_timeout=self.STOP_TIMEOUT,
        )
        subscriber = broker.subscriber(
            *cfg.topics,
            batch=True,
            group_id=self.group,
            auto_offset_reset=cfg.start,
            max_records=cfg.batch_size,
            batch_timeout_ms=cfg.max_wait_ms,
            ack_policy=AckPolicy.MANUAL,  # offsets committed by the batcher (below)
            decoder=identity_decoder,
            no_reply=True,
        )
        subscriber(self._handle)
        return broker

    async def _handle(self, message: KafkaMessage) -> None:
        raw = message.raw_message
        # A tuple from aiokafka's getmany, a list from the in-memory test broker.
        batch: tuple[ConsumerRecord[Any, Any], ...] = (
            tuple(raw) if isinstance(raw, tuple | list) else (raw,)
        )
        records = [r for record in batch for r in self.records(record)]
        offsets = commit_offsets(batch)

        async def commit() -> None:
            consumer = getattr(message, "consumer", None)
            if isinstance(consumer, AIOKafkaConsumer):
                await consumer.commit(offsets)
            else:  # FastStream's in-memory test broker: no group, nothing to commit
                await message.ack()

        # nack seeks each partition back to the batch's first record. The fetch already
        # waited up to max_wait: deliver without waiting again.
        await self.intake.put(Unit(records, len(batch), commit, message.nack), flush=True)

    def records(self, record: ConsumerRecord[Any, Any]) -> list[Record]:
        """The records of one Kafka record (its value is the payload)."""
        where = f"{record.topic}/{record.partition}/{record.offset}"
        key = record.key
        return payload_records(
            record.value or b"",
            key=where,
            location=f"topic {record.topic}, partition {record.partition}, offset {record.offset}",
            stream=record.topic,
            meta={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
                "timestamp_ms": record.timestamp,
                "headers": text_headers(record.headers),
            },
            fmt=self.config.format,
            key_fields=self.config.key,
        )
