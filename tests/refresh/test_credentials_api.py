"""Reading credentials that are due refreshes them inline, once for every concurrent reader."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx

from authbridge.connectors.registry import Registry
from authbridge.refresh.repository import RefreshRepository
from authbridge.storage.models import Environment
from authbridge.tenancy.repository import EnvironmentRepository
from tests.support.api_calls import assert_problem
from tests.support.app import CONNECTORS, Api
from tests.support.connectors import render_connectors
from tests.support.sandbox_grants import due_oauth_auth, refresh_requests


def environment_of(api: Api) -> Environment:
    with api.bridge.session() as session:
        return EnvironmentRepository(session, api.bridge.keyring).get_or_create()


def read(api: Api, auth_id: str) -> httpx.Response:
    return api.call("GET", f"/v1/authentications/{auth_id}/credentials")


def test_concurrent_reads_of_a_due_auth_refresh_it_once(api: Api, sandbox_url: str) -> None:
    auth = due_oauth_auth(api.bridge, environment_of(api), sandbox_url)
    before = refresh_requests(sandbox_url)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: read(api, auth.id), range(40)))

    assert refresh_requests(sandbox_url) == before + 1
    assert {answer.status_code for answer in answers} == {200}
    tokens = {answer.json()["credentials"]["access_token"] for answer in answers}
    assert len(tokens) == 1
    me = httpx.get(sandbox_url + "/oauth2/me", headers={"Authorization": f"Bearer {tokens.pop()}"})
    assert me.status_code == 200
    assert all("refresh_token" not in answer.json()["credentials"] for answer in answers)


def test_an_unexpired_token_is_served_while_the_provider_is_down(
    api: Api, sandbox_url: str, tmp_path: Path
) -> None:
    auth = due_oauth_auth(api.bridge, environment_of(api), sandbox_url)
    api.bridge.registry = broken_registry(api, tmp_path)

    answer = read(api, auth.id)

    assert answer.status_code == 200
    assert answer.json()["credentials"]["access_token"]


def test_an_expired_token_that_cannot_be_refreshed_is_a_503(
    api: Api, sandbox_url: str, tmp_path: Path
) -> None:
    auth = due_oauth_auth(api.bridge, environment_of(api), sandbox_url)
    api.bridge.registry = broken_registry(api, tmp_path)
    later = api.bridge.now() + timedelta(minutes=5)
    api.bridge.clock = lambda: later

    problem = assert_problem(read(api, auth.id), 503, "provider_unavailable")

    assert "could not be refreshed" in problem["detail"]
    assert problem["retry_after"] == 30


def broken_registry(api: Api, tmp_path: Path) -> Registry:
    """The test connectors with the sandbox's port replaced by one nothing listens on."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    return Registry.load(
        [render_connectors(CONNECTORS, tmp_path / "dead", PORT=port)], include_catalog=False
    )


def test_a_reader_does_not_wait_for_another_process_while_its_token_is_valid(
    api: Api, sandbox_url: str
) -> None:
    auth = due_oauth_auth(api.bridge, environment_of(api), sandbox_url)
    with api.bridge.session() as session:  # another process is refreshing it (and hangs)
        RefreshRepository(session, api.bridge.keyring).acquire_lease(
            auth.id, "another-process", now=api.bridge.now(), duration=timedelta(minutes=1)
        )
    before = refresh_requests(sandbox_url)

    started = time.monotonic()
    answer = read(api, auth.id)

    assert answer.status_code == 200
    assert time.monotonic() - started < 2
    assert refresh_requests(sandbox_url) == before
