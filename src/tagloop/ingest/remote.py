"""The ingestion writer as its own process, so committing never competes for the GIL.

`tagloop serve` starts `run_writer` in a child process: it owns every ingestion commit and
group-commits what the API process sends it. The API process parses and checks events on
its own core and hands them over a Unix socket (`multiprocessing.connection`, authenticated
with a random key); the reply comes back once the events are durably committed, so a 2xx
still means committed. Reads never go through the writer.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from tagloop import logs
from tagloop.errors import StorageError, TagloopError
from tagloop.ingest.event import Event
from tagloop.ingest.pipeline import CommitResult, Part

WRITER_ENV = "TAGLOOP_WRITER"  # the socket path
WRITER_KEY_ENV = "TAGLOOP_WRITER_KEY"  # hex authkey

log = logs.get("tagloop.writer")

EventTuple = tuple[Any, ...]


Packed = list[tuple[list[EventTuple], list[dict[str, Any]], list[tuple[str, str]], Any, Any]]


def pack(parts: list[Part]) -> Packed:
    """Parts with their events as plain tuples: several times cheaper to pickle."""
    return [
        (
            [
                (
                    e.id,
                    e.type,
                    e.entity_type,
                    e.entity_id,
                    e.time,
                    e.properties,
                    e.related,
                    e.attributes,
                    e.context,
                    e.source,
                    e.received_at,
                )
                for e in part.events
            ],
            part.dead_letters,
            part.recheck,
            part.checkpoints,
            part.versions,
        )
        for part in parts
    ]


def unpack(packed: Packed) -> list[Part]:
    return [
        Part([Event(*row) for row in rows], letters, recheck, checkpoints, versions)
        for rows, letters, recheck, checkpoints, versions in packed
    ]


@dataclass(frozen=True)
class WriterAddress:
    path: str
    key: bytes

    @classmethod
    def from_environment(cls) -> WriterAddress | None:
        path, key = os.environ.get(WRITER_ENV), os.environ.get(WRITER_KEY_ENV)
        return cls(path, bytes.fromhex(key)) if path and key else None

    def export(self) -> None:
        os.environ[WRITER_ENV] = self.path
        os.environ[WRITER_KEY_ENV] = self.key.hex()


def follow_parent() -> None:
    """Exit when the server process is gone, however it went (even SIGKILL)."""
    parent = os.getppid()
    try:  # Linux: the kernel signals us the moment the parent dies
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # portable fallback
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="tagloop-parent-watch", daemon=True).start()


def run_writer(workspace: str, address: WriterAddress, ready: Any) -> None:
    """The writer process: open the runtime, commit every group a client sends."""
    from tagloop.runtime import Runtime

    follow_parent()
    logs.configure()
    rt = Runtime.open(workspace)
    rt.db.start_checkpointer()
    rt.start_timers(lambda part: rt.ingestor.commit_many([part])[0])
    rt.start_flows()
    rt.start_scoring()  # the entities this process's commits marked for scoring
    # Long-lived state out of the collector's way (see `from_environment` in api/app.py).
    gc.collect()
    gc.freeze()
    listener = Listener(address.path, family="AF_UNIX", authkey=address.key)
    os.chmod(address.path, 0o600)
    ready.set()
    log.info("writer ready", socket=address.path)
    try:
        while True:
            connection = listener.accept()
            threading.Thread(target=_serve, args=(rt, connection), daemon=True).start()
    finally:
        listener.close()
        rt.close()


RELOAD = "reload"  # a control message: put the workspace's tag definitions in force


def _serve(rt: Any, connection: Connection) -> None:
    """One API process: receive a group, commit it, reply; no other thread in the way."""
    with connection:
        while True:
            try:
                packed = connection.recv()
            except (EOFError, OSError):
                return
            if isinstance(packed, tuple) and packed[:1] == (RELOAD,):
                _reload(rt, connection, packed[1])
                continue
            try:
                rt.refresh()  # definitions another process (the CLI) put in force
                results = rt.ingestor.commit_many(unpack(packed))
            except Exception as exc:  # reported to the API process, which answers 503
                log.error("commit failed", exc_info=exc)
                connection.send(("error", f"{type(exc).__name__}: {exc}"))
            else:
                connection.send(("ok", results))


def _reload(rt: Any, connection: Connection, actor: Any) -> None:
    try:
        result = rt.reload(actor)
    except TagloopError as exc:  # the files do not load: the old definitions stay
        connection.send(("failed", (type(exc), exc.message, exc.problems)))
    except Exception as exc:
        log.error("reload failed", exc_info=exc)
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
    else:
        connection.send(("ok", [t.name for t in result.new_versions]))


class RemoteWriter:
    """The API side of the writer process, used by the `GroupCommitter` thread."""

    def __init__(self, address: WriterAddress) -> None:
        self.address = address
        self.connection: Connection | None = None

    def commit_many(self, parts: list[Part]) -> list[CommitResult]:
        if self.connection is None:
            try:
                self.connection = Client(
                    self.address.path, family="AF_UNIX", authkey=self.address.key
                )
            except OSError as exc:
                raise StorageError(f"the writer process is not available: {exc}") from exc
        try:
            self.connection.send(pack(parts))
            status, payload = self.connection.recv()
        except (EOFError, OSError) as exc:
            self.connection = None
            raise StorageError(
                "the writer process stopped before confirming the commit; "
                "the batch may or may not be stored: resend it (ids make "
                "that safe)"
            ) from exc
        if status != "ok":
            raise StorageError(f"the writer could not commit: {payload}")
        results: list[CommitResult] = payload
        return results

    def reload(self, actor: Any) -> list[str]:
        """Have the writer process reload the workspace's tag definitions (`Runtime.reload`,
        audited as ``actor``), on a connection of its own; the names of new versions."""
        try:
            with Client(self.address.path, family="AF_UNIX", authkey=self.address.key) as conn:
                conn.send((RELOAD, actor))
                status, payload = conn.recv()
        except (EOFError, OSError) as exc:
            raise StorageError(f"the writer process is not available: {exc}") from exc
        if status == "failed":  # the workspace's own error, with its problems
            kind, message, problems = payload
            raise kind(message, problems)
        if status != "ok":
            raise StorageError(f"the writer could not reload the definitions: {payload}")
        names: list[str] = payload
        return names


def socket_path(directory: Path) -> str:
    return str(directory / "writer.sock")
