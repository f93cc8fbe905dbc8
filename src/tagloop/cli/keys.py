"""``tagloop keys create|list|revoke``."""

from __future__ import annotations

import typer
from rich.table import Table

from tagloop import audit
from tagloop.api.permissions import PII_READ, assignable, check_roles
from tagloop.api.render import ts
from tagloop.audit import identities
from tagloop.cli.context import workspace_dir
from tagloop.cli.output import err, out
from tagloop.errors import NotFound, ValidationFailed
from tagloop.store import keys as key_store
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.timeutil import now_us, parse_duration
from tagloop.workspace import Workspace, load_workspace

app = typer.Typer(no_args_is_help=True)


def _db(ctx: typer.Context) -> Database:
    db = Database(load_workspace(workspace_dir(ctx)).database_url)
    upgrade(db)
    return db


def roles_and_types(
    workspace: Workspace, roles: list[str], pii: bool, entity_types: list[str]
) -> tuple[list[str], list[str] | None]:
    """Checked ``--role`` (plus ``pii:read`` for ``--pii``) and ``--entity-type`` values
    (shared with ``tagloop users``)."""
    try:
        checked = check_roles([*roles, PII_READ] if pii else roles)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    for name in entity_types:
        if name not in workspace.dictionary:
            raise ValidationFailed(f"--entity-type: {workspace.dictionary.unknown(name)}")
    return checked, sorted(set(entity_types)) or None


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="What the key is for, e.g. 'erp-sync'."),
    role: list[str] = typer.Option(
        ..., "--role", "-r", help=f"One of {', '.join(assignable())} (repeatable)."
    ),
    entity_type: list[str] = typer.Option(
        [], "--entity-type", "-e", help="Restrict the key to this entity type (repeatable)."
    ),
    pii: bool = typer.Option(False, "--pii", help="Let the key read PII fields unmasked."),
    expires: str | None = typer.Option(None, help="Lifetime such as 90d; default: none."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the key."),
) -> None:
    """Create an API key. The key is printed once and stored only as a hash."""
    workspace = load_workspace(workspace_dir(ctx))
    roles, types = roles_and_types(workspace, role, pii, entity_type)
    try:
        expires_at = now_us() + parse_duration(expires) if expires else None
    except ValueError as exc:
        raise ValidationFailed(f"--expires: {exc}") from exc
    db = Database(workspace.database_url)
    upgrade(db)
    with db.write() as conn:
        key = identities.create_key(
            db, conn, audit.Actor.cli(), name, roles, now_us(), expires_at, entity_types=types
        )
    if quiet:
        print(key.secret)
        return
    out.print(key.secret, markup=False)
    err.print(
        f"key {key.prefix}… for {key.name!r} with roles {', '.join(roles)}"
        + (f" for {', '.join(types)} only" if types else "")
        + ": shown once, store it now"
    )


@app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List keys (prefix, name, roles, entity types, state); never the keys themselves."""
    db = _db(ctx)
    with db.read() as conn:
        rows = key_store.listing(conn)
    table = Table("prefix", "name", "roles", "entity types", "created", "expires", "state")
    now = now_us()
    for row in rows:
        state = (
            "revoked"
            if row.revoked_at
            else ("expired" if row.expires_at and row.expires_at <= now else "active")
        )
        table.add_row(
            row.prefix,
            row.name,
            ", ".join(row.roles),
            ", ".join(row.entity_types) if row.entity_types is not None else "all",
            ts(row.created_at),
            ts(row.expires_at) or "-",
            state,
        )
    out.print(table)


@app.command()
def revoke(ctx: typer.Context, prefix: str = typer.Argument(..., help="Key prefix or id.")) -> None:
    """Revoke a key; it stops working at once."""
    db = _db(ctx)
    with db.write() as conn:
        identities.revoke_key(db, conn, audit.Actor.cli(), prefix, now_us())
    out.print(f"revoked {prefix}")


@app.command()
def limit(
    ctx: typer.Context,
    prefix: str = typer.Argument(..., help="Key prefix or id."),
    rate: float | None = typer.Option(None, help="Requests per second for this key."),
    burst: int | None = typer.Option(None, help="Requests at once before the rate applies."),
) -> None:
    """Give a key its own rate limit over its roles' (neither option: back to the roles').
    Running servers apply it within 10 seconds."""
    db = _db(ctx)
    with db.write() as conn:
        keys = key_store.active(conn, prefix)
        if not keys:
            raise NotFound(f"no active key with prefix or id {prefix!r}")
        key_store.set_limits(conn, prefix, rate, burst)
        after = {k: v for k, v in (("rate", rate), ("burst", burst)) if v is not None} or None
        for key in keys:
            audit.record(
                db,
                conn,
                actor=audit.Actor.cli(),
                action="key.limit",
                target_type="key",
                target_id=key.id,
                before={"name": key.name, "prefix": key.prefix, "limits": key.limits},
                after={"name": key.name, "prefix": key.prefix, "limits": after},
            )
    out.print(f"{prefix}: " + (f"{after}" if after else "the limits of its roles"))
