"""The entities a run reads (its own and the related ones its trigger named), from the
store: for the worker taking runs, and for the commit that decides a new run's conditions
(`tagloop.flows.triggers.Triggers.decide`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tagloop.flows.scope import FlowContext, Subject
from tagloop.store import entities as entity_store
from tagloop.store import tags as tag_store

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from tagloop.store.db import Database
    from tagloop.store.entities import EntityRow

Key = tuple[str, str]
Subjects = dict[Key, Subject]


def run_keys(entity_type: str, entity_id: str, scope: Mapping[str, Any] | None) -> list[Key]:
    """The entities a run reads: its own and the related ones its trigger named.

    >>> run_keys("order", "O-1", {"related": {"customer": "C-9"}})
    [('order', 'O-1'), ('customer', 'C-9')]
    """
    related = (scope or {}).get("related") or {}
    return [(entity_type, entity_id), *related.items()]


def read(
    db: Database,
    conn: Connection,
    keys: Iterable[Key],
    tag_names: list[str],
    now: int,
    profiles: Mapping[Key, EntityRow] | None = None,
) -> Subjects:
    """Profiles and held tags (not expired at ``now``) of ``keys``, those that exist, in
    one read per chunk on ``conn``; ``profiles``: rows at hand already (a commit's)."""
    wanted = set(keys)
    rows = {key: profiles[key] for key in wanted if profiles and key in profiles}
    if len(rows) < len(wanted):
        rows.update(entity_store.load(db, conn, wanted - rows.keys()))
    held = tag_store.current(db, conn, rows, tag_names)
    tags: dict[Key, dict[str, Any]] = {}
    for (entity_type, entity_id, tag), assignment in held.items():
        # held tags only: not a proposal waiting for review, a rejected one or an exclusion
        if assignment.active and (assignment.expires is None or assignment.expires > now):
            tags.setdefault((entity_type, entity_id), {})[tag] = assignment.value
    return {
        key: Subject(key[0], key[1], profile.attributes, tags.get(key, {}))
        for key, profile in rows.items()
    }


def context(
    entity_type: str,
    entity_id: str,
    scope: Mapping[str, Any] | None,
    subjects: Mapping[Key, Subject],
    now: int,
) -> tuple[FlowContext, dict[str, Subject]]:
    """What a run's conditions see, and its related entities by type (those that exist:
    one the store does not know is null to conditions)."""
    scope = scope or {}
    entity = subjects.get((entity_type, entity_id)) or Subject(entity_type, entity_id)
    related_ids: Mapping[str, str] = scope.get("related") or {}
    related = {t: subjects[(t, i)] for t, i in related_ids.items() if (t, i) in subjects}
    return FlowContext(now, entity, scope.get("event"), related), related
