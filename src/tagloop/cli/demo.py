"""``tagloop demo``: the demo workspace with the real Online Retail data."""

from __future__ import annotations

from pathlib import Path

import typer

from tagloop import demo as demo_data
from tagloop.cli.output import err, out, progress_bar
from tagloop.runtime import Runtime


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        directory: Path = typer.Argument(Path("demo-workspace"), help="Where to create it."),
        data: Path | None = typer.Option(
            None,
            help="The Online Retail .csv.gz to load "
            "(default: ../shared/data, else the bundled sample).",
        ),
    ) -> None:
        """Create the demo workspace (once) and load its data (once)."""
        if demo_data.create_workspace(directory):
            out.print(f"created demo workspace [bold]{directory}[/]")
        rt = Runtime.open(directory)
        try:
            with progress_bar("loading demo events") as bar:
                task = bar.task_ids[0]

                def report(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                stats = demo_data.load(rt, data, progress=report)
            if stats is None:
                out.print("demo data already loaded")
            else:
                out.print(
                    f"loaded {stats.events} events from {stats.source}: "
                    f"{stats.invoices} invoices of {stats.customers} customers "
                    f"({stats.lines} lines; {stats.guest_lines} guest-checkout lines without "
                    "a CustomerID have no customer to attach to and were not loaded)"
                )
            _telco(rt)
            _credentials(demo_data.bootstrap(rt))
        finally:
            rt.close()


def _telco(rt: Runtime) -> None:
    """The Telco subscribers for the churn model (docs/models.md), when the data is there."""
    from tagloop.demo import telco

    stats = telco.load(rt)
    if stats is not None:
        out.print(
            f"loaded {stats.events} events from {stats.source}: {stats.subscribers} Telco "
            f"subscribers, {stats.churned} of whom left (train the churn model: "
            "tagloop models train churn)"
        )


def _credentials(made: demo_data.Credentials) -> None:
    admin = demo_data.ADMIN_USER
    if made.admin_password is None:
        err.print(f"admin user exists (a new password: tagloop users passwd {admin})")
    else:
        err.print(
            f"admin user [bold]{admin}[/] password: {made.admin_password}"
            "  <- shown once; store it now",
            highlight=False,
        )
    key = made.ingest_key
    if key is not None:
        err.print(
            f"API key [bold]{key.name}[/] ({', '.join(key.roles)}): {key.secret}"
            "  <- shown once; store it now"
        )
