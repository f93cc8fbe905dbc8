"""``tagloop work-orders list|set``: the work orders flows created, for the people who do
them."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from tagloop.api import flow_render
from tagloop.audit import Actor
from tagloop.cli.context import open_runtime
from tagloop.cli.output import json_text, out
from tagloop.errors import ValidationFailed
from tagloop.names import suggest
from tagloop.store import work_orders as store

app = typer.Typer(no_args_is_help=True)


def _status(value: str | None) -> str | None:
    if value is not None and value not in store.STATUSES:
        raise ValidationFailed(
            f"unknown status {value!r}{suggest(value, store.STATUSES)}; "
            f"statuses: {', '.join(store.STATUSES)}"
        )
    return value


STATUS_HELP = f"One of: {', '.join(store.STATUSES)}."


@app.command("list")
def list_orders(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help=f"Only this status. {STATUS_HELP}"),
    assignee: str | None = typer.Option(None, "--assignee", help="Only those assigned so."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Newest first, at most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Work orders, newest first: status, assignee, due time, the entity and the flow."""
    rt = open_runtime(ctx)
    with rt.db.read() as conn:
        rows = store.work_order_list(conn, status=_status(status), assignee=assignee, limit=limit)
    views = [flow_render.work_order(row) for row in rows]
    if as_json:
        print(json_text(views))
        return
    table = Table("#", "title", "status", "priority", "assignee", "due", "entity", "flow")
    table.columns[0].no_wrap = True
    for view in views:
        table.add_row(*_cells(view))
    out.print(table)


def _cells(view: dict[str, Any]) -> list[str]:
    entity = view["entity"]
    return [
        str(view["id"]),
        view["title"],
        view["status"],
        view["priority"],
        view["assignee"] or "",
        view["due_at"] or "",
        f"{entity['type']}/{entity['id']}",
        view["flow"] or "",
    ]


@app.command("set")
def set_order(
    ctx: typer.Context,
    order_id: int = typer.Argument(..., metavar="ID", min=1, help="The work order's number."),
    status: str | None = typer.Option(None, "--status", help=f"The new status. {STATUS_HELP}"),
    assignee: str | None = typer.Option(None, "--assignee", help="Who should do it now."),
    unassign: bool = typer.Option(False, "--unassign", help="Nobody is assigned any more."),
) -> None:
    """Change a work order's status and/or assignee. Audited (``work_order.update``)."""
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = _status(status)
    if assignee is not None and unassign:
        raise ValidationFailed("give --assignee or --unassign, not both")
    if assignee is not None:
        if not assignee.strip():
            raise ValidationFailed("--assignee: give a name (or --unassign)")
        changes["assignee"] = assignee
    if unassign:
        changes["assignee"] = None
    if not changes:
        raise ValidationFailed("nothing to change: give --status, --assignee or --unassign")
    rt = open_runtime(ctx)
    row = store.update_work_order(rt.db, order_id, changes, rt.clock(), Actor.cli())
    view = flow_render.work_order(row)
    assigned = f", assigned to {view['assignee']}" if view["assignee"] else ", unassigned"
    out.print(f"work order {view['id']} ({view['title']}): {view['status']}{assigned}")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="work-orders", help="List and update the work orders of flows.")
