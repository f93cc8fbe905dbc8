"""``tagloop flows list|test|runs|show|retry|start|run``: the workspace's flows, their runs
and traces, and the worker that runs them."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from tagloop.api import flow_render
from tagloop.api.render import ts
from tagloop.audit import Actor
from tagloop.cli.context import open_runtime
from tagloop.cli.output import err, json_text, out, plain
from tagloop.errors import Conflict, NotFound, Problem, ValidationFailed
from tagloop.flows.dryrun import dry_run
from tagloop.flows.worker import FlowWorker
from tagloop.ingest.pipeline import RejectedBatch
from tagloop.ingest.single import one_event
from tagloop.names import suggest
from tagloop.runtime import Runtime
from tagloop.store import flows as flow_store

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_flows(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON, as GET /v1/flows does."),
) -> None:
    """The flows of the workspace: trigger, entity type, steps, enabled."""
    rt = open_runtime(ctx)
    rows = [flow_render.flow(f) for f in rt.workspace.flows.values()]
    if as_json:
        print(json_text(rows))
        return
    table = Table("name", "trigger", "entity", "steps", "enabled", "description")
    table.columns[0].no_wrap = True
    for row in rows:
        table.add_row(
            row["name"],
            row["trigger"],
            row["entity_type"],
            str(row["steps"]),
            "yes" if row["enabled"] else "no",
            row["description"],
        )
    out.print(table)


def _flow_name(rt: Runtime, name: str) -> str:
    """``name`` if the workspace defines it, else NotFound with a suggestion."""
    if name not in rt.workspace.flows:
        raise NotFound(f"unknown flow {name!r}" + suggest(name, rt.workspace.flows))
    return name


def _read_event(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


@app.command("test")
def dry_run_event(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The flow."),
    event: Path = typer.Option(
        ..., "--event", help="A JSON file with one event in the canonical format."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON, as the API's dry run does."),
) -> None:
    """What a flow would do for an event now, touching nothing: no run is stored and no
    action runs (each describes what it would do). Exit 1 if the run would fail."""
    rt = open_runtime(ctx)
    _flow_name(rt, name)
    value = _read_event(event)
    try:
        parsed = one_event(rt.ingestor, value, rt.clock(), source="cli")
    except RejectedBatch as exc:
        problems = [Problem(r.field, r.reason) for r in exc.rejections]
        raise ValidationFailed(f"{event}: the event is refused", problems) from None
    report = flow_render.dry_run(dry_run(rt, name, parsed))
    if as_json:
        print(json_text(report))
    else:
        table = Table("step", "kind", "name", "status", "detail")
        for step in report["steps"]:
            detail = step.get("error") or step.get("result") or step.get("args")
            table.add_row(step["step"], step["kind"], step["name"], step["status"], _detail(detail))
        out.print(table)
        out.print(f"outcome: {_outcome(report['outcome'])}", markup=False)
    if report["outcome"]["status"] == "failed":
        raise typer.Exit(1)


def _outcome(outcome: dict[str, Any]) -> str:
    status = str(outcome["status"])
    if status == "skipped":
        return f"skipped: {outcome.get('reason')}"
    if status == "failed":
        return f"failed: {outcome.get('error')}"
    if outcome.get("until") is not None:
        return f"{status} until {outcome['until']} (a dry run stops there)"
    return status


def _detail(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else plain(value)


@app.command()
def runs(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only the runs of this flow."),
    status: str | None = typer.Option(
        None, "--status", help=f"Only runs with this status: {', '.join(flow_render.RUN_STATUSES)}."
    ),
    limit: int = typer.Option(50, min=1, max=10_000, help="Newest first, at most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Flow runs, newest first: status, entity, when, and why one failed."""
    rt = open_runtime(ctx)
    if status is not None and status not in flow_render.RUN_STATUSES:
        raise ValidationFailed(
            f"unknown status {status!r}{suggest(status, flow_render.RUN_STATUSES)}; "
            f"statuses: {', '.join(flow_render.RUN_STATUSES)}"
        )
    with rt.db.read() as conn:
        # A flow removed from the workspace keeps its runs: show them if it had any.
        removed = name is not None and name not in rt.workspace.flows
        if removed and not flow_store.runs(conn, flow=name, limit=1):
            _flow_name(rt, str(name))
        rows = flow_store.runs(conn, flow=name, status=status, limit=limit)
    views = [flow_render.run(row) for row in rows]
    if as_json:
        print(json_text(views))
        return
    table = Table("run", "flow", "v", "status", "entity", "created", "finished", "error")
    for column in table.columns[:2] + table.columns[4:5]:
        column.no_wrap = True  # ids to copy whole
    for view in views:
        entity = view["entity"]
        table.add_row(
            view["id"],
            view["flow"],
            str(view["version"]),
            view["status"],
            f"{entity['type']}/{entity['id']}",
            view["created_at"],
            view["finished_at"] or "",
            view["error"] or "",
        )
    out.print(table)


def _run(rt: Runtime, run_id: str) -> Any:
    with rt.db.read() as conn:
        row = flow_store.get(conn, run_id)
    if row is None:
        raise NotFound(f"no flow run {run_id!r}")
    return row


@app.command()
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN", help="The run's id."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON, as GET /v1/flows/runs/{id} does."
    ),
) -> None:
    """One run and its trace: each condition with its value, each decision, wait and
    action attempt with its arguments, result or error."""
    rt = open_runtime(ctx)
    row = _run(rt, run_id)
    with rt.db.read() as conn:
        trace = [flow_render.step(t) for t in flow_store.trace(conn, row.id)]
    view = {**flow_render.run(row), "trace": trace}
    if as_json:
        print(json_text(view))
        return
    entity = view["entity"]
    for label, value in (
        ("run", view["id"]),
        ("flow", f"{view['flow']} (version {view['version']})"),
        ("status", view["status"]),
        ("trigger", view["trigger"]),
        ("entity", f"{entity['type']}/{entity['id']}"),
        ("created", view["created_at"]),
        ("finished", view["finished_at"] or ""),
        ("next", view["next_at"] or ""),
        ("error", view["error"] or ""),
    ):
        if value:
            out.print(f"{label:>8}: {value}", markup=False)
    table = Table("step", "kind", "name", "attempt", "status", "started", "detail")
    for step in trace:
        detail = step["error"] or step["result"] or step["args"]
        table.add_row(
            step["step"],
            step["kind"],
            step["name"],
            str(step["attempt"]),
            step["status"],
            step["started_at"] or "",
            _detail(detail),
        )
    out.print(table)


@app.command()
def retry(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN", help="The failed run's id."),
) -> None:
    """Make a failed run due again: a worker (``tagloop flows run``) takes it and replays
    it from its trace. Audited (``flow.retry``). Exit 1 if the run is not failed."""
    rt = open_runtime(ctx)
    row = _run(rt, run_id)
    if row.status != "failed" or not flow_store.retry(rt.db, row.id, rt.clock(), actor=Actor.cli()):
        status = _run(rt, run_id).status
        raise Conflict(f"run {run_id} is {status}, not failed: only a failed run can be retried")
    out.print(f"run {run_id} ({row.flow}) is pending again; a worker takes it", markup=False)


def _inputs(items: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValidationFailed(f"--input {item!r}: write it as name=value")
        try:
            found[key] = orjson.loads(text)
        except orjson.JSONDecodeError:
            found[key] = text  # not JSON: the text itself
    return found


@app.command()
def start(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The flow."),
    entity_type: str = typer.Argument(..., metavar="TYPE", help="The entity type it runs on."),
    entity_id: str = typer.Argument(..., metavar="ID", help="The entity."),
    inputs: list[str] = typer.Option(
        None,
        "--input",
        help="name=value (repeatable): what the run reads as event.properties; "
        "a JSON value (42, true, [1]) or text.",
    ),
) -> None:
    """Start a flow now for one entity, whatever its trigger (its conditions still apply).
    The run is pending until a worker takes it (``tagloop flows run``)."""
    rt = open_runtime(ctx)
    values = _inputs(inputs or [])
    run_id = FlowWorker(rt).start(name, entity_type, entity_id, values)
    out.print(f"started run {run_id} of {name} for {entity_type}/{entity_id}", markup=False)


@app.command()
def run(
    ctx: typer.Context,
    once: bool = typer.Option(
        False, "--once", help="Run the runs due now (and those they make due), then exit."
    ),
) -> None:
    """Run the flow worker in the foreground until Ctrl-C: it takes due runs from the
    store, waits and retries in the store, and prints a summary when it stops. With
    ``--once``, exit 1 when a run failed meanwhile (a cron job or CI step notices)."""
    rt = open_runtime(ctx)
    worker = FlowWorker(rt)
    started = rt.clock()
    if once:
        asyncio.run(worker.drain())
    else:
        err.print("flow worker running; Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(worker.run_forever())
    with rt.db.read() as conn:
        tally = flow_store.tally(conn, finished_since=started)
        pending, due = flow_store.waiting(conn)
    counts = ", ".join(f"{tally.get(s, 0)} {s}" for s in ("succeeded", "failed", "skipped"))
    out.print(f"{worker.finished} run(s) finished by this worker; since it started: {counts}")
    if pending:
        when = f", the next due {ts(due)}" if due is not None else ""
        out.print(f"{pending} run(s) pending, waiting or retrying{when}")
    if once and tally.get("failed"):
        err.print("failed runs: tagloop flows runs --status failed shows why", markup=False)
        raise typer.Exit(1)


def register(parent: typer.Typer) -> None:
    parent.add_typer(
        app, name="flows", help="List and test flows, inspect and retry runs, run the worker."
    )
