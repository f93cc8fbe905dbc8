"""What a source is doing, as `tagloop sources status --json` and ``GET /v1/sources`` show
it: one shape for both, built from the workspace's definition and the stored status row
(`tagloop.store.sources.set_status`), whichever process runs the source."""

from __future__ import annotations

from typing import Any

from tagloop.timeutil import iso, now_us
from tagloop.workspace.sources import SourceDefinition


def schedule(defn: SourceDefinition) -> str | None:
    """``every 5m``, ``cron 0 2 * * *``, or None (listeners, and pulled sources on the
    default schedule)."""
    spec = defn.spec
    if spec.cron:
        return f"cron {spec.cron}"
    return f"every {spec.every}" if spec.every else None


LOST_AFTER = 60  # seconds without a status write after which a running source is "lost"


def state(row: Any, now: int | None = None) -> str:
    """The state to show for a status ``row``: as written, except ``lost`` for a source
    written ``running`` or ``idle`` whose process stopped writing its heartbeat (killed, or
    its machine gone) more than `LOST_AFTER` seconds ago, which would otherwise show as
    running for ever.

    >>> from types import SimpleNamespace as Row
    >>> state(Row(state="running", updated_at=0), now=61_000_000)
    'lost'
    >>> state(Row(state="stopped", updated_at=0), now=61_000_000)
    'stopped'
    """
    now = now_us() if now is None else now
    if row.state in ("running", "idle") and now - row.updated_at > LOST_AFTER * 1_000_000:
        return "lost"
    return str(row.state)


def source_view(defn: SourceDefinition, row: Any) -> dict[str, Any]:
    """The source ``defn`` with its status ``row`` (None: it never ran).

    Times are ISO 8601 in UTC; the lag is in seconds.
    """
    view: dict[str, Any] = {
        "name": defn.name,
        "kind": defn.kind,
        "enabled": defn.spec.enabled,
        "schedule": schedule(defn),
        "streams": list(defn.mappings),
        "state": "never run",
        "records_read": 0,
        "events_written": 0,
        "rejected": 0,
        "duplicates": 0,
        "lag_seconds": None,
        "last_success": None,
        "last_error": None,
        "failures": 0,
        "next_attempt": None,
        "host": None,
        "updated": None,
    }
    if row is None:
        return view
    view.update(
        state=state(row),
        records_read=row.records_read,
        events_written=row.events_written,
        rejected=row.rejected,
        duplicates=row.duplicates,
        lag_seconds=row.lag_us / 1e6 if row.lag_us is not None else None,
        last_success=iso(row.last_success_at) if row.last_success_at else None,
        last_error=row.last_error,
        failures=row.failures,
        next_attempt=iso(row.next_attempt_at) if row.next_attempt_at else None,
        host=row.host,
        updated=iso(row.updated_at),
    )
    return view
