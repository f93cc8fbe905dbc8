"""The Segment tracking API, including the official segment-analytics-python client."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from segment.analytics import Client
from segment.analytics.request import APIError

from tagloop.runtime import Runtime
from tests.conftest import LiveServer, make_key


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_official_client_end_to_end(
    rt: Runtime, live_server: LiveServer, client: TestClient, admin: dict[str, str]
) -> None:
    write_key = make_key(rt, "ingest")
    errors: list[Any] = []
    analytics = Client(
        write_key,
        host=live_server.url,
        sync_mode=True,
        max_retries=0,
        on_error=lambda error, batch: errors.append(error),
    )
    when = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    analytics.identify(
        "u-42", {"city": "上海", "spend": 3000}, timestamp=when, message_id="m-identify"
    )
    analytics.track(
        "u-42",
        "order",
        {"amount": 99.5, "quantity": 2},
        timestamp=when,
        context={"ip": "10.0.0.1"},
        message_id="m-track",
    )
    analytics.page("u-42", "shop", "home", {"path": "/"}, message_id="m-page")
    analytics.group("u-42", "acme", {"plan": "enterprise"}, message_id="m-group")
    analytics.alias("u-42-old", "u-42", message_id="m-alias")
    analytics.track(anonymous_id="anon-7", event="order", properties={"amount": 1})
    analytics.flush()
    assert errors == []

    profile = client.get("/v1/entities/customer/u-42", headers=admin).json()
    assert profile["attributes"] == {"city": "上海", "spend": 3000}
    assert {t["tag"] for t in profile["tags"]} >= {"VIP", "上海客户"}
    events = {e["id"]: e for e in profile["events"]}
    assert set(events) == {"m-identify", "m-track", "m-page", "m-alias", "m-group"}
    track = events["m-track"]
    assert track["type"] == "order" and track["properties"] == {"amount": 99.5, "quantity": 2}
    assert track["time"] == "2024-03-05T08:00:00Z"
    assert track["context"]["ip"] == "10.0.0.1"
    assert track["context"]["library"]["name"] == "analytics-python"
    assert events["m-page"]["properties"] == {"path": "/", "name": "home", "category": "shop"}
    assert events["m-alias"]["properties"] == {"previous_id": "u-42-old"}
    account = client.get("/v1/entities/account/acme", headers=admin).json()
    assert account["attributes"] == {"plan": "enterprise"}
    assert client.get("/v1/entities/customer/anon-7", headers=admin).status_code == 200


def test_official_client_sees_rejections(rt: Runtime, live_server: LiveServer) -> None:
    analytics = Client("tl_wrong", host=live_server.url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as wrong_key:
        analytics.track("u1", "order", {})
    assert wrong_key.value.status == 401 and wrong_key.value.code == "unauthenticated"
    analytics = Client(make_key(rt, "ingest"), host=live_server.url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as bad_event:
        analytics.track("u1", "order", {"amount": "not a number"})
    assert bad_event.value.status == 400 and bad_event.value.code == "invalid_events"


def test_write_key_in_body_and_batch_context(
    client: TestClient, rt: Runtime, admin: dict[str, str]
) -> None:
    key = make_key(rt, "ingest")
    body = {
        "writeKey": key,
        "context": {"locale": "zh-CN", "app": {"name": "shop"}},
        "sentAt": "2024-01-01T00:00:10Z",
        "batch": [
            {
                "type": "track",
                "event": "order",
                "userId": "b1",
                "messageId": "x1",
                "originalTimestamp": "2024-01-01T00:00:00Z",
                "context": {"locale": "en"},
            },
            {"type": "identify", "userId": "b1", "messageId": "x2", "traits": {"city": "上海"}},
        ],
    }
    response = client.post("/v1/batch", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True and response.json()["accepted"] == 2
    events = {
        e["id"]: e for e in client.get("/v1/entities/customer/b1", headers=admin).json()["events"]
    }
    # Item context wins over batch context; the rest of the batch context is merged in.
    assert events["x1"]["context"] == {"locale": "en", "app": {"name": "shop"}}
    assert events["x2"]["context"] == {"locale": "zh-CN", "app": {"name": "shop"}}


def test_clock_skew_correction(client: TestClient, rt: Runtime, admin: dict[str, str]) -> None:
    key = make_key(rt, "ingest")
    # The device clock is 10 years off, but it recorded the event 60 s before sending it.
    message = {
        "userId": "skew",
        "event": "order",
        "messageId": "s1",
        "originalTimestamp": "2014-01-01T00:00:00Z",
        "sentAt": "2014-01-01T00:01:00Z",
    }
    before = datetime.now(UTC).timestamp()
    assert client.post("/v1/track", json=message, headers=basic(key)).status_code == 200
    (event,) = client.get("/v1/entities/customer/skew", headers=admin).json()["events"]
    recorded = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
    assert before - 61 <= recorded <= before - 59 + 5


def test_rejections_name_index_and_reason(client: TestClient, rt: Runtime) -> None:
    headers = basic(make_key(rt, "ingest"))
    body = {
        "batch": [
            {"type": "track", "userId": "ok", "event": "order"},
            {"type": "track", "userId": "x"},
            {"type": "identify", "traits": {}},
            {"type": "teleport", "userId": "x"},
            {"type": "identify", "userId": "x", "traits": "nope"},
            {"type": "track", "userId": "x", "event": "order", "timestamp": "soon"},
            {"userId": "x", "event": "order"},
            {"type": "track", "userId": "x", "event": "order", "properties": {"amount": "12"}},
        ]
    }
    response = client.post("/v1/batch", json=body, headers=headers)
    assert response.status_code == 400
    got = {(r["index"], r["field"]): r["reason"] for r in response.json()["rejected"]}
    assert got == {
        (1, "event"): "is required",
        (2, "userId"): "userId or anonymousId is required",
        (3, "type"): "must be one of track, identify, page, screen, group, alias (got 'teleport')",
        (4, "traits"): "must be an object",
        (5, "timestamp"): "is not an ISO 8601 time (got 'soon')",
        (6, "type"): "is required in a batch message",
        (7, "properties.amount"): "expected a number, got string '12'",
    }
    assert client.post("/v1/batch?partial=true", json=body, headers=headers).json()["accepted"] == 1


def test_segment_limits(client: TestClient, rt: Runtime) -> None:
    headers = basic(make_key(rt, "ingest"))
    big = {"userId": "x", "event": "order", "properties": {"blob": "x" * 33_000}}
    assert client.post("/v1/track", json=big, headers=headers).status_code == 413
    in_batch = {"batch": [{"type": "track", **big}]}
    response = client.post("/v1/batch", json=in_batch, headers=headers)
    assert response.status_code == 400
    assert "32 KB" in response.json()["rejected"][0]["reason"]
    many = {"batch": [{"type": "track", "userId": "x", "event": "e"}] * 2501}
    assert client.post("/v1/batch", json=many, headers=headers).status_code == 413
    huge = {
        "batch": [{"type": "track", "userId": "x", "event": "e", "properties": {"b": "x" * 30_000}}]
        * 18
    }
    assert client.post("/v1/batch", json=huge, headers=headers).status_code == 413


def test_segment_auth(client: TestClient, rt: Runtime) -> None:
    message = {"userId": "x", "event": "order"}
    assert client.post("/v1/track", json=message).status_code == 401
    assert client.post("/v1/track", json={**message, "writeKey": "tl_bad"}).status_code == 401
    viewer = make_key(rt, "viewer")
    assert client.post("/v1/track", json=message, headers=basic(viewer)).status_code == 403
    bad_json = client.post("/v1/track", content=b"{", headers=basic(make_key(rt, "ingest")))
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "invalid_json"
