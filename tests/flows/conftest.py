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
            status, payload, extra = state.answer()
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
