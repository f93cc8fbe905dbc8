"""``tagloop init`` and ``tagloop check``."""

from __future__ import annotations

from pathlib import Path

import typer

from tagloop.cli.context import workspace_dir
from tagloop.cli.output import out
from tagloop.errors import ValidationFailed
from tagloop.workspace import load_workspace
from tagloop.workspace.scaffold import scaffold


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        directory: Path = typer.Argument(..., help="Folder to create the workspace in."),
        name: str | None = typer.Option(None, help="Workspace name (default: folder name)."),
        timezone: str = typer.Option("Asia/Shanghai", help="IANA time zone for calendars."),
        database: str = typer.Option("sqlite:///tagloop.db", help="Database URL."),
    ) -> None:
        """Create a workspace: tagloop.yaml, entities/, tags/, sources/."""
        if (directory / "tagloop.yaml").exists():
            raise ValidationFailed(f"{directory} already holds a workspace (tagloop.yaml)")
        scaffold(directory, name or directory.resolve().name, timezone, database)
        load_workspace(directory)  # the scaffold must itself be valid
        out.print(f"created workspace [bold]{directory}[/]; next: tagloop -w {directory} serve")

    @app.command()
    def check(ctx: typer.Context) -> None:
        """Validate every workspace file; print each problem as file:line:col."""
        ws = load_workspace(workspace_dir(ctx))
        out.print(
            f"workspace {ws.name!r} is valid: {len(ws.entity_types)} entity types, "
            f"{len(ws.tags)} tags, {len(ws.sources)} sources (revision {ws.revision})"
        )
