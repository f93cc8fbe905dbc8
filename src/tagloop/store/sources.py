"""What the store keeps for sources: checkpoints, record versions of snapshots, status.

Checkpoints and versions are written in the transaction that commits the events read up to
them (`tagloop.ingest.pipeline.Ingestor.commit_many`), so a restart resumes exactly there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from tagloop.audit import Actor, record
from tagloop.store.db import Database, dump_json
from tagloop.store.tables import source_checkpoints, source_status

Checkpoint = tuple[str, str, Any]  # (source, stream, position)
Version = tuple[str, str, str, str]  # (source, stream, record key, version)

_CHECKPOINT = (
    "INSERT INTO source_checkpoints (source, stream, position, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (source, stream) DO UPDATE SET position = excluded.position, "
    "updated_at = excluded.updated_at"
)
_VERSION = (
    "INSERT INTO source_versions (source, stream, record_key, version) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (source, stream, record_key) DO UPDATE SET version = excluded.version"
)


def save_checkpoints(db: Database, conn: Connection, rows: Sequence[Checkpoint], now: int) -> None:
    """Set the position of each ``(source, stream)`` (the last one given wins)."""
    latest = {(source, stream): position for source, stream, position in rows}
    db.executemany(
        conn,
        _CHECKPOINT,
        [(s, t, dump_json(position), now) for (s, t), position in latest.items()],
    )


def checkpoints(db: Database, source: str) -> dict[str, Any]:
    """The committed position of each stream of ``source``.

    >>> from tagloop.store.migrate import upgrade
    >>> db = Database("sqlite://"); upgrade(db)
    >>> with db.write() as conn:
    ...     save_checkpoints(db, conn, [("mes", "orders", {"cursor": 5}),
    ...                                 ("mes", "orders", {"cursor": 9})], now=1)
    >>> checkpoints(db, "mes")
    {'orders': {'cursor': 9}}
    """
    with db.read() as conn:
        rows = db.fetch(
            conn, "SELECT stream, position FROM source_checkpoints WHERE source = ?", [source]
        )
    return {stream: db.json_value(position) for stream, position in rows}


def save_versions(db: Database, conn: Connection, rows: Sequence[Version]) -> None:
    db.executemany(conn, _VERSION, list({row[:3]: row for row in rows}.values()))


def versions(db: Database, source: str, stream: str, keys: Sequence[str]) -> dict[str, str]:
    """The committed version of each of ``keys`` that has one."""
    found: dict[str, str] = {}
    with db.read() as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            where, params = db.in_list("record_key", chunk)
            rows = db.fetch(
                conn,
                "SELECT record_key, version FROM source_versions "
                f"WHERE source = ? AND stream = ? AND {where}",
                [source, stream, *params],
            )
            found.update((key, version) for key, version in rows)
    return found


def set_status(db: Database, source: str, values: dict[str, Any]) -> None:
    """Insert or update the status row of ``source`` (its own short transaction)."""
    with db.write() as conn:
        exists = conn.execute(
            select(source_status.c.source).where(source_status.c.source == source)
        ).first()
        if exists is None:
            defaults = {
                "state": "idle",
                "records_read": 0,
                "events_written": 0,
                "rejected": 0,
                "duplicates": 0,
                "failures": 0,
            }
            conn.execute(source_status.insert().values(source=source, **{**defaults, **values}))
        else:
            conn.execute(
                source_status.update().where(source_status.c.source == source).values(**values)
            )


def statuses(db: Database) -> dict[str, Row[Any]]:
    with db.read() as conn:
        return {row.source: row for row in conn.execute(select(source_status))}


def clear_checkpoints(db: Database, source: str, actor: Actor) -> int:
    """Forget where ``source`` stands (its next run reads everything again; ids dedupe),
    audited as ``source.reset`` by ``actor`` with the positions it forgot."""
    with db.write() as conn:
        table = source_checkpoints
        before = {
            row.stream: row.position
            for row in conn.execute(select(table).where(table.c.source == source))
        }
        removed = int(conn.execute(table.delete().where(table.c.source == source)).rowcount)
        record(
            db,
            conn,
            actor=actor,
            action="source.reset",
            target_type="source",
            target_id=source,
            before=before or None,
        )
        return removed
