"""The IBM Telco customer-churn sample as events: what the demo's churn model learns from.

The sample is one snapshot of 7,043 subscribers (contract, services, charges) with a
``Churn`` flag meaning "left within the last month". As events: one ``subscription``
event per subscriber at the snapshot (`SNAPSHOT`, setting its attributes and ``status:
active``), and for each of the 1,869 who left, one ``churned`` event during the 30 days
after the cutoff (`CUTOFF`), on a day drawn from a hash of its id, setting ``status:
churned``. The churn model's label reads those 30 days; its features may only see the
snapshot. The ``status`` attribute is a trap for a leaking trainer: read now, it gives
every label away.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tagloop.demo import already_loaded, ingest_once
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.timeutil import now_us, parse_time, zone

TELCO = Path("telco_churn") / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
LOADED_KEY = "demo.telco_loaded"
SHANGHAI = zone("Asia/Shanghai")
SNAPSHOT = parse_time("2024-01-31T12:00", SHANGHAI)
CUTOFF = parse_time("2024-02-01", SHANGHAI)  # the churn model's label.at
DAY = 86_400_000_000

_YES_NO = ("Partner", "Dependents", "PhoneService", "PaperlessBilling")
_TEXT = {
    "gender": "gender",
    "MultipleLines": "multiple_lines",
    "InternetService": "internet_service",
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
    "Contract": "contract",
    "PaymentMethod": "payment_method",
}
_SNAKE = {
    "Partner": "partner",
    "Dependents": "dependents",
    "PhoneService": "phone_service",
    "PaperlessBilling": "paperless_billing",
}


BUNDLED = Path(__file__).parent / "data" / "telco_churn.csv.gz"
"""The same 7,043 rows, gzipped (byte-identical once unpacked to the file ../shared/data
holds, sha256 16320c9c...5e91; IBM sample data, see its SOURCE.md there): a fresh machine
without the shared folder trains the demo's model on the real data too."""


def find_telco() -> Path | None:
    """The Telco CSV under ``$TAGLOOP_DATA_DIR`` or ``../shared/data`` if there, else the
    bundled copy (`BUNDLED`)."""
    candidates = []
    if os.environ.get("TAGLOOP_DATA_DIR"):
        candidates.append(Path(os.environ["TAGLOOP_DATA_DIR"]) / TELCO)
    checkout = Path(__file__).resolve().parents[3]
    for base in (checkout, Path.cwd()):
        candidates.append(base.parent / "shared" / "data" / TELCO)
    candidates.append(BUNDLED)
    return next((path for path in candidates if path.is_file()), None)


def attributes(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as subscriber attributes (``TotalCharges`` is blank for 11 new
    subscribers: null, not zero).

    >>> attributes({"SeniorCitizen": "1", "tenure": "2", "MonthlyCharges": "70.5",
    ...     "TotalCharges": " ", "Partner": "Yes"})["total_charges"] is None
    True
    """
    found: dict[str, Any] = {"status": "active"}
    for column, name in _TEXT.items():
        if column in row:
            found[name] = row[column]
    for column in _YES_NO:
        if column in row:
            found[_SNAKE[column]] = row[column] == "Yes"
    found["senior_citizen"] = row.get("SeniorCitizen") == "1"
    found["tenure"] = int(row["tenure"])
    found["monthly_charges"] = float(row["MonthlyCharges"])
    total = row.get("TotalCharges", "").strip()
    found["total_charges"] = float(total) if total else None
    return found


def churn_day(customer: str) -> int:
    """The day (1..28) after the cutoff on which a churned subscriber left: stable."""
    return 1 + int.from_bytes(hashlib.sha256(customer.encode()).digest()[:4], "big") % 28


def _text(path: Path) -> IO[str]:
    """The CSV as text, gzipped (the bundled copy) or not."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def events(path: Path) -> Iterator[Event]:
    received = now_us()
    with _text(path) as handle:
        for row in csv.DictReader(handle):
            customer = row["customerID"]
            yield Event(
                id=f"telco:subscription:{customer}",
                type="subscription",
                entity_type="subscriber",
                entity_id=customer,
                time=SNAPSHOT,
                attributes=attributes(row),
                source="demo",
                received_at=received,
            )
            if row["Churn"] == "Yes":
                yield Event(
                    id=f"telco:churned:{customer}",
                    type="churned",
                    entity_type="subscriber",
                    entity_id=customer,
                    time=CUTOFF + churn_day(customer) * DAY,
                    attributes={"status": "churned"},
                    source="demo",
                    received_at=received,
                )


@dataclass
class TelcoStats:
    source: str
    subscribers: int = 0
    churned: int = 0
    events: int = 0


def load(
    rt: Runtime,
    path: Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 2_000,
) -> TelcoStats | None:
    """Load the Telco events once per database; None if loaded before or not found."""
    if already_loaded(rt, LOADED_KEY):
        return None
    path = path or find_telco()
    if path is None or "subscriber" not in rt.workspace.dictionary:
        return None
    pending = list(events(path))
    stats = TelcoStats(str(path))
    stats.subscribers = sum(1 for e in pending if e.type == "subscription")
    stats.churned = len(pending) - stats.subscribers
    stats.events = ingest_once(
        rt, LOADED_KEY, stats.source, pending, progress=progress, batch_size=batch_size
    )
    return stats
