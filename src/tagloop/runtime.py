"""A running tagloop: a loaded workspace, its database, and the engine wired together.

Both the API server and the CLI open a `Runtime`; opening one migrates the database and
brings tag definitions in line with the workspace files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tagloop.engine import batch
from tagloop.engine.definitions import sync
from tagloop.engine.evaluator import Engine
from tagloop.engine.plans import ActiveTag
from tagloop.engine.timers import TimerLoop, fire_due
from tagloop.flows.background import FlowThread
from tagloop.ingest.pipeline import CommitResult, Ingestor, Part
from tagloop.ingest.remote import RemoteWriter, WriterAddress
from tagloop.ingest.writer import GroupCommitter
from tagloop.models.onchange import ScoreLoop, score_due
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.timeutil import now_us, parse_duration
from tagloop.workspace import Workspace, load_workspace

WORKSPACE_ENV = "TAGLOOP_WORKSPACE"


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

    def __post_init__(self) -> None:
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
        changed = [t.name for t in result.new_versions if t.computed]
        if changed:
            # A tag that reads a changed one may change too, without a version of its own.
            names = batch.dependents(result.active, changed)
            report = batch.recompute(db, runtime.engine, result.active, names, clock())
            if on_recompute is not None:
                for name in sorted(names):
                    on_recompute(name, report.by_tag.get(name, 0))
        return runtime

    def start_writer(self, remote: WriterAddress | None = None) -> None:
        """Route ingestion through group commit (what the server does): committed here, or
        by the writer process at ``remote``."""
        if self.writer is not None:
            return
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
