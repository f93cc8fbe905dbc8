"""The ``notify`` action: a message to people, by email or a chat bot.

``notify(channel='dingtalk', url_env='DINGTALK_OPS_URL', secret_env='DINGTALK_OPS_SECRET',
title='大客户下单', message='{{ customer.name }} 下单 {{ event.properties.amount }} 元')``

``message`` is a template rendered against the run's scope. Bot URLs hold the bot's access
token, so they are best named by ``url_env``; messages and dry runs show only their host.
Email goes to the SMTP server ``smtp_host`` (else ``$TAGLOOP_SMTP_HOST``, else 127.0.0.1),
with a login when ``$TAGLOOP_SMTP_USER`` and ``$TAGLOOP_SMTP_PASSWORD`` are set.
"""

from __future__ import annotations

import os
import re
from email.utils import getaddresses, quote
from functools import partial
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tagloop.flows.actions.base import Action, ActionContext, ActionFailed
from tagloop.flows.actions.channels import (
    Channel,
    bot_payload,
    described_request,
    email_message,
    send_bot,
    send_email,
)
from tagloop.flows.actions.webhook import env_name, env_value, http_url, mask_url
from tagloop.flows.templates import render

__all__ = ["Notify", "NotifyArgs"]

SMTP_HOST_ENV = "TAGLOOP_SMTP_HOST"
SMTP_USER_ENV = "TAGLOOP_SMTP_USER"
SMTP_PASSWORD_ENV = "TAGLOOP_SMTP_PASSWORD"
SIGNED_BOTS = ("dingtalk", "feishu")
_EMAIL_ONLY = ("to", "subject", "from_", "smtp_host", "smtp_port")
_BOT_ONLY = ("url", "url_env", "secret_env", "title")
_SPECIALS = re.compile(r'[()<>@,;:\\".\[\]]')


def _addresses(value: Any) -> Any:
    if isinstance(value, str):
        # "a@x.com, b@y.com" as well as a list; getaddresses keeps "Zhang, San" <z@x.com>
        # whole, which a split on commas would not.
        return [_format(name, addr) for name, addr in getaddresses([value]) if addr]
    return value


def _format(name: str, addr: str) -> str:
    if not name:
        return addr
    # Not email.utils.formataddr: it would RFC 2047-encode a Chinese name in the text
    # kept in the arguments (the email's header is encoded when the message is built).
    if _SPECIALS.search(name):
        return f'"{quote(name)}" <{addr}>'
    return f"{name} <{addr}>"


def _address(value: str) -> str:
    pairs = getaddresses([value])
    if len(pairs) != 1 or "@" not in pairs[0][1] or any(c in value for c in "\r\n"):
        raise ValueError("not an email address (name@example.com or 名字 <name@example.com>)")
    return value


class NotifyArgs(BaseModel):
    """The arguments of ``notify(channel=..., message=..., ...)``."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    channel: Channel
    message: str
    """A template, rendered against the run's scope."""
    title: str | None = None
    """The DingTalk markdown or Feishu post title; a bold first line for WeCom and Slack."""
    url: str | None = None
    """The bot's webhook URL (it holds the bot's token: prefer ``url_env``)."""
    url_env: str | None = None
    """The environment variable holding the bot's webhook URL."""
    secret_env: str | None = None
    """The environment variable holding a DingTalk or Feishu bot's signing secret."""
    to: list[str] = Field(default_factory=list)
    subject: str | None = None
    from_: str | None = Field(default=None, alias="from")
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    timeout_s: float = Field(default=10, gt=0, le=300)

    _to_list = field_validator("to", mode="before")(_addresses)
    _url_env = field_validator("url_env", "secret_env")(env_name)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_address(item) for item in value]

    @field_validator("from_")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _fits_channel(self) -> NotifyArgs:
        given = self.model_fields_set
        if self.channel == "email":
            unused = [name for name in _BOT_ONLY if name in given]
            missing = [
                label
                for label, value in (
                    ("to", self.to),
                    ("subject", self.subject),
                    ("from", self.from_),
                )
                if not value
            ]
            if missing:
                raise _problem(f"email needs {', '.join(missing)}")
        else:
            unused = [name.rstrip("_") for name in _EMAIL_ONLY if name in given]
            if (self.url is None) == (self.url_env is None):
                raise _problem(f"{self.channel} needs the bot's url or url_env (one of them)")
            if self.secret_env is not None and self.channel not in SIGNED_BOTS:
                raise _problem(f"secret_env: {self.channel} bots are not signed")
        if unused:
            raise _problem(f"{', '.join(unused)}: not used by channel {self.channel}")
        return self


def _problem(message: str) -> PydanticCustomError:
    # A custom error type keeps pydantic's "Value error, " prefix out of the message.
    return PydanticCustomError("notify_arguments", message)


class Notify(Action):
    """Send ``message`` (rendered) by email or to a chat bot."""

    name = "notify"
    Args = NotifyArgs
    renders = frozenset({"message"})
    summary = "a message by email, DingTalk, WeCom, Feishu or Slack (a template)"

    async def run(self, args: NotifyArgs, ctx: ActionContext) -> dict[str, Any]:
        text = render(args.message, ctx.scope)
        if args.channel == "email":
            return await self._email(args, ctx, text)
        what = f"notify {args.channel}"
        url = _bot_url(args, ctx, what)
        secret = None if args.secret_env is None else env_value(args.secret_env, ctx, what)
        payload = bot_payload(args.channel, text, args.title)
        status = await send_bot(args.channel, url, payload, secret=secret, timeout=args.timeout_s)
        return {"channel": args.channel, "status": status}

    async def _email(self, args: NotifyArgs, ctx: ActionContext, text: str) -> dict[str, Any]:
        assert args.subject is not None and args.from_ is not None  # by NotifyArgs
        host = args.smtp_host or _optional_env(SMTP_HOST_ENV, ctx) or "127.0.0.1"
        user = _optional_env(SMTP_USER_ENV, ctx)
        login = None if user is None else (user, env_value(SMTP_PASSWORD_ENV, ctx, "notify email"))
        msg = email_message(
            sender=args.from_,
            to=args.to,
            subject=args.subject,
            text=text,
            key=ctx.idempotency_key,
        )
        send = partial(
            send_email, msg, host=host, port=args.smtp_port, timeout=args.timeout_s, login=login
        )
        refused = await anyio.to_thread.run_sync(send)
        result: dict[str, Any] = {
            "channel": "email",
            "to": list(args.to),
            "message_id": msg["Message-ID"],
        }
        if refused:
            result["refused"] = refused
        return result

    def describe(self, args: NotifyArgs, ctx: ActionContext | None = None) -> dict[str, Any]:
        """What `run` would send, without sending it: the message rendered when ``ctx``
        gives a scope, bot URLs masked, signatures as ``<signed>``.

        >>> args = Notify.parse_args([], {"channel": "wecom", "message": "库存低于 {{ n }}",
        ...     "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6"})
        >>> ctx = ActionContext("r1", "actions[0]", 1, "f", 1, 0, scope={"n": 10})
        >>> Notify().describe(args, ctx)
        {'would': 'notify', 'channel': 'wecom', 'url': 'https://qyapi.weixin.qq.com/…', \
'payload': {'msgtype': 'markdown', 'markdown': {'content': '库存低于 10'}}}
        """
        text = args.message if ctx is None else render(args.message, ctx.scope)
        out: dict[str, Any] = {"would": self.name, "channel": args.channel}
        if args.channel == "email":
            secrets = {} if ctx is None else ctx.secrets
            host = args.smtp_host or secrets.get(SMTP_HOST_ENV) or os.environ.get(SMTP_HOST_ENV)
            out |= {
                "smtp": f"{host or '127.0.0.1'}:{args.smtp_port}",
                "from": args.from_,
                "to": list(args.to),
                "subject": args.subject,
                "message": text,
            }
            return out
        url = mask_url(args.url) if args.url is not None else f"${args.url_env}"
        payload = bot_payload(args.channel, text, args.title)
        body, query = described_request(args.channel, payload, args.secret_env is not None)
        out |= {"url": url, "payload": body}
        if query:
            out["query"] = query
        return out


def _bot_url(args: NotifyArgs, ctx: ActionContext, what: str) -> str:
    if args.url is not None:
        return args.url
    assert args.url_env is not None  # by NotifyArgs
    url = env_value(args.url_env, ctx, what)
    try:
        return http_url(url)
    except ValueError:
        raise ActionFailed(
            f"{what}: environment variable {args.url_env} does not hold an http(s) URL"
        ) from None


def _optional_env(name: str, ctx: ActionContext) -> str | None:
    return ctx.secrets.get(name) or os.environ.get(name) or None
