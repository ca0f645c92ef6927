"""``authbridge serve`` logs authbridge's own lines (the worker's, the refresher's) on stderr."""

from __future__ import annotations

import time
from pathlib import Path

from tests.processes.conftest import deployment

LOG_WAIT_SECONDS = 10


def test_serve_logs_the_workers_lines_with_level_and_logger_name(tmp_path: Path) -> None:
    with deployment(tmp_path) as deployed:
        server = deployed.server(worker=True, extra_args=["--log-level", "info"])
        deployed.start([server])
        deadline = time.monotonic() + LOG_WAIT_SECONDS
        while "worker started" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [line for line in server.output().splitlines() if "worker started" in line]
        assert lines, server.tail()
        assert " INFO authbridge.worker worker started interval=" in lines[0]
