"""A running tagloop: a loaded workspace, its database, and the engine wired together.

Both the API server and the CLI open a `Runtime`; opening one migrates the database and
brings tag definitions in line with the workspace files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tagloop import logs
from tagloop.audit import Actor
from tagloop.engine import batch
from tagloop.engine.definitions import SyncResult, sync
from tagloop.engine.evaluator import Engine
from tagloop.engine.plans import ActiveTag
from tagloop.engine.timers import TimerLoop, fire_due
from tagloop.errors import TagloopError
from tagloop.flows.background import FlowThread
from tagloop.flows.triggers import Triggers
from tagloop.ingest.pipeline import CommitResult, Ingestor, Part
from tagloop.ingest.remote import RemoteWriter, WriterAddress
from tagloop.ingest.writer import GroupCommitter
from tagloop.models.onchange import ScoreLoop, Watch, score_due
from tagloop.store import settings
from tagloop.store import tags as tag_store
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.timeutil import now_us, parse_duration
from tagloop.workspace import Workspace, load_workspace

log = logs.get("tagloop.runtime")
WORKSPACE_ENV = "TAGLOOP_WORKSPACE"
# The workspace revision whose tag definitions are in force (see `Runtime.reload`).
REVISION_KEY = "definitions.revision"
# How often a process looks whether another one reloaded the definitions (seconds).
REFRESH_EVERY = 2.0


def default_workspace() -> Path:
    return Path(os.environ.get(WORKSPACE_ENV, "."))


@dataclass
class Runtime:
    workspace: Workspace
    db: Database
    active: list[ActiveTag]
    clock: Callable[[], int] = now_us  # what "now" is for rules (tests and replays set it)
    engine: Engine = field(init=False)
    ingestor: Ingestor = field(init=False)
    writer: GroupCommitter | None = field(init=False, default=None)
    timers: TimerLoop | None = field(init=False, default=None)
    flows: FlowThread | None = field(init=False, default=None)
    scoring: ScoreLoop | None = field(init=False, default=None)
    # The writer process this one commits through (`start_writer`), if any.
    remote: WriterAddress | None = field(init=False, default=None)
    _next_refresh: float = field(init=False, default=0.0)
    _seen_revision: str | None = field(init=False, default=None)  # the last one taken in

    def __post_init__(self) -> None:
        self._seen_revision = self.workspace.revision
        self.engine = Engine(
            self.workspace,
            self.active,
            clock=self.clock,
            tick=self.workspace.project.engine.now_tick,
        )
        self.ingestor = Ingestor(self.workspace, self.db, self.engine)

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str] | None = None,
        *,
        on_recompute: Callable[[str, int], None] | None = None,
        clock: Callable[[], int] = now_us,
    ) -> Runtime:
        """Load the workspace, migrate its database, sync and recompute changed tags.

        Changed tags (and the tags reading them) are recomputed in batch, in SQL;
        ``on_recompute(tag, holders)`` reports each one done.
        """
        workspace = load_workspace(root if root is not None else default_workspace())
        db = Database(workspace.database_url)
        upgrade(db)
        result = sync(db, workspace)
        runtime = cls(workspace, db, result.active, clock)
        runtime._recompute(result, on_recompute)
        return runtime

    def _recompute(
        self, result: SyncResult, on_recompute: Callable[[str, int], None] | None = None
    ) -> None:
        changed = [t.name for t in result.new_versions if t.computed]
        if changed:
            # A tag that reads a changed one may change too, without a version of its own.
            names = batch.dependents(result.active, changed)
            report = batch.recompute(self.db, self.engine, result.active, names, self.clock())
            if on_recompute is not None:
                for name in sorted(names):
                    on_recompute(name, report.by_tag.get(name, 0))
        revision = self.workspace.revision
        with self.db.read() as conn:
            stored = settings.get(conn, REVISION_KEY)
        if stored != revision:  # a start-up with unchanged files writes nothing
            with self.db.write() as conn:
                settings.put(self.db, conn, REVISION_KEY, revision)
        self._seen_revision = revision

    def reload(self, actor: Actor | None = None) -> SyncResult:
        """Read the workspace files again and put their tag definitions in force: new
        versions are recorded (audited as ``actor``) and recomputed, and the process's
        engine evaluates them from its next commit on. What saving a rule does, in the
        process that commits; the others follow (`refresh`)."""
        workspace = load_workspace(self.workspace.root)
        result = sync(self.db, workspace, actor=actor)
        self._swap(workspace, result.active)
        self._recompute(result)
        return result

    def refresh(self, force: bool = False) -> bool:
        """Take in the definitions another process put in force (`reload`), looking at
        most every `REFRESH_EVERY` seconds (one small read); True if they changed."""
        now = time.monotonic()
        if not force and now < self._next_refresh:
            return False
        self._next_refresh = now + REFRESH_EVERY
        with self.db.read() as conn:
            stored = settings.get(conn, REVISION_KEY)
        if stored is None or stored == self._seen_revision:
            return False
        # Tried once per revision put in force: a workspace that does not load, or files
        # edited again since, are not read anew every few seconds.
        self._seen_revision = stored
        try:
            workspace = load_workspace(self.workspace.root)
        except TagloopError as exc:  # files half-edited by hand: keep what is in force
            log.warning("definitions not refreshed", error=exc.message)
            return False
        if workspace.revision != stored:  # edited by hand since: versions would not match
            log.warning("definitions not refreshed: the files changed since they were put in force")
            return False
        with self.db.read() as conn:
            versions = {
                name: row.version for name, row in tag_store.active_definitions(conn).items()
            }
        active = [
            ActiveTag(d, versions[d.name]) for d in workspace.tags.values() if d.name in versions
        ]
        self._swap(workspace, active)
        return True

    def _swap(self, workspace: Workspace, active: list[ActiveTag]) -> None:
        """Use ``workspace`` and its ``active`` tags from now on, between two commits (the
        new engine shares the old one's lock, which every commit holds)."""
        engine = Engine(workspace, active, clock=self.clock, tick=workspace.project.engine.now_tick)
        with self.engine.lock:
            engine.lock = self.engine.lock
            self.workspace, self.active, self.engine = workspace, active, engine
            ingestor = self.ingestor
            ingestor.workspace, ingestor.engine = workspace, engine
            ingestor.triggers = Triggers(workspace) if workspace.flows else None
            ingestor.models = Watch(workspace) if workspace.models else None

    def start_writer(self, remote: WriterAddress | None = None) -> None:
        """Route ingestion through group commit (what the server does): committed here, or
        by the writer process at ``remote``."""
        if self.writer is not None:
            return
        self.remote = remote
        if remote is None:
            self.db.start_checkpointer()
            self.writer = GroupCommitter(self.ingestor.commit_many)
            self.start_timers(self.writer.submit)
            self.start_flows()
            self.start_scoring()
        else:
            self.writer = GroupCommitter(RemoteWriter(remote).commit_many)
        self.ingestor.committer = self.writer

    def start_timers(self, commit: Callable[[Part], CommitResult]) -> None:
        """Fire due entity timers in the background (the process that commits does)."""
        interval = parse_duration(self.workspace.project.engine.timer_poll) / 1e6
        self.timers = TimerLoop(self.db, self.clock, commit, interval)

    def start_flows(self) -> None:
        """Run the workspace's flows in the background (the process that commits does: the
        triggers that make runs are in its commits, and it is woken by them)."""
        if self.flows is None and self.workspace.flows:
            self.flows = FlowThread(self)

    def start_scoring(self) -> None:
        """Score the entities whose model features changed, once their debounce is over
        (the process that commits does: it marks them)."""
        if self.scoring is None and self.workspace.models:
            interval = parse_duration(self.workspace.project.engine.timer_poll) / 1e6
            self.scoring = ScoreLoop(lambda: score_due(self), interval)

    def fire_timers(self) -> int:
        """Re-evaluate the entities whose timers are due now (what the loop does)."""
        return fire_due(self.db, self.clock, lambda part: self.ingestor.commit_many([part])[0])

    def close(self) -> None:
        if self.scoring is not None:
            self.scoring.stop()
            self.scoring = None
        if self.flows is not None:
            self.flows.stop()
            self.flows = None
        if self.timers is not None:
            self.timers.stop()
            self.timers = None
        if self.writer is not None:
            self.writer.close()
            self.ingestor.committer = self.ingestor.commit
            self.writer = None
        self.db.dispose()
