"""``GET /v1/audit`` and ``/v1/audit.jsonl`` through the real app, and the audit record of
a tag import made over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.audit import Actor, record
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.timeutil import now_us, parse_time
from tests.conftest import LiveServer, write_workspace

TAGS = """
    tags:
      - name: VIP
        entity: customer
        rule: spend >= 1000
      - name: grade
        entity: customer
        kind: imported
        value_type: string
"""
T0 = parse_time("2025-01-01T00:00Z")
HOUR = 3_600_000_000


@pytest.fixture
def rt(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    runtime = Runtime.open(write_workspace(tmp_path / "ws", database_url, tags=TAGS))
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as test_client:
        yield test_client


def key(rt: Runtime, name: str, *roles: str) -> dict[str, str]:
    with rt.db.write() as conn:
        secret = key_store.create(conn, name, list(roles), now_us()).secret
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def auditor(rt: Runtime) -> dict[str, str]:
    return key(rt, "auditor", "admin")


def seed(rt: Runtime) -> None:
    """Six records an hour apart, after the two tag versions of the workspace open."""
    people = [Actor("alice", "user", "10.0.0.1"), Actor("bob", "key", "10.0.0.2")]
    with rt.db.write() as conn:
        for i in range(6):
            record(
                rt.db,
                conn,
                actor=people[i % 2],
                action="key.create" if i < 4 else "key.revoke",
                target_type="key",
                target_id=f"k{i % 3}",
                after={"i": i},
                at=T0 + i * HOUR,
            )


def get(client: TestClient, headers: dict[str, str], **params: Any) -> Any:
    response = client.get("/v1/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_needs_an_admin_key(rt: Runtime, client: TestClient) -> None:
    response = client.get("/v1/audit")
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    viewer = key(rt, "dashboard", "viewer")
    for path in ("/v1/audit", "/v1/audit.jsonl"):
        response = client.get(path, headers=viewer)
        assert response.status_code == 403, path
        assert "audit:read" in response.json()["message"]


def test_filters(rt: Runtime, client: TestClient, auditor: dict[str, str]) -> None:
    seed(rt)
    body = get(client, auditor)
    assert [r["action"] for r in body["items"]][:2] == ["tag.version", "tag.version"]
    assert len(body["items"]) == 8 and body["next"] is None
    first = body["items"][2]
    assert first["time"] == "2025-01-01T00:00:00.000000Z" and first["at"] == T0
    assert (first["actor"], first["actor_kind"], first["origin"]) == ("alice", "user", "10.0.0.1")
    assert first["after"] == {"i": 0} and first["prev_hash"] == body["items"][1]["hash"]

    def ids(**params: Any) -> list[int]:
        return [r["after"]["i"] for r in get(client, auditor, **params)["items"]]

    assert ids(actor="bob") == [1, 3, 5]
    assert ids(action="key.revoke") == [4, 5]
    assert ids(action="key.create", actor="alice") == [0, 2]
    assert ids(target_type="key", target_id="k1") == [1, 4]
    assert ids(since="2025-01-01T02:00Z", until="2025-01-01T04:00Z") == [2, 3]
    # without an offset: the workspace time zone (Asia/Shanghai, UTC+8)
    assert ids(since="2025-01-01T13:00", target_type="key") == [5]
    assert get(client, auditor, actor="nobody")["items"] == []


def test_paging(rt: Runtime, client: TestClient, auditor: dict[str, str]) -> None:
    seed(rt)
    seen: list[int] = []
    cursor: int | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, "target_type": "key"}
        if cursor is not None:
            params["after"] = cursor
        body = get(client, auditor, **params)
        pages += 1
        seen += [r["after"]["i"] for r in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
        assert cursor == body["items"][-1]["seq"]
    assert seen == [0, 1, 2, 3, 4, 5] and pages == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "since: 'yesterday' is not a date or time"),
        ({"until": "2025-13-01"}, "until: '2025-13-01' is not a date or time"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": -1}, "after"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_parameters_are_400(
    client: TestClient, auditor: dict[str, str], params: dict[str, Any], message: str
) -> None:
    response = client.get("/v1/audit", params=params, headers=auditor)
    assert response.status_code == 400
    assert message in response.text


def test_jsonl_export(rt: Runtime, client: TestClient, auditor: dict[str, str]) -> None:
    seed(rt)
    for url in ("/v1/audit.jsonl?actor=bob", "/v1/audit?format=jsonl&actor=bob&limit=1"):
        response = client.get(url, headers=auditor)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) for line in response.text.splitlines()]
        assert [r["after"]["i"] for r in lines] == [1, 3, 5], url
    response = client.get("/v1/audit.jsonl?since=nope", headers=auditor)
    assert response.status_code == 400


def test_openapi_documents_the_records(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/audit" in spec["paths"] and "/v1/audit.jsonl" in spec["paths"]
    fields = spec["components"]["schemas"]["AuditRecordOut"]["properties"]
    assert {"seq", "actor", "origin", "before", "after", "prev_hash", "hash"} <= set(fields)


def test_tag_import_names_the_key_and_the_client(
    rt: Runtime, client: TestClient, auditor: dict[str, str]
) -> None:
    admin = key(rt, "erp-sync", "admin")
    body = [
        {"type": "identify", "entity": {"type": "customer", "id": who}, "attributes": {"x": 1}}
        for who in ("c1", "c2")
    ]
    assert client.post("/v1/events", json=body, headers=admin).status_code == 200
    response = client.post(
        "/v1/tags/grade/import",
        content="id,value\nc1,A\nc2,B\n",
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    (entry,) = get(client, auditor, action="tag.import")["items"]
    assert (entry["actor"], entry["actor_kind"], entry["origin"]) == (
        "erp-sync",
        "key",
        "testclient",  # TestClient's client address
    )
    assert (entry["target_type"], entry["target_id"]) == ("tag", "grade")
    assert entry["after"]["values"] == {"c1": "A", "c2": "B"}
    assert entry["after"]["upload"] == "body"


def test_client_address_over_a_real_socket(rt: Runtime, auditor: dict[str, str]) -> None:
    admin = key(rt, "crm", "admin")
    with LiveServer(rt) as server:
        events = [{"type": "identify", "entity": {"type": "customer", "id": "c1"}}]
        assert httpx.post(f"{server.url}/v1/events", json=events, headers=admin).is_success
        response = httpx.post(
            f"{server.url}/v1/tags/grade/import",
            json=[{"id": "c1", "value": "A"}],
            headers=admin,
        )
        assert response.is_success, response.text
        audit_page = httpx.get(
            f"{server.url}/v1/audit", params={"action": "tag.import"}, headers=auditor
        ).json()
    (entry,) = audit_page["items"]
    assert (entry["actor"], entry["origin"]) == ("crm", "127.0.0.1")
