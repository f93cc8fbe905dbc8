"""Replaying dead letters through their source's current mapping.

An operator fixes a mapping (or the dictionary) and replays: each letter's record is
mapped again; those that now pass are committed with the same event ids they would have
had (the record's identity is kept with the letter) and marked replayed; the others stay,
with the new reason. Replaying twice stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tagloop import audit
from tagloop.audit import Actor
from tagloop.errors import NotFound
from tagloop.ingest.pipeline import Part
from tagloop.runtime import Runtime
from tagloop.sources.base import Record
from tagloop.sources.intake import Intake
from tagloop.sources.runner import SourceRunner
from tagloop.store import deadletters as store
from tagloop.timeutil import now_us

CHUNK = 500


@dataclass
class ReplayReport:
    replayed: int = 0  # letters whose record is now stored (or already was)
    written: int = 0  # events newly stored
    failed: int = 0  # letters that fail again (kept, with the new reason)
    skipped: dict[str, int] = field(default_factory=dict)  # source -> letters not replayable
    samples: list[str] = field(default_factory=list)


def replay(
    rt: Runtime,
    *,
    source: str | None = None,
    seqs: list[int] | None = None,
    actor: Actor | None = None,
) -> ReplayReport:
    """Replay the pending letters (of ``source``, or numbered ``seqs``); each chunk's
    outcome is audited (``deadletter.replay``) as done by ``actor``."""
    report = ReplayReport()
    with rt.db.read() as conn:
        letters = store.pending(conn, source=source, seqs=seqs)
    if seqs:
        missing = sorted(set(seqs) - {row.seq for row in letters})
        if missing:
            raise NotFound(
                f"no dead letter waiting for replay numbered {', '.join(map(str, missing))}"
            )
    intakes: dict[str, Intake | None] = {}
    for start in range(0, len(letters), CHUNK):
        _replay_chunk(rt, letters[start : start + CHUNK], intakes, report, actor or Actor.cli())
    return report


def _replay_chunk(
    rt: Runtime,
    letters: list[Any],
    intakes: dict[str, Intake | None],
    report: ReplayReport,
    actor: Actor,
) -> None:
    events = []
    done: list[int] = []
    errors: list[tuple[int, str]] = []
    for letter in letters:
        intake = intakes.get(letter.source)
        if letter.source not in intakes:
            defn = rt.workspace.sources.get(letter.source)
            intake = SourceRunner(rt, defn).intake if defn is not None else None
            intakes[letter.source] = intake
        values = _values(letter)
        if intake is None or values is None:
            report.skipped[letter.source] = report.skipped.get(letter.source, 0) + 1
            continue
        record = Record(
            values,
            letter.payload,
            f"dead letter {letter.seq} ({letter.location})",
            letter.record_key or f"deadletter:{letter.seq}",
            stream=letter.stream or "",
        )
        part, _ = intake.prepare([record])
        if part.dead_letters:
            errors.append((letter.seq, str(part.dead_letters[0]["error"])))
            if len(report.samples) < 20:
                report.samples.append(str(part.dead_letters[0]["error"]))
        else:
            events.extend(part.events)
            done.append(letter.seq)
    if events:
        result = rt.ingestor.submit(Part(events))
        report.written += result.accepted
    now = now_us()
    with rt.db.write() as conn:
        store.mark_replayed(conn, done, now)
        for seq, error in errors:
            store.set_error(conn, seq, error)
        sources = sorted({letter.source for letter in letters})
        audit.record(
            rt.db,
            conn,
            actor=actor,
            action="deadletter.replay",
            target_type="source",
            target_id=", ".join(sources),
            after={"replayed": done, "failed": [seq for seq, _ in errors]},
        )
    report.replayed += len(done)
    report.failed += len(errors)


def _values(letter: Any) -> dict[str, Any] | None:
    """The letter's record: as parsed when it was read, else its payload if that is a JSON
    object (a record that was unreadable then, e.g. broken JSON fixed in place)."""
    if isinstance(letter.record, dict):
        return letter.record
    try:
        value = orjson.loads(letter.payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
