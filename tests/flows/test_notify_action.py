"""The notify action against real servers on 127.0.0.1: an HTTP server standing in for the
DingTalk, WeCom, Feishu and Slack bots (payload shapes, signatures recomputed here, the
bots' error codes in HTTP 200 answers), and an aiosmtpd SMTP server for email."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tagloop.flows.actions.base import ActionContext, ActionFailed, Retry
from tagloop.flows.actions.channels import message_id
from tagloop.flows.actions.notify import Notify, NotifyArgs
from tagloop.flows.actions.webhook import close_sessions
from tests.flows.test_webhook_action import Answer, Receiver, Seen, free_port, serve

TOKEN = "TOKEN-7f3a9c"  # in every bot URL: no message or description may show it
SECRET = "SEC-d1ngta1k-s3cret"
CUSTOMER = {"id": "C-1", "type": "customer", "name": "张三", "city": "上海", "tags": {"VIP": True}}
SCOPE: dict[str, Any] = {
    "event": {"type": "order_created", "id": "E-1", "properties": {"amount": 1288.5}},
    "entity": CUSTOMER,
    "customer": CUSTOMER,
    "run": {"id": "r1", "flow": "vip_order"},
}
MESSAGE = "**{{ customer.name }}**（{{ customer.city }}）下单 {{ event.properties.amount }} 元"
RENDERED = "**张三**（上海）下单 1288.5 元"
PATHS = {
    "dingtalk": f"/robot/send?access_token={TOKEN}",
    "wecom": f"/cgi-bin/webhook/send?key={TOKEN}",
    "feishu": f"/open-apis/bot/v2/hook/{TOKEN}",
    "slack": f"/services/T000/B000/{TOKEN}",
}
OK = {
    "/robot/send": b'{"errcode": 0, "errmsg": "ok"}',
    "/cgi-bin/webhook/send": b'{"errcode": 0, "errmsg": "ok"}',
}


def bot_default(seen: Seen) -> Answer:
    """What each bot answers a message it takes."""
    path = urlsplit(seen.path).path
    if path.startswith("/open-apis/"):
        return Answer(body=b'{"code": 0, "msg": "success", "data": {}}')
    if path.startswith("/services/"):
        return Answer(headers={"Content-Type": "text/html"}, body=b"ok")
    return Answer(body=OK.get(path, b'{"errcode": 0, "errmsg": "ok"}'))


@pytest.fixture(scope="module")
def bots_server() -> Iterator[Receiver]:
    with serve(Receiver(default=bot_default)) as receiver:
        yield receiver


@pytest.fixture
def bots(bots_server: Receiver) -> Receiver:
    return bots_server.reset()


def context(attempt: int = 1, **secrets: str) -> ActionContext:
    return ActionContext(run_id="r1", step="actions[0]", attempt=attempt, flow="f", flow_version=1,
                         now=0, scope=SCOPE, effects=None, secrets=secrets)  # fmt: skip


def notify(**named: Any) -> NotifyArgs:
    parsed = Notify.parse_args([], named)
    assert isinstance(parsed, NotifyArgs)
    return parsed


def run(parsed: NotifyArgs, ctx: ActionContext | None = None) -> dict[str, Any]:
    async def once() -> dict[str, Any]:
        try:
            return await Notify().run(parsed, ctx or context())
        finally:
            await close_sessions()

    return asyncio.run(once())


def raised(kind: type[Exception], parsed: NotifyArgs, ctx: ActionContext | None = None) -> Any:
    with pytest.raises(kind) as caught:
        run(parsed, ctx)
    text = str(caught.value)
    assert TOKEN not in text and SECRET not in text
    return caught.value


def url(bots: Receiver, channel: str) -> str:
    return bots.base + PATHS[channel]


def sent(bots: Receiver) -> tuple[dict[str, list[str]], Any]:
    [seen] = bots.requests
    return parse_qs(urlsplit(seen.path).query), orjson.loads(seen.body)


# -- payloads and signatures -----------------------------------------------------------------
def test_dingtalk_markdown_signed_with_timestamp_and_sign_query_parameters(
    bots: Receiver,
) -> None:
    parsed = notify(channel="dingtalk", url=url(bots, "dingtalk"), secret_env="DT_SECRET",
                    title="大客户下单", message=MESSAGE)  # fmt: skip
    assert run(parsed, context(DT_SECRET=SECRET)) == {"channel": "dingtalk", "status": 200}
    query, body = sent(bots)
    assert body == {"msgtype": "markdown", "markdown": {"title": "大客户下单", "text": RENDERED}}
    assert query["access_token"] == [TOKEN]
    [timestamp], [sign] = query["timestamp"], query["sign"]
    # DingTalk's documented recipe: HMAC-SHA256 keyed by the secret over "ts\nsecret".
    digest = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), "sha256").digest()
    assert sign == base64.b64encode(digest).decode()
    assert len(timestamp) == 13  # milliseconds


def test_dingtalk_without_a_title_sends_text_unsigned_without_a_secret(bots: Receiver) -> None:
    run(notify(channel="dingtalk", url=url(bots, "dingtalk"), message="库存不足"))
    query, body = sent(bots)
    assert body == {"msgtype": "text", "text": {"content": "库存不足"}}
    assert set(query) == {"access_token"}


def test_wecom_markdown(bots: Receiver) -> None:
    assert run(notify(channel="wecom", url=url(bots, "wecom"), message=MESSAGE))["status"] == 200
    query, body = sent(bots)
    assert body == {"msgtype": "markdown", "markdown": {"content": RENDERED}}
    assert query == {"key": [TOKEN]}


def test_feishu_text_signed_with_timestamp_and_sign_in_the_body(bots: Receiver) -> None:
    parsed = notify(channel="feishu", url_env="FEISHU_URL", secret_env="FEISHU_SECRET",
                    message=MESSAGE)  # fmt: skip
    result = run(parsed, context(FEISHU_URL=url(bots, "feishu"), FEISHU_SECRET=SECRET))
    assert result == {"channel": "feishu", "status": 200}
    query, body = sent(bots)
    assert query == {}
    timestamp, sign = body.pop("timestamp"), body.pop("sign")
    assert body == {"msg_type": "text", "content": {"text": RENDERED}}
    # Feishu's documented recipe: HMAC-SHA256 keyed by "ts\nsecret" over nothing.
    key = f"{timestamp}\n{SECRET}".encode()
    assert sign == base64.b64encode(hmac.new(key, digestmod=hashlib.sha256).digest()).decode()
    assert len(timestamp) == 10  # seconds


def test_feishu_with_a_title_sends_a_post_one_paragraph_a_line(bots: Receiver) -> None:
    run(notify(channel="feishu", url=url(bots, "feishu"), title="日报", message="第一行\n第二行"))
    _, body = sent(bots)
    assert body == {
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": "日报", "content": [
            [{"tag": "text", "text": "第一行"}], [{"tag": "text", "text": "第二行"}],
        ]}}},
    }  # fmt: skip


def test_slack_text(bots: Receiver) -> None:
    assert run(notify(channel="slack", url=url(bots, "slack"), message=MESSAGE)) == {
        "channel": "slack",
        "status": 200,
    }
    _, body = sent(bots)
    assert body == {"text": RENDERED}


# -- the bots' answers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "answer", "kind", "said"),
    [
        ("dingtalk", {"errcode": 310000, "errmsg": "sign not match"}, ActionFailed,
         "DingTalk error 310000: sign not match"),
        ("dingtalk", {"errcode": 300001, "errmsg": "关键词不匹配"}, ActionFailed, "关键词不匹配"),
        ("dingtalk", {"errcode": 130101, "errmsg": "send too fast"}, Retry,
         "DingTalk error 130101: send too fast"),
        ("wecom", {"errcode": 93000, "errmsg": "invalid webhook url"}, ActionFailed,
         "WeCom error 93000: invalid webhook url"),
        ("wecom", {"errcode": 45009, "errmsg": "api freq out of limit"}, Retry,
         "WeCom error 45009"),
        ("feishu", {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"},
         ActionFailed, "Feishu error 19021: sign match fail"),
        ("feishu", {"code": 11232, "msg": "frequency limited"}, Retry, "Feishu error 11232"),
        ("feishu", {"StatusCode": 9499, "StatusMessage": "Bad Request"}, ActionFailed,
         "Feishu error 9499: Bad Request"),
    ],
)  # fmt: skip
def test_error_codes_in_a_200_answer_fail_or_retry(
    bots: Receiver, channel: str, answer: dict[str, Any], kind: type[Exception], said: str
) -> None:
    bots.answers = [Answer(200, body=orjson.dumps(answer))]
    exc = raised(kind, notify(channel=channel, url=url(bots, channel), message="x"))
    assert exc.message.startswith(f"notify {channel} (http://127.0.0.1:")
    assert said in exc.message


def test_an_answer_that_is_not_the_bots_fails(bots: Receiver) -> None:
    bots.answers = [Answer(200, {"Content-Type": "text/html"}, b"<html>login</html>")]
    exc = raised(ActionFailed, notify(channel="wecom", url=url(bots, "wecom"), message="x"))
    assert "not a WeCom bot's" in exc.message


@pytest.mark.parametrize(
    ("answer", "kind", "retry_after"),
    [
        (Answer(429, {"Retry-After": "30"}, b"rate_limited"), Retry, 30.0),
        (Answer(503, {}, b"unavailable"), Retry, None),
        (Answer(404, {}, b"no_service"), ActionFailed, None),
    ],
)
def test_http_statuses_of_a_bot(
    bots: Receiver, answer: Answer, kind: type[Exception], retry_after: float | None
) -> None:
    bots.answers = [answer]
    exc = raised(kind, notify(channel="slack", url=url(bots, "slack"), message="x"))
    assert f"HTTP {answer.status}: {answer.body.decode()}" in exc.message
    if kind is Retry:
        assert exc.retry_after == retry_after


def test_an_unreachable_bot_is_retried() -> None:
    dead = f"http://127.0.0.1:{free_port()}{PATHS['dingtalk']}"
    raised(Retry, notify(channel="dingtalk", url=dead, message="x"))


def test_a_template_error_fails_before_anything_is_sent(bots: Receiver) -> None:
    exc = raised(ActionFailed, notify(channel="slack", url=url(bots, "slack"),
                                      message="您好 {{ custmer.name }}"))  # fmt: skip
    assert exc.message == "template '您好 {{ custmer.name }}': 'custmer' is undefined"
    assert bots.requests == []


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        ({}, "notify dingtalk: environment variable DT_URL is not set"),
        ({"DT_URL": f"oapi.dingtalk.com/robot/send?access_token={TOKEN}"},
         "notify dingtalk: environment variable DT_URL does not hold an http(s) URL"),
        ({"DT_URL": "http://127.0.0.1:9/robot/send"},
         "notify dingtalk: environment variable DT_SECRET is not set"),
    ],
)  # fmt: skip
def test_missing_or_bad_url_and_secret_variables_are_named(
    secrets: dict[str, str], expected: str
) -> None:
    parsed = notify(channel="dingtalk", url_env="DT_URL", secret_env="DT_SECRET", message="x")
    assert raised(ActionFailed, parsed, replace(context(), secrets=secrets)).message == expected


def test_describe_renders_the_message_and_masks_the_url(bots: Receiver) -> None:
    parsed = notify(channel="dingtalk", url=url(bots, "dingtalk"), secret_env="DT_SECRET",
                    title="大客户下单", message=MESSAGE)  # fmt: skip
    described = Notify().describe(parsed, context(DT_SECRET=SECRET))
    assert described == {
        "would": "notify",
        "channel": "dingtalk",
        "url": f"{bots.base}/…",
        "payload": {"msgtype": "markdown", "markdown": {"title": "大客户下单", "text": RENDERED}},
        "query": {"timestamp": "<signed>", "sign": "<signed>"},
    }
    feishu = notify(channel="feishu", url_env="FEISHU_URL", secret_env="S", message="hi")
    assert Notify().describe(feishu)["payload"] == {
        "msg_type": "text", "content": {"text": "hi"}, "timestamp": "<signed>", "sign": "<signed>"
    }  # fmt: skip
    assert Notify().describe(feishu)["url"] == "$FEISHU_URL"
    assert TOKEN not in repr(described) and SECRET not in repr(described)
    assert bots.requests == []


# -- email -------------------------------------------------------------------------------------
@dataclass
class Mailbox:
    """An aiosmtpd handler keeping what it is given; ``refuse`` answers RCPT TO for some."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        with self.lock:
            self.logins.append((data.login, data.password))
        ok = data.login == b"ops" and data.password == b"pa55"
        # handled=False: aiosmtpd then answers 535 itself (True means "already answered").
        return AuthResult(success=ok, handled=False)


class LocalController(Controller):
    """An aiosmtpd controller on a port the system picks (no free-port race)."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = LocalController(
        box, hostname="127.0.0.1", port=0, authenticator=box.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


def email(port: int, **named: Any) -> NotifyArgs:
    base = {"channel": "email", "to": ["张三 <zs@example.com>", "ops@example.com"],
            "subject": "大客户下单：{{ customer.name }}", "from": "tagloop@example.com",
            "message": MESSAGE, "smtp_port": port}  # fmt: skip
    return notify(**(base | named))


def test_email_is_delivered_with_subject_recipients_and_chinese_body(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    result = run(email(port, subject="大客户下单"), context(TAGLOOP_SMTP_HOST="127.0.0.1"))
    assert result == {
        "channel": "email",
        "to": ["张三 <zs@example.com>", "ops@example.com"],
        "message_id": message_id("r1:actions[0]"),
    }
    [(sender, recipients, msg)] = box.messages
    assert sender == "tagloop@example.com"
    assert recipients == ["zs@example.com", "ops@example.com"]
    assert msg["Subject"] == "大客户下单"
    assert msg["To"] == "张三 <zs@example.com>, ops@example.com"
    assert msg.get_content().replace("\r\n", "\n") == RENDERED + "\n"
    assert msg["Message-ID"] == message_id("r1:actions[0]")
    assert box.logins == []


def test_a_retried_email_has_the_same_message_id(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    box.refuse = {"ops@example.com": "451 4.3.0 try again later"}
    parsed = email(port, to=["ops@example.com"], subject="s")
    exc = raised(Retry, parsed, context(attempt=1))
    assert "451" in exc.message and "ops@example.com" in exc.message
    box.refuse = {}
    run(parsed, context(attempt=2))
    run(parsed, context(attempt=3))
    first, second = (msg["Message-ID"] for _, _, msg in box.messages)
    assert first == second == message_id("r1:actions[0]")


def test_a_permanently_refused_recipient_fails_and_a_partial_refusal_is_reported(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    box.refuse = {"ops@example.com": "550 5.1.1 no such user"}
    exc = raised(ActionFailed, email(port, to="ops@example.com", subject="s"))
    assert "recipients refused: ops@example.com: 550 5.1.1 no such user" in exc.message
    result = run(email(port, subject="s"))
    assert result["refused"] == {"ops@example.com": "550 5.1.1 no such user"}
    [(_, recipients, _)] = box.messages
    assert recipients == ["zs@example.com"]


def test_email_logs_in_with_the_smtp_user_and_password(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    run(email(port, subject="s"), context(TAGLOOP_SMTP_USER="ops", TAGLOOP_SMTP_PASSWORD="pa55"))
    assert box.logins == [(b"ops", b"pa55")] and len(box.messages) == 1
    exc = raised(ActionFailed, email(port, subject="s"),
                 context(TAGLOOP_SMTP_USER="ops", TAGLOOP_SMTP_PASSWORD="wrong"))  # fmt: skip
    assert "login refused: 535" in exc.message and "wrong" not in exc.message
    exc = raised(ActionFailed, email(port, subject="s"), context(TAGLOOP_SMTP_USER="ops"))
    assert exc.message == "notify email: environment variable TAGLOOP_SMTP_PASSWORD is not set"
    assert len(box.messages) == 1


def test_an_unreachable_smtp_server_is_retried() -> None:
    exc = raised(Retry, email(free_port(), subject="s"))
    assert exc.message.startswith("notify email (smtp 127.0.0.1:")


def test_describe_an_email(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    assert Notify().describe(email(port, smtp_host="mail.example.com"), context()) == {
        "would": "notify",
        "channel": "email",
        "smtp": f"mail.example.com:{port}",
        "from": "tagloop@example.com",
        "to": ["张三 <zs@example.com>", "ops@example.com"],
        "subject": "大客户下单：{{ customer.name }}",
        "message": RENDERED,
    }
    assert box.messages == []


# -- arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ({"channel": "email", "message": "x"}, "email needs to, subject, from"),
        ({"channel": "email", "message": "x", "to": "a@example.com", "subject": "s",
          "from": "b@example.com", "url": "https://x.example"}, "url: not used by channel email"),
        ({"channel": "email", "message": "x", "to": "not an address", "subject": "s",
          "from": "b@example.com"}, "to: Value error, not an email address"),
        ({"channel": "dingtalk", "message": "x"}, "dingtalk needs the bot's url or url_env"),
        ({"channel": "dingtalk", "message": "x", "url": "https://x.example", "url_env": "U"},
         "dingtalk needs the bot's url or url_env (one of them)"),
        ({"channel": "slack", "message": "x", "url": "https://x.example", "secret_env": "S"},
         "secret_env: slack bots are not signed"),
        ({"channel": "wecom", "message": "x", "url": "https://x.example", "to": "a@example.com"},
         "to: not used by channel wecom"),
        ({"channel": "sms", "message": "x"}, "channel: Input should be"),
        ({"channel": "feishu", "message": "x", "url": f"ftp://x.example/{TOKEN}"},
         "url: Value error, must be an http:// or https:// URL"),
        ({"channel": "slack", "message": "x", "url_env": f"https://x.example/{TOKEN}"},
         "url_env: Value error, must name an environment variable"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_at_load(named: dict[str, Any], expected: str) -> None:
    with pytest.raises(ActionFailed) as caught:
        Notify.parse_args([], named)
    assert expected in caught.value.message
    assert TOKEN not in caught.value.message


def test_recipients_as_one_text_and_from_by_its_python_name() -> None:
    parsed = notify(channel="email", message="x", subject="s", from_="ops@example.com",
                    to='"Zhang, San" <zs@example.com>, li@example.com')  # fmt: skip
    assert parsed.to == ['"Zhang, San" <zs@example.com>', "li@example.com"]
    assert parsed.from_ == "ops@example.com"
