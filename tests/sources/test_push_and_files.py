"""Webhook pushes through the real API, and file sources read as files appear and grow,
on both storage backends."""

from __future__ import annotations

import gzip
import hashlib
import hmac
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tagloop.runtime import Runtime
from tagloop.sources.replay import replay
from tagloop.sources.runner import SourceRunner
from tests.conftest import write_workspace

SECRET = "s3cret-for-tests"
SOURCES = {
    "sources/web.yaml": """
        name: web_feedback
        kind: webhook
        secret: ${env:TAGLOOP_TEST_HOOK_SECRET}
        key: [ticket]
        mapping:
          type: feedback
          entity_type: customer
          entity_id: user.phone
          time: submitted_at
          epoch: ms
          fields:
            rating: {from: stars, type: integer}
          constants: {channel: web}
          properties: {rating: rating, channel: channel}
    """,
    "sources/orders.yaml": """
        name: order_files
        kind: file
        path: drop/orders-*.csv*
        batch_size: 2
        mapping:
          type: order
          entity_type: customer
          entity_id: 客户编号
          time: 下单时间
          fields:
            amount: {from: 金额, type: number}
          properties: {amount: amount}
    """,
}


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAGLOOP_TEST_HOOK_SECRET", SECRET)
    return write_workspace(tmp_path / "ws", database_url, extra=SOURCES)


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def events(rt: Runtime, source: str) -> list[tuple[str, dict[str, object]]]:
    with rt.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT entity_id, properties FROM events WHERE source = :s ORDER BY id"),
            {"s": source},
        ).all()
    return [(e, p if isinstance(p, dict) else orjson.loads(p)) for e, p in rows]


def test_a_signed_push_is_stored_once_and_bad_records_are_kept(
    client: TestClient, rt: Runtime
) -> None:
    body = orjson.dumps(
        [
            {
                "ticket": "T1",
                "user": {"phone": "13800000001"},
                "stars": "5",
                "submitted_at": 1709600000000,
            },
            {
                "ticket": "T2",
                "user": {"phone": "13800000002"},
                "stars": "five",
                "submitted_at": 1709600000000,
            },
            "not an object",
        ]
    )
    first = client.post("/v1/sources/web_feedback/push", content=body, headers=signed(body))
    assert first.status_code == 200, first.text
    result = first.json()
    assert (result["received"], result["accepted"], result["rejected"]) == (3, 1, 2)
    assert any("field rating: 'five' is not" in e for e in result["errors"])
    # The pusher retries (a timeout on its side): nothing is stored twice.
    again = client.post("/v1/sources/web_feedback/push", content=body, headers=signed(body))
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 1
    assert events(rt, "web_feedback") == [("13800000001", {"rating": 5, "channel": "web"})]
    with rt.db.read() as conn:
        letters = conn.execute(
            sa.text("SELECT location, payload FROM dead_letters ORDER BY seq")
        ).all()
    assert [loc.split(", ")[1] for loc, _ in letters[:2]] == ["item 2", "item 3"]
    assert orjson.loads(letters[0].payload)["stars"] == "five"


def test_pushes_need_a_valid_signature_or_a_key(
    client: TestClient, rt: Runtime, ingest_headers: dict[str, str], admin: dict[str, str]
) -> None:
    body = b'{"ticket": "T9", "user": {"phone": "1"}, "stars": 1, "submitted_at": 0}'
    url = "/v1/sources/web_feedback/push"
    assert client.post(url, content=body).status_code == 401
    forged = signed(b"something else")
    assert client.post(url, content=body, headers=forged).status_code == 401
    keyed = client.post(url, content=body, headers=ingest_headers)
    assert keyed.status_code == 200 and keyed.json()["accepted"] == 1
    # Unknown (or non-webhook) sources are not found, for a key that may push.
    assert client.post("/v1/sources/nope/push", content=body, headers=admin).status_code == 404
    assert (
        client.post("/v1/sources/order_files/push", content=body, headers=admin).status_code == 404
    )


def test_sources_and_their_status_over_http(
    client: TestClient, admin: dict[str, str], ingest_headers: dict[str, str]
) -> None:
    listed = {s["name"]: s for s in client.get("/v1/sources", headers=admin).json()}
    assert listed["order_files"]["kind"] == "file"
    assert listed["web_feedback"]["state"] == "never run"
    assert client.get("/v1/sources", headers=ingest_headers).status_code == 403


def test_files_are_read_as_they_appear_and_grow(rt: Runtime, workspace: Path) -> None:
    drop = workspace / "drop"
    drop.mkdir()
    header = "客户编号,下单时间,金额\n"
    (drop / "orders-1.csv").write_text(
        header + 'C1,2024-03-05 10:00,1200\nC2,2024-03-05 11:00,"1,250.5"\nC3,bad,5\n',
        encoding="utf-8",
    )
    runner = SourceRunner(rt, rt.workspace.sources["order_files"])
    first = runner.run_once()
    assert (first.read, first.written, first.rejected) == (3, 2, 1)
    (sample,) = first.samples
    assert sample.startswith("source order_files, orders-1.csv:4, field 下单时间: 'bad'")
    # Nothing new: nothing read.
    assert runner.run_once().read == 0
    # The file grows and a compressed one arrives.
    with (drop / "orders-1.csv").open("a", encoding="utf-8") as handle:
        handle.write("C4,2024-03-06 09:00,7\n")
    with gzip.open(drop / "orders-2.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write(header + "C5,2024-03-07 09:00,8\n")
    second = runner.run_once()
    assert (second.read, second.written) == (2, 2)
    amounts = {e: p["amount"] for e, p in events(rt, "order_files")}
    assert amounts == {"C1": 1200, "C2": 1250.5, "C4": 7, "C5": 8}
    # A writer stopped mid-line: the unfinished line is held back, not stored truncated.
    with (drop / "orders-1.csv").open("a", encoding="utf-8") as handle:
        handle.write("C6,2024-03-08 09:00,12")
    assert runner.run_once().read == 0
    with (drop / "orders-1.csv").open("a", encoding="utf-8") as handle:
        handle.write("34\nC7,2024-03-08 10:00,5")  # finished; another line, no newline
    assert runner.run_once().written == 1
    assert runner.run_once().written == 1  # unchanged since the last pull: it is whole
    amounts = {e: p["amount"] for e, p in events(rt, "order_files")}
    assert (amounts["C6"], amounts["C7"]) == (1234, 5)
    # The bad time is fixed in place at the source's mapping level: replay finds it again.
    assert replay(rt, source="order_files").failed == 1
