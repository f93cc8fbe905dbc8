"""Reading records from CSV, JSONL and Parquet files (optionally gzip-compressed).

Each record comes with its location (``orders.csv:42``) and raw text, so a record that
cannot be used is reported precisely and kept verbatim in the dead-letter store.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from tagloop.errors import ValidationFailed

Format = Literal["csv", "jsonl", "parquet"]
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True, slots=True)
class Record:
    line: int  # 1-based line (CSV, JSONL) or row number (Parquet)
    values: dict[str, Any] | None  # None when the raw text could not be parsed
    raw: str
    error: str | None = None


def detect_format(path: Path) -> Format:
    """The format from the file name, looking through a ``.gz`` suffix.

    >>> detect_format(Path("orders.csv.gz")), detect_format(Path("x.parquet"))
    ('csv', 'parquet')
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise ValidationFailed(
            f"{path}: cannot tell the format from the name; use --format csv|jsonl|parquet"
        )
    return fmt


def _open_text(path: Path, encoding: str) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


@dataclass
class Tail:
    """How to read the end of a file another program may still be writing: with ``hold``,
    a last line without its newline is not read (a writer stopped mid-line: reading it
    would store a truncated record and skip the finished one); ``held`` tells it was."""

    hold: bool = True
    held: bool = False


def _complete(handle: IO[str], tail: Tail | None) -> Iterator[str]:
    """The lines of ``handle``, without an unfinished last one when ``tail.hold``."""
    for line in handle:
        if tail is not None and tail.hold and not line.endswith("\n"):
            tail.held = True
            return
        yield line


def read(
    path: Path,
    fmt: Format | None = None,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    tail: Tail | None = None,
) -> Iterator[Record]:
    """Yield the records of ``path`` in file order (see `Tail` for files being written)."""
    if not path.is_file():
        raise ValidationFailed(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt == "parquet":
        yield from _parquet(path)
        return
    # utf-8-sig: files saved by Excel start with a byte-order mark.
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding
    with _open_text(path, enc) as handle:
        lines = _complete(handle, tail)
        try:
            if fmt == "csv":
                sep = delimiter or ("\t" if ".tsv" in path.name.lower() else ",")
                yield from _csv(lines, sep)
            else:
                yield from _jsonl(lines)
        except UnicodeDecodeError as exc:
            raise ValidationFailed(
                f"{path}: not valid {encoding} text ({exc.reason}); pass --encoding "
                "(e.g. gb18030 for files from Chinese Windows systems)"
            ) from exc
        except gzip.BadGzipFile as exc:
            raise ValidationFailed(f"{path}: not a valid gzip file ({exc})") from exc


def read_text(text: str, fmt: Format, *, delimiter: str = ",") -> Iterator[Record]:
    """The records of an uploaded body (CSV or JSONL), as `read` gives a file's.

    >>> [r.values for r in read_text("id,value\\nc1,A\\n", "csv")]
    [{'id': 'c1', 'value': 'A'}]
    """
    handle = io.StringIO(text.removeprefix("\ufeff"), newline="")
    if fmt == "csv":
        return _csv(handle, delimiter)
    if fmt == "jsonl":
        return _jsonl(handle)
    raise ValidationFailed(f"uploads are CSV or JSONL, not {fmt}")


def _csv(handle: Iterable[str], delimiter: str) -> Iterator[Record]:
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise ValidationFailed(f"line 1: duplicate column names {dupes}")
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(start, None, "", f"malformed CSV: {exc}")
            line = reader.line_num
            continue
        line = reader.line_num
        raw = delimiter.join(row)
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield Record(start, None, raw, f"has {len(row)} columns, the header has {len(header)}")
            continue
        yield Record(start, dict(zip(header, row, strict=True)), raw)


def _jsonl(handle: Iterable[str]) -> Iterator[Record]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Record(
                number, None, text.rstrip("\r\n"), f"invalid JSON at column {exc.colno}: {exc.msg}"
            )
            continue
        if not isinstance(value, dict):
            yield Record(number, None, text.rstrip("\r\n"), "each line must be a JSON object")
            continue
        yield Record(number, value, text.rstrip("\r\n"))


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise ValidationFailed(f"{path}: not a readable Parquet file ({exc})") from exc
    number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for values in batch.to_pylist():
            number += 1
            yield Record(number, values, orjson.dumps(values, default=str).decode())
