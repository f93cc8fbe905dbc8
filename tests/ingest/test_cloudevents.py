"""CloudEvents 1.0 structured mode on POST /v1/events."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient

CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def cloudevent(**extra: object) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": "a-1",
        "source": "/mes/line-3",
        "type": "feedback",
        "entitytype": "customer",
        "entityid": "c1",
        **extra,
    }


def send(client: TestClient, headers: dict[str, str], body: object, media: str = CE) -> object:
    return client.post(
        "/v1/events", content=orjson.dumps(body), headers={**headers, "Content-Type": media}
    )


def test_single_and_batch(client: TestClient, admin: dict[str, str]) -> None:
    single = cloudevent(
        time="2024-03-05T08:00:00+08:00",
        data={"score": 2},
        related="product_batch=B-17, device=D-3",
        subject="ignored-when-entityid",
        traceparent="00-abc",
    )
    response = send(client, admin, single)
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == ["/mes/line-3|a-1"]
    batch = [cloudevent(id="a-2", entityid=None, subject="c2"), cloudevent(id="a-1")]
    response = send(
        client, admin, [{k: v for k, v in e.items() if v is not None} for e in batch], CE_BATCH
    )
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == 1
    profile = client.get("/v1/entities/customer/c1", headers=admin).json()
    (event,) = profile["events"]
    assert event["time"] == "2024-03-05T00:00:00Z" and event["properties"] == {"score": 2}
    assert event["related"] == {"product_batch": "B-17", "device": "D-3"}
    assert event["context"]["source"] == "/mes/line-3"
    assert event["context"]["extensions"] == {"traceparent": "00-abc"}
    assert client.get("/v1/entities/customer/c2", headers=admin).status_code == 200
    assert client.get("/v1/entities/product_batch/B-17", headers=admin).status_code == 200


def test_rejections(client: TestClient, admin: dict[str, str]) -> None:
    cases = [
        (
            {
                "specversion": "1.0",
                "source": "s",
                "type": "t",
                "entitytype": "customer",
                "entityid": "x",
            },
            "id",
            "is required",
        ),
        (cloudevent(specversion="0.3"), "specversion", "must be '1.0'"),
        (cloudevent(data_base64="AAAA"), "data_base64", "binary data is not supported"),
        (cloudevent(datacontenttype="text/xml"), "datacontenttype", "must be a JSON type"),
        (cloudevent(data=[1, 2]), "data", "must be a JSON object"),
        (cloudevent(entitytype=None), "entitytype", "is required"),
        (cloudevent(related="nonsense"), "related", "expected 'type=id,type=id'"),
        (cloudevent(time="tomorrow"), "time", "is not an RFC 3339 time"),
        (cloudevent(entitytype="shipment"), "entity.type", "unknown entity type 'shipment'"),
    ]
    body = [{k: v for k, v in case.items() if v is not None} for case, _, _ in cases]
    response = send(client, admin, body, CE_BATCH)
    assert response.status_code == 400
    rejected = {r["index"]: r for r in response.json()["rejected"]}
    for index, (_, field, words) in enumerate(cases):
        assert rejected[index]["field"] == field, (index, rejected[index])
        assert words in rejected[index]["reason"], (index, rejected[index])
