"""``tagloop reviews``: the queue, decisions, pins and error rates from the command line,
recorded as the operating-system user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tagloop.cli import main
from tagloop.runtime import Runtime
from tagloop.store.tables import audit_log
from tests.conftest import write_workspace
from tests.review.conftest import TAGS, customer, send


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


@pytest.fixture
def ws(tmp_path: Path, sqlite_url: str) -> Path:
    root = write_workspace(tmp_path / "ws", sqlite_url, tags=TAGS)
    rt = Runtime.open(root)
    try:
        send(rt, *(customer(f"c{i}", spend=1000 + i, city="上海") for i in range(4)))
    finally:
        rt.close()
    return root


def test_list_decide_and_rates(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = ["-w", str(ws)]
    code, out, _ = run(capsys, *w, "reviews", "list", "--tag", "big", "--json")
    assert code == 0
    items = json.loads(out)["items"]
    assert [i["entity"]["id"] for i in items] == ["c0", "c1", "c2", "c3"]
    ids = [str(i["id"]) for i in items]
    code, out, _ = run(capsys, *w, "reviews", "list", "--tag", "big")
    assert code == 0 and "customer/c0" in out and "4 of 4 items" in out

    code, out, _ = run(capsys, *w, "reviews", "show", ids[0])
    assert code == 0 and "spend = 1000" in out and "policy all" in out

    assert run(capsys, *w, "reviews", "approve", ids[0])[:2] == (
        0,
        "1 approved; 1 changes of tags reading them\n",
    )
    code, _, err = run(capsys, *w, "reviews", "reject", ids[1], "--reason", "nope")
    assert code == 1 and "unknown reason 'nope'" in err and "Traceback" not in err
    code, out, _ = run(capsys, *w, "reviews", "reject", ids[1], "--reason", "other")
    assert code == 0 and "1 rejected" in out
    code, out, _ = run(capsys, *w, "reviews", "override", ids[2], "--value", "false")
    assert code == 0 and "1 overridden" in out
    code, _, err = run(capsys, *w, "reviews", "approve")
    assert code == 1 and "name the items" in err
    code, out, _ = run(capsys, *w, "reviews", "approve", "--tag", "big")
    assert code == 0 and "1 approved" in out

    code, out, _ = run(capsys, *w, "reviews", "error-rates", "--json")
    (figures,) = json.loads(out)["items"]
    assert (figures["reviewed"], figures["error_rate"]) == (4, 0.5)
    code, out, _ = run(capsys, *w, "reviews", "error-rates")
    assert code == 0 and "50.0%" in out

    rt = Runtime.open(ws)
    try:
        with rt.db.read() as conn:
            actors = {
                r.actor for r in conn.execute(select(audit_log)) if r.action.startswith("review.")
            }
    finally:
        rt.close()
    assert len(actors) == 1 and next(iter(actors)).startswith("cli:")


def test_pin_and_unpin(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = ["-w", str(ws)]
    code, out, _ = run(
        capsys, *w, "reviews", "pin", "customer", "c1", "grade", "--value", "C", "--expires", "30d"
    )
    assert code == 0 and out.startswith('pin 1: customer c1 · grade = "C" until ')
    code, out, _ = run(
        capsys,
        *w,
        "reviews",
        "pin",
        "customer",
        "c2",
        "big",
        "--exclude",
        "--reason",
        "test account",
    )
    assert code == 0 and "big off" in out
    code, out, _ = run(capsys, *w, "reviews", "pins", "--json")
    assert [p["mode"] for p in json.loads(out)["items"]] == ["include", "exclude"]
    code, out, _ = run(capsys, *w, "entity", "customer", "c1", "--json")
    grade = next(t for t in json.loads(out)["tags"] if t["tag"] == "grade")
    assert grade["value"] == "C" and grade["source"].startswith("pin:cli:")
    assert run(capsys, *w, "reviews", "unpin", "1")[0] == 0
    code, _, err = run(capsys, *w, "reviews", "unpin", "1")
    assert code == 1 and "no live pin 1 (it is lifted)" in err
    code, _, err = run(capsys, *w, "reviews", "pin", "customer", "c1", "nope")
    assert code == 1 and "unknown tag 'nope'" in err
