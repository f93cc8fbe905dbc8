"""Stopping a source: a cancelled runner stops, even when the client library turns the
cancellation into an error of its own (a closed connection), and says it stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tagloop.runtime import Runtime
from tagloop.sources.base import Deliver, StreamSource
from tagloop.sources.runner import SourceRunner
from tagloop.store import sources as source_store
from tests.sources.test_jetstream import source_yaml, workspace


class ClosedOnCancel(StreamSource):
    """A listener whose client raises ConnectionError when its wait is cancelled."""

    kind = "nats"
    started = 0

    async def run(self, deliver: Deliver) -> None:
        ClosedOnCancel.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("connection closed by the client") from None


def test_a_cancelled_runner_stops_instead_of_retrying_the_error(tmp_path: Path) -> None:
    rt = Runtime.open(workspace(tmp_path, source_yaml("UNUSED")))
    try:
        runner = SourceRunner(rt, rt.workspace.sources["vibration"])
        runner._source = lambda: ClosedOnCancel("vibration", None)  # type: ignore[method-assign]

        async def scenario() -> BaseException | None:
            task = asyncio.create_task(runner.run_forever())
            while ClosedOnCancel.started == 0:
                await asyncio.sleep(0.01)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=10)
            assert done, "the runner kept retrying after it was cancelled"
            return task.exception() if not task.cancelled() else None

        assert asyncio.run(scenario()) is None  # cancelled, not failed
        assert runner.failures == 0 and ClosedOnCancel.started == 1
        assert source_store.statuses(rt.db)["vibration"].state == "stopped"
    finally:
        rt.close()


def test_a_batcher_stops_when_an_ack_swallows_the_cancellation() -> None:
    """redis-py's XACK now and then catches the cancellation of a stop and returns: the
    batcher stopped waiting for its next batch only by chance (CI once hung for 300 s)."""
    from tagloop.sources.base import Record
    from tagloop.sources.brokers.batcher import Batcher, Unit

    async def scenario() -> None:
        acking = asyncio.Event()
        delivered: list[int] = []

        async def deliver(records: list[Record]) -> None:
            delivered.append(len(records))

        async def ack() -> None:
            acking.set()
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                return  # swallowed, as the client library does

        batcher = Batcher(deliver, batch_size=10, max_wait=0.001)
        task = asyncio.create_task(batcher.run())
        assert await batcher.put(Unit([], 1, ack), flush=True)
        await acking.wait()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
        assert done, "the batcher kept waiting for a batch after it was stopped"
        assert task.cancelled()
        assert batcher.delivered == 1 and delivered == []  # acked; no records to deliver

    asyncio.run(scenario())
