"""The bounded buffer between FastStream handlers and the runner's ``deliver``.

Handlers put messages in and return (they never wait for the commit, so the next messages
keep arriving while one batch commits); the flusher hands batches to ``deliver`` and
acknowledges them after it returned. A full buffer makes ``put`` wait, so the broker's own
flow control takes over and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NoReturn

from tagloop.sources.base import Deliver, Record, stopping
from tagloop.sources.brokers.errors import BrokerError, describe_error

__all__ = ["Ack", "Batcher", "Unit"]

log = logging.getLogger("tagloop.sources.brokers")

Ack = Callable[[], Awaitable[None]]


async def _noop() -> None:
    return None


@dataclass(slots=True, eq=False)
class Unit:
    """Messages acknowledged together (one message, or one batch the broker gave at once)."""

    records: list[Record]
    count: int
    ack: Ack
    nack: Ack = _noop
    done: asyncio.Future[bool] | None = field(default=None, repr=False)


class Batcher:
    """The bounded buffer between FastStream handlers and ``deliver``.

    ``put`` waits while the buffer holds ``batch_size`` messages (backpressure); the flusher
    (`run`) delivers a batch when it is full, when ``max_wait`` passed since its first
    message, or at once when a handler asked to (a broker batch that already waited, or a
    handler that waits for its commit). After ``deliver`` returned, the batch is acked; if
    it raised, the batch and everything buffered is nacked and the exception propagates.
    """

    def __init__(self, deliver: Deliver, *, batch_size: int, max_wait: float) -> None:
        self._deliver = deliver
        self.batch_size = batch_size
        self.max_wait = max_wait
        self._units: list[Unit] = []
        self._buffered = 0
        self._committing = 0
        self._first_at = 0.0
        self._flush_now = False
        self._closed = False
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self.peak = 0
        """Most messages held at once (buffered and being committed), for tests and benches."""
        self.delivered = 0
        """Messages delivered and acknowledged so far."""

    @property
    def in_flight(self) -> int:
        """Messages held now: buffered, or delivered and not yet acknowledged."""
        return self._buffered + self._committing

    async def put(self, unit: Unit, *, flush: bool = False, wait: bool = False) -> bool:
        """Buffer ``unit``; ``wait``: return only once it is committed and acknowledged.

        Returns False when the source is stopping: the unit was not taken (it is nacked so
        the broker redelivers it) and must not be acknowledged.
        """
        # An oversized unit is taken alone when the buffer is empty, so it cannot deadlock.
        while not self._closed and self._buffered and self._buffered + unit.count > self.batch_size:
            self._space.clear()
            await self._space.wait()
        if self._closed:
            await _quietly(unit.nack)
            return False
        if wait:
            unit.done = asyncio.get_running_loop().create_future()
        if not self._units:
            self._first_at = time.monotonic()
        self._units.append(unit)
        self._buffered += unit.count
        self.peak = max(self.peak, self.in_flight)
        if flush or wait or self._buffered >= self.batch_size:
            self._flush_now = True
        self._wake.set()
        if unit.done is None:
            return True
        return await unit.done

    def close(self) -> None:
        """Stop taking messages and wake every handler waiting for space or for a commit."""
        self._closed = True
        self._space.set()
        self._wake.set()

    async def run(self) -> NoReturn:
        """Deliver batches until cancelled, or until ``deliver`` (or an ack) raises."""
        try:
            while True:
                await self._wait_for_batch()
                units, self._units = self._units, []
                self._committing, self._buffered = self._buffered, 0
                self._flush_now = False
                self._space.set()
                await self._commit(units)
                if stopping():
                    # A client library swallowed the cancellation of a stop while acking
                    # (redis-py's XACK does, now and then): stop anyway, or this loop
                    # would wait for the next batch for ever.
                    raise asyncio.CancelledError
        finally:
            self.close()
            # Nothing buffered was delivered: nack so the broker redelivers it promptly.
            units, self._units = self._units, []
            for unit in units:
                await _quietly(unit.nack)
                _resolve(unit, False)

    async def _wait_for_batch(self) -> None:
        while not self._units:
            self._wake.clear()
            await self._wake.wait()
        loop = asyncio.get_running_loop()
        while not self._flush_now:
            left = self._first_at + self.max_wait - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            # A timer that sets the event, not `asyncio.timeout`: on Python 3.11 a stop
            # (cancel) arriving as the timeout expires can come out as a TimeoutError, and
            # the batcher then waited for ever instead of stopping.
            timer = loop.call_later(left, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()

    async def _commit(self, units: list[Unit]) -> None:
        records = [record for unit in units for record in unit.records]
        try:
            if records:
                await self._deliver(records)
        except BaseException:
            # Not committed: nack what the broker lets us nack, never ack; the caller
            # (the runner) sees the exception and restarts the source with backoff.
            for unit in units:
                await _quietly(unit.nack)
                _resolve(unit, False)
            raise
        try:
            for unit in units:
                await unit.ack()
        except Exception as exc:
            # Committed but not acknowledged: the broker redelivers, the keys dedupe.
            for unit in units:
                _resolve(unit, False)
            raise BrokerError(f"acknowledging messages failed: {describe_error(exc, ())}") from exc
        for unit in units:
            _resolve(unit, True)
        self.delivered += self._committing
        self._committing = 0


def _resolve(unit: Unit, acked: bool) -> None:
    if unit.done is not None and not unit.done.done():
        unit.done.set_result(acked)


async def _quietly(action: Ack) -> None:
    try:
        await action()
    except Exception as exc:  # a nack is a hint: redelivery happens without it, later
        log.debug("nack failed: %r", exc)
