"""Flow runs through the worker against the real store: retries with backoff that keep one
idempotency key, giving up and re-driving, dedupe, loop detection, waits, branches,
parallel groups, every internal action, and versions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from tagloop.flows.worker import FlowWorker
from tagloop.ingest.event import Batch, Event
from tagloop.runtime import Runtime
from tagloop.store import flows as flow_store
from tagloop.store import work_orders
from tests.flows.conftest import ORDER, Receiver, flow_workspace

START = 1_717_200_000_000_000  # 2024-06-01 00:00 UTC, in µs


class Clock:
    """A clock the test moves (waits and backoffs without waiting)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e6)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_rt(
    tmp_path: Path,
    database_url: str,
    flows: dict[str, str],
    clock: Clock,
    aliases: str = "actions: []\n",
    tags: str | None = None,
) -> Runtime:
    root = flow_workspace(tmp_path / "ws", database_url, flows, aliases)
    if tags is not None:
        (root / "tags" / "tags.yaml").write_text(tags, encoding="utf-8")
    return Runtime.open(root, clock=clock)


@pytest.fixture
def make(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[Any]:
    opened: list[Runtime] = []

    def build(
        flows: dict[str, str], aliases: str = "actions: []\n", tags: str | None = None
    ) -> Runtime:
        rt = open_rt(tmp_path, database_url, flows, clock, aliases, tags)
        opened.append(rt)
        return rt

    yield build
    for rt in opened:
        rt.close()


def order(rt: Runtime, oid: str, amount: float = 10, **extra: Any) -> None:
    now = rt.clock()
    event = Event(
        f"o-{oid}-{now}",
        "order_created",
        "order",
        oid,
        now,
        properties={"amount": amount},
        received_at=now,
        **extra,
    )
    rt.ingestor.ingest(Batch([(0, event)]))


def drain(rt: Runtime) -> FlowWorker:
    worker = FlowWorker(rt)
    asyncio.run(worker.drain())
    return worker


def the_run(rt: Runtime, flow: str) -> Any:
    with rt.db.read() as conn:
        (run,) = flow_store.runs(conn, flow=flow)
        return run


def trace(rt: Runtime, run_id: str) -> list[Any]:
    with rt.db.read() as conn:
        return flow_store.trace(conn, run_id)


def flow(name: str, steps: str, extra: str = "") -> str:
    return f"flow:\n  name: {name}\n  trigger: order_created\n{extra}  steps:\n{steps}"


SECRET = "whsec_" + "dGFnbG9vcC10ZXN0LXNlY3JldC0zMi1ieXRlcy0h"


def test_a_failing_webhook_is_retried_with_backoff_under_one_idempotency_key(
    make: Any, clock: Clock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from standardwebhooks.webhooks import Webhook

    monkeypatch.setenv("HOOK_SECRET", SECRET)
    receiver.answers = [(503, {}, {}), (429, {}, {"Retry-After": "30"})]
    step = f"    - webhook: {{url: '{receiver.url}/in', secret_env: HOOK_SECRET}}\n"
    rt = make({"hook.yaml": flow("hook", step)})
    order(rt, "O-1")
    drain(rt)
    run = the_run(rt, "hook")
    assert run.status == "retrying" and run.next_at > clock.now
    clock.advance(2)  # past the first backoff (1 s + jitter)
    drain(rt)
    run = the_run(rt, "hook")
    assert run.status == "retrying"
    assert run.next_at == clock.now + 30_000_000  # what Retry-After asked
    drain(rt)  # not due yet: nothing sent
    assert len(receiver.requests) == 2
    clock.advance(30)
    drain(rt)
    assert the_run(rt, "hook").status == "succeeded"
    keys = {r.headers["idempotency-key"] for r in receiver.requests}
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and len(keys) == 1 and keys == ids
    for request in receiver.requests:  # each attempt signed afresh, verifiably
        Webhook(SECRET).verify(request.body, request.headers)
    attempts = [(t.attempt, t.status) for t in trace(rt, run.id) if t.kind == "action"]
    assert attempts == [(1, "retry"), (2, "retry"), (3, "ok")]


def test_a_run_that_gives_up_is_failed_and_can_be_re_driven(
    make: Any, clock: Clock, receiver: Receiver
) -> None:
    receiver.answers = [(503, {}, {})] * 2
    steps = f"    - set_priority(HIGH)\n    - webhook: {{url: '{receiver.url}/in'}}\n"
    rt = make({"hook.yaml": flow("hook", steps, "  retry: {attempts: 2, initial: 1s}\n")})
    order(rt, "O-1")
    drain(rt)
    clock.advance(5)
    drain(rt)
    run = the_run(rt, "hook")
    assert run.status == "failed"
    assert "gave up after 2 attempt(s)" in run.error and "503" in run.error
    assert flow_store.retry(rt.db, run.id, clock.now)
    drain(rt)
    run = the_run(rt, "hook")
    assert run.status == "succeeded", run.error
    # The step that had succeeded was not done again; the webhook got a third attempt.
    kinds = [(t.step, t.status) for t in trace(rt, run.id) if t.kind == "action"]
    assert kinds == [
        ("steps[0]", "ok"),
        ("steps[1]", "retry"),
        ("steps[1]", "failed"),
        ("steps[1]", "ok"),
    ]
    assert not flow_store.retry(rt.db, run.id, clock.now)  # only failed runs


def test_dedupe_skips_runs_within_the_window(make: Any, clock: Clock) -> None:
    extra = "  dedupe: {key: '{{ entity.id }}', window: 1h}\n"
    rt = make({"d.yaml": flow("d", "    - set_priority(HIGH)\n", extra)})
    order(rt, "O-1")
    order(rt, "O-2")
    clock.advance(1)
    order(rt, "O-1")
    drain(rt)
    with rt.db.read() as conn:
        runs = sorted((r.entity_id, r.status) for r in flow_store.runs(conn, flow="d"))
    assert runs == [("O-1", "skipped"), ("O-1", "succeeded"), ("O-2", "succeeded")]
    clock.advance(3601)
    order(rt, "O-1")
    drain(rt)
    with rt.db.read() as conn:
        done = [r.status for r in flow_store.runs(conn, flow="d") if r.entity_id == "O-1"]
    assert sorted(done) == ["skipped", "succeeded", "succeeded"]


def test_conditions_are_decided_on_what_the_triggering_commit_stored(
    make: Any, clock: Clock
) -> None:
    extra = "  conditions: [\"priority == 'LOW'\"]\n"
    rt = make({"low.yaml": flow("low", "    - set_attribute(credit_check, done)\n", extra)})

    def event(eid: str, kind: str, **values: Any) -> Event:
        now = rt.clock()
        return Event(eid, kind, "order", "O-1", now, received_at=now, **values)

    created = event("e-created", "order_created", properties={"amount": 5})
    rt.ingestor.ingest(Batch([(0, event("e-low", "order_paid", attributes={"priority": "LOW"}))]))
    rt.ingestor.ingest(Batch([(0, created)]))
    run = the_run(rt, "low")
    assert run.status == "pending"
    assert [(t.step, t.result) for t in trace(rt, run.id)] == [("conditions[0]", {"value": True})]
    # What happens after the trigger does not change its decision: the worker acts on it
    # without evaluating the condition again.
    clock.advance(1)
    rt.ingestor.ingest(Batch([(0, event("e-high", "order_paid", attributes={"priority": "HIGH"}))]))
    drain(rt)
    run = the_run(rt, "low")
    assert run.status == "succeeded", run.error
    assert [t.step for t in trace(rt, run.id)] == ["conditions[0]", "steps[0]"]
    # A replayed event starts nothing and adds nothing to the trace.
    rt.ingestor.ingest(Batch([(0, created)]))
    assert the_run(rt, "low").id == run.id
    assert len(trace(rt, run.id)) == 2


def test_runs_taking_one_dedupe_key_at_once_get_it_once(make: Any) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    rt = make({"d.yaml": flow("d", "    - set_priority(HIGH)\n")})
    ready = threading.Barrier(8)

    def take(n: int) -> str | None:
        ready.wait()
        return flow_store.hold_dedupe(rt.db, "d", "C-1", f"run-{n}", START + 10, START)

    with ThreadPoolExecutor(8) as pool:
        holders = list(pool.map(take, range(8)))
    winners = [f"run-{n}" for n, holder in enumerate(holders) if holder is None]
    assert len(winners) == 1
    assert set(holders) == {None, winners[0]}
    # The holder taking it again (a replayed run) keeps it; after the window, anyone.
    assert flow_store.hold_dedupe(rt.db, "d", "C-1", winners[0], START + 10, START) is None
    assert flow_store.hold_dedupe(rt.db, "d", "C-1", "late", START + 20, START + 10) is None


def test_a_disabled_flow_starts_neither_on_its_trigger_nor_by_hand(make: Any) -> None:
    from tagloop.errors import Conflict

    rt = make({"paused.yaml": flow("paused", "    - set_priority(HIGH)\n", "  enabled: false\n")})
    order(rt, "O-1")
    with pytest.raises(Conflict, match=r"flow 'paused' is disabled"):
        FlowWorker(rt).start("paused", "order", "O-1")
    with rt.db.read() as conn:
        assert flow_store.runs(conn, flow="paused") == []


def test_finished_runs_are_pruned_with_their_trace_after_the_retention(
    make: Any, clock: Clock
) -> None:
    extra = '  conditions: ["event.amount > 100"]\n'
    rt = make({"p.yaml": flow("p", "    - wait: 100d\n", extra)})
    order(rt, "O-small", amount=5)  # skipped in its commit
    order(rt, "O-big", amount=500)  # waits for 100 days: not finished
    drain(rt)
    clock.advance(29 * 86400)
    order(rt, "O-late", amount=1)  # skipped 29 days later
    worker = FlowWorker(rt)
    assert worker.prune() == 0  # nothing older than engine.flow_runs_kept (30d) yet
    clock.advance(2 * 86400)
    assert worker.prune() == 1
    with rt.db.read() as conn:
        left = sorted((r.entity_id, r.status) for r in flow_store.runs(conn, flow="p"))
        orphans = conn.execute(
            sa.text(
                "SELECT count(*) FROM flow_steps WHERE run_id NOT IN (SELECT id FROM flow_runs)"
            )
        ).scalar_one()
    assert left == [("O-big", "waiting"), ("O-late", "skipped")]
    assert orphans == 0


def test_flows_that_trigger_each_other_stop_with_the_loop_recorded(make: Any) -> None:
    ping = "flow:\n  name: ping\n  trigger: order_created\n  steps:\n    - emit_event(order_paid)\n"
    pong = "flow:\n  name: pong\n  trigger: order_paid\n  steps:\n    - emit_event(order_created)\n"
    rt = make({"ping.yaml": ping, "pong.yaml": pong})
    order(rt, "O-1")
    for _ in range(4):
        drain(rt)
    with rt.db.read() as conn:
        runs = flow_store.runs(conn)
    by = sorted((r.flow, r.status, r.error or "") for r in runs)
    assert by == [
        ("ping", "failed", "loop detected: ping -> pong -> ping (not started)"),
        ("ping", "succeeded", ""),
        ("pong", "succeeded", ""),
    ]


def test_waits_branches_and_parallel_groups(make: Any, clock: Clock) -> None:
    steps = """\
    - if: "event.amount > 100"
      then: [set_priority(HIGH)]
      else: [set_priority(LOW)]
    - wait: 2h
    - parallel:
        - set_attribute(credit_check, done)
        - - create_work_order(title=发货, assignee=warehouse, due=4h)
    - wait_until: "priority == 'URGENT'"
      timeout: 1d
      check_every: 1h
      on_timeout:
        - set_attribute(credit_check, expired)
"""
    rt = make({"w.yaml": flow("w", steps)})
    order(rt, "O-1", amount=500)
    drain(rt)
    run = the_run(rt, "w")
    assert run.status == "waiting" and run.next_at == clock.now + 2 * 3600 * 1_000_000
    clock.advance(2 * 3600)
    drain(rt)
    run = the_run(rt, "w")
    assert run.status == "waiting"  # now in wait_until, checked every hour
    with rt.db.read() as conn:
        (work,) = work_orders.work_order_list(conn)
    assert (work.title, work.assignee, work.due_at) == (
        "发货",
        "warehouse",
        clock.now + 4 * 3600 * 1_000_000,
    )
    for _ in range(24):
        clock.advance(3600)
        drain(rt)
    assert the_run(rt, "w").status == "succeeded"
    attributes = profile(rt, "order", "O-1")
    assert (attributes["priority"], attributes["credit_check"]) == ("HIGH", "expired")
    decisions = [(t.step, t.result) for t in trace(rt, run.id) if t.kind == "if"]
    assert decisions == [("steps[0]", {"value": True})]


def profile(rt: Runtime, entity_type: str, entity_id: str) -> dict[str, Any]:
    from tagloop.store import entities as entity_store

    with rt.db.read() as conn:
        row = entity_store.get(conn, entity_type, entity_id)
    assert row is not None
    return dict(row.attributes)


def test_a_run_finishes_on_the_version_it_started_with(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    steps = "    - set_priority(HIGH)\n    - wait: 1h\n    - set_attribute(credit_check, v1)\n"
    rt = open_rt(tmp_path, database_url, {"v.yaml": flow("v", steps)}, clock)
    try:
        order(rt, "O-1")
        drain(rt)
        assert the_run(rt, "v").status == "waiting"
    finally:
        rt.close()
    changed = steps.replace("v1", "v2")
    rt = open_rt(tmp_path, database_url, {"v.yaml": flow("v", changed)}, clock)
    try:
        clock.advance(3600)
        drain(rt)
        order(rt, "O-2")
        drain(rt)
        assert profile(rt, "order", "O-1")["credit_check"] == "v1"  # its own version
        clock.advance(3600)
        drain(rt)
        assert profile(rt, "order", "O-2")["credit_check"] == "v2"
        with rt.db.read() as conn:
            runs = sorted((r.entity_id, r.version, r.status) for r in flow_store.runs(conn))
        assert runs == [("O-1", 1, "succeeded"), ("O-2", 2, "succeeded")]
    finally:
        rt.close()


assert "priority" in ORDER  # the order entity declares what the flows set


def test_a_scheduled_flow_starts_one_run_per_matching_entity_per_slot(
    make: Any, clock: Clock
) -> None:
    from tagloop.flows.schedule import Scheduler

    text = (
        "flow:\n  name: hourly\n"
        "  trigger: {every: 1h, entity: order, where: \"priority == 'HIGH'\"}\n"
        "  steps:\n    - set_attribute(credit_check, reviewed)\n"
    )
    rt = make({"s.yaml": text})
    for oid, priority in (("O-1", "HIGH"), ("O-2", "LOW"), ("O-3", "HIGH")):
        now = rt.clock()
        event = Event(
            f"p-{oid}",
            "order_created",
            "order",
            oid,
            now,
            received_at=now,
            attributes={"priority": priority},
        )
        rt.ingestor.ingest(Batch([(0, event)]))
    worker = FlowWorker(rt)
    scheduler = Scheduler(worker)
    assert scheduler.tick() == 2
    assert scheduler.tick() == 0  # the same slot
    asyncio.run(worker.drain())
    assert profile(rt, "order", "O-1")["credit_check"] == "reviewed"
    assert "credit_check" not in profile(rt, "order", "O-2")
    clock.advance(3600)
    assert Scheduler(FlowWorker(rt)).tick() == 2  # a new slot, and a new worker (restart)
    assert Scheduler(FlowWorker(rt)).tick() == 0  # the slot's runs exist: not twice
    with rt.db.read() as conn:
        runs = flow_store.runs(conn, flow="hourly")
    assert sorted(r.entity_id for r in runs) == ["O-1", "O-1", "O-3", "O-3"]


TAGGED = """
    tags:
      - {name: VIP, entity: customer, rule: spend >= 1000}
      - {name: rush, entity: order, kind: imported}
      - {name: vip_order, entity: order, rule: "has_tag('rush')"}
"""


def test_manual_tags_are_given_and_taken_and_computed_tags_follow(make: Any, clock: Clock) -> None:
    steps = (
        "    - if: 'event.amount > 100'\n"
        "      then: [add_tag(rush)]\n"
        "      else: [remove_tag(rush)]\n"
    )
    rt = make({"t.yaml": flow("t", steps)}, tags=TAGGED)
    order(rt, "O-1", amount=500)
    drain(rt)
    assert held(rt, "order", "O-1") == {"rush", "vip_order"}  # the rule followed
    clock.advance(1)
    order(rt, "O-1", amount=5)
    drain(rt)
    assert held(rt, "order", "O-1") == set()


def test_an_upload_of_manual_tags_starts_the_flows_their_changes_trigger(
    make: Any, clock: Clock
) -> None:
    from tagloop.engine import imports

    added = "flow:\n  name: on_rush\n  trigger: {tag_added: rush}\n  steps: [set_priority(HIGH)]\n"
    gone = "flow:\n  name: off_rush\n  trigger: {tag_removed: rush}\n  steps: [set_priority(LOW)]\n"
    rt = make({"a.yaml": added, "b.yaml": gone}, tags=TAGGED)
    order(rt, "O-1")
    order(rt, "O-2")
    active = imports.imported_tag(rt.active, "rush")
    upload = {"O-1": imports.Value(1, True), "O-2": imports.Value(2, True)}
    report = imports.ImportReport()
    imports.apply(
        rt.db, rt.engine, active, upload, report, where="t.csv", now=rt.clock(),
        flows=rt.ingestor,
    )  # fmt: skip
    drain(rt)
    assert priority(rt, "O-1") == priority(rt, "O-2") == "HIGH"
    # A replace upload without O-2 takes its tag away: the removal starts its flow.
    clock.advance(1)
    imports.apply(
        rt.db, rt.engine, active, {"O-1": imports.Value(1, True)}, imports.ImportReport(),
        where="t.csv", now=rt.clock(), mode="replace", flows=rt.ingestor,
    )  # fmt: skip
    drain(rt)
    assert (priority(rt, "O-1"), priority(rt, "O-2")) == ("HIGH", "LOW")
    with rt.db.read() as conn:
        started = sorted((r.flow, r.entity_id) for r in flow_store.runs(conn))
    assert started == [("off_rush", "O-2"), ("on_rush", "O-1"), ("on_rush", "O-2")]


def test_flows_that_give_and_take_a_tag_from_each_other_stop_with_the_loop_recorded(
    make: Any, clock: Clock
) -> None:
    give = "flow:\n  name: give\n  trigger: order_created\n  steps: [add_tag(rush)]\n"
    take = "flow:\n  name: take\n  trigger: {tag_added: rush}\n  steps: [remove_tag(rush)]\n"
    again = "flow:\n  name: again\n  trigger: {tag_removed: rush}\n  steps: [add_tag(rush)]\n"
    rt = make({"g.yaml": give, "t.yaml": take, "a.yaml": again}, tags=TAGGED)
    order(rt, "O-1")
    for _ in range(5):
        drain(rt)
    with rt.db.read() as conn:
        runs = sorted((r.flow, r.status, r.error or "") for r in flow_store.runs(conn))
    assert runs == [
        ("again", "succeeded", ""),
        ("give", "succeeded", ""),
        ("take", "failed", "loop detected: give -> take -> again -> take (not started)"),
        ("take", "succeeded", ""),
    ]


def priority(rt: Runtime, order_id: str) -> Any:
    from tagloop.store import entities as entity_store

    with rt.db.read() as conn:
        rows = entity_store.load(rt.db, conn, [("order", order_id)])
    return rows[("order", order_id)].attributes.get("priority")


def held(rt: Runtime, entity_type: str, entity_id: str) -> set[str]:
    from tagloop.store import tags as tag_store

    with rt.db.read() as conn:
        rows = tag_store.for_entity(conn, entity_type, entity_id)
    return {r.tag for r in rows if r.status == "active"}


class Processes:
    """A plugin that starts processes (the ``tagloop_start_process`` seam)."""

    started: ClassVar[list[tuple[str, str, str]]] = []

    @staticmethod
    def tagloop_start_process(
        process: str, entity_type: str, entity_id: str, inputs: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any] | None:
        if process != "complaint":
            return None
        Processes.started.append((process, entity_id, idempotency_key))
        return {"process_id": f"P-{len(Processes.started)}", "inputs": inputs}


def test_start_process_uses_a_plugin_and_fails_clearly_without_one(make: Any) -> None:
    from tagloop.hookspecs import hookimpl
    from tagloop.plugins import manager

    Processes.started.clear()
    steps = "    - 'start_process(complaint, {severity: high})'\n    - start_process(audit)\n"
    rt = make({"p.yaml": flow("p", steps)})
    plugin = type(
        "Plugin", (), {"tagloop_start_process": hookimpl(Processes.tagloop_start_process)}
    )
    manager().register(plugin, name="test-processes")
    try:
        order(rt, "O-1")
        drain(rt)
    finally:
        manager().unregister(name="test-processes")
    run = the_run(rt, "p")
    assert Processes.started == [("complaint", "O-1", f"{run.id}:steps[0]")]
    results = [(t.status, t.result) for t in trace(rt, run.id) if t.kind == "action"]
    assert results[0] == ("ok", {"process_id": "P-1", "inputs": {"severity": "high"}})
    assert run.status == "failed"
    assert "no process engine is installed to start 'audit'" in run.error


def test_a_worker_in_the_committing_process_takes_new_runs_from_the_commit(
    make: Any, receiver: Receiver
) -> None:
    import threading
    import time

    released = threading.Event()
    receiver.hold["/held"] = released
    rt = make({"h.yaml": flow("h", f"    - webhook: {{url: '{receiver.url}/held'}}\n")})
    rt.start_writer()  # the server's group commit, with the flow worker beside it
    order(rt, "O-1")
    # Leased to the worker in the commit that made it: it never waits to be claimed.
    run = the_run(rt, "h")
    assert (run.status, run.lease_until) == ("running", run.created_at + 5 * 60 * 1_000_000)
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [r.path for r in receiver.requests] == ["/held"]
    released.set()
    while the_run(rt, "h").status == "running" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert the_run(rt, "h").status == "succeeded"
    assert rt.flows is not None and rt.flows.worker.adopted == 1


def test_concurrency_and_rate_bound_the_runs_of_a_flow(make: Any, receiver: Receiver) -> None:
    import threading

    released = threading.Event()
    receiver.hold["/slow"] = released
    extra = "  concurrency: 2\n"
    rt = make({"c.yaml": flow("c", f"    - webhook: {{url: '{receiver.url}/slow'}}\n", extra)})
    for n in range(5):
        order(rt, f"O-{n}")
    worker = FlowWorker(rt)

    async def scenario() -> int:
        await worker.run_due()
        deadline = asyncio.get_running_loop().time() + 10
        while len(receiver.requests) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # room for a third call if the bound did not hold
        at_once = len(receiver.requests)
        released.set()
        await worker.drain()
        return at_once

    assert asyncio.run(scenario()) == 2
    with rt.db.read() as conn:
        assert {r.status for r in flow_store.runs(conn, flow="c")} == {"succeeded"}
    assert len(receiver.requests) == 5
