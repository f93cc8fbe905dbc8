"""A flow worker killed with SIGKILL in the middle of a run: the next worker takes the run
over when its lease runs out and resumes it where its trace ends. The step that had
finished is not done again; the one in flight is done again under the same idempotency
key, so a receiver that honours the key does it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tagloop.ingest.event import Batch, Event
from tagloop.runtime import Runtime
from tagloop.store import flows as flow_store
from tagloop.timeutil import now_us
from tests.flows.conftest import Receiver, flow_workspace

WORKER = (
    "import asyncio, sys\n"
    "from tagloop.runtime import Runtime\n"
    "from tagloop.flows.worker import FlowWorker\n"
    "asyncio.run(FlowWorker(Runtime.open(sys.argv[1])).run_forever())\n"
)


def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_killed_worker_s_run_resumes_where_its_trace_ends(
    tmp_path: Path, receiver: Receiver
) -> None:
    steps = (
        f"    - webhook: {{url: '{receiver.url}/a'}}\n"
        f"    - webhook: {{url: '{receiver.url}/b'}}\n"
        "    - set_priority(HIGH)\n"
    )
    text = f"flow:\n  name: crashy\n  trigger: order_created\n  steps:\n{steps}"
    root = flow_workspace(tmp_path / "ws", f"sqlite:///{tmp_path}/store.db", {"c.yaml": text})
    with (root / "tagloop.yaml").open("a", encoding="utf-8") as project:
        project.write("engine: {flow_lease: 1s}\n")
    rt = Runtime.open(root)
    now = now_us()
    event = Event(
        "o-1", "order_created", "order", "O-1", now, properties={"amount": 5}, received_at=now
    )
    rt.ingestor.ingest(Batch([(0, event)]))
    released = threading.Event()
    receiver.hold["/b"] = released
    command = [sys.executable, "-c", WORKER, str(root)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: any(r.path == "/b" for r in receiver.requests), 30, "the call to /b")
        os.kill(first.pid, signal.SIGKILL)  # while /b is in flight
        first.wait(10)
    finally:
        released.set()
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def status() -> str:
            with rt.db.read() as conn:
                (run,) = flow_store.runs(conn, flow="crashy")
                return str(run.status)

        until(lambda: status() == "succeeded", 30, "the resumed run to succeed")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    paths = [r.path for r in receiver.requests]
    assert paths == ["/a", "/b", "/b"]  # /a was recorded done; /b was in flight
    first_b, second_b = (r for r in receiver.requests if r.path == "/b")
    assert first_b.headers["idempotency-key"] == second_b.headers["idempotency-key"]
    with rt.db.read() as conn:
        (run,) = flow_store.runs(conn, flow="crashy")
        trace = [(t.step, t.status) for t in flow_store.trace(conn, run.id)]
    assert trace == [("steps[0]", "ok"), ("steps[1]", "ok"), ("steps[2]", "ok")]
    rt.close()
