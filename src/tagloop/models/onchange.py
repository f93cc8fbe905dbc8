"""Scoring on change: an entity whose feature inputs change is scored again, debounced.

`Watch` knows, per entity type, which models read which attributes and which event
types. The ingestion commit asks it which (model, entity) pairs a commit touched and
writes them to ``model_pending`` in the same transaction, due ``schedule.debounce`` after
the change (a later change moves the time later: a burst of events is scored once, after
it). `ScoreLoop`, in the process that commits, scores the pending entities that are due
with the active version, and the model tags follow as after a batch run.

Features that change with time alone (``days_since(...)``, a window running out) are not
re-scored by time: a periodic ``tagloop models score`` covers them.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from tagloop.errors import TagloopError
from tagloop.store.db import Database
from tagloop.store.models import mark_pending, take_pending
from tagloop.timeutil import parse_duration
from tagloop.workspace import Workspace

if TYPE_CHECKING:
    from tagloop.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Reads:
    model: str
    attributes: frozenset[str]
    event_types: frozenset[str]
    debounce: int


class Watch:
    """What changes make which models score an entity again."""

    def __init__(self, workspace: Workspace) -> None:
        self.by_type: dict[str, list[_Reads]] = defaultdict(list)
        for model in workspace.models.values():
            attributes: set[str] = set()
            event_types: set[str] = set()
            for feature in model.features:
                deps = feature.rule.deps
                attributes |= deps.attributes
                event_types |= {i.event_type for i in deps.inputs}
            self.by_type[model.entity].append(
                _Reads(
                    model.name,
                    frozenset(attributes),
                    frozenset(event_types),
                    parse_duration(model.spec.schedule.debounce),
                )
            )

    def __bool__(self) -> bool:
        return bool(self.by_type)

    def touched(
        self, events: Iterable[Any], changes: Iterable[Any]
    ) -> dict[int, set[tuple[str, str, str]]]:
        """debounce -> the (model, entity type, id) a commit's new ``events`` and profile
        ``changes`` (`tagloop.engine.profiles.ProfileChange`) make due for scoring."""
        found: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
        for change in changes:
            entity_type, entity_id = change.key
            for reads in self.by_type.get(entity_type, ()):
                if change.created or reads.attributes & change.changed:
                    found[reads.debounce].add((reads.model, entity_type, entity_id))
        for event in events:
            keys = {(event.entity_type, event.entity_id), *event.related.items()}
            for entity_type, entity_id in keys:
                for reads in self.by_type.get(entity_type, ()):
                    if event.type in reads.event_types:
                        found[reads.debounce].add((reads.model, entity_type, entity_id))
        return found

    def mark(self, db: Database, conn: Connection, events: Any, changes: Any, now: int) -> None:
        """Record what the commit touched, in the commit's transaction."""
        for debounce, rows in self.touched(events, changes).items():
            mark_pending(db, conn, sorted(rows), now + debounce)


def score_due(rt: Runtime, now: int | None = None) -> dict[str, int]:
    """Score the pending entities due by ``now``: model -> entities scored."""
    from tagloop.models.scoring import score

    moment = rt.clock() if now is None else now
    with rt.db.write() as conn:
        due = take_pending(rt.db, conn, moment)
    by_model: dict[str, list[str]] = defaultdict(list)
    entity_type: dict[str, str] = {}
    for model, kind, entity_id in due:
        by_model[model].append(entity_id)
        entity_type[model] = kind
    done: dict[str, int] = {}
    for model, ids in by_model.items():
        if model not in rt.workspace.models:
            continue  # removed from the workspace since
        try:
            done[model] = score(rt, model, ids=sorted(set(ids))).entities
        except TagloopError as exc:  # no active version yet: nothing to score with
            log.info("model %s not scored on change: %s", model, exc.message)
    return done


class ScoreLoop:
    """Scores due pending entities every ``interval`` seconds, on its own thread."""

    def __init__(self, run: Callable[[], Any], interval: float) -> None:
        self.run = run
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="tagloop-scoring", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.run()
            except Exception:  # a failed round must not end the loop; the next one retries
                log.exception("scoring on change failed")

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
