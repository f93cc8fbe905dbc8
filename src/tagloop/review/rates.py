"""The tag error rate: of the proposals reviewers decided, the share that were wrong
(rejected, or overridden with another value), per tag definition and per calendar week.

Weeks are ISO weeks (Monday to Sunday) in the workspace time zone, by decision time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from tagloop.store import reviews as store
from tagloop.store.db import Database
from tagloop.timeutil import from_us


def week(micros: int, tz: ZoneInfo) -> str:
    """The ISO week of a time in ``tz``, as ``2026-W49``.

    >>> from tagloop.timeutil import zone
    >>> week(1_735_660_800_000_000, zone("Asia/Shanghai"))  # 2025-01-01 00:00 +08:00
    '2025-W01'
    """
    year, number, _ = from_us(micros, tz).isocalendar()
    return f"{year}-W{number:02d}"


def rate(approved: int, rejected: int, overridden: int) -> float | None:
    """Errors over reviewed; None when nothing was reviewed.

    >>> rate(18, 1, 1), rate(0, 0, 0)
    (0.1, None)
    """
    reviewed = approved + rejected + overridden
    return round((rejected + overridden) / reviewed, 4) if reviewed else None


def _figures(counts: dict[str, int]) -> dict[str, Any]:
    approved, rejected, overridden = (counts.get(s, 0) for s in store.DECIDED)
    return {
        "reviewed": approved + rejected + overridden,
        "approved": approved,
        "rejected": rejected,
        "overridden": overridden,
        "error_rate": rate(approved, rejected, overridden),
    }


def error_rates(
    db: Database, tz: ZoneInfo, *, tag: str | None = None, tags: set[str] | None = None
) -> list[dict[str, Any]]:
    """Per tag (only ``tag``, or those in ``tags``): the figures over all decisions, and per
    week, oldest week first."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    weekly: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    with db.read() as conn:
        rows = store.decision_counts(conn, tag)
    for row in rows:
        name, status, decided_at = row.tag, row.status, row.decided_at
        if tags is not None and name not in tags:
            continue
        totals[name][status] += 1
        weekly[name][week(decided_at, tz)][status] += 1
    return [
        {
            "tag": name,
            **_figures(totals[name]),
            "weeks": [{"week": w, **_figures(c)} for w, c in sorted(weekly[name].items())],
        }
        for name in sorted(totals)
    ]
