"""Identities over HTTP: roles against routes, keys, sessions and CSRF, sign-in throttling,
entity-type restrictions, PII masking, and hostile input in every parameter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.api.auth import CSRF_COOKIE, SESSION_COOKIE
from tagloop.api.pii import MASK
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store import users as user_store
from tagloop.store.tables import audit_log, sessions
from tagloop.timeutil import now_us
from tests.conftest import TAGS, write_workspace

SHIPMENT = """
    name: shipment
    fields:
      carrier: string
      recipient: {type: string, pii: true}
"""
EXTRA_TAGS = """
      - name: grade
        entity: customer
        kind: imported
        value_type: string
      - name: named_wang
        entity: customer
        rule: name == '王芳'
      - name: in_transit
        entity: shipment
        rule: event_count >= 1
"""
PASSWORD = "correct horse battery"


@pytest.fixture
def rt(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    root = write_workspace(
        tmp_path / "ws",
        database_url,
        tags=TAGS + EXTRA_TAGS,
        extra={"entities/shipment.yaml": SHIPMENT},
    )
    # Request rate limits have tests of their own; here they would only get in the way
    # of the many requests of one key, and mask the sign-in throttling under test.
    with (root / "tagloop.yaml").open("a", encoding="utf-8") as handle:
        handle.write("limits:\n  enabled: false\n")
    runtime = Runtime.open(root)
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def key(rt: Runtime, *roles: str, types: list[str] | None = None, **options: Any) -> str:
    with rt.db.write() as conn:
        return key_store.create(
            conn, "k", list(roles), now_us(), options.get("expires_at"), entity_types=types
        ).secret


def add_user(rt: Runtime, name: str = "ana", roles: tuple[str, ...] = ("admin",)) -> None:
    with rt.db.write() as conn:
        user_store.create(conn, name, PASSWORD, list(roles), now_us())


def seed(client: TestClient, admin: dict[str, str]) -> None:
    body = [
        {
            "id": "e1",
            "type": "identify",
            "entity": {"type": "customer", "id": "c1"},
            "attributes": {"name": "王芳", "spend": 5000, "city": "上海"},
        },
        {
            "id": "e2",
            "type": "order",
            "entity": {"type": "customer", "id": "c1"},
            "properties": {"amount": 10},
        },
        {
            "id": "e3",
            "type": "scan",
            "entity": {"type": "shipment", "id": "s1"},
            "attributes": {"carrier": "SF", "recipient": "李雷"},
        },
    ]
    response = client.post("/v1/events", json=body, headers=admin)
    assert response.status_code == 200, response.text


# --- every role against every route class ----------------------------------------------

EVENT = [{"type": "order", "entity": {"type": "customer", "id": "c9"}}]
TRACK = {"userId": "c9", "event": "order", "properties": {"amount": 1}}
# (name, method, path, body, content type)
ROUTES: list[tuple[str, str, str, Any, str | None]] = [
    ("profile", "GET", "/v1/entities/customer/c1", None, None),
    ("entity list", "GET", "/v1/entities/customer?tag=VIP", None, None),
    ("explain", "GET", "/v1/entities/customer/c1/tags/VIP/explain", None, None),
    ("tag list", "GET", "/v1/tags", None, None),
    ("tag", "GET", "/v1/tags/VIP", None, None),
    ("tag import", "POST", "/v1/tags/grade/import", "id,value\nc1,A\n", "text/csv"),
    ("events", "POST", "/v1/events", EVENT, None),
    ("segment", "POST", "/v1/track", TRACK, None),
    ("metrics", "GET", "/metrics", None, None),
    ("whoami", "GET", "/v1/session", None, None),
    ("key list", "GET", "/v1/admin/keys", None, None),
    ("key create", "POST", "/v1/admin/keys", {"name": "x", "roles": ["viewer"]}, None),
    ("user list", "GET", "/v1/admin/users", None, None),
    ("audit", "GET", "/v1/audit", None, None),
]
READS = {"profile", "entity list", "explain", "tag list", "tag", "metrics", "whoami"}
ADMIN = {"key list", "key create", "user list", "audit"}
ALLOWED = {
    "admin": {name for name, *_ in ROUTES},
    "editor": READS | {"tag import"},
    "reviewer": READS,
    "operator": READS,
    "viewer": READS,
    "ingest": {"events", "segment", "whoami"},
}


def call(client: TestClient, method: str, path: str, body: Any, media: str | None, headers: Any):
    if media is not None:
        return client.request(
            method, path, content=body, headers={**headers, "Content-Type": media}
        )
    if body is not None:
        return client.request(method, path, json=body, headers=headers)
    return client.request(method, path, headers=headers)


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_every_role_against_every_route_class(
    role: str, client: TestClient, rt: Runtime, admin: dict[str, str]
) -> None:
    seed(client, admin)
    headers = bearer(key(rt, role))
    wrong = []
    for name, method, path, body, media in ROUTES:
        response = call(client, method, path, body, media, headers)
        expected = "2xx" if name in ALLOWED[role] else "403"
        got = "2xx" if 200 <= response.status_code < 300 else str(response.status_code)
        if got != expected:
            wrong.append(f"{role} {method} {path}: {got} ({response.text[:200]}), not {expected}")
    assert not wrong, "\n".join(wrong)


def test_the_same_roles_for_a_signed_in_user(local: TestClient, rt: Runtime) -> None:
    add_user(rt, "vera", ("viewer",))
    signed = sign_in(local, "vera")
    assert local.get("/v1/tags").status_code == 200
    response = local.post("/v1/events", json=EVENT, headers={"X-CSRF-Token": signed})
    assert response.status_code == 403 and "events:write" in response.json()["message"]


# --- credentials: missing, garbage, revoked, expired ------------------------------------

GARBAGE = [
    {},
    {"Authorization": "Bearer nope"},
    {"Authorization": "Bearer tl_" + "A" * 43},
    {"Authorization": "Basic !!!notbase64"},
    {"Authorization": "Token abc"},
    {"Cookie": f"{SESSION_COOKIE}=forged"},
]


@pytest.mark.parametrize("headers", GARBAGE, ids=range(len(GARBAGE)))
def test_401_without_a_valid_credential_on_every_protected_route(
    headers: dict[str, str], client: TestClient, admin: dict[str, str]
) -> None:
    seed(client, admin)
    for _, method, path, body, media in ROUTES:
        response = call(client, method, path, body, media, headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_401_does_not_tell_whether_a_resource_exists(
    client: TestClient, admin: dict[str, str]
) -> None:
    seed(client, admin)
    present = client.get("/v1/entities/customer/c1")
    missing = client.get("/v1/entities/customer/nobody")
    unknown_type = client.get("/v1/entities/nothing/nobody")
    assert present.status_code == missing.status_code == unknown_type.status_code == 401
    assert present.json() == missing.json() == unknown_type.json()
    forged = {"Authorization": admin["Authorization"].replace("tl_", "tl_x")}
    assert client.get("/v1/tags/VIP", headers=forged).json() == (
        client.get("/v1/tags/nope", headers=forged).json()
    )


def test_revocation_takes_effect_on_the_next_request(client: TestClient, admin: dict[str, str]):
    created = client.post(
        "/v1/admin/keys", json={"name": "partner", "roles": ["viewer"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret, prefix = body["key"], body["prefix"]
    assert secret.startswith(prefix) and body["state"] == "active"
    assert client.get("/v1/tags", headers=bearer(secret)).status_code == 200
    listing = client.get("/v1/admin/keys", headers=admin).json()["items"]
    assert all("key" not in k or k["key"] is None for k in listing)
    assert secret not in str(listing)
    assert client.delete(f"/v1/admin/keys/{prefix}", headers=admin).status_code == 204
    response = client.get("/v1/tags", headers=bearer(secret))
    assert response.status_code == 401 and "revoked" in response.json()["message"]
    assert client.delete(f"/v1/admin/keys/{prefix}", headers=admin).status_code == 404
    states = {
        k["prefix"]: k["state"] for k in client.get("/v1/admin/keys", headers=admin).json()["items"]
    }
    assert states[prefix] == "revoked"


def test_expired_keys_are_refused(client: TestClient, rt: Runtime) -> None:
    expired = key(rt, "admin", expires_at=now_us() - 1)
    response = client.get("/v1/tags", headers=bearer(expired))
    assert response.status_code == 401 and response.json()["message"] == "API key expired"
    admin = bearer(key(rt, "admin"))
    created = client.post(
        "/v1/admin/keys",
        json={"name": "short", "roles": ["viewer"], "expires": "1d"},
        headers=admin,
    ).json()
    assert created["expires_at"] is not None
    bad = client.post(
        "/v1/admin/keys", json={"name": "x", "roles": ["viewer"], "expires": "soon"}, headers=admin
    )
    assert bad.status_code == 400


def test_admin_api_validates_roles_and_types(client: TestClient, admin: dict[str, str]) -> None:
    for body in (
        {"name": "x", "roles": ["god"]},
        {"name": "x", "roles": []},
        {"name": "x", "roles": ["pii:read"]},  # a grant, not a role
        {"name": "x", "roles": ["viewer"], "entity_types": ["nothing"]},
    ):
        response = client.post("/v1/admin/keys", json=body, headers=admin)
        assert response.status_code == 400, (body, response.text)


def test_restricted_admin_cannot_manage_identities(client: TestClient, rt: Runtime) -> None:
    restricted = bearer(key(rt, "admin", types=["shipment"]))
    response = client.post(
        "/v1/admin/keys", json={"name": "escalate", "roles": ["admin"]}, headers=restricted
    )
    assert response.status_code == 403
    assert client.get("/v1/admin/users", headers=restricted).status_code == 403
    assert client.get("/v1/audit", headers=restricted).status_code == 403
    assert client.get("/v1/tags", headers=restricted).status_code == 200


# --- sessions, cookies, CSRF, throttling -----------------------------------------------


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in; the client keeps the cookies. Returns the CSRF token."""
    response = client.post("/v1/session", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


@pytest.fixture
def local(rt: Runtime) -> Iterator[TestClient]:
    """A client addressing the server as localhost, where cookies need not be Secure."""
    app = create_app(rt)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as c:
        yield c


def test_sign_in_sets_hardened_cookies(client: TestClient, rt: Runtime) -> None:
    add_user(rt)
    response = client.post("/v1/session", json={"username": "ana", "password": PASSWORD})
    assert response.status_code == 200
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    assert "httponly" in cookies[SESSION_COOKIE] and "httponly" not in cookies[CSRF_COOKIE]
    for text in cookies.values():
        assert "samesite=lax" in text and "secure" in text and "path=/" in text
    assert response.json()["csrf_token"].lower() in cookies[CSRF_COOKIE]
    assert response.json()["roles"] == ["admin"]


def test_sessions_and_csrf(local: TestClient, rt: Runtime) -> None:
    add_user(rt)
    form = local.post(
        "/v1/session",
        content=f"username=ana&password={PASSWORD.replace(' ', '+')}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 200, form.text
    assert "secure" not in form.headers["set-cookie"].lower()  # localhost over plain HTTP
    csrf = form.json()["csrf_token"]
    assert local.get("/v1/tags").status_code == 200  # reads need no CSRF token
    assert local.get("/v1/session").json()["kind"] == "user"
    missing = local.post("/v1/events", json=EVENT)
    wrong = local.post("/v1/events", json=EVENT, headers={"X-CSRF-Token": csrf[:-1] + "x"})
    for response in (missing, wrong):
        assert response.status_code == 403 and "CSRF" in response.json()["message"]
    ok = local.post("/v1/events", json=EVENT, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    assert local.delete("/v1/session").status_code == 403  # signing out is a change too
    assert local.delete("/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    token = local.cookies.get(SESSION_COOKIE)
    assert token is None
    assert local.get("/v1/tags").status_code == 401


def test_tampered_expired_and_ended_sessions_get_401(local: TestClient, rt: Runtime) -> None:
    add_user(rt)
    sign_in(local, "ana")
    token = local.cookies[SESSION_COOKIE]
    local.cookies.clear()
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for value in (tampered, token + "x", "", "%F0%9F%8D%AA", "' OR 1=1 --"):
        response = local.get("/v1/tags", headers={"Cookie": f"{SESSION_COOKIE}={value}"})
        assert response.status_code == 401, value
    assert local.get("/v1/tags", headers={"Cookie": f"{SESSION_COOKIE}={token}"}).is_success
    with rt.db.write() as conn:
        conn.execute(sa.update(sessions).values(expires_at=now_us() - 1))
    assert local.get("/v1/tags", headers={"Cookie": f"{SESSION_COOKIE}={token}"}).status_code == 401


def test_disabling_a_user_ends_its_sessions(local: TestClient, rt: Runtime) -> None:
    add_user(rt, "ana")
    add_user(rt, "bob", ("viewer",))
    sign_in(local, "bob")
    bob = local.cookies[SESSION_COOKIE]
    local.cookies.clear()
    admin = bearer(key(rt, "admin"))
    assert local.delete("/v1/admin/users/bob", headers=admin).status_code == 204
    assert local.get("/v1/tags", headers={"Cookie": f"{SESSION_COOKIE}={bob}"}).status_code == 401
    response = local.post("/v1/session", json={"username": "bob", "password": PASSWORD})
    assert response.status_code == 401
    assert local.delete("/v1/admin/users/bob", headers=admin).status_code == 404
    users = {
        u["username"]: u["state"]
        for u in local.get("/v1/admin/users", headers=admin).json()["items"]
    }
    assert users == {"ana": "active", "bob": "disabled"}


def test_failed_sign_ins_look_the_same(client: TestClient, rt: Runtime) -> None:
    add_user(rt)
    wrong = client.post("/v1/session", json={"username": "ana", "password": "wrong password"})
    unknown = client.post("/v1/session", json={"username": "nobody", "password": "x" * 9})
    # found by schemathesis: a NUL in the name was a 500 on PostgreSQL
    nul = client.post("/v1/session", data={"username": "\x00", "password": "x" * 9})
    assert wrong.status_code == unknown.status_code == nul.status_code == 401
    assert wrong.json() == unknown.json() == nul.json()

    def seconds(name: str) -> float:
        started = time.perf_counter()
        client.post("/v1/session", json={"username": name, "password": "nope nope"})
        return time.perf_counter() - started

    # An unknown user is checked against a decoy hash: no fast path to enumerate names.
    # (Each name is tried twice here; locks start after five failures.)
    known = min(seconds("ana"), seconds("ana"))
    missing = min(seconds("nobody2"), seconds("nobody2"))
    assert missing > known * 0.25, (missing, known)


def test_sign_in_throttling_per_username(client: TestClient, rt: Runtime) -> None:
    add_user(rt)
    for _ in range(user_store.LOCK_AFTER):
        response = client.post("/v1/session", json={"username": "ana", "password": "bad guess"})
        assert response.status_code == 401
    locked = client.post("/v1/session", json={"username": "ana", "password": PASSWORD})
    assert locked.status_code == 429, locked.text  # even the right password, for now
    assert locked.json()["code"] == "login_throttled"
    # The client is told when to come back: the first lock lasts LOCK_BASE_US.
    assert 1 <= int(locked.headers["Retry-After"]) <= user_store.LOCK_BASE_US // 1_000_000
    for _ in range(user_store.LOCK_AFTER):
        client.post("/v1/session", json={"username": "ghost", "password": "bad guess"})
    ghost = client.post("/v1/session", json={"username": "ghost", "password": PASSWORD})
    assert ghost.status_code == 429 and ghost.json() == locked.json()  # no hint it exists
    assert ghost.headers["Retry-After"] == locked.headers["Retry-After"]
    with rt.db.read() as conn:
        row = user_store.get(conn, "ana")
    assert row is not None and row.failed_logins == user_store.LOCK_AFTER
    # When the lock runs out, the next failure locks for twice as long.
    with rt.db.write() as conn:
        user_store.failed(conn, row.id, row.locked_until)
        row = user_store.get(conn, "ana")
    assert row.locked_until - now_us() > user_store.LOCK_BASE_US
    with rt.db.write() as conn:  # an administrator's new password unlocks the account
        user_store.set_password(conn, "ana", PASSWORD)
    assert client.post("/v1/session", json={"username": "ana", "password": PASSWORD}).is_success


def test_sign_in_throttling_per_client_address(client: TestClient, rt: Runtime) -> None:
    from tagloop.api.login import IP_LOCK_AFTER

    add_user(rt)
    for index in range(IP_LOCK_AFTER):  # different names: only the address links them
        client.post("/v1/session", json={"username": f"u{index}", "password": "bad guess"})
    response = client.post("/v1/session", json={"username": "ana", "password": PASSWORD})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= user_store.LOCK_BASE_US // 1_000_000


def test_sign_in_input_is_checked(client: TestClient) -> None:
    for body, media in (
        ("{}", "application/json"),
        ('{"username": "a"}', "application/json"),
        ('{"username": ["a"], "password": "b"}', "application/json"),
        ("[", "application/json"),
        ("username=a", "application/x-www-form-urlencoded"),
        ("\xff", "application/x-www-form-urlencoded"),
    ):
        response = client.post("/v1/session", content=body, headers={"Content-Type": media})
        assert response.status_code == 400, (body, response.text)
    response = client.post("/v1/session", content="u", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    long = client.post("/v1/session", json={"username": "a", "password": "p" * 5000})
    assert long.status_code in (400, 413)


# --- entity-type restrictions ----------------------------------------------------------


def test_a_restricted_key_sees_only_its_entity_types(
    client: TestClient, rt: Runtime, admin: dict[str, str]
) -> None:
    seed(client, admin)
    partner = bearer(key(rt, "viewer", "ingest", types=["shipment"]))
    assert client.get("/v1/entities/shipment/s1", headers=partner).status_code == 200
    present = client.get("/v1/entities/customer/c1", headers=partner)
    missing = client.get("/v1/entities/customer/nobody", headers=partner)
    assert present.status_code == missing.status_code == 404
    assert present.json() == missing.json()
    undeclared = client.get("/v1/entities/custom/nobody", headers=partner).json()
    assert present.json()["message"] == "unknown entity type 'customer' (known: shipment)"
    assert undeclared["message"] == "unknown entity type 'custom' (known: shipment)"
    assert client.get("/v1/entities/customer", headers=partner).json() == present.json()
    explained = client.get("/v1/entities/customer/c1/tags/VIP/explain", headers=partner)
    assert explained.status_code == 404 and explained.json() == present.json()
    # Tags of other types are as unknown as tags that do not exist.
    names = [t["name"] for t in client.get("/v1/tags", headers=partner).json()["items"]]
    assert names == ["in_transit"]
    vip = client.get("/v1/tags/VIP", headers=partner)
    nope = client.get("/v1/tags/VIQ", headers=partner)
    assert vip.status_code == nope.status_code == 404
    assert vip.json()["message"].replace("VIP", "VIQ") == nope.json()["message"]
    listed = client.get("/v1/entities/shipment?tag=VIP", headers=partner)
    assert listed.status_code == 404 and "did you mean" not in listed.json()["message"]
    # Writing: events of other types are refused as unknown types are.
    event = {"type": "order", "entity": {"type": "customer", "id": "c1"}}
    refused = client.post("/v1/events", json=event, headers=partner)
    assert refused.status_code == 400
    assert "unknown entity type 'customer' (known: shipment)" in refused.text
    related = {**event, "entity": {"type": "shipment", "id": "s1"}, "related": {"customer": "c1"}}
    assert client.post("/v1/events", json=related, headers=partner).status_code == 400
    track = client.post("/v1/track", json=TRACK, headers=partner)  # Segment users: customers
    assert track.status_code == 400 and "known: shipment" in track.text
    ok = {"type": "scan", "entity": {"type": "shipment", "id": "s2"}}
    assert client.post("/v1/events", json=ok, headers=partner).status_code == 200


def test_a_restricted_user_session(local: TestClient, rt: Runtime) -> None:
    with rt.db.write() as conn:
        user_store.create(conn, "log", PASSWORD, ["viewer"], now_us(), ["shipment"])
    sign_in(local, "log")
    assert local.get("/v1/session").json()["entity_types"] == ["shipment"]
    assert local.get("/v1/entities/customer/c1").status_code == 404


# --- PII masking ------------------------------------------------------------------------


def test_pii_is_masked_without_pii_read(
    client: TestClient, rt: Runtime, admin: dict[str, str]
) -> None:
    seed(client, admin)
    viewer = bearer(key(rt, "viewer"))
    profile = client.get("/v1/entities/customer/c1", headers=viewer).json()
    assert profile["attributes"]["name"] == MASK and profile["attributes"]["city"] == "上海"
    identify = next(e for e in profile["events"] if e["type"] == "identify")
    assert identify["attributes"]["name"] == MASK
    tags = {t["tag"]: t for t in profile["tags"]}
    assert tags["named_wang"]["evidence"]["values"] == {"name": MASK}
    shown = [profile["attributes"], profile["events"], profile["tag_history"]]
    assert "王芳" not in str(shown)  # (the rule's own text, in its evidence, may name it)
    page = client.get("/v1/entities/customer", headers=viewer).json()
    assert page["items"][0]["attributes"]["name"] == MASK
    explained = client.get(
        "/v1/entities/customer/c1/tags/named_wang/explain", headers=viewer
    ).json()
    assert explained["now"]["values"] == {"name": MASK}
    assert explained["assignment"]["evidence"]["values"] == {"name": MASK}
    shipment = client.get("/v1/entities/shipment/s1", headers=viewer).json()
    assert shipment["attributes"] == {"carrier": "SF", "recipient": MASK}
    with rt.db.read() as conn:
        assert not list(conn.execute(sa.select(audit_log).where(audit_log.c.action == "pii.read")))


def test_pii_read_reveals_and_is_audited(
    client: TestClient, rt: Runtime, admin: dict[str, str]
) -> None:
    seed(client, admin)
    reader = bearer(key(rt, "viewer", "pii:read"))
    profile = client.get("/v1/entities/customer/c1", headers=reader).json()
    assert profile["attributes"]["name"] == "王芳"
    explained = client.get("/v1/entities/customer/c1/tags/named_wang/explain", headers=reader)
    assert explained.json()["now"]["values"] == {"name": "王芳"}
    assert client.get("/v1/entities/customer/c1", headers=admin).json()["attributes"]["name"] == (
        "王芳"
    )
    with rt.db.read() as conn:
        records = list(
            conn.execute(
                sa.select(audit_log)
                .where(audit_log.c.action == "pii.read")
                .order_by(audit_log.c.seq)
            )
        )
    assert [(r.actor_kind, r.target_type, r.target_id) for r in records] == [
        ("key", "customer", "c1")
    ] * 3
    assert "customer.name" in records[0].after["fields"]
    # A profile without PII values is not a PII read.
    client.get("/v1/entities/customer/c9", headers=reader)
    client.get("/v1/tags", headers=reader)
    with rt.db.read() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(audit_log.c.action == "pii.read")
        ).scalar()
    assert count == 3


# --- hostile input ----------------------------------------------------------------------

HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE entities; --",
    '" OR ""="',
    '{"$ne": null}',
    '{"$gt": ""}',
    "%27%20OR%201%3D1",
    "\u202ecustomer",  # right-to-left override
    "\u200fid\u200e",  # RTL and LTR marks
    "a\x00b",
    "😀🇨🇳𝔘",  # 4-byte characters
    "x" * 5000,
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "\ud800",
]
TEMPLATES = [
    "/v1/entities/{v}/c1",
    "/v1/entities/customer/{v}",
    "/v1/entities/customer?tag={v}",
    "/v1/entities/customer?cursor={v}",
    "/v1/entities/customer?limit={v}",
    "/v1/entities/customer/c1?events={v}",
    "/v1/entities/customer/c1/tags/{v}/explain",
    "/v1/tags/{v}",
    "/v1/admin/keys/{v}",
    "/v1/admin/users/{v}",
    "/v1/audit?actor={v}&action={v}&target_id={v}",
    "/v1/audit?since={v}",
]


def quoted(value: str) -> str:
    from urllib.parse import quote

    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def test_hostile_parameters_get_4xx_never_5xx(
    client: TestClient, rt: Runtime, admin: dict[str, str]
) -> None:
    seed(client, admin)
    failures = []
    for template in TEMPLATES:
        for value in HOSTILE:
            method = "DELETE" if template.startswith("/v1/admin") else "GET"
            response = client.request(method, template.format(v=quoted(value)), headers=admin)
            if response.status_code >= 500 or "root:" in response.text:
                failures.append(f"{method} {template} {value[:30]!r}: {response.status_code}")
            elif response.status_code < 400 and template.endswith("{v}/c1"):
                failures.append(f"{template} {value[:30]!r} answered {response.status_code}")
    assert not failures, "\n".join(failures)
    nul_cursor = client.get("/v1/entities/customer?cursor=YQBi", headers=admin)  # "a\0b"
    assert nul_cursor.status_code == 400
    # Nothing was dropped, deleted or revoked on the way.
    assert client.get("/v1/entities/customer/c1", headers=admin).status_code == 200
    assert client.get("/v1/tags", headers=admin).status_code == 200


def test_hostile_names_for_keys_and_users(client: TestClient, admin: dict[str, str]) -> None:
    for name in ("admin\u202e", "a\x00b", " padded", "x" * 300, "a/b", "\u200f", "\ud800"):
        for path, field in (("/v1/admin/keys", "name"), ("/v1/admin/users", "username")):
            body = {field: name, "roles": ["viewer"]}
            response = client.post(
                path,
                content=__import__("json").dumps(body).encode(),
                headers={**admin, "Content-Type": "application/json"},
            )
            assert 400 <= response.status_code < 500, (path, name, response.text)
    for name in ("王芳", "😀 bot", "Ünïcödé"):
        made = client.post(
            "/v1/admin/users", json={"username": name, "roles": ["viewer"]}, headers=admin
        )
        assert made.status_code == 201, made.text
        password = made.json()["password"]
        signed = client.post("/v1/session", json={"username": name, "password": password})
        assert signed.status_code == 200 and signed.json()["name"] == name
    again = client.post(
        "/v1/admin/users", json={"username": "王芳", "roles": ["viewer"]}, headers=admin
    )
    assert again.status_code == 400 and "exists" in again.json()["message"]
    # NFC and NFD spellings are one name.
    decomposed = client.post(
        "/v1/admin/users",
        json={"username": "Ünïcödé".replace("Ü", "U\u0308"), "roles": ["viewer"]},
        headers=admin,
    )
    assert decomposed.status_code == 400


def test_path_traversal_in_upload_parameters(client: TestClient, admin: dict[str, str]) -> None:
    seed(client, admin)
    for value in ("../../etc/passwd", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd"):
        for path in (
            f"/v1/tags/{quoted(value)}/import",
            f"/v1/tags/grade/import?id_column={quoted(value)}&value_column={quoted(value)}",
        ):
            response = client.post(
                path, content="id,value\nc1,A\n", headers={**admin, "Content-Type": "text/csv"}
            )
            assert response.status_code < 500 and "root:" not in response.text, path
            if "grade" not in path:
                assert response.status_code == 404
