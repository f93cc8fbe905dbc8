"""``tagloop sources list|status|run|reset``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from tagloop.audit import Actor
from tagloop.cli.context import open_runtime
from tagloop.cli.output import err, json_text, out, rejections
from tagloop.runtime import Runtime
from tagloop.sources.runner import SourceRunner, runners_for
from tagloop.sources.status import source_view
from tagloop.sources.status import state as shown_state
from tagloop.store import sources as source_store
from tagloop.timeutil import now_us

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_sources(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The sources of the workspace: kind, schedule, streams."""
    rt = open_runtime(ctx)
    rows = [source_view(defn, None) for defn in rt.workspace.sources.values()]
    if as_json:
        keys = ("name", "kind", "enabled", "schedule", "streams")
        print(json_text([{k: row[k] for k in keys} for row in rows]))
        return
    table = Table("name", "kind", "schedule", "streams", "enabled")
    for row in rows:
        streams = ", ".join(s or "(one)" for s in row["streams"])
        enabled = "yes" if row["enabled"] else "no"
        table.add_row(row["name"], row["kind"], row["schedule"] or "", streams, enabled)
    out.print(table)


@app.command()
def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON, as GET /v1/sources does."),
) -> None:
    """What each source is doing (whichever process runs it): state, counts, lag, last
    success and last error. Exit 1 if a source is failing or lost."""
    rt = open_runtime(ctx)
    rows = source_store.statuses(rt.db)
    if as_json:
        print(json_text([source_view(d, rows.get(n)) for n, d in rt.workspace.sources.items()]))
    else:
        out.print(status_table(rt, rows))
    if any(shown_state(row) in ("failing", "lost") for row in rows.values()):
        raise typer.Exit(1)


def status_table(rt: Runtime, rows: dict[str, Any]) -> Table:
    """The live table of `run` and the output of `status`."""
    table = Table(
        "source", "kind", "state", "read", "written", "rejected", "lag", "last success", "error"
    )
    for name, defn in rt.workspace.sources.items():
        view = source_view(defn, rows.get(name))
        lag = f"{view['lag_seconds']:.1f} s" if view["lag_seconds"] is not None else ""
        error = ""
        if view["state"] == "failing" and view["last_error"]:
            error = f"{view['last_error']} (attempt {view['failures']})"
        table.add_row(
            name,
            defn.kind,
            view["state"],
            f"{view['records_read']:,}",
            f"{view['events_written']:,}",
            f"{view['rejected']:,}",
            lag,
            view["last_success"] or "",
            error,
        )
    return table


@app.command()
def run(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Sources to run (default: every enabled one)."),
    once: bool = typer.Option(
        False, "--once", help="Read pulled sources up to now and exit (no schedule)."
    ),
) -> None:
    """Run sources in the foreground with a live status table (Ctrl-C stops them).

    Pulled sources run on their schedule (``every``/``cron``), listeners until stopped; a
    failing source is retried with backoff while the others go on."""
    rt = open_runtime(ctx)
    runners = runners_for(rt, names or None)
    if once:
        _run_once(runners)
        return
    with Live(status_table(rt, {}), console=err, refresh_per_second=2) as live:

        def refresh(_: SourceRunner) -> None:
            live.update(status_table(rt, source_store.statuses(rt.db)))

        for runner in runners:
            runner.on_change = refresh

        async def main() -> None:
            tasks = [asyncio.create_task(r.run_forever()) for r in runners]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())


def _run_once(runners: list[SourceRunner]) -> None:
    failed = 0
    for runner in runners:
        if not runner.pulled:
            err.print(f"{runner.name}: a listener; skipped with --once")
            continue
        try:
            tally = runner.run_once()
        except Exception as exc:
            failed += 1
            runner.record_failure(exc)
            err.print(f"{runner.name}: failed: {exc}", markup=False)
            continue
        out.print(
            f"{runner.name}: {tally.read:,} records, {tally.written:,} events stored, "
            f"{tally.duplicates:,} duplicates, {tally.unchanged:,} unchanged, "
            f"{tally.rejected:,} rejected (to dead letters)"
        )
        rejections(tally.samples, tally.rejected)
    if failed:
        raise typer.Exit(1)


@app.command()
def reset(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The source."),
) -> None:
    """Forget where a source stands: its next run reads everything again (records already
    stored are recognised by their ids and not stored twice)."""
    rt = open_runtime(ctx)
    if name not in rt.workspace.sources:
        from tagloop.errors import NotFound
        from tagloop.names import suggest

        raise NotFound(f"unknown source {name!r}{suggest(name, rt.workspace.sources)}")
    removed = source_store.clear_checkpoints(rt.db, name, Actor.cli())
    source_store.set_status(rt.db, name, {"state": "idle", "updated_at": now_us()})
    out.print(f"{name}: {removed} checkpoint(s) cleared")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="sources", help="List, run and watch the workspace's sources.")
