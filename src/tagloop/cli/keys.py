"""``tagloop keys create|list|revoke``."""

from __future__ import annotations

import typer
from rich.table import Table

from tagloop.api.auth import ROLES
from tagloop.api.render import ts
from tagloop.cli.context import workspace_dir
from tagloop.cli.output import err, out
from tagloop.errors import NotFound, ValidationFailed
from tagloop.store import keys as key_store
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.timeutil import now_us, parse_duration
from tagloop.workspace import load_workspace

app = typer.Typer(no_args_is_help=True)


def _db(ctx: typer.Context) -> Database:
    db = Database(load_workspace(workspace_dir(ctx)).database_url)
    upgrade(db)
    return db


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="What the key is for, e.g. 'erp-sync'."),
    role: list[str] = typer.Option(..., "--role", "-r", help=f"One of {', '.join(ROLES)}."),
    expires: str | None = typer.Option(None, help="Lifetime such as 90d; default: none."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the key."),
) -> None:
    """Create an API key. The key is printed once and stored only as a hash."""
    unknown = [r for r in role if r not in ROLES]
    if unknown:
        raise ValidationFailed(f"unknown role(s) {unknown}; roles: {', '.join(ROLES)}")
    try:
        expires_at = now_us() + parse_duration(expires) if expires else None
    except ValueError as exc:
        raise ValidationFailed(f"--expires: {exc}") from exc
    db = _db(ctx)
    with db.write() as conn:
        key = key_store.create(conn, name, list(role), now_us(), expires_at)
    if quiet:
        print(key.secret)
        return
    out.print(key.secret, markup=False)
    err.print(
        f"key {key.prefix}… for {name!r} with roles {', '.join(role)}: shown once, store it now"
    )


@app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List keys (prefix, name, roles, state); never the keys themselves."""
    db = _db(ctx)
    with db.read() as conn:
        rows = key_store.listing(conn)
    table = Table("prefix", "name", "roles", "created", "expires", "state")
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
        if not key_store.revoke(conn, prefix, now_us()):
            raise NotFound(f"no active key with prefix or id {prefix!r}")
    out.print(f"revoked {prefix}")
