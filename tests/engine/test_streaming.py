"""The streaming evaluator on hand-worked cases: windows, late events, calendar streaks,
timers, related entities, composite and valued tags, restarts and several processes.

Every expected value here is worked out from the rule's definition in docs/rules.md, not
taken from the engine's output.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.store import tags as tag_store
from tagloop.store import timers as timer_store
from tagloop.timeutil import to_us
from tests.conftest import write_workspace

SH = ZoneInfo("Asia/Shanghai")
DAY = 86_400_000_000

TAGS = """
    tags:
      - name: active_30d
        entity: customer
        rule: count(order, 30d) > 0
      - name: spend_7d
        entity: customer
        value: sum(order.amount, 7d)
      - name: VIP
        entity: customer
        rule: streak(month, sum(order.amount) > 500000) >= 3
      - name: vip_shanghai
        entity: customer
        rule: has_tag('VIP') and city == '上海'
      - name: 价值等级
        entity: customer
        value: >-
          case when sum(order.amount) >= 1000000 then '高'
          when sum(order.amount) >= 100000 then '中' else '低' end
      - name: interests
        entity: customer
        multi: true
        value: interests
      - name: complained
        entity: product_batch
        rule: count(feedback, 30d) >= 2
"""


def at(*parts: int) -> int:
    """Epoch microseconds of a Shanghai wall-clock time."""
    return to_us(datetime(*parts), SH)  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(at(2024, 1, 1))


Open = Callable[..., Runtime]


@pytest.fixture
def open_rt(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[Open]:
    """Opens a runtime on a workspace holding only the named tags of `TAGS` (so that each
    test's timers are those of the rules it is about)."""
    opened: list[Runtime] = []
    specs = yaml.safe_load(textwrap.dedent(TAGS))["tags"]

    def make(*names: str) -> Runtime:
        root = tmp_path / "ws"
        if not root.exists():
            chosen = [t for t in specs if t["name"] in names]
            text = yaml.safe_dump({"tags": chosen}, allow_unicode=True)
            write_workspace(root, database_url, tags=text)
            # feedback events concern a customer and, through `related`, a product batch
            path = root / "entities" / "customer.yaml"
            path.write_text(
                path.read_text(encoding="utf-8").replace(
                    "      quantity: integer\n",
                    "      quantity: integer\n  feedback:\n    properties:\n      score: integer\n",
                ),
                encoding="utf-8",
            )
        runtime = Runtime.open(root, clock=clock)
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        runtime.close()


counter = iter(range(10**9))


def order(who: str, when: int, amount: float, **extra: Any) -> Event:
    return Event(
        id=f"o{next(counter)}",
        type="order",
        entity_type="customer",
        entity_id=who,
        time=when,
        properties={"amount": amount, **extra},
    )


def identify(who: str, when: int, **attributes: Any) -> Event:
    return Event(
        id=f"i{next(counter)}",
        type="identify",
        entity_type="customer",
        entity_id=who,
        time=when,
        attributes=attributes,
    )


def tags_of(rt: Runtime, entity_type: str, entity_id: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        return {a.tag: a.value for a in tag_store.for_entity(conn, entity_type, entity_id)}


def due(rt: Runtime, entity_type: str, entity_id: str) -> int | None:
    with rt.db.read() as conn:
        rows = rt.db.fetch(
            conn,
            "SELECT due FROM entity_timers WHERE entity_type = ? AND entity_id = ?",
            (entity_type, entity_id),
        )
    return rows[0][0] if rows else None


def test_window_is_half_open_and_a_timer_ends_it(open_rt: Open, clock: Clock) -> None:
    rt = open_rt("active_30d")
    placed = at(2024, 1, 10, 12)
    clock.now = placed + 1
    rt.ingestor.commit([order("c1", placed, 50)])
    assert "active_30d" in tags_of(rt, "customer", "c1")
    # [now - 30d, now) holds the order until now = placed + 30d inclusive
    assert due(rt, "customer", "c1") == placed + 30 * DAY + 1
    clock.now = placed + 30 * DAY
    assert rt.fire_timers() == 0
    assert "active_30d" in tags_of(rt, "customer", "c1")
    clock.now = placed + 30 * DAY + 1
    assert rt.fire_timers() == 1
    assert "active_30d" not in tags_of(rt, "customer", "c1")
    with rt.db.read() as conn:
        history = [(h.tag, h.change) for h in tag_store.history(conn, "customer", "c1")]
    assert ("active_30d", "removed") in history


def test_an_event_that_touches_other_tags_keeps_an_overdue_timer(
    open_rt: Open, clock: Clock
) -> None:
    # The window tag's change is due before the timer round runs; meanwhile an event that
    # only affects the attribute tag arrives. It must not push the overdue timer into the
    # future, or the window tag would stay assigned long after its order left the window.
    rt = open_rt("active_30d", "interests")
    placed = at(2024, 1, 10, 12)
    clock.now = placed + 1
    rt.ingestor.commit([order("c1", placed, 50)])
    clock.now = placed + 31 * DAY
    rt.ingestor.commit([identify("c1", clock.now - 1, interests=["茶"])])
    assert tags_of(rt, "customer", "c1")["interests"] == ["茶"]
    assert due(rt, "customer", "c1") == placed + 30 * DAY + 1  # still overdue
    assert rt.fire_timers() == 1
    assert "active_30d" not in tags_of(rt, "customer", "c1")


def test_an_order_placed_now_is_not_yet_in_the_window(open_rt: Open, clock: Clock) -> None:
    rt = open_rt("active_30d")
    clock.now = at(2024, 1, 10)
    rt.ingestor.commit([order("c1", clock.now, 50)])  # time == now: outside [now-30d, now)
    assert "active_30d" not in tags_of(rt, "customer", "c1")
    assert due(rt, "customer", "c1") == clock.now + 1  # and it enters a microsecond later


def test_late_and_out_of_order_events_count_by_event_time(open_rt: Open, clock: Clock) -> None:
    rt = open_rt("spend_7d")
    clock.now = at(2024, 3, 10)
    rt.ingestor.commit([order("c1", at(2024, 3, 9), 100)])
    rt.ingestor.commit([order("c1", at(2024, 3, 1), 1000)])  # 9 days old: outside 7d
    rt.ingestor.commit([order("c1", at(2024, 3, 4), 10), order("c1", at(2024, 3, 5), 1)])
    assert tags_of(rt, "customer", "c1")["spend_7d"] == 111  # 3-4 .. 3-9 are in [3-3, 3-10)
    clock.now = at(2024, 3, 11, 0, 0, 1)
    assert rt.fire_timers() == 1  # the 3-4 order left the window at 3-11 00:00
    assert tags_of(rt, "customer", "c1")["spend_7d"] == 101


def test_vip_streak_over_three_calendar_months(open_rt: Open, clock: Clock) -> None:
    rt = open_rt("VIP", "vip_shanghai", "价值等级")
    clock.now = at(2024, 4, 2)
    rt.ingestor.commit(
        [
            order("c1", at(2024, 1, 5), 400_000),
            order("c1", at(2024, 1, 20), 212_000),
            # 2024-02-29 17:00 UTC is 1 March 01:00 in Shanghai: it counts for March
            order("c1", to_us(datetime(2024, 2, 29, 17, tzinfo=ZoneInfo("UTC"))), 731_200),
            order("c1", at(2024, 2, 14), 580_500),
            identify("c1", at(2024, 1, 1), city="上海"),
        ]
    )
    tags = tags_of(rt, "customer", "c1")
    assert "VIP" in tags and "vip_shanghai" in tags
    assert tags["价值等级"] == "高"  # 1,923,700 in all
    with rt.db.read() as conn:
        (vip,) = [a for a in tag_store.for_entity(conn, "customer", "c1") if a.tag == "VIP"]
    per_month = vip.evidence["values"]["sum(order.amount) per month"]
    assert per_month == {"2024-01": 612_000, "2024-02": 580_500, "2024-03": 731_200}
    assert vip.evidence["values"]["streak(month, sum(order.amount) > 500000)"] == 3
    # No order in April: when May begins in Shanghai, April is the last complete month
    assert due(rt, "customer", "c1") == at(2024, 5, 1)
    clock.now = at(2024, 5, 1)
    assert rt.fire_timers() == 1
    tags = tags_of(rt, "customer", "c1")
    assert "VIP" not in tags and "vip_shanghai" not in tags  # the composite follows


def test_a_gap_month_breaks_the_streak(open_rt: Open, clock: Clock) -> None:
    rt = open_rt("VIP")
    clock.now = at(2024, 5, 3)
    rt.ingestor.commit([order("c2", at(2024, m, 3), 600_000) for m in (1, 3, 4)])
    assert "VIP" not in tags_of(rt, "customer", "c2")  # Feb had none: streak is 2
    rt.ingestor.commit([order("c2", at(2024, 2, 28), 500_001)])  # a late February order
    assert "VIP" in tags_of(rt, "customer", "c2")


def test_related_entities_see_the_event(open_rt: Open, clock: Clock) -> None:
    rt = open_rt("complained")
    clock.now = at(2024, 6, 1)
    complaints = [
        Event(
            id=f"f{i}",
            type="feedback",
            entity_type="customer",
            entity_id=f"c{i}",
            time=at(2024, 5, 20 + i),
            properties={"score": 1},
            related={"product_batch": "B-17"},
        )
        for i in range(2)
    ]
    rt.ingestor.commit(complaints[:1])
    assert "complained" not in tags_of(rt, "product_batch", "B-17")
    rt.ingestor.commit(complaints[1:])
    assert "complained" in tags_of(rt, "product_batch", "B-17")


def test_multi_valued_and_attribute_tags(open_rt: Open, clock: Clock) -> None:
    rt = open_rt("interests")
    clock.now = at(2024, 2, 1)
    rt.ingestor.commit([identify("c3", at(2024, 1, 1), interests=["茶", "咖啡"])])
    assert tags_of(rt, "customer", "c3")["interests"] == ["茶", "咖啡"]
    rt.ingestor.commit([identify("c3", at(2024, 1, 2), interests=[])])
    assert "interests" not in tags_of(rt, "customer", "c3")  # an empty list holds nothing


def test_restart_resumes_exactly(open_rt: Open, clock: Clock) -> None:
    clock.now = at(2024, 3, 10)
    events = [order("c1", at(2024, 3, d), d) for d in range(1, 10)]
    first = open_rt("spend_7d")
    first.ingestor.commit(events[:5])
    first.close()
    second = open_rt("spend_7d")  # an empty state cache: rebuilt from the store
    second.ingestor.commit(events[5:])
    assert tags_of(second, "customer", "c1")["spend_7d"] == sum(range(3, 10))


def test_a_state_made_stale_by_another_process_is_rebuilt(open_rt: Open, clock: Clock) -> None:
    clock.now = at(2024, 3, 10)
    one, two = open_rt("spend_7d"), open_rt("spend_7d")
    one.ingestor.commit([order("c1", at(2024, 3, 8), 1)])
    two.ingestor.commit([order("c1", at(2024, 3, 8), 10)])  # `one` has not seen this
    one.ingestor.commit([order("c1", at(2024, 3, 8), 100)])
    assert tags_of(one, "customer", "c1")["spend_7d"] == 111


def test_timers_survive_a_restart(open_rt: Open, clock: Clock) -> None:
    clock.now = at(2024, 1, 10)
    rt = open_rt("active_30d")
    rt.ingestor.commit([order("c1", at(2024, 1, 9), 5)])
    rt.close()
    clock.now = at(2024, 2, 9)
    rt = open_rt("active_30d")
    with rt.db.read() as conn:
        assert timer_store.due(rt.db, conn, clock.now, 10) == [("customer", "c1")]
    assert rt.fire_timers() == 1
    assert "active_30d" not in tags_of(rt, "customer", "c1")
