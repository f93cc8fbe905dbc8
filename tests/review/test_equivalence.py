"""Stream and batch agree under review policies and pins: whatever order events arrive
in, the assignments (value and status) the streaming evaluator leaves are what a batch
recompute from scratch computes, readers of reviewed or pinned tags included."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from tagloop.audit import Actor
from tagloop.engine import batch
from tagloop.review import pins
from tagloop.runtime import Runtime
from tagloop.store.tables import review_items, tag_assignments
from tests.conftest import _truncate, sqlite_copy, write_workspace
from tests.review.conftest import TAGS, Clock, customer, send

EXTRA_TAGS = """
      - name: grade_a_frequent
        entity: customer
        rule: tag('grade') == 'A' and has_tag('frequent')
      - name: big_or_pinned
        entity: customer
        rule: has_tag('big') or has_tag('frequent')
"""
IDS = [f"c{i}" for i in range(8)]

attributes = st.fixed_dictionaries(
    {},
    optional={
        "spend": st.sampled_from([0, 300, 600, 1200, 5000]),
        "city": st.sampled_from(["上海", "北京"]),
    },
)
updates = st.lists(st.tuples(st.sampled_from(IDS), attributes), min_size=1, max_size=30)
pin_list = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(["big", "grade", "frequent"]), st.booleans()),
    max_size=4,
)


def snapshot(rt: Runtime) -> dict[tuple[str, str], tuple[Any, str]]:
    with rt.db.read() as conn:
        rows = rt.db.fetch(conn, "SELECT entity_id, tag, value, status FROM tag_assignments", ())
    return {(r[0], r[1]): (rt.db.json_value(r[2]), r[3]) for r in rows}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=updates, cuts=st.lists(st.integers(0, 30), max_size=3), pinned=pin_list)
def test_stream_equals_batch_with_reviews(
    tmp_path_factory: Any,
    database_url: str,
    migrated_sqlite: Path,
    items: list[tuple[str, dict[str, Any]]],
    cuts: list[int],
    pinned: Any,
) -> None:
    root: Path = tmp_path_factory.mktemp("rq")
    if database_url.startswith("postgresql"):
        _truncate(database_url)
        url = database_url
    else:
        url = sqlite_copy(migrated_sqlite, root / "t.db")
    write_workspace(
        root,
        url,
        tags=textwrap.dedent(TAGS) + textwrap.indent(textwrap.dedent(EXTRA_TAGS), "  "),
        extra={"tagloop.yaml": f"name: t\ndatabase: '{url}'\ningest: {{max_future: 1000d}}\n"},
    )
    rt = Runtime.open(root, clock=Clock())
    try:
        events = [customer(i, **a) for i, a in items]
        bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
        for low, high in itertools.pairwise(bounds):
            send(rt, *events[low:high])
        for entity_id, tag, include in pinned:
            if (entity_id, "frequent") in snapshot(rt) or any(e == entity_id for e, _ in items):
                value = "A" if tag == "grade" else None
                mode = "include" if include else "exclude"
                pins.place(
                    rt, "customer", entity_id, tag, mode=mode, actor=Actor.system(),
                    value=value if include else None,
                )  # fmt: skip
        streamed = snapshot(rt)
        # from scratch: only the pins are kept, the batch computes the rest
        with rt.db.write() as conn:
            conn.execute(delete(review_items))
            conn.execute(delete(tag_assignments).where(~tag_assignments.c.source.like("pin:%")))
        batch.recompute(rt.db, rt.engine, rt.active, [t.name for t in rt.active], rt.clock())
        assert snapshot(rt) == streamed
    finally:
        rt.close()


def test_duckdb_recompute_from_scratch_agrees(tmp_path: Path) -> None:
    from tagloop.engine import duck
    from tagloop.rules.sql.dialects import DIALECTS

    url = f"sqlite:///{tmp_path / 't.db'}"
    write_workspace(
        tmp_path,
        url,
        tags=textwrap.dedent(TAGS) + textwrap.indent(textwrap.dedent(EXTRA_TAGS), "  "),
        extra={"tagloop.yaml": f"name: t\ndatabase: '{url}'\ningest: {{max_future: 1000d}}\n"},
    )
    rt = Runtime.open(tmp_path, clock=Clock())
    try:
        for _ in range(2):
            send(rt, *(customer(f"c{i}", spend=600 * i, city="上海") for i in range(20)))
        pins.place(rt, "customer", "c1", "big", mode="include", actor=Actor.system())
        streamed = snapshot(rt)
        with rt.db.write() as conn:
            conn.execute(delete(review_items))
            conn.execute(delete(tag_assignments).where(~tag_assignments.c.source.like("pin:%")))
        fetch = duck.fetcher(duck.load(rt.db))
        names = [t.name for t in rt.active]
        batch.recompute(
            rt.db, rt.engine, rt.active, names, rt.clock(), fetch=fetch, dialect=DIALECTS["duckdb"]
        )
        assert snapshot(rt) == streamed
        assert streamed[("c1", "vip_shanghai")] == (True, "active")  # reads the pinned tag
        assert ("c19", "grade_a_frequent") in streamed  # reads the sampled tag
    finally:
        rt.close()
