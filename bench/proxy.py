"""Benchmark ``/v1/proxy/{auth_id}/{path}`` against calling the upstream directly.

What it does:

1. starts the upstreams in processes of their own, on free loopback ports: ``raw``, a minimal
   asyncio HTTP/1.1 server answering every request with the same small JSON body (the
   proxy's own cost, nothing else), and ``asgi``, a small Starlette app under uvicorn
   answering JSON (as a real provider's API would, with a framework's cost per request);
   ``--upstream`` picks one or both (the default);
2. makes a throw-away data folder (SQLite; ``--db postgresql`` makes a throw-away database
   through 127.0.0.1:5432 instead), seeds a master token with the repositories, writes a
   connector folder with an API-key connector per upstream whose request rules point at it
   (``X-Api-Key`` header and a query parameter), and starts ONE ``authbridge serve
   --allow-loopback --no-worker`` process on it;
3. imports an API-key authentication per upstream through the REST API and checks that a
   proxied request gets the upstream's own answer;
4. for each upstream, drives it directly and through the proxy from a separate load-generator
   process (``wrk`` if installed, else a raw
   asyncio HTTP/1.1 client: one keep-alive connection per concurrent client, latency from
   request written to response read): ``--warmup`` seconds each, then ``--rounds`` alternating
   slices of direct and proxied requests (``--duration`` seconds in all for each) with
   ``--concurrency`` (32) clients, then the same with ONE client (the latency a request pays
   without queueing), then the authbridge process's ``/healthz`` (what one process can answer
   at all, the ceiling of the proxied rate);
5. prints, per upstream, p50/p99 latency of both, the latency the proxy adds (p50, p99),
   requests per second both ways and their ratio, the CPU time per request of the authbridge
   process, and writes them all to ``bench/results/proxy.json``. Targets: p50 added latency
   under 1 ms, proxied throughput at least 50% of direct.

The processes and the temporary data are removed at the end, also after a failure or Ctrl-C.

    .venv/bin/python bench/proxy.py
    .venv/bin/python bench/proxy.py --duration 20 --concurrency 64 --db postgresql
    .venv/bin/python bench/proxy.py --upstream asgi --profile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from _common import (
    DEFAULT_MAINTENANCE_URL,
    RESULTS,
    ROOT,
    answers,
    child,
    cpu_seconds,
    free_port,
    git_commit,
    percentile,
    temporary_postgres,
    wait_until,
)
from _repositories import EnvironmentRepository, MasterTokenRepository

from authbridge.runtime import Settings, open_database, open_keyring

RESULT_FILE = RESULTS / "proxy.json"
TARGET_ADDED_P50_MS = 1.0
TARGET_RATIO = 0.5
API_KEY = "bench-key-0123456789abcdef"
UPSTREAM_PATH = "/v1/items/42?fields=name"
UPSTREAM_BODY = b'{"id": 42, "name": "bench item", "tags": ["a", "b", "c"]}'
UPSTREAMS = ("raw", "asgi")
SCRUBBED_ENV = (
    "AUTHBRIDGE_HOME",
    "AUTHBRIDGE_DATABASE_URL",
    "AUTHBRIDGE_KEYS",
    "AUTHBRIDGE_PUBLIC_URL",
    "AUTHBRIDGE_CONNECTORS",
)
CONNECTOR_YAML = """\
# Written by bench/proxy.py: an API-key connector whose API is the bench upstream.
type: api_key
definition:
  auth:
    api_key: {{type: password, name: API key}}
  request:
    base_url: {upstream}
    headers: {{X-Api-Key: "{{{{api_key}}}}"}}
    params: {{source: authbridge}}
"""
MANIFEST_YAML = "key: bench-{kind}\nlabel: Bench upstream ({kind})\nversion: '1'\n"
WRK_SCRIPT = r"""
-- Written by bench/proxy.py: sends BENCH_TOKEN when set, prints the summary as JSON.
local token = os.getenv("BENCH_TOKEN")
function init(args)
  if token and #token > 0 then wrk.headers["Authorization"] = "Bearer " .. token end
end
function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# --------------------------------------------------------------------------------------------
# The upstream: a raw asyncio HTTP/1.1 server (run with --internal-upstream PORT)


def _http_answer(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


async def _serve_upstream(port: int) -> None:
    """Answer every request with ``UPSTREAM_BODY``; ``GET /__connections`` answers how many
    connections were opened so far (a proxy that reuses its connections opens few)."""
    answer = _http_answer(UPSTREAM_BODY)
    opened = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in request.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                if request.startswith(b"GET /__connections "):
                    writer.write(_http_answer(b"%d" % opened))
                else:
                    writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def _serve_asgi_upstream(port: int) -> None:
    """A provider-like API: a Starlette app under uvicorn (uvloop and httptools when installed,
    as in production) answering every request with ``UPSTREAM_BODY`` as JSON."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    item = json.loads(UPSTREAM_BODY)

    async def answer(_request: Request) -> JSONResponse:
        return JSONResponse(item)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", answer, methods=methods)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------------------------
# The load generator (run with --internal-load): raw HTTP/1.1 over keep-alive connections


async def _load(url: str, token: str, connections: int, duration: float) -> dict[str, Any]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def client(deadline: float) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12].decode()
                length = None
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length is None:
                    raise RuntimeError("the load generator needs a Content-Length")
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(started + duration) for _ in range(connections)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "errors": sum(count for status, count in statuses.items() if status != "200"),
        "statuses": statuses,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


@dataclass
class Measurement:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float = 0.0
    upstream_connections: int | None = None  # opened by the proxy during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rps"] = round(self.rps, 1)
        data["server_cpu_ms_per_request"] = (
            round(self.server_cpu_s * 1000 / self.requests, 3) if self.requests else None
        )
        return data


def combine(slices: Sequence[Measurement]) -> Measurement:
    """Totals of the rounds, and the median of their percentiles."""
    ordered = sorted(slices, key=lambda x: x.p50_ms)
    middle = ordered[len(ordered) // 2]
    return Measurement(
        requests=sum(x.requests for x in slices),
        seconds=sum(x.seconds for x in slices),
        errors=sum(x.errors for x in slices),
        p50_ms=middle.p50_ms,
        p99_ms=sorted(x.p99_ms for x in slices)[len(slices) // 2],
        server_cpu_s=sum(x.server_cpu_s for x in slices),
        upstream_connections=None
        if any(x.upstream_connections is None for x in slices)
        else sum(x.upstream_connections or 0 for x in slices),
    )


def run_load(url: str, token: str, connections: int, duration: float) -> Measurement:
    """One measured run from a separate process: wrk when installed, else the asyncio client."""
    if shutil.which("wrk"):
        return _run_wrk(url, token, connections, duration)
    command = [sys.executable, str(Path(__file__).resolve()), "--internal-load", url]
    command += ["--concurrency", str(connections), "--duration", str(duration)]
    environ = os.environ | {"BENCH_TOKEN": token}
    done = subprocess.run(
        command, env=environ, capture_output=True, text=True, check=False, timeout=duration + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr}")
    data = json.loads(done.stdout)
    return Measurement(
        data["requests"], data["seconds"], data["errors"], data["p50_ms"], data["p99_ms"]
    )


def _run_wrk(url: str, token: str, connections: int, duration: float) -> Measurement:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        command = ["wrk", "--threads", str(min(2, connections)), "--connections"]
        command += [str(connections), "--duration", f"{max(1, round(duration))}s"]
        command += ["--timeout", "10s", "--script", script.name, url]
        environ = os.environ | {"BENCH_TOKEN": token}
        done = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
    finally:
        os.unlink(script.name)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    return Measurement(
        data["requests"],
        data["duration_us"] / 1e6,
        data["errors"],
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
    )


# --------------------------------------------------------------------------------------------
# Setting up


def seed_token(environ: dict[str, str]) -> str:
    """Migrate the bench database and create a master token, as ``authbridge serve`` would."""
    settings = Settings.from_env(environ)
    keyring, _created = open_keyring(settings)
    database = open_database(settings)
    try:
        with database.session() as session:
            environment = EnvironmentRepository(session, keyring).get_or_create()
            return MasterTokenRepository(session).create(environment.id, "bench").token
    finally:
        database.dispose()


def import_auth(base_url: str, token: str, kind: str, direct_url: str) -> str:
    """Import the API-key authentication of upstream ``kind``; check that a proxied request
    gets the upstream's own answer."""
    body = {
        "connector": f"bench-{kind}",
        "external_user_id": "bench-user",
        "fields": {"api_key": API_KEY},
        "validate": False,
    }
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(f"{base_url}/v1/authentications", json=body, headers=headers, timeout=10)
    if answer.status_code != 201:
        raise RuntimeError(f"importing the authentication answered {answer.status_code}")
    auth_id: str = answer.json()["id"]
    check = httpx.get(f"{base_url}/v1/proxy/{auth_id}{UPSTREAM_PATH}", headers=headers, timeout=10)
    expected = httpx.get(direct_url, timeout=10).content
    if check.status_code != 200 or check.content != expected:
        raise RuntimeError(f"a proxied request answered {check.status_code}: {check.text[:200]}")
    return auth_id


PROFILE_FILE = "profile-proxy-{kind}.txt"


@contextlib.contextmanager
def profiled(pid: int, duration: float, enabled: bool, kind: str) -> Iterator[None]:
    """Sample the authbridge process with py-spy while the block runs (``--profile``): only
    the thread holding the GIL, so the stacks show where its CPU time goes."""
    if not enabled:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy if spy.exists() else "py-spy"), "record", "--pid", str(pid)]
    command += ["--duration", str(max(1, round(duration))), "--rate", "200", "--format", "raw"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / PROFILE_FILE.format(kind=kind)
    process = subprocess.Popen(
        [*command, "--output", str(output), "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.wait(timeout=duration + 30)
        print(f"  collapsed stacks in {output.relative_to(ROOT)}")


@dataclass
class Run:
    direct: Measurement
    proxied: Measurement
    direct_single: Measurement
    proxied_single: Measurement
    healthz: Measurement

    @property
    def ratio(self) -> float:
        return self.proxied.rps / self.direct.rps if self.direct.rps else 0.0


def upstream_connections(kind: str, direct_url: str) -> int | None:
    """How many connections the raw upstream has accepted so far (the ASGI one does not say)."""
    if kind != "raw":
        return None
    origin = direct_url.split("/v1/", 1)[0]
    return int(httpx.get(origin + "/__connections", timeout=10).text) - 1  # minus this one


def measure(
    args: argparse.Namespace,
    kind: str,
    direct_url: str,
    proxy_url: str,
    token: str,
    server_pid: int,
) -> Run:
    def one(url: str, bearer: str, connections: int, seconds: float, pid: int) -> Measurement:
        before = cpu_seconds(pid) if pid else 0.0
        result = run_load(url, bearer, connections, seconds)
        result.server_cpu_s = cpu_seconds(pid) - before if pid else 0.0
        return result

    print(f"  warm-up: {args.warmup:g} s each")
    one(direct_url, "", args.concurrency, args.warmup, 0)
    one(proxy_url, token, args.concurrency, args.warmup, 0)
    runs: dict[str, list[Measurement]] = {"direct": [], "proxied": [], "d1": [], "p1": []}
    share = args.duration / args.rounds
    for number in range(args.rounds):
        print(f"  round {number + 1}/{args.rounds}: {share:g} s direct, {share:g} s proxied")
        runs["direct"].append(one(direct_url, "", args.concurrency, share, 0))
        opened = upstream_connections(kind, direct_url)
        with profiled(server_pid, share, args.profile and number == 0, kind):
            runs["proxied"].append(one(proxy_url, token, args.concurrency, share, server_pid))
        now_open = upstream_connections(kind, direct_url)
        if now_open is not None and opened is not None:
            runs["proxied"][-1].upstream_connections = now_open - opened
    single = max(2.0, share / 2)
    print(f"  one client: {single:g} s direct, {single:g} s proxied")
    runs["d1"].append(one(direct_url, "", 1, single, 0))
    runs["p1"].append(one(proxy_url, token, 1, single, server_pid))
    healthz_url = proxy_url.split("/v1/", 1)[0] + "/healthz"
    print(f"  the same authbridge process answering /healthz: {share:g} s (its ceiling)")
    healthz = one(healthz_url, "", args.concurrency, share, server_pid)
    return Run(
        combine(runs["direct"]),
        combine(runs["proxied"]),
        combine(runs["d1"]),
        combine(runs["p1"]),
        healthz,
    )


def run(args: argparse.Namespace) -> dict[str, Run]:
    """Measure each chosen upstream, direct and through one authbridge process."""
    kinds = UPSTREAMS if args.upstream == "both" else (args.upstream,)
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="authbridge-proxy-bench-"))
        stack.callback(shutil.rmtree, work, True)
        environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        environ["AUTHBRIDGE_HOME"] = str(work / "home")
        if args.db == "postgresql":
            environ["AUTHBRIDGE_DATABASE_URL"] = stack.enter_context(
                temporary_postgres(args.postgres_url)
            )

        upstream_urls: dict[str, str] = {}
        for kind in kinds:
            upstream_port = free_port()
            upstream = stack.enter_context(
                child(
                    f"upstream-{kind}",
                    ["--internal-upstream", str(upstream_port), "--upstream", kind],
                    environ,
                    work,
                    command=[sys.executable, str(Path(__file__).resolve())],
                )
            )
            upstream_urls[kind] = f"http://127.0.0.1:{upstream_port}"
            wait_until(
                answers(upstream_urls[kind] + "/"), upstream, f"the {kind} upstream did not answer"
            )
            folder = work / "connectors" / "bench" / kind
            folder.mkdir(parents=True)
            (folder / "auth.yaml").write_text(CONNECTOR_YAML.format(upstream=upstream_urls[kind]))
            (folder / "manifest.yaml").write_text(MANIFEST_YAML.format(kind=kind))
        token = seed_token(environ)

        port = free_port()
        command = ["serve", "--host", "127.0.0.1", "--port", str(port), "--allow-loopback"]
        command += [
            "--no-worker",
            "--log-level",
            "warning",
            "--connectors",
            str(work / "connectors"),
        ]
        server = stack.enter_context(child("server", command, environ, work))
        base_url = f"http://127.0.0.1:{port}"
        wait_until(answers(base_url + "/healthz"), server, "authbridge serve did not answer")
        print(f"  authbridge serve pid {server.process.pid} on {port}")
        results: dict[str, Run] = {}
        for kind in kinds:
            direct_url = upstream_urls[kind] + UPSTREAM_PATH
            auth_id = import_auth(base_url, token, kind, direct_url)
            print(f"  {kind} upstream on {upstream_urls[kind]}")
            results[kind] = measure(
                args,
                kind,
                direct_url,
                f"{base_url}/v1/proxy/{auth_id}{UPSTREAM_PATH}",
                token,
                server.process.pid,
            )
        return results
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Main


def report_upstream(args: argparse.Namespace, kind: str, result: Run) -> dict[str, Any]:
    """Print one upstream's figures; return them as JSON."""
    added_p50 = result.proxied.p50_ms - result.direct.p50_ms
    added_p99 = result.proxied.p99_ms - result.direct.p99_ms
    single_p50 = result.proxied_single.p50_ms - result.direct_single.p50_ms
    single_p99 = result.proxied_single.p99_ms - result.direct_single.p99_ms
    rows = [
        ("direct", result.direct, result.direct_single),
        ("proxied", result.proxied, result.proxied_single),
    ]
    print(f"\n  {kind} upstream")
    print(
        f"  {args.concurrency} clients        req/s    p50 ms   p99 ms   errors"
        "   1 client p50/p99 ms"
    )
    for name, many, single in rows:
        print(
            f"  {name:<18}{many.rps:>9.0f}{many.p50_ms:>10.2f}{many.p99_ms:>9.2f}"
            f"{many.errors:>9}      {single.p50_ms:.2f} / {single.p99_ms:.2f}"
        )
    print(
        f"  added latency ({args.concurrency} clients): p50 {added_p50:.2f} ms, "
        f"p99 {added_p99:.2f} ms"
    )
    print(f"  added latency (1 client):   p50 {single_p50:.2f} ms, p99 {single_p99:.2f} ms")
    print(
        f"  authbridge /healthz: {result.healthz.rps:.0f} req/s (the ceiling of one process); "
        f"proxied/healthz {result.proxied.rps / (result.healthz.rps or 1):.0%}"
    )
    print(
        f"  throughput proxied/direct: {result.ratio:.1%} (target {TARGET_RATIO:.0%}); "
        f"authbridge CPU {result.proxied.as_json()['server_cpu_ms_per_request']} ms per request"
    )
    print(
        f"  upstream connections opened by the proxy: {result.proxied.upstream_connections} "
        f"for {result.proxied.requests} requests"
    )
    return {
        "direct": result.direct.as_json(),
        "proxied": result.proxied.as_json(),
        "direct_one_client": result.direct_single.as_json(),
        "proxied_one_client": result.proxied_single.as_json(),
        "authbridge_healthz": result.healthz.as_json(),
        "added_latency_ms": {"p50": round(added_p50, 3), "p99": round(added_p99, 3)},
        "added_latency_one_client_ms": {"p50": round(single_p50, 3), "p99": round(single_p99, 3)},
        "throughput_ratio": round(result.ratio, 3),
        "targets": {"added_p50_ms": TARGET_ADDED_P50_MS, "throughput_ratio": TARGET_RATIO},
        "meets_targets": {
            "added_p50": added_p50 < TARGET_ADDED_P50_MS,
            "throughput_ratio": result.ratio >= TARGET_RATIO,
        },
    }


def report(args: argparse.Namespace, results: dict[str, Run], load: float) -> dict[str, Any]:
    return {
        "benchmark": "proxy",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": round(load, 2),
        },
        "settings": {
            "db": args.db,
            "loadgen": "wrk" if shutil.which("wrk") else "python-asyncio-raw",
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "server_processes": 1,
        },
        "upstreams": {
            kind: report_upstream(args, kind, result) for kind, result in results.items()
        },
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--upstream",
        choices=[*UPSTREAMS, "both"],
        default="both",
        help="raw: a minimal asyncio server (the proxy's own cost); asgi: a Starlette app "
        "under uvicorn (like a provider's API)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per side")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices per side")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_MAINTENANCE_URL,
        help="a database on the PostgreSQL server to create the bench database from",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample authbridge with py-spy during the first proxied round (pip install py-spy);"
        f" collapsed stacks in results/{PROFILE_FILE.format(kind='<upstream>')}",
    )
    parser.add_argument("--no-save", action="store_true", help=f"do not write {RESULT_FILE.name}")
    parser.add_argument("--internal-upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--internal-load", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.concurrency, args.rounds) < 1 or min(args.duration, args.warmup) <= 0:
        parser.error("--concurrency, --rounds, --duration and --warmup must be positive")
    return args


def _terminate(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.internal_upstream is not None:
        if args.upstream == "asgi":
            _serve_asgi_upstream(args.internal_upstream)
        else:
            asyncio.run(_serve_upstream(args.internal_upstream))
        return 0
    if args.internal_load is not None:
        token = os.environ.get("BENCH_TOKEN", "")
        data = asyncio.run(_load(args.internal_load, token, args.concurrency, args.duration))
        print(json.dumps(data))
        return 0
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    load = os.getloadavg()[0]
    print(
        f"proxy benchmark ({args.db}): {args.concurrency} clients, {args.duration:g} s per side "
        f"in {args.rounds} rounds (load average {load:.2f})"
    )
    try:
        results = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the processes and the temporary data were removed")
        return 130
    summary = report(args, results, load)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        RESULT_FILE.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"  wrote {RESULT_FILE.relative_to(ROOT)}")
    failed = sum(result.direct.errors + result.proxied.errors for result in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
