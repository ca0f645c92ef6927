"""The harness of the chaos tests: a deployment under reads, processes killed, what happened.

:func:`deploy` starts two servers and two workers on the deployment's database (servers log at
INFO, so that each refresher's ``runs in process`` line is there) and creates OAuth 2
authentications whose sandbox tokens live :data:`TOKEN_LIFETIME` seconds. :func:`run` reads
their credentials from the servers for a while, and SIGKILLs and restarts the victims at random
moments; :class:`Chaos` records every read and kill (with the pid killed and the wall clock, to
match the processes' log lines). :func:`force_refreshes` refreshes each authentication once
more from the test process and asks the sandbox whether the stored access token works.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.refresh.service import Refresher
from authbridge.storage.models import Authentication, utcnow
from tests.processes.conftest import Deployment
from tests.support.processes import Process

TOKEN_LIFETIME = 2
READERS = 6
READ_PAUSE = 0.02
WORKER_INTERVAL = 0.2


@dataclass(frozen=True)
class Read:
    started: float
    ended: float
    server: str
    auth_id: str
    outcome: str  # the status code, "200-expired", or the transport error's class name
    detail: str = ""


@dataclass(frozen=True)
class Kill:
    """A SIGKILL: when (``time.monotonic()`` and epoch seconds, taken just before the signal),
    of which process, and its pid."""

    at: float
    wall: float
    name: str
    pid: int


@dataclass
class Chaos:
    """What happened during the run (times from ``time.monotonic()``)."""

    began: float = 0.0
    began_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # the same moment
    kills: list[Kill] = field(default_factory=list)
    restarts: list[tuple[float, str]] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)

    def monotonic(self, wall: float) -> float:
        """The ``time.monotonic()`` of a wall-clock moment (epoch seconds) of the run."""
        return self.began + wall - self.began_at.timestamp()

    def all_down(self, names: Sequence[str], start: float, end: float) -> float:
        """Seconds between ``start`` and ``end`` while every process of ``names`` was killed
        and not restarted yet (nothing could take over a lease then)."""
        down = [self._down(name, start, end) for name in names]
        moments = sorted({start, end, *(edge for spans in down for span in spans for edge in span)})
        return sum(
            later - earlier
            for earlier, later in itertools.pairwise(moments)
            if all(any(a <= earlier and later <= b for a, b in spans) for spans in down)
        )

    def _down(self, name: str, start: float, end: float) -> list[tuple[float, float]]:
        spans = []
        for kill in self.kills:
            if kill.name != name:
                continue
            restarted = min(
                (at for at, restarted in self.restarts if restarted == name and at >= kill.at),
                default=end,
            )
            if kill.at < end and restarted > start:
                spans.append((max(kill.at, start), min(restarted, end)))
        return spans


def deploy(deployed: Deployment, *, auths: int, lease: float) -> tuple[list[Process], list[str]]:
    """Start two servers and two workers with a refresh lease of ``lease`` seconds, and create
    ``auths`` authentications due for refresh within a second; the processes (servers first)
    and the authentications' ids."""
    deployed.environ["AUTHBRIDGE_REFRESH_LEASE_SECONDS"] = str(lease)
    info = ["--log-level", "info"]
    servers = [deployed.server(name=f"server{n}", extra_args=info) for n in (1, 2)]
    workers = [deployed.worker(name=f"worker{n}", interval=WORKER_INTERVAL) for n in (1, 2)]
    deployed.start([*servers, *workers])
    now = utcnow()
    ids = [
        deployed.create_oauth_auth(
            expires_at=now + timedelta(seconds=TOKEN_LIFETIME),
            refresh_due_at=now + timedelta(seconds=TOKEN_LIFETIME / 2),
            user=f"user-{number}",
            name=f"chaos {number}",
        )[0].id
        for number in range(auths)
    ]
    return [*servers, *workers], ids


async def _read_loop(
    client: httpx.AsyncClient,
    servers: list[Process],
    ids: list[str],
    chaos: Chaos,
    deadline: float,
    rng: random.Random,
) -> None:
    while time.monotonic() < deadline:
        server = rng.choice(servers)
        auth_id = rng.choice(ids)
        started = time.monotonic()
        wall = datetime.now(UTC)
        try:
            response = await client.get(f"{server.url}/v1/authentications/{auth_id}/credentials")
        except httpx.TransportError as exc:
            outcome, detail = type(exc).__name__, ""
        else:
            outcome, detail = str(response.status_code), ""
            if response.status_code == 200:
                body = response.json()
                expires = datetime.fromisoformat(body["expires_at"])
                if not body["credentials"].get("access_token") or expires <= wall:
                    outcome, detail = "200-expired", body["expires_at"]
            else:
                detail = response.text[:300]
        chaos.reads.append(Read(started, time.monotonic(), server.name, auth_id, outcome, detail))
        await asyncio.sleep(READ_PAUSE)


async def _kill_and_restart(process: Process, moments: list[float], chaos: Chaos) -> None:
    """SIGKILL ``process`` at each of ``moments`` (seconds into the run) and restart it at once
    (a moment that passed while it was starting comes right after it is up)."""
    for at in sorted(moments):
        await asyncio.sleep(max(0.0, chaos.began + at - time.monotonic()))
        pid = process.pid
        assert pid is not None, f"{process.name} was never started"
        kill = Kill(at=time.monotonic(), wall=time.time(), name=process.name, pid=pid)
        process.kill()
        chaos.kills.append(kill)
        await asyncio.to_thread(process.start)
        chaos.restarts.append((time.monotonic(), process.name))


async def _run(
    deployed: Deployment,
    servers: list[Process],
    victims: list[Process],
    ids: list[str],
    *,
    seconds: float,
    kills: int,
    lease: float,
    rng: random.Random,
) -> Chaos:
    chaos = Chaos(began=time.monotonic(), began_at=datetime.now(UTC))
    deadline = chaos.began + seconds
    # Kills spread over the run, ending early enough for a lease to run out before the end.
    moments = {
        process.name: [rng.uniform(0.1 * seconds, 0.75 * seconds) for _ in range(kills)]
        for process in victims
    }
    timeout = httpx.Timeout(lease * 2 + 20, connect=5)
    async with httpx.AsyncClient(headers=deployed.headers(), timeout=timeout) as client:
        await asyncio.gather(
            *(
                _read_loop(client, servers, ids, chaos, deadline, random.Random(rng.random()))
                for _ in range(READERS)
            ),
            *(_kill_and_restart(process, moments[process.name], chaos) for process in victims),
        )
    return chaos


def run(
    deployed: Deployment,
    servers: list[Process],
    ids: list[str],
    *,
    seconds: float,
    lease: float,
    seed: int,
    victims: Sequence[Process] = (),
    kills: int = 0,
) -> Chaos:
    """Read the credentials of ``ids`` from ``servers`` for ``seconds``, killing each of
    ``victims`` ``kills`` times at random moments (``seed`` repeats them)."""
    return asyncio.run(
        _run(
            deployed,
            servers,
            list(victims),
            ids,
            seconds=seconds,
            kills=kills,
            lease=lease,
            rng=random.Random(seed),
        )
    )


def lapse_leases(deployed: Deployment, within: float) -> None:
    """Wait until no lease is held (those of killed processes run out)."""
    deadline = time.monotonic() + within
    while True:
        with deployed.database.session(readonly=True) as session:
            held = session.scalars(
                select(Authentication.lease_until).where(Authentication.lease_until > utcnow())
            ).all()
        if not held:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"leases still held after {within} s: {held}")
        time.sleep(0.2)


Forced = dict[str, tuple[str, int | None]]


async def _force_refreshes(deployed: Deployment, ids: list[str], lease: float) -> Forced:
    bridge = deployed.bridge()
    try:
        refresher = Refresher(bridge, lease=timedelta(seconds=lease))
        forced: Forced = {}
        async with httpx.AsyncClient(timeout=10) as client:
            for auth_id in ids:
                outcome = await refresher.refresh(auth_id, force=True)
                status = None
                if outcome.kind == "refreshed":
                    with deployed.database.session(readonly=True) as session:
                        repo = AuthenticationRepository(session, deployed.keyring)
                        auth = repo.get_any(auth_id)
                        assert auth is not None
                        token = repo.credentials(auth)["access_token"]
                    me = await client.get(
                        deployed.sandbox.url + "/oauth2/me",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    status = me.status_code
                forced[auth_id] = (outcome.kind, status)
        return forced
    finally:
        await bridge.http.aclose()


def force_refreshes(deployed: Deployment, ids: list[str], *, lease: float) -> Forced:
    """Refresh each authentication once more (forced) and ask the sandbox at once whether the
    access token then stored works: ``{id: (outcome, status of /oauth2/me or None)}``."""
    return asyncio.run(_force_refreshes(deployed, ids, lease))


def in_a_killed_lease(read: Read, chaos: Chaos, lease: float) -> bool:
    """The read ran while the lease of a refresher killed a moment before could still hold."""
    return any(
        kill.at - 1 <= read.ended and read.started <= kill.at + lease + 2 for kill in chaos.kills
    )


def server_down(read: Read, chaos: Chaos) -> bool:
    """The server of ``read`` was killed during it or not restarted yet when it was sent."""
    for kill in chaos.kills:
        if kill.name != read.server:
            continue
        restarted = min(
            (at for at, name in chaos.restarts if name == kill.name and at >= kill.at),
            default=float("inf"),
        )
        if read.started <= restarted and read.ended >= kill.at - 0.01:
            return True
    return False
