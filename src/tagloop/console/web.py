"""What every console page shares: who is asking (the API's users, sessions and roles),
the language, templates, and errors rendered as pages.

Pages authenticate exactly as the API does (`tagloop.api.auth`): the session cookie set by
signing in (here or at ``POST /v1/session``), or an API key in ``Authorization``. Each
route declares its permission through `page`, which the route-permission test reads like
the API's `require`. A missing or ended session sends the browser to the sign-in page; a
missing permission is a 403 page. Forms post the session's CSRF token as a hidden field
(a plain form cannot set the ``X-CSRF-Token`` header the API wants; htmx sends both).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tagloop import logs
from tagloop.api import ratelimit
from tagloop.api.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    authorize,
    credential,
    refuse_nul,
    runtime,
    session_principal,
    verify,
)
from tagloop.api.body import read_limited
from tagloop.api.permissions import Principal
from tagloop.console import i18n
from tagloop.errors import Forbidden, TagloopError, Unauthenticated
from tagloop.runtime import Runtime
from tagloop.timeutil import zone

log = logs.get("tagloop.console")

HERE = Path(__file__).parent
MAX_FORM = 16 * 1024
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Access:
    """The caller of a page: a principal, or why there is none (``error``)."""

    principal: Principal | None
    error: TagloopError | None = None
    csrf: str | None = None  # the session's token; None for an API key (no CSRF with one)


def _authenticate(rt: Runtime, request: Request) -> tuple[Principal, str | None]:
    secret = credential(request)
    token = request.cookies.get(SESSION_COOKIE)
    if secret or not token:
        if not secret:
            raise Unauthenticated("sign in first")
        return verify(rt, secret), None
    return session_principal(rt, token)


def page(permission: str) -> Any:
    """A dependency resolving to the page's `Access` (never raising: the route renders
    the error as a page), with ``permission`` declared as `tagloop.api.auth.require` does."""

    async def check(request: Request) -> Access:
        rt = runtime(request)
        principal: Principal | None = None
        try:
            found, csrf = await run_in_threadpool(_authenticate, rt, request)
            principal = found
            request.state.principal = found
            await ratelimit.check(request, found)
            authorize(found, permission)
            refuse_nul(request)
        except TagloopError as exc:
            return Access(principal, exc)
        return Access(principal, None, csrf)

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


def locale(request: Request) -> i18n.Locale:
    rt = runtime(request)
    lang = i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
    return i18n.Locale(lang, zone(rt.workspace.project.timezone))


def render(
    request: Request,
    template: str,
    access: Access | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    loc = locale(request)
    principal = access.principal if access is not None else None
    html = templates.get_template(template).render(
        loc=loc,
        t=loc.t,
        lang=loc.lang,
        principal=principal,
        can=(lambda p: principal is not None and principal.can(p)),
        csrf=access.csrf if access is not None else None,
        path=request.url.path,
        request=request,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, access: Access | None, error: TagloopError) -> Response:
    """The error as a page with its status; 401 goes to the sign-in page instead."""
    if isinstance(error, Unauthenticated) and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    headers = {}
    if error.status == 429:
        headers["Retry-After"] = str(getattr(error, "retry_after", 1))
    response = render(
        request,
        "error.html",
        access,
        status=error.status,
        message=error.message,
        status_code=error.status,
    )
    response.headers.update(headers)
    return response


async def guarded(
    request: Request, access: Access, build: Callable[[Principal], Response]
) -> Response:
    """Run ``build`` (in a worker thread: it reads the database) for an authorised caller;
    errors become pages, and an unexpected one a 500 page naming the request id (the log
    has the traceback), never a stack trace."""
    if access.error is not None or access.principal is None:
        return error_page(request, access, access.error or Unauthenticated("sign in first"))
    principal = access.principal
    try:
        return await run_in_threadpool(build, principal)
    except TagloopError as exc:
        return error_page(request, access, exc)
    except Exception as exc:
        request_id = getattr(request.state, "request_id", "-")
        log.error("console page failed", path=request.url.path, request_id=request_id, exc_info=exc)
        return render(
            request,
            "error.html",
            access,
            status=500,
            status_code=500,
            message=f"internal error (request id {request_id}); the server log has details",
        )


async def form(request: Request, access: Access) -> dict[str, str]:
    """The urlencoded body of a console form, after the CSRF check (for sessions: the
    hidden ``csrf_token`` field or the ``X-CSRF-Token`` header must be the session's)."""
    raw = await read_limited(request, MAX_FORM)
    try:
        fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), max_num_fields=50).items()}
    except (UnicodeDecodeError, ValueError):
        fields = {}
    if access.csrf is not None:
        sent = fields.get("csrf_token") or request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), access.csrf.encode()):
            raise Forbidden("missing or wrong CSRF token: reload the page and try again")
    return fields


async def submitted(request: Request, access: Access) -> dict[str, str] | Response:
    """The fields of an authorised form post (CSRF checked), or the error page to answer
    instead (``if isinstance(fields, Response): return fields``)."""
    if access.error is not None:
        return error_page(request, access, access.error)
    try:
        return await form(request, access)
    except TagloopError as exc:
        return error_page(request, access, exc)


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not a script): it gets HTML errors."""
    path = request.url.path
    if path.startswith(("/v1/", "/openapi", "/docs", "/redoc", "/metrics")):
        return False
    return "text/html" in request.headers.get("accept", "")


def missing_page(request: Request) -> Response:
    """The 404 page of a path the console does not have."""
    loc = locale(request)
    return render(
        request,
        "error.html",
        None,
        status=404,
        status_code=404,
        message=loc.t("error.not_found") + f": {request.url.path}",
    )
