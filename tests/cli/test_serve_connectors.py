"""``authbridge serve`` starts without a connector whose definition is broken, and says so once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.processes import AUTHBRIDGE, free_port, wait_until_serving

TOKEN = re.compile(r"^(abk_\S+)$", re.MULTILINE)
RAISING = "type = 'oauth2'\n\n\ndef definition(context):\n    raise RuntimeError('no tenant set')\n"
ASANA_STYLE = (
    "type = 'oauth2'\n\n\ndef definition():\n"
    "    return {'authUrl': 'https://a.example/authorize', 'requestAccessToken': 'https://a.example/t'}\n"
)


@pytest.mark.processes
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_starts_without_a_broken_connector_and_logs_it_once(
    home: Path, tmp_path: Path, workers: int
) -> None:
    folder = tmp_path / "connectors"
    broken = folder / "acme" / "crashy" / "auth.py"
    broken.parent.mkdir(parents=True)
    broken.write_text(RAISING)
    asana = folder / "asana" / "asana" / "auth.py"
    asana.parent.mkdir(parents=True)
    asana.write_text(ASANA_STYLE)
    port = free_port()
    log = tmp_path / "serve.log"
    environ = {**os.environ, "AUTHBRIDGE_HOME": str(home), "COLUMNS": "200"}
    args = ["serve", "--port", str(port), "--workers", str(workers), "--no-worker"]
    args += ["--connectors", str(folder), "--log-level", "info"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*AUTHBRIDGE, *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environ,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{url}/healthz", process, log)
        token = TOKEN.search(log.read_text())
        assert token is not None, log.read_text()
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        for _ in range(2 * workers):  # each server process answers alike
            with httpx.Client(base_url=url, headers=headers, timeout=5) as client:
                listed = client.get("/v1/connectors")
                assert listed.status_code == 200, listed.text
                keys = {row["key"] for row in listed.json()}
                assert "asana" in keys, "a zero-argument definition loads"
                assert "crashy" not in keys
                assert client.get("/v1/connectors/crashy").status_code == 404
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    warnings = [line for line in output.splitlines() if "connector left out" in line]
    assert len(warnings) == 1, output
    assert warnings[0].endswith(
        " WARNING authbridge.connectors connector left out: "
        f"{broken}: definition: calling it failed: RuntimeError: no tenant set"
    ), output
    assert "Traceback" not in output
