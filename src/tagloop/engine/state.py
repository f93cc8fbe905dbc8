"""Per-entity incremental state of the streaming evaluator.

For each aggregate input (event type + filter + value) an entity keeps:

- for windowed aggregates, its entries ``(time, seq, value)`` sorted by time, back to the
  longest window in use: windows are exact and half-open, ``[now - w, now)``; a late event
  is inserted in place (O(log n)), an in-order one appended (O(1)), and entries leave once
  no window can reach them;
- for aggregates over all history, running accumulators (O(1) per event; float sums are
  kept exactly and rounded once); an event dated after ``now`` waits until ``now`` passes;
- for aggregates inside ``streak``/``every``, one accumulator per calendar period (pane).

The state is derived from the events table and can always be rebuilt from it; `version`
(the entity's event count it reflects) detects a stale copy.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from tagloop.engine import periods
from tagloop.rules import bound as b
from tagloop.rules.stream import Fn, as_time, compile_event

Entry = tuple[int, int, Any]  # (time, seq, value)


class ExactSum:
    """A float sum without rounding error until the end (Shewchuk's partials, as fsum)."""

    __slots__ = ("floats", "integer", "partials")

    def __init__(self) -> None:
        self.integer = 0
        self.partials: list[float] = []
        self.floats = False

    def add(self, x: int | float) -> None:
        if isinstance(x, int):
            self.integer += x
            return
        self.floats = True
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    @property
    def value(self) -> int | float:
        if not self.floats:
            return self.integer
        return math.fsum([*self.partials, self.integer])


def numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def norm(value: Any) -> tuple[int, Any] | None:
    """The identity of a value for ``distinct``/``top``: numbers compare numerically and
    sort before strings; booleans are their own kind; other values do not count."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    return None


class Accumulator:
    """Everything an aggregate over a set of entries can need, kept incrementally."""

    __slots__ = ("count", "first", "high", "last", "low", "numbers", "total", "values")

    def __init__(self) -> None:
        self.count = 0
        self.total = ExactSum()
        self.numbers = 0  # entries with a numeric value
        self.low: Any = None
        self.high: Any = None
        self.first: tuple[int, int, Any] | None = None
        self.last: tuple[int, int, Any] | None = None
        self.values: Counter[tuple[int, Any]] = Counter()

    def add(self, time: int, seq: int, value: Any, kind: str) -> None:
        self.count += 1
        if numeric(value):
            self.total.add(value)
            self.numbers += 1
        comparable = _comparable(value, kind)
        if comparable is not None:
            if self.low is None or comparable < self.low:
                self.low = comparable
            if self.high is None or comparable > self.high:
                self.high = comparable
        if self.first is None or (time, seq) < self.first[:2]:
            self.first = (time, seq, value)
        if self.last is None or (time, seq) > self.last[:2]:
            self.last = (time, seq, value)
        key = norm(value)
        if key is not None:
            self.values[key] += 1

    def result(self, func: str) -> Any:
        if func == "count":
            return self.count
        if func == "sum":
            return self.total.value
        if func == "avg":
            return self.total.value / self.numbers if self.numbers else None
        if func == "min":
            return self.low
        if func == "max":
            return self.high
        if func == "first":
            return self.first[2] if self.first else None
        if func == "last":
            return self.last[2] if self.last else None
        if func == "distinct":
            return len(self.values)
        return top(self.values)


EMPTY = Accumulator()


def top(values: Counter[tuple[int, Any]]) -> Any:
    """The most frequent value; ties go to the smallest (numbers before strings)."""
    if not values:
        return None
    best = min(values.items(), key=lambda item: (-item[1], item[0]))[0]
    return best[1]


def _comparable(value: Any, kind: str) -> Any:
    """The value as ``min``/``max`` order it, or None if it does not take part: strings for
    string properties, times for time properties, numbers otherwise."""
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "datetime":
        return as_time(value)
    return value if numeric(value) else None


def over(entries: Iterable[Entry], kind: str) -> Accumulator:
    acc = Accumulator()
    for time, seq, value in entries:
        acc.add(time, seq, value, kind)
    return acc


@dataclass
class InputPlan:
    """How one aggregate input is kept: decided by every aggregate that reads it."""

    input: b.AggInput
    kind: str  # static type of the value (string, datetime, number, any ...)
    max_window: int | None = None  # the longest window over it, if any
    running: bool = False  # some aggregate covers all history
    periods: set[str] = field(default_factory=set)  # calendar periods used by streaks
    accepts: Fn | None = None
    extract: Fn | None = None

    def __post_init__(self) -> None:
        if self.input.where is not None:
            self.accepts = compile_event(self.input.where)
        if self.input.value is not None:
            self.extract = compile_event(self.input.value)

    def take(self, event: Any) -> tuple[bool, Any]:
        """Whether ``event`` passes the filter, and its value."""
        if self.accepts is not None and self.accepts(event) is not True:
            return False, None
        return True, self.extract(event) if self.extract is not None else None


class InputState:
    __slots__ = ("entries", "keys", "panes", "pending", "running")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.keys: list[tuple[int, int]] = []  # (time, seq) of entries, for bisect
        self.running: Accumulator | None = None
        self.pending: list[Entry] = []  # dated after `now` when they arrived
        self.panes: dict[tuple[str, int], Accumulator] = {}

    def add(self, plan: InputPlan, entry: Entry, now: int, tz: ZoneInfo) -> None:
        time, seq, value = entry
        if plan.max_window is not None and time >= now - plan.max_window:
            key = (time, seq)
            if not self.keys or key > self.keys[-1]:
                self.keys.append(key)
                self.entries.append(entry)
            else:
                at = bisect.bisect(self.keys, key)
                self.keys.insert(at, key)
                self.entries.insert(at, entry)
        if plan.running:
            if time < now:
                if self.running is None:
                    self.running = Accumulator()
                self.running.add(time, seq, value, plan.kind)
            else:
                bisect.insort(self.pending, entry)
        for period in plan.periods:
            pane_key = (period, periods.index(period, time, tz))  # type: ignore[arg-type]
            pane = self.panes.get(pane_key)
            if pane is None:
                pane = self.panes[pane_key] = Accumulator()
            pane.add(time, seq, value, plan.kind)

    def advance(self, plan: InputPlan, now: int) -> None:
        """Fold pending entries whose time has come; drop entries no window reaches."""
        while self.pending and self.pending[0][0] < now:
            time, seq, value = self.pending.pop(0)
            if self.running is None:
                self.running = Accumulator()
            self.running.add(time, seq, value, plan.kind)
        if plan.max_window is not None and self.keys:
            cut = bisect.bisect_left(self.keys, (now - plan.max_window, -1))
            if cut:
                del self.keys[:cut]
                del self.entries[:cut]

    def window(self, low: int, high: int) -> list[Entry]:
        """Entries with ``low <= time < high``."""
        start = bisect.bisect_left(self.keys, (low, -1))
        end = bisect.bisect_left(self.keys, (high, -1))
        return self.entries[start:end]

    def next_change(self, plan: InputPlan, windows: Iterable[int], now: int) -> int | None:
        """The earliest time after ``now`` at which an aggregate over this input changes
        without a new event: an entry leaving a window or a future one entering.

        Windows are ``[now - w, now)``: an entry at ``t`` is inside while
        ``t < now <= t + w``, so it enters at ``t + 1`` and leaves at ``t + w + 1``.
        """
        due: list[int] = []
        for w in windows:
            inside = self.window(now - w, now)
            if inside:
                due.append(inside[0][0] + w + 1)
            later = bisect.bisect_left(self.keys, (now, -1))
            if later < len(self.entries):
                due.append(self.entries[later][0] + 1)
        if self.pending:
            due.append(self.pending[0][0] + 1)
        return min(due) if due else None


@dataclass
class EntityState:
    """What the streaming evaluator knows about one entity."""

    version: int  # the entity's event count this state reflects
    first_time: int | None = None  # earliest event time (start of streak look-back)
    inputs: dict[b.AggInput, InputState] = field(default_factory=dict)

    def apply(
        self, plans: Iterable[InputPlan], event: Any, seq: int, now: int, tz: ZoneInfo
    ) -> list[b.AggInput]:
        """Fold one event in; returns the inputs it entered (for dependency tracking)."""
        if self.first_time is None or event.time < self.first_time:
            self.first_time = event.time
        entered = []
        for plan in plans:
            if plan.input.event_type != event.type:
                continue
            passes, value = plan.take(event)
            if not passes:
                continue
            state = self.inputs.get(plan.input)
            if state is None:
                state = self.inputs[plan.input] = InputState()
            state.add(plan, (event.time, seq, value), now, tz)
            entered.append(plan.input)
        return entered


def aggregate(
    state: EntityState,
    plan: InputPlan,
    node: b.Agg,
    now: int,
    windows: dict[tuple[b.AggInput, int], Accumulator] | None = None,
) -> Any:
    """The value of ``node`` (not per period) for an entity at ``now``; ``windows`` keeps
    the accumulators of windows already folded, shared by the aggregates over the same
    input and window (``count(order, 30d)`` and ``sum(order.amount, 30d)``)."""
    kept = state.inputs.get(node.input)
    if kept is None:
        return EMPTY.result(node.func)
    if node.window is None:
        return (kept.running or EMPTY).result(node.func)
    if windows is None:
        return over(kept.window(now - node.window, now), plan.kind).result(node.func)
    key = (node.input, node.window)
    acc = windows.get(key)
    if acc is None:
        acc = windows[key] = over(kept.window(now - node.window, now), plan.kind)
    return acc.result(node.func)


def pane(state: EntityState, node: b.Agg, period: str, idx: int) -> Any:
    """The value of a per-period aggregate in period ``idx``."""
    kept = state.inputs.get(node.input)
    acc = kept.panes.get((period, idx)) if kept is not None else None
    return (acc or EMPTY).result(node.func)


Clock = Callable[[], int]
