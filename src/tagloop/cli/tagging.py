"""``tagloop tags`` (list, import), ``tagloop recompute`` and ``tagloop explain``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from tagloop.audit import Actor
from tagloop.cli.context import open_runtime
from tagloop.cli.output import err, json_text, out, plain, rejections, why
from tagloop.engine import batch, duck, imports
from tagloop.engine.explain import explain as explain_tag
from tagloop.errors import NotFound, ValidationFailed
from tagloop.names import suggest
from tagloop.rules.sql.dialects import DIALECTS
from tagloop.runtime import Runtime
from tagloop.sources import files
from tagloop.store import identities as identity_store
from tagloop.store import tags as tag_store
from tagloop.timeutil import parse_time, time_text

tags_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@tags_app.callback()
def list_tags(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List tag definitions with their version and how many entities hold them."""
    if ctx.invoked_subcommand is not None:
        return
    rt = open_runtime(ctx)
    try:
        with rt.db.read() as conn:
            counts = tag_store.counts(conn)
    finally:
        rt.close()
    rows = [
        {
            "name": t.name,
            "entity": t.definition.entity,
            "kind": t.definition.spec.kind,
            "version": t.version,
            "count": counts.get(t.name, 0),
            "category": " > ".join(t.definition.spec.category),
            "rule": t.definition.spec.rule or t.definition.spec.value or "",
        }
        for t in rt.active
    ]
    if as_json:
        print(json_text(rows))
        return
    columns = ("name", "entity", "kind", "version", "count", "category", "rule")
    table = Table(*columns)
    for r in rows:
        table.add_row(*(str(r[k]) for k in columns))
    out.print(table)


@tags_app.command("import")
def import_tag(
    ctx: typer.Context,
    tag: str = typer.Argument(..., help="An imported tag (kind: imported)."),
    file: Path = typer.Argument(..., help="CSV or JSONL of entity id and value (.gz ok)."),
    id_column: str = typer.Option("id", help="Column holding the entity id."),
    value_column: str = typer.Option("value", help="Column holding the value."),
    mode: str = typer.Option(
        "replace", help="replace: entities not in the file lose the tag; merge: keep them."
    ),
    valid_for: str | None = typer.Option(
        None, help="How long the values hold, e.g. 30d (default: the tag's valid_for)."
    ),
    delimiter: str | None = typer.Option(None, help="CSV delimiter (default ,)."),
    encoding: str = typer.Option("utf-8", help="Text encoding, e.g. gb18030."),
) -> None:
    """Upload the values of an imported tag. Bad lines are reported with file:line and
    skipped; the rest is applied. Exit code 1 if any line was rejected."""
    if mode not in ("replace", "merge"):
        raise ValidationFailed(f"--mode must be replace or merge, not {mode!r}")
    rt = open_runtime(ctx)
    try:
        active = imports.imported_tag(rt.active, tag)
        fmt = files.detect_format(file)
        if fmt == "parquet":
            records = files.read(file, fmt)
        else:
            records = files.read(file, fmt, delimiter=delimiter, encoding=encoding)
        report = imports.ImportReport()
        values = imports.parse(
            active,
            records,
            report,
            where=str(file),
            id_column=id_column,
            value_column=value_column,
            text=fmt == "csv",
        )
        imports.apply(
            rt.db,
            rt.engine,
            active,
            values,
            report,
            where=str(file),
            now=rt.clock(),
            mode="merge" if mode == "merge" else "replace",
            valid_for=valid_for,
            actor=Actor.cli(),
            flows=rt.ingestor,
        )
    finally:
        rt.close()
    valid = f", valid until {report.expires}" if report.expires else ""
    out.print(
        f"{file}: {report.read} records, {report.assigned} assigned, {report.changed} changed, "
        f"{report.unchanged} unchanged, {report.removed} removed, {report.rejected} rejected"
        f"{valid}; {report.propagated} changes of tags reading {tag!r}"
    )
    rejections(report.samples, report.rejected)
    if report.rejected:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags", help="List tags; upload imported tag values.")

    @app.command()
    def recompute(
        ctx: typer.Context,
        tag: list[str] = typer.Option([], "--tag", help="Tag(s) to recompute (default: all)."),
        as_of: str | None = typer.Option(
            None, "--as-of", help="Evaluate at this time instead of now; reports, never writes."
        ),
        engine: str = typer.Option("store", help="store (the workspace database) or duckdb."),
        output: Path | None = typer.Option(
            None, "--output", help="Also write every entity's values to this JSONL file."
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Compute, but do not write."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Recompute tags for every entity in batch, as SQL inside the database."""
        if engine not in ("store", "duckdb"):
            raise ValidationFailed(f"--engine must be store or duckdb, not {engine!r}")
        rt = open_runtime(ctx)
        try:
            report, seconds, now = _recompute(rt, tag, as_of, engine, output, dry_run)
        finally:
            rt.close()
        body = {
            "as_of": time_text(now),
            "engine": engine,
            "seconds": round(seconds, 3),
            "entities": report.entities,
            "changes": report.changes,
            "holders": report.by_tag,
            "streamed": report.streamed,
        }
        if as_json:
            print(json_text(body))
            return
        out.print(
            f"recomputed {len(report.by_tag)} tags over {report.entities} entities as of "
            f"{body['as_of']} on {engine} in {seconds:.2f}s: {report.changes} changes"
            + (" (not written)" if dry_run or as_of else "")
        )
        for name, why_streamed in sorted(report.streamed.items()):
            err.print(
                f"  {name}: not expressible in SQL ({why_streamed}); "
                + (
                    "computed entity by entity"
                    if name in report.by_tag
                    else "skipped: only computed at the present time"
                ),
                markup=False,
            )

    @app.command()
    def explain(
        ctx: typer.Context,
        entity_type: str = typer.Argument(..., metavar="TYPE"),
        entity_id: str = typer.Argument(..., metavar="ID"),
        tag: str = typer.Argument(..., metavar="TAG"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON, as the API does."),
    ) -> None:
        """Why an entity has a tag, or has not: its evidence, and the rule's values now."""
        rt = open_runtime(ctx)
        try:
            if entity_type not in rt.workspace.dictionary:
                raise NotFound(rt.workspace.dictionary.unknown(entity_type))
            with rt.db.read() as conn:
                entity_id = identity_store.resolve(conn, entity_type, entity_id)
            body = explain_tag(rt.db, rt.engine, rt.active, entity_type, entity_id, tag)
        finally:
            rt.close()
        if as_json:
            print(json_text(body))
            return
        _print_explanation(body)


def _recompute(
    rt: Runtime,
    names: list[str],
    as_of: str | None,
    engine: str,
    output: Path | None,
    dry_run: bool,
) -> tuple[batch.Report, float, int]:
    known = {t.name for t in rt.active}
    for name in names:
        if name not in known:
            raise NotFound(f"unknown tag {name!r}" + suggest(name, known))
    wanted = names or [t.name for t in rt.active if t.computed]
    try:
        now = parse_time(as_of, rt.workspace.timezone) if as_of else rt.clock()
    except ValueError as exc:
        raise ValidationFailed(f"--as-of: {exc}") from None
    started = time.perf_counter()
    fetch, dialect = None, None
    if engine == "duckdb":
        fetch, dialect = duck.fetcher(duck.load(rt.db)), DIALECTS["duckdb"]
    report = batch.recompute(
        rt.db,
        rt.engine,
        rt.active,
        wanted,
        now,
        fetch=fetch,
        dialect=dialect,
        write=not (dry_run or as_of),
        keep=output is not None,
    )
    seconds = time.perf_counter() - started
    if output is not None:
        with output.open("wb") as handle:
            for entity_type, results in report.results.items():
                for entity_id, values in results.items():
                    for name, result in values.items():
                        if name in wanted and result.held:
                            handle.write(
                                orjson.dumps(
                                    {
                                        "entity": {"type": entity_type, "id": entity_id},
                                        "tag": name,
                                        "value": result.value,
                                        "evidence": result.evidence,
                                    }
                                )
                                + b"\n"
                            )
    return report, seconds, now


def _print_explanation(body: dict[str, Any]) -> None:
    entity = body["entity"]
    out.print(
        f"[bold]{entity['type']} {entity['id']}[/] · tag [bold]{body['tag']}[/] "
        f"(v{body['version']}, {body['kind']}, defined at {body['defined_at']})"
    )
    if body["rule"]:
        out.print(f"  rule:  {body['rule']}", markup=False)
    if body["value"]:
        out.print(f"  value: {body['value']}", markup=False)
    stored = body["assignment"]
    if stored is None:
        out.print("  stored: not held")
    else:
        out.print(
            f"  stored: held since {stored['since']} = {plain(stored['value'])} "
            f"(source {stored['source']})",
            markup=False,
        )
        if stored["expires_at"]:
            out.print(f"          valid until {stored['expires_at']}", markup=False)
        out.print(f"  why (when assigned): {why(stored['evidence'])}", markup=False)
    now = body["now"]
    state = f"held = {plain(now['value'])}" if now["held"] else "not held"
    out.print(f"  now ({now['at']}): {state}", markup=False)
    for text, value in now["values"].items():
        out.print(f"    {text} = {plain(value)}", markup=False)
