"""Exactly one refresh across server processes: 200 concurrent reads of one expired auth.

Real ``authbridge serve --no-worker`` processes share one database (and ``AUTHBRIDGE_KEYS``); an
OAuth 2 authentication whose access token has expired is read 200 times at once, spread over
the servers. Every read must answer 200 with the same new access token, and the sandbox
provider (a process of its own) must have seen exactly one refresh-token request.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from authbridge.refresh.repository import RefreshRepository
from authbridge.storage.models import utcnow
from tests.processes.conftest import Deployment, deployment

READS = 200
DEAD_LEASE = 3.0


async def _burst(urls: list[str], path: str, headers: dict[str, str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=READS, max_keepalive_connections=READS)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:
        return await asyncio.gather(
            *(client.get(urls[number % len(urls)] + path) for number in range(READS))
        )


def _one_refresh_for_concurrent_reads(deployed: Deployment, servers: int) -> None:
    started = [deployed.server(name=f"server{number}") for number in range(servers)]
    deployed.start(started)
    now = utcnow()
    auth, seeded = deployed.create_oauth_auth(
        expires_at=now - timedelta(seconds=10), refresh_due_at=now - timedelta(seconds=20)
    )
    assert deployed.refresh_requests() == 0

    began = time.monotonic()
    responses = asyncio.run(
        _burst(
            [server.url for server in started],
            f"/v1/authentications/{auth.id}/credentials",
            deployed.headers(),
        )
    )
    seconds = time.monotonic() - began

    statuses: dict[int, int] = {}
    for response in responses:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses == {200: READS}, (
        f"{statuses}: {[r.text for r in responses if r.status_code != 200][:3]}\n"
        + deployed.processes.logs()
    )
    tokens = {response.json()["credentials"]["access_token"] for response in responses}
    assert len(tokens) == 1, f"{len(tokens)} different access tokens were served"
    (token,) = tokens
    assert token != seeded["access_token"]
    assert all("refresh_token" not in r.json()["credentials"] for r in responses)
    assert deployed.refresh_requests() == 1, deployed.sandbox_stats()
    assert deployed.sandbox_stats()["refresh_reuse_detected"] == 0
    me = httpx.get(
        deployed.sandbox.url + "/oauth2/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert me.status_code == 200
    for server in started:
        assert server.alive, server.tail()
    print(f"{READS} reads over {servers} servers in {seconds:.2f} s, one refresh")


@pytest.mark.postgres
def test_four_servers_on_postgresql_refresh_an_expired_auth_once(
    postgres_url: str, tmp_path: Path
) -> None:
    with deployment(tmp_path, database_url=postgres_url, token_lifetime=60) as deployed:
        _one_refresh_for_concurrent_reads(deployed, servers=4)


def test_two_servers_on_sqlite_refresh_an_expired_auth_once(tmp_path: Path) -> None:
    with deployment(tmp_path, token_lifetime=60) as deployed:
        _one_refresh_for_concurrent_reads(deployed, servers=2)


def test_a_read_takes_over_the_lease_of_a_dead_refresher_when_it_runs_out(tmp_path: Path) -> None:
    """A refresher died holding the lease of an expired auth: a read waits for the lease to run
    out, then refreshes itself (rather than answering 503 with the token still expired)."""
    with deployment(tmp_path, token_lifetime=60) as deployed:
        server = deployed.server()
        deployed.start([server])
        now = utcnow()
        auth, seeded = deployed.create_oauth_auth(
            expires_at=now - timedelta(seconds=10), refresh_due_at=now - timedelta(seconds=20)
        )
        with deployed.database.session() as session:
            leased = RefreshRepository(session, deployed.keyring).acquire_lease(
                auth.id, "a killed process", now=utcnow(), duration=timedelta(seconds=DEAD_LEASE)
            )
            assert leased is not None

        began = time.monotonic()
        response = httpx.get(
            f"{server.url}/v1/authentications/{auth.id}/credentials",
            headers=deployed.headers(),
            timeout=60,
        )
        waited = time.monotonic() - began

        assert response.status_code == 200, response.text
        assert response.json()["credentials"]["access_token"] != seeded["access_token"]
        assert waited >= DEAD_LEASE - 1
        assert deployed.refresh_requests() == 1
