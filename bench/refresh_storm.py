"""Benchmark the refresh worker: a storm of OAuth 2 authentications falling due together.

What it does:

1. makes a throw-away PostgreSQL database (through 127.0.0.1:5432, as ``credentials.py`` does),
   migrates it and starts the real sandbox provider (``authbridge sandbox``) on a loopback port,
   with ``--token-lifetime`` (an hour: nothing is due twice during a phase);
2. gets ``--auths`` (10,000) token pairs from the sandbox with its authorization-code flow over
   keep-alive connections, and stores them through the repositories as OAuth 2 authentications of
   a connector pointing at the sandbox, not due yet;
3. starts ``--workers`` ``authbridge worker`` processes (``--concurrency`` refreshes in flight
   each) on that database, with the same keyring through ``AUTHBRIDGE_KEYS``;
4. runs the phases (``--phases``), each over all the authentications:

   * ``burst``: all due at the same moment: how fast the workers work through the backlog;
   * ``minute``: due one after the other over the following ``--window`` (60) seconds: how far
     the refreshes lag behind the due times while the storm arrives;

   and for each waits until every authentication was refreshed (its ``version`` moved on), then
   reads from the database when each was refreshed (``updated_at``, written by the refresher in
   the transaction that stores the new tokens) against when it was due;
5. prints refreshes per second, total time, the lag behind due time (p50/p90/p99/max), the CPU
   time each process used per refresh, and the sandbox's count of refresh-token requests, which
   must equal the number of authentications in every phase (exit status 1 otherwise), and writes
   ``bench/results/refresh-storm.json``.

The processes, the data folder and the database are removed at the end, also after a failure or
Ctrl-C. ``--profile`` samples the first worker with py-spy during the first phase (py-spy is not
a dependency: ``.venv/bin/pip install py-spy``).

    .venv/bin/python bench/refresh_storm.py
    .venv/bin/python bench/refresh_storm.py --auths 2000 --workers 2 --concurrency 64
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from _common import (
    DEFAULT_MAINTENANCE_URL,
    RESULTS,
    ROOT,
    Child,
    child,
    cpu_seconds,
    free_port,
    git_commit,
    percentile,
    temporary_postgres,
    wait_until,
)
from _repositories import (
    AuthenticationRepository,
    ConnectorConfigRepository,
    EndUserRepository,
    EnvironmentRepository,
)
from sqlalchemy import func, select, update

from authbridge.runtime import keyring_json
from authbridge.storage import Database
from authbridge.storage.migrate import upgrade
from authbridge.storage.models import Authentication, AuthStatus
from authbridge.vault import Keyring

RESULT_FILE = RESULTS / "refresh-storm.json"
TARGET_RATE = 500.0
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1/callback"
CONNECTOR = "sandbox-oauth2"
AUTHS_PER_END_USER = 10
LEAD = timedelta(seconds=5)  # the first due time comes this long after the phase is set up
SCRUBBED_ENV = (
    "AUTHBRIDGE_HOME",
    "AUTHBRIDGE_DATABASE_URL",
    "AUTHBRIDGE_KEYS",
    "AUTHBRIDGE_PUBLIC_URL",
    "AUTHBRIDGE_CONNECTORS",
    "AUTHBRIDGE_DATABASE_POOL_SIZE",
    "AUTHBRIDGE_REFRESH_LEASE_SECONDS",
)
CONNECTOR_YAML = """\
# Written by bench/refresh_storm.py: the sandbox's OAuth 2 provider on port {port}.
type: oauth2
definition:
  auth_url: http://127.0.0.1:{port}/oauth2/authorize
  request_access_token: http://127.0.0.1:{port}/oauth2/token
  request_profile_info: http://127.0.0.1:{port}/oauth2/me
  account_name_from_profile_info: email
  scope: [profile]
  scope_delimiter: " "
"""
MANIFEST_YAML = f"key: {CONNECTOR}\nlabel: Sandbox OAuth 2 (bench)\nversion: '1'\n"


# --------------------------------------------------------------------------------------------
# Machine and PostgreSQL CPU time


def machine_cpu_seconds() -> float:
    """CPU seconds every CPU of the machine spent busy so far (``/proc/stat``; else 0)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(value) for value in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds of every ``postgres`` process on this machine (the server's, all its users)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        if name == "postgres" or name.startswith("postgres:"):
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# --------------------------------------------------------------------------------------------
# Seeding


def fetch_tokens(port: int, count: int, threads: int) -> list[dict[str, Any]]:
    """``count`` token pairs from the sandbox's authorization-code flow (approve, exchange),
    over ``threads`` keep-alive connections (``http.client``: on this path httpx's async pool
    costs ten times the CPU per request, which would make seeding the slow part)."""
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    consent = urlencode(
        {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "profile",
            "state": "bench",
            "decision": "approve",
        }
    )
    tokens: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def one(connection: http.client.HTTPConnection) -> dict[str, Any]:
        connection.request("POST", "/oauth2/authorize", consent, form)
        answer = connection.getresponse()
        answer.read()
        location = answer.getheader("location") or ""
        code = dict(parse_qsl(urlsplit(location).query)).get("code")
        if answer.status != 303 or not code:
            raise RuntimeError(f"the sandbox's consent answered {answer.status} {location}")
        exchange = urlencode(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
        )
        connection.request(
            "POST", "/oauth2/token", exchange, {**form, "Authorization": f"Basic {basic}"}
        )
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"the sandbox's token endpoint answered {answer.status}: {body!r}")
        pair: dict[str, Any] = json.loads(body)
        return pair

    def loop(share: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(share):
                pair = one(connection)
                with lock:
                    tokens.append(pair)
                    if len(tokens) % 1000 == 0:
                        print(f"  {len(tokens):,}/{count:,} token pairs", end="\r", flush=True)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    base, extra = divmod(count, threads)
    started = [
        threading.Thread(target=loop, args=(base + (1 if n < extra else 0),), daemon=True)
        for n in range(threads)
    ]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    print()
    if failures:
        raise failures[0]
    return tokens


def store_auths(database: Database, keyring: Keyring, tokens: list[dict[str, Any]]) -> list[str]:
    """The ``default`` environment, the sandbox client and one authentication per token pair
    (not due: the phases set the due times)."""
    later = datetime.now(UTC) + timedelta(days=1)
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        environment_id = environment.id
        ConnectorConfigRepository(session, keyring).upsert(
            environment_id, CONNECTOR, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
    ids: list[str] = []
    batch = 1000
    for start in range(0, len(tokens), batch):
        with database.session() as session:
            users = EndUserRepository(session)
            repository = AuthenticationRepository(session, keyring)
            end_users: dict[str, str] = {}
            for number in range(start, min(start + batch, len(tokens))):
                external = f"storm-user-{number // AUTHS_PER_END_USER:05d}"
                if external not in end_users:
                    end_users[external] = users.get_or_create(environment_id, external).id
                pair = tokens[number]
                auth = repository.create(
                    environment_id=environment_id,
                    end_user_id=end_users[external],
                    connector_key=CONNECTOR,
                    connector_version="1",
                    auth_type="oauth2",
                    name=f"storm {number}",
                    credentials={
                        "access_token": pair["access_token"],
                        "refresh_token": pair["refresh_token"],
                        "token_type": "Bearer",
                        "scope": pair.get("scope", "profile"),
                    },
                    expires_at=later + timedelta(minutes=5),
                    refresh_due_at=later,
                )
                ids.append(auth.id)
        print(f"  stored {len(ids):,}/{len(tokens):,} authentications", end="\r", flush=True)
    print()
    return ids


# --------------------------------------------------------------------------------------------
# Phases


@dataclass
class Phase:
    name: str
    auths: int
    window_s: float
    refreshed: int = 0
    seconds: float = 0.0  # from the first due time to the last refresh
    rate: float = 0.0
    lag_s: dict[str, float] = field(default_factory=dict)
    first_refresh_after_s: float = 0.0
    refresh_requests: int = 0
    reuse_detected: int = 0
    not_active: int = 0
    failures: int = 0
    cpu_ms_per_refresh: dict[str, float] = field(default_factory=dict)
    busy_cores: float = 0.0  # the machine's busy CPUs, on average, during the phase
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def sandbox_stats(sandbox: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(sandbox + "/sandbox/stats", timeout=10).json()
    return stats


def set_due_times(database: Database, ids: list[str], window: float) -> tuple[datetime, dict]:
    """Make the authentications due from ``LEAD`` from now, evenly over ``window`` seconds, in
    one transaction; return the first due time and every authentication's."""
    first = datetime.now(UTC) + LEAD
    step = window / len(ids) if window > 0 else 0.0
    due = {auth_id: first + timedelta(seconds=number * step) for number, auth_id in enumerate(ids)}
    rows = [
        {"id": auth_id, "refresh_due_at": at, "expires_at": at + timedelta(minutes=5)}
        for auth_id, at in due.items()
    ]
    with database.session() as session:
        session.execute(update(Authentication), rows)
    if datetime.now(UTC) >= first:
        print("  WARNING: the due times were stored after the first of them: lag is overstated")
    return first, due


def run_phase(
    name: str,
    window: float,
    database: Database,
    ids: list[str],
    sandbox: str,
    watched: Sequence[Child],
    timeout: float,
) -> Phase:
    phase = Phase(name=name, auths=len(ids), window_s=window)
    with database.session(readonly=True) as session:
        versions = set(session.scalars(select(Authentication.version).distinct()))
    if len(versions) != 1:
        raise RuntimeError(f"the authentications are at different versions: {versions}")
    (version,) = versions
    before = sandbox_stats(sandbox)
    first_due, due = set_due_times(database, ids, window)
    print(f"  {name}: {len(ids):,} due from {first_due:%H:%M:%S} over {window:g} s")
    time.sleep(max(0.0, (first_due - datetime.now(UTC)).total_seconds()))
    cpu_before = {c.name: cpu_seconds(c.process.pid) for c in watched}
    cpu_before["postgres"] = postgres_cpu_seconds()
    machine_before, clock_before = machine_cpu_seconds(), time.monotonic()
    deadline = time.monotonic() + window + timeout
    refreshed = 0
    while refreshed < len(ids):
        time.sleep(0.5)
        with database.session(readonly=True) as session:
            refreshed = (
                session.scalar(select(func.count()).where(Authentication.version > version)) or 0
            )
        print(f"    refreshed {refreshed:,}/{len(ids):,}", end="\r", flush=True)
        for started in watched:
            if started.process.poll() is not None:
                raise RuntimeError(f"{started.name} exited:\n{started.tail()}")
        if time.monotonic() > deadline:
            phase.problems.append(f"only {refreshed} of {len(ids)} refreshed in time")
            break
    print()
    cpu = {c.name: cpu_seconds(c.process.pid) - cpu_before[c.name] for c in watched}
    # Backends that ended meanwhile take their CPU time with them: a floor, never below 0.
    cpu["postgres"] = max(0.0, postgres_cpu_seconds() - cpu_before["postgres"])
    machine = machine_cpu_seconds() - machine_before
    phase.busy_cores = machine / (time.monotonic() - clock_before)
    cpu["everything else"] = machine - sum(cpu.values())
    time.sleep(1.0)  # anything still in flight would show in the sandbox's count
    after = sandbox_stats(sandbox)
    with database.session(readonly=True) as session:
        rows = session.execute(
            select(
                Authentication.id,
                Authentication.updated_at,
                Authentication.version,
                Authentication.status,
                Authentication.refresh_failures,
            )
        ).all()
    refreshed_at = {row.id: row.updated_at for row in rows if row.version > version}
    phase.refreshed = len(refreshed_at)
    phase.not_active = sum(1 for row in rows if row.status is not AuthStatus.ACTIVE)
    phase.failures = sum(1 for row in rows if row.refresh_failures)
    phase.refresh_requests = (
        after["token_requests"]["refresh_token"] - before["token_requests"]["refresh_token"]
    )
    phase.reuse_detected = after["refresh_reuse_detected"] - before["refresh_reuse_detected"]
    if refreshed_at:
        lags = sorted((at - due[auth_id]).total_seconds() for auth_id, at in refreshed_at.items())
        last = max(refreshed_at.values())
        first = min(refreshed_at.values())
        phase.seconds = (last - first_due).total_seconds()
        phase.rate = phase.refreshed / phase.seconds if phase.seconds > 0 else 0.0
        phase.first_refresh_after_s = (first - first_due).total_seconds()
        phase.lag_s = {
            "p50": round(percentile(lags, 50), 3),
            "p90": round(percentile(lags, 90), 3),
            "p99": round(percentile(lags, 99), 3),
            "max": round(lags[-1], 3),
            "min": round(lags[0], 3),
        }
    if phase.refreshed:
        phase.cpu_ms_per_refresh = {
            key: round(value * 1000 / phase.refreshed, 3) for key, value in cpu.items()
        }
    if phase.refresh_requests != len(ids):
        phase.problems.append(
            f"the sandbox saw {phase.refresh_requests} refresh-token requests for {len(ids)} "
            "authentications"
        )
    if phase.reuse_detected:
        phase.problems.append(f"the sandbox detected {phase.reuse_detected} refresh-token reuses")
    if phase.not_active or phase.failures:
        phase.problems.append(
            f"{phase.not_active} authentications not active, {phase.failures} with failures"
        )
    return phase


def print_phase(phase: Phase) -> None:
    lag = phase.lag_s
    print(
        f"  {phase.name:>6}: {phase.refreshed:,} refreshed in {phase.seconds:.1f} s "
        f"({phase.rate:.0f}/s; first {phase.first_refresh_after_s:.2f} s after due), "
        f"lag behind due p50 {lag.get('p50', 0):.2f} s, p90 {lag.get('p90', 0):.2f} s, "
        f"p99 {lag.get('p99', 0):.2f} s, max {lag.get('max', 0):.2f} s; "
        f"sandbox refresh-token requests {phase.refresh_requests:,}, reuse {phase.reuse_detected}"
    )
    print(
        f"          CPU ms per refresh: {phase.cpu_ms_per_refresh} "
        f"(the machine's CPUs busy: {phase.busy_cores:.2f} of {os.cpu_count()})"
    )
    for problem in phase.problems:
        print(f"          PROBLEM: {problem}")


# --------------------------------------------------------------------------------------------
# Main


#: The line a refresher logs when it stops (services/refresh.window_summary).
WINDOW_LINE = re.compile(
    r"refresh store window: n=(?P<n>\d+), p50=(?P<p50>[\d.]+) ms, "
    r"p99=(?P<p99>[\d.]+) ms, max=(?P<max>[\d.]+) ms"
)


def stop_and_read_windows(workers: Sequence[Child]) -> dict[str, dict[str, float]]:
    """Stop the workers gracefully (SIGTERM: they store what is under way) and read the
    answer-to-commit windows each logged as it stopped."""
    for worker in workers:
        worker.process.terminate()
    windows = {}
    for worker in workers:
        worker.process.wait(timeout=60)
        found = WINDOW_LINE.findall(worker.log.read_text(errors="replace"))
        if found:
            n, p50, p99, longest = found[-1]
            windows[worker.name] = {
                "n": int(n),
                "p50_ms": float(p50),
                "p99_ms": float(p99),
                "max_ms": float(longest),
            }
    return windows


def run(args: argparse.Namespace) -> tuple[list[Phase], dict[str, dict[str, float]]]:
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="authbridge-storm-"))
        stack.callback(shutil.rmtree, work, True)
        database_url = stack.enter_context(temporary_postgres(args.postgres_url))
        upgrade(database_url)
        keyring = Keyring.generate()
        environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        environ |= {
            "AUTHBRIDGE_HOME": str(work / "home"),
            "AUTHBRIDGE_DATABASE_URL": database_url,
            "AUTHBRIDGE_KEYS": keyring_json(keyring),
        }
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        sandbox = stack.enter_context(
            child(
                "sandbox",
                ["sandbox", "--port", str(port), "--token-lifetime", str(args.token_lifetime)],
                environ,
                work,
            )
        )
        folder = work / "connectors" / "sandbox" / "oauth2"
        folder.mkdir(parents=True)
        (folder / "auth.yaml").write_text(CONNECTOR_YAML.format(port=port))
        (folder / "manifest.yaml").write_text(MANIFEST_YAML)
        wait_until(
            lambda: httpx.get(sandbox_url + "/sandbox/stats", timeout=1).status_code == 200,
            sandbox,
            "the sandbox did not answer",
        )

        started = time.perf_counter()
        print(f"  getting {args.auths:,} token pairs from the sandbox")
        tokens = fetch_tokens(port, args.auths, args.seed_concurrency)
        print(f"  token pairs in {time.perf_counter() - started:.1f} s")
        database = Database(database_url, pool_size=4, max_overflow=0)
        stack.callback(database.dispose)
        ids = store_auths(database, keyring, tokens)
        print(f"  seeded in {time.perf_counter() - started:.1f} s")

        workers = []
        for number in range(args.workers):
            command = ["worker", "--allow-loopback", "--connectors", str(work / "connectors")]
            command += ["--concurrency", str(args.concurrency), "--interval", str(args.interval)]
            command += ["--log-level", "info"]  # "worker started", and one line per busy tick
            workers.append(
                stack.enter_context(child(f"worker{number + 1}", command, environ, work))
            )
        for worker in workers:
            wait_until(lambda w=worker: "worker started" in w.log.read_text(), worker, "not up")
        print(f"  {args.workers} worker(s) running, {args.concurrency} refreshes in flight each")

        phases = []
        for number, name in enumerate(args.phases):
            window = 0.0 if name == "burst" else args.window
            profile = None
            if args.profile and number == 0:
                profile = stack.enter_context(
                    profiled(workers[0].process.pid, gil=args.profile == "gil")
                )
            phase = run_phase(
                name, window, database, ids, sandbox_url, [*workers, sandbox], args.timeout
            )
            if profile is not None:
                profile.send_signal(signal.SIGINT)
                profile.wait(timeout=30)
            print_phase(phase)
            phases.append(phase)
        windows = stop_and_read_windows(workers)
        for name, window in windows.items():
            print(
                f"  {name}: provider answer to commit of the new tokens, {window['n']:,} "
                f"refreshes: p50 {window['p50_ms']:.1f} ms, p99 {window['p99_ms']:.1f} ms, "
                f"max {window['max_ms']:.1f} ms"
            )
        return phases, windows
    raise AssertionError("unreachable")


PROFILE_FILE = RESULTS / "profile-refresh-storm.txt"


@contextlib.contextmanager
def profiled(pid: int, *, gil: bool) -> Iterator[subprocess.Popen[bytes]]:
    """py-spy sampling ``pid`` (collapsed stacks) until interrupted."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
    command += ["--gil"] if gil else []
    process = subprocess.Popen(
        [*command, "--output", str(PROFILE_FILE), "--nonblocking"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        print(f"  wrote {PROFILE_FILE.relative_to(ROOT)}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--auths", type=int, default=10_000, help="OAuth 2 authentications")
    parser.add_argument("--workers", type=int, default=1, help="authbridge worker processes")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="refreshes in flight in each worker"
    )
    parser.add_argument("--interval", type=float, default=0.2, help="worker tick interval (s)")
    parser.add_argument(
        "--phases",
        default="burst,minute",
        help="comma-separated: burst (all due at once), minute (due over --window seconds)",
    )
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds the minute phase spreads due times over"
    )
    parser.add_argument(
        "--seed-concurrency", type=int, default=8, help="concurrent sandbox flows when seeding"
    )
    parser.add_argument(
        "--token-lifetime", type=int, default=3600, help="the sandbox's access-token lifetime (s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up a phase this long after its window"
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_MAINTENANCE_URL,
        help="a database on the PostgreSQL server to create the bench database from",
    )
    parser.add_argument(
        "--profile",
        choices=["cpu", "gil"],
        default=None,
        help="sample the first worker with py-spy during the first phase (gil: only samples "
        f"where a thread holds the GIL); collapsed stacks in results/{PROFILE_FILE.name}",
    )
    parser.add_argument(
        "--tag", default="", help="write results/refresh-storm-<tag>.json instead (a variant)"
    )
    parser.add_argument("--no-save", action="store_true", help=f"do not write {RESULT_FILE.name}")
    args = parser.parse_args(argv)
    args.phases = [name.strip() for name in args.phases.split(",") if name.strip()]
    if not args.phases or any(name not in {"burst", "minute"} for name in args.phases):
        parser.error("--phases takes burst and/or minute")
    if min(args.auths, args.workers, args.concurrency, args.seed_concurrency) < 1:
        parser.error("--auths, --workers, --concurrency and --seed-concurrency must be positive")
    if args.tag and not args.tag.replace("-", "").replace("_", "").isalnum():
        parser.error("--tag takes letters, digits, - and _")
    if args.window <= 0 or args.interval <= 0:
        parser.error("--window and --interval must be positive")
    return args


def _terminate(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    load = os.getloadavg()[0]
    print(
        f"refresh storm: {args.auths:,} auths, {args.workers} worker(s) x {args.concurrency}, "
        f"phases {', '.join(args.phases)} (load average {load:.2f})"
    )
    try:
        phases, windows = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the processes and the temporary data were removed")
        return 130
    burst = next((phase for phase in phases if phase.name == "burst"), None)
    summary = {
        "benchmark": "refresh-storm",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": round(load, 2),
        },
        "settings": {
            "auths": args.auths,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "interval_s": args.interval,
            "window_s": args.window,
            "token_lifetime_s": args.token_lifetime,
        },
        "target_refreshes_per_s": TARGET_RATE,
        "meets_target": burst is not None and burst.rate >= TARGET_RATE,
        "phases": {
            phase.name: {
                "auths": phase.auths,
                "window_s": phase.window_s,
                "refreshed": phase.refreshed,
                "seconds": round(phase.seconds, 2),
                "refreshes_per_s": round(phase.rate, 1),
                "first_refresh_after_due_s": round(phase.first_refresh_after_s, 3),
                "lag_behind_due_s": phase.lag_s,
                "sandbox_refresh_token_requests": phase.refresh_requests,
                "sandbox_refresh_reuse_detected": phase.reuse_detected,
                "cpu_ms_per_refresh": phase.cpu_ms_per_refresh,
                "busy_cores": round(phase.busy_cores, 2),
                "problems": phase.problems,
            }
            for phase in phases
        },
        "store_window_ms_by_worker": windows,
    }
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULT_FILE.with_stem(f"{RESULT_FILE.stem}-{args.tag}") if args.tag else RESULT_FILE
        path.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"  wrote {path.relative_to(ROOT)}")
    if burst is not None:
        verdict = "meets" if burst.rate >= TARGET_RATE else "BELOW"
        print(f"  burst: {burst.rate:.0f} refreshes/s, {verdict} the target of {TARGET_RATE:.0f}/s")
    return 0 if all(phase.ok for phase in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
