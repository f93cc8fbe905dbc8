"""From committed events and tag changes to flow runs, in the same transaction.

`Triggers.runs` is called by the ingestor inside the commit that stores the events and
applies the tag changes: a run exists exactly when what triggered it was committed, and a
replayed event (same id) or a recomputed change starts nothing twice (the run's trigger
key is unique per flow). The run's row carries its scope (the event, its related entities,
the chain of flows that led to it).

The conditions of these runs are decided in the same commit (`Triggers.decide`), on the
state that commit leaves (the event stored, profiles and tags updated): what a condition
sees is what triggered the run, not what happened in the moments before a worker took it;
their values go in the run's trace at once, a run whose conditions do not hold is stored
``skipped`` and never queued, and the worker starts the others' first action without
another write before it.

An event emitted by a flow carries the chain of flows behind it (``context.flows``): a flow
already in the chain would loop, so its run is recorded ``failed`` with the chain instead
of started.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import uuid_utils

from tagloop import logs
from tagloop.flows import subjects
from tagloop.flows.runner import condition_row
from tagloop.ingest.event import Event
from tagloop.store import flows as flow_store
from tagloop.store.tags import TagChange

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from tagloop.flows.steps import Flow
    from tagloop.store.db import Database
    from tagloop.store.entities import EntityRow
    from tagloop.workspace import Workspace

log = logs.get("tagloop.flows")
MAX_CHAIN = 8  # flows triggering flows, at most this deep even without a cycle
TAG_KINDS = {"assigned": "tag_added", "removed": "tag_removed"}


def new_run_id() -> str:
    """A time-ordered UUID (version 7) as text."""
    return str(uuid_utils.uuid7())


def definition(flow: Flow) -> dict[str, Any]:
    """What a version of a flow stores: its file content and the aliases it used."""
    return {"spec": flow.spec.model_dump(mode="json"), "aliases": flow.aliases, "file": flow.file}


class Triggers:
    """The flows of a workspace indexed by what starts them."""

    def __init__(self, workspace: Workspace) -> None:
        self.by_event: dict[str, list[Flow]] = {}
        self.by_tag: dict[tuple[str, str], list[Flow]] = {}
        for flow in workspace.flows.values():
            if not flow.spec.enabled:
                continue
            trigger = flow.trigger
            if trigger.kind == "event" and trigger.name:
                self.by_event.setdefault(trigger.name, []).append(flow)
            elif trigger.kind.startswith("tag_") and trigger.name:
                self.by_tag.setdefault((trigger.kind, trigger.name), []).append(flow)
        self._versions: dict[str, int] = {}
        self.flows = workspace.flows
        self.tag_names = [t.name for t in workspace.tags.values()]

    def __bool__(self) -> bool:
        return bool(self.by_event or self.by_tag)

    def version(self, db: Database, conn: Connection, flow: Flow, now: int) -> int:
        number = self._versions.get(flow.name)
        if number is None:
            number = flow_store.version(db, conn, flow.name, flow.digest, definition(flow), now)
            self._versions[flow.name] = number
        return number

    def runs(
        self,
        db: Database,
        conn: Connection,
        events: Sequence[Event],
        changes: Iterable[TagChange],
        now: int,
        *,
        chain: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """The runs ``events`` and tag ``changes`` start (rows for `flow_store.create_runs`);
        ``chain``: the flows that led to the changes (an event carries its own)."""
        rows: list[dict[str, Any]] = []
        if self.by_event:
            for event in events:
                for flow in self.by_event.get(event.type, ()):
                    if flow.entity_type != event.entity_type:
                        continue
                    scope = {"event": event_view(event), "related": dict(event.related)}
                    chain = list((event.context or {}).get("flows") or [])
                    rows.append(
                        self._row(
                            db,
                            conn,
                            flow,
                            f"event:{event.id}",
                            event.entity_type,
                            event.entity_id,
                            scope,
                            chain,
                            now,
                        )
                    )
        if self.by_tag:
            for change in changes:
                kinds = [TAG_KINDS.get(change.change), "tag_changed"]
                if change.change == "confirmed":
                    continue
                for kind in kinds:
                    for flow in self.by_tag.get((kind or "", change.tag), ()):
                        key = (
                            f"tag:{change.entity_type}:{change.entity_id}:{change.tag}:"
                            f"{change.version}:{change.change}:{change.at}"
                        )
                        if chain:  # the same change again, made by a flow further on
                            key += ":" + ">".join(chain)
                        scope = {
                            "change": {
                                "tag": change.tag,
                                "change": change.change,
                                "value": change.value,
                                "previous": change.previous,
                            }
                        }
                        rows.append(
                            self._row(
                                db,
                                conn,
                                flow,
                                key,
                                change.entity_type,
                                change.entity_id,
                                scope,
                                list(chain),
                                now,
                            )
                        )
        return rows

    def decide(
        self,
        db: Database,
        conn: Connection,
        runs: list[dict[str, Any]],
        now: int,
        profiles: Mapping[tuple[str, str], EntityRow] | None = None,
        *,
        every: bool = False,
    ) -> tuple[list[dict[str, Any]], subjects.Subjects]:
        """Evaluate the conditions of new ``runs`` (rows from `runs`) on ``conn``: a run
        whose conditions do not hold becomes ``skipped`` in place. Returns their trace rows
        (for the runs `flow_store.create_runs` inserts) and the entities the conditions
        read (with ``every``, those of every due run: a worker taking them from the commit
        needs them). ``profiles``: the commit's own entity rows, as it left them (the
        others are read)."""
        due = [row for row in runs if row["status"] == "pending"]
        deciding = [(row, self.flows[row["flow"]]) for row in due]
        deciding = [(row, flow) for row, flow in deciding if flow.conditions]
        reading = due if every else [row for row, _ in deciding]
        if not reading:
            return [], {}
        keys = {
            key
            for row in reading
            for key in subjects.run_keys(row["entity_type"], row["entity_id"], row["scope"])
        }
        found = subjects.read(db, conn, keys, self.tag_names, now, profiles)
        steps: list[dict[str, Any]] = []
        for row, flow in deciding:
            context, _ = subjects.context(
                row["entity_type"], row["entity_id"], row["scope"], found, now
            )
            decided: list[dict[str, Any]] = []
            try:
                for index, condition in enumerate(flow.conditions):
                    value = condition.evaluate(context)
                    decided.append(condition_row(row["id"], index, condition, value, now))
                    if value is not True:
                        row.update(
                            status="skipped",
                            next_at=None,
                            finished_at=now,
                            error=f"condition not met: {condition.text}",
                        )
                        break
            except Exception:
                # Never fail the commit for a flow: the worker evaluates the conditions
                # again and fails the run with the error in its trace.
                log.exception("a flow condition failed in the commit", flow=flow.name)
                row.update(status="pending", next_at=now, finished_at=None, error=None)
                continue
            steps.extend(decided)
        return steps, found

    def _row(
        self,
        db: Database,
        conn: Connection,
        flow: Flow,
        key: str,
        entity_type: str,
        entity_id: str,
        scope: dict[str, Any],
        chain: list[str],
        now: int,
    ) -> dict[str, Any]:
        row = start_row(
            flow, self.version(db, conn, flow, now), key, entity_type, entity_id, scope, chain, now
        )
        if flow.name in chain or len(chain) >= MAX_CHAIN:
            path = " -> ".join([*chain, flow.name])
            row.update(
                status="failed",
                next_at=None,
                finished_at=now,
                error=f"loop detected: {path} (not started)",
            )
        return row


def start_row(
    flow: Flow,
    version: int,
    key: str,
    entity_type: str,
    entity_id: str,
    scope: dict[str, Any],
    chain: list[str],
    now: int,
) -> dict[str, Any]:
    """A new run's row, due now."""
    return {
        "id": new_run_id(),
        "flow": flow.name,
        "version": version,
        "status": "pending",
        "trigger": flow.trigger.describe()[:255],
        "trigger_key": key[:255],
        "entity_type": entity_type,
        "entity_id": entity_id,
        "scope": {**scope, "chain": [*chain, flow.name]},
        "next_at": now,
        "lease_until": None,
        "error": None,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }


def event_view(event: Event) -> dict[str, Any]:
    """An event as conditions and templates see it (``event.properties.amount``)."""
    return {
        "id": event.id,
        "type": event.type,
        "time": event.time,
        "properties": event.properties,
        "attributes": event.attributes or {},
        "related": event.related,
        "source": event.source,
    }
