"""The flow worker: takes due runs from the store and runs them, durably.

A run is leased while it runs (``engine.flow_lease``, 5 minutes); a worker that dies
leaves it leased, and the next worker takes it when the lease runs out and replays it
(`tagloop.flows.runner`). Runs wait
(``wait``, ``wait_until``, retries) in the store, not in memory, so a restart loses none.
Per flow, ``concurrency`` bounds the runs in progress, ``rate`` the runs started per period
(the others stay due and are taken later), and ``dedupe`` skips a run whose key another run
holds within its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from tagloop import logs
from tagloop.errors import Conflict, NotFound, StorageError, ValidationFailed
from tagloop.flows import runner
from tagloop.flows import subjects as run_subjects
from tagloop.flows.actions.webhook import close_sessions
from tagloop.flows.journal import Journal, Settle
from tagloop.flows.steps import Flow
from tagloop.flows.store_effects import StoreEffects
from tagloop.flows.subjects import Subjects
from tagloop.flows.templates import render
from tagloop.flows.triggers import definition, start_row
from tagloop.store import flows as flow_store
from tagloop.timeutil import parse_duration

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from tagloop.runtime import Runtime


log = logs.get("tagloop.flows")
BATCH = 200  # runs taken at once
IN_FLIGHT = 1000  # runs in progress at once, at most (each waits on the network or the store)
IDLE_WAIT = 1.0  # seconds between looks at the store when nothing woke the worker
PRUNE_EVERY = 600.0  # seconds between deletions of runs older than engine.flow_runs_kept
PRUNE_ROUNDS = 20  # batches of `flow_store.prune` at most each time (the rest: next time)


class FlowWorker:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.flows = rt.workspace.flows
        self.lease_us = parse_duration(rt.workspace.project.engine.flow_lease)
        self.kept = parse_duration(rt.workspace.project.engine.flow_runs_kept)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limits = {
            name: asyncio.Semaphore(flow.spec.concurrency)
            for name, flow in self.flows.items()
            if flow.spec.concurrency
        }
        self._started: dict[str, list[float]] = {}  # flow -> monotonic start times (rate)
        self._tasks: set[asyncio.Task[None]] = set()
        self._versions: dict[tuple[str, int], Flow] = {}
        self._handed: deque[tuple[Any, list[Any], Subjects]] = deque()  # handed, not started
        self._adopter: asyncio.Task[None] | None = None
        self.journal = Journal(rt.db, rt.clock)
        self.tag_names = [t.name for t in rt.workspace.tags.values()]
        self.finished = 0
        self.adopted = 0  # runs handed over by commits (not claimed from the store)

    # -- waking -------------------------------------------------------------------------
    def wake(self) -> None:
        """Look at the store now (thread-safe: called by the ingestor after a commit)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.rt.ingestor.on_flow_runs = self.wake
        self.rt.ingestor.flow_handoff = self
        from tagloop.flows.schedule import Scheduler

        scheduler = Scheduler(self)
        pruned = 0.0
        try:
            while True:
                if scheduler.flows:
                    await asyncio.to_thread(scheduler.tick)
                if time.monotonic() - pruned >= PRUNE_EVERY:
                    pruned = time.monotonic()
                    await asyncio.to_thread(self.prune)
                taken = await self.run_due()
                if taken:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle())
        finally:
            self.rt.ingestor.on_flow_runs = None
            self.rt.ingestor.flow_handoff = None
            if self._adopter is not None:
                self._adopter.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.journal.close()
            await close_sessions()

    def prune(self) -> int:
        """Delete finished runs older than ``engine.flow_runs_kept`` (a few batches at a
        time); returns how many."""
        before = self.rt.clock() - self.kept
        deleted = 0
        for _ in range(PRUNE_ROUNDS):
            count = flow_store.prune(self.rt.db, before)
            deleted += count
            if count < flow_store.PRUNE_BATCH:
                break
        if deleted:
            log.info("flow runs pruned", runs=deleted)
        return deleted

    def _idle(self) -> float:
        due = flow_store.next_due(self.rt.db)
        if due is None:
            return IDLE_WAIT
        return min(IDLE_WAIT, max(0.0, (due - self.rt.clock()) / 1e6))

    async def run_due(self) -> int:
        """Take the runs due now and start them (at most `IN_FLIGHT` in progress: the rest
        stay due in the store); returns how many were taken."""
        room = min(BATCH, IN_FLIGHT - len(self._tasks))
        if room <= 0:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            return 1
        taken = await asyncio.to_thread(self._take, room)
        for row, trace, subjects in taken:
            self._spawn(row, trace, subjects)
        return len(taken)

    def _spawn(self, row: Any, trace: list[Any], subjects: Subjects) -> None:
        task = asyncio.create_task(self._process(row, trace, subjects))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self, limit: int) -> list[tuple[Any, list[Any], Subjects]]:
        """Claim due runs, with their traces and the profiles and tags they read: one
        transaction and one read for the whole batch, not a few per run."""
        rows = flow_store.claim(self.rt.db, self.rt.clock(), self.lease_us, limit)
        if not rows:
            return []
        with self.rt.db.read() as conn:
            traces = flow_store.traces(conn, [row.id for row in rows])
            subjects = self.subjects([key for row in rows for key in _keys(row)], conn)
        return [(row, traces.get(row.id, []), subjects) for row in rows]

    # -- runs handed over by the commit that started them (`Ingestor.flow_handoff`) ------
    def lease(self, runs: list[dict[str, Any]], now: int) -> None:
        """Lease the due ``runs`` a commit is about to insert to this worker."""
        for row in runs:
            if row["status"] == "pending":
                row.update(status="running", lease_until=now + self.lease_us)

    def take(
        self, runs: list[dict[str, Any]], steps: list[dict[str, Any]], found: Subjects
    ) -> None:
        """Run ``runs`` on the entities ``found`` (thread-safe: called by the commit that
        inserted them, with their trace ``steps``). A worker that stopped meanwhile leaves
        them leased: taken back when the lease runs out."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        traces: dict[str, list[Any]] = {}
        for step in steps:
            traces.setdefault(step["run_id"], []).append(_Noted(**step))
        handed = [(_Noted(**row), traces.get(row["id"], []), found) for row in runs]
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: as above
            loop.call_soon_threadsafe(self._adopt, handed)

    def _adopt(self, handed: list[tuple[Any, list[Any], Subjects]]) -> None:
        self._handed.extend(handed)
        self.adopted += len(handed)
        if self._adopter is None or self._adopter.done():
            self._adopter = asyncio.create_task(self._start_handed())

    async def _start_handed(self) -> None:
        while self._handed:
            if len(self._tasks) >= IN_FLIGHT:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                continue
            self._spawn(*self._handed.popleft())

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until no run is due now and none is in progress (tests, ``--once``)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                taken = await self.run_due()
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                elif not taken:
                    return
        finally:
            await close_sessions()

    # -- one run ------------------------------------------------------------------------
    async def _process(self, row: Any, trace: list[Any], subjects: Subjects) -> None:
        try:
            flow = self.flow_for(row.flow, row.version)
            if flow is None:
                error = f"flow {row.flow!r} is no longer defined"
                await self._settle([], Settle(row.id, "failed", error=error))
                return
            limit = self._limits.get(flow.name)
            if limit is None:
                await self._run(flow, row, trace, subjects)
                return
            queued = limit.locked()
            async with limit:
                if queued:  # what it read when it was taken may have changed since
                    subjects = await asyncio.to_thread(self.subjects, _keys(row))
                await self._run(flow, row, trace, subjects)
        except asyncio.CancelledError:
            raise  # stopping: the lease runs out and another worker resumes the run
        except StorageError as exc:
            # The store is away: the run is not at fault. Its lease runs out and it resumes
            # where its trace ends once the store is back.
            log.warning("flow run interrupted", flow=row.flow, run=row.id, error=str(exc))
        except Exception as exc:
            # A bug under the run: fail it (leaving it to its lease if even that fails).
            log.exception("flow run crashed", flow=row.flow, run=row.id)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    flow_store.settle,
                    self.rt.db,
                    row.id,
                    "failed",
                    self.rt.clock(),
                    error=f"{type(exc).__name__}: {exc}",
                )

    async def _run(self, flow: Flow, row: Any, trace: list[Any], subjects: Subjects) -> None:
        now = self.rt.clock()
        wait = self._rate_wait(flow)
        if wait:
            await self._settle([], Settle(row.id, "pending", next_at=now + int(wait * 1e6)))
            return
        state = self.state(flow, row, trace, subjects)
        if flow.spec.dedupe is not None:
            state.dedupe = lambda state: self._dedupe(flow, state, row.id, now)
        try:
            outcome = await runner.execute(state)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug under one run: fail it with what it did so far
            log.exception("flow run crashed", flow=flow.name, run=row.id)
            outcome = runner.Failed(f"{type(exc).__name__}: {exc}")
        await self._settle(state.unsaved(), settlement(row.id, outcome))

    async def _settle(self, rows: list[dict[str, Any]], settle: Settle) -> None:
        await self.journal.write(rows, settle)
        if settle.status in flow_store.FINISHED:
            self.finished += 1

    def _rate_wait(self, flow: Flow) -> float:
        """Seconds until ``flow`` may start another run (0: now), counting this one."""
        rate = flow.spec.rate
        if rate is None:
            return 0.0
        per = parse_duration(rate.per) / 1e6
        now = time.monotonic()
        started = [t for t in self._started.get(flow.name, []) if now - t < per]
        if len(started) >= rate.limit:
            self._started[flow.name] = started
            return max(0.001, started[0] + per - now)
        started.append(now)
        self._started[flow.name] = started
        return 0.0

    async def _dedupe(
        self, flow: Flow, state: runner.RunState, run_id: str, now: int
    ) -> str | None:
        spec = flow.spec.dedupe
        assert spec is not None
        key = render(spec.key, state.scope)[:255]
        until = now + parse_duration(spec.window)
        await state.flush()  # the conditions that led here, before the key is taken
        holder = await asyncio.to_thread(
            flow_store.hold_dedupe, self.rt.db, flow.name, key, run_id, until, now
        )
        state.note(
            runner.DEDUPE, "dedupe", key, "done", result={"key": key, "duplicate_of": holder}
        )
        return holder

    def flow_for(self, name: str, version: int) -> Flow | None:
        """The flow as it was at ``version``: runs finish on the version they started on,
        even when the definition changed since."""
        cached = self._versions.get((name, version))
        if cached is not None:
            return cached
        with self.rt.db.read() as conn:
            stored = flow_store.definition(conn, name, version)
        current = self.flows.get(name)
        if current is not None and (stored is None or stored[0] == current.digest):
            flow: Flow | None = current
        elif stored is not None:
            flow = compile_stored(self.rt.workspace, name, version, stored[1])
        else:
            flow = None
        if flow is not None:
            self._versions[(name, version)] = flow
        return flow

    # -- scope ----------------------------------------------------------------------------
    def state(
        self,
        flow: Flow,
        row: Any,
        trace: list[Any],
        subjects: Subjects | None = None,
        *,
        dry: bool = False,
    ) -> runner.RunState:
        """The run's state: what its conditions and templates see, and its trace so far.
        ``subjects``: the profiles and tags read for it (None: read them now)."""
        scope: Mapping[str, Any] = row.scope or {}
        if subjects is None:
            subjects = self.subjects(_keys(row))
        context, related = run_subjects.context(
            row.entity_type, row.entity_id, scope, subjects, self.rt.clock()
        )
        entity, event = context.entity, scope.get("event")
        view: dict[str, Any] = {name: s.as_dict() for name, s in related.items()}
        view.update(
            {
                entity.type: entity.as_dict(),
                "entity": entity.as_dict(),
                "event": event or {},
                "change": scope.get("change") or {},
                "run": {"id": row.id, "flow": flow.name, "version": row.version},
            }
        )
        chain = list(scope.get("chain") or [flow.name])
        effects = None if dry else StoreEffects(self.rt, row.id, flow.name, chain)
        return runner.RunState(
            run_id=row.id,
            flow=flow,
            version=row.version,
            now=self.rt.clock,
            context=context,
            scope=view,
            effects=effects,
            recorded=runner.RunState.trace_index(trace),
            journal=None if dry else self.journal,
        )

    def subjects(self, keys: list[tuple[str, str]], conn: Connection | None = None) -> Subjects:
        """Profiles and held tags of ``keys`` (those that exist), on ``conn``, else in a
        read of its own."""
        if conn is None:
            with self.rt.db.read() as conn:
                return self.subjects(keys, conn)
        return run_subjects.read(self.rt.db, conn, keys, self.tag_names, self.rt.clock())

    # -- starting runs by hand --------------------------------------------------------------
    def start(
        self, name: str, entity_type: str, entity_id: str, inputs: Mapping[str, Any] | None = None
    ) -> str:
        """Start ``name`` for an entity now (a manual or API start); returns the run id."""
        flow = self.flows.get(name)
        if flow is None:
            from tagloop.names import suggest

            raise NotFound(f"unknown flow {name!r}" + suggest(name, self.flows))
        if entity_type != flow.entity_type:
            raise ValidationFailed(f"flow {name!r} runs on {flow.entity_type}, not {entity_type}")
        if not flow.spec.enabled:
            raise Conflict(f"flow {name!r} is disabled (enabled: false in {flow.file})")
        now = self.rt.clock()
        with self.rt.db.write() as conn:
            version = flow_store.version(
                self.rt.db, conn, flow.name, flow.digest, definition(flow), now
            )
            row = start_row(
                flow,
                version,
                f"manual:{now}:{entity_id}",
                entity_type,
                entity_id,
                {"event": {"type": "manual", "properties": dict(inputs or {})}},
                [],
                now,
            )
            flow_store.create_runs(self.rt.db, conn, [row])
        self.wake()
        return str(row["id"])


class _Noted(SimpleNamespace):
    """A run or trace row as the commit that inserted it wrote it (not read back)."""

    def _asdict(self) -> dict[str, Any]:
        return dict(vars(self))


def _keys(row: Any) -> list[tuple[str, str]]:
    return run_subjects.run_keys(row.entity_type, row.entity_id, row.scope)


def settlement(run_id: str, outcome: runner.Outcome) -> Settle:
    """How a run is left after ``outcome``."""
    if isinstance(outcome, runner.Done):
        return Settle(run_id, "succeeded")
    if isinstance(outcome, runner.Skipped):
        return Settle(run_id, "skipped", error=outcome.reason)
    if isinstance(outcome, runner.Failed):
        return Settle(run_id, "failed", error=outcome.error)
    return Settle(run_id, outcome.status, next_at=outcome.until)


def compile_stored(
    workspace: Any, name: str, version: int, stored: Mapping[str, Any]
) -> Flow | None:
    """Compile a stored version of a flow (its spec and the aliases it used then)."""
    from tagloop.errors import Problem
    from tagloop.flows.definitions import FlowCompiler, Located
    from tagloop.flows.registry import actions
    from tagloop.workspace.flows import ActionAliasSpec, FlowSpec
    from tagloop.workspace.yamlfile import Positions

    where = Positions(f"flow {name} version {version}")
    aliases = {
        alias: Located(ActionAliasSpec(name=alias, do=do), where, ())
        for alias, do in (stored.get("aliases") or {}).items()
    }
    problems: list[Problem] = []
    compiler = FlowCompiler(workspace, actions(), aliases, problems.append)
    flow = compiler.compile(Located(FlowSpec.model_validate(stored["spec"]), where, ()))
    if flow is None:
        log.warning(
            "a stored flow version no longer compiles",
            flow=name,
            version=version,
            problems=[str(p) for p in problems],
        )
    return flow
