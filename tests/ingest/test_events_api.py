"""POST /v1/events, conformance on every storage backend."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tagloop.runtime import Runtime
from tests.conftest import make_key


def event(entity_id: str = "c1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "order", "entity": {"type": "customer", "id": entity_id}}
    body.update(fields)
    return body


def post(client: TestClient, headers: dict[str, str], body: Any, **kwargs: Any) -> Any:
    return client.post("/v1/events", json=body, headers=headers, **kwargs)


def profile(client: TestClient, headers: dict[str, str], entity_id: str = "c1") -> Any:
    response = client.get(f"/v1/entities/customer/{entity_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_accepts_a_batch_and_builds_the_profile(client, admin):
    response = post(
        client,
        admin,
        [
            event(id="e1", time="2024-03-01T10:00:00+08:00", properties={"amount": 12.5}),
            event(id="e2", type="identify", attributes={"city": "上海", "spend": 2000}),
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0 and body["rejected"] == []
    assert body["ids"] == ["e1", "e2"]
    entity = profile(client, admin)
    assert entity["attributes"] == {"city": "上海", "spend": 2000}
    assert entity["event_count"] == 2
    assert entity["first_seen"] == "2024-03-01T02:00:00Z"
    assert {t["tag"] for t in entity["tags"]} == {"VIP", "上海客户"}
    vip = next(t for t in entity["tags"] if t["tag"] == "VIP")
    assert vip["value"] is True and vip["source"] == "rule:VIP@v1"
    assert vip["evidence"]["values"] == {"spend": 2000}
    assert entity["events"][0]["id"] == "e2"  # newest first


def test_single_object_and_assigned_ids(client, admin):
    response = post(client, admin, event())
    assert response.status_code == 200
    (assigned,) = response.json()["ids"]
    assert len(assigned) == 36 and assigned[14] == "7"  # a UUIDv7


def test_same_id_twice_is_stored_once(client, admin, rt: Runtime):
    first = post(client, admin, [event(id="dup"), event(id="dup")])
    assert first.json()["accepted"] == 1 and first.json()["duplicates"] == 1
    again = post(client, admin, [event(id="dup", properties={"amount": 9})])
    assert again.status_code == 200
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 1
    assert profile(client, admin)["event_count"] == 1
    with rt.db.read() as conn:
        from tagloop.store import events

        assert events.count(conn) == 1


def test_out_of_order_attribute_updates_keep_the_newest(client, admin):
    newer = event(
        type="identify", time="2024-05-02T00:00:00Z", attributes={"city": "北京", "spend": 10}
    )
    older = event(
        type="identify", time="2024-05-01T00:00:00Z", attributes={"city": "上海", "country": "CN"}
    )
    assert post(client, admin, [newer]).status_code == 200
    assert post(client, admin, [older]).status_code == 200
    attributes = profile(client, admin)["attributes"]
    # city from the newer event survives; country, set only by the older one, is kept.
    assert attributes == {"city": "北京", "spend": 10, "country": "CN"}


def test_batch_is_atomic_by_default(client, admin):
    response = post(
        client,
        admin,
        [
            event("ok1"),
            event("bad", time="yesterday"),
            {"type": "order", "entity": {"type": "custmer", "id": "x"}},
            event("ok2", attributes={"spend": "a lot"}),
        ],
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_events"
    assert body["message"] == "3 of 4 events rejected; nothing was stored"
    reasons = {(r["index"], r["field"]): r["reason"] for r in body["rejected"]}
    assert reasons[(1, "time")].startswith("is not an ISO 8601 time")
    assert "did you mean 'customer'" in reasons[(2, "entity.type")]
    assert reasons[(3, "attributes.spend")] == "expected a number, got string 'a lot'"
    assert client.get("/v1/entities/customer/ok1", headers=admin).status_code == 404


def test_partial_commits_the_valid_events(client, admin):
    response = post(
        client,
        admin,
        [event("ok1"), event("bad", time="nope"), event("ok2")],
        params={"partial": "true"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1]
    assert body["ids"][1] is None
    assert client.get("/v1/entities/customer/ok2", headers=admin).status_code == 200


def test_partial_with_nothing_valid_is_400(client, admin):
    response = post(client, admin, [event("x", time="nope")], params={"partial": "true"})
    assert response.status_code == 400


def test_every_field_rejection(client, admin):
    cases = [
        ({"entity": {"type": "customer", "id": "c"}}, "type", "is required"),
        ({"type": "order"}, "entity", "is required"),
        (event(entity={"type": "customer"}), "entity.id", "is required"),
        (event(id=""), "id", "must not be empty"),
        (event(properties=[1]), "properties", "must be an object"),
        (
            event(attributes={"orders": 1.5}),
            "attributes.orders",
            "expected an integer, got number 1.5",
        ),
        (event(attributes={"vip": "yes"}), "attributes.vip", "expected true or false"),
        (
            event(attributes={"signup": "2024-01-01T00:00:00"}),
            "attributes.signup",
            "needs a time zone",
        ),
        (event(attributes={"event_count": 5}), "attributes.event_count", "system attribute"),
        (event(properties={"amount": "12"}), "properties.amount", "expected a number"),
        (event(related={"batch": "B-1"}), "related.batch", "unknown entity type 'batch'"),
        (event(time="2999-01-01T00:00:00Z"), "time", "ahead of the server clock"),
        (event(colour="red"), "colour", "is not a known field"),
        (event(type="x" * 256), "type", "at most 255 characters"),
        ("not an object", "", "must be a JSON object"),
        # PostgreSQL cannot store U+0000: refused on every backend, the field named
        (event(properties={"note": {"text": "a\x00b"}}), "properties.note.text", "NUL"),
        (event("c\x00"), "entity.id", "NUL"),
        (event(attributes={"tags\x00": 1}), "attributes", "NUL"),
    ]
    response = post(client, admin, [body for body, _, _ in cases])
    assert response.status_code == 400
    got = {}
    for rejection in response.json()["rejected"]:
        got.setdefault(rejection["index"], []).append(rejection)
    for index, (_, field, words) in enumerate(cases):
        assert index in got, f"case {index} ({field}) was not rejected"
        assert any(r["field"] == field and words in r["reason"] for r in got[index]), (
            index,
            got[index],
        )


def test_bad_json_is_reported_with_its_position(client, admin):
    response = client.post(
        "/v1/events",
        content=b'[{"type": "order",}]',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_json",
        "message": "invalid JSON at line 1, column 18: trailing comma is not allowed",
    }


def test_ndjson_reports_bad_lines(client, admin):
    body = (
        b'{"type":"order","entity":{"type":"customer","id":"a"}}\n\n{nope\n'
        b'{"type":"order","entity":{"type":"customer","id":"b"}}\n'
    )
    headers = {**admin, "Content-Type": "application/x-ndjson"}
    response = client.post("/v1/events", content=body, headers=headers)
    assert response.status_code == 400
    (bad,) = response.json()["rejected"]
    assert bad["index"] == 1 and bad["line"] == 3 and "invalid JSON" in bad["reason"]
    response = client.post("/v1/events?partial=true", content=body, headers=headers)
    assert response.json()["accepted"] == 2


def test_gzip_bodies(client, admin):
    raw = orjson.dumps([event("gz")])
    response = client.post(
        "/v1/events",
        content=gzip.compress(raw),
        headers={**admin, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200 and response.json()["accepted"] == 1
    broken = client.post(
        "/v1/events",
        content=b"not gzip",
        headers={**admin, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert broken.status_code == 400


def test_size_limits(client, admin, rt: Runtime):
    limits = rt.workspace.project.ingest
    big = event(properties={"blob": "x" * (limits.max_event_bytes + 1)})
    response = post(client, admin, [event("small"), big])
    assert response.status_code == 400
    assert response.json()["rejected"][0]["index"] == 1
    assert "limit" in response.json()["rejected"][0]["reason"]
    huge = b"[" + b" " * limits.max_body_bytes + b"]"
    response = client.post(
        "/v1/events", content=huge, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    bomb = gzip.compress(b" " * (limits.max_body_bytes + 10))
    response = client.post(
        "/v1/events",
        content=bomb,
        headers={**admin, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 413
    many = [event(f"c{i}") for i in range(limits.max_batch_events + 1)]
    assert post(client, admin, many).status_code == 413


def test_empty_and_unsupported_bodies(client, admin):
    empty = client.post(
        "/v1/events", content=b"", headers={**admin, "Content-Type": "application/json"}
    )
    assert empty.status_code == 400 and "empty" in empty.json()["message"]
    assert post(client, admin, []).json()["message"] == "the batch holds no events"
    xml = client.post("/v1/events", content=b"<a/>", headers={**admin, "Content-Type": "text/xml"})
    assert xml.status_code == 415


def test_authentication_and_permissions(client, rt: Runtime):
    assert post(client, {}, [event()]).status_code == 401
    bad = post(client, {"Authorization": "Bearer tl_nope"}, [event()])
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"].startswith("Bearer")
    viewer = {"Authorization": f"Bearer {make_key(rt, 'viewer')}"}
    assert post(client, viewer, [event()]).status_code == 403
    ingest = {"Authorization": f"Bearer {make_key(rt, 'ingest')}"}
    assert post(client, ingest, [event()]).status_code == 200
    # An ingest key writes events but cannot read profiles.
    assert client.get("/v1/entities/customer/c1", headers=ingest).status_code == 403
    expired = {"Authorization": f"Bearer {make_key(rt, 'admin', expires_at=1)}"}
    response = post(client, expired, [event()])
    assert response.status_code == 401 and response.json()["message"] == "API key expired"


def test_related_entities_are_upserted_and_see_the_event(client, admin):
    feedback = [
        {
            "type": "feedback",
            "entity": {"type": "customer", "id": "c9"},
            "related": {"product_batch": "B-17", "device": "D-3"},
            "properties": {"score": 2},
        },
        {
            "type": "feedback",
            "entity": {"type": "customer", "id": "c8"},
            "related": {"product_batch": "B-17"},
        },
    ]
    assert post(client, admin, feedback).status_code == 200
    batch = client.get("/v1/entities/product_batch/B-17", headers=admin).json()
    assert batch["event_count"] == 2
    assert [t["tag"] for t in batch["tags"]] == ["hot_batch"]
    assert {e["entity"]["id"] for e in batch["events"]} == {"c8", "c9"}
    device = client.get("/v1/entities/device/D-3", headers=admin).json()
    assert device["event_count"] == 1


def test_tag_removed_when_rule_stops_holding(client, admin):
    post(
        client,
        admin,
        [event(type="identify", time="2024-01-01T00:00:00Z", attributes={"spend": 5000})],
    )
    post(
        client,
        admin,
        [event(type="identify", time="2024-01-02T00:00:00Z", attributes={"spend": 10})],
    )
    entity = profile(client, admin)
    assert "VIP" not in {t["tag"] for t in entity["tags"]}
    changes = [(h["tag"], h["change"]) for h in entity["tag_history"] if h["tag"] == "VIP"]
    assert changes == [("VIP", "removed"), ("VIP", "assigned")]


def test_null_rule_result_does_not_assign(client, admin):
    # No spend attribute at all: `spend >= 1000` is unknown, so no VIP.
    post(client, admin, [event(type="identify", attributes={"city": "杭州"})])
    assert profile(client, admin)["tags"] == []


def test_list_entities_by_tag_with_cursor(client, admin):
    batch = [event(f"c{i:02d}", type="identify", attributes={"spend": 1000 + i}) for i in range(7)]
    batch.append(event("poor", type="identify", attributes={"spend": 1}))
    assert post(client, admin, batch).status_code == 200
    seen, cursor = [], None
    while True:
        params = {"tag": "VIP", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/entities/customer", params=params, headers=admin).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i:02d}" for i in range(7)]
    everyone = client.get("/v1/entities/customer", params={"limit": 100}, headers=admin)
    assert len(everyone.json()["items"]) == 8


def test_entity_read_errors(client, admin):
    assert client.get("/v1/entities/customer/none", headers=admin).status_code == 404
    unknown = client.get("/v1/entities/custmer/x", headers=admin)
    assert unknown.status_code == 404 and "did you mean 'customer'" in unknown.json()["message"]
    wrong_tag = client.get("/v1/entities/customer", params={"tag": "VlP"}, headers=admin)
    assert wrong_tag.status_code == 404
    other_type = client.get("/v1/entities/device", params={"tag": "VIP"}, headers=admin)
    assert other_type.status_code == 400
    cursor = client.get("/v1/entities/customer", params={"cursor": "%%%"}, headers=admin)
    assert cursor.status_code == 400
    limit = client.get("/v1/entities/customer", params={"limit": 0}, headers=admin)
    assert limit.status_code == 400 and limit.json()["code"] == "invalid_request"


def test_tags_list_with_counts(client, admin):
    post(
        client,
        admin,
        [
            event("a", type="identify", attributes={"spend": 5000}),
            event("b", type="identify", attributes={"spend": 5000, "city": "上海"}),
        ],
    )
    tags = {t["name"]: t for t in client.get("/v1/tags", headers=admin).json()["items"]}
    assert tags["VIP"]["count"] == 2 and tags["上海客户"]["count"] == 1
    assert tags["VIP"]["category"] == ["价值", "等级"] and tags["VIP"]["version"] == 1
    assert tags["VIP"]["defined_at"] == "tags/tags.yaml:3:5"  # line 1 is blank
    detail = client.get("/v1/tags/VIP", headers=admin).json()
    assert [v["version"] for v in detail["versions"]] == [1]
    assert client.get("/v1/tags/nope", headers=admin).status_code == 404


def test_chinese_and_unicode_ids(client, admin):
    ids = ["客户-一号", "emoji-😀", "space id", "a/b"]
    response = post(client, admin, [event(i) for i in ids])
    assert response.status_code == 200
    from urllib.parse import quote

    for entity_id in ids[:3]:
        got = client.get(f"/v1/entities/customer/{quote(entity_id)}", headers=admin)
        assert got.status_code == 200 and got.json()["id"] == entity_id


def test_a_nul_character_is_rejected_and_the_rest_kept(client, admin):
    response = post(
        client,
        admin,
        [event("ok1"), event("bad", properties={"note": "\x00"}), event("ok2")],
        params={"partial": "true"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "properties.note")]
