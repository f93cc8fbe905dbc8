"""Scheduled flows: ``trigger: {every: 1h, entity: device, where: ...}`` or ``{cron: ...}``.

At each slot (every ``every`` since the epoch, or each time the cron expression names, in
the workspace's time zone) the flow starts one run per entity of its type for which
``where`` holds (every entity without one). A run's trigger key names the slot and the
entity, so a restart, or two workers, never start a slot's run twice; a slot missed while
nothing ran is started late, once (the latest missed slot only).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tagloop import logs
from tagloop.flows.scope import FlowContext
from tagloop.flows.steps import Flow
from tagloop.flows.triggers import definition, start_row
from tagloop.store import entities as entity_store
from tagloop.store import flows as flow_store
from tagloop.timeutil import parse_duration

if TYPE_CHECKING:
    from tagloop.flows.worker import FlowWorker

log = logs.get("tagloop.flows")
PAGE = 500


def last_slot(flow: Flow, now: int, timezone: Any) -> int:
    """The latest slot of ``flow``'s schedule at or before ``now`` (µs).

    >>> from types import SimpleNamespace as NS
    >>> from zoneinfo import ZoneInfo
    >>> hourly = NS(trigger=NS(every="1h", cron=None))
    >>> last_slot(hourly, 7_200_000_001, ZoneInfo("UTC"))
    7200000000
    >>> daily = NS(trigger=NS(every=None, cron="0 2 * * *"))
    >>> last_slot(daily, 86_400_000_000 + 3 * 3_600_000_000, ZoneInfo("UTC")) / 3.6e9
    26.0
    """
    trigger = flow.trigger
    if trigger.every:
        period = parse_duration(trigger.every)
        return now - now % period
    from croniter import croniter

    at = datetime.fromtimestamp(now / 1e6, timezone)
    previous: datetime = croniter(str(trigger.cron), at).get_prev(datetime)
    return int(previous.timestamp() * 1_000_000)


class Scheduler:
    def __init__(self, worker: FlowWorker) -> None:
        self.worker = worker
        self.rt = worker.rt
        self.flows = [
            f for f in worker.flows.values() if f.trigger.kind == "schedule" and f.spec.enabled
        ]
        self._fired: dict[str, int] = {}

    def tick(self) -> int:
        """Start the runs of every slot that came since the last tick; returns how many."""
        started = 0
        now = self.rt.clock()
        for flow in self.flows:
            slot = last_slot(flow, now, self.rt.workspace.timezone)
            if self._fired.get(flow.name) == slot:
                continue
            started += self.fire(flow, slot)
            self._fired[flow.name] = slot
        return started

    def fire(self, flow: Flow, slot: int) -> int:
        """One run per matching entity for ``slot``; already started ones are kept."""
        db, now = self.rt.db, self.rt.clock()
        started, after = 0, None
        while True:
            with db.read() as conn:
                page = entity_store.page(conn, flow.entity_type, tag=None, after=after, limit=PAGE)
            if not page:
                return started
            after = page[-1].id
            keys = [(flow.entity_type, row.id) for row in page]
            subjects = self.worker.subjects(keys)
            rows = []
            with db.write() as conn:
                version = flow_store.version(
                    db, conn, flow.name, flow.digest, definition(flow), now
                )
                for key in keys:
                    subject = subjects.get(key)
                    if subject is None:
                        continue
                    if flow.trigger.where is not None:
                        context = FlowContext(now, subject, None)
                        if flow.trigger.where.evaluate(context) is not True:
                            continue
                    rows.append(
                        start_row(
                            flow,
                            version,
                            f"schedule:{slot}:{key[1]}",
                            key[0],
                            key[1],
                            {"slot": slot},
                            [],
                            now,
                        )
                    )
                started += len(flow_store.create_runs(db, conn, rows))
            if started:
                self.worker.wake()
