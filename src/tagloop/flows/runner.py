"""Running one flow run: walk its steps, record each outcome, stop where it must wait.

A run is replayed from its first step every time a worker takes it: a step whose outcome
is in the trace (``flow_steps``) is not done again, its recorded result is used (a
condition's value, the branch an ``if`` took, an action's result), so a run resumed after
a crash continues exactly where it stopped. An action whose attempt was interrupted before
its outcome was recorded runs again with the same idempotency key, which the receiver (or
the store) uses to do it once.

`execute` returns how the run stands: done, failed, or suspended until a time (a wait, a
``wait_until`` that does not hold yet, a retry after backoff).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tagloop import logs
from tagloop.flows.actions.base import ActionContext, ActionFailed, Retry
from tagloop.flows.effects import Effects
from tagloop.flows.journal import Journal
from tagloop.flows.scope import FlowContext
from tagloop.flows.steps import (
    ActionStep,
    Flow,
    IfStep,
    ParallelStep,
    Step,
    WaitStep,
    WaitUntilStep,
)
from tagloop.flows.templates import render_value
from tagloop.rules import CompiledRule
from tagloop.timeutil import parse_duration

log = logs.get("tagloop.flows")
REDRIVE = "redrive"  # the trace row `tagloop flows retry` writes
DEDUPE = "dedupe"  # the trace step of a run's dedupe decision
ACTION_TIMEOUT_S = 60.0  # an action that has not answered by then is retried


@dataclass(frozen=True)
class Done:
    """Every step of the run is done."""


@dataclass(frozen=True)
class Suspend:
    until: int
    status: str = "waiting"  # or "retrying"


@dataclass(frozen=True)
class Failed:
    error: str


@dataclass(frozen=True)
class Skipped:
    """The run ends without acting: its ``reason`` (a condition that did not hold, or the
    run holding its dedupe key)."""

    reason: str


Outcome = Done | Suspend | Failed | Skipped


@dataclass
class Recorded:
    """What the trace holds for one step path."""

    final: Mapping[str, Any] | None = None  # the row that settled it
    attempts: int = 0
    first_at: int | None = None
    waiting: Mapping[str, Any] | None = None  # a wait's first row (holds its deadline)
    base: int = 0  # attempts before the last re-drive (the retry budget starts over)


@dataclass
class RunState:
    """Everything a run needs while it is walked."""

    run_id: str
    flow: Flow
    version: int
    now: Callable[[], int]
    context: FlowContext
    scope: dict[str, Any]
    effects: Effects | None
    recorded: dict[str, Recorded] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # trace rows noted, in order
    journal: Journal | None = None
    """Where `flush` writes the rows noted since the last one; None: keep them in `rows`
    only (a dry run)."""
    saved: int = 0  # rows[:saved] are written
    must_save: bool = False  # a row noted since then must be written before the next step
    dedupe: Callable[[RunState], Awaitable[str | None]] | None = None
    """Takes the flow's dedupe key for the run (noting a `DEDUPE` step); returns the run
    that already holds it, if any."""

    @classmethod
    def trace_index(cls, rows: list[Any]) -> dict[str, Recorded]:
        found: dict[str, Recorded] = {}
        for row in rows:
            if row.kind == REDRIVE:
                # `tagloop flows retry`: what failed is tried again, with a fresh budget
                for rec in found.values():
                    if rec.final is not None and rec.final["status"] == "failed":
                        rec.final, rec.first_at, rec.base = None, None, rec.attempts
                continue
            rec = found.setdefault(row.step, Recorded())
            if row.kind == "action":
                rec.attempts = max(rec.attempts, row.attempt)
                if rec.first_at is None:
                    rec.first_at = row.started_at
            if row.status == "waiting" and rec.waiting is None:
                rec.waiting = row._asdict()
            if row.status in ("ok", "failed", "done"):
                rec.final = row._asdict()
        return found

    def note(
        self, step: str, kind: str, name: str, status: str, *, keep: bool = True, **values: Any
    ) -> dict[str, Any]:
        """Note a trace row; ``keep=False``: it may wait for the run's settle (see
        `flush`)."""
        row = trace_row(self.run_id, step, kind, name, status, self.now(), **values)
        self.rows.append(row)
        self.must_save = self.must_save or keep
        rec = self.recorded.setdefault(step, Recorded())
        if status == "waiting" and rec.waiting is None:
            rec.waiting = row
        if status in ("ok", "failed", "done"):
            rec.final = row
        return row

    def unsaved(self) -> list[dict[str, Any]]:
        """The rows noted since the last `flush` (marking them written: the caller writes
        them, with the run's settle)."""
        rows, self.saved = self.rows[self.saved :], len(self.rows)
        return rows if self.journal is not None else []

    async def flush(self) -> None:
        """Store the rows noted so far, before a step acts: what led to it (conditions,
        branches, dedupe) and what acted outside tagloop, so a run replayed after a crash
        takes the same way and calls nobody twice. The outcome of an internal action alone
        can wait for the run's settle: the step runs again under its idempotency key, and
        its effect is stored once."""
        if self.journal is not None and self.must_save:
            self.must_save = False
            await self.journal.write(self.unsaved())


def trace_row(
    run_id: str, step: str, kind: str, name: str, status: str, now: int, **values: Any
) -> dict[str, Any]:
    """One row of a run's trace (``flow_steps``), finished ``now``."""
    return {
        "run_id": run_id,
        "step": step,
        "kind": kind,
        "name": name[:255],
        "attempt": values.pop("attempt", 1),
        "status": status,
        "args": values.pop("args", None),
        "result": values.pop("result", None),
        "error": values.pop("error", None),
        "started_at": values.pop("started_at", now),
        "finished_at": now,
    }


def condition_row(
    run_id: str, index: int, rule: CompiledRule, value: Any, now: int
) -> dict[str, Any]:
    """The trace row of a run's condition ``index`` evaluated to ``value``."""
    return trace_row(
        run_id, f"conditions[{index}]", "condition", rule.text, "done", now, result={"value": value}
    )


async def execute(state: RunState) -> Outcome:
    """Walk the conditions, then the steps, of one run (see the module docstring)."""
    for i, condition in enumerate(state.flow.conditions):
        if not _test(state, f"conditions[{i}]", "condition", condition):
            return Skipped(f"condition not met: {condition.text}")
    if state.dedupe is not None:
        # After the conditions: only a run that would act takes the flow's dedupe key.
        rec = state.recorded.get(DEDUPE)
        if rec is not None and rec.final is not None:
            holder = (rec.final.get("result") or {}).get("duplicate_of")
        else:
            holder = await state.dedupe(state)
        if holder:
            return Skipped(f"duplicate of run {holder}")
    return await _walk(state, state.flow.steps)


def _test(state: RunState, path: str, kind: str, rule: CompiledRule) -> bool:
    rec = state.recorded.get(path)
    if rec is not None and rec.final is not None:
        return (rec.final.get("result") or {}).get("value") is True
    value = rule.evaluate(state.context)
    state.note(path, kind, rule.text, "done", result={"value": value})
    return value is True


async def _walk(state: RunState, steps: tuple[Step, ...]) -> Outcome:
    for step in steps:
        outcome = await _step(state, step)
        if not isinstance(outcome, Done):
            return outcome
    return Done()


async def _step(state: RunState, step: Step) -> Outcome:
    if isinstance(step, ActionStep):
        return await _action(state, step)
    if isinstance(step, IfStep):
        branch = step.then if _test(state, step.path, "if", step.condition) else step.otherwise
        return await _walk(state, branch)
    if isinstance(step, WaitStep):
        return _wait(state, step)
    if isinstance(step, WaitUntilStep):
        return await _wait_until(state, step)
    assert isinstance(step, ParallelStep)
    outcomes = await asyncio.gather(*(_walk(state, branch) for branch in step.branches))
    failed = [o for o in outcomes if isinstance(o, Failed)]
    if failed:
        return failed[0]
    suspended = [o for o in outcomes if isinstance(o, Suspend)]
    if suspended:
        first = min(suspended, key=lambda o: o.until)
        return Suspend(
            first.until, "retrying" if any(o.status == "retrying" for o in suspended) else "waiting"
        )
    return Done()


def _wait(state: RunState, step: WaitStep) -> Outcome:
    rec = state.recorded.get(step.path)
    if rec is not None and rec.final is not None:
        return Done()
    now = state.now()
    if rec is None or rec.waiting is None:
        until = now + step.duration_us
        state.note(step.path, "wait", "wait", "waiting", result={"until": until})
        return Suspend(until)
    until = int(rec.waiting["result"]["until"])
    if now < until:
        return Suspend(until)
    state.note(step.path, "wait", "wait", "done", result={"until": until})
    return Done()


async def _wait_until(state: RunState, step: WaitUntilStep) -> Outcome:
    rec = state.recorded.get(step.path)
    if rec is not None and rec.final is not None:
        met = bool((rec.final.get("result") or {}).get("met"))
        return Done() if met else await _walk(state, step.on_timeout)
    now = state.now()
    if rec is None or rec.waiting is None:
        deadline = now + step.timeout_us
        state.note(
            step.path, "wait_until", step.condition.text, "waiting", result={"timeout_at": deadline}
        )
    else:
        deadline = int(rec.waiting["result"]["timeout_at"])
    value = step.condition.evaluate(state.context)
    if value is True:
        state.note(step.path, "wait_until", step.condition.text, "done", result={"met": True})
        return Done()
    if now >= deadline:
        state.note(
            step.path,
            "wait_until",
            step.condition.text,
            "done",
            result={"met": False, "timed_out": True},
        )
        return await _walk(state, step.on_timeout)
    return Suspend(min(deadline, now + step.check_every_us))


async def _action(state: RunState, step: ActionStep) -> Outcome:
    rec = state.recorded.get(step.path) or Recorded()
    if rec.final is not None:
        if rec.final["status"] == "failed":
            return Failed(str(rec.final.get("error") or "failed"))
        return Done()
    if state.effects is not None:
        await state.flush()
    attempt = rec.attempts + 1
    started = state.now()
    first_at = rec.first_at if rec.first_at is not None else started
    name = step.label
    retry = state.flow.spec.retry
    shown: Any = None

    def attempted(status: str, **values: Any) -> None:
        state.note(
            step.path,
            "action",
            name,
            status,
            attempt=attempt,
            args=shown,
            started_at=started,
            keep=step.action.side_effects,
            **values,
        )

    def failed(message: str) -> Outcome:
        attempted("failed", error=message)
        return Failed(f"{step.path} ({name}): {message}")

    own = step.action.renders  # rendered by the action itself, never twice
    names = step.action.positional
    try:
        positional = [
            v if i < len(names) and names[i] in own else render_value(v, state.scope)
            for i, v in enumerate(step.positional)
        ]
        named = {k: v if k in own else render_value(v, state.scope) for k, v in step.named.items()}
        args = step.action.parse_args(positional, named)
    except ActionFailed as exc:
        return failed(exc.message)
    shown = args.model_dump(mode="json")
    ctx = ActionContext(
        run_id=state.run_id,
        step=step.path,
        attempt=attempt,
        flow=state.flow.name,
        flow_version=state.version,
        now=started,
        scope=state.scope,
        effects=state.effects,
    )
    action = step.action()
    try:
        if state.effects is None:
            result = action.describe(args, ctx)
        else:
            result = await asyncio.wait_for(action.run(args, ctx), ACTION_TIMEOUT_S)
    except ActionFailed as exc:
        return failed(exc.message)
    except (Retry, TimeoutError, OSError) as exc:
        message = exc.message if isinstance(exc, Retry) else _describe(exc)
        now = state.now()
        give_up = first_at + parse_duration(retry.give_up_after)
        if attempt - rec.base >= retry.attempts or now >= give_up:
            return failed(f"gave up after {attempt - rec.base} attempt(s): {message}")
        after = exc.retry_after if isinstance(exc, Retry) else None
        wait = backoff(attempt, retry.initial, retry.max, after)
        attempted("retry", error=message, result={"retry_in_s": wait})
        return Suspend(now + int(wait * 1e6), "retrying")
    except Exception as exc:  # an action's own bug: fail the run, keep the process
        log.exception("flow action crashed", flow=state.flow.name, step=step.path)
        return failed(_describe(exc))
    attempted("ok", result=result)
    return Done()


def backoff(attempt: int, initial: str, cap: str, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: what ``Retry-After`` asked (up to ``cap``),
    else ``initial`` doubling per attempt, at most ``cap``, with up to 20% jitter.

    >>> backoff(1, "1s", "10m", retry_after=30.0), 1.0 <= backoff(1, "1s", "10m") <= 1.2
    (30.0, True)
    >>> backoff(20, "1s", "10m") <= 600 * 1.2
    True
    """
    most = parse_duration(cap) / 1e6
    if retry_after is not None:
        return min(max(retry_after, 0.0), most)
    base: float = min(most, parse_duration(initial) / 1e6 * 2.0 ** min(attempt - 1, 30))
    return base * (1 + random.random() * 0.2)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
