"""The command line starts fast.

``--help`` and ``--version`` must not import the app, the services or the storage: each command
module imports them inside its functions. That is checked by what a fresh interpreter holds
after answering every command's ``--help``, not by timing (``bench/startup.py`` times it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from authbridge import __version__
from authbridge.cli import common, connect, webhooks
from authbridge.runtime import PUBLIC_URL_ENV_VAR
from authbridge.services.events import EVENT_TYPES
from authbridge.storage.models import DeliveryStatus
from authbridge.storage.repositories import DEFAULT_ENVIRONMENT
from tests.support.processes import AUTHBRIDGE

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
HEAVY_PACKAGES = ("authbridge.services", "authbridge.storage", "authbridge.connectors")
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
    for option in ("--no-worker", "--connectors", "--allow-loopback", "--port"):
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
