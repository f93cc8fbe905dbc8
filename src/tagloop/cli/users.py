"""``tagloop users add|list|disable|passwd``: people who sign in to the web UI."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from tagloop import audit
from tagloop.api.permissions import assignable
from tagloop.api.render import ts
from tagloop.audit import identities
from tagloop.cli.context import workspace_dir
from tagloop.cli.keys import roles_and_types
from tagloop.cli.output import err, out
from tagloop.errors import NotFound, ValidationFailed
from tagloop.store import users as user_store
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.timeutil import now_us
from tagloop.workspace import Workspace, load_workspace

app = typer.Typer(no_args_is_help=True)

PASSWORD_STDIN = typer.Option(
    False,
    "--password-stdin",
    help="Read the password from standard input (default: generate one and print it once).",
)


def _open(ctx: typer.Context) -> tuple[Workspace, Database]:
    workspace = load_workspace(workspace_dir(ctx))
    db = Database(workspace.database_url)
    upgrade(db)
    return workspace, db


def _password(from_stdin: bool) -> tuple[str, bool]:
    """The password and whether it was generated (and so must be shown)."""
    if not from_stdin:
        return user_store.random_password(), True
    # One line, as `echo secret | tagloop users add ...` or a secret manager pipes it.
    text = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not text:
        raise ValidationFailed("--password-stdin: standard input holds no password")
    return user_store.check_password(text), False


def _show(username: str, password: str) -> None:
    out.print(password, markup=False)
    err.print(f"password of {username!r}: shown once, store it now", markup=False)


@app.command()
def add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="The name to sign in with."),
    role: list[str] = typer.Option(
        ..., "--role", "-r", help=f"One of {', '.join(assignable())} (repeatable)."
    ),
    entity_type: list[str] = typer.Option(
        [], "--entity-type", "-e", help="Restrict the user to this entity type (repeatable)."
    ),
    pii: bool = typer.Option(False, "--pii", help="Let the user read PII fields unmasked."),
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Add a user of the web UI; the password is stored only as an argon2 hash."""
    workspace, db = _open(ctx)
    roles, types = roles_and_types(workspace, role, pii, entity_type)
    password, generated = _password(password_stdin)
    with db.write() as conn:
        user = identities.create_user(
            db, conn, audit.Actor.cli(), username, password, roles, now_us(), types
        )
    if generated:
        _show(user.username, password)
    else:
        err.print(f"added user {user.username!r} with roles {', '.join(roles)}", markup=False)


@app.command("list")
def list_users(ctx: typer.Context) -> None:
    """List users (name, roles, entity types, state); never passwords."""
    _, db = _open(ctx)
    with db.read() as conn:
        rows = user_store.listing(conn)
    table = Table("username", "roles", "entity types", "created", "state")
    now = now_us()
    for row in rows:
        state = "active"
        if row.disabled_at is not None:
            state = "disabled"
        elif row.locked_until is not None and row.locked_until > now:
            state = f"locked until {ts(row.locked_until)}"
        table.add_row(
            row.username,
            ", ".join(row.roles),
            ", ".join(row.entity_types) if row.entity_types is not None else "all",
            ts(row.created_at),
            state,
        )
    out.print(table)


@app.command()
def disable(ctx: typer.Context, username: str = typer.Argument(...)) -> None:
    """Disable a user; its sessions end at once."""
    _, db = _open(ctx)
    now = now_us()
    with db.write() as conn:
        row = user_store.disable(conn, username, now)
        if row is None:
            raise NotFound(f"no active user {username!r}")
        audit.record(
            db,
            conn,
            actor=audit.Actor.cli(),
            action="user.disable",
            target_type="user",
            target_id=row.id,
            before={"username": row.username, "disabled_at": None},
            after={"username": row.username, "disabled_at": now},
        )
    out.print(f"disabled {row.username}", markup=False)


@app.command()
def passwd(
    ctx: typer.Context,
    username: str = typer.Argument(...),
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Set a new password (generated unless --password-stdin); unlocks the account and
    ends its sessions."""
    _, db = _open(ctx)
    password, generated = _password(password_stdin)
    with db.write() as conn:
        row = user_store.set_password(conn, username, password)
        if row is None:
            raise NotFound(f"no user {username!r}")
        # The hash is not recorded: the audit log says that it changed, not to what.
        audit.record(
            db,
            conn,
            actor=audit.Actor.cli(),
            action="user.password",
            target_type="user",
            target_id=row.id,
            after={"username": row.username},
        )
    if generated:
        _show(row.username, password)
    else:
        err.print(f"changed the password of {row.username!r}", markup=False)
