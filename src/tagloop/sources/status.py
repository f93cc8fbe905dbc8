"""What a source is doing, as `tagloop sources status --json` and ``GET /v1/sources`` show
it: one shape for both, built from the workspace's definition and the stored status row
(`tagloop.store.sources.set_status`), whichever process runs the source."""

from __future__ import annotations

from typing import Any

from tagloop.timeutil import iso
from tagloop.workspace.sources import SourceDefinition


def schedule(defn: SourceDefinition) -> str | None:
    """``every 5m``, ``cron 0 2 * * *``, or None (listeners, and pulled sources on the
    default schedule)."""
    spec = defn.spec
    if spec.cron:
        return f"cron {spec.cron}"
    return f"every {spec.every}" if spec.every else None


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
    }
    if row is None:
        return view
    view.update(
        state=row.state,
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
    )
    return view
