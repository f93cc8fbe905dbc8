"""Model scores: the current score of each entity from a model's active version, and the
entities waiting to be scored again after a change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from tagloop.store.db import Database
from tagloop.store.events import chunks

_UPSERT = (
    "INSERT INTO model_scores (model, entity_type, entity_id, score, version, scored_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model, entity_type, entity_id) DO UPDATE SET "
    "score = excluded.score, version = excluded.version, scored_at = excluded.scored_at"
)

_UPSERT_ARRAYS = (
    "INSERT INTO model_scores (model, entity_type, entity_id, score, version, scored_at) "
    "SELECT ?, ?, u.id, u.score, ?, ? FROM unnest(?::text[], ?::float8[]) AS u(id, score) "
    "ON CONFLICT (model, entity_type, entity_id) DO UPDATE SET "
    "score = excluded.score, version = excluded.version, scored_at = excluded.scored_at"
)


def scores_for(
    db: Database, conn: Connection, keys: Iterable[tuple[str, str]], models: Iterable[str]
) -> dict[tuple[str, str], dict[str, float]]:
    """The stored scores of ``models`` for the entities ``keys``: entity -> model -> score."""
    names = sorted(set(models))
    found: dict[tuple[str, str], dict[str, float]] = {}
    if not names:
        return found
    by_type: dict[str, list[str]] = {}
    for entity_type, entity_id in sorted(set(keys)):
        by_type.setdefault(entity_type, []).append(entity_id)
    for entity_type, ids in by_type.items():
        for chunk in chunks(ids, 900 - len(names)):
            in_ids, id_params = db.in_list("entity_id", chunk)
            in_models, model_params = db.in_list("model", names)
            query = (
                "SELECT entity_id, model, score FROM model_scores "
                f"WHERE entity_type = ? AND {in_ids} AND {in_models}"
            )
            for row in db.fetch(conn, query, (entity_type, *id_params, *model_params)):
                found.setdefault((entity_type, row[0]), {})[row[1]] = float(row[2])
    return found


def write_scores(
    db: Database,
    conn: Connection,
    model: str,
    entity_type: str,
    rows: Sequence[tuple[str, float]],
    version: int,
    now: int,
    *,
    replace: bool = False,
) -> None:
    """Store scores (``replace``: the model's scores of this type are exactly these)."""
    if replace:
        db.executemany(
            conn,
            "DELETE FROM model_scores WHERE model = ? AND entity_type = ?",
            [(model, entity_type)],
        )
    if db.is_sqlite:
        db.executemany(
            conn, _UPSERT, [(model, entity_type, eid, score, version, now) for eid, score in rows]
        )
        return
    # PostgreSQL: the rows as two arrays in one statement; executemany would be one round
    # trip per row (17,000 rows/s where this does several hundred thousand)
    for start in range(0, len(rows), 50_000):
        part = rows[start : start + 50_000]
        db.executemany(
            conn,
            _UPSERT_ARRAYS,
            [(model, entity_type, version, now, [r[0] for r in part], [r[1] for r in part])],
        )


def mark_pending(
    db: Database, conn: Connection, rows: Sequence[tuple[str, str, str]], due: int
) -> None:
    """(model, entity type, id) to score again at ``due``; a later change moves it later
    (debounce: an entity receiving a burst of events is scored once, after the burst)."""
    db.executemany(
        conn,
        "INSERT INTO model_pending (model, entity_type, entity_id, due) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (model, entity_type, entity_id) DO UPDATE SET due = excluded.due",
        [(*row, due) for row in rows],
    )


def take_pending(
    db: Database, conn: Connection, now: int, limit: int = 10_000
) -> list[tuple[str, str, str]]:
    """The pending entities due by ``now`` (removed from the table: the caller scores them
    in the same transaction)."""
    rows = [
        (r[0], r[1], r[2])
        for r in db.fetch(
            conn,
            "SELECT model, entity_type, entity_id FROM model_pending WHERE due <= ? "
            "ORDER BY due LIMIT ?",
            (now, limit),
        )
    ]
    db.executemany(
        conn,
        "DELETE FROM model_pending WHERE model = ? AND entity_type = ? AND entity_id = ? "
        "AND due <= ?",
        [(*row, now) for row in rows],
    )
    return rows
