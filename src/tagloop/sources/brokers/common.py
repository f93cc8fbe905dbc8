"""What every broker source shares: config, payload parsing, the bounded batcher, the run loop.

Each broker module only says how to build its FastStream broker and subscribers and how to
turn one broker message into records (key, location, meta); everything else is shared, and
importable from here (the batcher lives in `tagloop.sources.brokers.batcher`, payload
parsing in `tagloop.sources.brokers.payloads`, errors in `tagloop.sources.brokers.errors`):

- `Batcher`: handlers put messages into a bounded buffer and return (they never wait for the
  commit, so the next messages keep arriving while one batch commits); a flusher hands
  batches of at most ``batch_size`` messages to ``deliver`` after at most ``max_wait_ms``,
  then acknowledges them. When the buffer is full, ``put`` waits: the broker's own flow
  control (a pull request not sent, a prefetch window not refilled, a socket not read)
  takes over, so memory stays bounded. At most ``2 * batch_size`` messages are held: one
  batch being committed and one being filled.
- `payload_records`: JSON (an object, or an array of objects: several records) or text; what
  cannot be read becomes an error record, which the runner stores as a dead letter; it is
  acknowledged with its batch like any other message.
- `BrokerSource.consume`: connect (``connect_timeout_s``, secrets masked in every error),
  run the flusher and a watchdog until cancelled or until ``deliver`` raises (then the
  batch is not acknowledged, nacked where the broker can, and the exception propagates).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, NoReturn
from urllib.parse import urlsplit

from faststream.message import StreamMessage
from pydantic import ConfigDict, Field, field_validator

from tagloop.sources.base import Deliver, SourceConfig, StreamSource

# Re-exported: the broker modules import all of these from here.
from tagloop.sources.brokers.batcher import Ack, Batcher, Unit
from tagloop.sources.brokers.errors import (
    BrokerError,
    BrokerUnavailable,
    describe_error,
    mask_url,
    scrub,
    url_secrets,
)
from tagloop.sources.brokers.payloads import (
    Format,
    item_records,
    payload_records,
    sha256_key,
    text_headers,
)

__all__ = [
    "Ack",
    "Batcher",
    "BrokerConfig",
    "BrokerError",
    "BrokerSource",
    "BrokerUnavailable",
    "Format",
    "Unit",
    "check_url",
    "describe_error",
    "faststream_logger",
    "identity_decoder",
    "item_records",
    "mask_url",
    "name_pattern",
    "payload_records",
    "scrub",
    "sha256_key",
    "text_headers",
    "url_secrets",
]

log = logging.getLogger("tagloop.sources.brokers")


# --- config --------------------------------------------------------------------------------


class BrokerConfig(SourceConfig):
    """Options shared by every broker kind (``sources/<name>.yaml``)."""

    # Inputs are never echoed in validation errors: a URL may hold a password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    format: Format = "json"
    """``json``: an object is one record, an array of objects several; ``text``: the whole
    payload is ``{"value": <text>}``."""
    key: list[str] = Field(default_factory=list)
    """Payload fields whose values identify a record (``key: [order_id]``); by default the
    broker's own message identity is used."""
    batch_size: int = Field(500, ge=1, le=100_000)
    """Messages per ``deliver`` call; at most twice as many are held un-acknowledged."""
    max_wait_ms: int = Field(10, ge=1, le=60_000)
    """Longest wait for a batch to fill before delivering what arrived: the latency a
    quiet stream adds (at 1,000 messages/s, 10 ms keeps the p95 from publish to committed
    tag change near 16 ms; 50 ms alone puts it near 48 ms). Under load batches fill first,
    so a short wait does not cost throughput."""
    connect_timeout_s: float = Field(5.0, gt=0, le=300)
    """Connecting (and setting up queues, consumers, groups) must succeed within this."""

    @field_validator("key", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("key")
    @classmethod
    def _key_fields(cls, value: list[str]) -> list[str]:
        if any(not name for name in value):
            raise ValueError("key fields must be non-empty field names")
        if len(set(value)) != len(value):
            raise ValueError("key fields must not repeat")
        return value


def check_url(url: str, schemes: Iterable[str]) -> str:
    """Validate a broker URL's scheme and host; errors never repeat the URL (secrets)."""
    allowed = tuple(schemes)
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a non-numeric port
    except ValueError:
        raise ValueError(f"is not a valid URL (expected e.g. {allowed[0]}://host:port)") from None
    if parts.scheme not in allowed:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in allowed)}")
    if not parts.hostname and parts.scheme != "unix":
        raise ValueError("must name a host")
    return url


# --- the source ----------------------------------------------------------------------------


async def identity_decoder(message: StreamMessage[Any]) -> StreamMessage[Any]:
    """FastStream decoder that hands the handler the message itself (body undecoded)."""
    return message


def faststream_logger(kind: str) -> logging.Logger:
    """The logger given to FastStream; its per-message access log is at DEBUG (see below)."""
    return logging.getLogger(f"tagloop.sources.{kind}")


class BrokerSource(StreamSource):
    """A `StreamSource` on a FastStream broker; subclasses build the broker and subscribers.

    ``run`` builds the broker (`broker`) and consumes it (`consume`); tests may build the
    broker, wrap it in FastStream's in-memory test broker and call `consume` themselves.
    """

    config: BrokerConfig
    PING_EVERY: ClassVar[float] = 5.0
    PING_FAILURES: ClassVar[int] = 3
    STOP_TIMEOUT: ClassVar[float] = 10.0

    def __init__(self, name: str, config: Any) -> None:
        super().__init__(name, config)
        self._batcher: Batcher | None = None
        self._started = False

    # -- subclass hooks --

    @property
    @abstractmethod
    def url(self) -> str:
        """The broker address as configured (shown masked)."""

    @abstractmethod
    def broker(self) -> Any:
        """A new FastStream broker with this source's subscribers registered."""

    async def prepare(self, broker: Any) -> None:
        """After connecting, before the subscribers start (declarations, groups)."""

    async def recover(self, broker: Any) -> None:
        """After the subscribers started (re-read what a crashed run left un-acked)."""

    async def before_stop(self, broker: Any) -> None:
        """Before the broker stops (e.g. keep a persistent session's subscriptions)."""

    # -- shared --

    @property
    def secrets(self) -> list[str]:
        return url_secrets(self.url)

    @property
    def intake(self) -> Batcher:
        """The running batcher (handlers put into it)."""
        if self._batcher is None:
            raise RuntimeError(f"{self.kind} source {self.name!r} is not running")
        return self._batcher

    @property
    def in_flight(self) -> int:
        """Messages held un-acknowledged now (0 when not running)."""
        return self._batcher.in_flight if self._batcher else 0

    @property
    def running(self) -> bool:
        """True once connected and consuming."""
        return self._batcher is not None and self._started

    def describe(self) -> str:
        return f"{self.kind} source {self.name!r} ({mask_url(self.url)})"

    async def run(self, deliver: Deliver) -> None:
        await self.consume(self.broker(), deliver)

    async def consume(self, broker: Any, deliver: Deliver) -> None:
        """Connect ``broker``, deliver batches and ack them until cancelled or failed."""
        batcher = Batcher(
            deliver,
            batch_size=self.config.batch_size,
            max_wait=self.config.max_wait_ms / 1000,
        )
        self._batcher = batcher
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(batcher.run())]
        try:
            await self._open(broker)
            await self.recover(broker)
            self._started = True
            tasks.append(asyncio.create_task(self._watch(broker)))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises deliver's exception, or the watchdog's
            raise BrokerError(f"{self.describe()}: stopped consuming")  # pragma: no cover
        finally:
            self._started = False
            batcher.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close(broker)
            self._batcher = None

    async def _open(self, broker: Any) -> None:
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                await broker.connect()
                await self.prepare(broker)
                await broker.start()
        except BrokerError:
            raise
        except Exception as exc:
            reason = describe_error(exc, self.secrets)
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {self.config.connect_timeout_s:g} s"
            # `from None`: the client's own exception may carry the URL with its password.
            raise BrokerUnavailable(f"{self.describe()}: cannot start: {reason}") from None

    async def _close(self, broker: Any) -> None:
        try:
            async with asyncio.timeout(self.STOP_TIMEOUT):
                if self._connected(broker):
                    await self.before_stop(broker)
                await broker.stop()
        except Exception as exc:  # stopping is best effort: un-acked messages come back
            log.warning("%s: stopping: %s", self.describe(), describe_error(exc, self.secrets))

    @staticmethod
    def _connected(broker: Any) -> bool:
        return getattr(broker, "_connection", None) is not None

    async def _watch(self, broker: Any) -> NoReturn:
        """Fail the run when a subscriber stopped or the broker stopped answering pings
        (the clients reconnect by themselves for a while; past that, the runner restarts
        the source with backoff and shows it unhealthy meanwhile)."""
        failures = 0
        next_ping = time.monotonic() + self.PING_EVERY
        while True:
            await asyncio.sleep(0.5)
            stopped = [sub for sub in broker.subscribers if not sub.running]
            if stopped:
                raise BrokerError(f"{self.describe()}: a subscriber stopped (see the log)")
            if time.monotonic() < next_ping:
                continue
            next_ping = time.monotonic() + self.PING_EVERY
            try:
                alive = bool(await broker.ping(timeout=self.PING_EVERY))
            except Exception:
                alive = False
            failures = 0 if alive else failures + 1
            if failures >= self.PING_FAILURES:
                raise BrokerError(f"{self.describe()}: connection lost")


def name_pattern(what: str, value: str, forbidden: str = " \t.*>/\\") -> str:
    """Validate a broker object name (stream, durable, group) without echoing secrets."""
    if not value or any(c in forbidden for c in value):
        shown = " ".join(repr(c) for c in forbidden.strip()) + " or spaces"
        raise ValueError(f"{what} must be a non-empty name without {shown}")
    return value
