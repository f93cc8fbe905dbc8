"""From parsed events to committed state: check against the dictionary, then one transaction
that appends the events, updates profiles and re-evaluates the affected tags.

A successful `Ingestor.commit` means the events, the profiles and the tag changes they cause
are durably committed together; either all of a batch is stored or none of it.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tagloop.engine import identities, profiles
from tagloop.engine.evaluator import Engine, Touched
from tagloop.engine.profiles import SYSTEM_FIELDS
from tagloop.errors import ValidationFailed
from tagloop.flows.subjects import Subjects
from tagloop.flows.triggers import Triggers
from tagloop.ingest.event import Batch, Event, Rejection
from tagloop.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_REJECTED, TAG_CHANGES
from tagloop.models.onchange import Watch
from tagloop.store import deadletters as deadletter_store
from tagloop.store import entities as entity_store
from tagloop.store import events as event_store
from tagloop.store import flows as flow_store
from tagloop.store import sources as source_store
from tagloop.store import tags as tag_store
from tagloop.store import timers as timer_store
from tagloop.store.db import Database
from tagloop.store.tags import TagChange
from tagloop.timeutil import iso
from tagloop.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class RejectedBatch(ValidationFailed):
    """Some events of a batch are invalid: lists each one with its index and reason."""

    code = "invalid_events"

    def __init__(self, batch: Batch, *, stored: int = 0) -> None:
        bad = len({r.index for r in batch.rejections})
        total = batch.size
        if total == 0:
            message = "the batch holds no events"
        elif stored:
            message = f"{bad} of {total} events rejected; the other {stored} were stored"
        else:
            message = f"{bad} of {total} events rejected; nothing was stored"
        super().__init__(message)
        self.rejections = batch.rejections

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "rejected": [r.as_dict() for r in self.rejections]}


@dataclass
class Outcome:
    """What an ingestion request did, as its response reports it."""

    accepted: int
    duplicates: int
    rejected: list[Rejection]
    ids: list[str | None]  # per input index; None where rejected

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
            "ids": self.ids,
        }


@dataclass
class Part:
    """One batch handed to a group commit."""

    events: list[Event]
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    recheck: list[tuple[str, str]] = field(default_factory=list)  # entities whose timer is due
    # Where the sources that read these events now stand, and the versions of the snapshot
    # records among them: committed with the events, so a restart resumes exactly here.
    checkpoints: list[source_store.Checkpoint] = field(default_factory=list)
    versions: list[source_store.Version] = field(default_factory=list)


@dataclass
class CommitResult:
    accepted: int  # events stored by this call
    duplicates: int  # events whose id was already stored (or repeated in the batch)
    tag_changes: list[TagChange] = field(default_factory=list)
    seconds: float = 0.0


class Handoff(Protocol):
    """A flow worker in the committing process (`tagloop.flows.worker.FlowWorker`): the
    runs a commit starts are leased to it in that commit and handed to it after, so the
    first action does not wait for the worker to find and claim them in the store."""

    def lease(self, runs: list[dict[str, Any]], now: int) -> None:
        """Mark the due ``runs`` (rows about to be inserted) as leased to the worker."""
        ...

    def take(self, runs: list[dict[str, Any]], steps: list[dict[str, Any]], found: Any) -> None:
        """After the commit (from its thread): run ``runs``, whose trace is ``steps``, on
        the entities ``found`` as the commit left them."""
        ...


class Ingestor:
    def __init__(self, workspace: Workspace, db: Database, engine: Engine) -> None:
        self.workspace = workspace
        self.db = db
        self.engine = engine
        # How `ingest` commits: directly, or through a `GroupCommitter` in a server.
        self.committer: Callable[[list[Event]], CommitResult] = self.commit
        # The engine's state is one per process: commits in it must not overlap.
        self.lock = engine.lock
        # Flows started by events and tag changes: their runs are written in the commit.
        self.triggers = Triggers(workspace) if workspace.flows else None
        # Called after a commit that started flow runs (a worker in this process waits).
        self.on_flow_runs: Callable[[], None] | None = None
        # A worker in this process takes the runs a commit starts straight from it.
        self.flow_handoff: Handoff | None = None
        # Models whose features this commit's changes reach: scored again, debounced.
        self.models = Watch(workspace) if workspace.models else None

    def start_flows(
        self, conn: Connection, changes: list[TagChange], now: int, chain: Sequence[str] = ()
    ) -> bool:
        """Start the flows tag ``changes`` made outside an ingest commit trigger (an
        import, a flow's ``add_tag``), in the transaction of ``conn``; True if a run waits
        for a worker (then call `flows_queued` after the commit). ``chain``: the flows
        that led to the changes."""
        changes = [c for c in changes if c.status == "active"]  # not proposals under review
        if not self.triggers or not changes:
            return False
        runs = self.triggers.runs(self.db, conn, [], changes, now, chain=chain)
        steps, _ = self.triggers.decide(self.db, conn, runs, now)
        made = flow_store.create_runs(self.db, conn, runs, steps)
        return any(r["id"] in made and r["status"] == "pending" for r in runs)

    def flows_queued(self) -> None:
        if self.on_flow_runs is not None:
            self.on_flow_runs()

    def check(self, batch: Batch) -> None:
        """Move every event that does not fit the dictionary into ``batch.rejections``;
        normalises declared attribute and property values in place."""
        kept: list[tuple[int, Event]] = []
        for index, event in batch.events:
            problems = self._problems(event)
            if problems:
                for name, reason in problems:
                    batch.reject(index, name, reason)
            else:
                kept.append((index, event))
        batch.events = kept
        batch.rejections.sort(key=lambda r: r.index)

    def _problems(self, event: Event) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        dictionary = self.workspace.dictionary
        nul = _nul_field(event)
        if nul is not None:
            # PostgreSQL cannot store U+0000 in text or JSON; refuse it on every backend
            problems.append((nul, "contains a NUL character (U+0000), which cannot be stored"))
        for name, value in (("id", event.id), ("type", event.type), ("entity.id", event.entity_id)):
            if not value or len(value) > 255:
                problems.append((name, "must be 1 to 255 characters"))
        entity_type = dictionary.get(event.entity_type)
        if entity_type is None:
            problems.append(("entity.type", dictionary.unknown(event.entity_type)))
        for related_type, related_id in event.related.items():
            if related_type not in dictionary:
                problems.append((f"related.{related_type}", dictionary.unknown(related_type)))
            if not related_id or len(related_id) > 255:
                problems.append((f"related.{related_type}", "must be 1 to 255 characters"))
        limit = event.received_at + self.workspace.max_future_us
        if event.time > limit:
            problems.append(
                (
                    "time",
                    f"{iso(event.time)} is more than {self.workspace.project.ingest.max_future} "
                    "ahead of the server clock (ingest.max_future in tagloop.yaml)",
                )
            )
        if entity_type is not None:
            if event.attributes:
                for name in event.attributes:
                    if name in SYSTEM_FIELDS:
                        problems.append(
                            (
                                f"attributes.{name}",
                                f"{name!r} is a system attribute and cannot be set",
                            )
                        )
                event.attributes, bad = entity_type.check_attributes(event.attributes)
                problems.extend(_split(bad))
            if event.properties:
                event.properties, bad = entity_type.check_properties(event.type, event.properties)
                problems.extend(_split(bad))
        return problems

    def ingest(self, batch: Batch, *, partial: bool = False) -> Outcome:
        """Check ``batch`` and commit it: atomically (any bad event stores nothing and raises
        `RejectedBatch`), or with ``partial`` the valid events and report the rest."""
        total = batch.size
        self.check(batch)
        source = batch.events[0][1].source if batch.events else "api"
        if batch.rejections:
            EVENTS_REJECTED.labels(source).inc(len({r.index for r in batch.rejections}))
        if (batch.rejections and not partial) or not batch.events:
            raise RejectedBatch(batch)
        result = self.committer([event for _, event in batch.events])
        EVENTS_ACCEPTED.labels(source).inc(result.accepted)
        EVENTS_DUPLICATE.labels(source).inc(result.duplicates)
        for change in result.tag_changes:
            TAG_CHANGES.labels(change.change).inc()
        ids: list[str | None] = [None] * total
        for index, event in batch.events:
            ids[index] = event.id
        return Outcome(result.accepted, result.duplicates, batch.rejections, ids)

    def commit(
        self, events: list[Event], dead_letters: list[dict[str, Any]] | None = None
    ) -> CommitResult:
        """Store ``events`` (already checked) atomically, with profiles and tags, and the
        ``dead_letters`` of the same input in the same transaction (nothing is lost between
        the two)."""
        return self.commit_many([Part(events, dead_letters or [])])[0]

    def submit(self, part: Part) -> CommitResult:
        """Commit a whole part (events, dead letters, source checkpoints): through the
        server's group commit when there is one, else directly."""
        submit = getattr(self.committer, "submit", None)
        if submit is not None:
            result: CommitResult = submit(part)
            return result
        return self.commit_many([part])[0]

    def commit_many(self, parts: list[Part]) -> list[CommitResult]:
        """Commit several independent batches in one transaction (group commit).

        An id repeated across parts is stored once, for the first part that carries it.
        Parts may also ask to re-evaluate entities whose timers are due (``recheck``).
        """
        started = _time.perf_counter()
        owner: dict[str, int] = {}
        unique: list[Event] = []
        for index, part in enumerate(parts):
            for event in part.events:
                if event.id not in owner:
                    owner[event.id] = index
                    unique.append(event)
        rechecks = {key for part in parts for key in part.recheck}
        keys = set(profiles.touched_keys(unique)) | rechecks
        with self.lock:
            return self._commit_many(parts, unique, owner, rechecks, keys, started)

    def _commit_many(
        self,
        parts: list[Part],
        unique: list[Event],
        owner: dict[str, int],
        rechecks: set[tuple[str, str]],
        keys: set[tuple[str, str]],
        started: float,
    ) -> list[CommitResult]:
        engine = self.engine
        now = engine.clock()
        try:
            with self.db.write() as conn:
                resolved = identities.resolve(self.db, conn, self.workspace.dictionary, unique, now)
                if resolved.changed:
                    # Events now name their surviving entities; merged ones are gone, and
                    # survivors are re-evaluated over the union of both sides' events.
                    engine.forget([*resolved.merged, *resolved.survivors])
                    keys.update(profiles.touched_keys(unique), resolved.survivors)
                    rechecks.update(resolved.survivors)
                    keys.difference_update(resolved.merged)
                    rechecks.difference_update(resolved.merged)
                rows = entity_store.load(self.db, conn, keys, for_update=True)
                engine.prepare(self.db, conn, {k: rows.get(k) for k in keys})
                inserted = event_store.append(self.db, conn, unique)
                new = [e for e in unique if e.id in inserted]
                links = [(e.id, t, i, e.time) for e in new for t, i in e.related.items()]
                if links:
                    event_store.link(self.db, conn, links)
                letters = [letter for part in parts for letter in part.dead_letters]
                if letters:
                    deadletter_store.add(self.db, conn, letters)
                positions = [c for part in parts for c in part.checkpoints]
                if positions:
                    source_store.save_checkpoints(self.db, conn, positions, now)
                versions = [v for part in parts for v in part.versions]
                if versions:
                    source_store.save_versions(self.db, conn, versions)
                written, changes = profiles.fold(rows, new, now)
                entity_store.upsert(self.db, conn, written)
                entered = engine.apply(((e, inserted[e.id]) for e in new), now)
                touched = {c.key: Touched(c.row, c.created, c.changed) for c in changes}
                for key in rechecks:
                    if key in touched:
                        touched[key].recheck = True
                    elif key in rows:
                        touched[key] = Touched(rows[key], recheck=True)
                for key in resolved.survivors:  # every tag, over the union of the events
                    touched[key].names = frozenset(engine.tag_names.get(key[0], ()))
                tag_changes, timers = engine.evaluate(self.db, conn, touched, entered, now)
                tag_store.apply(self.db, conn, tag_changes)
                if self.models:  # scoring on change: what the commit touched, debounced
                    self.models.mark(self.db, conn, new, changes, now)
                stale = [(k[0], k[1], None, True) for k in rechecks if k not in rows]
                timer_store.set_due(self.db, conn, [*timers, *stale])
                queued, handed = False, []
                found: Subjects = {}
                if self.triggers:
                    # what entities hold: not proposals waiting for review
                    held = [c for c in tag_changes if c.status == "active"]
                    runs = self.triggers.runs(self.db, conn, new, held, now)
                    at_hand = {**rows, **{(w.type, w.id): w for w in written}}
                    handoff = self.flow_handoff
                    steps, found = self.triggers.decide(
                        self.db, conn, runs, now, at_hand, every=handoff is not None
                    )
                    if handoff is not None:
                        handoff.lease(runs, now)
                    made = flow_store.create_runs(self.db, conn, runs, steps)
                    queued = any(r["id"] in made and r["status"] == "pending" for r in runs)
                    handed = [r for r in runs if r["id"] in made and r["status"] == "running"]
        except BaseException:
            engine.forget(keys)
            raise
        if handed:
            assert self.flow_handoff is not None
            self.flow_handoff.take(handed, [s for s in steps if s["run_id"] in made], found)
        if queued:
            self.flows_queued()
        accepted = [0] * len(parts)
        for event in new:
            accepted[owner[event.id]] += 1
        seconds = _time.perf_counter() - started
        # Tag changes belong to entities, not to requests: the first part carries them all.
        return [
            CommitResult(
                accepted[i],
                len(part.events) - accepted[i],
                tag_changes if i == 0 else [],
                seconds,
            )
            for i, part in enumerate(parts)
        ]


def _split(messages: list[str]) -> list[tuple[str, str]]:
    out = []
    for message in messages:
        name, _, reason = message.partition(": ")
        out.append((name, reason))
    return out


def _nul_field(event: Event) -> str | None:
    """The first field of ``event`` holding a NUL character (in a key or a string value).

    >>> from tagloop.ingest.event import Event
    >>> _nul_field(Event(id="e1", type="order", entity_type="customer", entity_id="c1",
    ...     time=0, properties={"note": {"text": "a\\x00b"}}))
    'properties.note.text'
    """
    for name, value in (
        ("id", event.id),
        ("type", event.type),
        ("entity.type", event.entity_type),
        ("entity.id", event.entity_id),
    ):
        if "\x00" in value:
            return name
    nested: tuple[tuple[str, Any], ...] = (
        ("related", event.related),
        ("properties", event.properties),
        ("attributes", event.attributes),
        ("context", event.context),
    )
    for name, part in nested:
        found = nul_path(part, name)
        if found is not None:
            return found
    return None


def nul_path(value: Any, path: str) -> str | None:
    """Where in ``value`` (a JSON value at ``path``) a NUL character is, if anywhere.

    >>> nul_path({"a": [1, {"b\\x00": 2}]}, "inputs")
    'inputs.a[1]'
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return path
            found = nul_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None
