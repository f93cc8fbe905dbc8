"""Coverage over time: how many entities held each tag, and out of how many, at the end of
each of the last N days (days in the workspace time zone).

There is no table of past coverage: the history of tag changes is replayed backwards from
the present. The holders at the end of day *d* are the holders now minus the net
additions after *d*; what one history entry adds is whether the entity holds the tag
(status ``active``) after it minus whether it held it before it:

=========================  =====================================  ======================
entry (``change``)         held after                             held before
=========================  =====================================  ======================
assigned                   yes                                    no (no assignment)
approved                   yes                                    no (it was pending)
removed                    no                                     yes (else: withdrawn)
rejected, withdrawn        no                                     no
unpinned                   no                                     if the pin had a value
changed                    yes                                    looked up
proposed                   no (pending)                           looked up
pinned                     with a value (include); not without    looked up
=========================  =====================================  ======================

The first rows follow from who writes them (`tagloop.store.tags.history_change`, reviews,
pins). The last three do not tell what was held before: a changed value may follow a
pending proposal that crossed its review threshold, a proposal may replace a value held,
a pin may or may not change what was held. For those entries only, the entity's previous
entry of the tag is looked up (index ``(entity_type, entity_id, at)``); what it left is
what was held. So the replay is exact, and costs one grouped query for all the tags of a
page over the window's part of the ``(tag, at)`` index, plus one index seek per such entry.

The entities of a type on day *d* are counted from ``entities.created_at`` (when the
store first knew the entity, the clock the history's ``at`` uses; ``first_seen`` is the
time of its first event, which can be years earlier for loaded history) plus the
entities merged into another after *d* (their rows are gone; ``entity_merges`` keeps when
each was created and merged).

Approximations, both from merges (`tagloop.store.identities`): a merge records
``removed`` for every assignment of the merged entity and ``assigned`` on the surviving one
for those it moves, whatever their status; a pending proposal moved by a merge nets to
zero, but one dropped (the survivor had the tag) counts as a holder lost that day. An
entry written with a clock ahead of ``now`` counts as after every day shown.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import reduce
from math import gcd
from threading import Lock
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Connection, and_, case, func, or_, select

from tagloop.store.db import Database
from tagloop.store.tables import entities, entity_merges, tag_assignments, tag_history
from tagloop.timeutil import from_us, to_us, zone

DAYS = 30
DAY_US = 86_400_000_000
HELD_AFTER = ("assigned", "changed", "approved")
# Entries whose "held before" the entry itself does not tell: looked up.
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


def _unit(ends: Sequence[int]) -> int:
    """The longest span that divides every day (24 hours; 1 hour or 30 minutes where
    clocks change): what rows are grouped by before being counted to their day.

    >>> from tagloop.timeutil import parse_time
    >>> _unit(day_ends(parse_time("2025-03-10T12:00:00+08:00"), "Asia/Shanghai", 5)[1])
    86400000000
    >>> _unit(day_ends(parse_time("2025-04-02T12:00:00+02:00"), "Europe/Berlin", 7)[1])
    3600000000
    """
    return reduce(gcd, (end - ends[0] for end in ends[1:]), 0) or DAY_US


def _spans(column: Any, start: int, unit: int) -> Any:
    """Whole ``unit`` spans from ``start`` (at or after it) as SQL."""
    return (column - start) // unit


def _day_of(span: int, start: int, unit: int, ends: Sequence[int]) -> int:
    """The day (0 the oldest) that span ``span`` from ``start`` falls in.

    >>> _day_of(0, 100, 10, [100, 120]), _day_of(1, 100, 10, [100, 120])
    (1, 1)
    >>> _day_of(2, 100, 10, [100, 120])
    2
    """
    return bisect_right(ends, start + span * unit)


def _held_after(h: Any) -> Any:
    return case(
        (h.change.in_(HELD_AFTER), 1),
        (and_(h.change == "pinned", h.value.is_not(None)), 1),
        else_=0,
    )


def net_changes(
    conn: Connection, tags: Iterable[str], ends: Sequence[int], since: int | None = None
) -> dict[str, list[int]]:
    """Per tag, the net change of its holders during each day after the oldest (index
    ``i``: the changes from ``ends[i]`` on and before ``ends[i + 1]``, the last: from the
    last end on), in one grouped query; only the changes from ``since`` on if given (a
    day's end: the days before it are left at 0)."""
    names = sorted(set(tags))
    found: dict[str, list[int]] = {name: [0] * len(ends) for name in names}
    if not names or not ends:
        return found
    start, unit = ends[0], _unit(ends)
    h = tag_history.alias("h")
    p = tag_history.alias("p")
    # Held after the entity's previous entry of the tag (none: it never held it).
    previous = (
        select(_held_after(p.c))
        .where(
            p.c.entity_type == h.c.entity_type,
            p.c.entity_id == h.c.entity_id,
            p.c.tag == h.c.tag,
            or_(p.c.at < h.c.at, and_(p.c.at == h.c.at, p.c.seq < h.c.seq)),
        )
        .order_by(p.c.at.desc(), p.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    before = case(
        (h.c.change == "removed", 1),
        (and_(h.c.change == "unpinned", h.c.previous.is_not(None)), 1),
        (h.c.change.in_(LOOKED_UP), func.coalesce(previous, 0)),
        else_=0,
    )
    span = _spans(h.c.at, start, unit)
    query = (
        select(h.c.tag, span, func.sum(_held_after(h.c) - before))
        .where(h.c.tag.in_(names), h.c.at >= max(start, since or start))
        .group_by(h.c.tag, span)
    )
    for tag, index, net in conn.execute(query):
        found[tag][_day_of(int(index), start, unit, ends) - 1] += int(net or 0)
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
    all now): all of them now, less those created after each day's end, plus those merged
    away after it. Three queries; only the window's new entities and merges are grouped
    (grouping every row would sort them all)."""
    names = sorted(set(types))
    days = len(ends) + 1
    e, m = entities.c, entity_merges.c
    totals: dict[str, int] = dict(
        conn.execute(select(e.type, func.count()).where(e.type.in_(names)).group_by(e.type)).all()
    )
    found = {name: [int(totals.get(name, 0))] * days for name in names}
    if not names or not ends:
        return found
    start, unit = ends[0], _unit(ends)
    span = _spans(e.created_at, start, unit)
    recent = (
        select(e.type, span, func.count())
        .where(e.type.in_(names), e.created_at >= start)
        .group_by(e.type, span)
    )
    for entity_type, index, count in conn.execute(recent):
        created = _day_of(int(index), start, unit, ends)  # counted from that day's end
        for day in range(created):
            found[entity_type][day] -= int(count)
    merged = select(m.entity_type, m.merged_profile, m.at).where(
        m.entity_type.in_(names), m.at >= start
    )
    for entity_type, profile, at in conn.execute(merged):
        kept = orjson.loads(profile) if isinstance(profile, str | bytes) else profile
        born = int((kept or {}).get("created_at") or 0)
        for day, end in enumerate(ends):
            if born < end <= at:  # it existed at that day's end, and is gone now
                found[entity_type][day] += 1
    return found


class TrendCache:
    """The days before today, kept: history is appended with the time of writing and
    entities are created at it, so what a finished day counts does not change (a tag's
    count of entries in the window's finished days, read from the ``(tag, at)`` index, is
    checked each time all the same). Only today's entries are read again; days roll over
    at midnight by themselves (they are part of the key). Thread-safe, bounded."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = Lock()

    def _get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
            return self._kept.get(key)

    def _put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._kept[key] = value
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def net_changes(
        self, conn: Connection, tags: Iterable[str], ends: Sequence[int]
    ) -> dict[str, list[int]]:
        """As `net_changes`, reading only today's entries for a tag seen today already."""
        names = sorted(set(tags))
        if not ends:
            return net_changes(conn, names, ends)
        h = tag_history.c
        finished: dict[str, int] = dict(
            conn.execute(
                select(h.tag, func.count())
                .where(h.tag.in_(names), h.at >= ends[0], h.at < ends[-1])
                .group_by(h.tag)
            ).all()
        )
        kept: dict[str, list[int]] = {}
        for name in names:
            hit = self._get(("nets", name, tuple(ends)))
            if hit is not None and hit[0] == finished.get(name, 0):
                kept[name] = hit[1]
        found = net_changes(conn, kept, ends, since=ends[-1])
        fresh = net_changes(conn, [n for n in names if n not in kept], ends)
        for name, nets in fresh.items():
            self._put(("nets", name, tuple(ends)), (finished.get(name, 0), [*nets[:-1], 0]))
            found[name] = nets
        for name, past in kept.items():
            found[name] = [*past[:-1], found[name][-1]]
        return found

    def entity_counts(
        self, conn: Connection, types: Iterable[str], ends: Sequence[int]
    ) -> dict[str, list[int]]:
        """As `entity_counts`, counting only all entities now for a type seen today."""
        names = sorted(set(types))
        hits = {n: self._get(("sizes", n, tuple(ends))) for n in names}
        found = entity_counts(conn, [n for n, hit in hits.items() if hit is None], ends)
        for name, counted in found.items():
            self._put(("sizes", name, tuple(ends)), counted[:-1])
        now = entity_counts(conn, [n for n, hit in hits.items() if hit is not None], [])
        for name, (total,) in now.items():
            found[name] = [*hits[name], total]
        return found


_caches: WeakKeyDictionary[Database, TrendCache] = WeakKeyDictionary()
_caches_lock = Lock()


def cache_for(db: Database) -> TrendCache:
    """The `TrendCache` of a database, shared by every page that shows trends (pass it
    as ``coverage_trend(..., cache=cache_for(rt.db))``); it goes with the database."""
    with _caches_lock:
        return _caches.setdefault(db, TrendCache())


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
    cache: TrendCache | None = None,
) -> dict[str, list[Point]]:
    """Each tag's holders and coverage at the end of each of the last ``days`` days
    (oldest first; today's point is now, and equals the current count).

    ``tags`` maps each tag to its entity type (``{"VIP": "customer"}``); ``now`` is µs
    UTC (``rt.clock()``), ``tz`` the workspace zone (``rt.workspace.project.timezone``).
    ``counts`` (active holders now, e.g. from `tagloop.store.tags.counts`) and ``sizes``
    (`entity_counts` for the same ``now``, ``tz`` and ``days``) save their queries when the
    caller has them; a `TrendCache` kept between calls (one per database) saves reading
    the finished days again. A few queries whatever the number of tags.

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
        sizes = (cache.entity_counts if cache else entity_counts)(conn, tags.values(), ends)
    nets = (cache.net_changes if cache else net_changes)(conn, tags, ends)
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
