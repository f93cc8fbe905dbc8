"""A workspace with the Telco subscribers and the demo's churn model, on SQLite and on
PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagloop.demo import TEMPLATE, telco
from tagloop.runtime import Runtime

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


@pytest.fixture
def telco_rt(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    rt = Runtime.open(telco_workspace(tmp_path / "telco", database_url))
    assert telco.load(rt, DATA) is not None
    yield rt
    rt.close()
