"""`tagloop.flows.effects.Effects` on a `Runtime`: what internal actions do to the store.

Attribute changes and emitted events go through the ingestor like any event (so profiles,
tags and other flows follow), with ids derived from the step's idempotency key: a retried
step stores nothing twice. Every event a flow emits carries the chain of flows behind it
(``context.flows``), which the triggers read to stop loops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tagloop import audit
from tagloop.engine import imports
from tagloop.flows.actions.base import ActionFailed
from tagloop.ingest.event import Event
from tagloop.store import work_orders as work_order_store

if TYPE_CHECKING:
    from tagloop.runtime import Runtime

SOURCE = "flow"
UPDATE_EVENT = "flow_update"


class StoreEffects:
    """The effects of one run's steps: ``chain`` is the flows that led to the run (itself
    last), ``actor`` who the audit trail names."""

    def __init__(self, rt: Runtime, run_id: str, flow: str, chain: Sequence[str]) -> None:
        self.rt = rt
        self.run_id = run_id
        self.flow = flow
        self.chain = list(chain)
        self.actor = audit.Actor(name=f"flow {flow}", kind="system", origin=f"run {run_id}")

    def _store(self, event: Event) -> bool:
        from tagloop.ingest.event import Batch
        from tagloop.ingest.pipeline import RejectedBatch

        try:
            result = self.rt.ingestor.ingest(Batch([(0, event)]))
        except RejectedBatch as exc:
            reasons = "; ".join(f"{r.field}: {r.reason}" for r in exc.rejections)
            raise ActionFailed(f"the {event.type} event was refused: {reasons}") from None
        return result.accepted == 1

    def _event(self, key: str, type_: str, entity_type: str, entity_id: str, **extra: Any) -> Event:
        now = self.rt.clock()
        return Event(
            id=f"flow:{key}",
            type=type_,
            entity_type=entity_type,
            entity_id=entity_id,
            time=now,
            source=SOURCE,
            received_at=now,
            context={"flow_run": self.run_id, "flows": self.chain},
            **extra,
        )

    def set_attributes(
        self, key: str, entity_type: str, entity_id: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        event = self._event(key, UPDATE_EVENT, entity_type, entity_id, attributes=dict(values))
        stored = self._store(event)
        return {"event": event.id, "attributes": dict(values), "stored": stored}

    def set_tag(
        self, key: str, entity_type: str, entity_id: str, tag: str, value: Any, held: bool
    ) -> dict[str, Any]:
        active = imports.imported_tag(self.rt.active, tag)
        if active.definition.entity != entity_type:
            raise ActionFailed(f"tag {tag!r} is on {active.definition.entity}, not {entity_type}")
        report = imports.ImportReport()
        where, now = f"flow {self.flow}", self.rt.clock()
        if held:
            values = {entity_id: imports.Value(0, value)}
            imports.apply(
                self.rt.db,
                self.rt.engine,
                active,
                values,
                report,
                where=where,
                now=now,
                mode="merge",
                actor=self.actor,
                flows=self.rt.ingestor,
                chain=self.chain,
            )
        else:
            imports.remove(
                self.rt.db,
                self.rt.engine,
                active,
                [entity_id],
                report,
                where=where,
                now=now,
                actor=self.actor,
                flows=self.rt.ingestor,
                chain=self.chain,
            )
        if report.rejected:
            raise ActionFailed("; ".join(report.samples) or f"{tag}: rejected")
        return {
            "tag": tag,
            "entity": f"{entity_type}/{entity_id}",
            "changed": bool(report.assigned or report.changed or report.removed),
        }

    def emit_event(self, key: str, event: Mapping[str, Any]) -> dict[str, Any]:
        entity = event["entity"]
        built = self._event(
            key,
            str(event["type"]),
            str(entity["type"]),
            str(entity["id"]),
            properties=dict(event.get("properties") or {}),
            related=dict(event.get("related") or {}),
        )
        return {"event": built.id, "stored": self._store(built)}

    def create_work_order(self, key: str, order: Mapping[str, Any]) -> dict[str, Any]:
        order_id, new = work_order_store.create_work_order(self.rt.db, key, order, self.rt.clock())
        return {"work_order": order_id, "new": new}
