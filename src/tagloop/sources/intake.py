"""From records to a commit: mapping, checking, dead letters, snapshot versions.

The same for every kind of source: `Intake.prepare` turns the records of one page or
message batch into a `Part` (events, dead letters with precise reasons, versions), and
`Intake.commit` stores it together with the source's checkpoints in one transaction.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from tagloop.ingest.event import Batch, Rejection
from tagloop.ingest.pipeline import CommitResult, Part
from tagloop.metrics import SOURCE_EVENTS, SOURCE_LAG, SOURCE_RECORDS, SOURCE_REJECTED
from tagloop.runtime import Runtime
from tagloop.sources.base import Record
from tagloop.sources.mapping import MappingError, RecordMapper
from tagloop.store import sources as source_store
from tagloop.timeutil import now_us


@dataclass
class Tally:
    """What a run did, for the status table and the command line."""

    read: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    unchanged: int = 0  # snapshot records whose version did not change
    newest: int | None = None  # time of the newest event committed
    samples: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if len(self.samples) < 20:
            self.samples.append(message)

    def add(self, other: Tally) -> None:
        self.read += other.read
        self.written += other.written
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.unchanged += other.unchanged
        if other.newest is not None:
            self.newest = max(self.newest or other.newest, other.newest)
        for sample in other.samples:
            self.note(sample)


class Intake:
    """Maps and commits the records of one source."""

    def __init__(self, rt: Runtime, name: str, mappers: dict[str, RecordMapper]) -> None:
        self.rt = rt
        self.name = name
        self.mappers = mappers

    def prepare(self, records: list[Record]) -> tuple[Part, Tally]:
        tally = Tally(read=len(records))
        received = now_us()
        fresh, versions = self._changed(records, tally)
        batch = Batch()
        letters: list[dict[str, Any]] = []
        raws: dict[int, Record] = {}
        for index, record in enumerate(fresh):
            mapper = self.mappers.get(record.stream)
            if record.values is None:
                letters.append(self._letter(record, record.error or "unreadable record", tally))
            elif mapper is None:
                reason = f"no mapping for stream {record.stream!r}"
                letters.append(self._letter(record, reason, tally))
            else:
                try:
                    event = mapper.to_event(
                        record.values, key=event_key(record), received_at=received, meta=record.meta
                    )
                except MappingError as exc:
                    letters.append(self._letter(record, f"field {exc}", tally))
                else:
                    batch.events.append((index, event))
                    raws[index] = record
        self.rt.ingestor.check(batch)
        problems: dict[int, list[Rejection]] = defaultdict(list)
        for rejection in batch.rejections:
            problems[rejection.index].append(rejection)
        for index, found in problems.items():
            reason = "; ".join(
                f"field {r.field}: {r.reason}" if r.field else r.reason for r in found
            )
            letters.append(self._letter(raws[index], reason, tally))
        events = [event for _, event in batch.events]
        if events:
            tally.newest = max(event.time for event in events)
        return Part(events, letters, versions=versions), tally

    def commit(self, part: Part, tally: Tally, checkpoints: dict[str, Any]) -> CommitResult:
        """Store the part with where the source now stands, in one transaction."""
        part.checkpoints = [(self.name, stream, pos) for stream, pos in checkpoints.items()]
        result = self.rt.ingestor.submit(part)
        tally.written += result.accepted
        tally.duplicates += result.duplicates
        SOURCE_RECORDS.labels(self.name).inc(tally.read)
        SOURCE_EVENTS.labels(self.name).inc(result.accepted)
        SOURCE_REJECTED.labels(self.name).inc(tally.rejected)
        if tally.newest is not None:
            SOURCE_LAG.labels(self.name).set(max(0, now_us() - tally.newest) / 1e6)
        return result

    def _changed(
        self, records: list[Record], tally: Tally
    ) -> tuple[list[Record], list[source_store.Version]]:
        """Drop snapshot records whose version is the one committed last."""
        versioned = [r for r in records if r.version is not None]
        if not versioned:
            return records, []
        by_stream: dict[str, list[str]] = defaultdict(list)
        for record in versioned:
            by_stream[record.stream].append(record.key)
        known = {
            (stream, key): version
            for stream, keys in by_stream.items()
            for key, version in source_store.versions(self.rt.db, self.name, stream, keys).items()
        }
        fresh: list[Record] = []
        versions: list[source_store.Version] = []
        for record in records:
            if record.version is not None:
                previous = known.get((record.stream, record.key))
                if previous == record.version:
                    tally.unchanged += 1
                    continue
                record.previous = previous
                versions.append((self.name, record.stream, record.key, record.version))
            fresh.append(record)
        return fresh, versions

    def _letter(self, record: Record, reason: str, tally: Tally) -> dict[str, Any]:
        message = f"source {self.name}, {record.location}, {reason}"
        tally.rejected += 1
        tally.note(message)
        return {
            "source": self.name,
            "location": record.location[:1000],
            "error": message,
            "payload": record.raw,
            "received_at": now_us(),
            "stream": record.stream,
            "record": record.values,
            "record_key": event_key(record)[:1000],
        }


def event_key(record: Record) -> str:
    """What a record's event id is made from: its identity, and for a snapshot row the
    change it is (from the version committed before to its own), so that every change is
    a new event and the same change read twice is one.

    >>> changed = Record({}, "", "", "k", version="b", previous="a")
    >>> event_key(Record({}, "", "", "k")), event_key(changed).split("\\0")
    ('k', ['k', 'a', 'b'])
    """
    if record.version is None:
        return record.key
    return f"{record.key}\0{record.previous or ''}\0{record.version}"


def row_version(values: dict[str, Any]) -> str:
    """A record's version for snapshot change detection: a hash of its values.

    >>> row_version({"a": 1, "b": "x"}) == row_version({"b": "x", "a": 1})
    True
    """
    body = orjson.dumps(values, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.sha256(body).hexdigest()[:32]
