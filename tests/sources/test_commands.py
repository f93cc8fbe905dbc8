"""`tagloop sources` and `tagloop deadletters` as an operator uses them, and the runner's
schedules and failure isolation."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tagloop.cli import main
from tagloop.runtime import Runtime
from tagloop.sources.runner import SourceRunner, run_sources
from tagloop.store import sources as source_store
from tests.conftest import write_workspace

ORDERS = """
    name: orders
    kind: file
    path: drop/*.csv
    every: 5m
    mapping:
      type: order
      entity_type: customer
      entity_id: cust
      time: at
      fields:
        amount: number
      properties: {amount: amount}
"""
BROKEN_DB = """
    name: erp
    type: jdbc
    url: jdbc:postgresql://127.0.0.1:1/erp?user=etl
    cron: "0 2 * * *"
    table_mapping: {orders: order}
    mapping: {entity_type: customer, entity_id: cust}
"""
CSV = "cust,at,amount\nC1,2024-03-05 10:00,12\n,2024-03-05 11:00,5\nC3,2024-03-05 12:00,7\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = write_workspace(
        tmp_path / "ws",
        f"sqlite:///{tmp_path}/store.db",
        extra={"sources/orders.yaml": ORDERS, "sources/erp.yaml": BROKEN_DB},
    )
    (root / "drop").mkdir()
    (root / "drop" / "a.csv").write_text(CSV, encoding="utf-8")
    return root


def tagloop(capsys: pytest.CaptureFixture[str], ws: Path, *args: str) -> tuple[int, str]:
    """Exit code and what was printed (stdout and stderr; stdout alone with --json)."""
    with pytest.raises(SystemExit) as done:
        main(["--workspace", str(ws), *args])
    captured = capsys.readouterr()
    text = captured.out if "--json" in args else captured.out + captured.err
    return int(done.value.code or 0), text


def stored(ws: Path) -> int:
    rt = Runtime.open(ws)
    with rt.db.read() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def status(capsys: pytest.CaptureFixture[str], ws: Path) -> tuple[int, dict[str, Any]]:
    code, text = tagloop(capsys, ws, "sources", "status", "--json")
    return code, {s["name"]: s for s in orjson.loads(text)}


def test_list_run_status_and_reset(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = tagloop(capsys, ws, "sources", "list", "--json")
    listed = {s["name"]: s for s in orjson.loads(text)}
    assert code == 0 and listed["orders"]["schedule"] == "every 5m"
    assert listed["erp"] == {
        "name": "erp",
        "kind": "sql",
        "enabled": True,
        "schedule": "cron 0 2 * * *",
        "streams": ["orders"],
    }
    code, states = status(capsys, ws)
    assert code == 0 and {s["state"] for s in states.values()} == {"never run"}
    code, text = tagloop(capsys, ws, "sources", "run", "--once", "orders")
    assert code == 0
    assert "orders: 3 records, 2 events stored, 0 duplicates" in text and "1 rejected" in text
    code, states = status(capsys, ws)
    orders = states["orders"]
    assert code == 0 and orders["state"] == "idle" and orders["last_success"] is not None
    assert (orders["records_read"], orders["events_written"], orders["rejected"]) == (3, 2, 1)
    # A source that cannot connect fails its run, and status says so (exit 1).
    code, text = tagloop(capsys, ws, "sources", "run", "--once", "erp")
    assert code == 1 and "erp: failed" in text
    code, states = status(capsys, ws)
    assert code == 1 and states["erp"]["state"] == "failing"
    assert "OperationalError" in states["erp"]["last_error"]
    assert tagloop(capsys, ws, "sources", "status")[0] == 1  # the table, for people, too
    # Reset: everything is read again, and nothing is stored twice.
    code, text = tagloop(capsys, ws, "sources", "reset", "orders")
    assert code == 0 and "1 checkpoint(s) cleared" in text
    # The reset is audited, with the position it forgot.
    code, text = tagloop(capsys, ws, "audit", "export")
    resets = [json.loads(line) for line in text.splitlines() if '"source.reset"' in line]
    assert [(r["target_id"], r["actor_kind"]) for r in resets] == [("orders", "cli")]
    assert resets[0]["before"] and tagloop(capsys, ws, "audit", "verify")[0] == 0
    code, text = tagloop(capsys, ws, "sources", "run", "--once", "orders")
    assert "3 records, 0 events stored, 2 duplicates" in text
    assert stored(ws) == 2
    code, text = tagloop(capsys, ws, "sources", "reset", "ordrs")
    assert code != 0 and "did you mean 'orders'" in text


def test_dead_letters_list_show_and_replay_after_a_fix(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tagloop(capsys, ws, "sources", "run", "--once", "orders")
    code, text = tagloop(capsys, ws, "deadletters", "list", "--json")
    (letter,) = orjson.loads(text)
    assert code == 0 and letter["location"] == "a.csv:3" and letter["stream"] == ""
    assert letter["error"] == "source orders, a.csv:3, field cust: is empty"
    code, text = tagloop(capsys, ws, "deadletters", "show", str(letter["seq"]))
    assert code == 0 and ",2024-03-05 11:00,5" in text and "source: orders" in text
    # Replaying before the fix fails again, and says why (exit 1); nothing is stored.
    code, text = tagloop(capsys, ws, "deadletters", "replay", "--source", "orders")
    assert code == 1 and "1 failed again" in text and stored(ws) == 2
    # The operator maps orders without a customer to walk-in sales: the letter now passes.
    source = ws / "sources" / "orders.yaml"
    fixed = "amount: number\n    cust: {default: walk-in}"
    source.write_text(source.read_text("utf-8").replace("amount: number", fixed), "utf-8")
    code, text = tagloop(capsys, ws, "deadletters", "replay", str(letter["seq"]))
    assert code == 0 and "replayed 1 dead letters (1 new events); 0 failed again" in text
    assert stored(ws) == 3
    code, text = tagloop(capsys, ws, "deadletters", "replay")
    assert code == 0 and "replayed 0 dead letters" in text and stored(ws) == 3
    code, text = tagloop(capsys, ws, "deadletters", "list", "--json")
    assert orjson.loads(text) == []  # replayed letters are listed only with --replayed
    code, text = tagloop(capsys, ws, "deadletters", "list", "--replayed", "--json")
    assert orjson.loads(text)[0]["replayed_at"] is not None
    code, text = tagloop(capsys, ws, "deadletters", "show", "99")
    assert code != 0 and "no dead letter numbered 99" in text


def test_schedules_every_and_cron_in_the_workspace_time_zone(ws: Path) -> None:
    rt = Runtime.open(ws)
    every = SourceRunner(rt, rt.workspace.sources["orders"])
    assert every.seconds_until_next() == 300
    cron = SourceRunner(rt, rt.workspace.sources["erp"])
    one_am = datetime(2024, 3, 5, 1, 0, tzinfo=rt.workspace.timezone)  # Asia/Shanghai
    assert cron.seconds_until_next(one_am) == 3600
    assert cron.seconds_until_next(one_am.replace(hour=3)) == 23 * 3600


def test_one_failing_source_does_not_stop_the_others(ws: Path) -> None:
    rt = Runtime.open(ws)

    async def scenario() -> None:
        task = asyncio.create_task(run_sources(rt))
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                status = source_store.statuses(rt.db)
                if "erp" in status and status["erp"].failures >= 2 and "orders" in status:
                    break
                await asyncio.sleep(0.05)
            status = source_store.statuses(rt.db)
            assert status["erp"].state == "failing" and status["erp"].failures >= 2
            assert status["orders"].state == "idle" and status["orders"].events_written == 2
            assert status["orders"].next_attempt_at is not None  # the next pull, in 5 min
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert {row.state for row in source_store.statuses(rt.db).values()} == {"stopped"}


def test_a_source_whose_process_died_shows_as_lost(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process killed with SIGKILL cannot write `stopped`: without a heartbeat for a
    minute its `running` source is shown `lost` (and status exits 1), not running for ever."""
    from tagloop.sources.status import LOST_AFTER
    from tagloop.timeutil import now_us

    rt = Runtime.open(ws)
    now = now_us()
    source_store.set_status(rt.db, "orders", {"state": "running", "updated_at": now - 5_000_000})
    source_store.set_status(rt.db, "erp", {"state": "idle", "updated_at": now})
    code, states = status(capsys, ws)
    assert code == 0 and states["orders"]["state"] == "running"
    stale = now - (LOST_AFTER + 1) * 1_000_000
    source_store.set_status(rt.db, "orders", {"state": "running", "updated_at": stale})
    code, states = status(capsys, ws)
    assert code == 1 and states["orders"]["state"] == "lost"
    assert states["orders"]["updated"].startswith(time.strftime("%Y-", time.gmtime()))
    assert states["erp"]["state"] == "idle"
    code, text = tagloop(capsys, ws, "sources", "status")
    assert code == 1 and "lost" in text


def test_a_quiet_listener_writes_a_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However quiet a source, its status row is rewritten every HEARTBEAT seconds."""
    from tagloop.sources import runner as runner_module
    from tagloop.sources.base import Deliver, StreamSource

    class Quiet(StreamSource):
        kind = "nats"

        async def run(self, deliver: Deliver) -> None:
            await asyncio.Event().wait()

    class QuietRunner(SourceRunner):
        pulled = False

        def _source(self) -> Quiet:
            return Quiet("orders", None)

    monkeypatch.setattr(runner_module, "HEARTBEAT", 0.5)
    root = write_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path}/store.db", extra={"sources/orders.yaml": ORDERS}
    )
    rt = Runtime.open(root)
    runner = QuietRunner(rt, rt.workspace.sources["orders"])

    async def scenario() -> set[int]:
        task = asyncio.create_task(runner.run_forever())
        seen: set[int] = set()
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:
            row = source_store.statuses(rt.db).get("orders")
            if row is not None and row.state == "running":
                seen.add(row.updated_at)
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        rt.close()
    assert len(seen) >= 3, "the status of a quiet running source was not rewritten"
