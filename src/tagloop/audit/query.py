"""Reading the audit log: filters, pages by ``seq`` and records as JSON objects.

Used by ``GET /v1/audit`` and ``tagloop audit export``; results are in ``seq`` order (the
order the chain was written in).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select

from tagloop.audit.chain import FIELDS
from tagloop.store.db import Database
from tagloop.store.tables import audit_log
from tagloop.timeutil import time_text

PAGE = 1000


@dataclass(frozen=True)
class Filters:
    """Which records to return; every given filter must match. ``since`` is inclusive and
    ``until`` exclusive (epoch microseconds)."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: int | None = None
    until: int | None = None


def _select(filters: Filters, after: int | None, limit: int) -> Select[Any]:
    query = select(audit_log).order_by(audit_log.c.seq).limit(limit)
    for name in ("actor", "action", "target_type", "target_id"):
        value = getattr(filters, name)
        if value is not None:
            query = query.where(audit_log.c[name] == value)
    if filters.since is not None:
        query = query.where(audit_log.c.at >= filters.since)
    if filters.until is not None:
        query = query.where(audit_log.c.at < filters.until)
    if after is not None:
        query = query.where(audit_log.c.seq > after)
    return query


def page(
    db: Database, filters: Filters, *, after: int | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to ``limit`` records with ``seq`` greater than ``after``, and the cursor of the
    next page (None on the last one).

    >>> from tagloop.audit import Actor, record
    >>> from tagloop.store.migrate import upgrade
    >>> db = Database("sqlite://"); upgrade(db)
    >>> for i in range(3):
    ...     with db.write() as conn:
    ...         record(db, conn, actor=Actor.system(), action="tag.version",
    ...                target_type="tag", target_id=f"t{i}")
    >>> records, cursor = page(db, Filters(action="tag.version"), limit=2)
    >>> [r["target_id"] for r in records], cursor
    (['t0', 't1'], 2)
    >>> page(db, Filters(), after=cursor)[1] is None
    True
    """
    with db.read() as conn:
        rows = conn.execute(_select(filters, after, limit + 1)).mappings().all()
    records = [as_json(row) for row in rows[:limit]]
    return records, (records[-1]["seq"] if len(rows) > limit else None)


def export(db: Database, filters: Filters, *, after: int | None = None) -> Iterator[dict[str, Any]]:
    """Every matching record (with ``seq`` greater than ``after``), read in pages of `PAGE`:
    one short read transaction each, so a long export never holds back writers."""
    while True:
        records, after = page(db, filters, after=after, limit=PAGE)
        yield from records
        if after is None:
            return


def as_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A record as a JSON object: the columns as stored (``at`` in epoch microseconds, so
    that the hash can be recomputed from an export) plus ``time``, ``at`` in ISO 8601 UTC."""
    record = {name: row[name] for name in (*FIELDS, "hash")}
    record["time"] = time_text(record["at"])
    return record
