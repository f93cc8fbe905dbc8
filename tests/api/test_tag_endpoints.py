"""Uploading imported tag values and explaining tags over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.runtime import Runtime
from tests.conftest import make_key, write_workspace

TAGS = """
    tags:
      - name: VIP
        entity: customer
        rule: spend >= 1000
      - name: grade
        entity: customer
        kind: imported
        value_type: string
      - name: graded_vip
        entity: customer
        rule: has_tag('VIP') and tag('grade') in ['A', 'B']
"""


@pytest.fixture
def rt(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    runtime = Runtime.open(write_workspace(tmp_path / "ws", database_url, tags=TAGS))
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as test_client:
        yield test_client


def customers(client: TestClient, admin: dict[str, str]) -> None:
    body = [
        {
            "type": "identify",
            "entity": {"type": "customer", "id": who},
            "attributes": {"spend": spend},
        }
        for who, spend in (("c1", 5000), ("c2", 10))
    ]
    assert client.post("/v1/events", json=body, headers=admin).status_code == 200


def test_upload_csv_json_and_ndjson(client: TestClient, admin: dict[str, str]) -> None:
    customers(client, admin)
    response = client.post(
        "/v1/tags/grade/import",
        content="id,value\nc1,A\nc2,C\nc3,A\n",
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["assigned"], body["rejected"], body["propagated"]) == (2, 1, 1)
    assert body["samples"] == ["body:4: no customer with id 'c3'"]
    profile = client.get("/v1/entities/customer/c1", headers=admin).json()
    assert {t["tag"]: t["value"] for t in profile["tags"]} == {
        "VIP": True,
        "grade": "A",
        "graded_vip": True,
    }
    response = client.post(
        "/v1/tags/grade/import?mode=merge&valid_for=7d",
        json=[{"id": "c2", "value": "B"}],
        headers=admin,
    )
    assert response.json()["changed"] == 1 and response.json()["expires"] is not None
    response = client.post(
        "/v1/tags/grade/import?mode=merge",
        content='{"id": "c2"}\n[1]\n',
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert response.json()["samples"] == [
        "body:1: value: missing (the tag's values are of type string)",
        "body:2: each line must be a JSON object",
    ]


def test_catalogue_describes_every_kind(client: TestClient, admin: dict[str, str]) -> None:
    items = {t["name"]: t for t in client.get("/v1/tags", headers=admin).json()["items"]}
    assert items["grade"]["kind"] == "imported" and items["grade"]["rule"] is None
    assert items["grade"]["value_type"] == "string" and items["VIP"]["value_type"] == "boolean"
    assert client.get("/v1/tags/grade", headers=admin).json()["versions"][0]["version"] == 1


def test_upload_errors(client: TestClient, rt: Runtime, admin: dict[str, str]) -> None:
    csv = {**admin, "Content-Type": "text/csv"}
    assert client.post("/v1/tags/nope/import", content="id\n", headers=csv).status_code == 404
    response = client.post("/v1/tags/VIP/import", content="id\n", headers=csv)
    assert response.status_code == 400 and "kind: imported" in response.json()["message"]
    response = client.post(
        "/v1/tags/grade/import", content="id\n", headers={**admin, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    response = client.post("/v1/tags/grade/import?valid_for=soon", content="id\n", headers=csv)
    assert response.status_code == 400 and "not a duration" in response.json()["message"]
    response = client.post(
        "/v1/tags/grade/import", content="[", headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "invalid JSON" in response.json()["message"]
    viewer = {"Authorization": f"Bearer {make_key(rt, 'viewer')}", "Content-Type": "text/csv"}
    assert client.post("/v1/tags/grade/import", content="id\n", headers=viewer).status_code == 403


def test_explain(client: TestClient, rt: Runtime, admin: dict[str, str]) -> None:
    customers(client, admin)
    url = "/v1/entities/customer/c1/tags/VIP/explain"
    body = client.get(url, headers=admin).json()
    assert body["assignment"]["evidence"]["values"] == {"spend": 5000}
    assert body["now"] == {
        "at": body["now"]["at"],
        "held": True,
        "value": True,
        "values": {"spend": 5000},
    }
    body = client.get("/v1/entities/customer/c2/tags/VIP/explain", headers=admin).json()
    assert body["assignment"] is None and body["now"]["held"] is False
    assert client.get("/v1/entities/customer/zz/tags/VIP/explain", headers=admin).status_code == 404
    assert client.get("/v1/entities/device/c1/tags/VIP/explain", headers=admin).status_code == 404
    assert client.get(url).status_code == 401
