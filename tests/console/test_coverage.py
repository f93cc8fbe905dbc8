"""Coverage over time (`tagloop.console.coverage`): hand-computed days, the replay of the
history against a brute-force recount (hypothesis), and the catalogue's trend column."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagloop.api.app import create_app
from tagloop.console.coverage import TrendCache, coverage_trend, day_ends, entity_counts
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.store.db import Database
from tagloop.store.tables import entities, entity_merges, metadata, tag_history
from tagloop.timeutil import from_us, parse_time, zone
from tests.conftest import make_key, write_workspace

HOUR = 3_600_000_000
DAY = 24 * HOUR
SHANGHAI = "Asia/Shanghai"


def at(text: str) -> int:
    return parse_time(text + "+08:00")


def memory_db() -> Database:
    db = Database("sqlite://")
    metadata.create_all(db.engine)
    return db


def add_entity(conn: Any, entity_id: str, created: int, entity_type: str = "customer") -> None:
    conn.execute(
        entities.insert().values(
            type=entity_type, id=entity_id, attributes={}, attribute_times={}, first_seen=0,
            last_seen=0, event_count=1, created_at=created, updated_at=created,
        )
    )  # fmt: skip


def add_change(conn: Any, entity_id: str, change: str, when: int, **extra: Any) -> None:
    row: dict[str, Any] = {"entity_type": "customer", "entity_id": entity_id, "tag": "VIP"}
    row |= {"change": change, "version": 1, "source": "rule:VIP@v1", "at": when, **extra}
    conn.execute(tag_history.insert(), [row])


def series(trend: dict[str, Any], tag: str = "VIP") -> list[tuple[str, int, int]]:
    return [(str(p.day), p.holders, p.entities) for p in trend[tag]]


# -- hand-computed days ---------------------------------------------------------------------


def test_review_proposals_and_pins_count_only_when_they_change_what_is_held() -> None:
    """Four customers since February; VIP over 1-4 March (Shanghai days), now 4 March noon.

    c0: proposed (pending, not held) 1 Mar, approved 2 Mar            -> held from 2 Mar
    c1: assigned 1 Mar, its new value sent for review 3 Mar (proposed) -> held 1-2 Mar only
    c2: proposed 26 Feb (before the window), crossed the threshold 2 Mar (changed: +1, its
        first entry in the window: what it held is looked up before the window), then an
        exclusion pin 3 Mar (-1), the pin lifted 4 Mar (unpinned, nothing held: 0)
    c3: an include pin 1 Mar (+1), lifted 3 Mar (-1), the rule assigns it again 3 Mar (+1)
    End of day:  1 Mar: c1, c3 = 2;  2 Mar: c0, c1, c2, c3 = 4;  3 Mar: c0, c3 = 2;
    now: c0, c3 = 2 (the current count).
    """
    db = memory_db()
    with db.write() as conn:
        for i in range(4):
            add_entity(conn, f"c{i}", at("2025-02-01T09:00"))
        add_change(conn, "c2", "proposed", at("2025-02-26T10:00"), value="true")
        add_change(conn, "c0", "proposed", at("2025-03-01T10:00"), value="true")
        add_change(conn, "c1", "assigned", at("2025-03-01T11:00"), value="1")
        add_change(conn, "c3", "pinned", at("2025-03-01T12:00"), value="true")
        add_change(conn, "c0", "approved", at("2025-03-02T10:00"), value="true")
        add_change(conn, "c2", "changed", at("2025-03-02T11:00"), value="true")
        add_change(conn, "c1", "proposed", at("2025-03-03T10:00"), value="2")
        add_change(conn, "c2", "pinned", at("2025-03-03T11:00"))  # exclude: no value
        add_change(conn, "c3", "unpinned", at("2025-03-03T12:00"), previous="true")
        add_change(conn, "c3", "assigned", at("2025-03-03T12:00"), value="true")
        add_change(conn, "c2", "unpinned", at("2025-03-04T08:00"))  # the exclusion lifted
    with db.read() as conn:
        trend = coverage_trend(
            conn, {"VIP": "customer"}, now=at("2025-03-04T12:00"), days=4, counts={"VIP": 2}
        )
    assert series(trend) == [
        ("2025-03-01", 2, 4),
        ("2025-03-02", 4, 4),
        ("2025-03-03", 2, 4),
        ("2025-03-04", 2, 4),
    ]
    assert [p.coverage for p in trend["VIP"]] == [0.5, 1.0, 0.5, 0.5]


def test_entities_count_from_when_the_store_knew_them_and_merged_ones_until_the_merge() -> None:
    """c0 known since January; c1 from 2 Mar 23:30 Shanghai (15:30 UTC: still 2 March
    there); c2 from 1 Mar, merged into c0 on 3 Mar (its row is gone, it counted until then).
    End of day: 1 Mar: c0, c2 = 2; 2 Mar: c0, c1, c2 = 3; 3 Mar and now: c0, c1 = 2."""
    db = memory_db()
    with db.write() as conn:
        add_entity(conn, "c0", at("2025-01-05T09:00"))
        add_entity(conn, "c1", at("2025-03-02T23:30"))
        add_entity(conn, "d0", at("2025-03-02T10:00"), entity_type="device")
        conn.execute(
            entity_merges.insert().values(
                entity_type="customer", merged_id="c2", into_id="c0", cause={},
                merged_profile={"created_at": at("2025-03-01T08:00")}, at=at("2025-03-03T15:00"),
            )
        )  # fmt: skip
    _, ends = day_ends(at("2025-03-04T12:00"), SHANGHAI, 4)
    with db.read() as conn:
        counted = entity_counts(conn, ["customer", "device"], ends)
    assert counted == {"customer": [2, 3, 2, 2], "device": [0, 1, 1, 1]}


def test_days_are_the_workspace_zones_calendar_days() -> None:
    """23:30 on 1 March in Shanghai is 15:30 UTC: an assignment then belongs to 1 March
    there and to 1 March in UTC too, but one at 00:30 on 2 March Shanghai (16:30 UTC on 1
    March) belongs to 2 March in Shanghai and to 1 March in UTC."""
    db = memory_db()
    with db.write() as conn:
        add_entity(conn, "c0", at("2025-01-01T00:00"))
        add_entity(conn, "c1", at("2025-01-01T00:00"))
        add_change(conn, "c0", "assigned", at("2025-03-01T23:30"), value="true")
        add_change(conn, "c1", "assigned", at("2025-03-02T00:30"), value="true")
    now = at("2025-03-03T12:00")
    with db.read() as conn:
        local = coverage_trend(conn, {"VIP": "customer"}, now=now, days=3, counts={"VIP": 2})
        utc = coverage_trend(
            conn, {"VIP": "customer"}, now=now, tz="UTC", days=3, counts={"VIP": 2}
        )
    assert [p.holders for p in local["VIP"]] == [1, 2, 2]  # 1, 2, 3 March in Shanghai
    assert [p.holders for p in utc["VIP"]] == [2, 2, 2]  # 1, 2, 3 March in UTC


def test_a_day_where_the_clocks_change_ends_at_local_midnight() -> None:
    days, ends = day_ends(parse_time("2025-03-31T12:00:00+02:00"), "Europe/Berlin", 3)
    assert [str(d) for d in days] == ["2025-03-29", "2025-03-30", "2025-03-31"]
    assert ends[1] - ends[0] == 23 * HOUR  # 30 March: summer time begins
    assert from_us(ends[1], zone("Europe/Berlin")).hour == 0


def test_a_tag_never_changed_keeps_its_count_and_one_without_entities_has_no_coverage() -> None:
    db = memory_db()
    with db.read() as conn:
        trend = coverage_trend(
            conn, {"VIP": "customer", "hot": "device"}, now=at("2025-03-04T12:00"), days=2,
            counts={"VIP": 3},
        )  # fmt: skip
    assert [p.holders for p in trend["VIP"]] == [3, 3]
    assert [p.coverage for p in trend["hot"]] == [None, None]


# -- the replay against a brute-force recount -----------------------------------------------

# What an entity's assignment of the tag is, and the history entries that move it (as the
# engine, reviews and pins write them: tagloop.store.tags.history_change and the callers).
# State None: no assignment. Held: "active" and "include".
MOVES: dict[str | None, list[tuple[str, str | None]]] = {
    None: [("assigned", "active"), ("proposed", "pending"), ("pin+", "include"),
           ("pin-", "exclude")],
    "active": [("changed", "active"), ("proposed", "pending"), ("removed", None),
               ("pin+", "include"), ("pin-", "exclude")],
    "pending": [("approved", "active"), ("changed", "active"), ("proposed", "pending"),
                ("rejected", "rejected"), ("withdrawn", None), ("pin+", "include"),
                ("pin-", "exclude")],
    "rejected": [("changed", "active"), ("proposed", "pending"), ("withdrawn", None),
                 ("pin-", "exclude")],
    "include": [("unpinned", None), ("pin-", "exclude")],
    "exclude": [("unpinned", None), ("pin+", "include")],
}  # fmt: skip
HELD = {"active", "include"}
NOW = at("2025-03-20T15:00")


@dataclass
class Step:
    entity: int
    move: int
    offset: int  # µs before NOW


# Few entities, many entries, on the hour: what makes days with several entries of an
# entity, and entities whose first entry of the window follows one before it.
steps = st.lists(
    st.builds(
        Step,
        st.integers(0, 2),
        st.integers(0, 10),
        st.integers(0, 12 * 24).map(lambda hours: hours * HOUR),
    ),
    min_size=3,
    max_size=30,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, days=st.integers(1, 10), born=st.lists(st.integers(0, 12 * DAY), min_size=4))
def test_replaying_the_history_day_by_day_matches_a_recount(
    steps: list[Step], days: int, born: list[int]
) -> None:
    replay_matches_recount(steps, days, born)


def replay_matches_recount(steps: list[Step], days: int, born: list[int]) -> None:
    db = memory_db()
    _, ends = day_ends(NOW, SHANGHAI, days)
    with db.write() as conn:
        for entity in range(4):
            add_entity(conn, f"c{entity}", NOW - born[entity])
    state: dict[int, str | None] = {}
    written: list[tuple[int, int, bool]] = []  # (at, entity, held after)
    ordered = sorted(steps, key=lambda s: -s.offset)  # oldest first, as written
    # Written in two rounds as time passes (the days before today, then today's entries):
    # a cache kept from the first round must give what a fresh reading gives.
    today = ends[-1] if ends else 0
    earlier = [s for s in ordered if NOW - s.offset < today]
    cache = TrendCache()
    for part in (earlier, ordered[len(earlier) :]):
        with db.write() as conn:
            for step in part:
                moves = MOVES[state.get(step.entity)]
                kind, after = moves[step.move % len(moves)]
                extra: dict[str, Any] = {}
                if kind.startswith("pin"):
                    kind, extra = "pinned", ({"value": "true"} if kind == "pin+" else {})
                if kind == "unpinned" and state.get(step.entity) == "include":
                    extra = {"previous": "true"}
                when = NOW - step.offset
                add_change(conn, f"c{step.entity}", kind, when, **extra)
                state[step.entity] = after
                written.append((when, step.entity, after in HELD))
        current = sum(1 for s in state.values() if s in HELD)
        # Brute force: replay every entry from the start up to each day's end.
        expected = []
        for end in [*ends, NOW + 1]:
            held: dict[int, bool] = {}
            for when, entity, is_held in written:
                if when < end:
                    held[entity] = is_held
            expected.append((sum(held.values()), sum(1 for b in born[:4] if NOW - b < end)))
        for kept in (None, cache):
            with db.read() as conn:
                trend = coverage_trend(
                    conn, {"VIP": "customer"}, now=NOW, tz=SHANGHAI, days=days,
                    counts={"VIP": current}, cache=kept,
                )  # fmt: skip
            points = trend["VIP"]
            assert points[-1].holders == current
            assert [(p.holders, p.entities) for p in points] == expected


# -- the catalogue's column -----------------------------------------------------------------


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def history_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """Customers tagged over the last days, through the engine, with a set clock:
    c0 known since 40 days (no tag), C-1 VIP and 上海客户 3 days ago, C-2 known 2 days ago
    and VIP yesterday, C-1 no longer VIP this morning. Now: 10 March 2025 12:00 Shanghai."""
    root = tmp_path_factory.mktemp("coverage")
    clock = Clock(at("2025-03-10T12:00"))
    rt = Runtime.open(write_workspace(root / "ws", f"sqlite:///{root / 'c.db'}"), clock=clock)

    def profile(moment: str, entity_id: str, **attributes: Any) -> None:
        clock.now = at(moment)
        event = Event(f"e-{moment}", "profile", "customer", entity_id, clock.now)
        rt.ingestor.commit([dataclasses.replace(event, attributes=attributes)])

    profile("2025-01-29T10:00", "C-0", spend=5, city="北京")
    profile("2025-03-07T10:00", "C-1", spend=1500, city="上海")
    profile("2025-03-08T10:00", "C-2", spend=10, city="北京")
    profile("2025-03-09T10:00", "C-2", spend=2000)
    profile("2025-03-10T09:00", "C-1", spend=5)
    clock.now = at("2025-03-10T12:00")
    yield rt
    rt.close()


def test_the_engines_history_gives_each_days_holders(history_rt: Runtime) -> None:
    with history_rt.db.read() as conn:
        trend = coverage_trend(
            conn, {"VIP": "customer", "上海客户": "customer"}, now=history_rt.clock(), days=4
        )
    assert series(trend) == [
        ("2025-03-07", 1, 2),
        ("2025-03-08", 1, 3),
        ("2025-03-09", 2, 3),
        ("2025-03-10", 1, 3),
    ]
    assert [p.holders for p in trend["上海客户"]] == [1, 1, 1, 1]


def row_of(html: str, tag: str) -> str:
    rows: list[str] = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    return next(r for r in rows if f"<strong>{tag}</strong>" in r)


def test_the_catalogue_shows_each_tags_trend_and_links_to_its_page(history_rt: Runtime) -> None:
    client = TestClient(create_app(history_rt), base_url="http://127.0.0.1")
    client.headers["Authorization"] = f"Bearer {make_key(history_rt, 'viewer')}"
    page = client.get("/tags", headers={"Accept-Language": "en"})
    assert page.status_code == 200, page.text
    assert '<th scope="col">Trend</th>' in page.text
    vip = row_of(page.text, "VIP")
    # 30 days back C-0 alone was known and held nothing; now 1 of 3 customers
    label = "coverage 0.0% → 33.3% over 30 days"
    assert f'role="img" aria-label="{label}"' in vip and f"<title>{label}</title>" in vip
    assert '<a href="/tags/VIP">' in vip
    assert re.search(r'<polyline points="[0-9.]+,[0-9.]+( [0-9.]+,[0-9.]+){29}"', vip)
    shanghai = row_of(page.text, "上海客户")
    assert '<a href="/tags/%E4%B8%8A%E6%B5%B7%E5%AE%A2%E6%88%B7">' in shanghai
    # the table alone (htmx, as one types in the search box) has the column too
    table = client.get("/tags?q=VIP", headers={"HX-Request": "true", "Accept-Language": "zh-CN"})
    assert "<th" in table.text and "趋势" in table.text
    assert "近 30 天覆盖率 0.0% → 33.3%" in row_of(table.text, "VIP")
