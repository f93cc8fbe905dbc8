"""Imported tags: uploads checked line by line, replace and merge, validity periods that
end by timer, and the tags that read imported ones, on the stream and in batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagloop.engine import batch, imports
from tagloop.engine.evaluator import same
from tagloop.errors import NotFound, ValidationFailed
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.sources.files import read_text
from tagloop.store import tags as tag_store
from tests.conftest import write_workspace

DAY = 86_400_000_000
T0 = 1_717_200_000_000_000  # 2024-06-01

TAGS = """
    tags:
      - name: key_account
        entity: customer
        kind: imported
        valid_for: 30d
        category: 价值 > 大客户
      - name: grade
        entity: customer
        kind: imported
        value_type: string
      - name: credit
        entity: customer
        kind: imported
        value_type: integer
      - name: regions
        entity: customer
        kind: imported
        value_type: string
        multi: true
      - name: key_and_spending
        entity: customer
        rule: has_tag('key_account') and spend > 100
      - name: grade_a
        entity: customer
        rule: tag('grade') == 'A'
      - name: spend
        entity: customer
        rule: spend > 0
"""


class Clock:
    now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[Runtime]:
    root = write_workspace(tmp_path / "ws", database_url, tags=TAGS)
    runtime = Runtime.open(root, clock=clock)
    runtime.ingestor.commit(
        [
            Event(
                id=f"i-{who}",
                type="identify",
                entity_type="customer",
                entity_id=who,
                time=T0 - DAY,
                attributes={"spend": spend},
            )
            for who, spend in (("c1", 500), ("c2", 50), ("c3", 5))
        ]
    )
    yield runtime
    runtime.close()


def upload(rt: Runtime, tag: str, text: str, **options: Any) -> imports.ImportReport:
    active = imports.imported_tag(rt.active, tag)
    report = imports.ImportReport()
    values = imports.parse(active, read_text(text, "csv"), report, where="up.csv")
    imports.apply(
        rt.db, rt.engine, active, values, report, where="up.csv", now=rt.clock(), **options
    )
    return report


def held(rt: Runtime, tag: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        return {
            i: a.value
            for t, i in tag_store.assigned_ids(conn, tag)
            for a in tag_store.for_entity(conn, t, i)
            if a.tag == tag
        }


def batch_holders(rt: Runtime, tag: str) -> dict[str, Any]:
    tags = batch.closure(rt.active, [tag])
    results = batch.evaluate(
        batch.fetcher(rt.db),
        batch.dialect_of(rt.db),
        rt.engine,
        "customer",
        tags,
        rt.clock(),
        evidence=False,
    )
    return {i: r[tag].value for i, r in results.items() if r[tag].held}


def test_bad_lines_are_reported_and_the_rest_applied(rt: Runtime) -> None:
    report = upload(rt, "key_account", "id\nc1\nc2\nc9\nc1\n\n")
    assert (report.read, report.assigned, report.rejected) == (4, 2, 2)
    assert report.samples == [
        "up.csv:5: entity 'c1' is already given on line 2",
        "up.csv:4: no customer with id 'c9'",
    ]
    assert held(rt, "key_account") == {"c1": True, "c2": True}
    assert held(rt, "key_and_spending") == {"c1": True}  # c2 spends 50
    report = upload(rt, "credit", "id,value\nc1,700\nc2,lots\nc3,\n")
    assert report.assigned == 1 and report.samples == [
        "up.csv:3: value: 'lots' is not a valid integer",
        "up.csv:4: value: empty value",
    ]
    assert held(rt, "credit") == {"c1": 700}


def test_validity_ends_by_timer_and_batch_agrees(rt: Runtime, clock: Clock) -> None:
    report = upload(rt, "key_account", "id\nc1\nc2\n")
    assert report.expires == "2024-07-01T00:00:00.000000Z"
    with rt.db.read() as conn:
        (assignment,) = [
            a for a in tag_store.for_entity(conn, "customer", "c1") if a.tag == "key_account"
        ]
    assert assignment.expires_at == T0 + 30 * DAY and assignment.source == "import"
    assert batch_holders(rt, "key_and_spending") == held(rt, "key_and_spending") == {"c1": True}
    clock.now = T0 + 30 * DAY - 1
    assert rt.fire_timers() == 0
    clock.now = T0 + 30 * DAY  # valid for [T0, T0 + 30d)
    assert rt.fire_timers() == 2
    assert held(rt, "key_account") == {} and held(rt, "key_and_spending") == {}
    assert batch_holders(rt, "key_and_spending") == {}
    with rt.db.read() as conn:
        changes = [(h.tag, h.change) for h in tag_store.history(conn, "customer", "c1")]
    assert ("key_account", "removed") in changes and ("key_and_spending", "removed") in changes


def test_replace_and_merge(rt: Runtime) -> None:
    upload(rt, "grade", "id,value\nc1,A\nc2,B\n")
    assert held(rt, "grade_a") == {"c1": True}
    report = upload(rt, "grade", "id,value\nc2,A\n")  # replace: c1 is no longer graded
    assert (report.changed, report.removed) == (1, 1)
    assert held(rt, "grade") == {"c2": "A"} and held(rt, "grade_a") == {"c2": True}
    assert batch_holders(rt, "grade_a") == {"c2": True}
    report = upload(rt, "grade", "id,value\nc3,C\nc2,A\n", mode="merge")
    assert (report.assigned, report.unchanged, report.removed) == (1, 1, 0)
    assert held(rt, "grade") == {"c2": "A", "c3": "C"}


def test_multi_valued_imports(rt: Runtime) -> None:
    upload(rt, "regions", "id,value\nc1,华东|华南\n")
    assert same(held(rt, "regions")["c1"], ["华东", "华南"])


def test_only_imported_tags_take_uploads(rt: Runtime) -> None:
    with pytest.raises(ValidationFailed, match="computed by its rule"):
        imports.imported_tag(rt.active, "grade_a")
    with pytest.raises(NotFound, match="did you mean 'grade'"):
        imports.imported_tag(rt.active, "grad")
    with pytest.raises(ValidationFailed, match="valid_for: 'soon' is not a duration"):
        upload(rt, "grade", "id,value\nc1,A\n", valid_for="soon")
