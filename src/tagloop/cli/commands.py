"""Registers the built-in commands through the `tagloop_cli_commands` hook."""

from __future__ import annotations

import typer

from tagloop.hookspecs import hookimpl


@hookimpl
def tagloop_cli_commands(app: typer.Typer) -> None:
    from tagloop.cli import (
        audit,
        data,
        deadletters,
        demo,
        flows,
        keys,
        models,
        reviews,
        serve,
        sources,
        tagging,
        users,
        work_orders,
        workspace,
    )

    workspace.register(app)
    serve.register(app)
    demo.register(app)
    data.register(app)
    tagging.register(app)
    app.add_typer(keys.app, name="keys", help="Create, list and revoke API keys.")
    app.add_typer(users.app, name="users", help="Add, list and disable users of the web UI.")
    audit.register(app)
    sources.register(app)
    deadletters.register(app)
    flows.register(app)
    work_orders.register(app)
    models.register(app)
    reviews.register(app)
