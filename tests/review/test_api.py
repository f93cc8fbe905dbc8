"""/v1/reviews through the real HTTP API: everyone reading sees the queue, only reviewers
(and admins) decide, PII stays masked, every decision is audited, bad input is precise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tagloop.runtime import Runtime
from tests.review.conftest import customer, send

Headers = Callable[..., dict[str, str]]


def queue(api: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = api.get("/v1/reviews", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_viewers_see_the_queue_reviewers_decide(
    rrt: Runtime, api: TestClient, headers: Headers
) -> None:
    send(rrt, customer("c1", spend=2000, name="王芳"), customer("c2", spend=3000))
    viewer, reviewer = headers("viewer"), headers("reviewer")
    body = queue(api, viewer, tag="big")
    assert body["total"] == 2 and body["next"] is None
    first, second = body["items"]
    assert first["entity"] == {"type": "customer", "id": "c1"}
    assert first["evidence"]["values"] == {"spend": 2000} and first["policy"] == "all"

    denied = api.post(f"/v1/reviews/{first['id']}/approve", headers=viewer)
    assert denied.status_code == 403
    assert denied.json()["message"] == "this key lacks the permission 'reviews:write'"
    assert api.get("/v1/reviews").status_code == 401

    approved = api.post(f"/v1/reviews/{first['id']}/approve", headers=reviewer)
    assert approved.status_code == 200, approved.text
    assert approved.json()["decided"] == 1
    again = api.post(f"/v1/reviews/{first['id']}/approve", headers=reviewer)
    assert again.status_code == 409 and "is approved by test, not pending" in again.text

    rejected = api.post(
        f"/v1/reviews/{second['id']}/reject", json={"reason": "duplicate"}, headers=headers("admin")
    )
    assert rejected.status_code == 200, rejected.text
    profile = api.get("/v1/entities/customer/c2", headers=viewer).json()
    big = next(t for t in profile["tags"] if t["tag"] == "big")
    assert big["status"] == "rejected"

    decided = queue(api, viewer, status="rejected")["items"]
    assert [(i["id"], i["decision"]["reason"], i["decision"]["by"]) for i in decided] == [
        (second["id"], "duplicate", "test")
    ]
    assert queue(api, viewer, status="all")["total"] == 2
    audit = api.get("/v1/audit", params={"target_type": "review"}, headers=headers("admin"))
    assert [r["action"] for r in audit.json()["items"]] == ["review.approve", "review.reject"]


def test_bad_input_is_refused_precisely(rrt: Runtime, api: TestClient, headers: Headers) -> None:
    send(rrt, customer("c1", spend=2000))
    reviewer = headers("reviewer")
    item = queue(api, reviewer)["items"][0]["id"]
    cases = [
        (f"/v1/reviews/{item}/reject", {}, 400, "a rejection needs a reason: one of wrong_entity"),
        (f"/v1/reviews/{item}/reject", {"reason": "nope"}, 400, "unknown reason 'nope'"),
        (f"/v1/reviews/{item}/approve", {"reason": "other"}, 400, "with a rejection only"),
        (f"/v1/reviews/{item}/override", {}, 400, "needs the 'value'"),
        ("/v1/reviews/999/approve", None, 404, "no review item 999"),
        ("/v1/reviews/0/approve", None, 400, "invalid request"),
        ("/v1/reviews/decisions", {"action": "approve"}, 400, "give 'ids' or 'filter'"),
        (
            "/v1/reviews/decisions",
            {"action": "approve", "filter": {"tag": "bgi"}},
            404,
            "unknown tag 'bgi' (did you mean 'big'?)",
        ),
        (
            "/v1/reviews/decisions",
            {"action": "approve", "filter": {"older_than": "ages"}},
            400,
            "older_than:",
        ),
        (
            "/v1/reviews/pins",
            {"entity_type": "customer", "entity_id": "c1", "tag": "big", "expires": "-1d"},
            400,
            "expires:",
        ),
        (
            "/v1/reviews/pins",
            {"entity_type": "customer", "entity_id": "zz", "tag": "big"},
            404,
            "no customer with id 'zz'",
        ),
    ]
    for path, body, status, message in cases:
        response = api.post(path, json=body, headers=reviewer)
        assert response.status_code == status, (path, response.text)
        assert message in response.text, (path, response.text)
        assert "Traceback" not in response.text
    assert api.get("/v1/reviews", params={"status": "maybe"}, headers=reviewer).status_code == 400
    missing = api.get("/v1/reviews", params={"tag": "nope"}, headers=reviewer)
    assert missing.status_code == 404


def test_bulk_pins_and_error_rates(rrt: Runtime, api: TestClient, headers: Headers) -> None:
    send(rrt, *(customer(f"c{i}", spend=1000 + i) for i in range(5)))
    reviewer, viewer = headers("reviewer"), headers("viewer")
    ids = [i["id"] for i in queue(api, viewer, tag="big")["items"]]
    bulk = api.post(
        "/v1/reviews/decisions",
        json={"action": "reject", "reason": "other", "ids": ids[:1]},
        headers=reviewer,
    )
    assert bulk.json()["decided"] == 1
    bulk = api.post(
        "/v1/reviews/decisions",
        json={"action": "approve", "filter": {"tag": "big"}},
        headers=reviewer,
    )
    assert bulk.status_code == 200 and bulk.json()["decided"] == 4
    rates = api.get("/v1/reviews/error-rates", params={"tag": "big"}, headers=viewer).json()
    (figures,) = rates["items"]
    assert (figures["reviewed"], figures["rejected"], figures["error_rate"]) == (5, 1, 0.2)
    assert figures["weeks"][0]["week"] == "2026-W01"
    assert api.get("/v1/reviews/reasons", headers=viewer).json()["reasons"][0] == "wrong_entity"

    made = api.post(
        "/v1/reviews/pins",
        json={"entity_type": "customer", "entity_id": "c0", "tag": "big", "mode": "exclude"},
        headers=reviewer,
    )
    assert made.status_code == 201, made.text
    pin = made.json()
    assert api.post("/v1/reviews/pins", json={}, headers=viewer).status_code == 403
    listed = api.get("/v1/reviews/pins", params={"tag": "big"}, headers=viewer).json()
    assert [p["id"] for p in listed["items"]] == [pin["id"]]
    assert api.delete(f"/v1/reviews/pins/{pin['id']}", headers=viewer).status_code == 403
    lifted = api.delete(f"/v1/reviews/pins/{pin['id']}", headers=reviewer)
    assert lifted.status_code == 200 and lifted.json()["lifted_by"] == "test"
    assert api.delete(f"/v1/reviews/pins/{pin['id']}", headers=reviewer).status_code == 404


def test_pii_is_masked_in_the_queue(rrt: Runtime, api: TestClient, headers: Headers) -> None:
    send(rrt, customer("c1", spend=2000, name="王芳", city="上海"))
    item = queue(api, headers("reviewer"))["items"][0]["id"]
    masked = api.get(f"/v1/reviews/{item}", headers=headers("reviewer")).json()
    assert masked["attributes"]["name"] == "***" and masked["attributes"]["city"] == "上海"
    shown = api.get(f"/v1/reviews/{item}", headers=headers("admin")).json()
    assert shown["attributes"]["name"] == "王芳"
    audit = api.get("/v1/audit", params={"action": "pii.read"}, headers=headers("admin")).json()
    assert audit["items"][-1]["after"] == {"fields": ["customer.name"]}


def test_a_restricted_key_sees_nothing_of_other_types(
    rrt: Runtime, api: TestClient, headers: Headers
) -> None:
    from tagloop.store import keys as key_store
    from tagloop.timeutil import now_us

    send(rrt, customer("c1", spend=2000))
    with rrt.db.write() as conn:
        secret = key_store.create(
            conn, "partner", ["reviewer"], now_us(), None, entity_types=["device"]
        ).secret
    partner = {"Authorization": f"Bearer {secret}"}
    item = queue(api, headers("viewer"))["items"][0]["id"]
    assert queue(api, partner)["items"] == []
    assert api.get(f"/v1/reviews/{item}", headers=partner).status_code == 404
    assert api.post(f"/v1/reviews/{item}/approve", headers=partner).status_code == 404
