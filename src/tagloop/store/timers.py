"""Entity timers: when each entity must be re-evaluated because time alone may change a
tag. Kept in the database, so they survive restarts and any process can see what is due."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from tagloop.store.db import Database

_UPSERT = (
    "INSERT INTO entity_timers (entity_type, entity_id, due) VALUES (?, ?, ?) "
    "ON CONFLICT (entity_type, entity_id) DO UPDATE SET due = excluded.due"
)
# An entity evaluated in part (only the tags an event affects) keeps an earlier due time:
# the tags not evaluated may have a change pending then, even one already overdue.
_EARLIER = (
    "INSERT INTO entity_timers (entity_type, entity_id, due) VALUES (?, ?, ?) "
    "ON CONFLICT (entity_type, entity_id) DO UPDATE SET due = CASE "
    "WHEN entity_timers.due < excluded.due THEN entity_timers.due ELSE excluded.due END"
)
_DELETE = "DELETE FROM entity_timers WHERE entity_type = ? AND entity_id = ?"

Timer = tuple[str, str, int | None, bool]  # (type, id, due, every time-dependent tag looked at)


def set_due(db: Database, conn: Connection, timers: Sequence[Timer]) -> None:
    """Set (or with None, clear) the due time of each ``(type, id, due, full)``; where not
    ``full``, an earlier due time already set is kept (and None clears nothing)."""
    db.executemany(conn, _UPSERT, [t[:3] for t in timers if t[2] is not None and t[3]])
    db.executemany(conn, _EARLIER, [t[:3] for t in timers if t[2] is not None and not t[3]])
    db.executemany(conn, _DELETE, [(t[0], t[1]) for t in timers if t[2] is None and t[3]])


def due(db: Database, conn: Connection, now: int, limit: int) -> list[tuple[str, str]]:
    """Entities whose timer is due at ``now``, earliest first."""
    rows = db.fetch(
        conn,
        "SELECT entity_type, entity_id FROM entity_timers WHERE due <= ? ORDER BY due LIMIT ?",
        (now, limit),
    )
    return [(r[0], r[1]) for r in rows]


def next_due(db: Database, conn: Connection) -> int | None:
    rows = db.fetch(conn, "SELECT min(due) FROM entity_timers", ())
    return rows[0][0] if rows and rows[0][0] is not None else None
