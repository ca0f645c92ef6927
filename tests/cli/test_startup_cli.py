"""The command line starts fast, and ``authbridge serve --workers N`` runs N server processes.

``--help`` and ``--version`` must not import the app, the services or the storage: each command
module imports them inside its functions. That is checked by what a fresh interpreter holds
after answering every command's ``--help``, not by timing (``bench/startup.py`` times it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from uvicorn.importer import import_from_string

from authbridge import __version__
from authbridge.api.factory import DisposesDatabase, app_from_environment
from authbridge.cli import common
from authbridge.cli.serve import FACTORY
from authbridge.connector_configs import cli as connect
from authbridge.errors import InvalidInput
from authbridge.runtime import (
    PUBLIC_URL_ENV_VAR,
    SERVE_OPTIONS_ENV_VAR,
    ServeOptions,
    Settings,
    migrate_database,
)
from authbridge.storage.models import DeliveryStatus
from authbridge.tenancy.repository import DEFAULT_ENVIRONMENT
from authbridge.webhooks import cli as webhooks
from authbridge.webhooks.events import EVENT_TYPES
from tests.support.loopback import serve
from tests.support.processes import AUTHBRIDGE, free_port, wait_until_serving

HEAVY_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "httpx",
    "authbridge.api",
    "authbridge.runtime",
)
HEAVY_PACKAGES = (
    "authbridge.services",
    "authbridge.storage",
    "authbridge.connectors",
    "authbridge.webhooks.service",
    "authbridge.webhooks.delivery",
    "authbridge.webhooks.events",
    "authbridge.webhooks.repository",
)
EVERY_HELP = """
import json, sys
from typer.main import get_command
from typer.testing import CliRunner
from authbridge.cli import app


def paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, (*prefix, name))


runner = CliRunner()
answers = {}
for path in paths(get_command(app)):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    answers[" ".join(path)] = [result.exit_code, result.output]
print(json.dumps({"answers": answers, "modules": sorted(sys.modules)}))
"""
STARTED_PROCESS = re.compile(r"Started server process \[(\d+)\]")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUTHBRIDGE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


# -- --help and --version ----------------------------------------------------------------------


def test_every_help_answers_without_importing_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EVERY_HELP], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(done.stdout)
    answers: dict[str, list[object]] = report["answers"]
    modules = set(report["modules"])

    assert {"", "serve", "worker", "webhooks deliveries", "keys rotate"} <= set(answers)
    for path, (code, output) in answers.items():
        assert code == 0, f"authbridge {path} --help: {output}"
        assert "Usage:" in str(output), path
    assert not modules & set(HEAVY_MODULES)
    assert not [name for name in modules if name.startswith(HEAVY_PACKAGES)]


def test_help_of_the_installed_command_lists_every_command() -> None:
    done = run_cli("--help")

    assert done.returncode == 0, done.stderr
    for command in ("serve", "worker", "sandbox", "connect-link", "import", "connectors", "db"):
        assert command in done.stdout
    serve = run_cli("serve", "--help")
    assert serve.returncode == 0, serve.stderr
    for option in ("--workers", "--no-worker", "--connectors", "--allow-loopback", "--port"):
        assert option in serve.stdout


def test_version_is_printed() -> None:
    done = run_cli("--version")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"authbridge {__version__}"


def test_the_values_repeated_for_help_match_their_sources() -> None:
    assert common.DEFAULT_ENVIRONMENT == DEFAULT_ENVIRONMENT
    assert connect.PUBLIC_URL_ENV_VAR == PUBLIC_URL_ENV_VAR
    assert webhooks.EVENT_TYPES == EVENT_TYPES
    assert [status.value for status in webhooks.Status] == [s.value for s in DeliveryStatus]


# -- the factory of the server processes -------------------------------------------------------


def test_serve_options_travel_as_json() -> None:
    options = ServeOptions(
        public_url="https://auth.example.com",
        connector_folders=("a", "b/c"),
        allow_loopback=True,
        worker=False,
        warn_days=2.5,
        log_level="warning",
    )

    assert ServeOptions.from_env({SERVE_OPTIONS_ENV_VAR: options.to_json()}) == options
    for wrong in ("", "[]", '{"public_url": "x", "colour": "blue"}'):
        with pytest.raises(InvalidInput, match=SERVE_OPTIONS_ENV_VAR):
            ServeOptions.from_env({SERVE_OPTIONS_ENV_VAR: wrong})


def test_serve_names_the_factory() -> None:
    assert import_from_string(FACTORY) is app_from_environment


def test_the_factory_builds_the_app_from_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate_database(Settings.from_env())
    options = ServeOptions(public_url="http://127.0.0.1:8123", worker=False)
    monkeypatch.setenv(SERVE_OPTIONS_ENV_VAR, options.to_json())

    app = app_from_environment()
    assert isinstance(app, DisposesDatabase)
    disposed: list[bool] = []
    dispose = app.database.dispose

    def record_dispose() -> None:
        disposed.append(True)
        dispose()

    monkeypatch.setattr(app.database, "dispose", record_dispose)

    with serve(app, lifespan="on") as url:
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == "authbridge"
        assert disposed == []
    assert disposed == [True]


# -- serve --workers N -------------------------------------------------------------------------


def _parent_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


@pytest.mark.processes
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_serve_with_two_workers_runs_two_server_processes(home: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    environ = {**os.environ, "AUTHBRIDGE_HOME": str(home), "COLUMNS": "200"}
    args = ["serve", "--port", str(port), "--workers", "2", "--log-level", "info", "--no-worker"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*AUTHBRIDGE, *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environ,
            start_new_session=True,
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/healthz", process, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(40):
                assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 30
        while len(STARTED_PROCESS.findall(log.read_text())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        servers = {int(pid) for pid in STARTED_PROCESS.findall(log.read_text())}
        assert len(servers) == 2, log.read_text()
        assert {_parent_of(pid) for pid in servers} == {process.pid}

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert output.count("Master token for the 'default' environment") == 1, output
    assert f"serving on http://127.0.0.1:{port} with 2 processes" in output
    assert "Traceback" not in output
    for pid in servers:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
