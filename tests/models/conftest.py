"""A workspace with the Telco subscribers and the demo's churn model, on SQLite and on
PostgreSQL.

Loading the 7,043 subscribers takes a second on SQLite and some 2.5 s on PostgreSQL; the
tests of `telco_rt` each get a copy of a store loaded once per session instead (a copy of
the SQLite file; a PostgreSQL database created from a loaded one as its template), which
takes a few hundredths of a second. The load itself is what makes each template (and the
tests with workspaces of their own still load into theirs)."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tagloop.demo import TEMPLATE, telco
from tagloop.runtime import Runtime
from tagloop.store import settings
from tests.conftest import PG_ADMIN

DATA = telco.find_telco()
assert DATA is not None  # bundled with tagloop when ../shared/data is not there


def telco_workspace(root: Path, database: str) -> Path:
    """The demo's subscriber type, churn model and subscriber tags; nothing else."""
    for folder in ("entities", "models", "tags"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATE / "entities" / "subscriber.yaml", root / "entities")
    shutil.copy(TEMPLATE / "tags" / "subscriber.yaml", root / "tags")
    shutil.copy(TEMPLATE / "models" / "churn.yaml", root / "models")  # 100 trees: fast
    (root / "tagloop.yaml").write_text(
        f"name: telco\ntimezone: Asia/Shanghai\ndatabase: '{database}'\n", encoding="utf-8"
    )
    return root


def _loaded(root: Path, database: str) -> None:
    """The Telco workspace at ``root`` on ``database``, migrated and loaded."""
    rt = Runtime.open(telco_workspace(root, database))
    try:
        assert telco.load(rt, DATA) is not None
    finally:
        rt.close()


def _pg_admin() -> sa.Engine:
    return sa.create_engine(
        PG_ADMIN.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )


@pytest.fixture(scope="session")
def telco_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store with the Telco data loaded, to be copied."""
    root = tmp_path_factory.mktemp("telco-sqlite")
    store = root / "tagloop.db"
    _loaded(root / "ws", f"sqlite:///{store}")
    return store


@pytest.fixture(scope="session")
def telco_pg_template(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of a PostgreSQL database with the Telco data loaded, to be copied (nothing
    stays connected to it: CREATE DATABASE ... TEMPLATE needs it alone)."""
    base, session = postgres_url.rsplit("/", 1)
    name = f"{session}_telco"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        _loaded(tmp_path_factory.mktemp("telco-pg") / "ws", f"{base}/{name}")
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def telco_store(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    """The URL of a store of this test's backend holding a copy of the loaded Telco data."""
    if not database_url.startswith("postgresql"):
        template: Path = request.getfixturevalue("telco_sqlite_template")
        copy = Path(database_url.removeprefix("sqlite:///"))
        with sqlite3.connect(template) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        source.close()
        target.close()
        yield database_url
        return
    template_name: str = request.getfixturevalue("telco_pg_template")
    name = f"tagloop_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield f"{database_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def telco_rt(tmp_path: Path, telco_store: str) -> Iterator[Runtime]:
    rt = Runtime.open(telco_workspace(tmp_path / "telco", telco_store))
    with rt.db.read() as conn:  # loaded, as `telco.load` leaves it
        assert settings.get(conn, telco.LOADED_KEY)["events"] == 7043 + 1869
    yield rt
    rt.close()
