"""Every route of the real app declares its permission, or is public for a stated reason.

A route added without ``require(...)`` fails here: the permission is what `require` sets
on its dependency (``check.permission``), found anywhere in the route's dependency tree.
"""

from __future__ import annotations

from typing import Any

import fastapi.routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from tagloop.api.permissions import ADMIN_ONLY, AUTHENTICATED, GRANTS, ROLES

# (method, path) -> why it needs no credential. Keep it short: each entry is reviewed.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe: load balancers call it without credentials",
    ("GET", "/readyz"): "readiness probe: says only whether the database answers",
    ("POST", "/v1/session"): "signing in: the credential is the body (throttled)",
    ("GET", "/openapi.json"): "API description: no data",
    ("GET", "/docs"): "interactive API documentation page: no data",
    ("GET", "/docs/oauth2-redirect"): "part of the documentation page",
    ("GET", "/redoc"): "API documentation page: no data",
    ("GET", "/login"): "the console's sign-in form: no data",
    ("POST", "/login"): "the console's sign-in: the credential is the form (throttled)",
    ("GET", "/lang/{lang}"): "the console's language switch: sets a cookie, no data",
    ("GET", "/static/{path:path}"): "the console's CSS and scripts (package files): no data",
}


def permissions_of(dependant: Dependant) -> list[str]:
    found = []
    for dependency in dependant.dependencies:
        permission = getattr(dependency.call, "permission", None)
        if isinstance(permission, str):
            found.append(permission)
        found += permissions_of(dependency)
    return found


def flattened(app: Any) -> list[Any]:
    """The app's routes with included routers expanded (FastAPI 0.165 keeps an included
    router as one entry; `iter_route_contexts` resolves them with their prefixes and
    router-level dependencies)."""
    expand = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(expand(app.routes)) if expand is not None else list(app.routes)


def routes(client: TestClient) -> dict[tuple[str, str], list[str]]:
    table: dict[tuple[str, str], list[str]] = {}
    for route in flattened(client.app):
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute):
            for method in route.methods:
                table[(method, route.path)] = permissions_of(route.dependant)
        elif isinstance(original, Route):
            for method in route.methods or ():
                if method != "HEAD":  # Starlette adds HEAD to GET routes
                    table[(method, route.path)] = []
        else:
            raise AssertionError(f"unexpected route type {type(original).__name__}: {route}")
    return table


def known(permission: str) -> bool:
    granted = set().union(*ROLES.values(), *GRANTS.values())
    return permission in granted | ADMIN_ONLY | {AUTHENTICATED}


def test_every_route_declares_a_permission(client: TestClient) -> None:
    table = routes(client)
    assert len(table) > 20
    missing = [
        f"{method} {path}"
        for (method, path), permissions in sorted(table.items())
        if not permissions and (method, path) not in PUBLIC
    ]
    assert not missing, "routes without a permission (add require(...)):\n" + "\n".join(missing)


def test_permissions_are_known_and_the_allow_list_is_current(client: TestClient) -> None:
    table = routes(client)
    unknown = [
        f"{method} {path}: {permission!r}"
        for (method, path), permissions in sorted(table.items())
        for permission in permissions
        if not known(permission)
    ]
    assert not unknown, "permissions no role grants (a typo?):\n" + "\n".join(unknown)
    stale = [f"{m} {p}" for (m, p) in PUBLIC if (m, p) not in table]
    assert not stale, f"allow-list entries for routes that do not exist: {stale}"
    guarded = [f"{m} {p}" for (m, p) in PUBLIC if table.get((m, p))]
    assert not guarded, f"allow-listed routes that do require a permission: {guarded}"


def test_public_routes_answer_without_credentials(client: TestClient) -> None:
    examples = {"/lang/{lang}": "/lang/en", "/static/{path:path}": "/static/console.css"}
    for method, path in PUBLIC:
        if method == "GET":
            url = examples.get(path, path)
            assert client.get(url, follow_redirects=False).status_code < 400, path


def test_the_documented_roles_table_is_the_real_one() -> None:
    from pathlib import Path

    from tagloop.api.permissions import Principal

    page = Path(__file__).resolve().parents[2] / "docs" / "security.md"
    lines = page.read_text("utf-8").splitlines()
    start = lines.index("| permission | admin | editor | reviewer | operator | viewer | ingest |")
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = 0
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        permission = cells[0].split("`")[1]
        for role, cell in zip(header[1:], cells[1:], strict=True):
            assert Principal("k", "k", (role,)).can(permission) == (cell == "✓"), (role, line)
        rows += 1
    every = set().union(*ROLES.values(), *GRANTS.values(), ADMIN_ONLY) - {"*"}
    assert rows == len(every), "a permission is missing from the table in docs/security.md"
