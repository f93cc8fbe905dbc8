"""``tagloop users`` and the identity options of ``tagloop keys``, on a real store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store import users as user_store
from tagloop.store.tables import audit_log
from tests.cli.test_cli import run
from tests.conftest import write_workspace


@pytest.fixture
def ws(tmp_path: Path, database_url: str) -> Path:
    return write_workspace(tmp_path / "ws", database_url)


def actions(ws: Path) -> list[tuple[str, str]]:
    rt = Runtime.open(ws)
    try:
        with rt.db.read() as conn:
            rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.seq))
            return [(r.action, r.actor_kind) for r in rows if r.action.startswith("user.")]
    finally:
        rt.close()


def sign_in(ws: Path, username: str, password: str) -> int:
    rt = Runtime.open(ws)
    try:
        with TestClient(create_app(rt), raise_server_exceptions=False) as client:
            body = {"username": username, "password": password}
            return client.post("/v1/session", json=body).status_code
    finally:
        rt.close()


def test_users_lifecycle(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-w", str(ws), "users", "add", "ana", "--role", "viewer")
    assert code == 0 and "shown once" in err, err
    password = out.strip()
    assert len(password) >= 20 and sign_in(ws, "ana", password) == 200
    code, _, err = run(capsys, "-w", str(ws), "users", "add", "ana", "--role", "viewer")
    assert code == 1 and "exists already" in err
    code, out, _ = run(capsys, "-w", str(ws), "users", "list")
    assert code == 0 and "ana" in out and "viewer" in out and "active" in out
    assert password not in out
    code, out, err = run(capsys, "-w", str(ws), "users", "passwd", "ana")
    new = out.strip()
    assert code == 0 and new != password and "shown once" in err
    assert sign_in(ws, "ana", password) == 401 and sign_in(ws, "ana", new) == 200
    code, out, _ = run(capsys, "-w", str(ws), "users", "disable", "ana")
    assert code == 0 and "disabled ana" in out
    assert sign_in(ws, "ana", new) == 401
    code, out, _ = run(capsys, "-w", str(ws), "users", "list")
    assert "disabled" in out
    code, _, err = run(capsys, "-w", str(ws), "users", "disable", "ana")
    assert code == 1 and "no active user" in err
    code, _, err = run(capsys, "-w", str(ws), "users", "passwd", "nobody")
    assert code == 1 and "no user" in err
    assert actions(ws) == [
        ("user.create", "cli"),
        ("user.password", "cli"),
        ("user.disable", "cli"),
    ]


def test_password_from_stdin(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret passphrase\n"))
    code, out, err = run(
        capsys, "-w", str(ws), "users", "add", "王芳", "-r", "editor", "--password-stdin"
    )
    assert code == 0 and out == "" and "added user '王芳'" in err
    assert sign_in(ws, "王芳", "s3cret passphrase") == 200
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run(capsys, "-w", str(ws), "users", "passwd", "王芳", "--password-stdin")
    assert code == 1 and "at least 8 characters" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run(
        capsys, "-w", str(ws), "users", "add", "x", "-r", "viewer", "--password-stdin"
    )
    assert code == 1 and "no password" in err


@pytest.mark.parametrize("name", ["admin\u202e", "a\x00b", " padded", "x" * 300, "a/b", "\u200f"])
def test_bad_usernames(ws: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, _, err = run(capsys, "-w", str(ws), "users", "add", name, "--role", "viewer")
    assert code == 1 and "username" in err


def test_user_roles_and_entity_types(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-w", str(ws), "users", "add", "u", "--role", "god")
    assert code == 1 and "unknown role" in err
    code, _, err = run(capsys, "-w", str(ws), "users", "add", "u", "-r", "viewer", "-e", "shipmnt")
    assert code == 1 and "unknown entity type 'shipmnt'" in err
    code, _, _ = run(
        capsys, "-w", str(ws), "users", "add", "u", "-r", "viewer", "-e", "device", "--pii"
    )
    assert code == 0
    rt = Runtime.open(ws)
    try:
        with rt.db.read() as conn:
            row = user_store.get(conn, "u")
    finally:
        rt.close()
    assert row is not None
    assert row.roles == ["viewer", "pii:read"] and row.entity_types == ["device"]


def test_keys_with_entity_types_and_pii(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "-w",
        str(ws),
        "keys",
        "create",
        "partner",
        "--role",
        "viewer",
        "--entity-type",
        "device",
        "-e",
        "account",
        "--pii",
    )
    assert code == 0 and "for account, device only" in err
    secret = out.strip()
    rt = Runtime.open(ws)
    try:
        with rt.db.read() as conn:
            row = key_store.find(conn, secret)
        assert row is not None
        assert row.roles == ["viewer", "pii:read"] and row.entity_types == ["account", "device"]
        with TestClient(create_app(rt), raise_server_exceptions=False) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            names = {t["entity"] for t in client.get("/v1/tags", headers=headers).json()["items"]}
            assert names <= {"account", "device"}
            assert client.get("/v1/entities/customer/c1", headers=headers).status_code == 404
            who = client.get("/v1/session", headers=headers).json()
            assert who["kind"] == "key" and who["entity_types"] == ["account", "device"]
    finally:
        rt.close()
    code, out, _ = run(capsys, "-w", str(ws), "keys", "list")
    assert "account" in out and "device" in out
    code, _, err = run(capsys, "-w", str(ws), "keys", "create", "k", "-r", "viewer", "-e", "nope")
    assert code == 1 and "unknown entity type 'nope'" in err
    code, _, err = run(capsys, "-w", str(ws), "keys", "create", "k", "-r", "pii:read")
    assert code == 1 and "at least one role" in err
    code, _, err = run(capsys, "-w", str(ws), "keys", "create", "bad\u202ename", "-r", "viewer")
    assert code == 1 and "control characters" in err


def test_demo_credentials_are_made_once(tmp_path: Path) -> None:
    from tagloop import demo

    root = tmp_path / "demo"
    demo.create_workspace(root)  # its SQLite database lives in the workspace folder
    rt = Runtime.open(root)
    try:
        first = demo.bootstrap(rt)
        assert first.admin_password and first.ingest_key is not None
        assert first.ingest_key.roles == ["ingest"]
        again = demo.bootstrap(rt)
        assert again.admin_password is None and again.ingest_key is None
        with TestClient(create_app(rt), raise_server_exceptions=False) as client:
            body = {"username": demo.ADMIN_USER, "password": first.admin_password}
            assert client.post("/v1/session", json=body).status_code == 200
            ingest = {"Authorization": f"Bearer {first.ingest_key.secret}"}
            assert client.get("/v1/tags", headers=ingest).status_code == 403
            assert client.get("/v1/tags").status_code == 401  # nothing open, not even here
    finally:
        rt.close()


def test_keys_limit_sets_a_key_s_own_rate_limit(ws: Path, capsys) -> None:
    code, secret, _ = run(capsys, "-w", str(ws), "keys", "create", "erp", "-r", "viewer", "-q")
    assert code == 0
    secret = secret.strip()
    prefix = secret[:11]
    code, out, _ = run(
        capsys, "-w", str(ws), "keys", "limit", prefix, "--rate", "2", "--burst", "3"
    )
    assert code == 0, out
    code, _, err = run(capsys, "-w", str(ws), "keys", "limit", "tl_nosuchkey", "--rate", "2")
    assert code != 0 and "no active key" in err
    rt = Runtime.open(ws)
    try:
        with TestClient(create_app(rt), raise_server_exceptions=False) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            assert client.get("/v1/tags", headers=headers).headers["RateLimit-Limit"] == "3"
        with rt.db.read() as conn:
            rows = conn.execute(sa.select(audit_log).where(audit_log.c.action == "key.limit"))
            (record,) = list(rows)
        assert record.after["limits"] == {"rate": 2.0, "burst": 3}
    finally:
        rt.close()
    code, _, _ = run(capsys, "-w", str(ws), "keys", "limit", prefix)  # back to the roles'
    assert code == 0
