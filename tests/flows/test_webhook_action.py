"""The webhook action against a real HTTP receiver on 127.0.0.1: Standard Webhooks
signatures that verify, the same ids on every attempt of a step, and which answers are
retried (429, 5xx, no answer) and which fail the run (other 4xx)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from tagloop.flows.actions.base import ActionContext, ActionFailed, Retry
from tagloop.flows.actions.webhook import Webhook, WebhookArgs, close_sessions

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
SCOPE: dict[str, Any] = {
    "event": {"type": "order_created", "time": "2024-03-05T08:00:00Z", "id": "E-1",
              "properties": {"amount": 1288.5, "备注": "加急"}},
    "entity": {"id": "C-1", "type": "customer", "name": "张三", "tags": {"VIP": True}},
    "customer": {"id": "C-1", "type": "customer", "name": "张三", "tags": {"VIP": True}},
    "run": {"id": "r1", "flow": "f"},
}  # fmt: skip


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b'{"received": true}'
    hold: threading.Event | None = None  # answer only once this is set


@dataclass
class Receiver:
    """Records every request; answers the scripted answers first, then ``default``'s."""

    default: Callable[[Seen], Answer] = lambda seen: Answer()
    base: str = ""
    answers: list[Answer] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, seen: Seen) -> Answer:
        with self.lock:
            self.requests.append(seen)
            return self.answers.pop(0) if self.answers else self.default(seen)

    def reset(self) -> Receiver:
        with self.lock:
            self.answers, self.requests = [], []
        return self


@contextmanager
def serve(receiver: Receiver) -> Iterator[Receiver]:
    """``receiver`` behind a real HTTP server on 127.0.0.1 (a free port), in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = receiver.take(Seen(self.command, self.path, headers, body))
            if answer.hold is not None:
                answer.hold.wait()
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a client that gave up waiting (the timeout test)

        do_POST = do_PUT = do_PATCH = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    receiver.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


@pytest.fixture
def receiver(server: Receiver) -> Receiver:
    return server.reset()


def context(attempt: int = 1, step: str = "actions[0]", **secrets: str) -> ActionContext:
    return ActionContext(run_id="r1", step=step, attempt=attempt, flow="f", flow_version=1,
                         now=0, scope=SCOPE, effects=None, secrets=secrets)  # fmt: skip


def args(url: str, **named: Any) -> WebhookArgs:
    parsed = Webhook.parse_args([url], named)
    assert isinstance(parsed, WebhookArgs)
    return parsed


def run(parsed: WebhookArgs, ctx: ActionContext) -> dict[str, Any]:
    async def once() -> dict[str, Any]:
        try:
            return await Webhook().run(parsed, ctx)
        finally:
            await close_sessions()

    return asyncio.run(once())


def raised(kind: type[Exception], parsed: WebhookArgs, ctx: ActionContext) -> Any:
    with pytest.raises(kind) as caught:
        run(parsed, ctx)
    assert SECRET not in str(caught.value) and SECRET[6:] not in str(caught.value)
    return caught.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- what is sent ------------------------------------------------------------------------
def test_the_default_body_is_the_run_scope_signed_the_standard_webhooks_way(
    receiver: Receiver,
) -> None:
    result = run(args(f"{receiver.base}/hooks/in", secret_env="HOOK_SECRET"),
                 context(HOOK_SECRET=SECRET))  # fmt: skip
    assert result == {"status": 200, "body": {"received": True}}
    [seen] = receiver.requests
    assert seen.method == "POST" and seen.path == "/hooks/in"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["idempotency-key"] == "r1:actions[0]"
    assert seen.headers["webhook-id"] == "r1:actions[0]"
    # The receiver's side: the library verifies the body bytes exactly as received.
    payload = Verifier(SECRET).verify(seen.body, seen.headers)
    assert payload == {"event": SCOPE["event"], "entity": SCOPE["entity"], "run": SCOPE["run"]}


def test_a_signature_made_with_another_secret_does_not_verify(receiver: Receiver) -> None:
    run(args(receiver.base, secret_env="HOOK_SECRET"), context(HOOK_SECRET=SECRET))
    other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(Exception, match="No matching signature"):
        Verifier(other).verify(receiver.requests[0].body, receiver.requests[0].headers)


def test_a_given_body_method_and_headers_are_sent_as_given(receiver: Receiver) -> None:
    body = {"客户": "张三", "金额": 1288.5, "标签": ["VIP"], "ok": None}
    result = run(args(f"{receiver.base}/crm", method="put", body=body,
                      headers={"X-Tenant": "acme"}), context())  # fmt: skip
    assert result["status"] == 200
    [seen] = receiver.requests
    assert seen.method == "PUT" and seen.headers["x-tenant"] == "acme"
    assert orjson.loads(seen.body) == body
    assert seen.headers["idempotency-key"] == "r1:actions[0]"
    # Unsigned without a secret.
    assert not {"webhook-signature", "webhook-timestamp"} & set(seen.headers)


def test_an_explicit_null_body_is_sent_as_null(receiver: Receiver) -> None:
    run(args(receiver.base, method="PATCH", body=None), context())
    assert receiver.requests[0].body == b"null"


def test_the_secret_may_come_from_the_process_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGLOOP_TEST_HOOK_SECRET", SECRET)
    run(args(receiver.base, secret_env="TAGLOOP_TEST_HOOK_SECRET"), context())
    Verifier(SECRET).verify(receiver.requests[0].body, receiver.requests[0].headers)


def test_every_attempt_of_a_step_has_the_same_ids_and_a_valid_signature(
    receiver: Receiver,
) -> None:
    receiver.answers = [Answer(503, {}, b"busy")]
    parsed = args(receiver.base, secret_env="S")
    raised(Retry, parsed, context(attempt=1, S=SECRET))
    assert run(parsed, context(attempt=2, S=SECRET))["status"] == 200
    run(parsed, context(attempt=1, step="actions[1]", S=SECRET))
    first, retry, other_step = receiver.requests
    for header in ("webhook-id", "idempotency-key"):
        assert first.headers[header] == retry.headers[header] == "r1:actions[0]"
        assert other_step.headers[header] == "r1:actions[1]"
    for seen in receiver.requests:
        Verifier(SECRET).verify(seen.body, seen.headers)
    assert first.body == retry.body


# -- what the answers mean -----------------------------------------------------------------
def test_429_with_retry_after_seconds_is_retried_after_them(receiver: Receiver) -> None:
    receiver.answers = [Answer(429, {"Retry-After": "7"}, b'{"error": "slow down"}')]
    exc = raised(Retry, args(receiver.base, secret_env="S"), context(S=SECRET))
    assert exc.retry_after == 7.0
    assert "HTTP 429" in exc.message and "slow down" in exc.message


def test_503_with_an_http_date_retry_after_is_retried_then(receiver: Receiver) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    receiver.answers = [Answer(503, {"Retry-After": later}, b"maintenance")]
    exc = raised(Retry, args(receiver.base), context())
    assert exc.retry_after is not None and 3000 < exc.retry_after <= 3600
    assert "HTTP 503: maintenance" in exc.message


def test_5xx_without_retry_after_leaves_the_wait_to_the_backoff(receiver: Receiver) -> None:
    receiver.answers = [Answer(500, {}, b"")]
    exc = raised(Retry, args(receiver.base), context())
    assert exc.retry_after is None and exc.message.endswith("HTTP 500")


def test_400_fails_with_the_status_and_an_excerpt_of_the_answer(receiver: Receiver) -> None:
    answer = orjson.dumps({"error": "未知字段 客户", "detail": "x" * 1000})
    receiver.answers = [Answer(400, {"Content-Type": "application/json"}, answer)]
    exc = raised(ActionFailed, args(receiver.base, secret_env="S"), context(S=SECRET))
    assert exc.message.startswith(f"webhook POST {receiver.base}: HTTP 400: ")
    assert "未知字段 客户" in exc.message and len(exc.message) < 300


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.answers = [Answer(302, {"Location": "https://elsewhere.example/in?token=t0k"}, b"")]
    exc = raised(ActionFailed, args(receiver.base), context())
    assert "HTTP 302" in exc.message and "redirects are not followed" in exc.message
    assert "t0k" not in exc.message
    assert len(receiver.requests) == 1


def test_a_refused_connection_is_retried() -> None:
    exc = raised(Retry, args(f"http://127.0.0.1:{free_port()}/in", secret_env="S"),
                 context(S=SECRET))  # fmt: skip
    assert exc.message.startswith("webhook POST http://127.0.0.1:")


def test_no_answer_within_the_timeout_is_retried(receiver: Receiver) -> None:
    gate = threading.Event()
    receiver.answers = [Answer(hold=gate)]
    try:
        exc = raised(Retry, args(receiver.base, timeout_s=0.2), context())
    finally:
        gate.set()
    assert "no answer within 0.2 s" in exc.message


def test_2xx_answers_keep_json_or_text_cut_to_2000_characters(receiver: Receiver) -> None:
    receiver.answers = [
        Answer(201, {"Content-Type": "text/plain; charset=utf-8"}, ("好" * 5000).encode()),
        Answer(204, {}, b""),
    ]
    assert run(args(receiver.base), context()) == {"status": 201, "body": "好" * 2000}
    assert run(args(receiver.base), context()) == {"status": 204, "body": ""}


# -- secrets and arguments -----------------------------------------------------------------
def test_a_missing_secret_variable_fails_naming_it_without_sending(receiver: Receiver) -> None:
    exc = raised(ActionFailed, args(receiver.base, secret_env="TAGLOOP_TEST_NO_SUCH_VAR"),
                 context())  # fmt: skip
    assert exc.message == "webhook: environment variable TAGLOOP_TEST_NO_SUCH_VAR is not set"
    assert receiver.requests == []


@pytest.mark.parametrize("bad", [SECRET[6:], "whsec_not*base64!", "whsec_"])
def test_a_malformed_secret_fails_without_showing_it(receiver: Receiver, bad: str) -> None:
    exc = raised(ActionFailed, args(receiver.base, secret_env="S"), context(S=bad))
    assert exc.message == (
        "webhook: environment variable S does not hold a Standard Webhooks secret "
        "(whsec_ and base64)"
    )
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ({"url": "ftp://files.example.com/in"}, "url: Value error, must be an http:// or https://"),
        ({"url": "https://h.example", "methd": "PUT"}, "methd: Extra inputs are not permitted"),
        ({"url": "https://h.example", "method": "DELETE"}, "method: Input should be"),
        ({"url": "https://h.example", "headers": {"Webhook-Signature": "x"}}, "Webhook-Signature"),
        ({"url": "https://h.example", "timeout_s": 0}, "timeout_s:"),
        ({"url": "https://h.example", "secret_env": SECRET}, "secret_env: Value error"),
    ],
)
def test_bad_arguments_fail_at_load_naming_the_argument(
    named: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ActionFailed) as caught:
        Webhook.parse_args([], named)
    assert expected in caught.value.message
    assert SECRET not in caught.value.message


def test_describe_shows_what_would_be_sent_and_sends_nothing(receiver: Receiver) -> None:
    parsed = args(f"{receiver.base}/in", secret_env="S", headers={"X-Tenant": "acme"})
    described = Webhook().describe(parsed, context(S=SECRET))
    assert described == {
        "would": "webhook",
        "method": "POST",
        "url": f"{receiver.base}/in",
        "headers": {
            "X-Tenant": "acme",
            "Content-Type": "application/json",
            "Idempotency-Key": "r1:actions[0]",
            "webhook-id": "r1:actions[0]",
            "webhook-timestamp": "<signed>",
            "webhook-signature": "<signed>",
        },
        "body": {"event": SCOPE["event"], "entity": SCOPE["entity"], "run": SCOPE["run"]},
    }
    assert Webhook().describe(parsed)["body"] == "<the run's event, entity and run>"
    assert SECRET not in repr(described)
    assert receiver.requests == []
