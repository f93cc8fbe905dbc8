"""The hash chain on both backends: appends link up, tampering is found at its record,
concurrent writers never fork the chain."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tagloop import audit
from tagloop.audit import GENESIS, Actor, record
from tagloop.audit.chain import digest
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.store.tables import audit_log

ALICE = Actor("alice", "user", "10.0.0.7")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    upgrade(database)
    yield database
    database.dispose()


def append(db: Database, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        with db.write() as conn:
            record(
                db,
                conn,
                actor=ALICE,
                action="key.create",
                target_type="key",
                target_id=f"k{i}",
                before=None if i % 2 else {"roles": ["viewer"]},
                after={"name": f"key {i}", "roles": ["admin"], "n": i, "名": "钥匙"},
            )


def rows(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)))


def raw(db: Database, sql: str, **params: Any) -> None:
    """Tamper as someone with database access would: plain SQL, no tagloop code."""
    with db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def json_param(db: Database) -> str:
    return ":value" if db.is_sqlite else "CAST(:value AS JSONB)"


def test_records_chain_and_verify(db: Database) -> None:
    append(db, 5)
    found = rows(db)
    assert [r.seq for r in found] == [1, 2, 3, 4, 5]
    assert found[0].prev_hash == GENESIS
    for previous, current in itertools.pairwise(found):
        assert current.prev_hash == previous.hash
    for row in found:
        assert digest(row._mapping) == row.hash
    assert (found[2].actor, found[2].actor_kind, found[2].origin) == ("alice", "user", "10.0.0.7")
    assert found[2].after == {"name": "key 2", "roles": ["admin"], "n": 2, "名": "钥匙"}
    report = audit.verify(db)
    assert report.ok and report.count == 5
    assert (report.head_seq, report.head_hash) == (5, found[-1].hash)
    assert report.summary().startswith("5 records, chain intact")


def test_empty_log_verifies(db: Database) -> None:
    report = audit.verify(db)
    assert report.ok and report.count == 0 and report.head_hash == GENESIS


def test_record_rolls_back_with_the_change(db: Database) -> None:
    append(db, 1)
    with pytest.raises(RuntimeError), db.write() as conn:
        record(db, conn, actor=ALICE, action="key.revoke", target_type="key", target_id="k0")
        raise RuntimeError("the change failed")
    assert len(rows(db)) == 1
    append(db, 1, start=1)  # the next record takes seq 2: no gap, no fork
    assert [r.seq for r in rows(db)] == [1, 2] and audit.verify(db).ok


def test_values_hash_the_same_after_a_round_trip(db: Database) -> None:
    """JSONB stores numbers as numeric (1e20 reads back as an integer), SQLite JSON text;
    the hash must survive both."""
    odd = {"big": 1e20, "whole": 2.0, "tenth": 0.1, "neg": -1e-7, "t": True, "none": None}
    with db.write() as conn:
        record(db, conn, actor=ALICE, action="x", target_type="t", target_id="1", after=odd)
        record(db, conn, actor=ALICE, action="x", target_type="t", target_id="2", before=7)
        record(db, conn, actor=ALICE, action="x", target_type="t", target_id="3", after="text")
    assert audit.verify(db).ok


def test_edited_record_is_found_at_its_seq(db: Database) -> None:
    append(db, 5)
    forged = orjson.dumps({"name": "key 2", "roles": ["viewer"], "n": 2, "名": "钥匙"}).decode()
    raw(db, f"UPDATE audit_log SET after = {json_param(db)} WHERE seq = 3", value=forged)
    report = audit.verify(db)
    assert not report.ok and report.broken_seq == 3
    assert "edited" in (report.reason or "")
    assert report.count == 2 and report.head_seq == 2  # the intact prefix


def test_edited_actor_is_found(db: Database) -> None:
    append(db, 3)
    raw(db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    assert audit.verify(db).broken_seq == 1


def test_edit_with_a_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    append(db, 4)
    target = rows(db)[1]._asdict()
    target["origin"] = "127.0.0.1"
    raw(
        db,
        "UPDATE audit_log SET origin = :origin, hash = :hash WHERE seq = 2",
        origin="127.0.0.1",
        hash=digest(target),
    )
    report = audit.verify(db)
    assert report.broken_seq == 3 and "prev_hash" in (report.reason or "")


def test_deleted_middle_record_is_found(db: Database) -> None:
    append(db, 5)
    raw(db, "DELETE FROM audit_log WHERE seq = 3")
    report = audit.verify(db)
    assert report.broken_seq == 4 and "seq 3 missing" in (report.reason or "")


def test_deleted_first_record_is_found(db: Database) -> None:
    append(db, 3)
    raw(db, "DELETE FROM audit_log WHERE seq = 1")
    assert audit.verify(db).broken_seq == 2


def test_deleted_and_renumbered_records_are_found(db: Database) -> None:
    """Closing the gap left by a deletion does not help: the link no longer matches."""
    append(db, 5)
    raw(db, "DELETE FROM audit_log WHERE seq = 3")
    for seq in (4, 5):
        raw(db, "UPDATE audit_log SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    report = audit.verify(db)
    assert report.broken_seq == 3  # its stored hash covered seq 4


def test_reordered_records_are_found(db: Database) -> None:
    append(db, 4)
    raw(db, "UPDATE audit_log SET seq = 100 WHERE seq = 2")
    raw(db, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    raw(db, "UPDATE audit_log SET seq = 3 WHERE seq = 100")
    assert audit.verify(db).broken_seq == 2


def test_truncated_tail_is_only_found_against_an_anchored_head(db: Database) -> None:
    """What a chain alone cannot show: removing the newest records leaves a valid chain.
    The head hash kept elsewhere (as docs/security.md advises) reveals it."""
    append(db, 5)
    anchored = audit.verify(db)
    raw(db, "DELETE FROM audit_log WHERE seq >= 4")
    report = audit.verify(db)
    assert report.ok and report.count == 3
    assert report.head_hash != anchored.head_hash
    assert report.head_seq is not None and anchored.head_seq is not None
    assert report.head_seq < anchored.head_seq  # the anchored record is gone


@pytest.mark.timeout(120)
def test_concurrent_appends_do_not_fork_the_chain(db: Database) -> None:
    threads, each = 8, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with db.write() as conn:
                    record(
                        db,
                        conn,
                        actor=Actor(f"worker{n}", "system", "system"),
                        action="flow.retry",
                        target_type="run",
                        target_id=f"{n}-{i}",
                        after={"i": i},
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    found = rows(db)
    assert [r.seq for r in found] == list(range(1, threads * each + 1))
    assert len({r.prev_hash for r in found}) == len(found)  # no two records share a parent
    report = audit.verify(db)
    assert report.ok and report.count == threads * each
