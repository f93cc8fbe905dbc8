"""``tagloop serve``: the API server."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path

import typer

from tagloop import logs
from tagloop.cli.context import open_runtime
from tagloop.cli.output import out
from tagloop.errors import StorageError
from tagloop.ingest.remote import WriterAddress, run_writer, socket_path
from tagloop.logs import LOG_FORMAT_ENV
from tagloop.runtime import WORKSPACE_ENV

log = logs.get("tagloop.serve")


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        ctx: typer.Context,
        host: str | None = typer.Option(None, help="Interface (default from tagloop.yaml)."),
        port: int | None = typer.Option(None, help="Port (default from tagloop.yaml)."),
        log_format: str | None = typer.Option(
            None,
            help="'json' (one object per line) or 'console'; default: json unless "
            "stderr is a terminal.",
        ),
        workers: int | None = typer.Option(
            None,
            min=1,
            max=64,
            help="Server processes (default: server.workers in tagloop.yaml, 1).",
        ),
        sources: bool = typer.Option(
            True,
            "--sources/--no-sources",
            help="Run the workspace's enabled sources beside the API (in a process of their own).",
        ),
    ) -> None:
        """Run the API server (and the sources)."""
        import uvicorn

        logs.configure(log_format)
        # Migrate, sync definitions and recompute once, here; the workers then find it done.
        rt = open_runtime(ctx)
        rt.close()
        settings = rt.workspace.project.server
        bind_host, bind_port = host or settings.host, port or settings.port
        processes = workers or settings.workers
        base = f"http://{bind_host}:{bind_port}"
        out.print(
            f"tagloop serving workspace [bold]{rt.workspace.name}[/] ({rt.db.dialect}, "
            f"{processes} API process{'es' if processes > 1 else ''} and a writer process) "
            f"at {base}"
        )
        out.print(f"  API docs   {base}/docs")
        out.print(f"  health     {base}/healthz")
        out.print(f"  tags       {base}/v1/tags  (needs an API key: tagloop keys create)")
        os.environ[WORKSPACE_ENV] = str(rt.workspace.root.resolve())
        os.environ[LOG_FORMAT_ENV] = log_format or os.environ.get(LOG_FORMAT_ENV, "")
        with (
            writer_process(os.environ[WORKSPACE_ENV]) as writer,
            sources_process(
                os.environ[WORKSPACE_ENV], enabled=sources and bool(rt.workspace.sources)
            ),
        ):
            uvicorn.run(
                "tagloop.api.app:from_environment",
                factory=True,
                workers=processes,
                host=bind_host,
                port=bind_port,
                access_log=False,
                log_level="warning",
                # Bounds on slow or oversized clients (docs/security.md): idle keep-alive
                # connections close after 30 s; request headers must arrive within 10 s
                # and fit in 64 KiB (this protocol); bodies have limits.bodies.read_timeout.
                # No limit_concurrency: it counts idle keep-alive connections too, so any
                # value low enough to matter would refuse well-behaved pooled clients.
                timeout_keep_alive=30,
                http="tagloop.api.server:BoundedHttpToolsProtocol",
                # The client address and scheme from X-Forwarded-* only via these proxies.
                proxy_headers=True,
                forwarded_allow_ips=",".join(settings.trusted_proxies),
            )
        if writer.exitcode not in (None, 0, -signal.SIGTERM):
            raise StorageError(f"the writer process failed (exit code {writer.exitcode})")


@contextlib.contextmanager
def writer_process(workspace: str) -> Iterator[BaseProcess]:
    """Run the ingestion writer (`tagloop.ingest.remote`) beside the API server.

    If the writer dies, the server is stopped too: an API that cannot commit must not keep
    accepting connections.
    """
    context = multiprocessing.get_context("spawn")
    directory = Path(tempfile.mkdtemp(prefix="tagloop-"))
    address = WriterAddress(socket_path(directory), secrets.token_bytes(32))
    ready = context.Event()
    process = context.Process(
        target=run_writer, args=(workspace, address, ready), name="tagloop-writer", daemon=True
    )
    process.start()
    while not ready.wait(0.1):
        if not process.is_alive():
            raise StorageError(f"the writer process did not start (exit code {process.exitcode})")
    address.export()
    stopping = threading.Event()

    def watch() -> None:
        process.join()
        if not stopping.is_set():
            log.error("writer process exited; stopping the server", exit_code=process.exitcode)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tagloop-writer-watch", daemon=True).start()
    try:
        yield process
    finally:
        stopping.set()
        process.terminate()
        process.join(30)
        shutil.rmtree(directory, ignore_errors=True)


def run_sources_process(workspace: str) -> None:
    """The sources process: every enabled source, committing through the writer."""
    import asyncio

    from tagloop.ingest.remote import WriterAddress, follow_parent
    from tagloop.runtime import Runtime
    from tagloop.sources.runner import run_sources

    follow_parent()  # a server killed outright (SIGKILL) must not leave its sources running
    logs.configure()
    rt = Runtime.open(workspace)
    rt.start_writer(WriterAddress.from_environment())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sources(rt))


@contextlib.contextmanager
def sources_process(workspace: str, *, enabled: bool) -> Iterator[BaseProcess | None]:
    """Run the sources beside the API server. Each source retries its own failures, so
    the process itself does not stop on one; it stops with the server."""
    if not enabled:
        yield None
        return
    context = multiprocessing.get_context("spawn")
    process = context.Process(
        target=run_sources_process, args=(workspace,), name="tagloop-sources", daemon=True
    )
    process.start()
    try:
        yield process
    finally:
        process.terminate()
        process.join(30)
