"""Bringing the database's tag definitions in line with the workspace files.

Each tag whose meaning changed gets a new version and is recomputed for every entity of its
type; a tag removed from the workspace is retired and its assignments are removed (the
history keeps them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from tagloop import audit
from tagloop.engine.evaluator import Engine, Touched
from tagloop.engine.plans import ActiveTag
from tagloop.store import entities as entity_store
from tagloop.store import tags as tag_store
from tagloop.store import timers as timer_store
from tagloop.store.db import Database
from tagloop.store.tables import tag_assignments, tag_versions
from tagloop.store.tables import tags as tag_table
from tagloop.store.tags import TagChange
from tagloop.timeutil import now_us
from tagloop.workspace import Workspace

PAGE = 1000
Progress = Callable[[int], None]


@dataclass
class SyncResult:
    active: list[ActiveTag]
    new_versions: list[ActiveTag] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)


def sync(db: Database, workspace: Workspace, *, actor: audit.Actor | None = None) -> SyncResult:
    """Record new versions and retire removed tags; does not recompute (see `recompute`).

    Each new version (``tag.version``) and retirement (``tag.retire``) is audited, by
    ``actor`` (default `Actor.system`), with the definitions before and after."""
    actor = actor or audit.Actor.system()
    now = now_us()
    result = SyncResult(active=[])
    with db.write() as conn:
        changed: list[tuple[str, str, Any, Any]] = []  # action, tag, before, after
        for definition in workspace.tags.values():
            version = tag_store.sync_definition(
                db,
                conn,
                name=definition.name,
                entity_type=definition.entity,
                fingerprint=definition.fingerprint,
                definition=definition.definition,
                revision=workspace.revision,
                now=now,
            )
            active = ActiveTag(definition, version.version)
            result.active.append(active)
            if version.changed:
                result.new_versions.append(active)
                before = _version(conn, definition.name, version.version - 1)
                after = _version(conn, definition.name, version.version)
                changed.append(("tag.version", definition.name, before, after))
        for name in sorted(set(tag_store.active_definitions(conn)) - set(workspace.tags)):
            changed.append(("tag.retire", name, _version(conn, name, None), None))
            tag_store.retire(conn, name, now)
            result.retired.append(name)
        for action, name, before, after in changed:  # last: see `audit.record`
            audit.record(
                db,
                conn,
                actor=actor,
                action=action,
                target_type="tag",
                target_id=name,
                before=before,
                after=after,
            )
    for name in result.retired:
        _remove_all(db, name)
    return result


def _version(conn: Connection, tag: str, version: int | None) -> dict[str, Any] | None:
    """A stored version of a tag's definition (the current one if ``version`` is None)."""
    query = select(
        tag_versions.c.version,
        tag_versions.c.definition,
        tag_versions.c.workspace_revision,
    ).where(tag_versions.c.tag == tag)
    if version is None:
        query = query.join(tag_table, tag_table.c.name == tag_versions.c.tag).where(
            tag_versions.c.version == tag_table.c.version
        )
    else:
        query = query.where(tag_versions.c.version == version)
    row = conn.execute(query).first()
    if row is None:
        return None
    return {
        "version": row.version,
        "definition": row.definition,
        "revision": row.workspace_revision,
    }


def recompute(
    db: Database, engine: Engine, tags: Sequence[ActiveTag], progress: Progress | None = None
) -> int:
    """Evaluate ``tags`` for every entity of their types; returns the number of changes.

    Works page by page in short transactions so ingestion is never blocked for long.
    """
    by_type: dict[str, set[str]] = {}
    for tag in tags:
        by_type.setdefault(tag.definition.entity, set()).add(tag.name)
    total = 0
    for entity_type, names in by_type.items():
        after: str | None = None
        while True:
            with engine.lock, db.write() as conn:
                rows = entity_store.page(conn, entity_type, tag=None, after=after, limit=PAGE)
                if not rows:
                    break
                keyed = {(entity_type, row.id): row for row in rows}
                engine.prepare(db, conn, keyed)
                touched = {k: Touched(r, names=frozenset(names)) for k, r in keyed.items()}
                changes, timers = engine.evaluate(db, conn, touched, {}, engine.clock())
                tag_store.apply(db, conn, changes)
                timer_store.set_due(db, conn, timers)
                total += len(changes)
                after = rows[-1].id
            if progress is not None:
                progress(len(rows))
    return total


def _remove_all(db: Database, tag: str) -> None:
    now = now_us()
    while True:
        with db.write() as conn:
            rows = list(
                conn.execute(
                    select(tag_assignments).where(tag_assignments.c.tag == tag).limit(PAGE)
                )
            )
            if not rows:
                return
            tag_store.apply(
                db,
                conn,
                [
                    TagChange(
                        entity_type=row.entity_type,
                        entity_id=row.entity_id,
                        tag=tag,
                        change="removed",
                        value=None,
                        previous=row.value,
                        version=row.version,
                        source="retired",
                        evidence=None,
                        at=now,
                    )
                    for row in rows
                ],
            )
