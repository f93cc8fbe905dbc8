"""``tagloop flows`` and ``tagloop work-orders`` as an operator uses them: flows listed and
tested on an event without a trace left behind, runs started, run by the worker (once, and
until Ctrl-C), listed, shown and retried (audited), and work orders updated (audited)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tagloop.cli import main, output
from tagloop.ingest.event import Batch, Event
from tagloop.runtime import Runtime
from tagloop.store.db import Database
from tagloop.timeutil import now_us
from tests.flows.conftest import Receiver

VIP = "VIP_Order_Processing"


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as on a wide terminal (not wrapped at the 80 columns of a pipe)."""
    monkeypatch.setattr(output.out, "width", 200)


def tagloop(capsys: pytest.CaptureFixture[str], ws: Path, *args: str) -> tuple[int, str]:
    """Exit code and what was printed (stdout and stderr; stdout alone with --json)."""
    with pytest.raises(SystemExit) as done:
        main(["--workspace", str(ws), *args])
    captured = capsys.readouterr()
    text = captured.out if "--json" in args else captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    return int(done.value.code or 0), text


def as_json(capsys: pytest.CaptureFixture[str], ws: Path, *args: str) -> Any:
    code, text = tagloop(capsys, ws, *args, "--json")
    assert code == 0, text
    return orjson.loads(text)


def customers(ws: Path, *spends: tuple[str, float]) -> None:
    rt = Runtime.open(ws)
    try:
        now = now_us()
        events = [
            Event(
                f"c-{cid}",
                "profile",
                "customer",
                cid,
                now,
                attributes={"spend": spend},
                received_at=now,
            )
            for cid, spend in spends
        ]
        rt.ingestor.ingest(Batch(list(enumerate(events))))
    finally:
        rt.close()


def event_file(tmp_path: Path, name: str, value: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def order_created(oid: str, cid: str, amount: float) -> dict[str, Any]:
    return {
        "type": "order_created",
        "entity": {"type": "order", "id": oid},
        "related": {"customer": cid},
        "properties": {"amount": amount},
    }


def count(ws: Path, table: str) -> int:
    rt = Runtime.open(ws)
    try:
        with rt.db.read() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        rt.close()


def audit(capsys: pytest.CaptureFixture[str], ws: Path, action: str) -> list[dict[str, Any]]:
    code, text = tagloop(capsys, ws, "audit", "export", "--action", action)
    assert code == 0, text
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def started_run(text: str) -> str:
    """The run id in ``started run <id> of ...``."""
    return text.split("started run ", 1)[1].split()[0]


def test_flows_are_listed_and_tested_without_a_trace(
    operations_workspace: Path,
    tmp_path: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = operations_workspace
    flows = {f["name"]: f for f in as_json(capsys, ws, "flows", "list")}
    assert set(flows) == {VIP, "order_hook", "call_customer", "flaky_hook"}
    assert (flows[VIP]["trigger"], flows[VIP]["entity_type"], flows[VIP]["steps"]) == (
        "event order_created",
        "order",
        3,
    )
    code, text = tagloop(capsys, ws, "flows", "list")
    assert code == 0 and VIP in text and "event order_created" in text
    customers(ws, ("C-1", 5000), ("C-2", 10))
    vip = event_file(tmp_path, "vip.json", order_created("O-1", "C-1", 1288))
    report = as_json(capsys, ws, "flows", "test", VIP, "--event", str(vip))
    assert report["outcome"] == {"status": "succeeded"}
    assert [s["name"] for s in report["steps"]] == [
        "customer.tags.contains('VIP')",
        "skip_credit_check",
        "notify_manager",
        "set_priority",
    ]
    code, text = tagloop(capsys, ws, "flows", "test", VIP, "--event", str(vip))
    assert code == 0 and "set_priority" in text and "outcome: succeeded" in text
    small = event_file(tmp_path, "small.json", order_created("O-2", "C-2", 35))
    code, text = tagloop(capsys, ws, "flows", "test", VIP, "--event", str(small))
    assert code == 0
    assert "outcome: skipped: condition not met: customer.tags.contains('VIP')" in text
    # Touched nothing: no run, no trace, no message, no order.
    assert as_json(capsys, ws, "flows", "runs") == []
    assert (count(ws, "flow_steps"), count(ws, "events")) == (0, 2)
    assert receiver.requests == []
    # Refusals, each a message without a stack trace, exit 1.
    broken = event_file(tmp_path, "broken.json", {"type": "order_created"})
    code, text = tagloop(capsys, ws, "flows", "test", VIP, "--event", str(broken))
    assert code == 1 and "the event is refused" in text and "entity: is required" in text
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    code, text = tagloop(capsys, ws, "flows", "test", VIP, "--event", str(tmp_path / "bad.json"))
    assert code == 1 and "invalid JSON at line 1" in text
    code, text = tagloop(capsys, ws, "flows", "test", VIP, "--event", str(tmp_path / "none"))
    assert code == 1 and "cannot read it" in text
    code, text = tagloop(capsys, ws, "flows", "test", "VIP_Order", "--event", str(vip))
    assert code == 1 and "did you mean 'VIP_Order_Processing'" in text
    paid = event_file(
        tmp_path, "paid.json", {**order_created("O-1", "C-1", 1), "type": "order_paid"}
    )
    code, text = tagloop(capsys, ws, "flows", "test", VIP, "--event", str(paid))
    assert code == 1 and "triggered by order_created events, not order_paid" in text


def test_runs_started_run_shown_retried_and_work_orders_done(
    operations_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = operations_workspace
    code, text = tagloop(capsys, ws, "flows", "start", "order_hook", "order", "O-1")
    assert code == 0, text
    hook = started_run(text)
    code, text = tagloop(
        capsys, ws, "flows", "start", "call_customer", "customer", "C-1",
        "--input", "reason=callback", "--input", "tries=3",
    )  # fmt: skip
    assert code == 0, text
    ticket = started_run(text)
    code, text = tagloop(capsys, ws, "flows", "start", "order_hook", "customer", "C-1")
    assert code == 1 and "runs on order, not customer" in text
    code, text = tagloop(capsys, ws, "flows", "start", "order_hok", "order", "O-1")
    assert code == 1 and "did you mean 'order_hook'" in text
    code, text = tagloop(capsys, ws, "flows", "start", "order_hook", "order", "O-1", "--input", "x")
    assert code == 1 and "write it as name=value" in text
    pending = as_json(capsys, ws, "flows", "runs")
    assert {r["id"]: r["status"] for r in pending} == {hook: "pending", ticket: "pending"}
    # The worker, once: both runs, and a summary; one failed, so the exit code says so.
    code, text = tagloop(capsys, ws, "flows", "run", "--once")
    assert code == 1, text
    assert "failed runs: tagloop flows runs --status failed shows why" in text
    assert "2 run(s) finished by this worker" in text
    assert "1 succeeded, 1 failed, 0 skipped" in text
    failed = as_json(capsys, ws, "flows", "runs", "order_hook", "--status", "failed")
    assert [r["id"] for r in failed] == [hook]
    assert as_json(capsys, ws, "flows", "runs", "--status", "succeeded")[0]["id"] == ticket
    code, text = tagloop(capsys, ws, "flows", "runs", "--status", "lost")
    assert code == 1 and "unknown status 'lost'" in text
    code, text = tagloop(capsys, ws, "flows", "runs", "nope")
    assert code == 1 and "unknown flow 'nope'" in text
    code, text = tagloop(capsys, ws, "flows", "runs")
    assert code == 0 and hook in text and "gave up after 1 attempt" in text
    # The trace.
    shown = as_json(capsys, ws, "flows", "show", hook)
    assert shown["status"] == "failed" and shown["entity"] == {"type": "order", "id": "O-1"}
    assert [(t["step"], t["name"], t["status"]) for t in shown["trace"]] == [
        ("actions[0]", "webhook", "failed")
    ]
    code, text = tagloop(capsys, ws, "flows", "show", hook)
    assert code == 0 and "webhook" in text and "gave up after 1 attempt" in text
    code, text = tagloop(capsys, ws, "flows", "show", "no-such-run")
    assert code == 1 and "no flow run 'no-such-run'" in text
    # A retry: audited, once; the worker attempts the webhook again.
    code, text = tagloop(capsys, ws, "flows", "retry", hook)
    assert code == 0 and "pending again" in text
    code, text = tagloop(capsys, ws, "flows", "retry", hook)
    assert code == 1 and f"run {hook} is pending, not failed" in text
    code, text = tagloop(capsys, ws, "flows", "retry", ticket)
    assert code == 1 and "is succeeded, not failed" in text
    code, text = tagloop(capsys, ws, "flows", "retry", "no-such-run")
    assert code == 1 and "no flow run" in text
    (record,) = audit(capsys, ws, "flow.retry")
    assert (record["target_id"], record["actor_kind"]) == (hook, "cli")
    assert record["before"]["status"] == "failed" and record["after"] == {"status": "pending"}
    code, text = tagloop(capsys, ws, "flows", "run", "--once")
    assert code == 1 and "1 failed" in text
    retried = as_json(capsys, ws, "flows", "show", hook)
    assert [(t["kind"], t["attempt"]) for t in retried["trace"]] == [
        ("action", 1),
        ("redrive", 1),
        ("action", 2),
    ]
    # Nothing due, nothing failed since: a clean exit.
    code, text = tagloop(capsys, ws, "flows", "run", "--once")
    assert code == 0 and "0 run(s) finished by this worker" in text
    # The work order the ticket flow made, done by a person.
    (order,) = as_json(capsys, ws, "work-orders", "list")
    assert (order["title"], order["status"], order["assignee"]) == (
        "Call C-1: callback",
        "open",
        "sales",
    )
    code, text = tagloop(capsys, ws, "work-orders", "list")
    assert code == 0 and "Call C-1: callback" in text
    number = str(order["id"])
    code, text = tagloop(
        capsys, ws, "work-orders", "set", number, "--status", "done", "--assignee", "ana"
    )
    assert code == 0 and "done, assigned to ana" in text
    assert [o["id"] for o in as_json(capsys, ws, "work-orders", "list", "--status", "done")] == [
        order["id"]
    ]
    assert as_json(capsys, ws, "work-orders", "list", "--status", "open") == []
    code, text = tagloop(capsys, ws, "work-orders", "set", number, "--unassign")
    assert code == 0 and "unassigned" in text
    code, text = tagloop(capsys, ws, "work-orders", "set", number, "--status", "lost")
    assert code == 1 and "unknown status 'lost'" in text
    code, text = tagloop(capsys, ws, "work-orders", "set", number)
    assert code == 1 and "nothing to change" in text
    code, text = tagloop(capsys, ws, "work-orders", "set", "999", "--status", "done")
    assert code == 1 and "no work order 999" in text
    records = audit(capsys, ws, "work_order.update")
    assert [(r["before"], r["after"], r["actor_kind"]) for r in records] == [
        ({"status": "open", "assignee": "sales"}, {"status": "done", "assignee": "ana"}, "cli"),
        ({"assignee": "ana"}, {"assignee": None}, "cli"),
    ]
    assert tagloop(capsys, ws, "audit", "verify")[0] == 0


def test_the_worker_runs_until_interrupted(
    operations_workspace: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = operations_workspace
    code, text = tagloop(
        capsys, ws, "flows", "start", "call_customer", "customer", "C-1", "--input", "reason=x"
    )
    assert code == 0, text
    db = Database(database_url)
    stopped: list[str] = []

    def interrupt_when_done() -> None:
        # Ctrl-C once the run is done: the worker is then idle, waiting for more.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.read() as conn:
                status = conn.execute(sa.text("SELECT status FROM flow_runs")).scalar()
            if status == "succeeded":
                break
            time.sleep(0.02)
        stopped.append(str(status))
        os.kill(os.getpid(), signal.SIGINT)

    helper = threading.Thread(target=interrupt_when_done, daemon=True)
    helper.start()
    try:
        code, text = tagloop(capsys, ws, "flows", "run")
    finally:
        helper.join(35)
        db.dispose()
    assert stopped == ["succeeded"]
    assert code == 0, text
    assert "1 run(s) finished by this worker; since it started: 1 succeeded" in text
