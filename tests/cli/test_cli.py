"""The command line, in process: exit codes, messages, files in, profiles out."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tagloop.cli import main
from tagloop.demo import SAMPLE
from tagloop.runtime import Runtime
from tagloop.store import deadletters, entities, events
from tests.conftest import write_workspace


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


@pytest.fixture
def ws(tmp_path: Path, sqlite_url: str) -> Path:
    return write_workspace(tmp_path / "ws", sqlite_url)


CSV = (
    "order_no,cust,when,amount,qty,city\n"
    "A1,c1,2024-03-05 10:00:00,12.5,2,上海\n"
    "A2,c2,2024-03-05 11:00:00,1_000,1,北京\n"
    "A3,,2024-03-05 12:00:00,3,1,杭州\n"
    "A4,c3,not a time,3,1,杭州\n"
    "A5,c4,2024-03-05 12:00:00,lots,1,杭州\n"
    "A6,c5,2024-03-05\n"
)
MAPPING = [
    "--type",
    "order",
    "--entity-type",
    "customer",
    "--entity-id",
    "cust",
    "--id",
    "order_no",
    "--time",
    "when",
    "--property",
    "amount=amount",
    "--property",
    "quantity=qty",
    "--attribute",
    "city=city",
]


def test_version_and_usage_errors(capsys) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("tagloop ")
    code, _, err = run(capsys, "ingest", "--no-such-option")
    assert code == 1 and "No such option" in err


def test_init_then_check(tmp_path: Path, capsys) -> None:
    target = tmp_path / "新工作区"
    code, out, _ = run(capsys, "init", str(target))
    assert code == 0 and "created workspace" in out
    code, out, _ = run(capsys, "--workspace", str(target), "check")
    assert code == 0 and "1 entity types, 1 tags" in out
    code, _, err = run(capsys, "init", str(target))
    assert code == 1 and "already holds a workspace" in err


def test_check_reports_file_line(ws: Path, capsys) -> None:
    (ws / "tags" / "bad.yaml").write_text(
        "name: x\nentity: customer\nrule: spend >\n", encoding="utf-8"
    )
    code, _, err = run(capsys, "-w", str(ws), "check")
    assert code == 1
    assert "tags/bad.yaml:3:14: the rule ends where a value was expected" in err
    assert "Traceback" not in err


def test_runtime_failure_exits_2(ws: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TAGLOOP_DATABASE_URL", "postgresql://tagloop@127.0.0.1:1/nothing")
    code, _, err = run(capsys, "-w", str(ws), "tags")
    assert code == 2 and "database unavailable" in err and "Traceback" not in err


def test_ingest_csv_keeps_good_rows_and_dead_letters_bad_ones(
    ws: Path, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(CSV, encoding="utf-8")
    code, out, err = run(capsys, "-w", str(ws), "ingest", str(path), *MAPPING)
    assert code == 1  # some records were rejected
    assert "6 records, 2 events stored, 0 duplicates, 4 rejected" in out
    assert f"{path}:4: cust: is empty" in err
    assert f"{path}:5: when: 'not a time' is not a time" in err
    assert f"{path}:6: properties.amount: 'lots' is not a valid number" in err
    assert f"{path}:7: has 3 columns, the header has 6" in err
    rt = Runtime.open(ws)
    try:
        with rt.db.read() as conn:
            letters = deadletters.listing(conn)
            c2 = entities.get(conn, "customer", "c2")
            stored = events.get(conn, "A1")
        assert {(d.location, d.source) for d in letters} == {
            (f"{path}:{n}", "file:cli") for n in (4, 5, 6, 7)
        }
        assert (
            next(d for d in letters if d.location.endswith(":4")).payload
            == "A3,,2024-03-05 12:00:00,3,1,杭州"
        )
        assert c2 is not None and c2.attributes == {"city": "北京"}
        assert stored is not None and stored.properties == {"amount": 12.5, "quantity": 2}
        # Naive times are in the workspace zone (Asia/Shanghai, UTC+8).
        assert stored.time == 1709604000 * 1_000_000
    finally:
        rt.close()
    code, out, _ = run(capsys, "-w", str(ws), "ingest", str(path), *MAPPING)
    assert "0 events stored, 2 duplicates" in out  # re-ingesting is idempotent


def test_a_nul_character_is_dead_lettered_on_every_backend(
    tmp_path: Path, database_url: str, capsys
) -> None:
    ws = write_workspace(tmp_path / "ws", database_url)
    path = tmp_path / "orders.csv"
    path.write_text(CSV.splitlines()[0] + "\nA1,c1,2024-03-05 10:00:00,12.5,2,上\x00海\n")
    code, out, err = run(capsys, "-w", str(ws), "ingest", str(path), *MAPPING)
    assert code == 1
    assert "1 records, 0 events stored, 0 duplicates, 1 rejected" in out
    assert f"{path}:2: attributes.city: contains a NUL character" in err
    rt = Runtime.open(ws)
    try:
        with rt.db.read() as conn:
            (letter,) = deadletters.listing(conn)
        assert letter.payload == "A1,c1,2024-03-05 10:00:00,12.5,2,上\\u0000海"
    finally:
        rt.close()


def test_ingest_gzip_jsonl_and_parquet(ws: Path, tmp_path: Path, capsys) -> None:
    gz = tmp_path / "orders.csv.gz"
    gz.write_bytes(
        gzip.compress(
            CSV.splitlines(keepends=True)[0].encode() + CSV.splitlines(keepends=True)[1].encode()
        )
    )
    jsonl = tmp_path / "orders.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "order_no": "J1",
                "cust": "j1",
                "when": "2024-03-05T00:00:00Z",
                "amount": 3.5,
                "qty": 1,
                "city": "上海",
            }
        )
        + "\n{oops\n",
        encoding="utf-8",
    )
    parquet = tmp_path / "orders.parquet"
    pq.write_table(
        pa.table(
            {
                "order_no": ["P1"],
                "cust": ["p1"],
                "when": ["2024-03-05 10:00:00"],
                "amount": [7.25],
                "qty": [3],
                "city": ["深圳"],
            }
        ),
        parquet,
    )
    code, out, err = run(
        capsys, "-w", str(ws), "ingest", str(gz), str(jsonl), str(parquet), *MAPPING
    )
    assert code == 1
    assert f"{gz}: 1 records, 1 events stored" in out
    assert f"{jsonl}: 2 records, 1 events stored, 0 duplicates, 1 rejected" in out
    assert f"{jsonl}:2: invalid JSON at column 2" in err
    assert f"{parquet}: 1 records, 1 events stored" in out
    code, out, _ = run(capsys, "-w", str(ws), "entity", "customer", "p1", "--json")
    assert code == 0
    profile = json.loads(out)
    assert profile["attributes"] == {"city": "深圳"}
    assert profile["events"][0]["properties"] == {"amount": 7.25, "quantity": 3}


def test_ingest_with_a_source_file(ws: Path, tmp_path: Path, capsys) -> None:
    (ws / "sources" / "orders.yaml").write_text(
        "name: orders\nkind: file\nformat: csv\nmapping:\n  type: order\n"
        "  entity_type: customer\n  entity_id: cust\n  time: when\n  timezone: UTC\n"
        "  related: {product_batch: order_no}\n",
        encoding="utf-8",
    )
    path = tmp_path / "orders.data"
    path.write_text(CSV.split("A3")[0], encoding="utf-8")
    code, out, _ = run(capsys, "-w", str(ws), "ingest", str(path), "--source", "orders")
    assert code == 0 and "2 events stored" in out
    code, out, _ = run(capsys, "-w", str(ws), "entity", "product_batch", "A1", "--json")
    assert json.loads(out)["event_count"] == 1
    code, out, _ = run(capsys, "-w", str(ws), "entity", "customer", "c1", "--json")
    event = json.loads(out)["events"][0]
    assert event["time"] == "2024-03-05T10:00:00Z"  # the source's time zone applies
    # Declared properties take their dictionary type; undeclared CSV cells stay text.
    assert event["properties"] == {"amount": 12.5, "qty": "2", "city": "上海"}
    code, _, err = run(capsys, "-w", str(ws), "ingest", str(path), "--source", "ordrs")
    assert code == 1 and "unknown source 'ordrs' (did you mean 'orders'?)" in err


def test_ingest_usage_problems(ws: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.csv"
    path.write_text(CSV, encoding="utf-8")
    code, _, err = run(capsys, "-w", str(ws), "ingest", str(path), "--type", "order")
    assert code == 1 and "--entity-type: Field required" in err
    code, _, err = run(
        capsys, "-w", str(ws), "ingest", str(path), *MAPPING[:-4], "--attribute", "city=town"
    )
    assert code == 1 and "mapped column(s) 'town' not in the file" in err
    code, _, err = run(capsys, "-w", str(ws), "ingest", str(tmp_path / "missing.csv"), *MAPPING)
    assert code == 1 and "no such file" in err
    code, _, err = run(capsys, "-w", str(ws), "ingest", str(tmp_path / "x.xlsx"), *MAPPING)
    assert code == 1


def test_entity_and_tags_text_output(ws: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(CSV.split("A3")[0], encoding="utf-8")
    run(capsys, "-w", str(ws), "ingest", str(path), *MAPPING, "--attribute", "spend=amount")
    code, out, _ = run(capsys, "-w", str(ws), "entity", "customer", "c2")
    assert code == 0 and "VIP" in out and "(spend=1000)" in out
    code, out, _ = run(capsys, "-w", str(ws), "tags", "--json")
    counts = {t["name"]: t["count"] for t in json.loads(out)}
    assert counts["VIP"] == 1 and counts["上海客户"] == 1
    code, _, err = run(capsys, "-w", str(ws), "entity", "customer", "nobody")
    assert code == 1 and "no customer with id 'nobody'" in err


def test_keys_lifecycle(ws: Path, capsys) -> None:
    code, out, _ = run(capsys, "-w", str(ws), "keys", "create", "erp", "--role", "ingest", "-q")
    key = out.strip()
    assert code == 0 and key.startswith("tl_") and len(key) > 40
    code, out, _ = run(capsys, "-w", str(ws), "keys", "list")
    assert key[:11] in out and "erp" in out and "active" in out and key not in out
    code, _, _ = run(capsys, "-w", str(ws), "keys", "revoke", key[:11])
    assert code == 0
    code, out, _ = run(capsys, "-w", str(ws), "keys", "list")
    assert "revoked" in out
    code, _, err = run(capsys, "-w", str(ws), "keys", "revoke", key[:11])
    assert code == 1 and "no active key" in err
    code, _, err = run(capsys, "-w", str(ws), "keys", "create", "x", "--role", "god")
    assert code == 1 and "unknown role" in err


def test_demo_loads_once_with_the_bundled_sample(tmp_path: Path, capsys) -> None:
    target = tmp_path / "demo"
    code, out, err = run(capsys, "demo", str(target), "--data", str(SAMPLE))
    assert code == 0
    assert "created demo workspace" in out
    assert "guest-checkout lines without a CustomerID" in out
    assert err.count("shown once") == 2
    assert "admin user admin password: " in err and "API key local-ingest (ingest)" in err
    code, out, err = run(capsys, "demo", str(target), "--data", str(SAMPLE))
    assert "demo data already loaded" in out and "shown once" not in err
    assert "admin user exists" in err
    code, out, _ = run(capsys, "-w", str(target), "tags", "--json")
    counts = {t["name"]: t["count"] for t in json.loads(out)}
    assert counts["主要市场"] >= 1 and counts["海外客户"] >= 1
    code, out, _ = run(capsys, "-w", str(target), "entity", "market", "United Kingdom", "--json")
    assert json.loads(out)["event_count"] > 1000
    # The demo's flows: the seed's VIP flow (verbatim; the sample's orders are from 2011,
    # so no customer holds VIP now and its runs end skipped on the condition), and the
    # onboarding of overseas customers, a work order for the export team each.
    import asyncio
    from collections import Counter

    from tagloop.flows.worker import FlowWorker
    from tagloop.runtime import Runtime
    from tagloop.store import flows as flow_store
    from tagloop.store import work_orders

    rt = Runtime.open(target)
    try:
        asyncio.run(FlowWorker(rt).drain(300))
        with rt.db.read() as conn:
            vip = flow_store.runs(conn, flow="VIP_Order_Processing", limit=1_000_000)
            onboarding = flow_store.runs(conn, flow="overseas_customer_onboarding", limit=10**6)
            orders = work_orders.work_order_list(conn, limit=1_000_000)
        assert vip and {(r.status, r.error) for r in vip} == {
            ("skipped", "condition not met: customer.tags.contains('VIP')")
        }
        assert Counter(r.status for r in onboarding) == {"succeeded": counts["海外客户"]}
        assert len(orders) == counts["海外客户"]
        assert all(o.assignee == "外贸部" and o.title.startswith("海外客户 ") for o in orders)
    finally:
        rt.close()
