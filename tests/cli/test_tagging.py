"""``tagloop tags import``, ``tagloop recompute`` and ``tagloop explain`` in process."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.timeutil import now_us, time_text, to_us
from tests.cli.test_cli import run
from tests.conftest import write_workspace

DAY = 86_400_000_000
SH = ZoneInfo("Asia/Shanghai")


def month_start(back: int) -> datetime:
    """Midnight (Shanghai) starting the month ``back`` months before the current one: the
    CLI evaluates at the real present, so the data is placed relative to it."""
    today = datetime.now(SH)
    year, month = divmod(today.year * 12 + today.month - 1 - back, 12)
    return datetime(year, month + 1, 1, tzinfo=SH)


AMOUNTS = {3: 612_000, 2: 580_500, 1: 731_200}  # the last three complete months


TAGS = """
    tags:
      - name: VIP
        entity: customer
        rule: streak(month, sum(order.amount) > 500000) >= 3
      - name: recent_buyer
        entity: customer
        rule: count(order, 30d) > 0
      - name: key_account
        entity: customer
        kind: imported
      - name: key_vip
        entity: customer
        rule: has_tag('key_account') and has_tag('VIP')
"""


@pytest.fixture
def ws(tmp_path: Path, sqlite_url: str) -> Path:
    root = write_workspace(tmp_path / "ws", sqlite_url, tags=TAGS)
    rt = Runtime.open(root)
    rt.ingestor.commit(
        [
            Event(
                id=f"o{back}",
                type="order",
                entity_type="customer",
                entity_id="c1",
                time=to_us(month_start(back) + timedelta(days=4)),
                properties={"amount": amount},
            )
            for back, amount in AMOUNTS.items()
        ]
        + [
            Event(
                id="o9",
                type="order",
                entity_type="customer",
                entity_id="c2",
                time=now_us() - DAY,
                properties={"amount": 10},
            )
        ]
    )
    rt.close()
    return root


def label(back: int) -> str:
    return month_start(back).strftime("%Y-%m")


def test_explain_shows_the_evidence_per_month(ws: Path, capsys) -> None:
    code, out, _ = run(capsys, "-w", str(ws), "explain", "customer", "c1", "VIP")
    assert code == 0
    assert "streak(month, sum(order.amount) > 500000) >= 3" in out
    per_month = {label(back): amount for back, amount in sorted(AMOUNTS.items(), reverse=True)}
    assert f"sum(order.amount) per month = {json.dumps(per_month, separators=(',', ':'))}" in out
    code, out, _ = run(capsys, "-w", str(ws), "explain", "customer", "c2", "VIP", "--json")
    body = json.loads(out)
    assert body["assignment"] is None and body["now"]["held"] is False
    assert body["now"]["values"]["streak(month, sum(order.amount) > 500000)"] == 0
    code, _, err = run(capsys, "-w", str(ws), "explain", "customer", "c1", "VIPP")
    assert code == 1 and "unknown tag 'VIPP' (did you mean 'VIP'?)" in err


def test_recompute_now_as_of_and_on_duckdb(ws: Path, capsys) -> None:
    code, out, _ = run(capsys, "-w", str(ws), "recompute", "--json")
    body = json.loads(out)
    assert code == 0 and body["changes"] == 0  # the stream already did it all
    c1_recent = now_us() - to_us(month_start(1) + timedelta(days=4)) <= 30 * DAY
    assert body["holders"] == {"VIP": 1, "recent_buyer": 1 + c1_recent, "key_vip": 0}
    # When the month before last began, only one month had passed: no VIP yet; c1 had
    # ordered within 30 days (4 days into the month before), c2 not yet
    as_of = month_start(2)
    code, out, _ = run(
        capsys,
        "-w",
        str(ws),
        "recompute",
        "--as-of",
        as_of.strftime("%Y-%m-%d"),
        "--json",
        "--engine",
        "duckdb",
    )
    body = json.loads(out)
    assert body["holders"] == {"VIP": 0, "recent_buyer": 1, "key_vip": 0}
    assert body["as_of"] == time_text(to_us(as_of)) and body["engine"] == "duckdb"
    code, out, _ = run(capsys, "-w", str(ws), "tags", "--json")
    counts = {t["name"]: t["count"] for t in json.loads(out)}
    assert counts["VIP"] == 1  # --as-of reports, never writes
    code, _, err = run(capsys, "-w", str(ws), "recompute", "--as-of", "tomorrow")
    assert code == 1 and "--as-of: 'tomorrow' is not a date or time" in err


def test_recompute_writes_its_output_file(ws: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "vip.jsonl"
    code, _, _ = run(capsys, "-w", str(ws), "recompute", "--tag", "VIP", "--output", str(target))
    (line,) = target.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert code == 0 and record["entity"] == {"type": "customer", "id": "c1"}
    assert record["evidence"]["sum(order.amount) per month"][label(2)] == 580_500


def test_import_then_composite_and_rejections(ws: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("客户编号\nc1\nc2\nnobody\n", encoding="utf-8")
    code, out, err = run(
        capsys,
        "-w",
        str(ws),
        "tags",
        "import",
        "key_account",
        str(path),
        "--id-column",
        "客户编号",
        "--valid-for",
        "90d",
    )
    assert code == 1  # a line was rejected; the others are applied
    assert "3 records, 2 assigned" in out and "1 changes of tags reading 'key_account'" in out
    assert f"{path}:4: no customer with id 'nobody'" in err
    code, out, _ = run(capsys, "-w", str(ws), "explain", "customer", "c1", "key_vip")
    assert "has_tag('key_account') = true" in out
    code, _, err = run(capsys, "-w", str(ws), "tags", "import", "VIP", str(path))
    assert code == 1 and "only tags declared with 'kind: imported'" in err
