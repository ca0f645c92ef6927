"""Property-based checks of the whole REST API against its own OpenAPI document (SQLite only).

Schemathesis reads ``/openapi.json`` from the live server and sends, for every operation, a
small number of generated requests, valid ones and invalid ones, with the master token. Every
answer must be free of server errors and match what the document declares for it: a documented
status code and content type, and a body that fits the schema (problem documents for errors).

The pytest integration of schemathesis (``@schema.parametrize()`` over a fixture) relies on
pytest internals that pytest 9 no longer has, so each operation is driven here through its
Hypothesis strategy (``APIOperation.as_strategy``) with the same checks.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from authbridge.storage import Database, default_url
from tests.support.app import SANDBOX_KEY, Api

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def database(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """SQLite only: the run is about the HTTP contract, not the database."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(sqlite_template, home / "authbridge.db")
    database = Database(default_url(home))
    try:
        yield database
    finally:
        database.dispose()


def seed(api: Api) -> None:
    """Some data, so that lists and reads answer with bodies the schema can be checked on."""
    body = {
        "connector": "sandbox-apikey",
        "external_user_id": "seeded",
        "fields": {"api_key": SANDBOX_KEY},
    }
    assert api.call("POST", "/v1/authentications", json=body).status_code == 201
    config = {"client_id": "id", "client_secret": "secret", "scopes": ["profile"]}
    assert api.call("PUT", "/v1/connector-configs/sandbox-oauth2", json=config).status_code == 200


def test_the_api_keeps_its_contract(api: Api) -> None:
    seed(api)
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    headers = {"Authorization": f"Bearer {api.master_token}"}
    failures: list[str] = []
    seen: dict[str, set[int]] = defaultdict(set)
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document describes an operation badly: {result.err()}")
            continue
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode, headers=headers))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case[Any]) -> None:
                response = case.call_and_validate(checks=CHECKS)
                seen[case.operation.label].add(response.status_code)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing in this operation can be made invalid
            except (Exception, BaseExceptionGroup) as error:  # every failing operation is listed
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)
    # The run reached the operations, and both answered and refused requests were checked.
    assert len(seen) >= 20, sorted(seen)
    statuses = set().union(*seen.values())
    assert {200, 201, 404, 422} <= statuses, str(dict(seen))
    assert 200 in seen["GET /v1/authentications"]
