"""Dead letters: records a source could not turn into events, kept with their error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Row, select

from tagloop.store.db import Database
from tagloop.store.events import chunks
from tagloop.store.tables import dead_letters


def add(db: Database, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store rejected records: each has ``source, location, error, payload, received_at``.

    A NUL character, which PostgreSQL cannot keep in text (and a likely reason the record
    was rejected), is stored as the escape ``\\u0000``: the bad record is kept either way.

    A record with a ``record_key`` already kept for its source (a broker redelivering a
    bad message after a crash) is not kept twice.
    """
    rows = _unseen(db, conn, rows)
    if rows:
        conn.execute(
            dead_letters.insert(),
            [
                {"replayed": False, "stream": None, **{k: _text(v) for k, v in row.items()}}
                | {"record": _record(row.get("record"))}
                for row in rows
            ],
        )


def _unseen(db: Database, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[Any]:
    # Keys are compared as stored: with NUL escaped (snapshot keys join parts with NUL).
    keyed: dict[str, set[str]] = {}
    for row in rows:
        if row.get("record_key") is not None:
            keyed.setdefault(row["source"], set()).add(_text(row["record_key"]))
    seen: set[tuple[str, str]] = set()
    for source, keys in keyed.items():
        for chunk in chunks(sorted(keys), 900):
            condition, params = db.in_list("record_key", chunk)
            query = f"SELECT record_key FROM dead_letters WHERE source = ? AND {condition}"
            seen.update((source, r[0]) for r in db.fetch(conn, query, (source, *params)))
    kept = []
    for row in rows:
        key = _text(row.get("record_key"))
        if key is not None:
            if (row["source"], key) in seen:
                continue
            seen.add((row["source"], key))
        kept.append(row)
    return kept


def _text(value: Any) -> Any:
    return value.replace("\x00", "\\u0000") if isinstance(value, str) else value


def _record(value: Any) -> Any:
    """The parsed record, when it can be stored as JSON as is (the raw payload always is)."""
    if value is None:
        return None
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return None if b"\\u0000" in text else orjson.loads(text)


def listing(
    conn: Connection, source: str | None = None, limit: int = 100, *, replayed: bool = True
) -> list[Row[Any]]:
    """The newest letters (of ``source``), replayed ones too unless ``replayed`` is false."""
    query = select(dead_letters).order_by(dead_letters.c.seq.desc()).limit(limit)
    if source is not None:
        query = query.where(dead_letters.c.source == source)
    if not replayed:
        query = query.where(dead_letters.c.replayed.is_(False))
    return list(conn.execute(query))


def pending(
    conn: Connection, *, source: str | None = None, seqs: Sequence[int] | None = None
) -> list[Row[Any]]:
    """Letters not replayed yet, oldest first: of ``source``, or those numbered ``seqs``."""
    query = select(dead_letters).where(dead_letters.c.replayed.is_(False))
    if source is not None:
        query = query.where(dead_letters.c.source == source)
    if seqs:
        query = query.where(dead_letters.c.seq.in_(list(seqs)))
    return list(conn.execute(query.order_by(dead_letters.c.seq)))


def get(conn: Connection, seq: int) -> Row[Any] | None:
    return conn.execute(select(dead_letters).where(dead_letters.c.seq == seq)).first()


def mark_replayed(conn: Connection, seqs: Sequence[int], now: int) -> None:
    if seqs:
        conn.execute(
            dead_letters.update()
            .where(dead_letters.c.seq.in_(list(seqs)))
            .values(replayed=True, replayed_at=now)
        )


def set_error(conn: Connection, seq: int, error: str) -> None:
    conn.execute(dead_letters.update().where(dead_letters.c.seq == seq).values(error=error))
