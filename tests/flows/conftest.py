"""A local HTTP receiver standing in for bots and webhook endpoints, and the seed workspace
of the flow tests (orders of customers; the reference platform's VIP flow, verbatim)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import write_workspace


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; answers from ``answers`` (status, body) in turn, then 200."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # path -> an event the answer waits for (a receiver that hangs until the test says)
    hold: dict[str, threading.Event] = field(default_factory=dict)

    def answer(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            return self.answers.pop(0) if self.answers else (200, {"errcode": 0}, {})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                state.requests.append(Received("POST", parts.path, query, headers, body))
            held = state.hold.get(parts.path)
            if held is not None:
                held.wait(60)
            status, payload, extra = state.answer()
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the caller is gone (killed mid-request)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for serve_forever to look at its flag, which it does every
    # poll_interval (0.5 s by default: half a second of every test's teardown)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


ORDER = """
    name: order
    description: 订单
    fields:
      priority: string
      credit_check: string
      amount: number
    events:
      order_created:
        properties:
          amount: number
      order_paid: {}
"""

# The flow exactly as ../shared/seeds/000_4bad4a6fd4eeac1e.txt writes it.
SEED_FLOW = """\
flow:
  name: "VIP_Order_Processing"
  trigger: "order_created"
  conditions:
    - "customer.tags.contains('VIP')"
  actions:
    - "skip_credit_check"
    - "notify_manager"
    - "set_priority(HIGH)"
"""

ALIASES = """
    actions:
      - name: skip_credit_check
        description: VIP 订单免信用审核
        do: set_attribute(credit_check, skipped)
      - name: notify_manager
        description: 钉钉通知销售经理
        do:
          notify:
            channel: dingtalk
            url_env: MANAGER_BOT_URL
            secret_env: MANAGER_BOT_SECRET
            title: VIP 订单
            message: >-
              VIP 客户 {{ customer.id }} 下单 {{ event.properties.amount }} 元
              （订单 {{ entity.id }}）
"""


def flow_workspace(
    root: Path, database: str, flows: dict[str, str] | None = None, aliases: str = ALIASES
) -> Path:
    """The test workspace with orders, the aliases above and ``flows`` (file -> text)."""
    extra = {"entities/order.yaml": ORDER, "actions/aliases.yaml": aliases}
    ws = write_workspace(root, database, extra=extra)
    (ws / "flows").mkdir(exist_ok=True)
    for name, text in (flows if flows is not None else {"vip.yaml": SEED_FLOW}).items():
        (ws / "flows" / name).write_text(text, encoding="utf-8")
    return ws


# -- the flows of the API and command-line tests (test_flows_api.py, test_flows_cli.py) --

# Fails at once: nothing listens on port 1, and one attempt is all it gets.
FAILING_HOOK = """\
name: order_hook
description: tell the ERP about an order
trigger: {manual: order}
retry: {attempts: 1}
actions:
  - webhook: {url: "http://127.0.0.1:1/hook"}
"""

# A work order on a customer: the entity type a restricted key may or may not see.
TICKET = """\
name: call_customer
description: ask sales to call the customer
trigger: {manual: customer}
actions:
  - create_work_order:
      title: "Call {{ entity.id }}: {{ event.properties.reason }}"
      assignee: sales
      due: 4h
"""


def flaky_hook(url: str) -> str:
    """A flow whose one webhook goes to ``url`` (a `Receiver`) and is tried once."""
    return (
        "name: flaky_hook\ntrigger: {manual: order}\nretry: {attempts: 1}\n"
        f'actions:\n  - webhook: {{url: "{url}/flaky"}}\n'
    )


def operations_flows(receiver_url: str) -> dict[str, str]:
    """The seed flow and the flows above, by file name."""
    return {
        "vip.yaml": SEED_FLOW,
        "hook.yaml": FAILING_HOOK,
        "ticket.yaml": TICKET,
        "flaky.yaml": flaky_hook(receiver_url),
    }


@pytest.fixture
def operations_workspace(
    tmp_path: Path, database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A workspace with `operations_flows`; the seed flow's bot posts to ``receiver``."""
    monkeypatch.setenv("MANAGER_BOT_URL", f"{receiver.url}/robot/send?access_token=T0K3N")
    monkeypatch.setenv("MANAGER_BOT_SECRET", "SEC-test-secret")
    return flow_workspace(tmp_path / "ws", database_url, operations_flows(receiver.url))
