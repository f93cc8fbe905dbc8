"""Walking the audit chain: the first record that was edited, deleted or reordered.

A chain alone cannot reveal that its newest records were removed: what remains is still a
valid chain. `VerifyReport.head_hash` is therefore meant to be kept elsewhere (a ticket, a
log shipped off the host, a signed note): a later head that does not descend from it, or a
chain shorter than it, reveals a truncated tail.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from tagloop.audit.chain import GENESIS, digest
from tagloop.store.db import Database
from tagloop.store.tables import audit_log

_BATCH = 1000


@dataclass(frozen=True)
class VerifyReport:
    """The result of `verify`: how many records were checked, the head of the chain, and the
    first broken record (``broken_seq``) with the reason, if any."""

    count: int
    head_seq: int | None
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    def summary(self) -> str:
        """One line for people.

        >>> VerifyReport(2, 2, "9f2c").summary()
        '2 records, chain intact (head: seq 2, hash 9f2c)'
        >>> VerifyReport(2, 2, "", 2, "hash mismatch").summary()
        'audit chain broken at seq 2: hash mismatch'
        """
        if self.ok:
            head = f"seq {self.head_seq}, hash {self.head_hash}"
            return f"{self.count} records, chain intact (head: {head})"
        return f"audit chain broken at seq {self.broken_seq}: {self.reason}"


def verify(db: Database) -> VerifyReport:
    """Recompute every record's hash in ``seq`` order and check that each one links to its
    predecessor; stop at the first broken record.

    An edited record fails its own hash; a deleted one leaves a gap in ``seq`` and a
    ``prev_hash`` that matches nothing; records whose ``seq`` values were swapped fail their
    hashes (``seq`` is hashed). An empty log verifies, with the genesis hash as head.

    >>> from tagloop.store.migrate import upgrade
    >>> db = Database("sqlite://"); upgrade(db)
    >>> report = verify(db)
    >>> report.ok, report.count, report.head_hash == GENESIS
    (True, 0, True)
    """
    count = 0
    prev_seq: int | None = None
    prev_hash = GENESIS
    with db.read() as conn:
        while True:
            query = select(audit_log).order_by(audit_log.c.seq).limit(_BATCH)
            if prev_seq is not None:
                query = query.where(audit_log.c.seq > prev_seq)
            rows = conn.execute(query).mappings().all()
            if not rows:
                break
            for row in rows:
                reason = _check(row["seq"], row["prev_hash"], prev_seq, prev_hash)
                if reason is None and digest(row) != row["hash"]:
                    reason = "the record's contents do not match its hash (record edited)"
                if reason is not None:
                    return VerifyReport(count, prev_seq, prev_hash, row["seq"], reason)
                count += 1
                prev_seq, prev_hash = row["seq"], row["hash"]
    return VerifyReport(count, prev_seq, prev_hash)


def _check(seq: int, link: str, prev_seq: int | None, prev_hash: str) -> str | None:
    expected = 1 if prev_seq is None else prev_seq + 1
    if seq != expected:
        missing = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
        return f"seq {missing} missing (record deleted)"
    if link != prev_hash:
        before = "genesis" if prev_seq is None else f"record {prev_seq}"
        return (
            f"prev_hash does not match the hash of {before} "
            "(a record was edited, replaced or reordered before it)"
        )
    return None
