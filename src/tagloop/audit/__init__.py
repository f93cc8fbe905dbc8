"""The tamper-evident audit trail: append-only, hash-chained records of every change.

`record` appends one record inside the caller's write transaction (``db.write()``), so the
record commits or rolls back with the change it describes. Each record carries the hash of
the previous one (`tagloop.audit.chain`); `verify` walks the chain and names the first
record that was edited, deleted or reordered.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from tagloop.audit.chain import FIELDS, GENESIS, digest, normalize
from tagloop.audit.verify import VerifyReport, verify
from tagloop.store.db import Database, dump_json, insert_sql
from tagloop.store.tables import audit_log
from tagloop.timeutil import now_us

__all__ = ["GENESIS", "Actor", "VerifyReport", "record", "verify"]

# pg_advisory_xact_lock key that serialises appends on PostgreSQL ("tagloop" + 1).
_LOCK_KEY = 0x7461676C6F6F7001


@dataclass(frozen=True)
class Actor:
    """Who made a change and from where.

    ``kind`` is one of ``key`` (an API key), ``user``, ``cli`` or ``system``; ``origin`` the
    client address, ``"cli"`` or ``"system"``.

    >>> Actor.system()
    Actor(name='system', kind='system', origin='system')
    >>> Actor.cli().name.startswith("cli:")
    True
    """

    name: str
    kind: str
    origin: str

    @classmethod
    def cli(cls) -> Actor:
        """The operating-system user running the command line."""
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            user = "unknown"
        return cls(f"cli:{user}", "cli", "cli")

    @classmethod
    def system(cls) -> Actor:
        """tagloop itself (e.g. definition versions recorded when a workspace opens)."""
        return cls("system", "system", "system")


def record(
    db: Database,
    conn: Connection,
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    before: Any = None,
    after: Any = None,
    at: int | None = None,
) -> None:
    """Append one audit record within the caller's transaction (``conn`` from
    ``db.write()``).

    Appends are serialised so that two writers never fork the chain: on SQLite by the write
    transaction's lock (``BEGIN IMMEDIATE``), on PostgreSQL by a transaction-level advisory
    lock, held until the caller commits. ``seq`` is the last one plus one, so a committed
    chain has no gaps. Call it after making the change, last in the transaction: the lock
    is then held only until the commit, and never taken before a row lock another audited
    transaction may hold (which could deadlock).

    >>> from tagloop.store.migrate import upgrade
    >>> db = Database("sqlite://"); upgrade(db)
    >>> with db.write() as conn:
    ...     record(db, conn, actor=Actor.system(), action="key.create",
    ...            target_type="key", target_id="k1", after={"name": "ci"})
    >>> verify(db).ok
    True
    """
    if not db.is_sqlite:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    # Through the driver: PII reads append a record on the request path, and SQLAlchemy's
    # statement machinery would cost more than the write itself.
    last = db.fetch(conn, _LAST, [])
    row: dict[str, Any] = {
        "seq": last[0][0] + 1 if last else 1,
        "at": now_us() if at is None else at,
        "actor": _clip(actor.name, "actor"),
        "actor_kind": _clip(actor.kind, "actor_kind"),
        "origin": _clip(actor.origin, "origin"),
        "action": _clip(action, "action"),
        "target_type": _clip(target_type, "target_type"),
        "target_id": _clip(target_id, "target_id"),
        "before": normalize(before),
        "after": normalize(after),
        "prev_hash": last[0][1] if last else GENESIS,
    }
    row["hash"] = digest(row)
    values = [dump_json(row[c]) if c in _JSON else row[c] for c in _COLUMNS]
    db.executemany(conn, _INSERT, [values])


_LAST = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
_COLUMNS = [*FIELDS, "hash"]
_JSON = frozenset({"before", "after"})
_INSERT = insert_sql("audit_log", _COLUMNS)


def _clip(value: str, column: str) -> str:
    """Fit a value to its column (PostgreSQL refuses longer strings; SQLite keeps them)."""
    length: int | None = getattr(audit_log.c[column].type, "length", None)
    return value if length is None else value[:length]
