"""Firing timers: re-evaluating entities whose tags may have changed with time alone.

A rule such as ``count(order, 30d) > 0`` turns false 30 days after the last order with no
new event. The engine stores, per entity, when that can next happen (`store.timers`); the
`TimerLoop` looks for due entities every ``timer_poll`` and hands them to the commit path,
which re-evaluates their time-dependent tags and sets their next due time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tagloop import logs
from tagloop.ingest.pipeline import CommitResult, Part
from tagloop.store import timers as timer_store
from tagloop.store.db import Database

log = logs.get("tagloop.timers")
BATCH = 1_000


def fire_due(db: Database, clock: Callable[[], int], commit: Callable[[Part], CommitResult]) -> int:
    """Re-evaluate every entity whose timer is due now; returns how many were."""
    total = 0
    while True:
        with db.read() as conn:
            due = timer_store.due(db, conn, clock(), BATCH)
        if not due:
            return total
        commit(Part([], recheck=due))
        total += len(due)
        if len(due) < BATCH:
            return total


class TimerLoop:
    """Runs `fire_due` every ``interval`` seconds on its own thread."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], int],
        commit: Callable[[Part], CommitResult],
        interval: float,
    ) -> None:
        self.db, self.clock, self.commit, self.interval = db, clock, commit, interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tagloop-timers", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                fire_due(self.db, self.clock, self.commit)
            except Exception:  # keep firing later; a broken round must not stop timers
                log.warning("timer round failed", exc_info=True)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
