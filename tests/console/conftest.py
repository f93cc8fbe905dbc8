"""A small console workspace: customers with tags, a flow that fails, and one user per
role, signed in through the console's own form."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from http.cookiejar import Cookie
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.flows.worker import FlowWorker
from tagloop.runtime import Runtime
from tagloop.store import users as user_store
from tagloop.timeutil import now_us
from tests import services
from tests.conftest import LiveServer, make_key
from tests.flows.conftest import FAILING_HOOK, flow_workspace

PASSWORD = "console-pass-1234"
ROLES = ("admin", "editor", "operator", "viewer")
# Cookies are Secure unless the host is localhost: the test client must look local.
BASE = "http://127.0.0.1"

EVENTS = [
    {
        "id": "e-1",
        "type": "profile",
        "entity": {"type": "customer", "id": "C-1"},
        "attributes": {"spend": 1500, "city": "上海", "name": "王芳"},
    },
    {
        "id": "e-2",
        "type": "order",
        "entity": {"type": "customer", "id": "C-1"},
        "properties": {"amount": 88.5, "quantity": 2},
    },
    {
        "id": "e-3",
        "type": "profile",
        "entity": {"type": "customer", "id": "C-2"},
        "attributes": {"spend": 10, "city": "北京"},
    },
]


def new_failed_run(rt: Runtime) -> str:
    """Start the failing flow on a new order and run it to its failure; the run's id."""
    operator = {"Authorization": f"Bearer {make_key(rt, 'operator')}"}
    client = TestClient(create_app(rt), base_url=BASE)
    started = client.post(
        "/v1/flows/order_hook/runs",
        json={"entity_type": "order", "entity_id": f"O-{uuid.uuid4().hex[:8]}"},
        headers=operator,
    )
    assert started.status_code == 201, started.text
    # In a thread of its own: Playwright's sync API runs an event loop in this one.
    worker = threading.Thread(target=lambda: asyncio.run(FlowWorker(rt).drain()))
    worker.start()
    worker.join(60)
    run_id: str = started.json()["id"]
    return run_id


def seed(rt: Runtime) -> str:
    """Users of every role, the events above, and one failed run; the run's id."""
    with rt.db.write() as conn:
        for role in ROLES:
            user_store.create(conn, role, PASSWORD, [role], now_us())
    client = TestClient(create_app(rt), base_url=BASE)
    ingest = {"Authorization": f"Bearer {make_key(rt, 'ingest')}"}
    assert client.post("/v1/events", json=EVENTS, headers=ingest).status_code == 200
    return new_failed_run(rt)


# One workspace per module: users (argon2 hashes) and a server's start-up are the slow
# part; tests that change something make their own (`new_failed_run`).
@pytest.fixture(scope="module")
def console_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console")
    return flow_workspace(
        root / "ws", f"sqlite:///{root / 'tagloop.db'}", {"hook.yaml": FAILING_HOOK}
    )


@pytest.fixture(scope="module")
def console_rt(console_workspace: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(console_workspace)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def failed_run(console_rt: Runtime) -> str:
    return seed(console_rt)


@pytest.fixture(scope="module")
def console_app(console_rt: Runtime, failed_run: str) -> Iterator[TestClient]:
    with TestClient(create_app(console_rt), base_url=BASE, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def anonymous(console_app: TestClient) -> TestClient:
    console_app.cookies.clear()
    return console_app


def sign_in(client: TestClient, role: str) -> TestClient:
    response = client.post(
        "/login", data={"username": role, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return client


_SESSIONS: dict[tuple[int, str], list[Cookie]] = {}


@pytest.fixture
def as_role(anonymous: TestClient) -> Callable[[str], TestClient]:
    """``as_role("viewer")``: the client, signed in as the user of that role (one sign-in
    per role and module: each costs an argon2 check)."""

    def signed(role: str) -> TestClient:
        anonymous.cookies.clear()
        key = (id(anonymous), role)
        if key not in _SESSIONS:
            sign_in(anonymous, role)
            _SESSIONS[key] = list(anonymous.cookies.jar)
            return anonymous
        for cookie in _SESSIONS[key]:
            anonymous.cookies.jar.set_cookie(cookie)
        return anonymous

    return signed


# Browser tests (tests/console/test_browser*.py): Debian's Chromium through Playwright.
CHROMIUM = "/usr/bin/chromium"


def require_chromium() -> None:
    """Skip (a laptop without Chromium or playwright) or fail (CI)."""
    problem = None
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if services.CI:
        pytest.fail(f"{problem} (CI=true: browser tests are required)")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def server(console_rt: Runtime, failed_run: str) -> Iterator[LiveServer]:
    with LiveServer(console_rt) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, locale="en-US", base_url=server.url
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def browser_sign_in(page: Any, role: str, target: str = "/") -> None:
    page.goto(target)
    assert "/login" in page.url  # every page asks for a sign-in first
    page.get_by_label("Username").fill(role)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(target.split("?")[0]) + r"$"))
