"""Ingesting a file through a mapping: batches of events, bad records to dead letters.

Valid records are committed batch by batch; a record that cannot be read, mapped or checked
is stored in the dead-letter table (raw text, location, error) in the same transaction as
its batch, so a crash never loses a record between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tagloop.errors import ValidationFailed
from tagloop.ingest.event import Batch, Rejection
from tagloop.runtime import Runtime
from tagloop.sources import files
from tagloop.sources.mapping import MappingError, RecordMapper
from tagloop.timeutil import now_us

BATCH = 5_000


@dataclass
class FileStats:
    path: str
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    tag_changes: int = 0
    samples: list[str] = field(default_factory=list)  # first rejections, for the report

    def note(self, message: str) -> None:
        if len(self.samples) < 20:
            self.samples.append(message)


def ingest_file(
    rt: Runtime,
    path: Path,
    mapper: RecordMapper,
    *,
    fmt: files.Format | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    batch_size: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> FileStats:
    stats = FileStats(str(path))
    name = path.name
    batch = Batch()
    dead: list[dict[str, object]] = []
    checked_columns = False

    def flush() -> None:
        nonlocal batch, dead
        rt.ingestor.check(batch)
        rejected_at = {r.index for r in batch.rejections}
        by_index: dict[int, list[Rejection]] = {}
        for r in batch.rejections:
            by_index.setdefault(r.index, []).append(r)
        for index, problems in by_index.items():
            reason = "; ".join(f"{r.field}: {r.reason}" if r.field else r.reason for r in problems)
            dead.append(_dead(mapper.source, f"{path}:{index}", reason, raws[index]))
            stats.note(f"{path}:{index}: {reason}")
        stats.rejected += len(rejected_at)
        if batch.events or dead:
            result = rt.ingestor.commit([e for _, e in batch.events], dead_letters=dead)
            stats.accepted += result.accepted
            stats.duplicates += result.duplicates
            stats.tag_changes += len(result.tag_changes)
        batch, dead = Batch(), []
        raws.clear()

    raws: dict[int, str] = {}
    received = now_us()
    for record in files.read(path, fmt, delimiter=delimiter, encoding=encoding):
        stats.read += 1
        if record.values is not None and not checked_columns:
            missing = mapper.columns_missing(set(record.values))
            if missing:
                raise ValidationFailed(
                    f"{path}: mapped column(s) {', '.join(map(repr, missing))} not in the file "
                    f"(columns: {', '.join(record.values)})"
                )
            checked_columns = True
        if record.values is None:
            dead.append(
                _dead(mapper.source, f"{path}:{record.line}", record.error or "", record.raw)
            )
            stats.rejected += 1
            stats.note(f"{path}:{record.line}: {record.error}")
        else:
            try:
                event = mapper.to_event(
                    record.values, file=name, line=record.line, raw=record.raw, received_at=received
                )
            except MappingError as exc:
                dead.append(_dead(mapper.source, f"{path}:{record.line}", str(exc), record.raw))
                stats.rejected += 1
                stats.note(f"{path}:{record.line}: {exc}")
            else:
                # Index by line so rejections from the dictionary check name the line.
                batch.events.append((record.line, event))
                raws[record.line] = record.raw
        if len(batch.events) + len(dead) >= batch_size:
            flush()
            received = now_us()
        if progress is not None:
            progress(1)
    flush()
    return stats


def _dead(source: str, location: str, error: str, raw: str) -> dict[str, object]:
    return {
        "source": source,
        "location": location,
        "error": error,
        "payload": raw,
        "received_at": now_us(),
    }
