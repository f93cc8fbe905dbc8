"""``tagloop reviews``: the review queue, decisions, pins and error rates from the command
line (docs/reviews.md). The command line has the database's rights: decisions are
recorded (and audited) as ``cli:<operating-system user>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import typer
from rich.table import Table

from tagloop.audit import Actor
from tagloop.cli.context import open_runtime
from tagloop.cli.output import json_text, out, plain, why
from tagloop.errors import ValidationFailed
from tagloop.review import decisions, pins, queue, rates
from tagloop.runtime import Runtime

app = typer.Typer(no_args_is_help=True)

STATUS_HELP = "pending (default), approved, rejected, overridden, superseded, withdrawn or all."


def _value(text: str | None) -> Any:
    """A value given on the command line: JSON (``true``, ``3``, ``"A"``, ``[1, 2]``), or
    else the text itself."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _filters(
    rt: Runtime,
    ids: list[int],
    status: str | None,
    tag: str | None,
    entity_type: str | None,
    older_than: str | None,
    newer_than: str | None,
) -> Any:
    return queue.filters(
        rt.workspace,
        now=rt.clock(),
        status=None if status == "all" else status,
        tag=tag,
        entity_type=entity_type,
        older_than=older_than,
        newer_than=newer_than,
        ids=ids or None,
    )


@app.command("list")
def list_items(
    ctx: typer.Context,
    status: str = typer.Option("pending", "--status", help=STATUS_HELP),
    tag: str | None = typer.Option(None, "--tag", help="Only this tag."),
    entity_type: str | None = typer.Option(None, "--entity-type", help="Only this type."),
    older_than: str | None = typer.Option(None, "--older-than", help="Waiting longer, e.g. 2d."),
    newer_than: str | None = typer.Option(None, "--newer-than", help="Waiting less, e.g. 1h."),
    after: int | None = typer.Option(None, "--after", help="The 'next' of a previous page."),
    limit: int = typer.Option(50, min=1, max=queue.MAX_PAGE, help="Items per page."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON, as the API does."),
) -> None:
    """The queue, oldest first: entity, tag, proposed value, confidence, policy, age."""
    rt = open_runtime(ctx)
    try:
        chosen = _filters(rt, [], status, tag, entity_type, older_than, newer_than)
        body = queue.page(rt.db, chosen, now=rt.clock(), after=after, limit=limit)
    finally:
        rt.close()
    if as_json:
        print(json_text(body))
        return
    columns = ("value", "confidence", "policy", "status", "waiting")
    out.print(_table(body["items"], "#", columns, _item_cells))
    more = f"; next page: --after {body['next']}" if body["next"] is not None else ""
    out.print(f"{len(body['items'])} of {body['total']} items{more}")


def _table(
    items: list[dict[str, Any]],
    number: str,
    columns: tuple[str, ...],
    cells: Callable[[dict[str, Any]], list[str]],
) -> Table:
    """Review items and pins alike: their number, entity and tag, then ``columns`` as
    ``cells`` gives them."""
    table = Table(number, "entity", "tag", *columns)
    for item in items:
        entity = item["entity"]
        table.add_row(
            str(item["id"]), f"{entity['type']}/{entity['id']}", item["tag"], *cells(item)
        )
    return table


def _item_cells(item: dict[str, Any]) -> list[str]:
    confidence = item["confidence"]
    return [
        plain(item["value"]),
        "" if confidence is None else f"{confidence:.3f}",
        item["policy"],
        item["status"],
        _age(item["age_seconds"]),
    ]


def _pin_cells(pin: dict[str, Any]) -> list[str]:
    return [
        pin["mode"],
        plain(pin["value"]),
        pin["created_by"],
        pin["expires_at"] or "",
        pin["reason"] or "",
    ]


def _age(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@app.command("show")
def show(
    ctx: typer.Context,
    item_id: int = typer.Argument(..., metavar="ID", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON, as the API does."),
) -> None:
    """One item: the proposal, its evidence, the entity's attributes and pins."""
    rt = open_runtime(ctx)
    try:
        body = queue.show(rt.db, item_id, now=rt.clock())
    finally:
        rt.close()
    if as_json:
        print(json_text(body))
        return
    entity = body["entity"]
    out.print(
        f"[bold]review {body['id']}[/] · {entity['type']} {entity['id']} · tag "
        f"[bold]{body['tag']}[/] = {plain(body['value'])} ({body['status']}, policy "
        f"{body['policy']}, confidence {body['confidence']})"
    )
    out.print(f"  proposed {body['created_at']} by {body['source']}", markup=False)
    out.print(f"  evidence: {why(body['evidence'])}", markup=False)
    for item in body["contributions"] or []:
        out.print(f"    {item['feature']}: {item['contribution']:+.4f}", markup=False)
    if body["decision"] is not None:
        decision = body["decision"]
        reason = f" ({decision['reason']})" if decision["reason"] else ""
        out.print(f"  decided {decision['at']} by {decision['by']}{reason}", markup=False)
    for name, value in (body["attributes"] or {}).items():
        out.print(f"  {name} = {plain(value)}", markup=False)
    for pin in body["pins"]:
        out.print(f"  pinned ({pin['mode']}) by {pin['created_by']}, pin {pin['id']}")


def _decide(
    ctx: typer.Context,
    action: str,
    ids: list[int],
    tag: str | None,
    entity_type: str | None,
    older_than: str | None,
    every: bool,
    **extra: Any,
) -> None:
    if not ids and not (tag or entity_type or older_than or every):
        raise ValidationFailed(
            "name the items: IDs, or a filter (--tag, --entity-type, --older-than), or --all"
        )
    rt = open_runtime(ctx)
    try:
        chosen = _filters(rt, ids, "pending", tag, entity_type, older_than, None)
        outcome = decisions.decide(rt, chosen, action, Actor.cli(), single=len(ids) == 1, **extra)
    finally:
        rt.close()
    verb = decisions.STATUS[action]
    out.print(f"{len(outcome.decided)} {verb}" + _notes(outcome))
    if outcome.stale and len(ids) == 1:
        raise typer.Exit(1)


def _notes(outcome: decisions.Outcome) -> str:
    parts = []
    if outcome.stale:
        parts.append(f"{len(outcome.stale)} stale (their assignment changed; withdrawn)")
    if outcome.skipped:
        parts.append(f"{len(outcome.skipped)} no longer pending")
    if outcome.propagated:
        parts.append(f"{outcome.propagated} changes of tags reading them")
    return f"; {', '.join(parts)}" if parts else ""


IDS = typer.Argument(None, metavar="[ID]...", help="Items to decide (or use a filter).")
TAG = typer.Option(None, "--tag", help="Every pending item of this tag.")
TYPE = typer.Option(None, "--entity-type", help="Every pending item of this entity type.")
OLDER = typer.Option(None, "--older-than", help="Every pending item waiting longer, e.g. 2d.")
ALL = typer.Option(False, "--all", help="Every pending item.")
NOTE = typer.Option(None, "--note", help="A remark kept with the decision.")


@app.command("approve")
def approve(
    ctx: typer.Context,
    ids: list[int] | None = IDS,
    tag: str | None = TAG,
    entity_type: str | None = TYPE,
    older_than: str | None = OLDER,
    every: bool = ALL,
    note: str | None = NOTE,
) -> None:
    """Approve proposals: they apply. Audited (review.approve)."""
    _decide(ctx, "approve", ids or [], tag, entity_type, older_than, every, note=note)


@app.command("reject")
def reject(
    ctx: typer.Context,
    ids: list[int] | None = IDS,
    reason: str = typer.Option(..., "--reason", help="One of reviews.reasons (tagloop.yaml)."),
    tag: str | None = TAG,
    entity_type: str | None = TYPE,
    older_than: str | None = OLDER,
    every: bool = ALL,
    note: str | None = NOTE,
) -> None:
    """Reject proposals with a reason: they stay off. Audited (review.reject)."""
    _decide(ctx, "reject", ids or [], tag, entity_type, older_than, every, reason=reason, note=note)


@app.command("override")
def override(
    ctx: typer.Context,
    ids: list[int] | None = IDS,
    value: str = typer.Option(..., "--value", help="The value instead (JSON, or text)."),
    tag: str | None = TAG,
    entity_type: str | None = TYPE,
    older_than: str | None = OLDER,
    every: bool = ALL,
    note: str | None = NOTE,
) -> None:
    """Apply another value instead, as a pin (false: keep it off). Audited (review.override)."""
    _decide(
        ctx,
        "override",
        ids or [],
        tag,
        entity_type,
        older_than,
        every,
        value=_value(value),
        note=note,
    )


@app.command("pin")
def pin(
    ctx: typer.Context,
    entity_type: str = typer.Argument(..., metavar="TYPE"),
    entity_id: str = typer.Argument(..., metavar="ID"),
    tag: str = typer.Argument(..., metavar="TAG"),
    value: str | None = typer.Option(None, "--value", help="The value (JSON, or text)."),
    exclude: bool = typer.Option(False, "--exclude", help="Keep the tag off instead."),
    expires: str | None = typer.Option(None, "--expires", help="Lifted after, e.g. 30d."),
    reason: str | None = typer.Option(None, "--reason", help="Why, kept with the pin."),
) -> None:
    """Pin an entity's tag on or off (--exclude) until unpinned or expired. Audited."""
    rt = open_runtime(ctx)
    try:
        body = pins.place(
            rt,
            entity_type,
            entity_id,
            tag,
            mode="exclude" if exclude else "include",
            actor=Actor.cli(),
            value=_value(value),
            expires=expires,
            reason=reason,
        )
    finally:
        rt.close()
    state = "off" if exclude else f"= {plain(body['value'])}"
    until = f" until {body['expires_at']}" if body["expires_at"] else ""
    out.print(f"pin {body['id']}: {entity_type} {entity_id} · {tag} {state}{until}")


@app.command("unpin")
def unpin(
    ctx: typer.Context,
    pin_id: int = typer.Argument(..., metavar="PIN", min=1),
) -> None:
    """Lift a pin: the rule's proposal applies again. Audited (review.unpin)."""
    rt = open_runtime(ctx)
    try:
        body = pins.lift(rt, pin_id, Actor.cli())
    finally:
        rt.close()
    entity = body["entity"]
    out.print(f"pin {pin_id} lifted: {entity['type']} {entity['id']} · {body['tag']}")


@app.command("pins")
def list_pins(
    ctx: typer.Context,
    tag: str | None = typer.Option(None, "--tag", help="Only this tag."),
    entity_type: str | None = typer.Option(None, "--entity-type", help="Only this type."),
    limit: int = typer.Option(100, min=1, max=1000, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON, as the API does."),
) -> None:
    """Live pins (neither lifted nor expired), oldest first."""
    rt = open_runtime(ctx)
    try:
        body = pins.listing(rt, tag=tag, entity_type=entity_type, limit=limit)
    finally:
        rt.close()
    if as_json:
        print(json_text(body))
        return
    columns = ("mode", "value", "by", "expires", "reason")
    out.print(_table(body["items"], "pin", columns, _pin_cells))


@app.command("error-rates")
def error_rates(
    ctx: typer.Context,
    tag: str | None = typer.Option(None, "--tag", help="Only this tag."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON, as the API does."),
) -> None:
    """Per tag and per week: reviewed, rejected, overridden and the error rate."""
    rt = open_runtime(ctx)
    try:
        if tag is not None:
            queue.filters(rt.workspace, now=rt.clock(), tag=tag)  # 404 for an unknown tag
        items = rates.error_rates(rt.db, rt.workspace.timezone, tag=tag)
    finally:
        rt.close()
    if as_json:
        print(json_text({"items": items}))
        return
    table = Table("tag", "week", "reviewed", "approved", "rejected", "overridden", "error rate")
    for item in items:
        for row in [*item["weeks"], {**item, "week": "all"}]:
            share = row["error_rate"]
            table.add_row(
                item["tag"],
                row["week"],
                *(str(row[k]) for k in ("reviewed", "approved", "rejected", "overridden")),
                "" if share is None else f"{share:.1%}",
            )
    out.print(table)


def register(parent: typer.Typer) -> None:
    parent.add_typer(
        app, name="reviews", help="The review queue: approve, reject, override, pin, rates."
    )
