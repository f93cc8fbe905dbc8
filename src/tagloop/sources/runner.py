"""Running sources: pulls on their schedule, listeners until stopped, failures retried.

`SourceRunner.run_once` reads a pulled source up to now (``tagloop sources run --once``);
`SourceRunner.run_forever` keeps a source going: pulls on its schedule, listens to a
broker, and after a failure (server down, bad credentials) waits with exponential backoff
and tries again, with the source marked ``failing`` in `tagloop.store.sources` meanwhile.
One failing source never stops the others: each runs in its own task.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from tagloop import logs
from tagloop.errors import TagloopError
from tagloop.metrics import SOURCE_FAILURES, SOURCE_UP
from tagloop.runtime import Runtime
from tagloop.sources.base import PullSource, Record, StreamSource, stopping
from tagloop.sources.intake import Intake, Tally
from tagloop.sources.kinds import build
from tagloop.sources.mapping import RecordMapper
from tagloop.store import sources as source_store
from tagloop.timeutil import now_us, parse_duration
from tagloop.workspace.sources import SourceDefinition

log = logs.get("tagloop.sources")

DEFAULT_EVERY = "1m"  # pulled sources without a schedule
MAX_BACKOFF = 300.0  # seconds between attempts of a failing source, at most
HEARTBEAT = 10.0  # seconds between status writes of a quiet source, at most


class SourceRunner:
    def __init__(self, rt: Runtime, defn: SourceDefinition) -> None:
        self.rt = rt
        self.defn = defn
        self.name = defn.name
        mappers = {
            stream: RecordMapper(
                mapping,
                source=defn.name,
                dictionary=rt.workspace.dictionary,
                timezone=rt.workspace.timezone,
                typed_input=True,
            )
            for stream, mapping in defn.mappings.items()
        }
        self.intake = Intake(rt, defn.name, mappers)
        self.total = Tally()
        self.failures = 0
        self.on_change: Callable[[SourceRunner], None] | None = None
        self._written_at = 0.0  # monotonic time of the last status write
        self._dirty = False  # counts changed since then
        self._success_at: int | None = None  # time of the last commit
        self._lag: int | None = None  # µs from the newest event's time to its commit

    def _source(self) -> PullSource | StreamSource:
        config = self.defn.config.resolve(self.rt.workspace.root)
        source: PullSource | StreamSource = build(self.name, self.defn.kind, config)
        return source

    @property
    def pulled(self) -> bool:
        from tagloop.sources.kinds import kinds

        return issubclass(kinds()[self.defn.kind], PullSource)

    # -- one pass ------------------------------------------------------------------------
    def run_once(self) -> Tally:
        """Read a pulled source up to now, page by page, each page committed with its
        checkpoint. Raises on failure (what was committed stays committed)."""
        source = self._source()
        if not isinstance(source, PullSource):
            raise TagloopError(f"source {self.name} is a {self.defn.kind} listener, not pulled")
        tally = Tally()
        self._status(state="running")
        try:
            for page in source.pull(source_store.checkpoints(self.rt.db, self.name)):
                part, counts = self.intake.prepare(page.records)
                self.intake.commit(part, counts, page.checkpoints)
                tally.add(counts)
                self._progress(counts)
        finally:
            source.close()
        self._succeeded()
        return tally

    async def deliver(self, records: list[Record]) -> None:
        """Map, check and commit records of a listener: returns once they are durable, so
        the caller may acknowledge them."""
        await self.push(records)

    async def push(self, records: list[Record]) -> Tally:
        """`deliver`, with what became of the records (for a webhook's answer)."""
        counts = await anyio.to_thread.run_sync(self._commit_records, records)
        self._progress(counts)
        return counts

    def _commit_records(self, records: list[Record]) -> Tally:
        part, counts = self.intake.prepare(records)
        self.intake.commit(part, counts, {})
        return counts

    # -- forever ---------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Run until cancelled, retrying failures with exponential backoff and jitter.

        The backoff grows with the *consecutive* failures (`failures`, reset by a success),
        so a source that recovered and fails again a day later starts over at a second."""
        retrying = AsyncRetrying(
            # A client library may turn the cancellation of a stop into an error of its own
            # (a closed connection): that is the stop, not a failure to retry.
            retry=retry_if_exception(lambda e: isinstance(e, Exception) and not stopping()),
            wait=lambda _: backoff(self.failures),
            before_sleep=self._failed,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._run()
        except asyncio.CancelledError:
            # Stopped on purpose: say so, or the last state would be shown for ever.
            self._status(state="stopped", next_attempt_at=None)
            raise
        except Exception:
            if not stopping():
                raise
            self._status(state="stopped", next_attempt_at=None)
            raise asyncio.CancelledError from None

    async def _run(self) -> None:
        flusher = asyncio.create_task(self._flush_status())
        try:
            if not self.pulled:
                await self._listen()
                return
            while True:
                await anyio.to_thread.run_sync(self.run_once)
                delay = self.seconds_until_next()
                self._status(state="idle", next_attempt_at=now_us() + int(delay * 1e6))
                await asyncio.sleep(delay)
        finally:
            flusher.cancel()

    async def _listen(self) -> None:
        source = self._source()
        assert isinstance(source, StreamSource)
        self._status(state="running")
        try:
            await source.run(self.deliver)
        finally:
            if self._dirty:
                self._status(last_success_at=self._success_at, failures=self.failures)

    async def _flush_status(self) -> None:
        """Write the counts a busy listener did not write (at most once a second), so that
        the status is current within a second even when the messages stop; and, however
        quiet the source, a heartbeat every `HEARTBEAT` seconds, by which readers tell a
        running source from one whose process died without a word (`status.LOST_AFTER`)."""
        while True:
            await asyncio.sleep(1.0)
            if self._dirty:
                self._status(last_success_at=self._success_at, failures=0)
            elif time.monotonic() - self._written_at >= HEARTBEAT:
                self._status()

    def seconds_until_next(self, now: datetime | None = None) -> float:
        """Seconds to the next scheduled pull (``every`` or ``cron``, in the workspace's
        time zone)."""
        spec = self.defn.spec
        if spec.cron:
            from croniter import croniter

            start = now or datetime.now(self.rt.workspace.timezone)
            following: datetime = croniter(spec.cron, start).get_next(datetime)
            return max(0.0, (following - start).total_seconds())
        return parse_duration(spec.every or DEFAULT_EVERY) / 1e6

    # -- status ----------------------------------------------------------------------------
    def _failed(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.record_failure(error, state.next_action.sleep if state.next_action else None)

    def record_failure(self, error: BaseException | None, wait: float | None = None) -> None:
        """Mark the source failing with ``error``, retried in ``wait`` seconds if known."""
        self.failures += 1
        message = _describe(error)
        SOURCE_FAILURES.labels(self.name).inc()
        SOURCE_UP.labels(self.name).set(0)
        log.warning("source failed", source=self.name, error=message, retry_in_s=wait)
        now = now_us()
        self._status(
            state="failing",
            last_error=message,
            last_error_at=now,
            failures=self.failures,
            next_attempt_at=now + int(wait * 1e6) if wait is not None else None,
        )

    def _succeeded(self) -> None:
        self.failures = 0
        SOURCE_UP.labels(self.name).set(1)
        self._status(state="idle", last_success_at=now_us(), failures=0)

    def _progress(self, counts: Tally) -> None:
        self.total.add(counts)
        if self.failures:
            self.failures = 0
        SOURCE_UP.labels(self.name).set(1)
        self._success_at = now_us()
        if counts.newest is not None:
            self._lag = self._success_at - counts.newest
        # A listener commits many batches a second: its status row is written once a
        # second at most (the metrics are exact); `_flush_status` writes the rest.
        if time.monotonic() - self._written_at >= 1.0:
            self._status(last_success_at=self._success_at, failures=0)
        else:
            self._dirty = True
            if self.on_change is not None:
                self.on_change(self)

    def _status(self, **values: Any) -> None:
        self._written_at = time.monotonic()
        self._dirty = False
        values.update(
            lag_us=self._lag,
            records_read=self.total.read,
            events_written=self.total.written,
            rejected=self.total.rejected,
            duplicates=self.total.duplicates,
            host=socket.gethostname(),
            updated_at=now_us(),
        )
        try:
            source_store.set_status(self.rt.db, self.name, values)
        except Exception as exc:  # the status is for people; never let it stop a source
            log.warning("could not record source status", source=self.name, error=str(exc))
        if self.on_change is not None:
            self.on_change(self)


def backoff(failures: int, *, initial: float = 1.0, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait after ``failures + 1`` consecutive failures: doubling from
    ``initial``, at most ``cap``, plus up to a second of jitter (so that sources failing
    together, when a shared server goes down, do not all retry in the same instant).

    >>> [int(backoff(n)) for n in range(4)], int(backoff(30))
    ([1, 2, 4, 8], 300)
    """
    return min(cap, initial * 2.0 ** min(failures, 30)) + random.random()


def _describe(error: BaseException | None) -> str:
    """A failure as people read it: the first line, without a traceback."""
    if error is None:
        return "unknown error"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{type(error).__name__}: {text}"[:500]


async def run_sources(rt: Runtime, names: list[str] | None = None) -> list[SourceRunner]:
    """Start every enabled source (or those named) in its own task; runs until cancelled."""
    runners = runners_for(rt, names)
    async with anyio.create_task_group() as group:
        for runner in runners:
            group.start_soon(runner.run_forever)
    return runners


def runners_for(rt: Runtime, names: list[str] | None = None) -> list[SourceRunner]:
    from tagloop.errors import NotFound
    from tagloop.names import suggest

    sources = rt.workspace.sources
    for name in names or []:
        if name not in sources:
            raise NotFound(f"unknown source {name!r}{suggest(name, sources)}")
    chosen = (
        [sources[n] for n in names] if names else [d for d in sources.values() if d.spec.enabled]
    )
    return [SourceRunner(rt, defn) for defn in chosen if defn.kind != "webhook"]
