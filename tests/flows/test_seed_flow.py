"""The reference platform's VIP flow, verbatim, from an ``order_created`` event to a
recorded priority change and a signed DingTalk message at a local receiver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tagloop.flows.worker import FlowWorker
from tagloop.ingest.event import Batch, Event
from tagloop.runtime import Runtime
from tagloop.store import flows as flow_store
from tagloop.timeutil import now_us
from tests.flows.conftest import Receiver, flow_workspace

SECRET = "SEC-test-secret"


def send(rt: Runtime, *events: Event) -> None:
    rt.ingestor.ingest(Batch(list(enumerate(events))))


def customer(cid: str, spend: float) -> Event:
    now = now_us()
    return Event(
        f"c-{cid}-{spend}",
        "profile",
        "customer",
        cid,
        now,
        attributes={"spend": spend},
        received_at=now,
    )


def order_created(oid: str, cid: str, amount: float) -> Event:
    now = now_us()
    return Event(
        f"o-{oid}",
        "order_created",
        "order",
        oid,
        now,
        properties={"amount": amount},
        related={"customer": cid},
        received_at=now,
    )


def attributes(rt: Runtime, entity_type: str, entity_id: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        raw = conn.execute(
            sa.text("SELECT attributes FROM entities WHERE type = :t AND id = :i"),
            {"t": entity_type, "i": entity_id},
        ).scalar_one()
    return dict(rt.db.json_value(raw))


def runs(rt: Runtime) -> dict[str, Any]:
    with rt.db.read() as conn:
        return {r.entity_id: r for r in flow_store.runs(conn, flow="VIP_Order_Processing")}


@pytest.fixture
def seeded(
    tmp_path: Path, database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Runtime:
    monkeypatch.setenv("MANAGER_BOT_URL", f"{receiver.url}/robot/send?access_token=T0K3N")
    monkeypatch.setenv("MANAGER_BOT_SECRET", SECRET)
    return Runtime.open(flow_workspace(tmp_path / "ws", database_url))


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_seed_flow_runs_verbatim(seeded: Runtime, receiver: Receiver) -> None:
    rt = seeded
    try:
        assert "VIP_Order_Processing" in rt.workspace.flows
        send(rt, customer("C-1", 5000), customer("C-2", 10))  # VIP: spend >= 1000
        send(rt, order_created("O-1", "C-1", 1288), order_created("O-2", "C-2", 35))
        # The runs exist as soon as their events are committed, before any worker ran, with
        # their conditions decided on what the commit stored: only O-1 waits for a worker.
        assert {k: r.status for k, r in runs(rt).items()} == {"O-1": "pending", "O-2": "skipped"}
        worker = FlowWorker(rt)
        asyncio.run(worker.drain())
        done = runs(rt)
        assert done["O-1"].status == "succeeded", done["O-1"].error
        assert done["O-2"].status == "skipped"
        assert done["O-2"].error == "condition not met: customer.tags.contains('VIP')"
        # The priority change and the skipped credit check are on the order's profile.
        order = attributes(rt, "order", "O-1")
        assert (order["priority"], order["credit_check"]) == ("HIGH", "skipped")
        assert "priority" not in attributes(rt, "order", "O-2")
        # One DingTalk message, signed as DingTalk checks it, with the template filled in.
        (message,) = receiver.requests
        assert message.query["access_token"] == "T0K3N"
        timestamp = message.query["timestamp"]
        digest = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256)
        assert message.query["sign"] == base64.b64encode(digest.digest()).decode()
        body = message.json()
        assert body["msgtype"] == "markdown"
        assert "VIP 客户 C-1 下单 1288 元 （订单 O-1）" in body["markdown"]["text"]
        assert "订单 O-1" in body["markdown"]["text"]
        # The trace: the condition with its value, then each action with its arguments.
        with rt.db.read() as conn:
            trace = flow_store.trace(conn, done["O-1"].id)
        steps = [(t.step, t.kind, t.name, t.status) for t in trace]
        assert steps == [
            ("conditions[0]", "condition", "customer.tags.contains('VIP')", "done"),
            ("actions[0].skip_credit_check[0]", "action", "skip_credit_check", "ok"),
            ("actions[1].notify_manager[0]", "action", "notify_manager", "ok"),
            ("actions[2]", "action", "set_priority", "ok"),
        ]
        assert trace[0].result == {"value": True}
        assert trace[3].args["level"] == "HIGH"
    finally:
        rt.close()
