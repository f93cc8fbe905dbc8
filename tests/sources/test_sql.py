"""SQL sources against real PostgreSQL and MariaDB servers: incremental reads by cursor,
snapshots with change detection, dead letters and their replay, a crash mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from tagloop.errors import WorkspaceError
from tagloop.runtime import Runtime
from tagloop.sources.replay import replay
from tagloop.sources.runner import SourceRunner
from tagloop.store import sources as source_store
from tests import services
from tests.conftest import write_workspace

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"
BASE = datetime(2024, 3, 5, 8, 0, 0)
EQUIPMENT = """
    name: equipment
    fields:
      status: string
      temperature: number
    events:
      equipment_status:
        properties: {status: string, temperature: number}
"""


@pytest.fixture
def pg_table() -> Iterator[tuple[sa.Engine, str]]:
    services.require("PostgreSQL", "127.0.0.1", 5432)
    engine = sa.create_engine(PG)
    name = f"equipment_status_{uuid.uuid4().hex[:8]}"
    yield engine, name
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


@pytest.fixture
def maria_table() -> Iterator[tuple[sa.Engine, str]]:
    services.require("MariaDB", "127.0.0.1", 3306)
    engine = sa.create_engine(MARIADB)
    name = f"stock_{uuid.uuid4().hex[:8]}"
    yield engine, name
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


def create_status_table(engine: sa.Engine, name: str, rows: int) -> None:
    """Rows in groups of 7 sharing one updated_at, so ties cross every page boundary."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {name} (id integer PRIMARY KEY, equipment_id text NOT NULL, "
                "status text, temperature numeric(6,2), updated_at timestamp NOT NULL)"
            )
        )
        conn.execute(
            sa.text(f"INSERT INTO {name} VALUES (:id, :eq, :status, :temp, :at)"),
            [
                {
                    "id": i,
                    "eq": f"EQ-{i % 50:03d}",
                    "status": "running" if i % 3 else "stopped",
                    "temp": 60 + i % 40,
                    "at": BASE + timedelta(seconds=i // 7),
                }
                for i in range(rows)
            ],
        )


def workspace(tmp_path: Path, source: str) -> Path:
    return write_workspace(
        tmp_path / "ws",
        f"sqlite:///{tmp_path}/store.db",
        extra={"entities/equipment.yaml": EQUIPMENT, "sources/mes.yaml": source},
    )


def incremental_source(table: str, batch: int = 1000) -> str:
    # The seed's data-source configuration, one to one: a JDBC URL and a table mapping.
    return f"""
        name: mes
        type: jdbc
        url: jdbc:postgresql://127.0.0.1:5432/test?user=postgres
        table_mapping:
          {table}:
            type: equipment_status
            cursor: updated_at
            batch_size: {batch}
        mapping:
          entity_type: equipment
          entity_id: equipment_id
          time: updated_at
          properties: {{status: status, temperature: temperature}}
    """


def count_events(rt: Runtime, source: str = "mes") -> int:
    with rt.db.read() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM events WHERE source = :s"), {"s": source}
            ).scalar_one()
        )


def test_incremental_reads_every_row_once_and_then_only_changes(
    tmp_path: Path, pg_table: tuple[sa.Engine, str]
) -> None:
    engine, table = pg_table
    create_status_table(engine, table, 5_000)
    rt = Runtime.open(workspace(tmp_path, incremental_source(table, batch=1000)))
    runner = SourceRunner(rt, rt.workspace.sources["mes"])
    first = runner.run_once()
    assert (first.read, first.written, first.rejected) == (5_000, 5_000, 0)
    assert count_events(rt) == 5_000
    position = source_store.checkpoints(rt.db, "mes")[table]
    assert position["key"] == [4_999]
    # Three rows change (a later updated_at), one is added: exactly those are read.
    with engine.begin() as conn:
        later = BASE + timedelta(days=1)
        conn.execute(
            sa.text(
                f"UPDATE {table} SET status = 'alarm', updated_at = :at WHERE id IN (3, 7, 11)"
            ),
            {"at": later},
        )
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (5000, 'EQ-001', 'running', 70, :at)"),
            {"at": later},
        )
    second = runner.run_once()
    assert (second.read, second.written) == (4, 4)
    assert runner.run_once().read == 0
    with rt.db.read() as conn:
        alarms = (
            conn.execute(
                sa.text("SELECT entity_id FROM events WHERE properties LIKE '%alarm%' ORDER BY 1")
            )
            .scalars()
            .all()
        )
    assert alarms == ["EQ-003", "EQ-007", "EQ-011"]
    status = source_store.statuses(rt.db)["mes"]
    assert (status.records_read, status.events_written, status.state) == (5_004, 5_004, "idle")


def test_snapshot_turns_only_new_and_changed_rows_into_events(
    tmp_path: Path, maria_table: tuple[sa.Engine, str]
) -> None:
    engine, table = maria_table
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (sku varchar(20), warehouse varchar(20), qty int, "
                "PRIMARY KEY (sku, warehouse))"
            )
        )
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:sku, :wh, :qty)"),
            [{"sku": f"SKU-{i}", "wh": "上海一号仓", "qty": i} for i in range(300)],
        )
    source = f"""
        name: wms
        kind: sql
        url: mariadb://root@127.0.0.1:3306/test
        table_mapping:
          {table}: {{type: stock_level, batch_size: 100}}
        mapping:
          entity_type: product_batch
          entity_id: sku
          properties: {{warehouse: warehouse, qty: qty}}
    """
    root = write_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path}/store.db", extra={"sources/wms.yaml": source}
    )
    rt = Runtime.open(root)
    runner = SourceRunner(rt, rt.workspace.sources["wms"])
    assert runner.run_once().written == 300
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET qty = qty + 1 WHERE sku IN ('SKU-1', 'SKU-2')"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES ('SKU-new', '上海一号仓', 5)"))
    again = runner.run_once()
    assert (again.read, again.written, again.unchanged) == (301, 3, 298)
    # A row changed back is a change too (it is compared with the last version read).
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET qty = qty - 1 WHERE sku = 'SKU-1'"))
    assert runner.run_once().written == 1
    assert count_events(rt, "wms") == 304


def test_mapping_errors_go_to_dead_letters_and_replay_after_the_fix(
    tmp_path: Path, pg_table: tuple[sa.Engine, str]
) -> None:
    engine, table = pg_table
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"CREATE TABLE {table} (id integer PRIMARY KEY, customer text, amount text)")
        )
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:id, :c, :a)"),
            [
                {"id": 1, "c": "C-0001", "a": "1,200.50"},
                {"id": 2, "c": "C-0002", "a": "12,3x"},
                {"id": 3, "c": None, "a": "5"},
                {"id": 4, "c": "C-0004", "a": "3.5万"},
            ],
        )
    source = f"""
        name: crm
        kind: sql
        url: postgresql://postgres@127.0.0.1:5432/test
        table_mapping:
          {table}: order
        mapping:
          entity_type: customer
          entity_id: customer
          fields:
            amount: number
          properties: {{amount: amount}}
    """
    root = write_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path}/store.db", extra={"sources/crm.yaml": source}
    )
    rt = Runtime.open(root)
    tally = SourceRunner(rt, rt.workspace.sources["crm"]).run_once()
    assert (tally.written, tally.rejected) == (2, 2)
    assert sorted(tally.samples) == [
        f"source crm, table {table}, id=2, field amount: '12,3x' is not a number",
        f"source crm, table {table}, id=3, field customer: is empty",
    ]
    with rt.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT entity_id, properties FROM events ORDER BY entity_id")
        ).all()
    amounts = {entity: orjson.loads(props)["amount"] for entity, props in rows}
    assert amounts == {"C-0001": 1200.5, "C-0004": 35_000}
    # The operator fixes the data at the source for one and the mapping for the other.
    (root / "sources" / "crm.yaml").write_text(
        textwrap.dedent(source).replace(
            "properties: {amount: amount}",
            "properties: {amount: amount}\n  constants: {customer: C-unknown}",
        ),
        encoding="utf-8",
    )
    rt = Runtime.open(root)
    report = replay(rt, source="crm")
    assert (report.replayed, report.failed) == (1, 1)  # id 3 passes now, id 2 still fails
    assert count_events(rt, "crm") == 3
    assert replay(rt, source="crm").replayed == 0  # nothing twice
    with rt.db.read() as conn:
        audited = conn.execute(
            sa.text("SELECT target_id, after FROM audit_log WHERE action = 'deadletter.replay'")
        ).all()
    after = [a if isinstance(a, dict) else json.loads(a) for _, a in audited]
    # Each replay is audited: what it stored and what failed again.
    assert [t for t, _ in audited] == ["crm", "crm"]
    assert [(len(a["replayed"]), len(a["failed"])) for a in after] == [(1, 1), (0, 1)]


def test_a_source_that_cannot_connect_is_marked_failing_and_retried(tmp_path: Path) -> None:
    source = """
        name: mes
        type: jdbc
        url: jdbc:postgresql://127.0.0.1:1/production?user=etl&password=hunter2
        table_mapping: {equipment_status: equipment_status}
        mapping: {entity_type: equipment, entity_id: equipment_id}
    """
    rt = Runtime.open(workspace(tmp_path, source))
    runner = SourceRunner(rt, rt.workspace.sources["mes"])

    import asyncio

    async def until_failing() -> None:
        task = asyncio.create_task(runner.run_forever())
        deadline = time.monotonic() + 20
        while runner.failures < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # What `tagloop sources status` and /v1/sources show while it is retried.
        status = source_store.statuses(rt.db)["mes"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert status.state == "failing" and status.failures >= 2
        assert "OperationalError" in status.last_error and "hunter2" not in status.last_error
        assert status.next_attempt_at > status.last_error_at

    asyncio.run(until_failing())
    assert source_store.statuses(rt.db)["mes"].state == "stopped"


def test_the_seed_configuration_is_expressible_and_checked(tmp_path: Path) -> None:
    bad = """
        name: mes
        type: jdbc
        url: jdbc:postgresql://mes-db:5432/production
        table_mapping:
          equipment_status: {type: equipment_tags, curser: updated_at}
        mapping: {entity_type: equipment, entity_id: equipment_id}
    """
    with pytest.raises(WorkspaceError) as caught:
        Runtime.open(workspace(tmp_path, bad))
    (problem,) = caught.value.problems
    assert problem.where.startswith("sources/mes.yaml:6")
    assert "unknown key 'curser'" in problem.message


@pytest.mark.slow
def test_killed_mid_run_then_restarted_stores_every_row_exactly_once(
    tmp_path: Path, pg_table: tuple[sa.Engine, str]
) -> None:
    engine, table = pg_table
    create_status_table(engine, table, 30_000)
    root = workspace(tmp_path, incremental_source(table, batch=500))
    Runtime.open(root)  # migrate before timing anything
    command = [
        sys.executable,
        "-m",
        "tagloop",
        "--workspace",
        str(root),
        "sources",
        "run",
        "--once",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    deadline = time.monotonic() + 60
    committed = 0
    while time.monotonic() < deadline and committed < 3_000:
        with store.connect() as conn:
            committed = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    with store.connect() as conn:
        at_kill = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    store.dispose()
    assert 3_000 <= at_kill < 30_000, "the run must be killed mid-way"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    # The restart resumes at the checkpoint committed with the last events: it reads
    # exactly the rows not stored yet, and every row ends up stored once.
    assert f"mes: {30_000 - at_kill:,} records, {30_000 - at_kill:,} events stored" in rerun.stdout
    assert count_events(Runtime.open(root)) == 30_000
