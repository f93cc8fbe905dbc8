"""Coverage over time: how many entities held each tag, and out of how many, at the end of
each of the last N days (days in the workspace time zone).

There is no table of past coverage: the history of tag changes is replayed backwards from
the present. The holders at the end of day *d* are the holders now minus the net
additions after *d*; what one history entry adds is what the entity holds after it minus
what it held before it, and what an entity holds after an entry follows from the entry:

=========================  =====================================  ==========================
entry (``change``)         held after (status ``active``)         held before, if it is the
                                                                  entity's first in the
                                                                  window
=========================  =====================================  ==========================
assigned                   yes                                    no (it had no assignment)
changed                    yes                                    looked up (see below)
approved                   yes                                    no (it was pending)
pinned                     yes with a value (include), no without looked up
                           (exclude)
removed                    no                                     yes (``withdrawn`` if not)
proposed                   no (pending)                           looked up
rejected, withdrawn        no                                     no
unpinned                   no                                     yes if the pin had a value
=========================  =====================================  ==========================

"Before" is what the previous entry of the same entity and tag left (``LAG`` over the
entries of the window), and for an entity's first entry in the window the table's last
column; where that is not known from the entry itself (a changed value may follow a
pending proposal that crossed its review threshold; a proposal may replace a value held;
a pin may or may not change what was held), the entity's last entry before the window is
looked up (index ``(entity_type, entity_id, at)``), for those entries only. All tags of
a page are read in one grouped query over the window's part of the ``(tag, at)`` index.

The entities of a type on day *d* are counted from ``entities.created_at`` (when the
store first knew the entity, the clock the history's ``at`` uses; ``first_seen`` is the
time of its first event, which can be years earlier for loaded history) plus the
entities merged into another after *d* (their rows are gone; ``entity_merges`` keeps when
each was created and merged).

Approximations, both from merges (`tagloop.store.identities`): a merge records
``removed`` for every assignment of the merged entity and ``assigned`` on the surviving one
for those it moves, whatever their status; a pending proposal moved by a merge nets to
zero, but one dropped (the survivor had the tag) counts as a holder lost that day. A
history entry written with a clock ahead of ``now`` counts as after every day shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, case, func, literal, select
from sqlalchemy.sql.elements import KeyedColumnElement

from tagloop.store.tables import entities, entity_merges, tag_assignments, tag_history
from tagloop.timeutil import from_us, to_us, zone

DAYS = 30
HELD_AFTER = ("assigned", "changed", "approved")
# Entries whose "held before" the entry itself does not tell: looked up when first.
LOOKED_UP = ("changed", "proposed", "pinned")


@dataclass(frozen=True, slots=True)
class Point:
    """One day of a tag's trend: holders and entities of its type at the day's end (for
    today: now)."""

    day: date
    holders: int
    entities: int

    @property
    def coverage(self) -> float | None:
        """Holders out of entities (None while the type has none).

        >>> Point(date(2025, 3, 1), 3, 12).coverage
        0.25
        """
        return self.holders / self.entities if self.entities else None


def day_ends(now: int, tz: tzinfo | str, days: int = DAYS) -> tuple[list[date], list[int]]:
    """The last ``days`` calendar days in ``tz`` (oldest first, today last), and the end
    of each but today (the next local midnight, µs UTC): one fewer than days.

    >>> from tagloop.timeutil import parse_time
    >>> now = parse_time("2025-03-10T01:30:00+08:00")  # 9 March 17:30 UTC
    >>> days, ends = day_ends(now, "Asia/Shanghai", 3)
    >>> [str(d) for d in days]
    ['2025-03-08', '2025-03-09', '2025-03-10']
    >>> [from_us(e, zone("Asia/Shanghai")).isoformat() for e in ends]
    ['2025-03-09T00:00:00+08:00', '2025-03-10T00:00:00+08:00']
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    place = zone(tz) if isinstance(tz, str) else tz
    today = from_us(now, place).date()
    listed = [today - timedelta(days=days - 1 - i) for i in range(days)]
    # Local midnight through ZoneInfo: 23- or 25-hour days where the clocks change.
    ends = [to_us(datetime.combine(d + timedelta(days=1), time(), place)) for d in listed[:-1]]
    return listed, ends


def _bucket(column: KeyedColumnElement[Any] | ColumnElement[Any], ends: Sequence[int]) -> Any:
    """The index of the day an instant falls in (0: the oldest day or before; the last:
    today or after) as SQL; earlier instants are tested first (most rows are old)."""
    if not ends:
        return literal(0)
    whens = [(column < end, index) for index, end in enumerate(ends)]
    return case(*whens, else_=len(ends))


def _held_after(h: Any) -> Any:
    return case(
        (h.change.in_(HELD_AFTER), 1),
        (and_(h.change == "pinned", h.value.is_not(None)), 1),
        else_=0,
    )


def net_changes(conn: Connection, tags: Iterable[str], ends: Sequence[int]) -> dict[str, list[int]]:
    """Per tag, the net change of its holders during each day after the oldest (index
    ``i``: the changes from ``ends[i]`` on and before ``ends[i + 1]``, the last: from the
    last end on), in one grouped query."""
    names = sorted(set(tags))
    found: dict[str, list[int]] = {name: [0] * len(ends) for name in names}
    if not names or not ends:
        return found
    h = tag_history.c
    after = _held_after(h)
    key = (h.entity_type, h.entity_id, h.tag)
    window = (
        select(
            *key,
            h.change,
            h.previous,
            after.label("after"),
            func.lag(after).over(partition_by=key, order_by=(h.at, h.seq)).label("before"),
            (_bucket(h.at, ends[1:])).label("day"),
        )
        .where(h.tag.in_(names), h.at >= ends[0])
        .subquery()
    )
    w = window.c
    p = tag_history.alias("p")
    # Held after the entity's last entry before the window (none: it never held the tag).
    prior = (
        select(_held_after(p.c))
        .where(
            p.c.entity_type == w.entity_type,
            p.c.entity_id == w.entity_id,
            p.c.tag == w.tag,
            p.c.at < ends[0],
        )
        .order_by(p.c.at.desc(), p.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    first_before = case(
        (w.change == "removed", 1),
        (and_(w.change == "unpinned", w.previous.is_not(None)), 1),
        (w.change.in_(LOOKED_UP), func.coalesce(prior, 0)),
        else_=0,
    )
    before = case((w.before.is_not(None), w.before), else_=first_before)
    query = select(w.tag, w.day, func.sum(w.after - before)).group_by(w.tag, w.day)
    for tag, day, net in conn.execute(query):
        found[tag][int(day)] += int(net or 0)
    return found


def holders(current: int, net: Sequence[int]) -> list[int]:
    """Holders at the end of each day, from those now and the net change after each day
    (``net[i]``: during day ``i + 1``).

    >>> holders(10, [2, 0, -1])  # +2 on day 1, -1 on day 3 (today)
    [9, 11, 11, 10]
    """
    points = [current]
    for change in reversed(net):
        points.append(points[-1] - change)
    return points[::-1]


def entity_counts(
    conn: Connection, types: Iterable[str], ends: Sequence[int]
) -> dict[str, list[int]]:
    """Per entity type, the entities the store knew at the end of each day (the last:
    all now), in one scan of ``entities`` and one of ``entity_merges``."""
    names = sorted(set(types))
    days = len(ends) + 1
    found: dict[str, list[int]] = {name: [0] * days for name in names}
    if not names:
        return found
    created = _bucket(entities.c.created_at, ends)
    query = (
        select(entities.c.type, created, func.count())
        .where(entities.c.type.in_(names))
        .group_by(entities.c.type, created)
    )
    new: dict[str, list[int]] = {name: [0] * days for name in names}
    for entity_type, day, count in conn.execute(query):
        new[entity_type][int(day)] += int(count)
    for name in names:
        total = 0
        for day in range(days):
            total += new[name][day]
            found[name][day] = total
    if ends:
        m = entity_merges.c
        merged = select(m.entity_type, m.merged_profile, m.at).where(
            m.entity_type.in_(names), m.at >= ends[0]
        )
        for entity_type, profile, at in conn.execute(merged):
            kept = orjson.loads(profile) if isinstance(profile, str | bytes) else profile
            born = int((kept or {}).get("created_at") or 0)
            for day, end in enumerate(ends):
                if born < end <= at:  # it existed at that day's end, and is gone now
                    found[entity_type][day] += 1
    return found


def current_holders(conn: Connection, tags: Iterable[str]) -> dict[str, int]:
    """Active assignments of each of ``tags`` now (the ``(tag, status, ...)`` index)."""
    names = sorted(set(tags))
    if not names:
        return {}
    a = tag_assignments.c
    query = (
        select(a.tag, func.count()).where(a.tag.in_(names), a.status == "active").group_by(a.tag)
    )
    counted = {str(tag): int(count) for tag, count in conn.execute(query)}
    return {name: counted.get(name, 0) for name in names}


def coverage_trend(
    conn: Connection,
    tags: Mapping[str, str],
    *,
    now: int,
    tz: tzinfo | str = "Asia/Shanghai",
    days: int = DAYS,
    counts: Mapping[str, int] | None = None,
    sizes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, list[Point]]:
    """Each tag's holders and coverage at the end of each of the last ``days`` days
    (oldest first; today's point is now, and equals the current count).

    ``tags`` maps each tag to its entity type (``{"VIP": "customer"}``); ``now`` is µs
    UTC (``rt.clock()``), ``tz`` the workspace zone (``rt.workspace.project.timezone``).
    ``counts`` (active holders now, e.g. from `tagloop.store.tags.counts`) and ``sizes``
    (`entity_counts` for the same ``now``, ``tz`` and ``days``) save their queries when the
    caller has them. Two or three queries whatever the number of tags.

    >>> from tagloop.store.db import Database
    >>> from tagloop.store.tables import metadata
    >>> from tagloop.timeutil import parse_time
    >>> db = Database("sqlite://"); metadata.create_all(db.engine)
    >>> now = parse_time("2025-03-03T12:00:00+08:00")
    >>> t = lambda text: parse_time(text + "+08:00")
    >>> with db.write() as conn:
    ...     for i in range(4):  # four customers, all known since 28 February
    ...         _ = conn.execute(entities.insert().values(type="customer", id=f"c{i}",
    ...             attributes={}, attribute_times={}, first_seen=0, last_seen=0,
    ...             event_count=1, created_at=t("2025-02-28T09:00"), updated_at=0))
    ...     for who, change, at in [("c0", "assigned", "2025-03-01T10:00"),
    ...                             ("c1", "assigned", "2025-03-02T10:00"),
    ...                             ("c0", "removed", "2025-03-03T08:00")]:
    ...         _ = conn.execute(tag_history.insert().values(entity_type="customer",
    ...             entity_id=who, tag="VIP", change=change, version=1, source="rule",
    ...             at=t(at)))
    >>> with db.read() as conn:
    ...     trend = coverage_trend(conn, {"VIP": "customer"}, now=now, days=4, counts={"VIP": 1})
    >>> [(str(p.day), p.holders, p.entities) for p in trend["VIP"]]
    [('2025-02-28', 0, 4), ('2025-03-01', 1, 4), ('2025-03-02', 2, 4), ('2025-03-03', 1, 4)]
    >>> trend["VIP"][-1].coverage
    0.25
    """
    listed, ends = day_ends(now, tz, days)
    if counts is None:
        counts = current_holders(conn, tags)
    if sizes is None:
        sizes = entity_counts(conn, tags.values(), ends)
    nets = net_changes(conn, tags, ends)
    trend: dict[str, list[Point]] = {}
    for tag, entity_type in tags.items():
        held = holders(int(counts.get(tag, 0)), nets.get(tag, [0] * len(ends)))
        known = sizes.get(entity_type) or [0] * days
        trend[tag] = [Point(d, h, int(n)) for d, h, n in zip(listed, held, known, strict=True)]
    return trend


def sparkline(values: Sequence[float | None], width: int = 80, height: int = 20) -> str:
    """SVG polyline points for ``values`` (None: no data that day, drawn as 0), scaled to
    the box with a pixel of margin; a flat line sits in the middle.

    >>> sparkline([0.1, 0.2, 0.3], width=12, height=12)
    '1,11 6,6 11,1'
    >>> sparkline([0.5, 0.5], width=12, height=12)
    '1,6 11,6'
    """
    numbers = [v or 0.0 for v in values]
    if not numbers:
        return ""
    low, high = min(numbers), max(numbers)
    span = high - low
    step = (width - 2) / max(len(numbers) - 1, 1)
    points = []
    for index, value in enumerate(numbers):
        x = 1 + index * step
        y = height / 2 if span == 0 else 1 + (high - value) / span * (height - 2)
        points.append(f"{x:g},{y:g}")
    return " ".join(points)
