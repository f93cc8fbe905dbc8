"""The review queue: proposals waiting for a reviewer, filtered and paged, each with the
evidence it was proposed on (the rule's values as stored with the assignment, or a model's
top feature contributions when its evidence carries them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tagloop.errors import NotFound, ValidationFailed
from tagloop.names import suggest
from tagloop.store import entities as entity_store
from tagloop.store import reviews as store
from tagloop.store import tags as tag_store
from tagloop.store.db import Database
from tagloop.timeutil import iso, parse_duration
from tagloop.workspace import Workspace

MAX_PAGE = 1000
# Where a model puts its explanation in an assignment's evidence: feature -> contribution.
CONTRIBUTIONS = "contributions"
TOP = 10  # contributions shown with an item, the largest in magnitude first


def ts(micros: int | None) -> str | None:
    text = iso(micros)
    return text.replace("+00:00", "Z") if text else None


def filters(
    workspace: Workspace,
    *,
    now: int,
    status: str | None = store.PENDING,
    tag: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    older_than: str | None = None,
    newer_than: str | None = None,
    ids: Iterable[int] | None = None,
    entity_types: frozenset[str] | None = None,
) -> store.Filters:
    """Checked queue filters; ``older_than`` / ``newer_than`` are ages such as ``2d``.

    >>> from tagloop.workspace.scaffold import scaffold
    >>> import pathlib, tempfile
    >>> from tagloop.workspace import load_workspace
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> scaffold(root, "demo", "Asia/Shanghai", "sqlite:///t.db")
    >>> filters(load_workspace(root), now=10**12, older_than="1d").created_before
    913600000000
    """
    if status is not None and status not in store.STATUSES:
        raise ValidationFailed(
            f"unknown status {status!r}{suggest(status, store.STATUSES)}; "
            f"statuses: {', '.join(store.STATUSES)}"
        )
    if tag is not None and tag not in workspace.tags:
        raise NotFound(f"unknown tag {tag!r}" + suggest(tag, list(workspace.tags)))
    if entity_type is not None and entity_type not in workspace.dictionary:
        raise NotFound(workspace.dictionary.unknown(entity_type))
    return store.Filters(
        status=status,
        tag=tag,
        entity_type=entity_type,
        entity_id=entity_id,
        created_before=now - _age(older_than, "older_than") if older_than else None,
        created_after=now - _age(newer_than, "newer_than") if newer_than else None,
        ids=tuple(ids) if ids is not None else None,
        entity_types=entity_types,
    )


def _age(text: str, name: str) -> int:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ValidationFailed(f"{name}: {exc}") from None
    if value < 0:
        raise ValidationFailed(f"{name}: give a positive age such as 2d")
    return value


def view(row: Any, now: int) -> dict[str, Any]:
    """An item as the API and the CLI show it."""
    evidence = row.evidence
    decision = None
    if row.decided_at is not None:
        decision = {
            "at": ts(row.decided_at),
            "by": row.decided_by,
            "by_kind": row.decided_by_kind,
            "reason": row.reason,
            "note": row.note,
            "override": row.override,
        }
    return {
        "id": row.id,
        "entity": {"type": row.entity_type, "id": row.entity_id},
        "tag": row.tag,
        "value": row.value,
        "confidence": row.confidence,
        "policy": row.policy,
        "status": row.status,
        "version": row.version,
        "source": row.source,
        "created_at": ts(row.created_at),
        "age_seconds": max(0, (now - row.created_at) // 1_000_000),
        "evidence": evidence,
        "contributions": top_contributions(evidence),
        "decision": decision,
    }


def top_contributions(evidence: Any, top: int = TOP) -> list[dict[str, Any]] | None:
    """A model's largest feature contributions (by magnitude), when the evidence has them.

    >>> top_contributions({"contributions": {"tenure": -0.4, "charges": 0.9, "x": 0.1}}, 2)
    [{'feature': 'charges', 'contribution': 0.9}, {'feature': 'tenure', 'contribution': -0.4}]
    >>> top_contributions({"values": {"spend": 3}}) is None
    True
    """
    if not isinstance(evidence, dict):
        return None
    found = evidence.get(CONTRIBUTIONS)
    if isinstance(found, list):  # already [{feature, contribution}, ...]
        return found[:top]
    if not isinstance(found, dict):
        return None
    numeric = [(k, v) for k, v in found.items() if isinstance(v, int | float)]
    numeric.sort(key=lambda kv: (-abs(kv[1]), kv[0]))
    return [{"feature": k, "contribution": v} for k, v in numeric[:top]]


def page(
    db: Database, chosen: store.Filters, *, now: int, after: int | None, limit: int
) -> dict[str, Any]:
    """A page of the queue, oldest first: the items, the cursor of the next page (None at
    the end) and how many items match in all."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit must be 1 to {MAX_PAGE}")
    with db.read() as conn:
        rows = store.items(conn, chosen, after=after, limit=limit + 1)
        total = store.count(conn, chosen)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [view(r, now) for r in rows],
        "next": rows[-1].id if more and rows else None,
        "total": total,
    }


def show(
    db: Database, item_id: int, *, now: int, entity_types: frozenset[str] | None = None
) -> dict[str, Any]:
    """One item with its entity's attributes, the assignment as it stands and the pins."""
    with db.read() as conn:
        row = store.item(conn, item_id)
        if row is None or (entity_types is not None and row.entity_type not in entity_types):
            raise NotFound(f"no review item {item_id}")
        key = (row.entity_type, row.entity_id)
        profile = entity_store.load(db, conn, [key]).get(key)
        assignment = next((a for a in tag_store.for_entity(conn, *key) if a.tag == row.tag), None)
        pins = store.live_pins(conn, now, entity_type=key[0], entity_id=key[1], tag=row.tag)
    body = view(row, now)
    body["attributes"] = dict(profile.attributes) if profile is not None else None
    body["assignment"] = (
        {
            "value": assignment.value,
            "status": assignment.status,
            "source": assignment.source,
            "since": ts(assignment.since),
        }
        if assignment is not None
        else None
    )
    body["pins"] = [pin_view(p) for p in pins]
    return body


def pin_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "entity": {"type": row.entity_type, "id": row.entity_id},
        "tag": row.tag,
        "mode": row.mode,
        "value": row.value,
        "reason": row.reason,
        "review_id": row.review_id,
        "created_by": row.created_by,
        "created_at": ts(row.created_at),
        "expires_at": ts(row.expires_at),
        "lifted_at": ts(row.lifted_at),
        "lifted_by": row.lifted_by,
    }
