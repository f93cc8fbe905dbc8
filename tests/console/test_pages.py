"""Every console page, through the app: sign-in required, roles, errors as pages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tagloop.api.auth import CSRF_COOKIE
from tagloop.runtime import Runtime
from tagloop.store.tables import audit_log
from tests.console.conftest import new_failed_run, sign_in

SignIn = Callable[[str], TestClient]

PAGES = [
    "/",
    "/overview/live",
    "/tags",
    "/tags?q=上海",
    "/tags?sort=coverage&order=desc&page=1",
    "/entities",
    "/entities/customer/C-1",
    "/entities/customer/C-1/why/VIP",
    "/flows",
    "/flows/order_hook",
    "/sources",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_sign_in(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_a_viewer(as_role: SignIn, path: str) -> None:
    response = as_role("viewer").get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1" in response.text or path.startswith(
        ("/overview/live", "/entities/customer/C-1/why")
    )


def test_sign_in_page_and_bad_password(anonymous: TestClient) -> None:
    page = anonymous.get("/login")
    assert (
        page.status_code == 200 and 'for="username"' in page.text and 'for="password"' in page.text
    )
    refused = anonymous.post("/login", data={"username": "viewer", "password": "wrong"})
    assert refused.status_code == 401 and "Invalid username or password" in refused.text
    assert "tagloop_session" not in anonymous.cookies


def test_sign_in_goes_back_to_the_page_asked_for_and_never_elsewhere(
    anonymous: TestClient,
) -> None:
    from tests.console.conftest import PASSWORD

    for target, expected in (("/tags", "/tags"), ("https://evil.example/", "/"), ("//x", "/")):
        anonymous.cookies.clear()
        response = anonymous.post(
            "/login",
            data={"username": "viewer", "password": PASSWORD, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == expected


def test_the_session_is_the_apis(as_role: SignIn) -> None:
    client = as_role("editor")
    who = client.get("/v1/session").json()
    assert who["kind"] == "user" and who["roles"] == ["editor"]


def test_sign_out_needs_the_csrf_token_and_ends_the_session(anonymous: TestClient) -> None:
    client = sign_in(anonymous, "viewer")  # a session of its own: signing out ends it
    assert client.post("/logout", data={}).status_code == 403
    token = client.cookies[CSRF_COOKIE]
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_viewer_sees_no_retry_button_and_cannot_retry(as_role: SignIn, failed_run: str) -> None:
    client = as_role("viewer")
    page = client.get(f"/runs/{failed_run}")
    assert page.status_code == 200 and "failed" in page.text
    assert f'action="/runs/{failed_run}/retry"' not in page.text
    flow = client.get("/flows/order_hook").text
    assert "/retry" not in flow
    token = client.cookies[CSRF_COOKIE]
    refused = client.post(f"/runs/{failed_run}/retry", data={"csrf_token": token})
    assert refused.status_code == 403 and "replays:write" in refused.text


def test_an_editor_cannot_retry_either(as_role: SignIn, failed_run: str) -> None:
    # Retrying is replays:write (operator, admin), as for POST /v1/flows/runs/{id}/retry.
    client = as_role("editor")
    assert "/retry" not in client.get(f"/runs/{failed_run}").text
    token = client.cookies[CSRF_COOKIE]
    assert client.post(f"/runs/{failed_run}/retry", data={"csrf_token": token}).status_code == 403


def test_an_operator_retries_a_failed_run_audited(as_role: SignIn, console_rt: Runtime) -> None:
    run_id = new_failed_run(console_rt)  # its own: retrying changes it
    client = as_role("operator")
    page = client.get(f"/runs/{run_id}")
    assert f'action="/runs/{run_id}/retry"' in page.text
    assert client.post(f"/runs/{run_id}/retry", data={}).status_code == 403  # no CSRF
    token = client.cookies[CSRF_COOKIE]
    done = client.post(f"/runs/{run_id}/retry", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/runs/{run_id}?retried=1"
    again = client.get(done.headers["location"])
    assert "Queued again" in again.text
    with console_rt.db.read() as conn:
        records = list(conn.execute(audit_log.select().where(audit_log.c.action == "flow.retry")))
    assert [(r.actor, r.actor_kind) for r in records if r.target_id == run_id] == [
        ("operator", "user")
    ]
    unknown = client.post("/runs/no-such-run/retry", data={"csrf_token": token})
    assert unknown.status_code == 404 and "no flow run" in unknown.text


def test_profile_masks_pii_without_pii_read(as_role: SignIn) -> None:
    viewer = as_role("viewer").get("/entities/customer/C-1")
    assert "王芳" not in viewer.text and "***" in viewer.text
    admin = as_role("admin").get("/entities/customer/C-1")
    assert "王芳" in admin.text


def test_find_a_customer_and_read_why(as_role: SignIn) -> None:
    client = as_role("viewer")
    found = client.get(
        "/entities", params={"type": "customer", "id": " C-1 "}, follow_redirects=False
    )
    assert found.status_code == 303 and found.headers["location"] == "/entities/customer/C-1"
    profile = client.get("/entities/customer/C-1").text
    assert "VIP" in profile and "上海客户" in profile
    why = client.get("/entities/customer/C-1/why/VIP", headers={"HX-Request": "true"})
    assert why.status_code == 200 and "spend &gt;= 1000" in why.text and "<html" not in why.text
    missing = client.get("/entities/customer/nobody")
    assert missing.status_code == 404 and "no customer with id" in missing.text
    assert "Traceback" not in missing.text


def test_catalogue_tree_search_sort_and_coverage(as_role: SignIn) -> None:
    client = as_role("viewer")
    page = client.get("/tags").text
    assert "价值" in page and "等级" in page and "地域" in page  # the taxonomy tree
    assert "50.0%" in page  # VIP: 1 of the 2 customers

    def table(**params: str) -> str:  # the table only: the tree lists every tag
        text = client.get("/tags", params=params).text
        return text[text.index('id="tag-table"') :]

    chinese = table(q="上海")
    assert "上海客户" in chinese and "hot_batch" not in chinese
    english = table(q="big spenders")
    assert "VIP" in english and "上海客户" not in english
    branch = table(category="价值")
    assert "VIP" in branch and "frequent" not in branch
    table = client.get(
        "/tags", params={"sort": "name", "order": "desc"}, headers={"HX-Request": "1"}
    )
    assert "<html" not in table.text and 'aria-sort="descending"' in table.text


def test_flow_page_shows_definition_and_diagram(as_role: SignIn) -> None:
    page = as_role("viewer").get("/flows/order_hook").text
    assert "box-trigger" in page and "manual" in page and "box-action" in page
    assert "http://127.0.0.1:1/hook" in page  # the YAML as written
    assert as_role("viewer").get("/flows/nope").status_code == 404


def test_sources_page_and_replay_needs_replays_write(as_role: SignIn) -> None:
    viewer = as_role("viewer")
    assert viewer.get("/sources").status_code == 200
    token = viewer.cookies[CSRF_COOKIE]
    assert viewer.post("/sources/replay", data={"csrf_token": token}).status_code == 403
    operator = as_role("operator")
    token = operator.cookies[CSRF_COOKIE]
    done = operator.post("/sources/replay", data={"csrf_token": token})
    assert done.status_code == 200 and "Replayed 0" in done.text


def test_api_keys_work_too_and_ingest_keys_are_refused(
    anonymous: TestClient, console_rt: Runtime
) -> None:
    from tests.conftest import make_key

    viewer = {"Authorization": f"Bearer {make_key(console_rt, 'viewer')}"}
    assert anonymous.get("/tags", headers=viewer).status_code == 200
    ingest = {"Authorization": f"Bearer {make_key(console_rt, 'ingest')}"}
    refused = anonymous.get("/tags", headers=ingest)
    assert refused.status_code == 403 and "tags:read" in refused.text


def test_static_assets_are_served_offline_and_confined(anonymous: TestClient) -> None:
    for path in (
        "/static/console.css",
        "/static/vendor/htmx.min.js",
        "/static/vendor/echarts.min.js",
    ):
        assert anonymous.get(path).status_code == 200, path
    assert anonymous.get("/static/%2e%2e/web.py").status_code == 404
    assert anonymous.get("/static/nothing.js").status_code == 404


def test_an_unknown_page_is_a_page_for_browsers_and_json_for_the_api(
    anonymous: TestClient,
) -> None:
    page = anonymous.get("/no-such-page", headers={"Accept": "text/html,*/*"})
    assert page.status_code == 404 and "No such page" in page.text
    assert page.headers["content-type"].startswith("text/html")
    api = anonymous.get("/v1/no-such-thing", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.json()["code"] == "not_found"
    assert anonymous.get("/no-such-page").json()["code"] == "not_found"
