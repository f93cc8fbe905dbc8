"""``tagloop ingest``, ``tagloop entity`` and ``tagloop tags``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import typer
from pydantic import ValidationError
from rich.table import Table

from tagloop.api.render import alias, assignment, entity, event
from tagloop.cli.context import open_runtime
from tagloop.cli.output import json_text, out, progress_bar, rejections, why
from tagloop.errors import NotFound, Problem, ValidationFailed
from tagloop.names import suggest
from tagloop.runtime import Runtime
from tagloop.sources.file_source import ingest_file
from tagloop.sources.files import detect_format
from tagloop.sources.mapping import RecordMapper
from tagloop.store import entities as entity_store
from tagloop.store import events as event_store
from tagloop.store import identities as identity_store
from tagloop.store import tags as tag_store
from tagloop.workspace.models import FileMapping


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, column = value.partition("=")
        if not sep or not name or not column:
            raise ValidationFailed(f"{option} expects name=column, got {value!r}")
        pairs[name] = column
    return pairs


def _mapping(rt: Runtime, source: str | None, options: dict[str, Any]) -> tuple[FileMapping, str]:
    given = {k: v for k, v in options.items() if v not in (None, [], {})}
    if source is not None:
        defn = rt.workspace.sources.get(source)
        if defn is None:
            raise NotFound(f"unknown source {source!r}" + suggest(source, rt.workspace.sources))
        if given:
            raise ValidationFailed("give either --source or mapping options, not both")
        if defn.kind != "file":
            raise ValidationFailed(
                f"source {source!r} is a {defn.kind} source; `tagloop ingest` reads files "
                f"(run it with `tagloop sources run {source}`)"
            )
        # The source's own name, as `tagloop sources run` uses: the same record read either
        # way gets the same event id.
        return defn.mappings[""], source
    try:
        return FileMapping.model_validate(given), "file:cli"
    except ValidationError as exc:
        problems = [
            Problem(
                "--" + ".".join(str(p) for p in e["loc"]).replace("_", "-"),
                str(e["msg"]).removeprefix("Value error, "),
            )
            for e in exc.errors()
        ]
        raise ValidationFailed("the mapping options are incomplete", problems) from exc


def register(app: typer.Typer) -> None:
    @app.command()
    def ingest(
        ctx: typer.Context,
        files: list[Path] = typer.Argument(..., help="CSV, JSONL or Parquet files (.gz ok)."),
        source: str | None = typer.Option(None, help="Use the mapping of sources/<name>.yaml."),
        type: str | None = typer.Option(None, "--type", help="Event type (a constant)."),
        type_field: str | None = typer.Option(None, help="Column holding the event type."),
        entity_type: str | None = typer.Option(None, help="Entity type of every record."),
        entity_id: str | None = typer.Option(None, help="Column holding the entity id."),
        id: list[str] = typer.Option([], "--id", help="Column(s) forming the event id."),
        time: str | None = typer.Option(None, help="Column holding the event time."),
        time_format: str | None = typer.Option(None, help="strptime format of --time."),
        timezone: str | None = typer.Option(None, help="Zone of times without an offset."),
        property: list[str] = typer.Option(
            [], "--property", help="name=column (default: every unmapped column)."
        ),
        attribute: list[str] = typer.Option(
            [], "--attribute", help="name=column of a profile attribute."
        ),
        related: list[str] = typer.Option([], "--related", help="entity_type=column."),
        format: str | None = typer.Option(None, "--format", help="csv, jsonl or parquet."),
        delimiter: str | None = typer.Option(None, help="CSV delimiter (default ,)."),
        encoding: str = typer.Option("utf-8", help="Text encoding, e.g. gb18030."),
        batch_size: int = typer.Option(5000, min=1, max=100_000, help="Events per commit."),
    ) -> None:
        """Load events from files. Bad records go to the dead-letter store with their
        file:line and reason; the rest is kept. Exit code 1 if any record was rejected."""
        rt = open_runtime(ctx)
        options: dict[str, Any] = {
            "type": type,
            "type_field": type_field,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "id": id,
            "time": time,
            "time_format": time_format,
            "timezone": timezone,
            "attributes": _pairs(attribute, "--attribute"),
            "related": _pairs(related, "--related"),
        }
        if property:
            options["properties"] = _pairs(property, "--property")
        mapping, source_name = _mapping(rt, source, options)
        defn = rt.workspace.sources.get(source) if source else None
        spec = defn.config if defn is not None else None
        for name in [mapping.entity_type, *mapping.related]:
            if name not in rt.workspace.dictionary:
                raise ValidationFailed(rt.workspace.dictionary.unknown(name))
        fmt = format or (spec.format if spec else None)
        if fmt not in (None, "csv", "jsonl", "parquet"):
            raise ValidationFailed(f"--format must be csv, jsonl or parquet, not {fmt!r}")
        rejected = 0
        try:
            for path in files:
                detected = fmt or detect_format(path)
                mapper = RecordMapper(
                    mapping,
                    source=source_name,
                    dictionary=rt.workspace.dictionary,
                    timezone=rt.workspace.timezone,
                    typed_input=detected == "csv",
                )
                with progress_bar(f"ingesting {path.name}") as bar:
                    advance = functools.partial(bar.advance, bar.task_ids[0])
                    stats = ingest_file(
                        rt,
                        path,
                        mapper,
                        fmt=detected,  # type: ignore[arg-type]
                        delimiter=delimiter or (spec.delimiter if spec else None),
                        encoding=encoding if not spec or encoding != "utf-8" else spec.encoding,
                        batch_size=batch_size,
                        progress=advance,
                    )
                out.print(
                    f"{path}: {stats.read} records, {stats.accepted} events stored, "
                    f"{stats.duplicates} duplicates, {stats.rejected} rejected "
                    f"(to dead letters), {stats.tag_changes} tag changes"
                )
                rejections(stats.samples, stats.rejected)
                rejected += stats.rejected
        finally:
            rt.close()
        if rejected:
            raise typer.Exit(1)

    @app.command("entity")
    def show_entity(
        ctx: typer.Context,
        entity_type: str = typer.Argument(..., metavar="TYPE"),
        entity_id: str = typer.Argument(..., metavar="ID"),
        events: int = typer.Option(10, min=0, max=1000, help="Recent events to show."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON, as the API does."),
    ) -> None:
        """Show an entity profile: attributes, tags with evidence, recent events."""
        rt = open_runtime(ctx)
        try:
            if entity_type not in rt.workspace.dictionary:
                raise NotFound(rt.workspace.dictionary.unknown(entity_type))
            with rt.db.read() as conn:
                row = entity_store.get(
                    conn, entity_type, identity_store.resolve(conn, entity_type, entity_id)
                )
                if row is None:
                    raise NotFound(f"no {entity_type} with id {entity_id!r}")
                entity_id = row.id  # the entity an alias names
                body = entity(row)
                body["tags"] = [
                    assignment(a) for a in tag_store.for_entity(conn, entity_type, entity_id)
                ]
                body["events"] = [
                    event(e) for e in event_store.recent(conn, entity_type, entity_id, events)
                ]
                body["aliases"] = [
                    alias(a) for a in identity_store.aliases_of(conn, entity_type, entity_id)
                ]
        finally:
            rt.close()
        if as_json:
            print(json_text(body))
            return
        _print_entity(body)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _print_entity(body: dict[str, Any]) -> None:
    out.print(
        f"[bold]{body['type']} {body['id']}[/]  events: {body['event_count']}  "
        f"first seen {body['first_seen']}  last seen {body['last_seen']}"
    )
    if body["aliases"]:
        out.print(
            "also known as: " + ", ".join(f"{a['id']} ({a['field']})" for a in body["aliases"])
        )
    attrs = _table("attributes", "attribute", "value")
    for name, value in sorted(body["attributes"].items()):
        attrs.add_row(name, value if isinstance(value, str) else orjson.dumps(value).decode())
    out.print(attrs)
    tags = _table("tags", "tag", "value", "since", "source", "why")
    for tag in body["tags"]:
        tags.add_row(
            tag["tag"],
            orjson.dumps(tag["value"]).decode(),
            tag["since"],
            tag["source"],
            why(tag["evidence"]),
        )
    out.print(tags)
    events = _table("recent events", "time", "type", "id", "properties")
    for ev in body["events"]:
        events.add_row(ev["time"], ev["type"], ev["id"], orjson.dumps(ev["properties"]).decode())
    out.print(events)
