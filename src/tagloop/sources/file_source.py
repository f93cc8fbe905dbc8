"""Ingesting a file through a mapping: batches of events, bad records to dead letters.

Valid records are committed batch by batch; a record that cannot be read, mapped or checked
is stored in the dead-letter table (raw text, location, error) in the same transaction as
its batch, so a crash never loses a record between the two.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tagloop.errors import ValidationFailed
from tagloop.ingest.event import Batch, Rejection
from tagloop.runtime import Runtime
from tagloop.sources import files
from tagloop.sources.base import Page, PullSource, Record, SourceConfig
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
                    record.values, key=f"{name}\0{record.line}\0{record.raw}", received_at=received
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


class FileConfig(SourceConfig):
    """``kind: file``: a path or a glob (relative to the workspace), read as new files
    appear and as files grow."""

    path: str | None = None  # without one, files are given to `tagloop ingest`
    format: Literal["csv", "jsonl", "parquet"] | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    batch_size: int = BATCH

    def resolve(self, root: Path) -> FileConfig:
        if self.path is None:
            return self
        path = Path(self.path).expanduser()
        return self if path.is_absolute() else self.model_copy(update={"path": str(root / path)})


class FileSource(PullSource):
    """Files matching ``path``, each read from where the last committed page ended.

    The checkpoint holds, per file, the last line committed and the file's size then: a
    file that grew is read on from that line (logs, daily appends); one that shrank was
    rewritten and is read again from the start (its unchanged lines are duplicates). A
    last line without its newline (a writer mid-line) is read only once the file has not
    changed between two pulls.

    >>> FileSource.kind
    'file'
    """

    kind = "file"
    config_model = FileConfig

    def pull(self, checkpoints: Mapping[str, Any]) -> Iterator[Page]:
        config: FileConfig = self.config
        if config.path is None:
            raise ValidationFailed(
                f"source {self.name} has no 'path': give one to run it, or load files with "
                f"`tagloop ingest FILE --source {self.name}`"
            )
        state: dict[str, Any] = dict((checkpoints.get("") or {}).get("files", {}))
        for name in sorted(glob.glob(config.path, recursive=True)):
            path = Path(name)
            if not path.is_file():
                continue
            size = path.stat().st_size
            seen = state.get(name)
            done_line = 0
            if seen is not None:
                if seen["size"] == size and seen.get("complete"):
                    continue
                done_line = seen["line"] if size >= seen["size"] else 0
            # A last line without its newline is held back while the file may still be
            # written; one that has not changed since the last pull is whole.
            tail = files.Tail(hold=seen is None or seen["size"] != size)
            yield from self._read(path, done_line, size, state, config, tail)

    def _read(
        self,
        path: Path,
        done_line: int,
        size: int,
        state: dict[str, Any],
        config: FileConfig,
        tail: files.Tail,
    ) -> Iterator[Page]:
        name = str(path)
        records: list[Record] = []
        line = done_line
        for item in files.read(
            path, config.format, delimiter=config.delimiter, encoding=config.encoding, tail=tail
        ):
            if item.line <= done_line:
                continue
            line = item.line
            records.append(
                Record(
                    item.values,
                    item.raw,
                    f"{path.name}:{item.line}",
                    f"{path.name}\0{item.line}\0{item.raw}",
                    error=item.error,
                )
            )
            if len(records) >= config.batch_size:
                state[name] = {"line": line, "size": size, "complete": False}
                yield Page(records, {"": {"files": dict(state)}})
                records = []
        state[name] = {"line": line, "size": size, "complete": not tail.held}
        yield Page(records, {"": {"files": dict(state)}})
