"""`tagloop serve` for real: API process plus writer process, crashes included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tagloop.runtime import Runtime
from tests.conftest import make_key, write_workspace

pytestmark = pytest.mark.slow
TAGLOOP = str(Path(sys.executable).with_name("tagloop"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workspace / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [TAGLOOP, "-w", str(workspace), "serve", "--port", str(self.port)],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, (workspace / "serve.log").read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)

    def children(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry))
        return found

    def writer_pid(self) -> int:
        for pid in self.children():
            if (
                b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
                and b"tracker_fd" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                return pid
        raise AssertionError("no writer process")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.log.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    yield write_workspace(tmp_path / "ws", f"sqlite:///{tmp_path / 'ws' / 'tagloop.db'}")


def key(workspace: Path) -> dict[str, str]:
    """An admin key, made in this process as `tagloop keys create` makes it (that command
    has its tests in test_cli.py; a process of its own here took ~2 s of start-up)."""
    rt = Runtime.open(workspace)
    try:
        return {"Authorization": f"Bearer {make_key(rt, 'admin')}"}
    finally:
        rt.close()


def test_acknowledged_events_survive_kill_9(workspace: Path) -> None:
    headers = key(workspace)
    served = Served(workspace)
    try:
        events = [
            {
                "id": f"e{i}",
                "type": "identify",
                "entity": {"type": "customer", "id": f"c{i % 7}"},
                "attributes": {"spend": 100 * i},
            }
            for i in range(40)
        ]
        response = httpx.post(f"{served.url}/v1/events", json=events, headers=headers)
        assert response.status_code == 200 and response.json()["accepted"] == 40
        writer = served.writer_pid()
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(10)
        wait_for(lambda: not alive(writer))  # the writer follows its server down
    finally:
        served.stop()
    again = Served(workspace)
    try:
        profile = httpx.get(f"{again.url}/v1/entities/customer/c6", headers=headers).json()
        assert profile["event_count"] == 5  # e6, e13, e20, e27 and e34
        assert profile["attributes"] == {"spend": 3400}
        assert {t["tag"] for t in profile["tags"]} == {"VIP", "frequent"}
        replay = httpx.post(f"{again.url}/v1/events", json=events, headers=headers)
        assert replay.json() == {**replay.json(), "accepted": 0, "duplicates": 40}
    finally:
        again.stop()


def test_server_stops_when_its_writer_dies(workspace: Path) -> None:
    headers = key(workspace)
    served = Served(workspace)
    try:
        os.kill(served.writer_pid(), signal.SIGKILL)
        served.process.wait(30)  # an API that cannot commit must not keep serving
        assert served.process.returncode != 0
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                f"{served.url}/v1/events",
                headers=headers,
                timeout=2,
                json={"type": "order", "entity": {"type": "customer", "id": "x"}},
            )
    finally:
        served.stop()


def test_sigterm_leaves_no_process_behind(workspace: Path) -> None:
    served = Served(workspace)
    children = served.children()
    assert children
    served.stop()
    wait_for(lambda: not any(alive(pid) for pid in children))


ORDER_FILES = """
    name: order_files
    kind: file
    path: drop/orders-*.csv
    every: 1s
    mapping:
      type: order
      entity_type: customer
      entity_id: customer
      time: at
      fields:
        amount: {from: amount, type: number}
      properties: {amount: amount}
"""


def test_serve_runs_the_sources_beside_the_api(tmp_path: Path) -> None:
    root = write_workspace(
        tmp_path / "ws",
        f"sqlite:///{tmp_path / 'ws' / 'tagloop.db'}",
        extra={"sources/orders.yaml": ORDER_FILES},
    )
    headers = key(root)
    served = Served(root)
    try:
        (root / "drop").mkdir()
        (root / "drop" / "orders-1.csv").write_text(
            'customer,at,amount\nc1,2024-03-05 10:00:00,12.5\nc2,2024-03-05 11:00:00,"1,000"\n',
            encoding="utf-8",
        )
        deadline = time.monotonic() + 60
        while True:  # the sources process picks the file up on its schedule
            body = httpx.get(f"{served.url}/v1/sources", headers=headers, timeout=5).json()
            (status,) = [s for s in body if s["name"] == "order_files"]
            if status["events_written"] == 2:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        profile = httpx.get(f"{served.url}/v1/entities/customer/c2", headers=headers, timeout=5)
        assert profile.status_code == 200 and profile.json()["event_count"] == 1
        assert status["state"] in ("idle", "running") and status["last_error"] is None
        children = served.children()  # the writer and the sources process among them
    finally:
        served.stop()
    # However the server ends, its sources process ends with it (it was left running).
    wait_for(lambda: not any(alive(pid) for pid in children), 10)


def test_a_saved_rule_is_in_force_in_the_writer_process(workspace: Path) -> None:
    """Saving a rule under `tagloop serve`: the writer process (which evaluates the live
    stream) takes the new version, and the API process answers with it."""
    headers = key(workspace)
    served = Served(workspace)
    try:
        post = lambda events: httpx.post(f"{served.url}/v1/events", json=events, headers=headers)  # noqa: E731
        profile = lambda i, spend: {  # noqa: E731
            "id": f"p{i}",
            "type": "identify",
            "entity": {"type": "customer", "id": f"c{i}"},
            "attributes": {"spend": spend},
        }
        assert post([profile(1, 500)]).status_code == 200
        saved = httpx.put(
            f"{served.url}/v1/tags/VIP/rule",
            json={"rule": "spend >= 100", "base_version": 1},
            headers=headers,
        )
        assert saved.status_code == 200, saved.text
        assert saved.json() == {"tag": "VIP", "version": 2, "changed": True}
        # The API process answers with the new version (it took it in after the writer).
        tag = httpx.get(f"{served.url}/v1/tags/VIP", headers=headers).json()
        assert (tag["version"], tag["rule"]) == (2, "spend >= 100")
        # Recomputed in batch before the answer: c1 (500) holds it now.
        tags = httpx.get(f"{served.url}/v1/entities/customer/c1", headers=headers).json()["tags"]
        assert [t["tag"] for t in tags if t["tag"] == "VIP"] == ["VIP"]
        # And the live stream, in the writer process, evaluates version 2.
        assert post([profile(2, 150)]).status_code == 200
        tags = httpx.get(f"{served.url}/v1/entities/customer/c2", headers=headers).json()["tags"]
        assert {t["tag"]: t["version"] for t in tags}.get("VIP") == 2
    finally:
        served.stop()
    assert "spend >= 100" in (workspace / "tags" / "tags.yaml").read_text("utf-8")
