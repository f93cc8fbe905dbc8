"""Shared fixtures: a workspace per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import settings

from tagloop import logs
from tagloop.api.app import create_app
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.store.tables import metadata
from tagloop.timeutil import now_us
from tests import services

# No timing assertions in the suite: hypothesis's per-example deadline (200 ms) fails a
# property whose first example pays an import or a cold cache on a loaded machine.
settings.register_profile("tagloop", deadline=None)
settings.load_profile("tagloop")

# The server's log set-up (tracebacks formatted as plain text): structlog's default renders
# them with rich and every local variable, which takes minutes for a large request.
logs.configure(fmt="console")

PG_ADMIN = os.environ.get("TAGLOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

ENTITIES = {
    "customer.yaml": """
        name: customer
        description: 客户
        owner: crm
        identifiers: [customer_id]
        fields:
          customer_id: string
          name: {type: string, pii: true}
          city: string
          country: string
          spend: number
          orders: integer
          vip: boolean
          signup: datetime
          birthday: date
          address: object
          interests: list
          客户等级: string
        events:
          order:
            properties:
              amount: number
              quantity: integer
    """,
    "product_batch.yaml": """
        name: product_batch
        fields:
          line: string
    """,
    "device.yaml": """
        name: device
        fields:
          model: string
    """,
    "account.yaml": """
        name: account
        fields:
          plan: string
    """,
}

TAGS = """
    tags:
      - name: VIP
        entity: customer
        category: 价值 > 等级
        owner: 销售运营部
        description: big spenders
        rule: spend >= 1000
      - name: 上海客户
        entity: customer
        category: 地域 > 城市
        rule: city == '上海'
      - name: frequent
        entity: customer
        rule: event_count >= 3
      - name: hot_batch
        entity: product_batch
        rule: event_count >= 2
"""


def write_workspace(
    root: Path, database: str, *, tags: str = TAGS, extra: dict[str, str] | None = None
) -> Path:
    (root / "entities").mkdir(parents=True, exist_ok=True)
    (root / "tags").mkdir(exist_ok=True)
    (root / "sources").mkdir(exist_ok=True)
    (root / "tagloop.yaml").write_text(
        f"name: test\ntimezone: Asia/Shanghai\ndatabase: '{database}'\n", encoding="utf-8"
    )
    for name, text in ENTITIES.items():
        (root / "entities" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (root / "tags" / "tags.yaml").write_text(textwrap.dedent(tags), encoding="utf-8")
    for name, text in (extra or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    services.require("PostgreSQL", "127.0.0.1", 5432)
    name = f"tagloop_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        PG_ADMIN.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    yield url
    engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# One engine per test database, kept for the session: emptying the store before each test
# need not connect afresh.
_ENGINES: dict[str, sa.Engine] = {}

# The sequences of ``:names`` (serial or identity columns), restarted as TRUNCATE ... RESTART
# IDENTITY would: the next value is 1 again.
_RESTART_SEQUENCES = sa.text(
    """
    SELECT setval(s.oid, 1, false)
    FROM pg_class s
    JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    WHERE s.relkind = 'S' AND t.relnamespace = current_schema()::regnamespace
        AND t.relname = ANY(:names)
    """
)


def _truncate(url: str) -> None:
    """Empty every table of the store at ``url`` (PostgreSQL) and restart its sequences.

    DELETE, children first, rather than TRUNCATE: on tables this small it takes a few
    milliseconds where TRUNCATE takes ~0.1 s (it makes new files for every table and index),
    and it runs before each of some 250 tests and examples on PostgreSQL."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        _ENGINES[url] = engine
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        tables = [t for t in metadata.sorted_tables if t.name in existing]
        for table in reversed(tables):
            conn.execute(table.delete())
        if tables:
            conn.execute(_RESTART_SEQUENCES, {"names": [t.name for t in tables]})


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite store migrated to the newest revision, to be copied (`sqlite_copy`)
    where a test would migrate an empty store of its own: ~50 ms each, some 350 times."""
    path = tmp_path_factory.mktemp("migrated") / "tagloop.db"
    db = Database(f"sqlite:///{path}")
    try:
        upgrade(db)
    finally:
        db.dispose()
    return path


def sqlite_copy(template: Path, path: Path) -> str:
    """A copy of the store ``template`` at ``path`` (SQLite's backup: whole, whatever its
    WAL held); its URL."""
    with sqlite3.connect(template) as source, sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once per storage backend, on an empty store migrated to
    the newest revision (the PostgreSQL database of the session emptied; on SQLite a copy
    of `migrated_sqlite`). `sqlite_url` is a store not even created yet."""
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("migrated_sqlite"), tmp_path / "tagloop.db")
    url: str = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tagloop.db'}"


@pytest.fixture
def workspace(tmp_path: Path, database_url: str) -> Path:
    return write_workspace(tmp_path / "ws", database_url)


@pytest.fixture
def rt(workspace: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(workspace)
    yield runtime
    runtime.close()


def make_key(rt: Runtime, *roles: str, expires_at: int | None = None) -> str:
    with rt.db.write() as conn:
        return key_store.create(conn, "test", list(roles), now_us(), expires_at).secret


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin(rt: Runtime) -> dict[str, str]:
    """Headers of an admin key."""
    return {"Authorization": f"Bearer {make_key(rt, 'admin')}"}


@pytest.fixture
def ingest_headers(rt: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(rt, 'ingest')}"}


class LiveServer:
    """The real app on a real socket, for clients that speak HTTP themselves."""

    def __init__(self, rt: Runtime) -> None:
        import uvicorn

        config = uvicorn.Config(
            create_app(rt), host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:  # wait for the condition, not a fixed time
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server(rt: Runtime) -> Iterator[LiveServer]:
    with LiveServer(rt) as server:
        yield server


Post = Callable[..., Any]
