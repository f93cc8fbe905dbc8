"""When can a tag change with no new event? The next moment to re-evaluate an entity.

Each time-dependent part of a rule yields the next instant after ``now`` at which its
value can change: an event leaving (or, if dated ahead, entering) a window, the end of
the current calendar period for a streak, the next whole day/hour for ``days_since``/
``hours_since``, the crossing time of a comparison like ``t > now() - 1h``. A rule that uses
``now()`` in a shape not understood here is re-evaluated every ``tick``. The earliest of
these, over all of an entity's tags, is when its timer fires. Firing early is harmless
(nothing changes); the analysis never fires late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tagloop.engine import periods
from tagloop.rules import bound as b
from tagloop.rules.functions import DAY_US, HOUR_US
from tagloop.rules.stream import compile_stream

Probe = Callable[[Any], int | None]  # ctx -> next change time, or None


@dataclass(frozen=True)
class Timing:
    """The time probes of one tag, prepared once."""

    probes: tuple[Probe, ...]

    def next_change(self, ctx: Any) -> int | None:
        found = [due for probe in self.probes if (due := probe(ctx)) is not None]
        return min(found) if found else None


def timing(roots: list[b.B], tick: int) -> Timing:
    probes: list[Probe] = []
    for root in roots:
        probes.extend(_probes(root, tick))
    return Timing(tuple(probes))


def _probes(root: b.B, tick: int) -> list[Probe]:
    probes: list[Probe] = []
    handled: set[int] = set()  # Now nodes covered by a crossing probe
    for node in root.walk():
        if isinstance(node, b.Agg) and not node.per_period:
            probes.append(_aggregate_probe(node))
        elif isinstance(node, b.Streak):
            period = node.period
            probes.append(lambda ctx, p=period: periods.next_boundary(p, ctx.now, ctx.tz))  # type: ignore[misc]
        elif isinstance(node, b.Func) and node.name in ("days_since", "hours_since"):
            unit = DAY_US if node.name == "days_since" else HOUR_US
            probes.append(_since_probe(compile_stream(node.args[0]), unit))
        elif isinstance(node, b.Op) and node.op in ("<", "<=", ">", ">=", "==", "!="):
            crossing = _crossing(node)
            if crossing is not None:
                probes.append(crossing[0])
                handled.add(id(crossing[1]))
    for node in root.walk():
        if (isinstance(node, b.Now) and id(node) not in handled) or (
            isinstance(node, b.Func) and node.name == "now" and id(node) not in handled
        ):
            probes.append(lambda ctx: ctx.now + tick)
    return probes


def _aggregate_probe(node: b.Agg) -> Probe:
    key = (node.input, node.window)
    windows = [node.window] if node.window is not None else []

    def probe(ctx: Any) -> int | None:
        state = ctx.state
        if state is None:
            return None
        # many tags of an entity read the same input and window: look once per context
        due = ctx.due
        if key in due:
            return due[key]  # type: ignore[no-any-return]
        kept = state.inputs.get(node.input)
        found = None if kept is None else kept.next_change(ctx.plans[node.input], windows, ctx.now)
        due[key] = found
        return found

    return probe


def _since_probe(argument: Any, unit: int) -> Probe:
    def probe(ctx: Any) -> int | None:
        t = argument(ctx)
        if not isinstance(t, int) or isinstance(t, bool):
            return None
        elapsed = (ctx.now - t) // unit
        return t + (elapsed + 1) * unit  # type: ignore[no-any-return]

    return probe


def _now_offset(node: b.B) -> tuple[int, b.B] | None:
    """``now()`` -> (0, node), ``now() - 1h`` -> (-1h, node), ``now() + 1h`` -> (+1h, node)."""
    if isinstance(node, b.Now) or (isinstance(node, b.Func) and node.name == "now"):
        return 0, node
    if isinstance(node, b.Op) and node.op in ("+", "-") and len(node.args) == 2:
        left, right = node.args
        inner = _now_offset(left)
        if inner is not None and isinstance(right, b.Const) and right.type == "duration":
            offset = right.value if node.op == "+" else -right.value
            return inner[0] + offset, inner[1]
    return None


def _crossing(node: b.Op) -> tuple[Probe, b.B] | None:
    """For ``x OP now() + c`` (either side), the instant ``now`` reaches ``x - c``."""
    left, right = node.args
    for now_side, other in ((right, left), (left, right)):
        found = _now_offset(now_side)
        if found is None or any(
            isinstance(n, b.Now) or (isinstance(n, b.Func) and n.name == "now")
            for n in other.walk()
        ):
            continue
        offset, now_node = found
        value = compile_stream(other)

        def probe(ctx: Any, value: Any = value, offset: int = offset) -> int | None:
            x = value(ctx)
            if not isinstance(x, int) or isinstance(x, bool):
                return None
            moment = x - offset + 1  # just past equality: covers both < and <=
            return moment if moment > ctx.now else None

        return probe, now_node
    return None
