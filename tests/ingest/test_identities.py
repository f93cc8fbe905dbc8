"""One entity, many ids: events that carry several identifiers link and merge entities, and
profiles, events and tags follow the merged entity, on every backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tagloop.cli import main
from tagloop.engine import batch
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tests.conftest import make_key, sqlite_copy, write_workspace

HOUR = 3_600_000_000
T0 = 1_717_200_000_000_000  # 2024-06-01

CUSTOMER = """
    name: customer
    identifiers: [customer_id, crm_id, phone]
    fields:
      customer_id: string
      crm_id: string
      phone: string
      name: {type: string, pii: true}
      city: string
      spend: number
    events:
      order:
        properties:
          amount: number
"""
TAGS = """
    tags:
      - {name: 下单, entity: customer, rule: count(order) >= 1}
      - {name: 常客, entity: customer, rule: count(order) >= 3}
      - {name: 大额, entity: customer, rule: sum(order.amount) > 150}
      - {name: 上海客户, entity: customer, rule: "city == '上海'"}
      - {name: 黑名单, entity: customer, kind: imported}
"""


class Clock:
    now = T0 + 100 * HOUR

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def rt(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    root = write_workspace(
        tmp_path / "ws", database_url, tags=TAGS, extra={"entities/customer.yaml": CUSTOMER}
    )
    runtime = Runtime.open(root, clock=Clock())
    yield runtime
    runtime.close()


def event(eid: str, who: str, at: int, kind: str = "order", **values: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": eid,
        "type": kind,
        "entity": {"type": "customer", "id": who},
        "time": (T0 + at * HOUR) // 1_000_000,
    }
    if kind == "order":
        body["properties"] = values
    else:
        body["attributes"] = values
    return body


def post(client: TestClient, key: str, *events: dict[str, Any]) -> None:
    response = client.post("/v1/events", json=list(events), headers={"Authorization": key})
    assert response.status_code == 200, response.text


def tags_of(body: dict[str, Any]) -> set[str]:
    return {t["tag"] for t in body["tags"]}


def test_two_customers_with_tags_and_events_merge_and_rules_see_the_union(
    rt: Runtime, client: TestClient
) -> None:
    ingest = f"Bearer {make_key(rt, 'ingest')}"
    reader = {"Authorization": f"Bearer {make_key(rt, 'viewer', 'pii:read')}"}
    # The ERP knows C-0042, the CRM knows 123: two customers, each with orders and tags.
    post(
        client,
        ingest,
        event("erp-1", "C-0042", 0, "identify", customer_id="C-0042", city="上海"),
        event("erp-2", "C-0042", 1, amount=40),
        event("erp-3", "C-0042", 2, amount=40),
        event("crm-1", "123", 3, "identify", crm_id="123", name="王芳", city="北京"),
        event("crm-2", "123", 4, amount=50),
        event("crm-3", "123", 5, amount=50),
    )
    upload = client.post(
        "/v1/tags/黑名单/import",
        content="id,value\n123,true\n",
        headers={"Content-Type": "text/csv", **reader, "Authorization": admin_key(rt)},
    )
    assert upload.status_code == 200, upload.text
    before = client.get("/v1/entities/customer/123", headers=reader).json()
    assert tags_of(before) == {"下单", "黑名单"}
    assert tags_of(client.get("/v1/entities/customer/C-0042", headers=reader).json()) == {
        "下单",
        "上海客户",
    }

    # The ERP learns the customer's CRM id: one event carries both identifiers.
    post(client, ingest, event("erp-4", "C-0042", 6, "identify", crm_id="123"))

    merged = client.get("/v1/entities/customer/123", headers=reader)
    assert merged.status_code == 200, merged.text
    body = merged.json()
    # C-0042 was seen first: it survives; a request by the CRM id finds it.
    assert body["id"] == "C-0042"
    assert body["event_count"] == 7
    # Attributes from both sides; where both set one, the later event's value holds.
    assert body["attributes"]["name"] == "王芳"
    assert body["attributes"]["city"] == "北京"
    assert body["attributes"]["crm_id"] == "123"
    # Rules see the union: 4 orders, 180 in all; the imported tag came along.
    assert tags_of(body) == {"下单", "常客", "大额", "黑名单"}
    assert [(a["id"], a["field"]) for a in body["aliases"]] == [("123", "merge")]
    assert [m["id"] for m in body["merged"]] == ["123"]
    assert body["merged"][0]["cause"] == {
        "event": "erp-4",
        "source": "api",
        "field": "crm_id",
        "value": "123",
    }

    # Neither side's history is lost: the CRM's events keep the id they were sent with,
    # and the merged entity's tag history records the move.
    events = client.get("/v1/entities/customer/C-0042?events=20", headers=reader).json()["events"]
    sent = {e["id"]: e["sent_entity_id"] for e in events}
    assert sent["crm-2"] == "123" and sent["erp-2"] is None
    with rt.db.read() as conn:
        history = conn.execute(
            text(
                "SELECT tag, change, source FROM tag_history "
                "WHERE entity_type = 'customer' AND entity_id = '123' ORDER BY seq"
            )
        ).all()
        merged_profile = conn.execute(text("SELECT merged_profile FROM entity_merges")).scalar()
    assert [(h[0], h[1]) for h in history] == [
        ("下单", "assigned"),
        ("黑名单", "assigned"),
        ("下单", "removed"),
        ("黑名单", "removed"),
    ]
    assert history[-1][2] == "merge:123->C-0042"
    profile = merged_profile if isinstance(merged_profile, dict) else json.loads(merged_profile)
    assert profile["attributes"]["name"] == "王芳" and profile["event_count"] == 3

    # Later events sent with the CRM id belong to the merged customer.
    post(client, ingest, event("crm-4", "123", 7, amount=5))
    after = client.get("/v1/entities/customer/C-0042", headers=reader).json()
    assert after["event_count"] == 8
    # The batch evaluator, over the stored events, agrees with what streaming assigned.
    names = [t.name for t in rt.active]
    report = batch.recompute(rt.db, rt.engine, rt.active, names, rt.engine.clock(), write=False)
    assert report.changes == 0
    assert report.by_tag["常客"] == 1


def admin_key(rt: Runtime) -> str:
    return f"Bearer {make_key(rt, 'admin')}"


def test_a_new_id_becomes_an_alias_and_a_query_by_it_finds_the_entity(
    rt: Runtime, client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest = f"Bearer {make_key(rt, 'ingest')}"
    reader = {"Authorization": admin_key(rt)}
    post(client, ingest, event("erp-1", "C-7", 0, "identify", city="上海"))
    # The call centre knows the customer by phone, and sends the ERP id with it.
    post(client, ingest, event("cc-1", "13800138000", 1, "identify", customer_id="C-7"))
    post(client, ingest, event("cc-2", "13800138000", 2, amount=20))
    body = client.get("/v1/entities/customer/13800138000", headers=reader).json()
    assert body["id"] == "C-7"
    assert body["event_count"] == 3
    assert body["merged"] == []  # nothing to merge: the phone number was no entity yet
    assert [(a["id"], a["field"], a["event"]) for a in body["aliases"]] == [
        ("13800138000", "customer_id", "cc-1")
    ]
    with rt.db.read() as conn:
        ids = conn.execute(text("SELECT id FROM entities WHERE type = 'customer'")).scalars()
        assert sorted(ids) == ["C-7"]
    explained = client.get("/v1/entities/customer/13800138000/tags/下单/explain", headers=reader)
    assert explained.status_code == 200 and explained.json()["entity"]["id"] == "C-7"
    # The command line finds it by the alias too.
    with pytest.raises(SystemExit) as done:
        main(["-w", str(rt.workspace.root), "entity", "customer", "13800138000", "--json"])
    assert done.value.code in (0, None)
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == "C-7" and [a["id"] for a in shown["aliases"]] == ["13800138000"]


def test_imported_values_by_another_id_land_on_the_entity(rt: Runtime, client: TestClient) -> None:
    ingest = f"Bearer {make_key(rt, 'ingest')}"
    post(client, ingest, event("erp-1", "C-1", 0, "identify", crm_id="crm-1"))
    upload = client.post(
        "/v1/tags/黑名单/import",
        content="id,value\ncrm-1,true\nC-1,true\n",
        headers={"Content-Type": "text/csv", "Authorization": admin_key(rt)},
    )
    assert upload.status_code == 200, upload.text
    result = upload.json()
    assert result["rejected"] == 1, result
    assert "'C-1' is 'C-1', already given on line 2 (as 'crm-1')" in str(result["samples"])
    body = client.get("/v1/entities/customer/C-1", headers={"Authorization": admin_key(rt)})
    assert tags_of(body.json()) == {"黑名单"}


def test_segment_alias_merges_the_anonymous_visitor_into_the_user(
    rt: Runtime, client: TestClient
) -> None:
    key = make_key(rt, "ingest")
    auth = (key, "")
    for message in (
        {"type": "track", "anonymousId": "anon-1", "event": "order", "messageId": "m1",
         "properties": {"amount": 100}, "timestamp": "2024-06-01T01:00:00Z"},
        {"type": "identify", "userId": "u-1", "messageId": "m2", "traits": {"city": "上海"},
         "timestamp": "2024-06-01T02:00:00Z"},
        {"type": "track", "userId": "u-1", "event": "order", "messageId": "m3",
         "properties": {"amount": 100}, "timestamp": "2024-06-01T03:00:00Z"},
        {"type": "alias", "userId": "u-1", "previousId": "anon-1", "messageId": "m4",
         "timestamp": "2024-06-01T04:00:00Z"},
    ):  # fmt: skip
        response = client.post(f"/v1/{message['type']}", json=message, auth=auth)
        assert response.status_code == 200, response.text
    body = client.get("/v1/entities/customer/anon-1", headers={"Authorization": admin_key(rt)})
    merged = body.json()
    # anon-1 was seen first, so the user's profile lives on under it, found by either id.
    assert merged["id"] == "anon-1"
    assert {a["id"] for a in merged["aliases"]} == {"u-1"}
    assert tags_of(merged) == {"下单", "大额", "上海客户"}
    assert merged["merged"][0]["cause"]["field"] == "alias"


def test_resending_a_linking_event_changes_nothing(rt: Runtime, client: TestClient) -> None:
    ingest = f"Bearer {make_key(rt, 'ingest')}"
    post(client, ingest, event("a", "A", 0, amount=10), event("b", "B", 1, amount=10))
    link = event("link", "A", 2, "identify", crm_id="B")
    post(client, ingest, link)
    post(client, ingest, link)
    with rt.db.read() as conn:
        merges = conn.execute(text("SELECT count(*) FROM entity_merges")).scalar_one()
        rows = conn.execute(text("SELECT id, event_count FROM entities")).all()
    assert merges == 1
    assert [tuple(r) for r in rows] == [("A", 3)]


def test_an_event_naming_the_other_side_as_related_is_counted_once(
    rt: Runtime, client: TestClient
) -> None:
    ingest = f"Bearer {make_key(rt, 'ingest')}"
    referral = event("r", "A", 0, amount=10)
    referral["related"] = {"customer": "B"}  # A's order names B (who referred A)
    post(client, ingest, referral)
    post(client, ingest, event("link", "A", 1, "identify", crm_id="B"))
    body = client.get("/v1/entities/customer/B", headers={"Authorization": admin_key(rt)})
    assert body.json()["id"] == "A"
    assert body.json()["event_count"] == 2  # the order and the link, each once
    with rt.db.read() as conn:
        links = conn.execute(text("SELECT count(*) FROM event_links")).scalar_one()
    assert links == 0  # the order no longer names its own entity as related
    names = [t.name for t in rt.active]
    report = batch.recompute(rt.db, rt.engine, rt.active, names, rt.engine.clock(), write=False)
    assert report.changes == 0


# --- the invariant, over random links ---------------------------------------------------

IDS = [f"c{i}" for i in range(6)]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, str | None]]:
    """Events as (entity id, crm_id it carries or None): orders and links in any order."""
    return draw(
        st.lists(
            st.tuples(st.sampled_from(IDS), st.none() | st.sampled_from(IDS)),
            min_size=1,
            max_size=14,
        )
    )


def _partition(history: list[tuple[str, str | None]]) -> list[set[str]]:
    groups: list[set[str]] = []
    for who, other in history:
        members = {who} | ({other} if other else set())
        touching = [g for g in groups if g & members]
        for g in touching:
            groups.remove(g)
            members |= g
        groups.append(members)
    return sorted(groups, key=min)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), cut=st.integers(min_value=1, max_value=14))
def test_entities_are_the_connected_ids_and_no_event_is_lost(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_sqlite: Path,
    history: list[tuple[str, str | None]],
    cut: int,
) -> None:
    root = write_workspace(
        tmp_path_factory.mktemp("ws"),
        sqlite_copy(migrated_sqlite, tmp_path_factory.mktemp("db") / "t.db"),
        tags=TAGS,
        extra={"entities/customer.yaml": CUSTOMER},
    )
    runtime = Runtime.open(root, clock=Clock())
    try:
        stored = [
            Event(
                id=f"e{n}",
                type="order" if other is None else "identify",
                entity_type="customer",
                entity_id=who,
                time=T0 + n * HOUR,
                properties={"amount": 1} if other is None else {},
                attributes={"crm_id": other} if other is not None else None,
            )
            for n, (who, other) in enumerate(history)
        ]
        # In two commits cut anywhere: the result may not depend on batching.
        runtime.ingestor.commit(stored[:cut])
        if stored[cut:]:
            runtime.ingestor.commit(stored[cut:])
        with runtime.db.read() as conn:
            entities = dict(conn.execute(text("SELECT id, event_count FROM entities")).all())
            aliases = conn.execute(text("SELECT alias, entity_id FROM entity_aliases")).all()
            owners = conn.execute(text("SELECT id, entity_id FROM events")).all()
            holders = conn.execute(
                text("SELECT entity_id FROM tag_assignments WHERE tag = '下单'")
            ).scalars()
            holding = set(holders)
        names = {e: {e} for e in entities}
        for alias, entity in aliases:
            assert alias not in entities  # an alias is never an entity of its own
            names[entity].add(alias)
        assert sorted(names.values(), key=min) == _partition(history)
        # Every event stored once, owned by the entity its id resolves to.
        owner = dict(owners)
        assert len(owner) == len(history)
        for n, (who, _) in enumerate(history):
            assert who in names[owner[f"e{n}"]]
        assert sum(entities.values()) == len(history)
        # A tag over orders holds exactly for the entities whose ids placed an order.
        ordered = {owner[f"e{n}"] for n, (_, other) in enumerate(history) if other is None}
        assert holding == ordered
        # And batch recomputation over the stored events agrees with the stream.
        names = [t.name for t in runtime.active]
        now = runtime.engine.clock()
        assert (
            batch.recompute(
                runtime.db, runtime.engine, runtime.active, names, now, write=False
            ).changes
            == 0
        )
    finally:
        runtime.close()
