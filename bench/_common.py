"""What the benchmarks share: child processes, a throw-away PostgreSQL database, clean-up.

Every benchmark runs authbridge (and whatever else it measures against) in processes of their
own, started in their own session so that Ctrl-C reaches the benchmark, which stops them; the
clean-up finishes even when Ctrl-C is pressed again meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_MAINTENANCE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Let clean-up finish even when Ctrl-C is pressed again meanwhile."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def temporary_postgres(maintenance_url: str) -> Iterator[str]:
    """Create a database on the server of ``maintenance_url``; drop it (forcefully) afterwards."""
    url = make_url(maintenance_url)
    name = f"authbridge_bench_{secrets.token_hex(6)}"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with (
            signals_held(),
            psycopg.connect(plain, autocommit=True, connect_timeout=5) as connection,
        ):
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"  dropped database {name}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def authbridge_command() -> list[str]:
    beside = Path(sys.executable).with_name("authbridge")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("authbridge")
    if found is None:
        raise SystemExit("authbridge is not installed in this Python environment (make test)")
    return [found]


@dataclass
class Child:
    """A process a benchmark started, with its combined output in ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@contextlib.contextmanager
def child(
    name: str,
    args: Sequence[str],
    environ: dict[str, str],
    work: Path,
    *,
    command: Sequence[str] | None = None,
) -> Iterator[Child]:
    """Run ``authbridge <args>`` (or ``command``) until the block ends, output in
    ``work/<name>.log``; in its own session, so Ctrl-C reaches us, and we stop it."""
    log = work / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*(authbridge_command() if command is None else command), *args],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Child(name, process, log)
    finally:
        with signals_held():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_until(ready: Callable[[], bool], started: Child, what: str, timeout: float = 60) -> None:
    """Poll ``ready`` until it is true; fail with the child's last output if it exits or
    ``timeout`` passes (``what`` says what did not happen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            raise RuntimeError(
                f"{started.name} exited ({started.process.returncode}):\n{started.tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{started.name}: {what} within {timeout:g} s:\n{started.tail()}")


def answers(url: str) -> Callable[[], bool]:
    """A :func:`wait_until` check: ``url`` answers 200."""
    return lambda: httpx.get(url, timeout=1).status_code == 200


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; else 0)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of ``pid`` and of its child processes (``serve --workers N``)."""
    total = cpu_seconds(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(tree_cpu_seconds(int(child)) for child in children)


def percentile(ordered: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of sorted values (0 when there are none)."""
    if not ordered:
        return 0.0
    rank = max(0, math.ceil(percent / 100 * len(ordered)) - 1)
    return ordered[rank]


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def server_sources(
    parser: argparse.ArgumentParser, specs: Sequence[str]
) -> list[tuple[str, Path | None]]:
    """The ``--server-src [NAME=]DIR`` options as (name, source folder) pairs, checked; one
    unnamed pair for the installed authbridge when there are none."""
    sources: list[tuple[str, Path | None]] = []
    for spec in specs:
        name, _, folder = spec.rpartition("=")
        if not (Path(folder) / "authbridge").is_dir():
            parser.error(f"--server-src {folder} holds no authbridge package")
        if name and not name.replace("-", "").replace("_", "").isalnum():
            parser.error("a --server-src name takes letters, digits, - and _")
        sources.append((name, Path(folder)))
    if len(sources) > 1 and len({name for name, _ in sources}) != len(sources):
        parser.error("name each --server-src (NAME=DIR) when there are several")
    return sources or [("", None)]
