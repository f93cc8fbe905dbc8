"""The OpenAPI document against the app, by schemathesis: for every operation, generated
requests (valid and invalid) with an admin key must get a response the document
describes (status, content type, headers, schema), never a 5xx, and invalid requests must
be refused, on every storage backend.

One check is left out: ``positive_data_acceptance`` (a schema-valid request must be
accepted). A document can say that an event has a string ``entity.type``; only the
workspace's entity dictionary says which strings exist, so a generated event for entity
type "0" is rightly refused with 400 and a precise message."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tagloop.api.app import create_app
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.timeutil import now_us

pytestmark = pytest.mark.slow


@pytest.fixture
def admin_key(rt: Runtime) -> str:
    with rt.db.write() as conn:
        key = key_store.create(conn, "schemathesis", ["admin"], now_us())
        # generated traffic is far above a person's: give this key room so the checks see
        # the endpoints, not 429s (rate limiting has its own tests)
        key_store.set_limits(conn, key.id, 1_000_000, 1_000_000)
    return key.secret


def test_every_operation_conforms(rt: Runtime, admin_key: str) -> None:
    # schemathesis's own pytest integration does not run under pytest 9: drive each
    # operation's hypothesis strategy here instead
    api = schemathesis.openapi.from_asgi("/openapi.json", create_app(rt))
    headers = {"Authorization": f"Bearer {admin_key}"}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 20  # every route is in the document
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
