"""The flow worker's writes, committed together: a group commit for trace rows and settles.

Every run in progress appends its trace rows before it moves past a point that matters
(an action starting, the run settling) and waits until they are stored. Writing each of
them in its own transaction made the store, not the work, the bound: on SQLite every write
takes the cross-process writer lock, and 200 runs in progress queued on it. Here the rows
and settles that arrive while one transaction commits go into the next one, so a busy
worker commits a few times per hundred runs, and a quiet one as soon as a run asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tagloop.store import flows as flow_store
from tagloop.store.db import Database


@dataclass(frozen=True)
class Settle:
    """How a run is left: ``status`` (waiting/retrying until ``next_at``, or finished)."""

    run_id: str
    status: str
    next_at: int | None = None
    error: str | None = None


@dataclass
class _Request:
    rows: Sequence[Mapping[str, Any]]
    settle: Settle | None
    done: asyncio.Future[None]


class Journal:
    """Batches `write` calls of concurrent runs into one transaction each time.

    Use it from one event loop; `write` returns once the rows (and the settle) are stored,
    or raises what the commit raised.
    """

    def __init__(self, db: Database, clock: Any) -> None:
        self.db = db
        self.clock = clock
        self._queue: list[_Request] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # transactions so far (the benchmark reports rows per commit)

    async def write(
        self, rows: Sequence[Mapping[str, Any]] = (), settle: Settle | None = None
    ) -> None:
        if not rows and settle is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(list(rows), settle, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await asyncio.to_thread(self._commit, batch)
            except Exception as exc:
                for request in batch:
                    if not request.done.done():
                        request.done.set_exception(exc)
            else:
                for request in batch:
                    if not request.done.done():
                        request.done.set_result(None)

    def _commit(self, batch: list[_Request]) -> None:
        rows = [row for request in batch for row in request.rows]
        settles = [request.settle for request in batch if request.settle is not None]
        now = self.clock()
        # Not durable (`Database.write`): a lost record after a power cut only makes a step
        # run again under its idempotency key, which the design allows for anyway.
        with self.db.write(durable=False) as conn:
            flow_store.append_steps(conn, rows)
            flow_store.settle_many(
                conn, [(s.run_id, s.status, s.next_at, s.error) for s in settles], now
            )
        self.commits += 1

    async def close(self) -> None:
        """Wait for the writes already asked for."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
