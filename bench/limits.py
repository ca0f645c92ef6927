"""What oversized bodies and slow clients cost a server: its memory and its answer times.

What it does, for each server (the installed code, or each ``--server-src NAME=DIR``, started
side by side, each with a throw-away SQLite data folder of its own and its default limits):

1. starts ``authbridge serve --no-worker`` and reads the master token it prints on first run;
2. **oversized bodies**, one server after the other: ``--clients`` (4) concurrent clients each
   send ``--requests`` (2) JSON bodies of ``--body-mb`` (50) MB to ``POST /v1/master-tokens``
   without a token, then as many with the master token, each with its ``Content-Length``,
   then with the token and chunked (no ``Content-Length``). A client stops sending once it
   has an answer (as curl does), so the time to the answer is how long the server made it
   wait; the server's resident memory is sampled every 20 ms;
3. **slow clients**, on every server at once for ``--slow-seconds`` (40): ``--slow-connections``
   (200) connections send half a request's headers and wait, ``--trickles`` (5) send a
   request with a 1,000-byte body a byte a second; meanwhile a healthy client asks for
   ``/healthz`` every 100 ms. It counts the connections still open every 5 s, when each
   trickled body was answered or cut off, the healthy client's answer times, and the
   server's memory;
4. prints a table per server and writes ``bench/results/limits.json`` (one server) or
   ``limits-<name>.json`` per server (``--tag T`` adds ``-T``, ``--no-save`` writes nothing).

It stops by itself within about a minute (``--slow-seconds`` plus the bodies' part and the
start); the servers and their data folders are removed at the end, also after an error or
Ctrl-C.

    .venv/bin/python bench/limits.py
    git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python bench/limits.py --server-src before=/tmp/before/src --server-src now=src
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    ROOT,
    answers,
    child,
    free_port,
    git_commit,
    percentile,
    server_sources,
    wait_until,
)

TOKEN = re.compile(rb"abk_[A-Za-z0-9_-]{43}")
SCRUBBED_ENV = (
    "AUTHBRIDGE_HOME",
    "AUTHBRIDGE_DATABASE_URL",
    "AUTHBRIDGE_KEYS",
    "AUTHBRIDGE_PUBLIC_URL",
    "AUTHBRIDGE_CONNECTORS",
    "AUTHBRIDGE_PROXY_MAX_BODY_BYTES",
    "AUTHBRIDGE_HEADER_TIMEOUT_SECONDS",
    "AUTHBRIDGE_BODY_TIMEOUT_SECONDS",
    "AUTHBRIDGE_MAX_CONNECTIONS",
)
SEND_CHUNK = 256 * 1024
#: How long a client waits for an answer to an oversized body before it gives up.
ANSWER_LIMIT_S = 30.0
COUNT_EVERY_S = 5.0
HEALTHY_EVERY_S = 0.1
TRICKLE_BYTES = 1000
#: The oversized bodies' cases: name, with the master token, chunked (no Content-Length).
CASES = (
    ("without_token", False, False),
    ("with_token", True, False),
    ("with_token_chunked", True, True),
)
Answer = tuple[float, str]


# --------------------------------------------------------------------------------------------
# The server and its memory


@dataclass
class Server:
    name: str
    src: Path | None
    url: str = ""
    pid: int = 0
    token: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or "this tree"


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` in MB (Linux ``/proc``; else 0)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemoryWatch:
    """Samples a process's resident memory every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_mb(pid)
        self.peak = self.before
        self.after = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_mb(self.pid)

    def as_json(self) -> dict[str, float]:
        return {
            "rss_before_mb": round(self.before, 1),
            "rss_peak_mb": round(self.peak, 1),
            "rss_after_mb": round(self.after, 1),
        }


@contextlib.contextmanager
def started(server: Server, work: Path) -> Iterator[Server]:
    folder = work / (server.name or "server")
    folder.mkdir()
    environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    environ["AUTHBRIDGE_HOME"] = str(folder / "home")
    if server.src is not None:
        environ["PYTHONPATH"] = str(server.src.resolve())
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"]
    with child("serve", [*args, "--log-level", "warning"], environ, folder) as process:
        server.url = f"http://127.0.0.1:{port}"
        wait_until(answers(server.url + "/healthz"), process, "serve did not answer /healthz")
        found = TOKEN.search(process.log.read_bytes())
        if found is None:
            raise RuntimeError(f"serve printed no master token:\n{process.tail()}")
        server.token = found.group().decode()
        server.pid = process.process.pid
        print(f"  {server.label}: serve pid {server.pid} on {server.url}")
        yield server


# --------------------------------------------------------------------------------------------
# HTTP by hand: bodies that stop when answered, headers never finished


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _status(reader: asyncio.StreamReader) -> int:
    """The status of the answer on ``reader`` (its head read, the rest left)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed without an answer")
    return int(line.split()[1])


async def oversized(
    server: Server, megabytes: int, token: bool, chunked: bool = False
) -> tuple[float, str]:
    """Send one oversized JSON body (with its ``Content-Length``, or ``chunked`` without);
    seconds until the answer and its status (or what broke)."""
    headers = {"Content-Type": "application/json"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(megabytes * 10**6)
    if token:
        headers["Authorization"] = f"Bearer {server.token}"

    def framed(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data

    reader, writer = await asyncio.open_connection(*_address(server.url))
    begun = time.perf_counter()

    async def send() -> None:
        writer.write(_head("POST", "/v1/master-tokens", headers))
        prefix, suffix = b'{"name": "', b'"}'
        left = megabytes * 10**6 - len(prefix) - len(suffix)
        writer.write(framed(prefix))
        while left > 0:
            part = min(SEND_CHUNK, left)
            writer.write(framed(b"x" * part))
            left -= part
            await writer.drain()
            await asyncio.sleep(0)  # let the answer be read: drain() need not yield
        writer.write(framed(suffix) + (b"0\r\n\r\n" if chunked else b""))
        await writer.drain()

    sending = asyncio.create_task(send())
    try:
        status = await asyncio.wait_for(_status(reader), ANSWER_LIMIT_S)
        outcome = str(status)
    except (TimeoutError, ConnectionError, OSError, ValueError, IndexError) as exc:
        outcome = type(exc).__name__
    seconds = time.perf_counter() - begun
    sending.cancel()
    with contextlib.suppress(BaseException):
        await sending
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return seconds, outcome


async def bodies_part(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with MemoryWatch(server.pid) as memory:
        for label, token, chunked in CASES:
            begun = time.perf_counter()

            async def client(token: bool = token, chunked: bool = chunked) -> list[Answer]:
                return [
                    await oversized(server, args.body_mb, token, chunked)
                    for _ in range(args.requests)
                ]

            done = await asyncio.gather(*(client() for _ in range(args.clients)))
            answers_ = [item for part in done for item in part]
            times = sorted(seconds for seconds, _ in answers_)
            statuses: dict[str, int] = {}
            for _, outcome in answers_:
                statuses[outcome] = statuses.get(outcome, 0) + 1
            results[label] = {
                "requests": len(answers_),
                "statuses": statuses,
                "answer_p50_s": round(percentile(times, 50), 3),
                "answer_max_s": round(times[-1], 3),
                "wall_s": round(time.perf_counter() - begun, 2),
            }
    results["memory"] = memory.as_json()
    return results


async def half_headers(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*_address(server.url))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Waiting: ")
    await writer.drain()
    return reader, writer


async def closed_at(reader: asyncio.StreamReader, begun: float, until: float) -> float | None:
    """When the server closed the connection (seconds after ``begun``), or ``None``."""
    with contextlib.suppress(TimeoutError, OSError):
        while await asyncio.wait_for(reader.read(65536), until - time.perf_counter()):
            pass
        return time.perf_counter() - begun
    return None


async def trickle(server: Server, begun: float, until: float) -> dict[str, Any]:
    """A 1,000-byte body sent a byte a second: when it was answered or cut off."""
    reader, writer = await asyncio.open_connection(*_address(server.url))
    headers = {
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "application/json",
        "Content-Length": str(TRICKLE_BYTES),
    }
    writer.write(_head("POST", "/v1/master-tokens", headers) + b'{"name": "')
    sent = 10
    answer = asyncio.create_task(_status(reader))
    try:
        while time.perf_counter() < until and not answer.done() and sent < TRICKLE_BYTES:
            with contextlib.suppress(OSError):
                writer.write(b"t")
                await writer.drain()
                sent += 1
            await asyncio.wait([answer], timeout=1.0)
        if answer.done() and answer.exception() is None:
            return {"outcome": str(answer.result()), "at_s": round(time.perf_counter() - begun, 1)}
        if answer.done():
            return {"outcome": "closed", "at_s": round(time.perf_counter() - begun, 1)}
        return {"outcome": "kept", "bytes_sent": sent}
    finally:
        answer.cancel()
        with contextlib.suppress(BaseException):
            await answer
        writer.close()


async def healthy(server: Server, until: float) -> dict[str, Any]:
    """``/healthz`` every 100 ms on one kept-alive connection: answer times and failures."""
    times: list[float] = []
    failures = 0
    reader = writer = None
    while time.perf_counter() < until:
        begun = time.perf_counter()
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(*_address(server.url))
            writer.write(_head("GET", "/healthz", {}))
            await writer.drain()
            status = await asyncio.wait_for(_status(reader), 5)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if status != 200:
                failures += 1
            times.append(time.perf_counter() - begun)
        except (TimeoutError, OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            failures += 1
            if writer is not None:
                writer.close()
            reader = writer = None
        await asyncio.sleep(HEALTHY_EVERY_S)
    if writer is not None:
        writer.close()
    times.sort()
    return {
        "requests": len(times) + failures,
        "failures": failures,
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p99_ms": round(percentile(times, 99) * 1000, 2),
        "max_ms": round(times[-1] * 1000, 2) if times else None,
    }


async def slow_part(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    begun = time.perf_counter()
    until = begun + args.slow_seconds
    with MemoryWatch(server.pid) as memory:
        opened = await asyncio.gather(
            *(half_headers(server) for _ in range(args.slow_connections)), return_exceptions=True
        )
        held = [item for item in opened if not isinstance(item, BaseException)]
        closing = [asyncio.create_task(closed_at(reader, begun, until)) for reader, _ in held]
        trickles = [
            asyncio.create_task(trickle(server, begun, until)) for _ in range(args.trickles)
        ]
        health = asyncio.create_task(healthy(server, until))
        open_counts: list[dict[str, Any]] = []
        while time.perf_counter() < until:
            await asyncio.sleep(min(COUNT_EVERY_S, max(0.0, until - time.perf_counter())))
            still = sum(1 for task in closing if not task.done())
            open_counts.append({"at_s": round(time.perf_counter() - begun), "open": still})
        closed = [task.result() for task in closing if task.done()]
        trickled = [await task for task in trickles]
        healthz = await health
        for _, writer in held:
            writer.close()
    times = sorted(value for value in closed if value is not None)
    return {
        "half_header_connections": len(held),
        "refused_at_connect": len(opened) - len(held),
        "still_open": open_counts,
        "closed_by_server": len(times),
        "closed_p50_s": round(percentile(times, 50), 1) if times else None,
        "closed_max_s": round(times[-1], 1) if times else None,
        "trickled_bodies": trickled,
        "healthz_meanwhile": healthz,
        "memory": memory.as_json(),
    }


# --------------------------------------------------------------------------------------------
# The report


def print_server(server: Server) -> None:
    results = server.results
    bodies, slow = results.get("bodies"), results.get("slow")
    print(f"\n{server.label}")
    if bodies:
        for label, _, _ in CASES:
            part, size = bodies[label], results["settings"]["body_mb"]
            print(
                f"  {part['requests']} x {size} MB {label.replace('_', ' ')}:"
                f" answered {part['statuses']} after p50 {part['answer_p50_s']} s, max"
                f" {part['answer_max_s']} s ({part['wall_s']} s in all)"
            )
        memory = bodies["memory"]
        print(
            f"  server memory: {memory['rss_before_mb']} MB before, peak {memory['rss_peak_mb']}"
            f" MB, {memory['rss_after_mb']} MB after"
        )
    if slow:
        counts = ", ".join(f"{item['open']} at {item['at_s']} s" for item in slow["still_open"])
        print(f"  {slow['half_header_connections']} half-sent headers, still open: {counts}")
        if slow["closed_by_server"]:
            print(
                f"    closed by the server: {slow['closed_by_server']},"
                f" p50 {slow['closed_p50_s']} s, max {slow['closed_max_s']} s"
            )
        trickled = ", ".join(
            item["outcome"] + (f" at {item['at_s']} s" if "at_s" in item else "")
            for item in slow["trickled_bodies"]
        )
        print(f"  bodies trickled a byte a second: {trickled}")
        health = slow["healthz_meanwhile"]
        print(
            f"  /healthz meanwhile: {health['requests']} requests, {health['failures']} failed,"
            f" p50 {health['p50_ms']} ms, p99 {health['p99_ms']} ms, max {health['max_ms']} ms"
        )
        memory = slow["memory"]
        print(
            f"  server memory: {memory['rss_before_mb']} MB before, peak {memory['rss_peak_mb']}"
            f" MB, {memory['rss_after_mb']} MB after"
        )


def as_json(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "benchmark": "limits",
        "server": server.name or None,
        "server_src": str(server.src) if server.src else None,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": round(os.getloadavg()[0], 2),
        },
        **server.results,
    }


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--body-mb", type=int, default=50, help="size of each oversized body")
    parser.add_argument("--clients", type=int, default=4, help="concurrent oversized senders")
    parser.add_argument("--requests", type=int, default=2, help="oversized bodies per client")
    parser.add_argument(
        "--slow-seconds", type=float, default=40, help="how long the slow clients hold on"
    )
    parser.add_argument("--slow-connections", type=int, default=200, help="half-sent headers")
    parser.add_argument("--trickles", type=int, default=5, help="bodies sent a byte a second")
    parser.add_argument(
        "--server-src",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="run a server from this src folder (PYTHONPATH); repeat, with names, to compare",
    )
    parser.add_argument("--tag", default="", help="write limits[-<name>]-<tag>.json")
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    args = parser.parse_args(argv)
    if min(args.body_mb, args.clients, args.requests, args.slow_connections) < 1:
        parser.error("--body-mb, --clients, --requests and --slow-connections must be positive")
    if args.slow_seconds <= 0 or args.trickles < 0:
        parser.error("--slow-seconds must be positive and --trickles at least 0")
    args.servers = [Server(name, src) for name, src in server_sources(parser, args.server_src)]
    if args.tag and not args.tag.replace("-", "").replace("_", "").isalnum():
        parser.error("--tag takes letters, digits, - and _")
    return args


def _terminate(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


async def measure(servers: Sequence[Server], args: argparse.Namespace) -> None:
    for server in servers:
        print(f"  oversized bodies: {server.label}")
        server.results["bodies"] = await bodies_part(server, args)
    print(f"  slow clients on every server at once, {args.slow_seconds:g} s")
    parts = await asyncio.gather(*(slow_part(server, args) for server in servers))
    for server, part in zip(servers, parts, strict=True):
        server.results["slow"] = part


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    servers: list[Server] = args.servers
    settings = {
        "body_mb": args.body_mb,
        "clients": args.clients,
        "requests": args.requests,
        "slow_seconds": args.slow_seconds,
        "slow_connections": args.slow_connections,
        "trickles": args.trickles,
    }
    for server in servers:
        server.results["settings"] = settings
    try:
        with (
            tempfile.TemporaryDirectory(prefix="authbridge-limits-") as work,
            contextlib.ExitStack() as stack,
        ):
            for server in servers:
                stack.enter_context(started(server, Path(work)))
            asyncio.run(measure(servers, args))
    except KeyboardInterrupt:
        print("\ninterrupted; the servers and their data were removed")
        return 130
    for server in servers:
        print_server(server)
        if not args.no_save:
            RESULTS.mkdir(parents=True, exist_ok=True)
            parts = ["limits", server.name, args.tag]
            path = RESULTS / ("-".join(part for part in parts if part) + ".json")
            path.write_text(json.dumps(as_json(server, args), indent=2) + "\n")
            print(f"  wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
