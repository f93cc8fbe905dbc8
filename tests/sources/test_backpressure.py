"""Backpressure: a slow store slows consumption; messages wait at the broker, not in memory.

Each test holds thousands of messages at a real broker, makes every commit slow, and
samples how many messages the running source holds: never more than two batches (one
being committed, one being filled), however far behind the store is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tagloop.ingest.pipeline import CommitResult, Part
from tagloop.runtime import Runtime
from tagloop.sources.runner import SourceRunner
from tests.sources.test_brokers import REDIS, mapping, reading, workspace
from tests.sources.test_jetstream import publish as nats_publish
from tests.sources.test_jetstream import reading as nats_reading
from tests.sources.test_jetstream import source_yaml as nats_source
from tests.sources.test_jetstream import workspace as nats_workspace

MESSAGES = 3_000
BATCH = 100
COMMIT_DELAY = 0.01  # seconds each commit takes: a store far slower than the broker


def slow_store(rt: Runtime) -> list[int]:
    """Make every commit of ``rt`` take ``COMMIT_DELAY`` longer; returns the commit sizes."""
    sizes: list[int] = []
    submit = rt.ingestor.submit

    def slow(part: Part) -> CommitResult:
        time.sleep(COMMIT_DELAY)
        sizes.append(len(part.events) + len(part.dead_letters))
        return submit(part)

    rt.ingestor.submit = slow  # type: ignore[method-assign]
    return sizes


async def drain(rt: Runtime, name: str) -> tuple[int, list[int]]:
    """Run the source until every message is written; the most it held at once, and how
    many messages were still left at the broker each time a tenth had been written.
    Nothing crashed, so no message may have been delivered twice."""
    runner = SourceRunner(rt, rt.workspace.sources[name])
    sources: list[Any] = []
    build = runner._source

    def keep() -> Any:
        sources.append(build())
        return sources[-1]

    runner._source = keep  # type: ignore[method-assign]
    task = asyncio.create_task(runner.run_forever())
    held, behind = 0, []
    deadline = time.monotonic() + 120
    try:
        while runner.total.written < MESSAGES:
            assert time.monotonic() < deadline, f"only {runner.total.written} written"
            if sources:
                held = max(held, sources[-1].in_flight)
                if runner.total.written >= (len(behind) + 1) * MESSAGES // 10:
                    behind.append(MESSAGES - runner.total.read)
            await asyncio.sleep(0.001)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (runner.total.read, runner.total.duplicates) == (MESSAGES, 0)
    return held, behind


def check(held: int, behind: list[int], sizes: list[int]) -> None:
    assert held <= 2 * BATCH, f"held {held} messages at once"
    # While the store lagged, most messages were still waiting at the broker.
    assert behind and behind[0] >= MESSAGES // 2, behind
    assert max(sizes) <= BATCH


def test_a_slow_store_holds_nats_messages_at_the_server(tmp_path: Path, stream: str) -> None:
    rt = Runtime.open(nats_workspace(tmp_path, nats_source(stream, batch_size=BATCH)))
    try:
        asyncio.run(nats_publish(stream, [nats_reading(n) for n in range(MESSAGES)]))
        sizes = slow_store(rt)
        held, behind = asyncio.run(drain(rt, "vibration"))
        check(held, behind, sizes)
    finally:
        rt.close()


def test_a_slow_store_holds_redis_entries_in_the_stream(tmp_path: Path, redis_stream: str) -> None:
    from redis.asyncio import Redis

    source = f"""
        name: redis_vibration
        kind: redis
        url: {REDIS}
        streams: ["{redis_stream}"]
        field: payload
    """ + mapping("device").replace("batch_size: 10\n", f"batch_size: {BATCH}\n")
    rt = workspace(tmp_path, "redis_vibration", source)

    async def fill(add: Callable[..., Awaitable[Any]]) -> None:
        for n in range(MESSAGES):
            await add(redis_stream, {"payload": reading(n)})

    async def publish() -> None:
        client = Redis.from_url(REDIS)
        await fill(client.xadd)
        await client.aclose()

    try:
        asyncio.run(publish())
        sizes = slow_store(rt)
        held, behind = asyncio.run(drain(rt, "redis_vibration"))
        check(held, behind, sizes)
    finally:
        rt.close()
