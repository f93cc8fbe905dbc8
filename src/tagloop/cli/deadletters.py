"""``tagloop deadletters list|show|replay``: records that did not become events."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from tagloop.cli.context import open_runtime
from tagloop.cli.output import err, json_text, out
from tagloop.errors import NotFound
from tagloop.sources.replay import replay as replay_letters
from tagloop.store import deadletters as store
from tagloop.timeutil import iso

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_letters(
    ctx: typer.Context,
    source: str | None = typer.Option(None, help="Only this source."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Newest first, at most this many."),
    replayed: bool = typer.Option(False, "--replayed", help="Include replayed letters."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the payloads)."),
) -> None:
    """Dead letters, newest first: number, source, where the record was, why."""
    rt = open_runtime(ctx)
    with rt.db.read() as conn:
        rows = store.listing(conn, source, limit=limit, replayed=replayed)
    if as_json:
        print(json_text([_letter(row) for row in rows]))
        return
    table = Table("#", "source", "where", "received", "error", "replayed")
    for row in rows:
        table.add_row(
            str(row.seq),
            row.source,
            row.location,
            iso(row.received_at),
            row.error,
            iso(row.replayed_at) if row.replayed_at else "",
        )
    out.print(table)


def _letter(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "source": row.source,
        "stream": row.stream,
        "location": row.location,
        "received_at": iso(row.received_at),
        "error": row.error,
        "replayed_at": iso(row.replayed_at) if row.replayed_at else None,
        "payload": row.payload,
        "record": row.record,
    }


@app.command()
def show(ctx: typer.Context, seq: int = typer.Argument(..., help="The letter's number.")) -> None:
    """One dead letter in full: the raw payload as received, the parsed record, the error."""
    rt = open_runtime(ctx)
    with rt.db.read() as conn:
        row = store.get(conn, seq)
    if row is None:
        raise NotFound(f"no dead letter numbered {seq}")
    for label, value in (
        ("source", row.source),
        ("stream", row.stream or ""),
        ("where", row.location),
        ("received", iso(row.received_at)),
        ("error", row.error),
        ("replayed", iso(row.replayed_at) if row.replayed_at else "no"),
    ):
        out.print(f"{label:>9}: {value}", markup=False)
    out.print("  payload:", markup=False)
    out.print(row.payload, markup=False)


@app.command()
def replay(
    ctx: typer.Context,
    seqs: list[int] = typer.Argument(None, help="Letters to replay (default: all pending)."),
    source: str | None = typer.Option(None, help="Only the letters of this source."),
) -> None:
    """Map dead letters again with the current workspace (after fixing a mapping or the
    dictionary) and store those that now pass. Those that fail again stay, with the new
    reason. Exit 1 if any failed again."""
    rt = open_runtime(ctx)
    report = replay_letters(rt, source=source, seqs=seqs or None)
    out.print(
        f"replayed {report.replayed} dead letters ({report.written} new events); "
        f"{report.failed} failed again"
    )
    for name, count in report.skipped.items():
        err.print(
            f"  {count} letters of {name!r} skipped: no such source in the workspace, or the "
            "payload is not a record (fix it at the source and read it again)",
            markup=False,
        )
    for sample in report.samples:
        err.print(f"  {sample}", markup=False)
    if report.failed:
        raise typer.Exit(1)


def register(parent: typer.Typer) -> None:
    parent.add_typer(
        app, name="deadletters", help="List, inspect and replay records that were rejected."
    )
