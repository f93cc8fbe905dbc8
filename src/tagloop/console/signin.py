"""Signing in and out of the console, switching language, and the static assets.

Signing in goes through `tagloop.api.login.sign_in`, the same users, throttling and
sessions as ``POST /v1/session``, and sets the same two cookies.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from tagloop.api.auth import CSRF_COOKIE, SESSION_COOKIE, runtime
from tagloop.api.body import read_limited
from tagloop.api.login import sign_in
from tagloop.api.permissions import AUTHENTICATED
from tagloop.api.routers.session import (
    _throttles,
    client_address,
    secure,
    set_session_cookies,
)
from tagloop.console import i18n
from tagloop.console.web import HERE, Access, page, render, submitted
from tagloop.errors import TagloopError, Unauthenticated
from tagloop.store import sessions as session_store
from tagloop.timeutil import now_us

router = APIRouter(include_in_schema=False)
STATIC = (HERE / "static").resolve()


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never an absolute URL (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
async def signin_page(request: Request, next: str = "/") -> Response:
    """The sign-in form (public: it shows no data)."""
    return render(request, "signin.html", None, next=_safe_next(next), failed=None)


@router.post("/login")
async def signin_submit(request: Request) -> Response:
    """Check the form's credentials; on success set the session cookies and go on."""
    raw = await read_limited(request, 8 * 1024)
    fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    target = _safe_next(fields.get("next"))
    username, password = fields.get("username", ""), fields.get("password", "")
    try:
        if not username or not password:
            raise Unauthenticated("invalid username or password")
        done = await run_in_threadpool(
            sign_in,
            runtime(request),
            _throttles(request),
            username,
            password,
            client_address(request),
            now_us(),
        )
    except TagloopError as exc:
        status = exc.status
        return render(
            request,
            "signin.html",
            None,
            status=status,
            next=target,
            failed=exc.message,
            username=username,
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookies(response, request, done.session)
    return response


@router.post("/logout")
async def signout(request: Request, access: Access = page(AUTHENTICATED)) -> Response:
    """End the session (CSRF-checked: another site must not sign people out)."""
    refused = await submitted(request, access)
    if isinstance(refused, Response):
        return refused
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        rt = runtime(request)

        def end() -> None:
            with rt.db.write() as conn:
                session_store.end(conn, token)

        await run_in_threadpool(end)
    response = RedirectResponse("/login", status_code=303)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=secure(request), samesite="lax")
    return response


@router.get("/lang/{lang}")
async def switch_language(request: Request, lang: str, next: str = "/") -> Response:
    """Remember the language in a cookie (public: it changes only how pages read)."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    if lang in i18n.LANGUAGES:
        response.set_cookie(
            i18n.COOKIE,
            lang,
            max_age=365 * 86400,
            path="/",
            samesite="lax",
            secure=secure(request),
        )
    return response


@router.get("/static/{path:path}")
async def static(path: str) -> Response:
    """The console's own CSS, scripts and vendored libraries (public: no data; served
    from the package so the server works offline)."""
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return Response(
        target.read_bytes(),
        media_type=media,
        headers={"Cache-Control": "public, max-age=3600"},
    )
