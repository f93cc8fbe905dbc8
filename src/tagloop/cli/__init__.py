"""The ``tagloop`` command line. Exit codes: 0 ok, 1 usage or validation error, 2 runtime
failure. Commands come from the `tagloop_cli_commands` hook (built-ins included)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.exceptions import Abort, Exit, TyperException

from tagloop import __version__, logs
from tagloop.cli.output import err
from tagloop.errors import TagloopError
from tagloop.plugins import manager
from tagloop.runtime import WORKSPACE_ENV


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tagloop {__version__}")
        raise typer.Exit()


def build() -> typer.Typer:
    app = typer.Typer(
        name="tagloop",
        help="tagloop: events -> entity profiles -> tags -> action.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        workspace: Path = typer.Option(
            Path("."),
            "--workspace",
            "-w",
            envvar=WORKSPACE_ENV,
            help="Workspace folder (holds tagloop.yaml).",
            show_default=True,
        ),
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        ctx.obj = workspace

    manager().hook.tagloop_cli_commands(app=app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tagloop`` script; never shows a stack trace to a user."""
    logs.configure(level=os.environ.get(logs.LOG_LEVEL_ENV, "WARNING"))
    command = typer.main.get_command(build())
    try:
        result: Any = command.main(args=argv, prog_name="tagloop", standalone_mode=False)
    except TyperException as exc:  # usage errors: unknown option, missing argument ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(exc.format_message(), markup=False)
        sys.exit(1)
    except (Abort, EOFError):
        err.print("aborted")
        sys.exit(1)
    except Exit as exc:
        sys.exit(exc.exit_code)
    except TagloopError as exc:
        err.print(exc.render(), markup=False, highlight=False)
        sys.exit(1 if exc.status < 500 else 2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(2)
    except Exception as exc:  # the last line of defence: a readable message, exit 2
        if os.environ.get("TAGLOOP_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False)
        err.print("(set TAGLOOP_DEBUG=1 to see the stack trace)")
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)
