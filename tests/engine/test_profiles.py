"""Profiles: the result does not depend on the order events arrive in."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.store import entities
from tests.conftest import sqlite_copy, write_workspace

# (time, attribute, value); times distinct so "latest wins" has one answer.
updates = st.lists(
    st.tuples(
        st.integers(0, 10**12),
        st.sampled_from(["city", "country", "客户等级"]),
        st.sampled_from(["上海", "北京", "杭州", "深圳"]),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda u: u[0],
)


def as_events(items: list[tuple[int, str, str]]) -> list[Event]:
    return [
        Event(
            id=f"e{t}",
            type="identify",
            entity_type="customer",
            entity_id="c",
            time=t,
            attributes={name: value},
            related={"device": "d"},
        )
        for t, name, value in items
    ]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(updates, st.randoms(use_true_random=False), st.integers(1, 4))
def test_any_arrival_order_and_batching_gives_the_same_profile(
    tmp_path_factory, migrated_sqlite, items, random, batches
) -> None:
    root = tmp_path_factory.mktemp("ws")
    write_workspace(root, sqlite_copy(migrated_sqlite, root / "t.db"))
    rt = Runtime.open(root)
    try:
        shuffled = as_events(items)
        random.shuffle(shuffled)
        size = max(1, len(shuffled) // batches)
        for start in range(0, len(shuffled), size):
            rt.ingestor.commit(shuffled[start : start + size])
        with rt.db.read() as conn:
            row = entities.get(conn, "customer", "c")
            device = entities.get(conn, "device", "d")
    finally:
        rt.close()
    expected: dict[str, str] = {}
    for _, name, value in sorted(items):
        expected[name] = value
    assert row is not None and device is not None
    assert row.attributes == expected
    assert row.event_count == len(items) == device.event_count
    assert row.first_seen == min(t for t, _, _ in items)
    assert row.last_seen == max(t for t, _, _ in items)
    assert device.attributes == {}  # attributes belong to the primary entity only


def test_tie_goes_to_the_later_arrival(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, f"sqlite:///{tmp_path / 't.db'}")
    rt = Runtime.open(root)
    try:
        first = Event(
            id="a",
            type="identify",
            entity_type="customer",
            entity_id="c",
            time=5,
            attributes={"city": "上海"},
        )
        second = Event(
            id="b",
            type="identify",
            entity_type="customer",
            entity_id="c",
            time=5,
            attributes={"city": "北京"},
        )
        rt.ingestor.commit([first])
        rt.ingestor.commit([second])
        with rt.db.read() as conn:
            row = entities.get(conn, "customer", "c")
        assert row is not None and row.attributes == {"city": "北京"}
    finally:
        rt.close()
