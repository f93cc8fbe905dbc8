"""Redis streams: a consumer group, entries acknowledged (XACK) after the commit.

.. code-block:: yaml

    kind: redis
    url: redis://127.0.0.1:6379/0      # rediss:// for TLS; redis://:password@host (masked)
    streams: [factory:readings]        # or {stream: its event type, or mapping keys}
    group: tagloop-<source name>       # the consumer group (default), made when missing
    consumer: tagloop-<source name>    # this reader's name in the group (default)
    start: all                         # a new group reads: all (the whole stream) | new
    field: payload                     # the entry field holding the payload (json/text);
                                       # unset: the entry's fields are the record
    claim_idle_ms: null                # claim entries other consumers left pending this long

Record keys are ``<stream>/<entry id>`` (``factory:readings/1709600000000-0``): an entry
read twice has the same key and is stored once.

Delivery: new entries are read with ``XREADGROUP ... >`` (at most ``batch_size`` a read)
and acknowledged with ``XACK`` only after their batch was committed. What was read but not
acknowledged stays in the group's pending entries list: when the source starts (after a
crash, a failed commit, or a plain restart) it first re-reads its own pending entries
(``XREADGROUP ... 0``) and delivers them again; the keys make those already committed
duplicates. Pending entries of *other* consumer names (a host that is gone) are taken
over at start when ``claim_idle_ms`` is set (``XAUTOCLAIM``). Entries trimmed or deleted
from the stream while pending are acknowledged without a record. The consumer name must
stay the same across restarts for its pending entries to be found (the default does).
Backpressure: the next read is not sent while the buffer is full.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import orjson
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from pydantic import Field, field_validator
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tagloop.sources.base import Record
from tagloop.sources.brokers import stream_map
from tagloop.sources.brokers.common import (
    BrokerConfig,
    BrokerSource,
    BrokerUnavailable,
    Unit,
    check_url,
    describe_error,
    faststream_logger,
    identity_decoder,
    item_records,
    name_pattern,
    payload_records,
)

Entry = tuple[bytes, dict[bytes, bytes] | None]


def _entry_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id (``1709600000000-3``) in the order Redis gives them.

    >>> _entry_id(b"1709600000000-3") < _entry_id("1709600000000-10")
    True
    """
    text = raw.decode() if isinstance(raw, bytes) else raw
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


def _entries(reply: Any, stream: str) -> list[Entry]:
    """The entries of an XREADGROUP reply (RESP2: a list of pairs, RESP3: a mapping)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        found = reply.get(stream.encode(), reply.get(stream)) or []
        return list(found[0] if found and isinstance(found[0], list) else found)
    return list(reply[0][1])


class RedisConfig(BrokerConfig):
    """``kind: redis``."""

    url: str = "redis://127.0.0.1:6379/0"
    # `streams` in YAML; the attribute has another name, as `streams()` is SourceConfig's.
    named: dict[str, dict[str, Any]] = Field(alias="streams")
    group: str | None = None
    consumer: str | None = None
    start: Literal["all", "new"] = "all"
    field: str | None = None
    claim_idle_ms: int | None = Field(None, ge=1)

    @field_validator("named", mode="before")
    @classmethod
    def _streams(cls, value: Any) -> Any:
        return stream_map(value, "streams")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("redis", "rediss", "unix"))

    @field_validator("group", "consumer")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else name_pattern("name", value, " \t")

    @field_validator("field")
    @classmethod
    def _field(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must name an entry field")
        return value

    def streams(self) -> dict[str, dict[str, Any]]:
        return self.named


class RedisSource(BrokerSource):
    """Reads streams as a consumer group (FastStream `StreamSub`, batches)."""

    kind = "redis"
    config_model = RedisConfig
    config: RedisConfig

    def __init__(self, name: str, config: RedisConfig) -> None:
        super().__init__(name, config)
        self.group = config.group or f"tagloop-{name}"
        self.consumer = config.consumer or f"tagloop-{name}"
        self.stream_names = list(config.streams())
        self._pending_upto: dict[str, tuple[int, int]] = {}

    @property
    def url(self) -> str:
        return self.config.url

    def broker(self) -> RedisBroker:
        cfg = self.config
        broker = RedisBroker(
            cfg.url,
            socket_connect_timeout=cfg.connect_timeout_s,
            logger=faststream_logger(self.kind),
            log_level=logging.DEBUG,  # FastStream's per-message access log
            apply_types=False,
            graceful_timeout=self.STOP_TIMEOUT,
        )
        for stream in self.stream_names:
            subscriber = broker.subscriber(
                stream=StreamSub(
                    stream,
                    group=self.group,
                    consumer=self.consumer,
                    batch=True,
                    max_records=cfg.batch_size,
                    # XREADGROUP BLOCK: returns as soon as entries arrive, else after this.
                    polling_interval=cfg.max_wait_ms,
                    last_id=">",  # new entries; the pending ones are re-read by `recover`
                ),
                ack_policy=AckPolicy.MANUAL,  # XACK by the batcher after the commit
                decoder=identity_decoder,
                no_reply=True,
            )
            subscriber(self._handle)
        return broker

    @staticmethod
    def client(broker: RedisBroker) -> Redis:
        connection: Redis | None = broker._connection
        if connection is None:  # pragma: no cover - only called while connected
            raise RuntimeError("the Redis broker is not connected")
        return connection

    async def prepare(self, broker: Any) -> None:
        # Made here, before the subscribers start, so that `start` decides where a new
        # group begins (FastStream would create it at "$": only entries added from now).
        client = self.client(broker)
        for stream in self.stream_names:
            try:
                await client.xgroup_create(
                    stream, self.group, id="0" if self.config.start == "all" else "$", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise BrokerUnavailable(
                        f"{self.describe()}: cannot create group {self.group!r} on stream "
                        f"{stream!r}: {describe_error(exc, self.secrets)}"
                    ) from None

            if self.config.claim_idle_ms is not None:
                await self._claim(client, stream, self.config.claim_idle_ms)
        # What is pending now, before the subscribers start: the entries they read from
        # then on (``>``) are pending too until committed, and must not be delivered again
        # by `recover`, which re-reads the pending list only up to here.
        self._pending_upto = {}
        for stream in self.stream_names:
            summary = await client.xpending(stream, self.group)
            if summary and summary.get("pending"):
                self._pending_upto[stream] = _entry_id(summary["max"])

    async def recover(self, broker: Any) -> None:
        client = self.client(broker)
        for stream, upto in self._pending_upto.items():
            await self._pending(client, stream, upto)

    async def _claim(self, client: Redis, stream: str, idle_ms: int) -> None:
        """Make this consumer the owner of entries others left pending for ``idle_ms``."""
        start: bytes | str = "0-0"
        while True:
            reply = await client.xautoclaim(
                stream, self.group, self.consumer, idle_ms, start_id=start,
                count=self.config.batch_size, justid=True,
            )  # fmt: skip
            start = reply[0]
            if start in (b"0-0", "0-0"):
                return

    async def _pending(self, client: Redis, stream: str, upto: tuple[int, int]) -> None:
        """Deliver again what this consumer read and did not acknowledge before it started
        (entries up to ``upto``)."""
        after: bytes | str = "0"
        while True:
            reply = await client.xreadgroup(
                self.group, self.consumer, {stream: after}, count=self.config.batch_size
            )
            entries = [e for e in _entries(reply, stream) if _entry_id(e[0]) <= upto]
            if not entries:
                return
            after = entries[-1][0]
            ids = [entry_id for entry_id, _ in entries]
            records = [r for entry in entries for r in self.records(stream, *entry)]

            async def ack(ids: list[bytes] = ids) -> None:
                await client.xack(stream, self.group, *ids)

            if not await self.intake.put(Unit(records, len(entries), ack)):
                return  # stopping: they stay pending for the next start

    async def _handle(self, message: RedisBatchStreamMessage) -> None:
        raw = message.raw_message
        stream = raw["channel"]
        entries = zip(raw["message_ids"], raw["data"], strict=True)
        records = [
            r for entry_id, fields in entries for r in self.records(stream, entry_id, fields)
        ]
        # No nack: un-acked entries stay pending and are re-read at the next start.
        await self.intake.put(Unit(records, len(raw["message_ids"]), message.ack))

    def records(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes] | None
    ) -> list[Record]:
        """The records of one stream entry (none for an entry deleted while pending)."""
        if not fields:
            return []
        ident = entry_id.decode()
        key = f"{stream}/{ident}"
        location = f"stream {stream}, entry {ident}"
        values = {
            name.decode("utf-8", "replace"): value.decode("utf-8", "replace")
            for name, value in fields.items()
        }
        meta: dict[str, Any] = {"stream": stream, "id": ident}
        field = self.config.field
        if field is None:
            # The entry's fields are the record (all values are text in Redis).
            return item_records(
                [values],
                is_array=False,
                raw=orjson.dumps(values).decode(),
                key=key,
                location=location,
                stream=stream,
                meta=meta,
                key_fields=self.config.key,
            )
        meta["fields"] = {name: value for name, value in values.items() if name != field}
        payload = fields.get(field.encode())
        if payload is None:
            raw = orjson.dumps(values).decode()
            return [Record(None, raw, location, key, stream, meta, f"no field {field!r}")]
        return payload_records(
            payload,
            key=key,
            location=location,
            stream=stream,
            meta=meta,
            fmt=self.config.format,
            key_fields=self.config.key,
        )
