"""``tagloop audit verify|export`` and the audit records of CLI changes (keys, tag
imports) and of workspace opens (tag versions, retirements)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tagloop.audit.query import Filters, export
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tests.cli.test_cli import run
from tests.conftest import write_workspace

TAGS = """
    tags:
      - name: VIP
        entity: customer
        rule: spend >= 1000
      - name: grade
        entity: customer
        kind: imported
        value_type: string
"""
CLI_USER = f"cli:{getpass.getuser()}"


@pytest.fixture
def ws(tmp_path: Path, database_url: str) -> Path:
    root = write_workspace(tmp_path / "ws", database_url, tags=TAGS)
    rt = Runtime.open(root)
    rt.ingestor.commit(
        [
            Event(
                id=f"e-{who}",
                type="identify",
                entity_type="customer",
                entity_id=who,
                time=1,
                attributes={"spend": 5000},
            )
            for who in ("c1", "c2")
        ]
    )
    rt.close()
    return root


def records(root: Path, **filters: Any) -> list[dict[str, Any]]:
    rt = Runtime.open(root)
    try:
        return list(export(rt.db, Filters(**filters)))
    finally:
        rt.close()


def tamper(root: Path, sql: str) -> None:
    rt = Runtime.open(root)
    try:
        with rt.db.engine.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        rt.close()


def test_workspace_open_records_tag_versions_and_retirements(ws: Path) -> None:
    (first, second) = records(ws, action="tag.version")
    assert (first["target_id"], second["target_id"]) == ("VIP", "grade")
    assert first["actor"] == "system" and first["actor_kind"] == "system"
    assert first["before"] is None and first["after"]["version"] == 1
    assert first["after"]["definition"]["rule"] == "spend >= 1000"

    path = ws / "tags" / "tags.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("spend >= 1000", "spend >= 2000").replace("name: grade", "name: grade2"),
        encoding="utf-8",
    )
    Runtime.open(ws).close()
    versions = records(ws, action="tag.version", target_id="VIP")
    assert [r["after"]["version"] for r in versions] == [1, 2]
    assert versions[1]["before"]["definition"]["rule"] == "spend >= 1000"
    assert versions[1]["after"]["definition"]["rule"] == "spend >= 2000"
    (retired,) = records(ws, action="tag.retire")
    assert retired["target_id"] == "grade" and retired["after"] is None
    assert retired["before"]["version"] == 1
    Runtime.open(ws).close()  # nothing changed: nothing recorded
    assert len(records(ws, target_type="tag")) == 5


def test_key_create_and_revoke_are_audited(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-w", str(ws), "keys", "create", "erp", "--role", "ingest", "-q")
    assert code == 0
    key = out.strip()
    code, _, _ = run(capsys, "-w", str(ws), "keys", "revoke", key[:11])
    assert code == 0
    created, revoked = records(ws, target_type="key")
    assert created["action"] == "key.create" and revoked["action"] == "key.revoke"
    assert created["target_id"] == revoked["target_id"]
    assert (created["actor"], created["actor_kind"], created["origin"]) == (CLI_USER, "cli", "cli")
    assert created["after"]["name"] == "erp" and created["after"]["roles"] == ["ingest"]
    assert created["after"]["prefix"] == key[:11]
    assert key not in json.dumps(created)  # never the secret
    assert revoked["before"]["revoked_at"] is None and revoked["after"]["revoked_at"] > 0
    code, _, _ = run(capsys, "-w", str(ws), "keys", "revoke", key[:11])
    assert code == 1 and len(records(ws, target_type="key")) == 2  # a failure records nothing


def test_tag_import_from_the_cli_is_audited(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upload = tmp_path / "grades.csv"
    upload.write_text("id,value\nc1,A\nc2,B\n", encoding="utf-8")
    assert run(capsys, "-w", str(ws), "tags", "import", "grade", str(upload))[0] == 0
    upload.write_text("id,value\nc1,C\n", encoding="utf-8")
    assert run(capsys, "-w", str(ws), "tags", "import", "grade", str(upload))[0] == 0
    first, second, removal = records(ws, action="tag.import")
    assert first["actor"] == CLI_USER and first["target_id"] == "grade"
    assert first["before"] is None
    assert first["after"]["values"] == {"c1": "A", "c2": "B"}
    assert first["after"]["upload"] == str(upload) and first["after"]["mode"] == "replace"
    assert second["before"] == {"values": {"c1": "A"}}
    assert second["after"]["values"] == {"c1": "C"}
    assert removal["before"] == {"values": {"c2": "B"}}
    assert removal["after"]["values"] == {"c2": None}


def test_verify_exit_codes(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "-w", str(ws), "keys", "create", "erp", "--role", "ingest", "-q")
    code, out, _ = run(capsys, "-w", str(ws), "audit", "verify")
    assert code == 0 and "3 records, chain intact" in out
    (head,) = [r["hash"] for r in records(ws) if r["seq"] == 3]
    assert head in out  # printed so that operators can anchor it

    tamper(ws, "UPDATE audit_log SET target_id = 'forged' WHERE seq = 2")
    code, out, err = run(capsys, "-w", str(ws), "audit", "verify")
    assert code == 1 and out == ""
    assert "audit chain broken at seq 2" in err and "edited" in err
    assert "last intact record: seq 1" in err


def test_verify_names_a_deleted_record(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b", "c"):
        run(capsys, "-w", str(ws), "keys", "create", name, "--role", "viewer", "-q")
    tamper(ws, "DELETE FROM audit_log WHERE seq = 4")
    code, _, err = run(capsys, "-w", str(ws), "audit", "verify")
    assert code == 1 and "broken at seq 5: seq 4 missing" in err


def test_export_as_jsonl(ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        run(capsys, "-w", str(ws), "keys", "create", name, "--role", "viewer", "-q")
    code, out, err = run(capsys, "-w", str(ws), "audit", "export")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["seq"] for r in lines] == [1, 2, 3, 4]
    assert "exported 4 audit records" in err
    target = tmp_path / "audit.jsonl"
    code, out, _ = run(
        capsys, "-w", str(ws), "audit", "export", "--action", "key.create", "-o", str(target)
    )
    exported = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
    assert code == 0 and out == ""
    assert [r["after"]["name"] for r in exported] == ["a", "b"]
    assert set(exported[0]) >= {"seq", "at", "time", "actor", "before", "after", "hash"}
    code, out, _ = run(capsys, "-w", str(ws), "audit", "export", "--actor", CLI_USER)
    assert len(out.splitlines()) == 2
    code, out, _ = run(capsys, "-w", str(ws), "audit", "export", "--since", "2999-01-01")
    assert code == 0 and out == ""
    code, out, _ = run(capsys, "-w", str(ws), "audit", "export", "--until", "2000-01-01T08:00")
    assert code == 0 and out == ""
    code, _, err = run(capsys, "-w", str(ws), "audit", "export", "--since", "yesterday")
    assert code == 1 and "--since: 'yesterday' is not a date or time" in err


def test_export_keeps_the_hashed_fields(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An export holds everything the hash covers: it can be re-verified off the host."""
    from tagloop.audit.chain import digest

    run(capsys, "-w", str(ws), "keys", "create", "a", "--role", "viewer", "-q")
    _, out, _ = run(capsys, "-w", str(ws), "audit", "export")
    for line in out.splitlines():
        row = json.loads(line)
        assert digest(row) == row["hash"]
