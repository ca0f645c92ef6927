"""Real authbridge processes for tests: ``authbridge serve``, ``worker`` and ``sandbox``.

:class:`Processes` starts them on free loopback ports with the environment a test gives (the
same database and ``AUTHBRIDGE_KEYS`` for all), waits until they answer (``/healthz`` for a
server, the metadata document for the sandbox, the "worker started" log line for a worker), can
SIGKILL and restart any of them, and stops every one it started when it is closed, also when the
test failed. Each process writes its output to a log file of its own (a restart appends), whose
tail failure messages quote.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Variables of the test's own environment that would point a process at other data.
SCRUBBED_ENV = (
    "AUTHBRIDGE_HOME",
    "AUTHBRIDGE_DATABASE_URL",
    "AUTHBRIDGE_KEYS",
    "AUTHBRIDGE_PUBLIC_URL",
    "AUTHBRIDGE_CONNECTORS",
    "AUTHBRIDGE_REFRESH_LEASE_SECONDS",
)
AUTHBRIDGE = [sys.executable, "-c", "from authbridge.cli import main; main()"]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait (60 s at most) until ``url`` answers 200; fail with ``log`` if the process ends."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail(f"serve did not answer {url}:\n{log.read_text()}")


def base_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without authbridge settings, plus ``extra``."""
    environ = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
    environ.update(extra)
    return environ


@dataclass
class Process:
    """One authbridge process: how to start it, how to tell it is ready, its log."""

    name: str
    args: list[str]
    environ: dict[str, str]
    log: Path
    ready_url: str | None = None
    ready_line: str | None = None
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0
    kills: int = 0
    log_offset: int = field(default=0, init=False, repr=False)

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} listens on no port"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def spawn(self) -> None:
        """Start the process (without waiting until it is ready)."""
        assert not self.alive, f"{self.name} is already running"
        self.starts += 1
        with self.log.open("ab") as output:
            output.write(f"\n=== start {self.starts} of {self.name} ===\n".encode())
            output.flush()
            self.log_offset = output.tell()
            self.popen = subprocess.Popen(
                [*AUTHBRIDGE, *self.args],
                env=self.environ,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run reaches only pytest
            )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                code = self.popen.returncode if self.popen is not None else None
                raise RuntimeError(f"{self.name} exited with {code}:\n{self.tail()}")
            if self._is_ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} was not ready within {timeout:g} s:\n{self.tail()}")

    def _is_ready(self) -> bool:
        if self.ready_url is not None:
            try:
                return httpx.get(self.ready_url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        if self.ready_line is not None:
            with self.log.open("rb") as log:
                log.seek(self.log_offset)
                return self.ready_line.encode() in log.read()
        return True

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, whatever it was doing."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self.kills += 1

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; return the exit status."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        self.kill()
        self.start(timeout)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


class Processes:
    """Starts authbridge processes for one test and stops them all when closed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def _add(self, process: Process) -> Process:
        self.started.append(process)
        return process

    def sandbox(self, *, token_lifetime: int = 3600, name: str = "sandbox") -> Process:
        port = free_port()
        return self._add(
            Process(
                name=name,
                args=["sandbox", "--port", str(port), "--token-lifetime", str(token_lifetime)],
                environ=base_environ({}),
                log=self.log_dir / f"{name}.log",
                ready_url=f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server",
                port=port,
            )
        )

    def server(
        self,
        environ: Mapping[str, str],
        *,
        connectors: Sequence[Path] = (),
        worker: bool = False,
        name: str = "server",
        extra_args: Sequence[str] = (),
    ) -> Process:
        """``authbridge serve`` (``--no-worker`` unless ``worker``) on a free port."""
        port = free_port()
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--allow-loopback"]
        args += ["--log-level", "warning"]
        for folder in connectors:
            args += ["--connectors", str(folder)]
        if not worker:
            args.append("--no-worker")
        return self._add(
            Process(
                name=name,
                args=[*args, *extra_args],
                environ=base_environ(environ),
                log=self.log_dir / f"{name}.log",
                ready_url=f"http://127.0.0.1:{port}/healthz",
                port=port,
            )
        )

    def worker(
        self,
        environ: Mapping[str, str],
        *,
        connectors: Sequence[Path] = (),
        interval: float = 0.2,
        name: str = "worker",
        extra_args: Sequence[str] = (),
    ) -> Process:
        """``authbridge worker``, ready once it logged that it started."""
        args = ["worker", "--interval", str(interval), "--allow-loopback"]
        for folder in connectors:
            args += ["--connectors", str(folder)]
        return self._add(
            Process(
                name=name,
                args=[*args, *extra_args],
                environ=base_environ(environ),
                log=self.log_dir / f"{name}.log",
                ready_line="worker started",
            )
        )

    def start_all(self, processes: Sequence[Process], timeout: float = STARTUP_TIMEOUT) -> None:
        """Start ``processes`` side by side and wait until every one is ready."""
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready(timeout)

    def close(self) -> None:
        """Stop every process started (the newest first); never raises."""
        for process in reversed(self.started):
            with contextlib.suppress(Exception):
                process.stop()

    def logs(self, lines: int = 20) -> str:
        """The tail of every log, for a failure message."""
        return "\n".join(f"--- {p.name} ---\n{p.tail(lines)}" for p in self.started)


@contextlib.contextmanager
def processes(log_dir: Path) -> Iterator[Processes]:
    """:class:`Processes` that are all stopped when the block ends, however it ends."""
    started = Processes(log_dir)
    try:
        yield started
    finally:
        started.close()
