"""Request bounds through the real app: body size (413), JSON depth and array length (400,
naming the limit and the place), and a deadline for slow bodies (408), on the endpoints
that read their own body (ingestion, Segment) and on those whose body FastAPI parses."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.api.server import BoundedHttpToolsProtocol
from tagloop.runtime import Runtime
from tests.conftest import LiveServer, make_key, write_workspace

SETTINGS = """
ingest:
  max_body_bytes: 200000
limits:
  bodies:
    max_body_bytes: 2048
    max_json_depth: 8
    max_array_length: 100
    read_timeout: 0.3s
"""
DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.fixture
def rt(tmp_path: Path, sqlite_url: str) -> Iterator[Runtime]:
    root = write_workspace(tmp_path / "ws", sqlite_url)
    project = root / "tagloop.yaml"
    project.write_text(project.read_text("utf-8") + textwrap.dedent(SETTINGS), encoding="utf-8")
    runtime = Runtime.open(root)
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin(rt: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(rt, 'admin')}"}


def event(who: str = "c1", **properties: Any) -> dict[str, Any]:
    return {"type": "order", "entity": {"type": "customer", "id": who}, "properties": properties}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def post_json(client: TestClient, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})


def test_oversized_bodies_are_413(client: TestClient, admin: dict[str, str]) -> None:
    big = orjson.dumps([event(f"c{i}", note="x" * 1000) for i in range(250)])
    response = post_json(client, "/v1/events", big, admin)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    # Endpoints with a parsed body: limits.bodies.max_body_bytes, declared or streamed.
    key = orjson.dumps({"name": "x" * 3000, "roles": ["viewer"]})
    response = post_json(client, "/v1/admin/keys", key, admin)
    assert response.status_code == 413
    assert "limits.bodies.max_body_bytes" in response.json()["message"]
    chunks = (key[i : i + 500] for i in range(0, len(key), 500))  # no Content-Length
    response = client.post(
        "/v1/admin/keys", content=chunks, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    # Within the limit, the same endpoint still gets its body.
    created = post_json(client, "/v1/admin/keys", b'{"name": "ok", "roles": ["viewer"]}', admin)
    assert created.status_code in (200, 201), created.text


@pytest.mark.parametrize(
    ("path", "depth"),
    # 10,000 levels would exceed the 2 KiB body limit of the admin endpoints: 1,000 do not.
    [("/v1/events", 10_000), ("/v1/batch", 10_000), ("/v1/admin/keys", 1_000)],
)
def test_deeply_nested_json_is_400_without_a_crash(
    client: TestClient, admin: dict[str, str], path: str, depth: int
) -> None:
    response = post_json(client, path, b"[" * depth + b"]" * depth, admin)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "json_too_deep"
    assert "limit of 8 levels (limits.bodies.max_json_depth)" in response.json()["message"]
    # The server is fine afterwards.
    assert post_json(client, "/v1/events", orjson.dumps([event()]), admin).status_code == 200


def test_depth_over_the_limit_names_the_place(client: TestClient, admin: dict[str, str]) -> None:
    ok = event(deep=nested(5))  # batch, event, properties, deep: 3 + 5 = 8 levels
    assert post_json(client, "/v1/events", orjson.dumps([ok]), admin).status_code == 200
    response = post_json(client, "/v1/events", orjson.dumps([event(deep=nested(6))]), admin)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "JSON nested deeper than the limit of 8 levels (limits.bodies.max_json_depth), "
        "at $[0].properties.deep.a.a.a.a.a"
    )


def test_long_arrays_are_400_but_a_batch_is_bounded_by_its_own_limit(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = post_json(
        client, "/v1/events", orjson.dumps([event(), event(skus=list(range(20_000)))]), admin
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "json_array_too_long"
    assert body["message"] == (
        "JSON array of 20000 items exceeds the limit of 100 (limits.bodies.max_array_length), "
        "at $[1].properties.skus"
    )
    # 150 events: longer than max_array_length, within ingest.max_batch_events.
    batch = orjson.dumps([event(f"c{i}") for i in range(150)])
    response = post_json(client, "/v1/events", batch, admin)
    assert response.status_code == 200 and response.json()["accepted"] == 150
    # Parsed bodies: no exemption for the top level.
    response = post_json(
        client, "/v1/admin/keys", orjson.dumps({"name": "k", "roles": ["viewer"] * 101}), admin
    )
    assert response.status_code == 400 and "at $.roles" in response.json()["message"]


def test_ndjson_lines_out_of_bounds_are_rejected_by_line(
    client: TestClient, admin: dict[str, str]
) -> None:
    lines = [orjson.dumps(event("c1")), DEEP, orjson.dumps(event("c2", deep=nested(9)))]
    response = client.post(
        "/v1/events?partial=true",
        content=b"\n".join(lines),
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    reasons = " | ".join(str(r) for r in body["rejected"])
    assert "limits.bodies.max_json_depth" in reasons and "at column" in reasons
    assert "$.properties.deep" in reasons


# --- slow clients ----------------------------------------------------------------------


async def stalled(app: FastAPI, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Send ``path`` a request whose body starts and then never continues."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    first = True
    never = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'[{"type": ', "more_body": True}
        await never.wait()  # the client stalls
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


@pytest.mark.parametrize("path", ["/v1/events", "/v1/admin/keys"])
def test_a_stalled_body_is_408(rt: Runtime, admin: dict[str, str], path: str) -> None:
    app = create_app(rt)
    headers = {**admin, "Content-Type": "application/json", "Content-Length": "1000"}
    started = time.monotonic()
    status, response_headers = asyncio.run(stalled(app, path, headers))
    elapsed = time.monotonic() - started
    assert status == 408
    assert response_headers["connection"] == "close"
    assert 0.25 < elapsed < 5  # read_timeout: 0.3s


def test_a_slow_client_on_a_real_socket_is_cut_off(rt: Runtime, admin: dict[str, str]) -> None:
    with LiveServer(rt) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = (
                "POST /v1/events HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: {admin['Authorization']}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            )
            sock.sendall(head.encode() + b'[{"type": "order"')
            started = time.monotonic()
            received = b""
            while chunk := sock.recv(65536):  # until the server closes the connection
                received += chunk
            elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"limits.bodies.read_timeout" in received
    assert elapsed < 5


# --- slow or oversized headers -----------------------------------------------------------


class QuickHeaders(BoundedHttpToolsProtocol):
    header_timeout = 0.3


@pytest.fixture
def bounded_server(rt: Runtime) -> Iterator[tuple[str, int]]:
    """The app on uvicorn with the protocol `tagloop serve` uses (a short header deadline)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(rt), host="127.0.0.1", port=0, log_level="warning", http=QuickHeaders
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    yield host, port
    server.should_exit = True
    thread.join(10)


def until_closed(sock: socket.socket) -> tuple[bytes, float]:
    started = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_idle_and_slow_header_connections_are_closed(bounded_server: tuple[str, int]) -> None:
    with socket.create_connection(bounded_server, timeout=10) as idle:
        received, elapsed = until_closed(idle)  # never sends a byte
    assert received == b"" and elapsed < 5
    with socket.create_connection(bounded_server, timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never ends its headers
        received, elapsed = until_closed(slow)
    assert received == b"" and elapsed < 5


def test_oversized_headers_are_400(bounded_server: tuple[str, int]) -> None:
    with socket.create_connection(bounded_server, timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n")
        received, _ = until_closed(sock)
    assert received.startswith(b"HTTP/1.1 400")


def test_keep_alive_requests_still_work(bounded_server: tuple[str, int]) -> None:
    with socket.create_connection(bounded_server, timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.4)  # longer than the header deadline, between requests
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
