"""Opening the runtime of the workspace named by ``--workspace``."""

from __future__ import annotations

from pathlib import Path

import typer

from tagloop.cli.output import err
from tagloop.runtime import Runtime


def workspace_dir(ctx: typer.Context) -> Path:
    root = ctx.find_root().obj
    return root if isinstance(root, Path) else Path(".")


def open_runtime(ctx: typer.Context) -> Runtime:
    """Load, migrate and sync; reports the recomputation of changed tags."""

    def report(tag: str, holders: int) -> None:
        err.print(f"recomputed tag {tag!r}: {holders} entities hold it")

    return Runtime.open(workspace_dir(ctx), on_recompute=report)
