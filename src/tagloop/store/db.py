"""Database connections: SQLite (embedded default, WAL) and PostgreSQL, one code path.

Writes go through `Database.write()`, which on SQLite starts the transaction with
``BEGIN IMMEDIATE`` so that two writers queue for the lock instead of failing when both try
to upgrade a read lock; reads use a plain deferred transaction and never block writers.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from tagloop import logs
from tagloop.errors import StorageError, ValidationFailed

log = logs.get("tagloop.store")

_WRITE = "tagloop_write"


def dump_json(value: Any) -> str | None:
    """JSON text for a JSON column (None stays SQL NULL)."""
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)`` for `Database.executemany` (the
    statements that write many rows at once are SQL text, not SQLAlchemy's): the
    placeholders follow the columns, so adding a column cannot leave them one short.

    >>> insert_sql("t", ("a", "b"))
    'INSERT INTO t (a, b) VALUES (?, ?)'
    """
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _load_json(raw: Any) -> Any:
    """Decode a JSON column. SQLite gives a column declared JSON numeric affinity, so the
    JSON text ``111`` is stored (and returned) as the integer 111: numbers pass through."""
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain PostgreSQL URLs.

    >>> normalize_url("postgresql://localhost/test")
    'postgresql+psycopg://localhost/test'
    >>> normalize_url("sqlite:///x.db")
    'sqlite:///x.db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """An engine plus the few things that differ per backend."""

    def __init__(self, url: str, *, pool: bool = True) -> None:
        try:
            parsed = make_url(normalize_url(url))
        except ArgumentError as exc:
            raise ValidationFailed(f"invalid database URL {url!r}: {exc}") from exc
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValidationFailed(
                f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql://"
            )
        options: dict[str, Any] = {
            "json_serializer": dump_json,
            "json_deserializer": _load_json,
        }
        self._lock_path: str | None = None
        self._checkpointer: _Checkpointer | None = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                self._lock_path = parsed.database + ".writer-lock"
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            options["pool_pre_ping"] = True
            options["pool_size"] = 10
            # No server-side prepared statements: ingestion's batched lookups
            # (`id = ANY(array)`) need plans made with the actual values (a generic plan
            # cannot hash the array, and compares every row with every value).
            # No JIT: a batch recompute is one query with hundreds of joins, whose
            # estimated cost triggers JIT compilation that takes longer than running it
            # (27 s of 27.6 s for 300 entities x 200 tags, measured with EXPLAIN ANALYZE).
            options["connect_args"] = {"prepare_threshold": None, "options": "-c jit=off"}
        if not pool:
            options.pop("pool_size", None)
            options["poolclass"] = NullPool
        self.engine: Engine = create_engine(parsed, **options)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def insert(self, table: Table) -> Any:
        """A dialect-specific INSERT that supports ``on_conflict_do_nothing/update``."""
        return (sqlite_insert if self.is_sqlite else pg_insert)(table)

    def executemany(self, conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run the driver's ``executemany`` of ``sql`` (written with ``?`` placeholders) on
        the connection's current transaction.

        The hot paths of ingestion use this and `fetch` to skip SQLAlchemy's per-statement
        machinery; JSON values must be passed already serialised (`dump_json`).
        """
        if not rows:
            return
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.sql(sql), rows)
        finally:
            cursor.close()

    def json_value(self, raw: Any) -> Any:
        """A JSON column's value from a raw (DB-API) row: SQLite returns the text, psycopg
        the decoded value (so a JSON string arrives as a Python ``str`` and must not be
        decoded twice)."""
        return _load_json(raw) if self.is_sqlite else raw

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column IN (?, ...)`` on SQLite, ``column = ANY(?)`` on PostgreSQL (one array
        parameter: a constant query text that psycopg prepares once, and a plan that uses
        the index however many values there are), with its parameters.

        >>> Database("sqlite://").in_list("id", ["a", "b"])
        ('id IN (?, ?)', ['a', 'b'])
        """
        if self.is_sqlite:
            return f"{column} IN ({', '.join('?' * len(values))})", list(values)
        return f"{column} = ANY(?)", [list(values)]

    def fetch(self, conn: Connection, sql: str, params: Sequence[Any] | None) -> list[Any]:
        """All rows of a query written with ``?`` placeholders, as driver tuples.

        With ``params=None`` the text runs verbatim: generated SQL (the batch evaluator's)
        has its literals inline and may hold ``?`` or ``%`` that are not placeholders.
        """
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(self.sql(sql), params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def first(self, sql: str, params: Sequence[Any]) -> Any | None:
        """The first row (a driver tuple) of one query written with ``?`` placeholders, or
        None, on a pooled connection without an explicit transaction.

        For the lookups every API request makes (its key or session): through the driver
        this takes tens of microseconds, where a SQLAlchemy statement in a transaction
        takes several hundred.
        """
        with self._guard(), self.engine.connect() as conn:
            rows = self.fetch(conn, sql, params)
        return rows[0] if rows else None

    def sql(self, text_with_qmarks: str) -> str:
        """Adapt ``?`` placeholders to the driver's parameter style."""
        return text_with_qmarks if self.is_sqlite else text_with_qmarks.replace("?", "%s")

    @contextlib.contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction: committed on exit, rolled back on error.

        ``durable=False`` is for records worth keeping that no client was promised: the
        commit survives a crash of the process but not a power cut until the next durable
        commit or checkpoint flushes the log (SQLite ``synchronous=NORMAL``, PostgreSQL
        ``synchronous_commit=off``, at most ~3 x ``wal_writer_delay`` there). The log is
        flushed in order, so nothing committed after it can survive without it.
        """
        with self._guard(), self._writer_lock(), self.engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE: True})
            if durable:
                with conn.begin():
                    yield conn
                return
            if not self.is_sqlite:
                with conn.begin():
                    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    yield conn
                return
            # SQLite cannot change it inside a transaction: before BEGIN, restored after.
            driver = conn.connection.driver_connection
            driver.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    yield conn
            finally:
                try:
                    driver.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]
                except sqlite3.Error:
                    conn.invalidate()  # never hand a non-durable connection to the pool

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """On SQLite, queue writers of all processes on a file lock.

        SQLite's own busy handler polls with sleeps of up to 100 ms, so a process waiting
        for another's write transaction idles long after the lock is free; a blocking
        ``flock`` wakes the next writer the moment the previous one commits.
        """
        if self._lock_path is None:
            yield
            return
        with open(self._lock_path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both backends)."""
        with self._guard(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            # Connection refused, disk full, lock timeout: the caller may retry later.
            raise StorageError(f"database unavailable: {_first_line(exc)}") from exc

    def start_checkpointer(self, interval: float = 1.0) -> None:
        """Move SQLite's WAL checkpoints off the commit path (servers call this).

        By default the commit that crosses 1,000 WAL pages copies them into the database
        file and syncs it, which makes one request in ten wait ~100 ms under load. Here the
        server's connections stop doing that and a thread checkpoints in the background
        (PASSIVE: it never blocks readers or writers).
        """
        if not self.is_sqlite or self._lock_path is None or self._checkpointer is not None:
            return
        self._checkpointer = _Checkpointer(str(self.url.database), interval)
        self.engine.dispose()  # new connections pick up the setting below
        event.listen(self.engine, "connect", _no_autocheckpoint)

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def register_functions(connection: sqlite3.Connection) -> None:
    """Functions the batch evaluator calls on SQLite, defined in Python so that they behave
    exactly as the streaming evaluator's: SQLite's own lower() knows only ASCII, and it has
    no regular expressions."""
    from tagloop.rules.functions import FUNCTIONS
    from tagloop.rules.stream import _regex

    def regexp(pattern: Any, value: Any) -> Any:
        if not isinstance(pattern, str) or not isinstance(value, str):
            return None
        return _regex(pattern).search(value) is not None

    connection.create_function("tl_regexp", 2, regexp, deterministic=True)
    connection.create_function("tl_lower", 1, FUNCTIONS["lower"].call, deterministic=True)
    connection.create_function("tl_upper", 1, FUNCTIONS["upper"].call, deterministic=True)
    connection.create_function("tl_round", 2, FUNCTIONS["round"].call, deterministic=True)


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


class _Checkpointer:
    """A thread that checkpoints a SQLite WAL every ``interval`` seconds."""

    def __init__(self, path: str, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tagloop-checkpoint", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            while not self.stopping.wait(self.interval):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            log.warning(
                "background checkpoint failed; SQLite will checkpoint on commit", exc_info=True
            )
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        register_functions(dbapi_connection)
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is always DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            # FULL: a committed transaction survives power loss, which a 2xx promises.
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=30000",
            "temp_store=MEMORY",
            "cache_size=-65536",
            # Read pages through the OS cache: a commit by another process then costs this
            # one no cache rebuild.
            "mmap_size=1073741824",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
