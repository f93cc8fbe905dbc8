"""``/v1/flows`` and ``/v1/work-orders`` through the real HTTP API, with keys of each role:
flows listed, runs started by events and by hand, filtered and paged, their traces, retries
of failed runs (audited), dry runs that touch nothing, work orders updated (audited), and
a key restricted to one entity type that sees nothing of the others."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.flows.worker import FlowWorker
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.timeutil import now_us
from tests.conftest import make_key
from tests.flows.conftest import Receiver

VIP = "VIP_Order_Processing"
Headers = dict[str, str]


@pytest.fixture
def rt(operations_workspace: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(operations_workspace)
    yield runtime
    runtime.close()


@pytest.fixture
def live_client(rt: Runtime) -> Iterator[TestClient]:
    """The app as served: it commits in-process, so it runs the flow worker itself."""
    with TestClient(create_app(rt), raise_server_exceptions=False) as test_client:
        assert rt.flows is not None
        yield test_client


@pytest.fixture
def client(live_client: TestClient, rt: Runtime) -> TestClient:
    """The app without its background worker: the tests drain the runs themselves, so
    what is pending stays pending until they do."""
    assert rt.flows is not None
    rt.flows.stop()
    rt.flows = None
    return live_client


def bearer(secret: str) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def keys(rt: Runtime) -> dict[str, Headers]:
    """Headers by role, and ``customers``/``orders``: operators restricted to one type."""
    found = {role: bearer(make_key(rt, role)) for role in ("admin", "editor", "operator")}
    found.update({role: bearer(make_key(rt, role)) for role in ("viewer", "ingest")})
    with rt.db.write() as conn:
        for name, kind in (("customers", "customer"), ("orders", "order")):
            key = key_store.create(conn, name, ["operator"], now_us(), entity_types=[kind])
            found[name] = bearer(key.secret)
    return found


def drain(rt: Runtime) -> None:
    asyncio.run(FlowWorker(rt).drain())


def finished(client: TestClient, headers: Headers, run_id: str) -> dict[str, Any]:
    """The run once it succeeded, failed or was skipped (the server's worker runs it)."""
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = client.get(f"/v1/flows/runs/{run_id}", headers=headers).json()
        if run["status"] in ("succeeded", "failed", "skipped"):
            return run
        assert time.monotonic() < deadline, f"run still {run['status']}"
        time.sleep(0.02)


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def send(client: TestClient, keys: dict[str, Headers], *events: dict[str, Any]) -> None:
    response = client.post("/v1/events", json=list(events), headers=keys["ingest"])
    assert response.status_code == 200, response.text


def customer(cid: str, spend: float) -> dict[str, Any]:
    return {
        "id": f"c-{cid}",
        "type": "profile",
        "entity": {"type": "customer", "id": cid},
        "attributes": {"spend": spend},
    }


def order_created(oid: str, cid: str, amount: float) -> dict[str, Any]:
    return {
        "id": f"o-{oid}",
        "type": "order_created",
        "entity": {"type": "order", "id": oid},
        "related": {"customer": cid},
        "properties": {"amount": amount},
    }


def start(
    client: TestClient, headers: Headers, flow: str, entity_type: str, entity_id: str, **inputs: Any
) -> Any:
    body = {"entity_type": entity_type, "entity_id": entity_id, "inputs": inputs}
    return client.post(f"/v1/flows/{flow}/runs", json=body, headers=headers)


def audit(client: TestClient, keys: dict[str, Headers], action: str) -> list[dict[str, Any]]:
    response = client.get("/v1/audit", params={"action": action}, headers=keys["admin"])
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def count(rt: Runtime, table: str) -> int:
    with rt.db.read() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_flows_are_listed_for_every_reading_role(
    client: TestClient, keys: dict[str, Headers]
) -> None:
    response = client.get("/v1/flows", headers=keys["viewer"])
    assert response.status_code == 200
    flows = {f["name"]: f for f in response.json()["items"]}
    assert set(flows) == {VIP, "order_hook", "call_customer", "flaky_hook"}
    vip = flows[VIP]
    assert (vip["trigger"], vip["entity_type"], vip["enabled"], vip["steps"]) == (
        "event order_created",
        "order",
        True,
        3,
    )
    assert len(vip["digest"]) == 16 and vip["file"] == "flows/vip.yaml"
    assert flows["order_hook"]["description"] == "tell the ERP about an order"
    assert flows["order_hook"]["trigger"] == "manual"
    # Ingest keys read nothing; no key is no answer.
    assert client.get("/v1/flows", headers=keys["ingest"]).status_code == 403
    assert client.get("/v1/flows").status_code == 401


def test_event_runs_filtered_paged_and_traced(
    client: TestClient, keys: dict[str, Headers], rt: Runtime, receiver: Receiver
) -> None:
    send(client, keys, customer("C-1", 5000), customer("C-2", 10))
    # One batch: both runs are created in the same commit, at the same microsecond.
    send(client, keys, order_created("O-1", "C-1", 1288), order_created("O-2", "C-2", 35))
    runs = client.get(f"/v1/flows/{VIP}/runs", headers=keys["viewer"]).json()
    # Conditions are decided in the commit: O-2's customer is no VIP, so it never queues.
    assert {r["entity"]["id"]: r["status"] for r in runs["items"]} == {
        "O-1": "pending",
        "O-2": "skipped",
    }
    assert runs["next_cursor"] is None
    assert all(r["trigger"] == "event order_created" for r in runs["items"])
    assert [bool(r["next_at"]) for r in runs["items"] if r["entity"]["id"] == "O-1"] == [True]
    drain(rt)
    url = f"/v1/flows/{VIP}/runs"
    (done,) = client.get(url, params={"status": "succeeded"}, headers=keys["viewer"]).json()[
        "items"
    ]
    (skipped,) = client.get(url, params={"status": "skipped"}, headers=keys["viewer"]).json()[
        "items"
    ]
    assert done["entity"] == {"type": "order", "id": "O-1"} and done["finished_at"].endswith("Z")
    assert done["error"] is None and done["next_at"] is None and done["version"] == 1
    assert skipped["entity"]["id"] == "O-2"
    assert skipped["error"] == "condition not met: customer.tags.contains('VIP')"
    assert client.get(url, params={"status": "failed"}, headers=keys["viewer"]).json() == {
        "items": [],
        "next_cursor": None,
    }
    by_entity = client.get(url, params={"entity_id": "O-2"}, headers=keys["viewer"]).json()
    assert [r["id"] for r in by_entity["items"]] == [skipped["id"]]
    other_type = client.get(url, params={"entity_type": "customer"}, headers=keys["viewer"])
    assert other_type.json()["items"] == []
    # Pages of one: the two runs created in the same microsecond, each exactly once.
    first = client.get(url, params={"limit": 1}, headers=keys["viewer"]).json()
    assert first["next_cursor"]
    second = client.get(
        url, params={"limit": 1, "before": first["next_cursor"]}, headers=keys["viewer"]
    ).json()
    assert second["next_cursor"] is None
    paged = [r["id"] for r in first["items"] + second["items"]]
    assert sorted(paged) == sorted([done["id"], skipped["id"]])
    assert client.get(
        url, params={"before": "not a cursor"}, headers=keys["viewer"]
    ).status_code == (400)
    assert client.get(url, params={"status": "lost"}, headers=keys["viewer"]).status_code == 400
    # The trace: the condition with its value, then each action with its arguments.
    detail = client.get(f"/v1/flows/runs/{done['id']}", headers=keys["viewer"]).json()
    assert {k: v for k, v in detail.items() if k != "trace"} == done
    steps = [(t["step"], t["kind"], t["name"], t["attempt"], t["status"]) for t in detail["trace"]]
    assert steps == [
        ("conditions[0]", "condition", "customer.tags.contains('VIP')", 1, "done"),
        ("actions[0].skip_credit_check[0]", "action", "skip_credit_check", 1, "ok"),
        ("actions[1].notify_manager[0]", "action", "notify_manager", 1, "ok"),
        ("actions[2]", "action", "set_priority", 1, "ok"),
    ]
    assert detail["trace"][0]["result"] == {"value": True}
    assert detail["trace"][3]["args"]["level"] == "HIGH"
    assert all(t["started_at"].endswith("Z") and t["error"] is None for t in detail["trace"])
    assert len(receiver.requests) == 1  # the DingTalk message, once
    missing = client.get("/v1/flows/runs/no-such-run", headers=keys["viewer"])
    assert missing.status_code == 404 and missing.json()["message"] == "no flow run 'no-such-run'"
    unknown = client.get("/v1/flows/VIP_Order_Procesing/runs", headers=keys["viewer"])
    assert unknown.status_code == 404
    assert unknown.json()["message"] == (
        "unknown flow 'VIP_Order_Procesing' (did you mean 'VIP_Order_Processing'?)"
    )


def test_a_manual_start_runs_when_a_worker_takes_it(
    client: TestClient, keys: dict[str, Headers], rt: Runtime
) -> None:
    response = start(client, keys["operator"], "call_customer", "customer", "C-7", reason="late")
    assert response.status_code == 201, response.text
    run = response.json()
    assert response.headers["location"] == f"/v1/flows/runs/{run['id']}"
    assert (run["flow"], run["status"], run["trigger"]) == ("call_customer", "pending", "manual")
    assert run["entity"] == {"type": "customer", "id": "C-7"} and run["finished_at"] is None
    drain(rt)
    detail = client.get(f"/v1/flows/runs/{run['id']}", headers=keys["viewer"]).json()
    assert detail["status"] == "succeeded", detail["error"]
    (step,) = detail["trace"]
    assert (step["name"], step["status"]) == ("create_work_order", "ok")
    assert step["args"]["title"] == "Call C-7: late"  # the inputs, as event.properties
    # A flow triggered by events may be started by hand too: its trigger says "manual".
    vip = start(client, keys["operator"], VIP, "order", "O-9").json()
    assert vip["trigger"] == "manual"
    # Refusals: unknown flow, wrong entity type, bad bodies, roles without replays:write.
    unknown = start(client, keys["operator"], "call_custmer", "customer", "C-7")
    assert unknown.status_code == 404
    assert "did you mean 'call_customer'" in unknown.json()["message"]
    wrong = start(client, keys["operator"], "call_customer", "order", "O-1")
    assert wrong.status_code == 422
    assert wrong.json() == {
        "code": "unprocessable",
        "message": "flow 'call_customer' runs on customer, not order",
    }
    for body in ({"entity_type": "customer"}, {"entity_type": "customer", "entity_id": ""}):
        bad = client.post("/v1/flows/call_customer/runs", json=body, headers=keys["operator"])
        assert bad.status_code == 400, body
    nul = start(client, keys["operator"], "call_customer", "customer", "C-7", note="a\x00b")
    assert nul.status_code == 400 and "NUL" in nul.text
    for role in ("viewer", "editor"):
        refused = start(client, keys[role], "call_customer", "customer", "C-7")
        assert refused.status_code == 403 and "replays:write" in refused.json()["message"]
    assert count(rt, "flow_runs") == 2


def test_a_failed_run_is_retried_once_and_audited(
    client: TestClient, keys: dict[str, Headers], rt: Runtime
) -> None:
    run = start(client, keys["operator"], "order_hook", "order", "O-1").json()
    drain(rt)
    failed = client.get(f"/v1/flows/runs/{run['id']}", headers=keys["viewer"]).json()
    assert failed["status"] == "failed"
    assert failed["error"].startswith("actions[0] (webhook): gave up after 1 attempt(s)")
    assert [(t["step"], t["status"]) for t in failed["trace"]] == [("actions[0]", "failed")]
    listed = client.get(
        "/v1/flows/order_hook/runs", params={"status": "failed"}, headers=keys["viewer"]
    ).json()
    assert [r["id"] for r in listed["items"]] == [run["id"]]
    retry = f"/v1/flows/runs/{run['id']}/retry"
    assert client.post(retry, headers=keys["viewer"]).status_code == 403
    assert client.post(retry, headers=keys["editor"]).status_code == 403
    response = client.post(retry, headers=keys["operator"])
    assert response.status_code == 200, response.text
    again = response.json()
    assert (again["status"], again["error"], again["finished_at"]) == ("pending", None, None)
    # Only a failed run retries: a pending one is a conflict, an unknown one is missing.
    conflict = client.post(retry, headers=keys["operator"])
    assert conflict.status_code == 409 and conflict.json()["code"] == "conflict"
    assert "is pending, not failed" in conflict.json()["message"]
    assert client.post("/v1/flows/runs/nope/retry", headers=keys["operator"]).status_code == 404
    (record,) = audit(client, keys, "flow.retry")
    assert (record["target_type"], record["target_id"]) == ("flow_run", run["id"])
    assert record["before"]["status"] == "failed" and record["after"] == {"status": "pending"}
    assert record["before"]["error"] == failed["error"] and record["actor_kind"] == "key"
    drain(rt)  # the port is still closed: it fails again, after a second attempt
    again_failed = client.get(retry.removesuffix("/retry"), headers=keys["viewer"]).json()
    assert again_failed["status"] == "failed"
    assert [(t["kind"], t["attempt"], t["status"]) for t in again_failed["trace"]] == [
        ("action", 1, "failed"),
        ("redrive", 1, "done"),
        ("action", 2, "failed"),
    ]
    succeeded = start(
        client, keys["operator"], "call_customer", "customer", "C-1", reason="x"
    ).json()
    drain(rt)
    done = client.post(f"/v1/flows/runs/{succeeded['id']}/retry", headers=keys["operator"])
    assert done.status_code == 409 and "is succeeded, not failed" in done.json()["message"]


def test_a_trace_masks_personal_data_for_keys_without_pii_read(
    client: TestClient, keys: dict[str, Headers], rt: Runtime
) -> None:
    named = {**customer("C-9", 10), "attributes": {"spend": 10, "name": "张三丰"}}
    send(client, keys, named)
    # The work order's title is a template: the customer's name ends up in the trace.
    run = start(client, keys["operator"], "call_customer", "customer", "C-9", reason="张三丰 来电")
    assert run.status_code == 201, run.text
    drain(rt)
    url = f"/v1/flows/runs/{run.json()['id']}"
    masked = client.get(url, headers=keys["viewer"]).json()
    (step,) = masked["trace"]
    assert step["args"]["title"] == "Call C-9: *** 来电"
    assert "张三丰" not in orjson.dumps(masked).decode()
    with rt.db.write() as conn:
        reader = key_store.create(conn, "reader", ["viewer", "pii:read"], now_us()).secret
    shown = client.get(url, headers=bearer(reader)).json()
    assert shown["trace"][0]["args"]["title"] == "Call C-9: 张三丰 来电"
    (read,) = audit(client, keys, "pii.read")
    assert (read["target_type"], read["target_id"]) == ("flow_run", run.json()["id"])
    assert read["after"] == {"fields": ["customer.name"]}


def test_a_retried_run_attempts_the_failed_action_again(
    client: TestClient, keys: dict[str, Headers], rt: Runtime, receiver: Receiver
) -> None:
    receiver.answers.append((500, {"error": "down for maintenance"}, {}))
    run = start(client, keys["operator"], "flaky_hook", "order", "O-1").json()
    drain(rt)
    failed = client.get(f"/v1/flows/runs/{run['id']}", headers=keys["viewer"]).json()
    assert failed["status"] == "failed" and "500" in failed["error"]
    assert client.post(f"/v1/flows/runs/{run['id']}/retry", headers=keys["operator"]).is_success
    drain(rt)  # the receiver answers 200 now
    detail = client.get(f"/v1/flows/runs/{run['id']}", headers=keys["viewer"]).json()
    assert detail["status"] == "succeeded" and detail["error"] is None
    trace = [(t["step"], t["kind"], t["attempt"], t["status"]) for t in detail["trace"]]
    assert trace == [
        ("actions[0]", "action", 1, "failed"),
        ("run", "redrive", 1, "done"),
        ("actions[0]", "action", 2, "ok"),
    ]
    # Both attempts are one delivery to the receiver: the same idempotency key.
    first, second = receiver.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


def test_the_server_runs_what_the_api_starts(
    live_client: TestClient, keys: dict[str, Headers], rt: Runtime, receiver: Receiver
) -> None:
    client = live_client
    receiver.hold["/flaky"] = held = threading.Event()
    run = start(client, keys["operator"], "flaky_hook", "order", "O-1").json()
    until(lambda: receiver.requests, "the webhook request")  # no drain: the server ran it
    busy = client.get(f"/v1/flows/runs/{run['id']}", headers=keys["viewer"]).json()
    assert busy["status"] == "running"
    conflict = client.post(f"/v1/flows/runs/{run['id']}/retry", headers=keys["operator"])
    assert conflict.status_code == 409
    assert conflict.json()["message"] == (
        f"run {run['id']} is running, not failed: only a failed run can be retried"
    )
    held.set()
    assert finished(client, keys["viewer"], run["id"])["status"] == "succeeded"
    ticket = start(client, keys["operator"], "call_customer", "customer", "C-1", reason="x")
    assert finished(client, keys["viewer"], ticket.json()["id"])["status"] == "succeeded"
    (order,) = client.get("/v1/work-orders", headers=keys["viewer"]).json()["items"]
    assert order["run_id"] == ticket.json()["id"]


def test_dry_run_reports_and_touches_nothing(
    client: TestClient, keys: dict[str, Headers], rt: Runtime, receiver: Receiver
) -> None:
    send(client, keys, customer("C-1", 5000), customer("C-2", 10))
    events, runs = count(rt, "events"), count(rt, "flow_runs")
    url = f"/v1/flows/{VIP}/test"
    response = client.post(url, json=order_created("O-1", "C-1", 1288), headers=keys["viewer"])
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["flow"] == VIP and report["outcome"]["status"] == "succeeded"
    steps = [(s["step"], s["name"], s["status"]) for s in report["steps"]]
    assert steps == [
        ("conditions[0]", "customer.tags.contains('VIP')", "done"),
        ("actions[0].skip_credit_check[0]", "skip_credit_check", "ok"),
        ("actions[1].notify_manager[0]", "notify_manager", "ok"),
        ("actions[2]", "set_priority", "ok"),
    ]
    assert report["steps"][3]["args"]["level"] == "HIGH"
    assert report["steps"][2]["result"]  # what the bot would be sent, described
    skipped = client.post(url, json=order_created("O-2", "C-2", 35), headers=keys["viewer"])
    assert skipped.json()["outcome"] == {
        "status": "skipped",
        "reason": "condition not met: customer.tags.contains('VIP')",
        "error": None,
        "until": None,
    }
    # Nothing stored, nothing sent.
    assert (count(rt, "events"), count(rt, "flow_runs"), count(rt, "flow_steps")) == (
        events,
        runs,
        0,
    )
    assert receiver.requests == []
    with rt.db.read() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM entities WHERE type = 'order'")).scalar()
            == 0
        )
    # The event is checked as POST /v1/events checks it.
    bad = client.post(url, json={"type": "order_created"}, headers=keys["viewer"])
    assert bad.status_code == 400
    assert bad.json()["rejected"] == [{"index": 0, "field": "entity", "reason": "is required"}]
    stranger = {"type": "order_created", "entity": {"type": "ordr", "id": "O-1"}}
    unknown_type = client.post(url, json=stranger, headers=keys["viewer"])
    assert unknown_type.status_code == 400
    assert "did you mean 'order'" in unknown_type.json()["rejected"][0]["reason"]
    other = {"type": "order_paid", "entity": {"type": "order", "id": "O-1"}}
    wrong_event = client.post(url, json=other, headers=keys["viewer"])
    assert wrong_event.status_code == 400
    assert "triggered by order_created events, not order_paid" in wrong_event.json()["message"]
    assert (
        client.post(url, json=[order_created("O-1", "C-1", 1)], headers=keys["viewer"]).status_code
        == 400
    )
    assert (
        client.post(
            url, content=b"{", headers={**keys["viewer"], "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    text = client.post(url, content=b"x", headers={**keys["viewer"], "Content-Type": "text/plain"})
    assert text.status_code == 415
    assert client.post("/v1/flows/nope/test", json=other, headers=keys["viewer"]).status_code == 404
    assert client.post(url, json=other, headers=keys["ingest"]).status_code == 403


def test_work_orders_are_listed_updated_and_audited(
    client: TestClient, keys: dict[str, Headers], rt: Runtime
) -> None:
    for cid in ("C-1", "C-2", "C-3"):  # one at a time: work orders are numbered in order
        start(client, keys["operator"], "call_customer", "customer", cid, reason="churn risk")
        drain(rt)
    listed = client.get("/v1/work-orders", headers=keys["viewer"]).json()
    orders = listed["items"]
    assert [o["entity"]["id"] for o in orders] == ["C-3", "C-2", "C-1"]  # newest first
    first = orders[-1]
    assert (first["title"], first["assignee"], first["status"], first["priority"]) == (
        "Call C-1: churn risk",
        "sales",
        "open",
        "NORMAL",
    )
    assert first["flow"] == "call_customer" and first["due_at"].endswith("Z")
    run = client.get(f"/v1/flows/runs/{first['run_id']}", headers=keys["viewer"])
    assert run.json()["entity"] == {"type": "customer", "id": "C-1"}
    page = client.get("/v1/work-orders", params={"limit": 2}, headers=keys["viewer"]).json()
    rest = client.get(
        "/v1/work-orders",
        params={"limit": 2, "before": page["next_cursor"]},
        headers=keys["viewer"],
    ).json()
    assert [o["id"] for o in page["items"] + rest["items"]] == [o["id"] for o in orders]
    assert rest["next_cursor"] is None
    url = f"/v1/work-orders/{first['id']}"
    assert client.patch(url, json={"status": "done"}, headers=keys["viewer"]).status_code == 403
    response = client.patch(
        url, json={"status": "in_progress", "assignee": "ana"}, headers=keys["operator"]
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["assignee"]) == ("in_progress", "ana")
    assert client.patch(url, json={"status": "done"}, headers=keys["operator"]).json()[
        "status"
    ] == ("done")
    unassigned = client.patch(url, json={"assignee": None}, headers=keys["operator"]).json()
    assert unassigned["assignee"] is None and unassigned["status"] == "done"
    # Nothing changed: nothing recorded.
    assert client.patch(url, json={"status": "done"}, headers=keys["operator"]).status_code == 200
    records = audit(client, keys, "work_order.update")
    assert [(r["before"], r["after"]) for r in records] == [
        ({"status": "open", "assignee": "sales"}, {"status": "in_progress", "assignee": "ana"}),
        ({"status": "in_progress"}, {"status": "done"}),
        ({"assignee": "ana"}, {"assignee": None}),
    ]
    assert {(r["target_type"], r["target_id"]) for r in records} == {
        ("work_order", str(first["id"]))
    }
    done = client.get("/v1/work-orders", params={"status": "done"}, headers=keys["viewer"])
    assert [o["id"] for o in done.json()["items"]] == [first["id"]]
    by_sales = client.get("/v1/work-orders", params={"assignee": "sales"}, headers=keys["viewer"])
    assert len(by_sales.json()["items"]) == 2
    for body in ({}, {"status": "lost"}, {"status": None}, {"title": "x"}, {"assignee": ""}):
        assert client.patch(url, json=body, headers=keys["operator"]).status_code == 400, body
    missing = client.patch(
        "/v1/work-orders/999999", json={"status": "done"}, headers=keys["operator"]
    )
    assert missing.status_code == 404 and missing.json()["message"] == "no work order 999999"


def test_a_restricted_key_sees_nothing_of_other_types(
    client: TestClient, keys: dict[str, Headers], rt: Runtime
) -> None:
    send(client, keys, customer("C-1", 5000), order_created("O-1", "C-1", 1288))
    ticket = start(client, keys["operator"], "call_customer", "customer", "C-1", reason="x")
    hook = start(client, keys["operator"], "order_hook", "order", "O-1").json()
    drain(rt)
    (order_run,) = client.get(f"/v1/flows/{VIP}/runs", headers=keys["admin"]).json()["items"]
    (work_order,) = client.get("/v1/work-orders", headers=keys["admin"]).json()["items"]
    customers = keys["customers"]
    listed = client.get("/v1/flows", headers=customers).json()["items"]
    assert [f["name"] for f in listed] == ["call_customer"]
    # Another type's flow answers as an unknown one, and suggests only what the key sees.
    for path in (f"/v1/flows/{VIP}/runs", "/v1/flows/order_hook/runs"):
        hidden = client.get(path, headers=customers)
        assert hidden.status_code == 404 and "did you mean" not in hidden.json()["message"]
    near = client.get("/v1/flows/call_customers/runs", headers=customers).json()["message"]
    assert near == "unknown flow 'call_customers' (did you mean 'call_customer'?)"
    # Another type's run answers exactly as a run that does not exist.
    for run_id in (order_run["id"], hook["id"]):
        for method, path in (("GET", ""), ("POST", "/retry")):
            seen = client.request(method, f"/v1/flows/runs/{run_id}{path}", headers=customers)
            assert seen.status_code == 404
            assert seen.json() == {"code": "not_found", "message": f"no flow run {run_id!r}"}
    assert start(client, customers, "order_hook", "order", "O-2").status_code == 404
    event = order_created("O-5", "C-1", 5)
    assert client.post(f"/v1/flows/{VIP}/test", json=event, headers=customers).status_code == 404
    # Its own type: all there.
    own = client.get("/v1/flows/call_customer/runs", headers=customers).json()["items"]
    assert [r["id"] for r in own] == [ticket.json()["id"]]
    assert client.get(f"/v1/flows/runs/{own[0]['id']}", headers=customers).is_success
    assert client.get("/v1/work-orders", headers=customers).json()["items"] == [work_order]
    # The order key: no work orders (they are on customers), and cannot touch them.
    orders = keys["orders"]
    assert client.get("/v1/work-orders", headers=orders).json() == {
        "items": [],
        "next_cursor": None,
    }
    hidden_order = client.patch(
        f"/v1/work-orders/{work_order['id']}", json={"status": "done"}, headers=orders
    )
    assert hidden_order.status_code == 404
    assert hidden_order.json()["message"] == f"no work order {work_order['id']}"
    order_flows = {f["name"] for f in client.get("/v1/flows", headers=orders).json()["items"]}
    assert order_flows == {VIP, "order_hook", "flaky_hook"}
    # A dry run whose event names a type the key may not see is refused as unknown.
    related = client.post(f"/v1/flows/{VIP}/test", json=event, headers=orders)
    assert related.status_code == 400
    assert related.json()["rejected"][0]["field"] == "related.customer"
    assert "unknown entity type 'customer'" in related.json()["rejected"][0]["reason"]
