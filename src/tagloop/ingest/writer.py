"""Group commit: batches that arrive together are committed in one transaction.

Concurrent requests each hand their checked events to `GroupCommitter` and wait; one thread
takes everything queued (up to ``max_events``) and commits it at once, through
``commit_many``: the local `Ingestor.commit_many`, or in a server the writer process
(`tagloop.ingest.remote`). Larger transactions write each touched database page once
instead of once per request, which is what lets SQLite's single writer keep up with many
senders. If a merged commit fails, each batch is retried alone so one bad batch cannot
fail its neighbours.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from tagloop import logs
from tagloop.errors import StorageError
from tagloop.ingest.event import Event
from tagloop.ingest.pipeline import CommitResult, Part
from tagloop.metrics import COMMIT_EVENTS, COMMIT_SECONDS

log = logs.get("tagloop.writer")

CommitMany = Callable[[list[Part]], list[CommitResult]]


@dataclass
class _Job:
    part: Part
    done: Future[CommitResult] = field(default_factory=Future)


class GroupCommitter:
    def __init__(self, commit_many: CommitMany, max_events: int = 5_000) -> None:
        self.commit_many = commit_many
        self.max_events = max_events
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="tagloop-commit", daemon=True)
        self.thread.start()

    def __call__(self, events: list[Event]) -> CommitResult:
        """Commit ``events`` with whatever else is waiting; returns when durable."""
        return self.submit(Part(events))

    def submit(self, part: Part) -> CommitResult:
        if not self.thread.is_alive():
            raise StorageError("the commit thread has stopped")
        job = _Job(part)
        self.jobs.put(job)
        return job.done.result()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(30)

    def _run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            group, size, stop = [first], len(first.part.events), False
            while size < self.max_events:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                group.append(job)
                size += len(job.part.events)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Job]) -> None:
        try:
            with COMMIT_SECONDS.time():
                results = self.commit_many([job.part for job in group])
            COMMIT_EVENTS.observe(sum(len(job.part.events) for job in group))
        except Exception as exc:
            if len(group) == 1:
                group[0].done.set_exception(exc)
                return
            log.warning(
                "group commit failed; retrying its batches one by one",
                batches=len(group),
                error=str(exc),
            )
            for job in group:
                self._commit([job])
            return
        for job, result in zip(group, results, strict=True):
            job.done.set_result(result)
