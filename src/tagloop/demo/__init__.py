"""The demo: a workspace and data set built from the real UCI Online Retail transactions.

`create_workspace` copies the template workspace; `load` turns the retailer's 541,909 invoice
lines into one ``order`` (or ``order_cancelled``) event per invoice and one ``identify``
event per customer, and ingests them through the normal pipeline. Event times are moved
forward by whole weeks so the last invoice falls in the past week (see `shift`); each
order keeps the retailer's own date in ``invoice_date``. Lines without a
CustomerID (guest checkouts) have no entity to attach to and are counted, not loaded.
"""

from __future__ import annotations

import csv
import gzip
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tagloop.audit import Actor, identities
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store import settings
from tagloop.store import users as user_store
from tagloop.store.keys import NewKey
from tagloop.timeutil import now_us, time_text, to_us, zone

TEMPLATE = Path(__file__).with_name("workspace")
SAMPLE = Path(__file__).parent / "data" / "online_retail_sample.csv.gz"
DATA_ENV = "TAGLOOP_DATA_DIR"
RETAIL = Path("online_retail") / "online_retail.csv.gz"
LOADED_KEY = "demo.loaded"
UK = zone("Europe/London")  # InvoiceDate is the retailer's local time


def find_data() -> Path:
    """The full Online Retail file if it can be found, else the bundled sample.

    Looked for under ``$TAGLOOP_DATA_DIR``, then ``../shared/data`` next to the checkout
    or the current directory.
    """
    candidates = []
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]) / RETAIL)
    checkout = Path(__file__).resolve().parents[3]
    for base in (checkout, Path.cwd()):
        candidates.append(base.parent / "shared" / "data" / RETAIL)
    return next((path for path in candidates if path.is_file()), SAMPLE)


def create_workspace(root: Path) -> bool:
    """Copy the demo workspace to ``root`` unless one is there; True if created."""
    if (root / "tagloop.yaml").exists():
        return False
    shutil.copytree(TEMPLATE, root, dirs_exist_ok=True)
    return True


@dataclass
class Invoice:
    number: str
    customer: str
    country: str
    time: int
    lines: int = 0
    quantity: int = 0
    amount: float = 0.0


@dataclass
class DemoStats:
    source: str
    lines: int = 0
    guest_lines: int = 0
    invoices: int = 0
    customers: int = 0
    events: int = 0


def read_invoices(path: Path, stats: DemoStats) -> tuple[list[Invoice], dict[str, Invoice]]:
    """Invoices in file order, and each customer's most recent invoice (for its country)."""
    invoices: dict[str, Invoice] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            stats.lines += 1
            customer = row["CustomerID"].strip()
            if not customer:
                stats.guest_lines += 1
                continue
            customer = customer.removesuffix(".0")
            number = row["InvoiceNo"]
            invoice = invoices.get(number)
            if invoice is None:
                when = datetime.fromisoformat(row["InvoiceDate"])
                invoice = Invoice(number, customer, row["Country"], to_us(when, UK))
                invoices[number] = invoice
            quantity = int(row["Quantity"])
            invoice.lines += 1
            invoice.quantity += quantity
            invoice.amount += quantity * float(row["UnitPrice"])
    latest: dict[str, Invoice] = {}
    for invoice in invoices.values():
        seen = latest.get(invoice.customer)
        if seen is None or invoice.time >= seen.time:
            latest[invoice.customer] = invoice
    stats.invoices, stats.customers = len(invoices), len(latest)
    return list(invoices.values()), latest


WEEK = 7 * 86_400_000_000


def shift(invoices: list[Invoice], now: int) -> int:
    """How far to move the invoices forward in time: whole weeks (weekdays and hours stay
    as they were), so that the most recent falls within the past week. The data set ends
    in December 2011; shifted, rules over recent windows (``count(order, 30d)``) and
    calendar months (``streak``) mean something today."""
    last = max((invoice.time for invoice in invoices), default=now)
    return max(0, (now - last) // WEEK) * WEEK


def events(invoices: list[Invoice], latest: dict[str, Invoice]) -> Iterator[Event]:
    received = now_us()
    offset = shift(invoices, received)
    for customer, invoice in latest.items():
        yield Event(
            id=f"retail:identify:{customer}",
            type="identify",
            entity_type="customer",
            entity_id=customer,
            time=invoice.time + offset,
            attributes={"customer_id": customer, "country": invoice.country},
            source="demo",
            received_at=received,
        )
    for invoice in invoices:
        cancelled = invoice.number.startswith("C")
        properties: dict[str, Any] = {
            "invoice_no": invoice.number,
            "amount": round(invoice.amount, 2),
            "quantity": invoice.quantity,
            "lines": invoice.lines,
            "invoice_date": time_text(invoice.time),  # as the retailer dated it
        }
        if not cancelled:
            properties["country"] = invoice.country
        yield Event(
            id=f"retail:{invoice.number}",
            type="order_cancelled" if cancelled else "order",
            entity_type="customer",
            entity_id=invoice.customer,
            time=invoice.time + offset,
            properties=properties,
            related={"market": invoice.country},
            source="demo",
            received_at=received,
        )


def already_loaded(rt: Runtime, key: str) -> bool:
    """Whether the data set marked by ``key`` (see `ingest_once`) is in this database."""
    with rt.db.read() as conn:
        return bool(settings.get(conn, key))


def ingest_once(
    rt: Runtime,
    key: str,
    source: str,
    pending: list[Event],
    *,
    progress: Callable[[int, int], None] | None,
    batch_size: int,
) -> int:
    """Ingest ``pending`` in batches, then mark the data set as loaded under ``key`` (with
    its source and count) so that `already_loaded` keeps a second load from doubling it;
    the number of events accepted."""
    accepted = 0
    for start in range(0, len(pending), batch_size):
        chunk = pending[start : start + batch_size]
        accepted += rt.ingestor.commit(chunk).accepted
        if progress is not None:
            progress(min(start + batch_size, len(pending)), len(pending))
    with rt.db.write() as conn:
        settings.put(rt.db, conn, key, {"source": source, "events": accepted})
    return accepted


def load(
    rt: Runtime,
    path: Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 2_000,
) -> DemoStats | None:
    """Load the demo data once per database; None if it was loaded before."""
    if already_loaded(rt, LOADED_KEY):
        return None
    path = path or find_data()
    stats = DemoStats(str(path))
    invoices, latest = read_invoices(path, stats)
    pending = list(events(invoices, latest))
    stats.events = ingest_once(
        rt, LOADED_KEY, stats.source, pending, progress=progress, batch_size=batch_size
    )
    return stats


ADMIN_USER = "admin"
INGEST_KEY = "local-ingest"


@dataclass
class Credentials:
    """What the first `bootstrap` created: shown once, stored only as hashes."""

    admin_password: str | None = None  # None: the admin user existed already
    ingest_key: NewKey | None = None


def bootstrap(rt: Runtime) -> Credentials:
    """An admin user with a random password and a local ingest key, the first time only:
    nothing of the server is open without a credential, not even on localhost."""
    made = Credentials()
    actor = Actor.cli()
    with rt.db.write() as conn:
        now = now_us()
        if not user_store.listing(conn):
            made.admin_password = user_store.random_password()
            identities.create_user(
                rt.db, conn, actor, ADMIN_USER, made.admin_password, ["admin"], now
            )
        if not key_store.listing(conn):
            made.ingest_key = identities.create_key(rt.db, conn, actor, INGEST_KEY, ["ingest"], now)
    return made
