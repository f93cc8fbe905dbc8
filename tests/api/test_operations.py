"""Health, readiness, metrics, logs, OpenAPI and error shapes."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tagloop import logs
from tagloop.api.app import create_app
from tagloop.runtime import Runtime
from tagloop.store.migrate import head_revision


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["schema"] == head_revision()


def test_metrics_count_what_happened(client: TestClient, admin: dict[str, str]) -> None:
    accepted = sample("tagloop_events_accepted_total", source="api")
    rejected = sample("tagloop_events_rejected_total", source="api")
    duplicate = sample("tagloop_events_duplicate_total", source="api")
    latency = sample("tagloop_ingest_seconds_count", source="api")
    body = [
        {"id": "m1", "type": "order", "entity": {"type": "customer", "id": "m"}},
        {"id": "m1", "type": "order", "entity": {"type": "customer", "id": "m"}},
        {"type": "order", "entity": {"type": "nope", "id": "m"}},
    ]
    assert client.post("/v1/events?partial=true", json=body, headers=admin).status_code == 200
    assert sample("tagloop_events_accepted_total", source="api") == accepted + 1
    assert sample("tagloop_events_duplicate_total", source="api") == duplicate + 1
    assert sample("tagloop_events_rejected_total", source="api") == rejected + 1
    assert sample("tagloop_ingest_seconds_count", source="api") == latency + 1
    text = client.get("/metrics", headers=admin).text
    assert "tagloop_events_accepted_total" in text and "tagloop_ingest_seconds_bucket" in text
    assert client.get("/metrics").status_code == 401


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/events",
        "/v1/track",
        "/v1/identify",
        "/v1/batch",
        "/v1/page",
        "/v1/group",
        "/v1/alias",
        "/v1/entities/{entity_type}/{entity_id}",
        "/v1/entities/{entity_type}",
        "/v1/tags",
        "/v1/tags/{name}",
    ):
        assert path in paths, path
    events = paths["/v1/events"]["post"]
    assert set(events["requestBody"]["content"]) >= {
        "application/json",
        "application/x-ndjson",
        "application/cloudevents+json",
    }
    assert {"400", "401", "403", "413", "415"} <= set(events["responses"])
    assert "CanonicalEvent" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_unexpected_errors_hide_the_stack(rt: Runtime) -> None:
    app = create_app(rt)

    def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-Id": "req-1"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and "req-1" in body["message"]
    assert "secret" not in response.text and "Traceback" not in response.text


def test_database_down_is_503(rt: Runtime, admin: dict[str, str]) -> None:
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        rt.db.engine = sa.create_engine("postgresql+psycopg://x@127.0.0.1:1/x")
        response = client.get("/v1/tags", headers=admin)
        # The key lookup is the first thing that needs the database: 503, not 401.
        assert response.status_code == 503
        assert response.json()["code"] == "storage_unavailable"
        assert client.get("/readyz").status_code == 503


def test_unknown_route_and_method(client: TestClient) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = client.get("/v1/events")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


def test_json_logs_one_object_per_line(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("json")
    try:
        client.get("/healthz", headers={"X-Request-Id": "abc"})
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        record = json.loads(lines[-1])
        assert record["event"] == "request" and record["path"] == "/healthz"
        assert record["status"] == 200 and record["request_id"] == "abc"
        assert record["level"] == "info" and record["timestamp"].endswith("Z")
    finally:
        logs.configure("console")
