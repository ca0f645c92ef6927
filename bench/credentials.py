"""Benchmark ``GET /v1/authentications/{id}/credentials`` against ``GET /healthz`` on one server.

What it does, for each database asked for (SQLite, PostgreSQL or both):

1. makes a throw-away data folder (and, for PostgreSQL, a throw-away database through
   127.0.0.1:5432), migrates it and seeds it directly with the repositories: the ``default``
   environment, a master token, end users and ``--auths`` API-key authentications, in batches;
2. starts ONE ``authbridge serve`` process on a free port, with that data folder (so the same key
   file) and that database;
3. drives it from a separate process (``wrk`` with a Lua script that picks a random
   authentication id per request, else a multi-process httpx client): a warm-up on both
   endpoints, then ``/healthz`` (the ceiling: the same server doing no work) and the credentials
   endpoint for ``--duration`` seconds each, with ``--concurrency`` open connections;
4. prints requests/s, p50/p90/p99 latency and the ratio credentials/healthz (the targets: at
   least 70% on SQLite and 50% on PostgreSQL, with a p99 within 2x of healthz's), checks that
   every credentials read was audited, and writes
   ``bench/results/credentials-<db>.json``.

The server, the data folder and the PostgreSQL database are removed at the end, also after a
failure or Ctrl-C.

    .venv/bin/python bench/credentials.py                 # both databases
    .venv/bin/python bench/credentials.py --db sqlite --duration 10 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import (
    DEFAULT_MAINTENANCE_URL,
    RESULTS,
    ROOT,
    answers,
    child,
    free_port,
    git_commit,
    percentile,
    server_sources,
    temporary_postgres,
    tree_cpu_seconds,
    wait_until,
)
from _repositories import (
    AuthenticationRepository,
    EndUserRepository,
    EnvironmentRepository,
    MasterTokenRepository,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from authbridge.runtime import Settings, keyring_json, open_database, open_keyring

#: credentials / healthz req/s at least, by database (issue 16).
TARGET_RATIOS = {"sqlite": 0.70, "postgresql": 0.50}
#: credentials' p99 at most this multiple of healthz's p99 in the same run.
TARGET_P99_FACTOR = 2.0
#: Seconds after the load to wait for the audit trail to write every read's row.
AUDIT_DRAIN_LIMIT_S = 15.0
POOL_CEILING = 30  # connections one server's pool may open (storage/db.py)
POSTGRES_SPARE_CONNECTIONS = 15  # left to other users of a shared PostgreSQL
# One server process does /healthz with one core; using less means something else was the limit.
HEALTHZ_MIN_BUSY = 0.6
AUTHS_PER_END_USER = 10
CREDENTIALS_READ = "authentication.credentials_read"
CREDENTIALS_LABEL = "GET /v1/authentications/{id}/credentials"
HEALTHZ_LABEL = "GET /healthz"
# Variables of the environment that would point the server somewhere else than the bench data.
SCRUBBED_ENV = (
    "AUTHBRIDGE_HOME",
    "AUTHBRIDGE_DATABASE_URL",
    "AUTHBRIDGE_KEYS",
    "AUTHBRIDGE_PUBLIC_URL",
    "AUTHBRIDGE_CONNECTORS",
)

WRK_SCRIPT = r"""
-- Written by bench/credentials.py. BENCH_MODE=credentials picks a random id from BENCH_IDS_FILE
-- for every request and sends the master token; BENCH_MODE=healthz asks for /healthz.
local mode = os.getenv("BENCH_MODE")
local ids = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_no", thread_count)
end

function init(args)
  math.randomseed(os.time() + 7919 * (thread_no or 0))
  if mode == "credentials" then
    for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
      if #line > 0 then ids[#ids + 1] = line end
    end
    wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  end
end

function request()
  if mode == "credentials" then
    return wrk.format("GET", "/v1/authentications/" .. ids[math.random(#ids)] .. "/credentials")
  end
  return wrk.format("GET", "/healthz")
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,' ..
    '"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Measurement:
    """One measured run against one endpoint."""

    endpoint: str
    requests: int
    seconds: float
    errors: int
    error_detail: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    server_cpu_s: float = 0.0  # user + system CPU time the server process used meanwhile

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU per request: unlike req/s, hardly moved by other load on the machine."""
        return self.server_cpu_s * 1000 / self.requests if self.requests else 0.0

    @property
    def ok(self) -> int:
        return self.requests - self.errors

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rps": round(self.rps, 1),
            "server_cpu_ms_per_request": round(self.cpu_ms_per_request, 3),
        }


@dataclass
class Run:
    """Everything measured on one database (and one server, with several ``--server-src``)."""

    db: str
    variant: str
    server_src: str | None
    loadgen: str
    auths: int
    concurrency: int
    duration: float
    warmup: float
    rounds: int
    healthz: Measurement
    credentials: Measurement
    seed_seconds: float
    audited_reads: int
    ok_credentials_responses: int
    load_average: float
    server_processes: int = 1
    diagnostics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.credentials.rps / self.healthz.rps if self.healthz.rps else 0.0

    @property
    def target_ratio(self) -> float:
        return TARGET_RATIOS[self.db]

    @property
    def meets_target(self) -> bool:
        p99_bound = TARGET_P99_FACTOR * self.healthz.p99_ms
        return self.ratio >= self.target_ratio and self.credentials.p99_ms <= p99_bound

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": "credentials",
            "db": self.db,
            "variant": self.variant or None,
            "server_src": self.server_src,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_before_measuring": round(self.load_average, 2),
            },
            "settings": {
                "loadgen": self.loadgen,
                "auths": self.auths,
                "concurrency": self.concurrency,
                "duration_s": self.duration,
                "warmup_s": self.warmup,
                "rounds": self.rounds,
                "server_processes": self.server_processes,
            },
            "seed_seconds": round(self.seed_seconds, 1),
            "healthz": self.healthz.as_json(),
            "credentials": self.credentials.as_json(),
            "ratio": round(self.ratio, 3),
            "target_ratio": self.target_ratio,
            "target_p99_factor": TARGET_P99_FACTOR,
            "p99_factor": round(self.credentials.p99_ms / self.healthz.p99_ms, 2)
            if self.healthz.p99_ms
            else None,
            "meets_target": self.meets_target,
            "audit": {
                "credentials_read_rows": self.audited_reads,
                "ok_credentials_responses": self.ok_credentials_responses,
            },
            "diagnostics": self.diagnostics,
            "notes": self.notes,
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------------------------
# Seeding


@dataclass
class Seeded:
    token: str
    ids: list[str]
    seconds: float
    keys_json: str = ""


def seed(settings: Settings, auths: int, batch: int) -> Seeded:
    """Migrate the database and fill it with the repositories, as a server would have."""
    started = time.perf_counter()
    keyring, _created = open_keyring(settings)
    database = open_database(settings)
    try:
        with database.session() as session:
            environment = EnvironmentRepository(session, keyring).get_or_create()
            issued = MasterTokenRepository(session).create(environment.id, "bench")
            environment_id = environment.id
        end_users: dict[str, str] = {}
        ids: list[str] = []
        for start in range(0, auths, batch):
            with database.session() as session:
                users = EndUserRepository(session)
                repository = AuthenticationRepository(session, keyring)
                for number in range(start, min(start + batch, auths)):
                    external = f"bench-user-{number // AUTHS_PER_END_USER:05d}"
                    if external not in end_users:
                        end_users[external] = users.get_or_create(environment_id, external).id
                    auth = repository.create(
                        environment_id=environment_id,
                        end_user_id=end_users[external],
                        connector_key="sendgrid",
                        connector_version="1",
                        auth_type="api_key",
                        name=f"bench {number}",
                        email=f"{external}@bench.example",
                        credentials={"api_key": "SG." + secrets.token_urlsafe(48)},
                        profile={"username": external, "email": f"{external}@bench.example"},
                    )
                    ids.append(auth.id)
            print(f"  seeded {len(ids):,}/{auths:,} authentications", end="\r", flush=True)
        print()
        return Seeded(token=issued.token, ids=ids, seconds=time.perf_counter() - started)
    finally:
        database.dispose()


SEED_FILE = "seed.json"


def seed_in_subprocess(environ: dict[str, str], args: argparse.Namespace, work_dir: Path) -> Seeded:
    """Seed with the server's code (``environ`` holds its PYTHONPATH), so schemas agree."""
    command = [sys.executable, str(Path(__file__).resolve()), "--internal-seed", str(work_dir)]
    command += ["--auths", str(args.auths), "--batch", str(args.batch)]
    subprocess.run(command, env=environ, stdin=subprocess.DEVNULL, check=True)
    data = json.loads((work_dir / SEED_FILE).read_text())
    return Seeded(**data)


def _internal_seed(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    seeded = seed(settings, args.auths, args.batch)
    keyring, _ = open_keyring(settings)
    seeded.keys_json = keyring_json(keyring)
    (args.internal_seed / SEED_FILE).write_text(json.dumps(asdict(seeded)))
    return 0


def count_audited_reads(database_url: str) -> int:
    """Count the audit rows of credentials reads (plain SQL: never migrates the database)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            statement = text("SELECT count(*) FROM audit_events WHERE action = :action")
            return int(connection.scalar(statement, {"action": CREDENTIALS_READ}) or 0)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# Temporary database and server


def check_postgres_headroom(maintenance_url: str, servers: int) -> None:
    """Refuse to start servers whose pools could take the connections other users need.

    A server's pool opens up to POOL_CEILING connections; several servers side by side on a
    shared PostgreSQL can exhaust ``max_connections``, and other clients (a test suite) then fail
    with "too many clients".
    """
    plain = make_url(maintenance_url).set(drivername="postgresql")
    with psycopg.connect(
        plain.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
    ) as connection:
        row = connection.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()
    free = int(row[0]) if row else 0
    needed = servers * POOL_CEILING + POSTGRES_SPARE_CONNECTIONS
    if needed > free:
        raise SystemExit(
            f"PostgreSQL has {free} free connections; {servers} server(s) may take "
            f"{servers * POOL_CEILING} and others need {POSTGRES_SPARE_CONNECTIONS} spare: "
            "compare fewer servers at once"
        )


def postgres_sessions(maintenance_url: str, database_url: str) -> int:
    """How many connections the bench database has had (PostgreSQL 14+ statistics)."""
    plain = make_url(maintenance_url).set(drivername="postgresql")
    name = make_url(database_url).database
    with psycopg.connect(
        plain.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
    ) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else -1


@contextlib.contextmanager
def server(
    environ: dict[str, str], port: int, log_dir: Path, workers: int = 1
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``authbridge serve`` until the block ends, once it answers ``/healthz``."""
    command = ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if workers > 1:
        command += ["--workers", str(workers)]
    with child("server", command, environ, log_dir) as started:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(answers(url), started, f"authbridge serve did not answer {url}")
        yield started.process


# --------------------------------------------------------------------------------------------
# Load generators


@dataclass
class Target:
    base_url: str
    token: str
    ids_file: Path
    ids: list[str]


def check_endpoint(target: Target) -> None:
    """One credentials read before measuring: it must answer 200 with the stored key."""
    auth_id = target.ids[0]
    response = httpx.get(
        f"{target.base_url}/v1/authentications/{auth_id}/credentials",
        headers={"Authorization": f"Bearer {target.token}"},
        timeout=10,
    )
    body = response.json()
    if response.status_code != 200 or not body.get("credentials", {}).get("api_key"):
        raise RuntimeError(f"the credentials endpoint answered {response.status_code}: {body}")


class Wrk:
    name = "wrk"

    def __init__(self, work_dir: Path, threads: int) -> None:
        self.script = work_dir / "bench.lua"
        self.script.write_text(WRK_SCRIPT)
        self.threads = threads

    def run(
        self, target: Target, mode: str, duration: float, concurrency: int, label: str
    ) -> Measurement:
        environ = {
            **os.environ,
            "BENCH_MODE": mode,
            "BENCH_IDS_FILE": str(target.ids_file),
            "BENCH_TOKEN": target.token,
        }
        command = [
            "wrk",
            "--threads",
            str(min(self.threads, concurrency)),
            "--connections",
            str(concurrency),
            "--duration",
            f"{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--script",
            str(self.script),
            target.base_url,
        ]
        done = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
        line = next(
            (x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")),
            None,
        )
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        data = json.loads(line.removeprefix("BENCH_RESULT "))
        errors: dict[str, int] = data["errors"]
        latency = data["latency_us"]
        return Measurement(
            endpoint=label,
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            errors=sum(errors.values()),
            error_detail=errors,
            p50_ms=latency["p50"] / 1000,
            p90_ms=latency["p90"] / 1000,
            p99_ms=latency["p99"] / 1000,
            mean_ms=latency["mean"] / 1000,
            max_ms=latency["max"] / 1000,
        )


def _client_worker(
    base_url: str,
    token: str,
    ids: list[str],
    mode: str,
    connections: int,
    duration: float,
    seed_value: int,
    results: Any,
) -> None:
    """One load-generating process: ``connections`` concurrent loops on one event loop."""
    chooser = random.Random(seed_value)  # picks ids, not secrets
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def loop(client: httpx.AsyncClient, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if mode == "credentials":
                path = f"/v1/authentications/{chooser.choice(ids)}/credentials"
            else:
                path = "/healthz"
            started = time.perf_counter()
            try:
                response = await client.get(path)
                await response.aread()
                key = str(response.status_code)
            except httpx.HTTPError as error:
                key = type(error).__name__
            latencies.append(time.perf_counter() - started)
            statuses[key] = statuses.get(key, 0) + 1

    async def main() -> float:
        headers = {"Authorization": f"Bearer {token}"} if mode == "credentials" else {}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=10
        ) as client:
            started = time.perf_counter()
            deadline = started + duration
            await asyncio.gather(*(loop(client, deadline) for _ in range(connections)))
            return time.perf_counter() - started

    elapsed = asyncio.run(main())
    results.put({"latencies": latencies, "statuses": statuses, "seconds": elapsed})


class PythonClient:
    name = "python-httpx"

    def __init__(self, processes: int) -> None:
        self.processes = processes

    def run(
        self, target: Target, mode: str, duration: float, concurrency: int, label: str
    ) -> Measurement:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        count = max(1, min(self.processes, concurrency))
        base, extra = divmod(concurrency, count)
        shares = [base + (1 if i < extra else 0) for i in range(count)]
        workers = [
            context.Process(
                target=_client_worker,
                args=(target.base_url, target.token, target.ids, mode, share, duration, i, results),
                daemon=True,
            )
            for i, share in enumerate(shares)
        ]
        try:
            for worker in workers:
                worker.start()
            parts = [results.get(timeout=duration + 120) for _ in workers]
            for worker in workers:
                worker.join(timeout=10)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
        latencies = sorted(x for part in parts for x in part["latencies"])
        statuses: dict[str, int] = {}
        for part in parts:
            for key, value in part["statuses"].items():
                statuses[key] = statuses.get(key, 0) + value
        seconds = max(part["seconds"] for part in parts)
        errors = sum(value for key, value in statuses.items() if key != "200")
        return Measurement(
            endpoint=label,
            requests=len(latencies),
            seconds=seconds,
            errors=errors,
            error_detail={key: value for key, value in statuses.items() if key != "200"},
            p50_ms=percentile(latencies, 50) * 1000,
            p90_ms=percentile(latencies, 90) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            mean_ms=(sum(latencies) / len(latencies) * 1000) if latencies else 0.0,
            max_ms=(latencies[-1] * 1000) if latencies else 0.0,
        )


LoadGenerator = Wrk | PythonClient


def measure(
    loadgen: LoadGenerator,
    pid: int,
    target: Target,
    mode: str,
    args: argparse.Namespace,
    seconds: float,
) -> Measurement:
    label = CREDENTIALS_LABEL if mode == "credentials" else HEALTHZ_LABEL
    print(f"  measuring {label} for {seconds:g} s ({target.base_url})")
    before = tree_cpu_seconds(pid)
    result = loadgen.run(target, mode, seconds, args.concurrency, label)
    result.server_cpu_s = tree_cpu_seconds(pid) - before
    return result


def choose_loadgen(args: argparse.Namespace, work_dir: Path) -> LoadGenerator:
    if args.loadgen in {"auto", "wrk"} and shutil.which("wrk"):
        return Wrk(work_dir, args.wrk_threads)
    if args.loadgen == "wrk":
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk); or --loadgen python")
    if args.loadgen == "auto":
        print("  wrk not found: falling back to the Python httpx client (install wrk: apt-get)")
    return PythonClient(args.client_processes)


# --------------------------------------------------------------------------------------------
# Profiling (optional)


@contextlib.contextmanager
def profiled(pid: int, duration: float, output: Path | None) -> Iterator[None]:
    """Sample the server with py-spy while the block runs, when ``output`` is given."""
    if output is None:
        yield
        return
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy if py_spy.exists() else "py-spy"), "record", "--pid", str(pid)]
    command += ["--duration", str(max(1, round(duration))), "--rate", "200", "--format", "raw"]
    command += ["--output", str(output)]
    if output.suffix == ".gil":
        command.append("--gil")  # only the samples where a thread held the GIL
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        try:
            process.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.returncode not in (0, None):
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            print(f"  py-spy failed: {err.strip()}")
        else:
            print(f"  profile written to {output}")


# --------------------------------------------------------------------------------------------
# One database


@dataclass
class Variant:
    """A server to measure: the installed authbridge, or the code in ``src`` (``--server-src``)."""

    name: str
    src: Path | None
    #: ``serve --workers``: server processes.
    workers: int = 1


@dataclass
class Prepared:
    variant: Variant
    database_url: str
    process: subprocess.Popen[bytes]
    target: Target
    seeded: Seeded
    warm_ok: int = 0
    sessions_before: int = 0
    slices: dict[str, list[Measurement]] = field(default_factory=dict)
    ok_reads: int = 0  # successful credentials reads, the check and the warm-up included
    audited_reads: int = 0
    audit_drain_s: float = 0.0


def start_variant(
    stack: contextlib.ExitStack, db: str, variant: Variant, args: argparse.Namespace, work: Path
) -> Prepared:
    """Seed a database of its own for ``variant`` and start its server."""
    label = f" [{variant.name}]" if variant.name else ""
    work.mkdir()
    environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    environ["AUTHBRIDGE_HOME"] = str(work / "home")
    if db == "postgresql":
        environ["AUTHBRIDGE_DATABASE_URL"] = stack.enter_context(
            temporary_postgres(args.postgres_url)
        )
    if variant.src is not None:
        environ["PYTHONPATH"] = str(variant.src.resolve())
    database_url = Settings.from_env(environ).resolved_database_url()

    print(f"  seeding{label} {args.auths:,} authentications (batches of {args.batch})")
    seeded = seed_in_subprocess(environ, args, work)
    print(f"  seeded in {seeded.seconds:.1f} s")
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(seeded.ids) + "\n")
    if args.keys == "env":
        # Same keyring, handed to the server through AUTHBRIDGE_KEYS instead of the key file.
        environ["AUTHBRIDGE_KEYS"] = seeded.keys_json

    port = free_port()
    process = stack.enter_context(server(environ, port, work, variant.workers))
    print(f"  authbridge serve{label} pid {process.pid} on 127.0.0.1:{port}")
    target = Target(f"http://127.0.0.1:{port}", seeded.token, ids_file, seeded.ids)
    check_endpoint(target)
    return Prepared(variant, database_url, process, target, seeded)


def combine(slices: Sequence[Measurement]) -> Measurement:
    """One measurement from the slices of ``--rounds``: totals, and the median latencies."""
    if len(slices) == 1:
        return slices[0]
    errors: dict[str, int] = {}
    for part in slices:
        for key, value in part.error_detail.items():
            errors[key] = errors.get(key, 0) + value
    return Measurement(
        endpoint=slices[0].endpoint,
        requests=sum(x.requests for x in slices),
        seconds=sum(x.seconds for x in slices),
        errors=sum(x.errors for x in slices),
        error_detail=errors,
        p50_ms=statistics.median(x.p50_ms for x in slices),
        p90_ms=statistics.median(x.p90_ms for x in slices),
        p99_ms=statistics.median(x.p99_ms for x in slices),
        mean_ms=statistics.median(x.mean_ms for x in slices),
        max_ms=max(x.max_ms for x in slices),
        server_cpu_s=sum(x.server_cpu_s for x in slices),
    )


def run_database(db: str, variants: Sequence[Variant], args: argparse.Namespace) -> list[Run]:
    print(f"\n== {db} ==")
    with contextlib.ExitStack() as stack:
        if db == "postgresql":
            check_postgres_headroom(args.postgres_url, len(variants))
        work_dir = Path(tempfile.mkdtemp(prefix=f"authbridge-bench-{db}-"))
        stack.callback(shutil.rmtree, work_dir, True)
        servers = [
            start_variant(stack, db, variant, args, work_dir / f"server{number}")
            for number, variant in enumerate(variants)
        ]
        loadgen = choose_loadgen(args, work_dir)

        if args.warmup > 0:
            print(f"  warm-up: {args.warmup:g} s per endpoint and server")
            for prepared in servers:
                loadgen.run(prepared.target, "healthz", args.warmup, args.concurrency, "")
                warm = loadgen.run(
                    prepared.target, "credentials", args.warmup, args.concurrency, ""
                )
                prepared.warm_ok = warm.ok
        load_average = os.getloadavg()[0]
        profile = None
        if args.profile:
            RESULTS.mkdir(parents=True, exist_ok=True)
            profile = RESULTS / f"profile-credentials-{db}.{args.profile}"
        if db == "postgresql":
            for prepared in servers:
                prepared.sessions_before = postgres_sessions(
                    args.postgres_url, prepared.database_url
                )
        slice_seconds = args.duration / args.rounds
        for round_number in range(args.rounds):
            # Alternate endpoints and servers so that other load on the machine hits all alike.
            order = servers if round_number % 2 == 0 else servers[::-1]
            if args.rounds > 1:
                print(f"  round {round_number + 1}/{args.rounds}")
            for mode in ("healthz", "credentials"):
                for prepared in order:
                    pid = prepared.process.pid
                    with profiled(pid, slice_seconds, profile if mode == "credentials" else None):
                        measured = measure(loadgen, pid, prepared.target, mode, args, slice_seconds)
                    prepared.slices.setdefault(mode, []).append(measured)
        wait_for_audit_rows(servers, time.monotonic())
        return [finish(db, prepared, loadgen, load_average, args) for prepared in servers]
    raise AssertionError("unreachable")


def wait_for_audit_rows(servers: Sequence[Prepared], load_ended: float) -> None:
    """Wait until each server has written the audit rows of all its successful reads (or
    :data:`AUDIT_DRAIN_LIMIT_S`): the audit trail writes in batches, so the rows of the reads
    of the last moments are still queued when the load stops. How long that takes is about
    what a crash at that moment would lose."""
    waiting = list(servers)
    for prepared in waiting:
        prepared.ok_reads = 1 + combine(prepared.slices["credentials"]).ok + prepared.warm_ok
    while waiting:
        for prepared in list(waiting):
            prepared.audited_reads = count_audited_reads(prepared.database_url)
            prepared.audit_drain_s = time.monotonic() - load_ended
            done = prepared.audited_reads >= prepared.ok_reads
            if done or prepared.audit_drain_s > AUDIT_DRAIN_LIMIT_S:
                waiting.remove(prepared)
        time.sleep(0.05)


def finish(
    db: str,
    prepared: Prepared,
    loadgen: LoadGenerator,
    load_average: float,
    args: argparse.Namespace,
) -> Run:
    healthz = combine(prepared.slices["healthz"])
    credentials = combine(prepared.slices["credentials"])
    diagnostics: dict[str, Any] = {}
    if db == "postgresql":
        opened = postgres_sessions(args.postgres_url, prepared.database_url)
        diagnostics["postgres_connections_opened_during_credentials"] = (
            opened - prepared.sessions_before
        )
    ok = prepared.ok_reads
    audited = prepared.audited_reads
    diagnostics["audit_rows_written_s_after_the_load"] = round(prepared.audit_drain_s, 2)
    notes = []
    if healthz.errors or credentials.errors:
        notes.append(
            f"errors: healthz {healthz.error_detail}, credentials {credentials.error_detail}"
        )
    if audited < ok:
        notes.append(f"only {audited} audit rows for {ok} successful credentials reads")
    if prepared.process.poll() is not None:
        notes.append(f"the server exited during the run ({prepared.process.returncode})")
    warnings = []
    busy = healthz.server_cpu_s / healthz.seconds if healthz.seconds else 0.0
    diagnostics["server_cpu_share_during_healthz"] = round(busy, 2)
    if busy < HEALTHZ_MIN_BUSY:
        warnings.append(
            f"the server used only {busy:.0%} of a CPU during /healthz: the load generator (or "
            "other load on the machine) set that ceiling, not the server, and the ratio is "
            "too high" + ("; install wrk" if not isinstance(loadgen, Wrk) else "")
        )
    threads = f" ({loadgen.threads} thread(s))" if isinstance(loadgen, Wrk) else ""
    return Run(
        db=db,
        variant=prepared.variant.name,
        server_src=str(prepared.variant.src) if prepared.variant.src else None,
        server_processes=prepared.variant.workers,
        loadgen=loadgen.name + threads,
        auths=args.auths,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        healthz=healthz,
        credentials=credentials,
        seed_seconds=prepared.seeded.seconds,
        audited_reads=audited,
        ok_credentials_responses=ok,
        load_average=load_average,
        diagnostics=diagnostics,
        notes=notes,
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------------
# Output


def print_table(runs: Sequence[Run]) -> None:
    if not runs:
        return
    width = max([11, *(len(f"{run.db}/{run.variant}") for run in runs)])
    header = (
        f"{'db':<{width}} {'endpoint':<41} {'requests':>9} {'req/s':>9} {'p50 ms':>8} "
        f"{'p90 ms':>8} {'p99 ms':>8} {'errors':>6} {'cpu ms/req':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for run in runs:
        name = f"{run.db}/{run.variant}" if run.variant else run.db
        for measurement in (run.healthz, run.credentials):
            print(
                f"{name:<{width}} {measurement.endpoint:<41} {measurement.requests:>9,} "
                f"{measurement.rps:>9,.0f} {measurement.p50_ms:>8.2f} {measurement.p90_ms:>8.2f} "
                f"{measurement.p99_ms:>8.2f} {measurement.errors:>6} "
                f"{measurement.cpu_ms_per_request:>10.3f}"
            )
        verdict = "meets the target" if run.meets_target else "BELOW the target"
        factor = run.credentials.p99_ms / run.healthz.p99_ms if run.healthz.p99_ms else 0.0
        print(
            f"{name:<{width}} credentials / healthz = {run.ratio:.0%}, p99 {factor:.1f}x "
            f"({verdict} of {run.target_ratio:.0%} and {TARGET_P99_FACTOR:g}x); "
            f"audit rows {run.audited_reads:,} for "
            f"{run.ok_credentials_responses:,} successful reads"
        )
        print(f"{'':<{width}} load average before measuring: {run.load_average:.2f}")
        for key, value in run.diagnostics.items():
            print(f"{'':<{width}} {key.replace('_', ' ')}: {value:,}")
        for warning in run.warnings:
            print(f"{'':<{width}} WARNING: {warning}")
        for note in run.notes:
            print(f"{'':<{width}} note: {note}")
        print("-" * len(header))
    if runs:
        first = runs[0]
        print(
            f"{first.auths:,} authentications, {first.concurrency} connections, "
            f"{first.duration:g} s per endpoint (in {first.rounds} slice(s)) after "
            f"{first.warmup:g} s warm-up, "
            f"load from {first.loadgen}, {os.cpu_count()} CPUs;\n"
            "cpu ms/req is the server processes' CPU time per answered request"
        )


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/credentials.py",
        description=__doc__,
        epilog=(
            "PostgreSQL needs a server on 127.0.0.1:5432 that lets user postgres in without a\n"
            "password (trust), or --postgres-url; a database authbridge_bench_<random> is created\n"
            "there and dropped at the end. The load generator and the server share the machine's\n"
            "CPUs: run it on a quiet machine, and compare figures from one machine only."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per endpoint")
    parser.add_argument(
        "--warmup", type=float, default=5, help="unmeasured seconds per endpoint first"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--auths", type=int, default=10_000, help="authentications to seed")
    parser.add_argument("--batch", type=int, default=1_000, help="authentications per seed commit")
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk if installed (auto), else a multi-process httpx client",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes of the Python client"
    )
    parser.add_argument(
        "--keys",
        choices=["file", "env"],
        default="file",
        help="give the server the keyring as the key file in its data folder or AUTHBRIDGE_KEYS",
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
        help=(
            "sample the server with py-spy during the credentials run (collapsed stacks in "
            "bench/results/profile-credentials-<db>.<cpu|gil>); py-spy must be installed"
        ),
    )
    parser.add_argument(
        "--server-src",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help=(
            "run the server from this src folder (PYTHONPATH) instead of the installed code, "
            "e.g. an older commit unpacked with 'git archive <commit> src | tar -x -C /tmp/old'; "
            "repeat it (with names) to measure several servers side by side, each with a "
            "database of its own, alternating between them"
        ),
    )
    parser.add_argument(
        "--serve-workers",
        default="1",
        metavar="N[,M...]",
        help=(
            "run each server with 'serve --workers N' (server processes sharing the port); "
            "several counts (1,2) measure each server at each count side by side, named "
            "<name>w<N>; the CPU figures add up the processes"
        ),
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help=(
            "measure each endpoint in this many slices of duration/rounds, alternating "
            "endpoints and servers (req/s from the totals, latencies the median of the slices)"
        ),
    )
    parser.add_argument(
        "--tag",
        default="",
        help="write bench/results/credentials-<db>-<tag>.json instead (to keep a before/after)",
    )
    parser.add_argument("--internal-seed", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-save", action="store_true", help="do not write bench/results/credentials-<db>.json"
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.auths < 1 or args.duration <= 0 or args.batch < 1:
        parser.error("--concurrency, --auths, --batch and --duration must be positive")
    if args.rounds < 1 or args.duration / args.rounds < 1:
        parser.error("--rounds must be at least 1, and leave at least 1 s per slice")
    args.variants = [Variant(name, src) for name, src in server_sources(parser, args.server_src)]
    try:
        counts = [int(part) for part in args.serve_workers.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        parser.error("--serve-workers takes distinct positive counts, e.g. 1 or 1,2")
    if counts != [1]:
        args.variants = [
            Variant(f"{v.name}w{n}" if len(counts) > 1 else v.name, v.src, n)
            for v in args.variants
            for n in counts
        ]
    if args.profile and (args.rounds > 1 or len(args.variants) > 1):
        parser.error("--profile takes one server and one round")
    if args.tag and not args.tag.replace("-", "").replace("_", "").isalnum():
        parser.error("--tag takes letters, digits, - and _")
    return args


def _terminate(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.internal_seed is not None:
        return _internal_seed(args)
    # Clean up on Ctrl-C and on kill: SIGINT too, which a shell ignores in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    runs: list[Run] = []
    try:
        for db in databases:
            for run in run_database(db, args.variants, args):
                runs.append(run)
                if not args.no_save:
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    parts = [f"credentials-{db}", run.variant, args.tag]
                    path = RESULTS / ("-".join(part for part in parts if part) + ".json")
                    path.write_text(json.dumps(run.as_json(), indent=2) + "\n")
                    print(f"  wrote {path.relative_to(ROOT)}")
    except KeyboardInterrupt:
        print("\ninterrupted; the server and the temporary data were removed")
        print_table(runs)
        return 130
    print_table(runs)
    return 0 if all(not run.notes for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
