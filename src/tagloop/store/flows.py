"""Flow runs, their trace, versions and dedupe windows in the store (work orders:
`tagloop.store.work_orders`).

A run's row is written in the transaction of what triggered it (durably, with it); from
then on one worker at a time holds it (``status = running`` with a lease, taken back when
the lease runs out: the worker died), and every step it takes is appended to
``flow_steps`` before the run moves on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from tagloop.audit import Actor
from tagloop.audit import record as audit_record
from tagloop.store.db import Database
from tagloop.store.tables import flow_dedupe, flow_runs, flow_steps, flow_versions

WAITING = ("pending", "waiting", "retrying")
FINISHED = ("succeeded", "failed", "skipped")


def version(
    db: Database, conn: Connection, flow: str, digest: str, definition: Any, now: int
) -> int:
    """The version number of ``flow`` with this ``digest`` (a new one when it changed)."""
    found = conn.execute(
        select(flow_versions.c.version).where(
            flow_versions.c.flow == flow, flow_versions.c.digest == digest
        )
    ).scalar()
    if found is not None:
        return int(found)
    latest = conn.execute(
        select(func.max(flow_versions.c.version)).where(flow_versions.c.flow == flow)
    ).scalar()
    number = int(latest or 0) + 1
    conn.execute(
        flow_versions.insert().values(
            flow=flow, version=number, digest=digest, definition=definition, created_at=now
        )
    )
    return number


def definition(conn: Connection, flow: str, number: int) -> tuple[str, Any] | None:
    """The digest and stored definition of version ``number`` of ``flow``."""
    row = conn.execute(
        select(flow_versions.c.digest, flow_versions.c.definition).where(
            flow_versions.c.flow == flow, flow_versions.c.version == number
        )
    ).first()
    return (str(row.digest), row.definition) if row is not None else None


def create_runs(
    db: Database,
    conn: Connection,
    runs: Sequence[Mapping[str, Any]],
    steps: Sequence[Mapping[str, Any]] = (),
) -> set[str]:
    """Insert runs, with ``steps`` of their trace; one already made for the same flow and
    trigger is kept (a replayed event starts nothing twice), and the steps of a run not
    inserted are dropped. Returns the ids of the new runs."""
    if not runs:
        return set()
    statement = db.insert(flow_runs).on_conflict_do_nothing(index_elements=["flow", "trigger_key"])
    # RETURNING, not rowcount: an executemany's rowcount is -1 on PostgreSQL.
    result = conn.execute(statement.returning(flow_runs.c.id), list(runs))
    new = {str(row.id) for row in result}
    append_steps(conn, [step for step in steps if step["run_id"] in new])
    return new


def claim(db: Database, now: int, lease_us: int, limit: int) -> list[Row[Any]]:
    """Take up to ``limit`` runs that are due (or whose worker's lease ran out) and lease
    them to the caller until ``now + lease_us``."""
    due = or_(
        and_(flow_runs.c.status.in_(WAITING), flow_runs.c.next_at <= now),
        and_(flow_runs.c.status == "running", flow_runs.c.lease_until < now),
    )
    # Not durable (`Database.write`): the worker's own records survive a crash of the
    # process; after a power cut a lost one only makes a step run again under its
    # idempotency key, which the design allows for anyway.
    with db.write(durable=False) as conn:
        query = (
            select(flow_runs.c.id)
            .where(due)
            .order_by(flow_runs.c.next_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = [row.id for row in conn.execute(query)]
        if not ids:
            return []
        conn.execute(
            update(flow_runs)
            .where(flow_runs.c.id.in_(ids))
            .values(status="running", lease_until=now + lease_us, updated_at=now)
        )
        return list(conn.execute(select(flow_runs).where(flow_runs.c.id.in_(ids))))


def next_due(db: Database) -> int | None:
    """When the earliest waiting run is due (None: none is)."""
    with db.read() as conn:
        value = conn.execute(
            select(func.min(flow_runs.c.next_at)).where(flow_runs.c.status.in_(WAITING))
        ).scalar()
    return int(value) if value is not None else None


def append_steps(conn: Connection, steps: Sequence[Mapping[str, Any]]) -> None:
    if steps:
        conn.execute(flow_steps.insert(), list(steps))


def trace(conn: Connection, run_id: str) -> list[Row[Any]]:
    return traces(conn, [run_id]).get(run_id, [])


def traces(conn: Connection, run_ids: Sequence[str]) -> dict[str, list[Row[Any]]]:
    """The trace of each run in ``run_ids`` (those that have one), in order."""
    found: dict[str, list[Row[Any]]] = {}
    for start in range(0, len(run_ids), 500):
        query = (
            select(flow_steps)
            .where(flow_steps.c.run_id.in_(run_ids[start : start + 500]))
            .order_by(flow_steps.c.seq)
        )
        for row in conn.execute(query):
            found.setdefault(row.run_id, []).append(row)
    return found


def settle(
    db: Database,
    run_id: str,
    status: str,
    now: int,
    *,
    next_at: int | None = None,
    error: str | None = None,
) -> None:
    """Leave a run ``status`` (waiting/retrying until ``next_at``, or finished)."""
    with db.write(durable=False) as conn:  # see `claim`
        settle_many(conn, [(run_id, status, next_at, error)], now)


_SETTLE = (
    update(flow_runs)
    .where(flow_runs.c.id == bindparam("run"))
    .values(
        status=bindparam("to"),
        next_at=bindparam("due"),
        lease_until=None,
        error=bindparam("why"),
        updated_at=bindparam("now"),
        finished_at=bindparam("end"),
    )
)


def settle_many(
    conn: Connection, runs: Sequence[tuple[str, str, int | None, str | None]], now: int
) -> None:
    """`settle` for each ``(run id, status, next_at, error)``, in one statement."""
    if runs:
        conn.execute(
            _SETTLE,
            [
                {
                    "run": run_id,
                    "to": status,
                    "due": next_at,
                    "why": error,
                    "now": now,
                    "end": now if status in FINISHED else None,
                }
                for run_id, status, next_at, error in runs
            ],
        )


PRUNE_BATCH = 5_000


def prune(db: Database, finished_before: int, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` runs that finished before ``finished_before``, with their
    trace; returns how many (a worker calls it until it returns less than ``limit``)."""
    with db.write(durable=False) as conn:
        ids = [
            row.id
            for row in conn.execute(
                select(flow_runs.c.id)
                .where(flow_runs.c.status.in_(FINISHED), flow_runs.c.finished_at < finished_before)
                .limit(limit)
            )
        ]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            conn.execute(flow_steps.delete().where(flow_steps.c.run_id.in_(chunk)))
            conn.execute(flow_runs.delete().where(flow_runs.c.id.in_(chunk)))
    return len(ids)


def get(conn: Connection, run_id: str) -> Row[Any] | None:
    return conn.execute(select(flow_runs).where(flow_runs.c.id == run_id)).first()


def runs(
    conn: Connection,
    *,
    flow: str | None = None,
    status: str | None = None,
    entity: tuple[str, str] | None = None,
    limit: int = 100,
    before: int | None = None,
    before_id: str | None = None,
    entity_types: Collection[str] | None = None,
) -> list[Row[Any]]:
    """Runs, newest first (``created_at``, then ``id``, both descending).

    ``before``: older than this creation time, for paging; with ``before_id`` the page
    goes on after the run (``before``, ``before_id``) exactly, so runs created in the same
    microsecond (one commit starts many) are neither skipped nor repeated.
    ``entity_types``: only runs on these entity types (None: all).
    """
    query = select(flow_runs).order_by(flow_runs.c.created_at.desc(), flow_runs.c.id.desc())
    if flow is not None:
        query = query.where(flow_runs.c.flow == flow)
    if status is not None:
        query = query.where(flow_runs.c.status == status)
    if entity is not None:
        query = query.where(
            flow_runs.c.entity_type == entity[0], flow_runs.c.entity_id == entity[1]
        )
    if entity_types is not None:
        query = query.where(flow_runs.c.entity_type.in_(sorted(entity_types)))
    if before is not None and before_id is not None:
        query = query.where(
            or_(
                flow_runs.c.created_at < before,
                and_(flow_runs.c.created_at == before, flow_runs.c.id < before_id),
            )
        )
    elif before is not None:
        query = query.where(flow_runs.c.created_at < before)
    return list(conn.execute(query.limit(limit)))


def tally(conn: Connection, *, finished_since: int) -> dict[str, int]:
    """How many runs finished since ``finished_since``, by status (the worker's summary)."""
    query = (
        select(flow_runs.c.status, func.count())
        .where(flow_runs.c.finished_at >= finished_since, flow_runs.c.status.in_(FINISHED))
        .group_by(flow_runs.c.status)
    )
    return {str(status): int(count) for status, count in conn.execute(query)}


def waiting(conn: Connection) -> tuple[int, int | None]:
    """How many runs are pending, waiting or retrying, and when the earliest is due."""
    row = conn.execute(
        select(func.count(), func.min(flow_runs.c.next_at)).where(flow_runs.c.status.in_(WAITING))
    ).one()
    return int(row[0]), (int(row[1]) if row[1] is not None else None)


def wake(conn: Connection, entities: Sequence[tuple[str, str]], now: int) -> None:
    """Make the waiting runs of ``entities`` due now (their ``wait_until`` may hold)."""
    for entity_type, entity_id in entities:
        conn.execute(
            update(flow_runs)
            .where(
                flow_runs.c.status == "waiting",
                flow_runs.c.entity_type == entity_type,
                flow_runs.c.entity_id == entity_id,
                flow_runs.c.next_at > now,
            )
            .values(next_at=now)
        )


def retry(db: Database, run_id: str, now: int, *, actor: Actor | None = None) -> bool:
    """Make a failed run due again (``tagloop flows retry``); False if it is not failed.

    With ``actor``, the retry is audited (``flow.retry``: the status and error before,
    the status after) in the transaction that makes it.
    """
    with db.write() as conn:
        previous = conn.execute(
            select(flow_runs.c.status, flow_runs.c.error).where(flow_runs.c.id == run_id)
        ).first()
        result = conn.execute(
            update(flow_runs)
            .where(flow_runs.c.id == run_id, flow_runs.c.status == "failed")
            .values(status="pending", next_at=now, error=None, finished_at=None, updated_at=now)
        )
        if not result.rowcount:
            return False
        # The re-drive mark: after it the steps that failed are tried again, with a fresh
        # retry budget; the ones that succeeded are not done again.
        conn.execute(
            flow_steps.insert().values(
                run_id=run_id,
                step="run",
                kind="redrive",
                name="retry",
                attempt=1,
                status="done",
                started_at=now,
                finished_at=now,
            )
        )
        if actor is not None and previous is not None:
            audit_record(
                db,
                conn,
                actor=actor,
                action="flow.retry",
                target_type="flow_run",
                target_id=run_id,
                before={"status": previous.status, "error": previous.error},
                after={"status": "pending"},
            )
        return True


def hold_dedupe(db: Database, flow: str, key: str, run_id: str, until: int, now: int) -> str | None:
    """Take the dedupe ``key`` of ``flow`` for ``run_id`` until ``until``; returns the run
    that holds it already (then this one is a duplicate), else None.

    One statement takes it (insert, or take over a window that ended): two runs taking
    the same key at once cannot both get it, on either backend.
    """
    with db.write() as conn:
        statement = db.insert(flow_dedupe).values(flow=flow, key=key, run_id=run_id, until=until)
        taken = conn.execute(
            statement.on_conflict_do_update(
                index_elements=["flow", "key"],
                set_={"run_id": run_id, "until": until},
                where=or_(flow_dedupe.c.until <= now, flow_dedupe.c.run_id == run_id),
            ).returning(flow_dedupe.c.run_id)
        ).first()
        if taken is not None:
            return None
        holder = conn.execute(
            select(flow_dedupe.c.run_id).where(flow_dedupe.c.flow == flow, flow_dedupe.c.key == key)
        ).scalar_one()
    return str(holder)
