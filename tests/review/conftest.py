"""A workspace with reviewed tags, on SQLite and PostgreSQL, and keys of each role."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tagloop.api.app import create_app
from tagloop.ingest import canonical
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch
from tagloop.runtime import Runtime
from tests.conftest import make_key, write_workspace

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000_000

TAGS = """
    tags:
      - name: big
        entity: customer
        rule: spend >= 1000
        review: all
      - name: grade
        entity: customer
        value: "case when spend >= 500 then 'A' else 'B' end"
        review: {mode: sample, percent: 50}
      - name: vip_shanghai
        entity: customer
        rule: has_tag('big') and city == '上海'
      - name: frequent
        entity: customer
        rule: event_count >= 2
      - name: churn_risk
        entity: customer
        kind: imported
        review: {mode: confidence, above: 0.9, below: 0.5}
"""


_IDS = itertools.count()


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def review_workspace(tmp_path: Path, database_url: str) -> Path:
    return write_workspace(
        tmp_path / "ws",
        database_url,
        tags=TAGS,
        extra={
            "tagloop.yaml": f"name: test\ndatabase: '{database_url}'\n"
            "ingest: {max_future: 1000d}\n"
        },
    )


@pytest.fixture
def rrt(review_workspace: Path, clock: Clock) -> Iterator[Runtime]:
    runtime = Runtime.open(review_workspace, clock=clock)
    yield runtime
    runtime.close()


def send(rt: Runtime, *items: dict[str, Any]) -> None:
    """Ingest canonical events (ids made up when missing) through the streaming path."""
    parsed = Batch()
    body = [{"id": f"e{next(_IDS)}", "type": "identify", **item} for item in items]
    canonical.to_events(body, parsed, ParseContext(rt.clock(), rt.workspace.timezone, "api"))
    rt.ingestor.check(parsed)
    assert not parsed.rejections, parsed.rejections
    rt.ingestor.commit([e for _, e in parsed.events])


def customer(entity_id: str, **attributes: Any) -> dict[str, Any]:
    return {"entity": {"type": "customer", "id": entity_id}, "attributes": attributes}


@pytest.fixture
def api(rrt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rrt), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def headers(rrt: Runtime) -> Callable[..., dict[str, str]]:
    def make(*roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_key(rrt, *roles)}"}

    return make
