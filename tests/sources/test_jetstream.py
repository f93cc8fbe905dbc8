"""NATS JetStream sources against the real server: every message stored once, acknowledged
only after its commit, bad messages kept as dead letters, an unreachable server retried,
and a `tagloop sources run` killed with SIGKILL mid-stream losing and duplicating nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
import orjson
import pytest
import sqlalchemy as sa

from tagloop.runtime import Runtime
from tagloop.sources.runner import SourceRunner
from tagloop.store import sources as source_store
from tests.conftest import write_workspace

NATS = "nats://127.0.0.1:4222"


async def publish(stream: str, payloads: list[bytes]) -> None:
    client = await nats.connect(NATS)
    js = client.jetstream()
    for start in range(0, len(payloads), 500):
        acks = [
            js.publish(f"{stream}.factory.line{n % 3}.vibration", body)
            for n, body in enumerate(payloads[start : start + 500], start)
        ]
        await asyncio.gather(*acks)
    await client.close()


def reading(n: int, device: str | None = None) -> bytes:
    return orjson.dumps(
        {"device": device or f"D-{n % 20:02d}", "mm_s": f"{n % 90}.5", "at": 1709600000 + n}
    )


def source_yaml(stream: str, batch_size: int = 200, ack_wait_s: float = 30) -> str:
    return f"""
        name: vibration
        kind: nats
        url: {NATS}
        stream: {stream}
        subjects: ["{stream}.factory.*.vibration"]
        batch_size: {batch_size}
        ack_wait_s: {ack_wait_s}
        mapping:
          type: vibration
          entity_type: device
          entity_id: device
          time: at
          epoch: s
          fields:
            mm_s: number
          properties: {{mm_s: mm_s, subject: meta.subject}}
    """


def workspace(tmp_path: Path, source: str) -> Path:
    return write_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path}/store.db", extra={"sources/vibration.yaml": source}
    )


def count(rt_or_url: Runtime | str, sql: str) -> int:
    if isinstance(rt_or_url, Runtime):
        with rt_or_url.db.read() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    engine = sa.create_engine(rt_or_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what} ({condition.__doc__})")
        await asyncio.sleep(0.05)


async def pending(stream: str, durable: str) -> tuple[int, int]:
    """(messages not delivered yet, delivered but not acknowledged) of the consumer."""
    client = await nats.connect(NATS)
    info = await client.jetstream().consumer_info(stream, durable)
    await client.close()
    return info.num_pending, info.num_ack_pending


def test_messages_are_stored_once_acked_after_commit_and_bad_ones_kept(
    tmp_path: Path, stream: str
) -> None:
    bad = [b"{not json", orjson.dumps({"device": "D-01", "mm_s": "12,3x", "at": 1})]
    rt = Runtime.open(workspace(tmp_path, source_yaml(stream)))

    async def scenario() -> None:
        await publish(stream, [reading(n) for n in range(1_000)])
        for body in bad:  # one at a time: sequences 1001 and 1002
            await publish(stream, [body])
        runner = SourceRunner(rt, rt.workspace.sources["vibration"])
        task = asyncio.create_task(runner.run_forever())
        try:
            await until(lambda: runner.total.read == 1_002, 30, "every message is read")
            # Acknowledged only after the commit: nothing left pending at the server.
            await until(lambda: runner.total.written == 1_000, 10, "every event is committed")
            assert await pending(stream, "tagloop-vibration") == (0, 0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # A second run with the same durable consumer reads only what is new.
        await publish(stream, [reading(n, "D-new") for n in range(5)])
        runner = SourceRunner(rt, rt.workspace.sources["vibration"])
        task = asyncio.create_task(runner.run_forever())
        try:
            await until(lambda: runner.total.written == 5, 30, "the new messages are stored")
            assert runner.total.read == 5
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert count(rt, "SELECT count(*) FROM events WHERE source = 'vibration'") == 1_005
    with rt.db.read() as conn:
        props = conn.execute(
            sa.text("SELECT properties FROM events WHERE entity_id = 'D-new' LIMIT 1")
        ).scalar_one()
        letters = conn.execute(sa.text("SELECT error FROM dead_letters ORDER BY seq")).all()
    props = props if isinstance(props, dict) else orjson.loads(props)
    # Coerced from text, and the subject from what the transport added (meta.subject).
    assert props == {"mm_s": 0.5, "subject": f"{stream}.factory.line0.vibration"}
    (invalid,), (unmapped,) = letters
    assert invalid.startswith(
        f"source vibration, subject {stream}.factory.line0.vibration, sequence 1001, invalid JSON"
    )
    assert unmapped == (
        f"source vibration, subject {stream}.factory.line0.vibration, sequence 1002, "
        "field mm_s: '12,3x' is not a number"
    )
    assert source_store.statuses(rt.db)["vibration"].last_success_at is not None


def test_an_unreachable_server_is_retried_and_shown_failing(tmp_path: Path) -> None:
    source = source_yaml("NOPE").replace(NATS, "nats://tagloop:hunter2@127.0.0.1:1")
    rt = Runtime.open(workspace(tmp_path, source))
    runner = SourceRunner(rt, rt.workspace.sources["vibration"])

    async def scenario() -> None:
        task = asyncio.create_task(runner.run_forever())
        try:
            await until(lambda: runner.failures >= 2, 30, "two attempts failed")
            # What `tagloop sources status` and /v1/sources show meanwhile.
            status = source_store.statuses(rt.db)["vibration"]
            assert status.state == "failing" and status.failures >= 2
            assert "cannot start" in status.last_error and "hunter2" not in status.last_error
            assert status.next_attempt_at > status.last_error_at
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert source_store.statuses(rt.db)["vibration"].state == "stopped"


@pytest.mark.slow
def test_killed_mid_stream_then_restarted_stores_every_message_exactly_once(
    tmp_path: Path, stream: str
) -> None:
    total = 20_000
    # What the killed run held comes back after ack_wait_s: short, so the test is too.
    root = workspace(tmp_path, source_yaml(stream, batch_size=100, ack_wait_s=3))
    Runtime.open(root)  # migrate before starting the clock
    asyncio.run(publish(stream, [reading(n) for n in range(total)]))
    store = f"sqlite:///{tmp_path}/store.db"
    command = [sys.executable, "-m", "tagloop", "--workspace", str(root), "sources", "run"]
    events = "SELECT count(*) FROM events"

    def wait_for(condition: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: count(store, events) >= 2_000, 90)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    at_kill = count(store, events)
    assert 2_000 <= at_kill < total, "the run must be killed mid-way"
    # Whatever was committed but not acknowledged comes back from the server; its event
    # ids (stream and sequence) make it a duplicate, not a second event.
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: count(store, events) >= total, 120)
        asyncio.run(until_acked(stream))
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
    # Every message once: each has its own time, and there are exactly as many events.
    assert count(store, events) == total
    assert count(store, "SELECT count(DISTINCT time) FROM events") == total


async def until_acked(stream: str) -> None:
    """Until the consumer has nothing pending nor un-acknowledged."""
    deadline = time.monotonic() + 60
    while (left := await pending(stream, "tagloop-vibration")) != (0, 0):
        assert time.monotonic() < deadline, f"still pending: {left}"
        await asyncio.sleep(0.1)
