"""Chaos on PostgreSQL: two servers and two workers under reads, killed, or on a failing database.

OAuth 2 authentications against a sandbox whose access tokens live 2 seconds and whose refresh
tokens rotate (presenting a spent one revokes the grant), so each is refreshed about every
second, by a worker or inline by a read; readers fetch credentials from both servers all along.
``AUTHBRIDGE_CHAOS_SEED`` repeats a run's random choices. The refresh lease of the processes is
``AUTHBRIDGE_CHAOS_LEASE_SECONDS`` (6; the production default is 30).

**SIGKILL** (``AUTHBRIDGE_CHAOS_SECONDS``, 60): every one of the four processes is killed with
SIGKILL ``AUTHBRIDGE_CHAOS_KILLS`` times (1) at a random moment and restarted at once. Then the
survivors are stopped, leases left by the dead run out, and every authentication is refreshed
once more (forced) from the test process. A kill between the provider's answer and our commit
loses the rotated refresh token with the process; that, and nothing else, may leave an
authentication ``invalid``, and every such one is accounted for:

* its ``last_error`` says that a refresh was interrupted, ``authentication.invalid`` is in the
  outbox, and exactly one process logged the WARNING that it is now invalid, naming the refresher
  whose lease was taken over;
* a process logged taking over that refresher's lease, and that refresher (by its ``runs in
  process <pid>`` line) ran in a process the test killed with SIGKILL within a lease's length
  (and :data:`TAKEOVER_SLACK`) before the takeover;
* the sandbox detected as many refresh-token reuses as there are invalid authentications.

Every other one is ``active`` with an access token the sandbox accepts; every takeover at all is
of a killed refresher's lease; no live refresher lost its lease; no other status change is
logged. A read is answered 200 with a token that has not expired, 409 only for an authentication
that ended ``invalid``, never with a 5xx except a 503 while the lease of a killed refresher has
not run out; a read may fail only on the connection, to a server killed or not restarted yet.
``AUTHBRIDGE_CHAOS_AUTHS`` (10) and more kills make a run harsher (a kill likelier to land in the
window).

**Store faults** (``AUTHBRIDGE_CHAOS_FAULT_SECONDS``, 25): nothing is killed, but the database
fails a share (``AUTHBRIDGE_CHAOS_FAULT_PROBABILITY``, 0.3) of the statements storing a refresh
result (see :mod:`tests.processes.store_faults`). A result the provider gave is retried until
stored, so: failures were injected, the processes logged retrying, **no** authentication is
invalid, the sandbox saw no reuse and issued no token that was not stored, every authentication
is active with a working token, no lease was taken over or lost, and every read answered 200
with a token that has not expired, or 503 while a store of that authentication's refresh was
being retried (its token may expire meanwhile, and an expired token is never served).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from authbridge.storage.models import Authentication, AuthStatus, WebhookEvent
from authbridge.webhooks import events
from tests.processes import refresh_logs
from tests.processes.chaos import (
    TOKEN_LIFETIME,
    Chaos,
    Forced,
    Read,
    deploy,
    force_refreshes,
    in_a_killed_lease,
    lapse_leases,
    run,
    server_down,
)
from tests.processes.conftest import Deployment, deployment
from tests.processes.refresh_logs import RefreshLog
from tests.processes.store_faults import failing_refresh_stores
from tests.support.processes import Process

pytestmark = pytest.mark.postgres

SECONDS = float(os.environ.get("AUTHBRIDGE_CHAOS_SECONDS", "60"))
FAULT_SECONDS = float(os.environ.get("AUTHBRIDGE_CHAOS_FAULT_SECONDS", "25"))
FAULT_PROBABILITY = float(os.environ.get("AUTHBRIDGE_CHAOS_FAULT_PROBABILITY", "0.3"))
LEASE = float(os.environ.get("AUTHBRIDGE_CHAOS_LEASE_SECONDS", "6"))
SEED = int(os.environ.get("AUTHBRIDGE_CHAOS_SEED", "0")) or random.SystemRandom().randrange(
    1, 10**6
)
AUTHS = int(os.environ.get("AUTHBRIDGE_CHAOS_AUTHS", "10"))
KILLS = int(os.environ.get("AUTHBRIDGE_CHAOS_KILLS", "1"))  # per process
REUSE_MESSAGE = "already used"
INTERRUPTED = "a refresh was interrupted"
#: Seconds a lease that ran out may wait before someone takes it over (a busy 2-CPU machine).
TAKEOVER_SLACK = 5.0
#: uvicorn re-raises the SIGTERM it shut down on: a server's clean exit is -15.
CLEAN_EXITS = {0, -signal.SIGTERM}


def test_killing_every_process_once_loses_or_silently_breaks_no_authentication(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authbridge.refresh")
    with deployment(tmp_path, database_url=postgres_url, token_lifetime=TOKEN_LIFETIME) as deployed:
        processes, ids = deploy(deployed, auths=AUTHS, lease=LEASE)
        servers = processes[:2]
        chaos = run(
            deployed,
            servers,
            ids,
            seconds=SECONDS,
            lease=LEASE,
            seed=SEED,
            victims=processes,
            kills=KILLS,
        )

        # Settle: the processes run on until a lease taken just before the last kill ran out.
        last_kill = max(kill.at for kill in chaos.kills)
        time.sleep(max(1.0, last_kill + LEASE + 2 - time.monotonic()))
        refreshes_during_run = deployed.refresh_requests()
        exits = {process.name: process.stop() for process in processes}
        lapse_leases(deployed, within=LEASE + 5)
        with deployed.database.session(readonly=True) as session:
            failing = Counter(
                session.scalars(
                    select(Authentication.last_error).where(Authentication.refresh_failures > 0)
                )
            )
        forced = force_refreshes(deployed, ids, lease=LEASE)
        logged = _refresh_log(processes, caplog)

        problems, invalid, report = _check_auths(deployed, ids, forced)
        excused = functools.partial(in_a_killed_lease, chaos=chaos, lease=LEASE)
        problems += _check_reads(chaos, invalid, SECONDS, excused, report)
        problems += _account_for_takeovers(chaos, logged, report)
        problems += _account_for_invalid(chaos, logged, invalid, report)
        refreshers = sum(source != "test" for source, _ in logged.owners.values())
        if refreshers != sum(process.starts for process in processes):
            problems.append(f"{refreshers} 'refresher … runs in process' lines, one a start")
        kills = Counter(kill.name for kill in chaos.kills)
        if sorted(kills.values()) != [KILLS] * len(processes):
            problems.append(f"each process must be killed {KILLS} time(s): {kills}")
        report |= {
            "kills": [(round(kill.at - chaos.began, 1), kill.name) for kill in chaos.kills],
            "exits": exits,
            "transient_failures_left": dict(failing),
            "sandbox_refreshes_during_run": refreshes_during_run,
            "unexpected": problems[:20],
        }
        print(f"\nchaos (SIGKILL) seed={SEED} seconds={SECONDS:g} lease={LEASE:g}: {report}")
        logs = deployed.processes.logs(10)
        assert all(code in CLEAN_EXITS for code in exits.values()), f"{exits}\n{logs}"
        assert problems == [], f"{report}\n{logs}"


def test_failing_refresh_stores_lose_no_rotated_refresh_token(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authbridge.refresh")
    with deployment(tmp_path, database_url=postgres_url, token_lifetime=TOKEN_LIFETIME) as deployed:
        # From before the first refresh until the processes stopped: every store is counted.
        with failing_refresh_stores(deployed.database, FAULT_PROBABILITY) as faults:
            processes, ids = deploy(deployed, auths=AUTHS, lease=LEASE)
            chaos = run(deployed, processes[:2], ids, seconds=FAULT_SECONDS, lease=LEASE, seed=SEED)
            # Stopped with the faults still on: a refresh under way is stored before the exit.
            exits = {process.name: process.stop() for process in processes}
        logs = deployed.processes.logs(10)
        assert all(code in CLEAN_EXITS for code in exits.values()), f"{exits}\n{logs}"
        lapse_leases(deployed, within=2)  # a process that stopped holds no lease
        forced = force_refreshes(deployed, ids, lease=LEASE)
        logged = _refresh_log(processes, caplog)

        problems, invalid, report = _check_auths(deployed, ids, forced)
        retried = functools.partial(_store_retried, chaos=chaos, retrying=logged.retrying())
        problems += _check_reads(chaos, invalid, FAULT_SECONDS, retried, report)
        if invalid:
            problems.append(f"invalid authentications: {invalid}")
        if report["reuse_detected"]:
            problems.append(f"the sandbox detected {report['reuse_detected']} reuse(s)")
        if not all(faults.injected.values()):
            problems.append(f"not every kind of store failure injected: {faults.injected}")
        retries = [entry for entry in logged.store_retries if entry.source != "test"]
        if not retries:
            problems.append("no process logged retrying a failed store")
        # Every token the sandbox issued was stored once: by a process (a store the trigger let
        # through, committed) or by the forced refreshes at the end.
        issued = deployed.sandbox_stats()["tokens_issued"]["refresh_token"]
        stored = faults.kept + sum(kind == "refreshed" for kind, _ in forced.values())
        if issued != stored:
            problems.append(f"the sandbox issued {issued} refreshed tokens, {stored} were stored")
        if len(retries) > faults.total:
            problems.append(f"{len(retries)} store retries logged, {faults.total} failures")
        if any(entry.level != "WARNING" for entry in retries):
            problems.append(f"store retries not logged as WARNING: {retries[:3]}")
        for entry in [*logged.takeovers, *logged.leases_lost, *logged.status_changes]:
            problems.append(f"{entry.source} logged: {entry.message}")
        report |= {
            "store_faults": {"attempts": faults.attempts, **faults.injected},
            "store_retries_logged": dict(Counter(entry["error"] for entry in retries)),
            "store_retry_errors": sum(
                process.output().count("the new credentials are still not stored")
                for process in processes
            ),
            "exits": exits,
            "unexpected": problems[:20],
        }
        print(
            f"\nchaos (store faults) seed={SEED} seconds={FAULT_SECONDS:g} "
            f"p={FAULT_PROBABILITY:g} lease={LEASE:g}: {report}"
        )
        assert problems == [], f"{report}\n{deployed.processes.logs(10)}"


def _refresh_log(processes: list[Process], caplog: pytest.LogCaptureFixture) -> RefreshLog:
    """What the processes (and the test process's own refresher) logged about refreshes."""
    records = [record for record in caplog.records if record.name.startswith("authbridge")]
    return refresh_logs.read({process.name: process.output() for process in processes}, records)


Report = dict[str, object]


def _check_auths(
    deployed: Deployment, ids: list[str], forced: Forced
) -> tuple[list[str], list[str], Report]:
    """Every authentication is there, and ``active`` with a token the sandbox accepts after a
    forced refresh, or ``invalid`` because a refresh token was reused after an interrupted
    refresh (its ``last_error`` and its one ``authentication.invalid`` say so)."""
    problems: list[str] = []
    with deployed.database.session(readonly=True) as session:
        rows = {
            auth.id: auth
            for auth in session.scalars(select(Authentication).where(Authentication.id.in_(ids)))
        }
        invalid_events = Counter(
            (event.payload.get("authId"), INTERRUPTED in str(event.payload.get("message")))
            for event in session.scalars(
                select(WebhookEvent).where(WebhookEvent.type == events.INVALID)
            )
        )
    lost = sorted(set(ids) - set(rows))
    if lost:
        problems.append(f"lost: {lost}")
    invalid = sorted(auth_id for auth_id, auth in rows.items() if auth.status is AuthStatus.INVALID)
    for auth_id, auth in rows.items():
        if auth.status is AuthStatus.ACTIVE:
            if forced[auth_id] != ("refreshed", 200):
                problems.append(f"{auth_id}: active, but forced refresh and /me: {forced[auth_id]}")
        elif auth.status is AuthStatus.INVALID:
            if invalid_events[auth_id, True] != 1 or invalid_events[auth_id, False]:
                problems.append(
                    f"{auth_id}: not one authentication.invalid saying a refresh was interrupted"
                )
            error = auth.last_error or ""
            if REUSE_MESSAGE not in error or INTERRUPTED not in error:
                problems.append(
                    f"{auth_id}: invalid, but not after an interrupted refresh: {error}"
                )
        else:
            problems.append(f"{auth_id}: status {auth.status.value}")
    for event_auth_id, _ in invalid_events:
        if event_auth_id not in invalid:
            problems.append(f"{event_auth_id}: authentication.invalid, but it is not invalid")
    stats = deployed.sandbox_stats()
    return (
        problems,
        invalid,
        {
            "auths": len(rows),
            "invalid": invalid,
            "invalid_errors": {auth_id: rows[auth_id].last_error for auth_id in invalid},
            "reuse_detected": stats["refresh_reuse_detected"],
            "sandbox": stats,
        },
    )


def _check_reads(
    chaos: Chaos,
    invalid: list[str],
    seconds: float,
    unavailable_excused: Callable[[Read], bool],
    report: Report,
) -> list[str]:
    """200 with a token not expired; 409 for an auth that ended invalid; 503 only where
    ``unavailable_excused``; a connection error only to a server down."""
    problems: list[str] = []
    for read in chaos.reads:
        if read.outcome == "200" or (read.outcome == "409" and read.auth_id in invalid):
            continue
        if read.outcome == "503" and unavailable_excused(read):
            continue
        if read.outcome.isdigit() or read.outcome == "200-expired":
            problems.append(f"read answered {read.outcome}: {read}")
        elif not server_down(read, chaos):
            problems.append(f"read failed on the connection to a live server: {read}")
    outcomes = Counter(read.outcome for read in chaos.reads)
    if outcomes["200"] < 5 * seconds:
        problems.append(f"only {outcomes['200']} reads answered 200 in {seconds:g} s")
    waits = sorted(read.ended - read.started for read in chaos.reads if read.outcome == "200")
    unavailable = [read for read in chaos.reads if read.outcome == "503"]
    report |= {
        "reads": dict(outcomes),
        "503_details": sorted({read.detail[:160] for read in unavailable})[:3],
        "slowest_200_s": round(waits[-1], 2) if waits else None,
        # A read that found a killed refresher's lease waited for it to run out.
        "200_after_over_1s": sum(1 for wait in waits if wait > 1),
    }
    return problems


def _store_retried(
    read: Read, *, chaos: Chaos, retrying: dict[str, list[tuple[float, float]]]
) -> bool:
    """A store of a refresh of the authentication read was being retried during the read (its
    token may have expired meanwhile), or had just been (a second, for a slow answer)."""
    return any(
        chaos.monotonic(start) <= read.ended and read.started <= chaos.monotonic(end) + 1
        for start, end in retrying.get(read.auth_id, [])
    )


def _account_for_takeovers(chaos: Chaos, logged: RefreshLog, report: Report) -> list[str]:
    """Every lease taken over was a killed refresher's, killed within a lease (and the slack)
    before; no live refresher lost its lease."""
    problems = [
        f"{entry.source}: a live refresher lost its lease: {entry.message}"
        for entry in logged.leases_lost
    ]
    for takeover in logged.takeovers:
        if takeover.level != "WARNING":
            problems.append(f"{takeover.source}: takeover logged at {takeover.level}")
        problems += _killed_in_the_window(takeover, chaos, logged)
    report["refreshers"] = len(logged.owners)
    report["takeovers"] = len(logged.takeovers)
    report["leases_lost_by_live_refreshers"] = len(logged.leases_lost)
    return problems


def _killed_in_the_window(
    takeover: refresh_logs.Entry, chaos: Chaos, logged: RefreshLog
) -> list[str]:
    previous = takeover["previous"]
    process = logged.owners.get(previous)
    if process is None:
        return [f"{takeover.source}: the refresher taken over logged no pid: {takeover.message}"]
    name, pid = process
    kills = [kill for kill in chaos.kills if (kill.name, kill.pid) == (name, pid)]
    if not kills:
        return [
            f"{takeover.source}: the refresher taken over ran in {name} (pid {pid}), which was "
            f"not killed: {takeover.message}"
        ]
    (kill,) = kills
    # Within a lease and the slack, not counting time while no worker ran (with harsh settings,
    # both may be restarting); the takeover's log time is cut to the millisecond.
    workers = sorted({kill.name for kill in chaos.kills if kill.name.startswith("worker")})
    idle = chaos.all_down(workers, kill.at, chaos.monotonic(takeover.at))
    if not -0.01 <= takeover.at - kill.wall <= LEASE + TAKEOVER_SLACK + idle:
        return [
            f"{takeover.source}: the refresher taken over ran in {name}, killed "
            f"{takeover.at - kill.wall:.2f} s before: {takeover.message}"
        ]
    return []


def _account_for_invalid(
    chaos: Chaos, logged: RefreshLog, invalid: list[str], report: Report
) -> list[str]:
    """Each invalid authentication: one WARNING saying so that names an interrupted refresh and
    the refresher whose lease was taken over, a takeover of that refresher's lease logged before
    it, and that refresher killed in the window (see :func:`_killed_in_the_window`); as many
    reuses detected as invalid authentications; no other status change logged."""
    problems: list[str] = []
    accounted: Counter[str] = Counter()  # invalid authentications by the process killed
    for auth_id in invalid:
        changes = [entry for entry in logged.status_changes if entry["auth"] == auth_id]
        if len(changes) != 1:
            problems.append(f"{auth_id}: {len(changes)} status changes logged: {changes}")
            continue
        (change,) = changes
        if change["status"] != "invalid" or change.level != "WARNING":
            problems.append(f"{auth_id}: logged {change.level} {change.message}")
        # The takeover whose refresh found the old token refused: the last one before, of the
        # lease of the refresher the WARNING names.
        takeovers = sorted(
            (
                entry
                for entry in logged.takeovers
                if entry["auth"] == auth_id
                and entry.at <= change.at + 0.01
                and entry["previous"] in change["reason"]
                and entry.source == change.source  # the refresher that took over found it
            ),
            key=lambda entry: entry.at,
        )
        if INTERRUPTED not in change["reason"] or not takeovers:
            problems.append(
                f"{auth_id}: no process logged taking over the lease of the refresher whose "
                f"interrupted refresh the WARNING names: {change.message}"
            )
            continue
        takeover = takeovers[-1]
        unaccounted = _killed_in_the_window(takeover, chaos, logged)
        problems += unaccounted
        if not unaccounted:
            name, _ = logged.owners[takeover["previous"]]
            accounted[name] += 1
    for change in logged.status_changes:
        if change["auth"] not in invalid:
            problems.append(f"{change.source} logged a status change: {change.message}")
    reuse = report["reuse_detected"]
    if reuse != len(invalid):
        problems.append(f"{reuse} reuse detections but {len(invalid)} invalid authentications")
    report["invalid_by_process_killed"] = dict(accounted)
    return problems
