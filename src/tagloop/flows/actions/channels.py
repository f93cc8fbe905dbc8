"""The channels of the ``notify`` action: chat bots (DingTalk, WeCom, Feishu, Slack) over
their incoming-webhook URLs, and email over SMTP.

The Chinese bots answer HTTP 200 even when they refuse a message; the refusal is an error
code in the JSON body (``errcode`` of DingTalk and WeCom, ``code`` of Feishu), read here
into `ActionFailed`, or `Retry` for their rate limits. Bot URLs carry the bot's access
token: no message here repeats one (`mask_url`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal

import orjson

from tagloop.flows.actions.base import ActionFailed, Retry
from tagloop.flows.actions.webhook import SIGNED, Reply, deliver, mask_url

__all__ = [
    "BOTS",
    "Bot",
    "Channel",
    "bot_payload",
    "dingtalk_sign",
    "email_message",
    "feishu_sign",
    "message_id",
    "send_bot",
    "send_email",
]

Channel = Literal["email", "dingtalk", "wecom", "feishu", "slack"]


@dataclass(frozen=True)
class Bot:
    """What differs between the chat bots."""

    label: str
    code_field: str | None
    """The body field with the bot's error code (None: errors are HTTP statuses)."""
    message_field: str
    rate_limited: int | None
    """The error code of "too many messages" (retried: the limit is per minute)."""


_FEISHU_V1 = ("StatusCode", "StatusMessage")
BOTS: dict[str, Bot] = {
    "dingtalk": Bot("DingTalk", "errcode", "errmsg", 130101),
    "wecom": Bot("WeCom", "errcode", "errmsg", 45009),
    "feishu": Bot("Feishu", "code", "msg", 11232),
    "slack": Bot("Slack", None, "", None),
}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query parameter of a DingTalk bot with "加签" (signing) on: base64 of
    HMAC-SHA256, keyed by the secret, of ``"{timestamp}\\n{secret}"``.

    >>> dingtalk_sign("SEC000", 1700000000000)
    'ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA='
    """
    text = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), text, hashlib.sha256).digest()).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """The ``sign`` body field of a Feishu bot with signature verification on: base64 of
    HMAC-SHA256 keyed by ``"{timestamp}\\n{secret}"`` over an empty message.

    >>> feishu_sign("SEC000", 1700000000)
    'QKhXycVUGrhA1dUEbXA2Vo/zGkv/W88IgYgKNA7Xmk0='
    """
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def bot_payload(channel: str, text: str, title: str | None = None) -> dict[str, Any]:
    """The JSON a bot gets for ``text`` (markdown where the bot renders it).

    >>> bot_payload("dingtalk", "**订单** 已发货", "发货通知")
    {'msgtype': 'markdown', 'markdown': {'title': '发货通知', 'text': '**订单** 已发货'}}
    >>> bot_payload("dingtalk", "订单已发货")
    {'msgtype': 'text', 'text': {'content': '订单已发货'}}
    >>> bot_payload("feishu", "订单已发货")
    {'msg_type': 'text', 'content': {'text': '订单已发货'}}
    >>> bot_payload("slack", "shipped", "Orders")
    {'text': '*Orders*\\nshipped'}
    """
    if channel == "dingtalk":
        if title:
            # DingTalk shows the markdown title in the chat list and notifications.
            return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        return {"msgtype": "text", "text": {"content": text}}
    if channel == "wecom":
        content = f"**{title}**\n{text}" if title else text
        return {"msgtype": "markdown", "markdown": {"content": content}}
    if channel == "feishu":
        if title:
            # A titled message is a "post": paragraphs of elements, one paragraph a line.
            lines = [[{"tag": "text", "text": line}] for line in text.split("\n")]
            post = {"zh_cn": {"title": title, "content": lines}}
            return {"msg_type": "post", "content": {"post": post}}
        return {"msg_type": "text", "content": {"text": text}}
    if channel == "slack":
        return {"text": f"*{title}*\n{text}" if title else text}
    raise ValueError(f"not a bot channel: {channel!r}")


def signed_request(
    channel: str, payload: dict[str, Any], secret: str | None, now: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The payload and query parameters to send, with the bot's signature when it has a
    secret (``sign`` and ``timestamp`` in the query for DingTalk, in the body for Feishu).

    >>> body, query = signed_request("feishu", {"msg_type": "text"}, "SEC000", now=1700000000.5)
    >>> body["timestamp"], body["sign"] == feishu_sign("SEC000", 1700000000), query
    ('1700000000', True, {})
    >>> signed_request("dingtalk", {"msgtype": "text"}, "SEC000", now=1700000000.0)[1]["timestamp"]
    '1700000000000'
    """
    if secret is None:
        return payload, {}
    at = time.time() if now is None else now
    if channel == "dingtalk":
        ms = int(at * 1000)
        return payload, {"timestamp": str(ms), "sign": dingtalk_sign(secret, ms)}
    if channel == "feishu":
        s = int(at)
        return {**payload, "timestamp": str(s), "sign": feishu_sign(secret, s)}, {}
    raise ValueError(f"{channel} bots are not signed")


def described_request(
    channel: str, payload: dict[str, Any], signed: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """`signed_request` for a dry run: the signature fields shown as ``<signed>``."""
    if not signed:
        return payload, {}
    fields = {"timestamp": SIGNED, "sign": SIGNED}
    return (payload, fields) if channel == "dingtalk" else ({**payload, **fields}, {})


async def send_bot(
    channel: str,
    url: str,
    payload: dict[str, Any],
    *,
    secret: str | None,
    timeout: float,
) -> int:
    """Post ``payload`` to the bot at ``url``; its HTTP status when the bot took it."""
    bot = BOTS[channel]
    body, params = signed_request(channel, payload, secret)
    what = f"notify {channel} ({mask_url(url)})"
    reply = await deliver(
        what,
        "POST",
        url,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json; charset=utf-8"},
        params=params or None,
        timeout=timeout,
    )
    _check_answer(bot, what, reply)
    return reply.status


def _check_answer(bot: Bot, what: str, reply: Reply) -> None:
    if bot.code_field is None:
        return
    answer = reply.json()
    code: Any = None
    if isinstance(answer, dict):
        # Feishu's older bot endpoint answers StatusCode/StatusMessage instead of code/msg.
        for code_field, message_field in ((bot.code_field, bot.message_field), _FEISHU_V1):
            if code_field in answer:
                code, said = answer[code_field], answer.get(message_field, "")
                break
    if not isinstance(code, int):
        # These bots all answer JSON with a code: anything else is not the bot (a wrong
        # URL, a proxy's page), and the message was not delivered.
        raise ActionFailed(f"{what}: the answer is not a {bot.label} bot's: {reply.text[:200]!r}")
    if code == 0:
        return
    message = f"{what}: {bot.label} error {code}: {str(said)[:200]}"
    if code == bot.rate_limited:
        raise Retry(message)
    raise ActionFailed(message)


def message_id(key: str) -> str:
    """The ``Message-ID`` of the email of one step of one run, the same on every attempt,
    so that a mail system (or a person's client) can drop the duplicate of a retry.

    >>> message_id("0192b7c1-4e5f-7a3b-9c8d-1e2f3a4b5c6d:actions[0]")
    '<tagloop.99b11aa4b57e87a679bb747fc8ac80d5@tagloop>'
    """
    # Hashed: a step path's brackets and colons are not allowed in a Message-ID.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<tagloop.{digest}@tagloop>"


def email_message(
    *, sender: str, to: Sequence[str], subject: str, text: str, key: str
) -> EmailMessage:
    """The email (UTF-8 text, Chinese included) for one notification.

    >>> msg = email_message(sender="ops@example.com", to=["张三 <zs@example.com>"],
    ...     subject="订单已发货", text="您好", key="r1:actions[0]")
    >>> str(msg["Subject"]), msg["To"], msg.get_content()
    ('订单已发货', '张三 <zs@example.com>', '您好\\n')
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    # A rendered subject may hold a newline, which no header can.
    msg["Subject"] = " ".join(subject.split())
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id(key)
    msg.set_content(text)
    return msg


def send_email(
    msg: EmailMessage,
    *,
    host: str,
    port: int,
    timeout: float,
    login: tuple[str, str] | None = None,
) -> dict[str, str]:
    """Hand ``msg`` to the SMTP server (blocking: run it in a worker thread); the
    recipients it refused while taking the others (address -> the server's answer).

    Port 465 is implicit TLS. With a ``login``, the connection is upgraded by STARTTLS
    first, unless the server is on this machine: a password never crosses a network in
    clear text.
    """
    what = f"notify email (smtp {host}:{port})"
    try:
        if port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if login is not None:
                _secure(smtp, host, port, what)
                smtp.login(*login)
            refused = smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        answers = {addr: (code, _said(said)) for addr, (code, said) in exc.recipients.items()}
        listed = "; ".join(f"{addr}: {code} {said}" for addr, (code, said) in answers.items())
        if all(400 <= code < 500 for code, _ in answers.values()):
            raise Retry(f"{what}: recipients deferred: {listed}") from None
        raise ActionFailed(f"{what}: recipients refused: {listed}") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise ActionFailed(
            f"{what}: login refused: {exc.smtp_code} {_said(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPResponseException as exc:
        # SMTP's own classification: 4xx is "try again later", 5xx is permanent.
        message = f"{what}: {exc.smtp_code} {_said(exc.smtp_error)}"
        if 400 <= exc.smtp_code < 500:
            raise Retry(message) from None
        raise ActionFailed(message) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise ActionFailed(f"{what}: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise ActionFailed(f"{what}: TLS certificate not trusted: {exc.verify_message}") from None
    except (smtplib.SMTPException, OSError) as exc:
        # Refused or dropped connections and timeouts: the server may be back later.
        raise Retry(f"{what}: {exc or type(exc).__name__}") from None
    return {addr: f"{code} {_said(said)}" for addr, (code, said) in refused.items()}


def _secure(smtp: smtplib.SMTP, host: str, port: int, what: str) -> None:
    if port == 465 or _local(host):
        return
    smtp.ehlo()
    if not smtp.has_extn("starttls"):
        raise ActionFailed(f"{what}: the server offers no STARTTLS; not logging in in clear text")
    smtp.starttls(context=ssl.create_default_context())
    smtp.ehlo()


def _local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _said(answer: bytes | str) -> str:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer
    return " ".join(text.split())[:200]
