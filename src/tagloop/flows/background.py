"""The flow worker on a thread of its own, in the process that commits (the writer
process of ``tagloop serve``, or the server itself when it commits in-process)."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from tagloop import logs

if TYPE_CHECKING:
    from tagloop.runtime import Runtime

log = logs.get("tagloop.flows")


class FlowThread:
    def __init__(self, rt: Runtime) -> None:
        from tagloop.flows.worker import FlowWorker

        self.worker = FlowWorker(rt)
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tagloop-flows", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self.worker.run_forever())
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:  # the worker's own failures are per run; this is a bug
            log.exception("the flow worker stopped")
        finally:
            self._loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking runs; runs in progress stop at their next await (their lease runs
        out and they resume where their trace ends)."""
        task = self._task
        if task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout)
