"""The HTTP side of ``kind: rest``: credentials, requests, retries, readable failures.

Requests that fail for a while (429, 5xx, a refused connection, a timeout) are retried
with exponential backoff, waiting what ``Retry-After`` asks (up to ``retry.max_wait``, so
that a server asking for an hour does not stall the run; the runner retries the whole
source later). 401 and 403 fail at once: asking again with the same credentials will not
help. Every message names the source, the page and the request, with secrets masked.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from tagloop import logs
from tagloop.errors import TagloopError
from tagloop.httputil import retry_after
from tagloop.sources.secrets import resolve_secrets

log = logs.get("tagloop.sources")

# Answers worth asking again: the server is busy or briefly broken, not refusing.
TRANSIENT = {408, 429, 500, 502, 503, 504}


class RestSourceError(TagloopError):
    """The API failed or refused; the message names the source, page and request."""

    status = 502  # for tagloop's own API: an upstream system is at fault
    code = "source_failed"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_TAKES = {
    "api_key": {"key", "header", "param"},
    "bearer": {"token"},
    "basic": {"username", "password"},
}


class Auth(_Model):
    """``auth:`` of a rest source; a bare type is its short form (``auth: api_key``).

    Credentials not given come from ``TAGLOOP_SOURCE_<NAME>_API_KEY`` (``_TOKEN``,
    ``_USERNAME`` and ``_PASSWORD``); given, they are usually ``${env:NAME}`` references.

    >>> Auth(type="bearer", key="k")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Auth
      Value error, auth type bearer takes token, not key [type=value_error, ...
    """

    type: Literal["api_key", "bearer", "basic"]
    key: str | None = None  # api_key
    header: str = "X-API-Key"  # api_key: the header the key goes in ...
    param: str | None = None  # ... or this query parameter instead
    token: str | None = None  # bearer
    username: str | None = None  # basic
    password: str | None = None  # basic

    @model_validator(mode="after")
    def _only_its_keys(self) -> Auth:
        # One model for the three types rather than a tagged union: a misspelt key is then
        # reported against the keys people can write, and a key of another type clearly.
        wrong = sorted(self.model_fields_set - _TAKES[self.type] - {"type"})
        if wrong:
            takes = " and ".join(sorted(_TAKES[self.type]))
            raise ValueError(f"auth type {self.type} takes {takes}, not {', '.join(wrong)}")
        return self


class Retry(_Model):
    attempts: int = Field(5, ge=1)  # requests per page, the first included
    initial: float = Field(1.0, ge=0)  # seconds before the first retry; doubles each time
    max_wait: float = Field(60.0, ge=0)  # the longest wait, Retry-After included


class Http:
    """One source's HTTP client: its credentials, retries and masked messages.

    >>> import os; os.environ["TAGLOOP_SOURCE_CRM_API_KEY"] = "k-123"
    >>> http = Http("crm", Auth(type="api_key"), {}, Retry(), timeout=5)
    >>> http.client.headers["X-API-Key"], http.hide("key k-123")
    ('k-123', 'key ***')
    >>> http.close()
    """

    def __init__(
        self,
        source: str,
        auth: Auth | None,
        headers: dict[str, str],
        retry: Retry,
        timeout: float,
    ) -> None:
        self.source = source
        self.auth = auth
        self.retry = retry
        self.secrets: list[str] = []  # masked in every message
        # Sent with every request, next links included; merged into each URL by `_send`,
        # as httpx replaces a URL's own query with the client's parameters.
        self.auth_params: dict[str, str] = {}
        headers = {"Accept": "application/json", "User-Agent": "tagloop", **headers}
        basic: httpx.BasicAuth | None = None
        if auth is not None and auth.type == "api_key":
            value = self._secret(auth.key, "API_KEY", "auth.key")
            if auth.param:
                self.auth_params[auth.param] = value
            else:
                headers[auth.header] = value
        elif auth is not None and auth.type == "bearer":
            headers["Authorization"] = "Bearer " + self._secret(auth.token, "TOKEN", "auth.token")
        elif auth is not None and auth.type == "basic":
            basic = httpx.BasicAuth(
                self._secret(auth.username, "USERNAME", "auth.username"),
                self._secret(auth.password, "PASSWORD", "auth.password"),
            )
        self.client = httpx.Client(
            headers=headers, auth=basic, timeout=timeout, follow_redirects=True
        )

    def _secret(self, given: str | None, suffix: str, where: str) -> str:
        """A credential, by default from ``TAGLOOP_SOURCE_<NAME>_<SUFFIX>``."""
        name = re.sub(r"[^A-Za-z0-9]", "_", self.source.upper())
        default = f"${{env:TAGLOOP_SOURCE_{name}_{suffix}}}"
        value = resolve_secrets(given or default, f"source {self.source}: {where}")
        if len(value) >= 4:  # shorter ones would mask innocent text (and are guessed anyway)
            self.secrets.append(value)
        return value

    def close(self) -> None:
        self.client.close()

    def get_json(self, url: str, params: dict[str, Any], page: int) -> tuple[httpx.Response, Any]:
        """GET ``url`` with ``params`` (retried while the failure is transient) and its
        parsed JSON body."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            before_sleep=self._retrying,
            reraise=True,
        )
        try:
            response: httpx.Response = retrying(self._send, url, params, page)
        except _Transient as exc:
            attempts = self.retry.attempts
            tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
            raise RestSourceError(
                f"source {self.source}, page {page}: GET {exc.url}: {exc.reason}; still failing "
                f"after {tries}"
            ) from None
        try:
            return response, orjson.loads(response.content)
        except orjson.JSONDecodeError:
            kind = response.headers.get("Content-Type", "no content type")
            excerpt = self.hide(" ".join(response.text.split())[:100])
            raise RestSourceError(
                f"source {self.source}, page {page}: GET {self.hide(str(response.request.url))}: "
                f"the answer is not JSON ({kind}): {excerpt!r}"
            ) from None

    def _send(self, url: str, params: dict[str, Any], page: int) -> httpx.Response:
        merged = httpx.URL(url).copy_merge_params({**params, **self.auth_params})
        request = self.client.build_request("GET", merged)
        shown = self.hide(str(request.url))
        try:
            response = self.client.send(request)
        except httpx.TransportError as exc:
            raise _Transient(shown, f"{type(exc).__name__}: {exc}", None) from exc
        code = response.status_code
        if code < 400:
            return response
        status = f"HTTP {code} {response.reason_phrase}".strip()
        if code in TRANSIENT:
            raise _Transient(shown, status, retry_after(response.headers.get("Retry-After")))
        where = f"source {self.source}, page {page}: GET {shown}: {status}"
        if code in (401, 403):
            raise RestSourceError(f"{where}: the API refused the credentials ({self.describe()})")
        excerpt = self.hide(" ".join(response.text.split())[:200])
        raise RestSourceError(where + (f": {excerpt}" if excerpt else ""))

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: what Retry-After asks, else doubling from
        ``retry.initial``; never more than ``retry.max_wait``."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Transient) and error.retry_after is not None:
            return min(error.retry_after, self.retry.max_wait)
        return float(min(self.retry.max_wait, self.retry.initial * 2 ** (state.attempt_number - 1)))

    def _retrying(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else None
        log.info("rest source retrying", source=self.source, error=str(error), wait_s=wait)

    def describe(self) -> str:
        """The auth in use, for messages (never the secret)."""
        auth = self.auth
        if auth is not None and auth.type == "api_key":
            return f"auth: api_key, {'param ' + auth.param if auth.param else auth.header}"
        return f"auth: {auth.type}" if auth is not None else "no auth configured"

    def hide(self, text: str) -> str:
        """``text`` with the source's secrets masked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class _Transient(Exception):
    """A failure worth retrying (the request, what went wrong, the Retry-After asked)."""

    def __init__(self, url: str, reason: str, retry_after: float | None) -> None:
        super().__init__(f"GET {url}: {reason}")
        self.url = url
        self.reason = reason
        self.retry_after = retry_after
