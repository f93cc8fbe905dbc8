"""The ``webhook`` action: POST (or PUT, PATCH) JSON to a URL, signed the Standard Webhooks
way (https://www.standardwebhooks.com) when the flow names a secret.

Every attempt of one step sends the same ``webhook-id`` and ``Idempotency-Key`` (the step's
`ActionContext.idempotency_key`), so a receiver that saw the first attempt can drop a retry;
``webhook-timestamp`` and ``webhook-signature`` are fresh on each attempt, as receivers
reject old timestamps.

What an answer means: 2xx is done; 408, 429 and 5xx (and no answer at all) are worth a
retry, after ``Retry-After`` when the receiver sent one; any other status fails the run.

The HTTP helpers here (`deliver`, `mask_url`, `env_value`) are shared with
the chat bots of the ``notify`` action.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import httpx
import orjson
import yarl
from pydantic import BaseModel, ConfigDict, Field, field_validator
from standardwebhooks.webhooks import Webhook as Signer

from tagloop.flows.actions.base import Action, ActionContext, ActionFailed, Retry
from tagloop.httputil import retry_after

__all__ = [
    "Reply",
    "Webhook",
    "WebhookArgs",
    "close_sessions",
    "deliver",
    "env_name",
    "env_value",
    "http_url",
    "mask_url",
]

BODY_KEPT = 2_000
"""Characters of a receiver's answer kept in the step's result."""
EXCERPT = 200
"""Characters of a receiver's answer quoted in an error message."""
READ_LIMIT = 64 * 1024
"""Bytes of an answer read at most: the rest of a huge page is not worth the memory."""
RETRY_STATUSES = frozenset({408, 429})
"""4xx statuses that say "later" rather than "never" (with every 5xx)."""
RESERVED_HEADERS = frozenset(
    {"content-type", "idempotency-key", "webhook-id", "webhook-timestamp", "webhook-signature"}
)
SIGNED = "<signed>"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_value(name: str, ctx: ActionContext, what: str) -> str:
    """The value of the environment variable ``name``: from ``ctx.secrets``, else the
    process environment; `ActionFailed` naming the variable (never a value) when unset.

    >>> ctx = ActionContext("r1", "actions[0]", 1, "f", 1, 0, secrets={"HOOK_SECRET": "x"})
    >>> env_value("HOOK_SECRET", ctx, "webhook")
    'x'
    >>> env_value("TAGLOOP_DOC_UNSET", ctx, "webhook")
    Traceback (most recent call last):
    ...
    tagloop.flows.actions.base.ActionFailed: webhook: environment variable TAGLOOP_DOC_UNSET \
is not set
    """
    value = ctx.secrets.get(name)
    if value is None:
        value = os.environ.get(name)
    if not value:
        raise ActionFailed(f"{what}: environment variable {name} is not set")
    return value


def env_name(value: str | None) -> str | None:
    """Validate an argument naming an environment variable (``secret_env``, ``url_env``).

    A secret pasted in its place is refused without being repeated in the message.

    >>> env_name("HOOK_SECRET")
    'HOOK_SECRET'
    >>> env_name("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    Traceback (most recent call last):
    ...
    ValueError: must name an environment variable, not hold the secret itself
    """
    if value is None:
        return None
    if not _ENV_NAME.fullmatch(value) or value.lower().startswith("whsec_"):
        raise ValueError("must name an environment variable, not hold the secret itself")
    return value


def http_url(value: str) -> str:
    """Validate an http(s) URL; the message does not repeat it (it may hold a token).

    >>> http_url("https://hooks.example.com/in")
    'https://hooks.example.com/in'
    >>> http_url("ftp://files.example.com/in")
    Traceback (most recent call last):
    ...
    ValueError: must be an http:// or https:// URL with a host
    """
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def mask_url(url: str) -> str:
    """The scheme, host and port of ``url``, for messages: paths and queries of webhook
    and bot URLs often carry their access tokens.

    >>> mask_url("https://oapi.dingtalk.com/robot/send?access_token=7f3a")
    'https://oapi.dingtalk.com/…'
    >>> mask_url("http://user:pw@127.0.0.1:8080")
    'http://127.0.0.1:8080'
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<url>"
    origin = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
    return origin + ("/…" if parsed.raw_path not in (b"", b"/") else "")


@dataclass(frozen=True)
class Reply:
    """A 2xx answer, its body read up to `READ_LIMIT` bytes."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes
    complete: bool
    charset: str | None = None

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The parsed JSON body, None when it is not (complete) JSON."""
        if not self.complete or not self.content:
            return None
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError:
            return None

    def kept(self) -> Any:
        """What a step's result keeps of the body: parsed JSON, else its text cut short.

        >>> Reply(200, {"content-type": "application/json"}, b'{"ok": 1}', True).kept()
        {'ok': 1}
        >>> Reply(200, {}, b"x" * 5000, True).kept() == "x" * 2000
        True
        """
        if "json" in self.headers.get("content-type", ""):
            parsed = self.json()
            if parsed is not None:
                return parsed
        return self.text[:BODY_KEPT]


CONNECTIONS = 32
"""Connections per host at once: a burst of runs queues for them rather than opening
hundreds of sockets at one receiver."""

_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def _session() -> aiohttp.ClientSession:
    """One HTTP client per event loop: making one builds an SSL context (milliseconds of
    CPU), which a flow sending hundreds of calls a second must not pay per call.

    aiohttp, not httpx: with a few hundred requests in flight httpcore's pool walks every
    connection and queued request on each call, and a webhook took about 3 ms of CPU
    against aiohttp's 0.1 ms (docs/benchmarks.md, flows)."""
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit_per_host=CONNECTIONS)
        # trust_env=False: no proxies or .netrc from the process environment; a flow's
        # calls go where its definition says.
        session = aiohttp.ClientSession(connector=connector, trust_env=False)
        _SESSIONS[loop] = session
    return session


async def close_sessions() -> None:
    """Close this event loop's HTTP client (a worker stopping, a test ending)."""
    session = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


async def deliver(
    what: str,
    method: str,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,
    params: Mapping[str, str] | None = None,
) -> Reply:
    """Send one request and classify its outcome: a `Reply` for 2xx, `Retry` when a later
    attempt may succeed, `ActionFailed` when it cannot. ``what`` starts every message
    (``webhook POST https://example.com/…``); no message repeats ``url`` itself.

    No redirects: a 3xx to a POST is a configuration to fix, not a hop to take with the
    signed body."""
    try:
        target = yarl.URL(url)
        if params:
            # Added to the URL's query, never replacing it: a DingTalk URL's query is its
            # access token.
            target = target.extend_query(params)
        async with _session().request(
            method,
            target,
            data=content,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as answer:
            chunks: list[bytes] = []
            size = 0
            async for chunk in answer.content.iter_any():
                chunks.append(chunk)
                size += len(chunk)
                if size > READ_LIMIT:
                    break
            status, answered, charset = answer.status, answer.headers, answer.charset
    except TimeoutError:
        raise Retry(f"{what}: no answer within {timeout:g} s") from None
    except (aiohttp.InvalidURL, ValueError):
        raise ActionFailed(f"{what}: not a valid URL") from None
    except aiohttp.ClientError as exc:
        # The idempotency key makes a retry harmless even if the request did arrive.
        reason = _scrub(str(exc), url) or type(exc).__name__
        raise Retry(f"{what}: {reason}") from None
    content_read = b"".join(chunks)
    reply = Reply(status, answered, content_read[:READ_LIMIT], size <= READ_LIMIT, charset)
    if 200 <= status < 300:
        return reply
    said = _excerpt(reply.text)
    if status >= 500 or status in RETRY_STATUSES:
        wait = retry_after(reply.headers.get("retry-after"))
        raise Retry(f"{what}: HTTP {status}{said}", retry_after=wait)
    if 300 <= status < 400:
        where = mask_url(reply.headers.get("location", ""))
        raise ActionFailed(f"{what}: HTTP {status} to {where}; redirects are not followed")
    raise ActionFailed(f"{what}: HTTP {status}{said}")


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    if not flat:
        return ""
    return ": " + (flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1] + "…")


def _scrub(text: str, url: str) -> str:
    """``text`` without ``url`` or its query (transport errors may quote the request)."""
    query = url.partition("?")[2]
    for secret in (url, query):
        if secret:
            text = text.replace(secret, mask_url(url))
    return text


def _signer(secret: str, name: str) -> Signer:
    problem = f"webhook: environment variable {name} does not hold a Standard Webhooks secret"
    if not secret.startswith("whsec_"):
        raise ActionFailed(f"{problem} (whsec_ and base64)")
    key = secret.removeprefix("whsec_")
    try:
        # The library decodes leniently (skipping stray characters); a secret mangled in
        # copying must fail here, not sign with a key the receiver does not have.
        decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
    except binascii.Error:
        decoded = b""
    if not decoded:
        raise ActionFailed(f"{problem} (whsec_ and base64)")
    return Signer(secret)


class WebhookArgs(BaseModel):
    """The arguments of ``webhook(url, ...)``."""

    model_config = ConfigDict(extra="forbid")

    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: Any = None
    """Any JSON; when not given, the run's ``event``, ``entity`` and ``run``."""
    headers: dict[str, str] = Field(default_factory=dict)
    secret_env: str | None = None
    """The environment variable holding the signing secret (``whsec_...``)."""
    timeout_s: float = Field(default=10, gt=0, le=300)

    _url = field_validator("url")(http_url)
    _secret_env = field_validator("secret_env")(env_name)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(name for name in value if name.lower() in RESERVED_HEADERS)
        if taken:
            raise ValueError(f"{', '.join(taken)}: set by the webhook action itself")
        return value


class Webhook(Action):
    """Send the run's data (or ``body``) as JSON to ``url``."""

    name = "webhook"
    positional = ("url",)
    summary = "POST JSON to a URL, signed with Standard Webhooks, idempotent across retries"

    Args = WebhookArgs

    async def run(self, args: WebhookArgs, ctx: ActionContext) -> dict[str, Any]:
        payload = _payload(args, ctx.scope)
        try:
            body = orjson.dumps(payload)
        except TypeError as exc:
            raise ActionFailed(f"webhook: body is not JSON: {exc}") from None
        key = ctx.idempotency_key
        headers = {**args.headers, "Content-Type": "application/json", "Idempotency-Key": key}
        if args.secret_env is not None:
            signer = _signer(env_value(args.secret_env, ctx, "webhook"), args.secret_env)
            # Whole seconds, as the header carries them: the signature covers the header's
            # value, so both must be the same number.
            at = datetime.fromtimestamp(int(time.time()), UTC)
            headers["webhook-id"] = key
            headers["webhook-timestamp"] = str(int(at.timestamp()))
            headers["webhook-signature"] = signer.sign(key, at, body)
        what = f"webhook {args.method} {mask_url(args.url)}"
        reply = await deliver(
            what, args.method, args.url, content=body, headers=headers, timeout=args.timeout_s
        )
        return {"status": reply.status, "body": reply.kept()}

    def describe(self, args: WebhookArgs, ctx: ActionContext | None = None) -> dict[str, Any]:
        """What `run` would send, without sending it (the signature headers as
        ``<signed>``). The default body and the idempotency key come from ``ctx``; without
        one they are described.

        >>> args = Webhook.parse_args(["https://hooks.example.com/in"], {"secret_env": "S"})
        >>> Webhook().describe(args)["headers"]["webhook-signature"]
        '<signed>'
        """
        key = ctx.idempotency_key if ctx is not None else "<run id>:<step>"
        headers = {**args.headers, "Content-Type": "application/json", "Idempotency-Key": key}
        if args.secret_env is not None:
            headers |= {"webhook-id": key, "webhook-timestamp": SIGNED, "webhook-signature": SIGNED}
        if ctx is not None:
            body: Any = _payload(args, ctx.scope)
        elif "body" in args.model_fields_set:
            body = args.body
        else:
            body = "<the run's event, entity and run>"
        return {
            "would": self.name,
            "method": args.method,
            "url": args.url,
            "headers": headers,
            "body": body,
        }


def _payload(args: WebhookArgs, scope: Mapping[str, Any]) -> Any:
    # ``body: null`` given on purpose sends null; only an absent body means "the scope".
    if "body" in args.model_fields_set:
        return args.body
    return {key: scope[key] for key in ("event", "entity", "run") if key in scope}
