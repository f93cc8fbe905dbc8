"""``tagloop audit verify|export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import orjson
import typer

from tagloop import audit
from tagloop.audit.query import Filters, export
from tagloop.cli.context import workspace_dir
from tagloop.cli.output import err, out
from tagloop.errors import ValidationFailed
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.timeutil import parse_time
from tagloop.workspace import Workspace, load_workspace

app = typer.Typer(no_args_is_help=True)


def _open(ctx: typer.Context) -> tuple[Workspace, Database]:
    workspace = load_workspace(workspace_dir(ctx))
    db = Database(workspace.database_url)
    upgrade(db)
    return workspace, db


@app.command()
def verify(ctx: typer.Context) -> None:
    """Check the audit log's hash chain; exit 1 naming the first broken record.

    Prints the head hash: keep it elsewhere, since removing the newest records leaves a
    chain that still verifies."""
    _, db = _open(ctx)
    try:
        report = audit.verify(db)
    finally:
        db.dispose()
    if not report.ok:
        err.print(report.summary(), markup=False)
        if report.head_seq is not None:
            err.print(
                f"last intact record: seq {report.head_seq}, hash {report.head_hash}", markup=False
            )
        raise typer.Exit(1)
    out.print(report.summary(), markup=False)


@app.command("export")
def export_records(
    ctx: typer.Context,
    since: str | None = typer.Option(None, help="From this time on (ISO 8601, inclusive)."),
    until: str | None = typer.Option(None, help="Before this time (ISO 8601, exclusive)."),
    actor: str | None = typer.Option(None, help="Only this actor, e.g. cli:alice or a key."),
    action: str | None = typer.Option(None, help="Only this action, e.g. key.create."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file (default: standard output)."
    ),
) -> None:
    """Export audit records as JSON lines, in the order they were written. Times without
    an offset are read in the workspace time zone."""
    workspace, db = _open(ctx)
    filters = Filters(
        actor=actor,
        action=action,
        since=_time("--since", since, workspace),
        until=_time("--until", until, workspace),
    )
    try:
        if output is None:
            count = _write(db, filters, sys.stdout)
            sys.stdout.flush()
        else:
            with open(output, "w", encoding="utf-8") as handle:
                count = _write(db, filters, handle)
    finally:
        db.dispose()
    err.print(f"exported {count} audit records" + (f" to {output}" if output else ""))


def _time(option: str, value: str | None, workspace: Workspace) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value, workspace.timezone)
    except ValueError as exc:
        raise ValidationFailed(f"{option}: {exc}") from None


def _write(db: Database, filters: Filters, handle: IO[str]) -> int:
    count = 0
    for record in export(db, filters):
        handle.write(orjson.dumps(record).decode() + "\n")
        count += 1
    return count


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="audit", help="Verify and export the tamper-evident audit log.")
