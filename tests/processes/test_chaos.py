"""Chaos: two servers and two workers under reads, each killed with SIGKILL once, on PostgreSQL.

Ten OAuth 2 authentications against a sandbox whose access tokens live 2 seconds (so each is
refreshed about every second, by a worker or inline by a read), readers fetching credentials
from both servers for ``AUTHBRIDGE_CHAOS_SECONDS`` (60), and every one of the four processes
killed with SIGKILL once at a random moment (``AUTHBRIDGE_CHAOS_SEED`` repeats a run) and
restarted at once. Then the survivors are stopped, leases left by the dead run out, and every
authentication is refreshed once more (forced) from the test process.

What must hold:

* no authentication is lost, and none is silently broken: each is ``active`` with an access
  token the sandbox accepts, or ``invalid`` with ``authentication.invalid`` in the outbox;
* an ``invalid`` one is so because the sandbox detected the reuse of a refresh token, which
  happens only when a kill lands between the provider's answer and our commit (the rotated
  token is lost with the process): the sandbox's reuse count equals the number of invalid
  authentications;
* a read is answered 200 with a token that has not expired, 409 only for an authentication
  that ended ``invalid``, and never with a 5xx except a 503 while the lease of a killed
  refresher has not run out; a read may fail only on the connection, to a server killed or not
  restarted yet.

``AUTHBRIDGE_CHAOS_AUTHS`` (10) and ``AUTHBRIDGE_CHAOS_KILLS`` (1 per process) make a run
harsher: more refreshes per second make a kill likelier to land inside one. The refresh lease of
the processes is ``AUTHBRIDGE_CHAOS_LEASE_SECONDS`` (6; the production default is 30): a read
that finds the lease of a killed refresher waits until it runs out, then refreshes itself.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from authbridge.services import events
from authbridge.services.refresh import Refresher
from authbridge.storage.models import Authentication, AuthStatus, WebhookEvent, utcnow
from authbridge.storage.repositories import AuthenticationRepository
from tests.processes.conftest import Deployment, deployment
from tests.support.processes import Process

pytestmark = pytest.mark.postgres

SECONDS = float(os.environ.get("AUTHBRIDGE_CHAOS_SECONDS", "60"))
LEASE = float(os.environ.get("AUTHBRIDGE_CHAOS_LEASE_SECONDS", "6"))
SEED = int(os.environ.get("AUTHBRIDGE_CHAOS_SEED", "0")) or random.SystemRandom().randrange(
    1, 10**6
)
AUTHS = int(os.environ.get("AUTHBRIDGE_CHAOS_AUTHS", "10"))
KILLS = int(os.environ.get("AUTHBRIDGE_CHAOS_KILLS", "1"))  # per process
TOKEN_LIFETIME = 2
READERS = 6
READ_PAUSE = 0.02
WORKER_INTERVAL = 0.2
REUSE_MESSAGE = "already used"
LEASE_LOST = "result not stored"  # StaleAuthentication from store_refresh


@dataclass(frozen=True)
class Read:
    started: float
    ended: float
    server: str
    auth_id: str
    outcome: str  # the status code, or the transport error's class name
    detail: str = ""


@dataclass
class Chaos:
    """What happened during the run (times from ``time.monotonic()``)."""

    began: float = 0.0
    began_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # the same moment
    kills: list[tuple[float, str]] = field(default_factory=list)
    restarts: list[tuple[float, str]] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)


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
        process.kill()
        chaos.kills.append((time.monotonic(), process.name))
        await asyncio.to_thread(process.start)
        chaos.restarts.append((time.monotonic(), process.name))


async def _run(
    deployed: Deployment, servers: list[Process], victims: list[Process], ids: list[str]
) -> Chaos:
    rng = random.Random(SEED)
    chaos = Chaos(began=time.monotonic(), began_at=datetime.now(UTC))
    deadline = chaos.began + SECONDS
    # Kills spread over the run, ending early enough for a lease to run out before the end.
    moments = {
        process.name: [rng.uniform(0.1 * SECONDS, 0.75 * SECONDS) for _ in range(KILLS)]
        for process in victims
    }
    timeout = httpx.Timeout(LEASE * 2 + 20, connect=5)
    async with httpx.AsyncClient(headers=deployed.headers(), timeout=timeout) as client:
        await asyncio.gather(
            *(
                _read_loop(client, servers, ids, chaos, deadline, random.Random(rng.random()))
                for _ in range(READERS)
            ),
            *(_kill_and_restart(process, moments[process.name], chaos) for process in victims),
        )
    return chaos


def _lapse_leases(deployed: Deployment, within: float) -> None:
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


async def _force_refreshes(deployed: Deployment, ids: list[str]) -> Forced:
    """Refresh each authentication once more (forced) and ask the sandbox at once whether the
    access token then stored works: ``{id: (outcome, status of /oauth2/me or None)}``."""
    bridge = deployed.bridge()
    try:
        refresher = Refresher(bridge, lease=timedelta(seconds=LEASE))
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


def _in_a_killed_lease(read: Read, chaos: Chaos) -> bool:
    """The read ran while the lease of a refresher killed a moment before could still hold."""
    return any(
        killed - 1 <= read.ended and read.started <= killed + LEASE + 2 for killed, _ in chaos.kills
    )


def test_killing_every_process_once_loses_or_silently_breaks_no_authentication(
    postgres_url: str, tmp_path: Path
) -> None:
    with deployment(tmp_path, database_url=postgres_url, token_lifetime=TOKEN_LIFETIME) as deployed:
        deployed.environ["AUTHBRIDGE_REFRESH_LEASE_SECONDS"] = str(LEASE)
        servers = [deployed.server(name=f"server{n}") for n in (1, 2)]
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
            for number in range(AUTHS)
        ]

        chaos = asyncio.run(_run(deployed, servers, [*servers, *workers], ids))

        # Settle: the processes run on until a lease taken just before the last kill ran out.
        last_kill = max(at for at, _ in chaos.kills)
        time.sleep(max(1.0, last_kill + LEASE + 2 - time.monotonic()))
        refreshes_during_run = deployed.refresh_requests()
        exits = {process.name: process.stop() for process in [*servers, *workers]}
        _lapse_leases(deployed, within=LEASE + 5)
        with deployed.database.session(readonly=True) as session:
            failing = Counter(
                session.scalars(
                    select(Authentication.last_error).where(Authentication.refresh_failures > 0)
                )
            )
        forced = asyncio.run(_force_refreshes(deployed, ids))

        # A live refresher must never lose its lease (it would store nothing, and the next one
        # would reuse the refresh token it had already spent).
        lost = sum(process.output().count(LEASE_LOST) for process in [*servers, *workers])
        report = _check(deployed, chaos, ids, forced, lost)
        report["exits"] = exits
        report["transient_failures_left"] = dict(failing)
        report["failed_outcomes_logged"] = sum(
            process.output().count("outcome=failed") for process in workers
        )
        report["sandbox_refreshes_during_run"] = refreshes_during_run
        print(f"\nchaos seed={SEED} seconds={SECONDS:g} lease={LEASE:g}: {report}")
        logs = deployed.processes.logs(10)
        # uvicorn re-raises the SIGTERM it shut down on: a server's clean exit is -15.
        clean = {0, -signal.SIGTERM}
        assert all(code in clean for code in exits.values()), f"{exits}\n{logs}"
        assert report["unexpected"] == [], f"{report}\n{logs}"


def _check(
    deployed: Deployment, chaos: Chaos, ids: list[str], forced: Forced, lost_in_logs: int
) -> dict[str, object]:
    problems: list[str] = []
    lost_leases = lost_in_logs + sum(1 for read in chaos.reads if LEASE_LOST in read.detail)
    if lost_leases:
        problems.append(f"live refreshers lost {lost_leases} lease(s)")
    with deployed.database.session(readonly=True) as session:
        rows = {
            auth.id: auth
            for auth in session.scalars(select(Authentication).where(Authentication.id.in_(ids)))
        }
        invalid_events = {
            event.payload.get("authId"): event.created_at
            for event in session.scalars(
                select(WebhookEvent).where(WebhookEvent.type == events.INVALID)
            )
        }
    lost = sorted(set(ids) - set(rows))
    if lost:
        problems.append(f"lost: {lost}")
    invalid = sorted(auth_id for auth_id, auth in rows.items() if auth.status is AuthStatus.INVALID)
    for auth_id, auth in rows.items():
        if auth.status is AuthStatus.ACTIVE:
            if forced[auth_id] != ("refreshed", 200):
                problems.append(f"{auth_id}: active, but forced refresh and /me: {forced[auth_id]}")
        elif auth.status is AuthStatus.INVALID:
            if auth_id not in invalid_events:
                problems.append(f"{auth_id}: invalid without authentication.invalid")
            elif not _after_a_kill(invalid_events[auth_id], chaos):
                # The reuse was found by the refresher that took over a killed one's lease.
                problems.append(f"{auth_id}: invalid at {invalid_events[auth_id]}, after no kill")
            if REUSE_MESSAGE not in (auth.last_error or ""):
                problems.append(f"{auth_id}: invalid for another reason: {auth.last_error}")
        else:
            problems.append(f"{auth_id}: status {auth.status.value}")
    stats = deployed.sandbox_stats()
    reuse = stats["refresh_reuse_detected"]
    if reuse != len(invalid):
        problems.append(f"{reuse} reuse detections but {len(invalid)} invalid authentications")

    outcomes = Counter(read.outcome for read in chaos.reads)
    unavailable = [read for read in chaos.reads if read.outcome == "503"]
    for read in chaos.reads:
        if read.outcome in {"200", "409"} and (read.outcome == "200" or read.auth_id in invalid):
            continue
        if read.outcome == "503" and _in_a_killed_lease(read, chaos):
            continue
        if read.outcome.isdigit() or read.outcome == "200-expired":
            problems.append(f"read answered {read.outcome}: {read}")
        elif not _server_down(read, chaos):
            problems.append(f"read failed on the connection to a live server: {read}")
    kills = Counter(name for _, name in chaos.kills)
    if sorted(kills.values()) != [KILLS] * 4:
        problems.append(f"each process must be killed {KILLS} time(s): {kills}")
    if outcomes["200"] < 5 * SECONDS:
        problems.append(f"only {outcomes['200']} reads answered 200 in {SECONDS:g} s")
    waits = sorted(read.ended - read.started for read in chaos.reads if read.outcome == "200")
    return {
        "auths": len(rows),
        "leases_lost_by_live_refreshers": lost_leases,
        "invalid": len(invalid),
        "reuse_detected": reuse,
        "reads": dict(outcomes),
        "503": len(unavailable),
        "503_details": sorted({read.detail[:160] for read in unavailable})[:3],
        "slowest_200_s": round(waits[-1], 2) if waits else None,
        # A read that found a killed refresher's lease waited for it to run out.
        "200_after_over_1s": sum(1 for wait in waits if wait > 1),
        "kills": [(round(at - chaos.began, 1), name) for at, name in chaos.kills],
        "sandbox": stats,
        "unexpected": problems[:20],
    }


def _after_a_kill(moment: datetime, chaos: Chaos) -> bool:
    """``moment`` (wall clock) falls within a lease's length (and a little) after a kill."""
    at = chaos.began + (moment - chaos.began_at).total_seconds()
    return any(killed <= at <= killed + LEASE + 5 for killed, _ in chaos.kills)


def _server_down(read: Read, chaos: Chaos) -> bool:
    """The server of ``read`` was killed during it or not restarted yet when it was sent."""
    for killed, name in chaos.kills:
        if name != read.server:
            continue
        restarted = min(
            (
                at
                for at, restarted_name in chaos.restarts
                if restarted_name == name and at >= killed
            ),
            default=float("inf"),
        )
        if read.started <= restarted and read.ended >= killed - 0.01:
            return True
    return False
