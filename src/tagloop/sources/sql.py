"""``kind: sql`` (also ``type: jdbc``): tables or queries of any SQLAlchemy database.

Each entry of ``table_mapping`` is a stream, read in one of two modes:

- ``incremental`` (with a ``cursor`` column: ``updated_at``, or an increasing id): rows
  after the committed position, in keyset pages ordered by ``(cursor, key)``, so rows that
  share a cursor value are neither skipped nor read twice at a page boundary;
- ``snapshot`` (no cursor): every row on every run, each with a version (a hash of the
  row), so that only new and changed rows become events.

A row updated after it was read becomes a new event (its cursor or version is part of the
event id); the same row read again is the same event, stored once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import ArgumentError

from tagloop.errors import ValidationFailed
from tagloop.sources.base import Page, PullSource, Record, SourceConfig
from tagloop.sources.intake import row_version
from tagloop.sources.secrets import resolve_secrets

_JDBC = re.compile(r"^jdbc:(?P<kind>postgresql|mysql|mariadb|sqlite):(?P<rest>.*)$", re.I)
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}

_PLAIN = {
    "postgresql://": "postgresql+psycopg://",
    "postgres://": "postgresql+psycopg://",
    "mysql://": "mysql+pymysql://",
    "mariadb://": "mysql+pymysql://",
}


def translate_url(url: str) -> str:
    """A SQLAlchemy URL from what users paste: JDBC URLs of Java tools included.

    >>> translate_url("jdbc:postgresql://mes-db:5432/production")
    'postgresql+psycopg://mes-db:5432/production'
    >>> translate_url("jdbc:mysql://erp:3306/erp?user=etl&password=s3cret")
    'mysql+pymysql://etl:s3cret@erp:3306/erp'
    >>> translate_url("jdbc:mariadb://wms/stock")
    'mysql+pymysql://wms/stock'
    >>> translate_url("postgresql://localhost/test")
    'postgresql+psycopg://localhost/test'
    """
    match = _JDBC.match(url.strip())
    if match is None:
        for plain, driver in _PLAIN.items():
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url
    kind, rest = match["kind"].lower(), match["rest"]
    if kind == "sqlite":
        return f"sqlite:///{rest}"
    # JDBC passes credentials as query parameters; SQLAlchemy wants them in the authority.
    address, _, query = rest.partition("?")
    params = dict(p.split("=", 1) for p in query.replace(";", "&").split("&") if "=" in p)
    user, password = params.pop("user", None), params.pop("password", None)
    host = address.removeprefix("//")
    credentials = f"{user}:{password}@" if user and password else f"{user}@" if user else ""
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{_DRIVERS[kind]}://{credentials}{host}" + (f"?{extra}" if extra else "")


class TableStream(BaseModel):
    """One entry of ``table_mapping``: a table (the entry's name, or ``table``) or a query."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = None
    query: str | None = None
    mode: Literal["incremental", "snapshot"] | None = None
    cursor: str | None = None
    key: list[str] = []  # default: the table's primary key
    type: str | None = None  # the event type of its rows
    mapping: dict[str, Any] = {}
    batch_size: int = 5_000

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> TableStream:
        if self.table and self.query:
            raise ValueError("give 'table' or 'query', not both")
        if self.mode == "incremental" and not self.cursor:
            raise ValueError("incremental mode needs a 'cursor' column (e.g. updated_at)")
        return self

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental" or (self.mode is None and self.cursor is not None)


class SqlConfig(SourceConfig):
    url: str
    table_mapping: dict[str, TableStream] = Field(min_length=1)
    connect_timeout: int = 10

    @field_validator("table_mapping", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        # ``equipment_status: equipment_tags`` (table -> event type), as the seed writes
        # it. Expanded here rather than typed ``str | TableStream``: a union would report a
        # typo in the long form twice, once per alternative.
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    def streams(self) -> dict[str, dict[str, Any]]:
        return {
            name: {**entry.mapping, **({"type": entry.type} if entry.type else {})}
            for name, entry in self.table_mapping.items()
        }

    def stream(self, name: str) -> TableStream:
        return self.table_mapping[name]


class SqlSource(PullSource):
    kind = "sql"
    config_model = SqlConfig

    def __init__(self, name: str, config: SqlConfig) -> None:
        super().__init__(name, config)
        url = translate_url(resolve_secrets(config.url, f"source {name}: url"))
        args: dict[str, Any] = {}
        if url.startswith(("postgresql", "mysql")):
            args = {"connect_timeout": config.connect_timeout}
        try:
            self.engine = sa.create_engine(url, connect_args=args, pool_pre_ping=True)
        except (ArgumentError, ImportError) as exc:
            raise ValidationFailed(f"source {name}: invalid url: {exc}") from None

    def close(self) -> None:
        self.engine.dispose()

    def pull(self, checkpoints: Mapping[str, Any]) -> Iterator[Page]:
        config: SqlConfig = self.config
        for name in config.table_mapping:
            stream = config.stream(name)
            if stream.incremental:
                yield from self._incremental(name, stream, checkpoints.get(name))
            else:
                yield from self._snapshot(name, stream)

    # -- reading ------------------------------------------------------------------------
    def _relation(self, name: str, stream: TableStream) -> tuple[sa.Select[Any], list[str]]:
        """The rows of a stream, unordered, and its key columns."""
        if stream.query:
            if not stream.key:
                raise ValidationFailed(
                    f"source {self.name}, stream {name}: a query needs 'key' (the columns "
                    "that identify a row)"
                )
            subquery = sa.text(f"({stream.query}) AS q")
            return sa.select(sa.text("*")).select_from(subquery), stream.key
        table = sa.Table(stream.table or name, sa.MetaData(), autoload_with=self.engine)
        key = stream.key or [c.name for c in table.primary_key.columns]
        if not key:
            raise ValidationFailed(
                f"source {self.name}, table {table.name}: no primary key; give 'key' columns"
            )
        return sa.select(table), key

    def _incremental(self, name: str, stream: TableStream, position: Any) -> Iterator[Page]:
        assert stream.cursor is not None
        relation, key = self._relation(name, stream)
        order: list[sa.ColumnClause[Any]] = [sa.column(c) for c in (stream.cursor, *key)]
        last = position
        with self.engine.connect() as conn:
            while True:
                query = relation.order_by(*order).limit(stream.batch_size)
                if last is not None:
                    values = [_decode(v) for v in (last["cursor"], *last["key"])]
                    query = query.where(sa.tuple_(*order) > sa.tuple_(*map(sa.literal, values)))
                rows = [dict(row._mapping) for row in conn.execute(query)]
                if not rows:
                    return
                tail = rows[-1]
                last = {
                    "cursor": _encode(tail[stream.cursor]),
                    "key": [_encode(tail[k]) for k in key],
                }
                yield Page([self._record(name, stream, row, key) for row in rows], {name: last})
                if len(rows) < stream.batch_size:
                    return

    def _snapshot(self, name: str, stream: TableStream) -> Iterator[Page]:
        relation, key = self._relation(name, stream)
        query = relation.order_by(*(sa.column(k) for k in key))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=stream.batch_size)
            records: list[Record] = []
            for row in result.execute(query):
                values = dict(row._mapping)
                record = self._record(name, stream, values, key)
                record.version = row_version(record.values or {})
                records.append(record)
                if len(records) >= stream.batch_size:
                    yield Page(records)
                    records = []
            yield Page(records)

    def _record(
        self, name: str, stream: TableStream, row: dict[str, Any], key: list[str]
    ) -> Record:
        # Column names are quoted_name (a str subclass), which orjson refuses as keys.
        values = {str(k): _json(v) for k, v in row.items()}
        where = ", ".join(f"{k}={values.get(k)}" for k in key)
        identity = "\0".join(str(values.get(k)) for k in key)
        if stream.incremental and stream.cursor:
            identity += "\0" + str(values.get(stream.cursor))
        return Record(
            values,
            orjson.dumps(values, default=str).decode(),
            f"table {stream.table or name}, {where}" if not stream.query else f"{name}, {where}",
            f"{name}\0{identity}",
            stream=name,
        )


def _encode(value: Any) -> Any:
    """A cursor or key value as JSON that `_decode` turns back into the same type, so that
    the next query compares it with the column as the column's own type."""
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    return value


def _decode(value: Any) -> Any:
    """
    >>> _decode(_encode(datetime(2024, 3, 5, 8, 30)))
    datetime.datetime(2024, 3, 5, 8, 30)
    >>> _decode(_encode(Decimal("1.50"))), _decode(7)
    (Decimal('1.50'), 7)
    """
    if isinstance(value, dict) and len(value) == 1:
        ((kind, text),) = value.items()
        if kind == "datetime":
            return datetime.fromisoformat(text)
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "decimal":
            return Decimal(text)
    return value


def _json(value: Any) -> Any:
    """A JSON-ready column value (dates as ISO text, decimals as numbers)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value
