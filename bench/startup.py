"""How fast authbridge starts: the server, the worker, the SDK import and the CLI's answers.

What it measures, each the median of ``--runs`` (5) runs after one warm-up run:

* ``serve``: from spawning ``authbridge serve`` (worker inside, as by default) on an already
  migrated and bootstrapped SQLite data folder to the first 200 from ``/healthz``;
* ``serve --workers 2``: the same with two server processes (skipped for a tree without the
  option);
* ``worker``: from spawning ``authbridge worker`` on the same folder to its ``worker started``
  log line;
* ``import authbridge.sdk``: the import alone, timed inside a fresh interpreter, and which of
  FastAPI, SQLAlchemy, uvicorn, ``authbridge.api`` or ``authbridge.storage`` it pulled in;
* ``authbridge --help``, ``--version`` and ``serve --help``: the whole process, start to exit.

Every command runs as ``python -c "from authbridge.cli import main; main()"`` with the tree's
``src`` first on ``PYTHONPATH``. ``--src [NAME=]DIR`` (repeatable; default: this checkout's
``src``, named ``now``) times other copies of the code, each with a data folder of its own, and
the runs alternate between them so that the load of a shared machine falls on all alike::

    git -C /work/main archive HEAD src | tar -x -C /tmp/before
    .venv/bin/python bench/startup.py --src before=/tmp/before/src --src now=src

It prints a table and writes ``bench/results/startup.json`` for a single tree, or
``startup-NAME.json`` for each of several (``--no-save``: nothing). The data folders are
temporary and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _common import RESULTS, ROOT, child, free_port, git_commit

CLI = [sys.executable, "-c", "from authbridge.cli import main; main()"]
READY_TIMEOUT = 60.0
POLL_SECONDS = 0.01
WORKER_READY_LINE = b"worker started"
HEAVY_MODULES = ("fastapi", "sqlalchemy", "uvicorn", "authbridge.api", "authbridge.storage")
SDK_PROBE = (
    "import sys, time\n"
    "started = time.perf_counter()\n"
    "import authbridge.sdk\n"
    "seconds = time.perf_counter() - started\n"
    "import json\n"
    f"heavy = [name for name in {HEAVY_MODULES!r} if name in sys.modules]\n"
    "print(json.dumps({'seconds': seconds, 'heavy': heavy}))\n"
)


@dataclass
class Tree:
    """One copy of the code being timed, with its own data folder and figures."""

    name: str
    src: Path
    work: Path
    environ: dict[str, str]
    figures: dict[str, list[float]] = field(default_factory=dict)
    heavy: list[str] = field(default_factory=list)
    has_workers: bool = True


def environment(src: Path, home: Path) -> dict[str, str]:
    """This process's environment with ``src`` first on the path and ``home`` as data folder."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AUTHBRIDGE")}
    environ["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(src), environ.get("PYTHONPATH", "")) if part
    )
    environ["AUTHBRIDGE_HOME"] = str(home)
    environ["COLUMNS"] = "120"
    return environ


def command_seconds(tree: Tree, args: Sequence[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [*CLI, *args], env=tree.environ, capture_output=True, timeout=60, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"authbridge {' '.join(args)} exited {done.returncode}:\n{done.stderr!r}"
        )
    return seconds


def serve_seconds(tree: Tree, *extra: str) -> float:
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]
    url = f"http://127.0.0.1:{port}/healthz"
    started = time.perf_counter()
    with child("serve", args, tree.environ, tree.work, command=CLI) as server:
        deadline = started + READY_TIMEOUT
        with httpx.Client(timeout=1) as client:
            while time.perf_counter() < deadline:
                if server.process.poll() is not None:
                    raise RuntimeError(f"serve exited early:\n{server.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return time.perf_counter() - started
                time.sleep(POLL_SECONDS)
    raise RuntimeError(f"serve did not answer /healthz within {READY_TIMEOUT:g} s")


def worker_seconds(tree: Tree) -> float:
    args = ["worker", "--log-level", "info"]
    started = time.perf_counter()
    with child("worker", args, tree.environ, tree.work, command=CLI) as worker:
        deadline = started + READY_TIMEOUT
        while time.perf_counter() < deadline:
            if WORKER_READY_LINE in worker.log.read_bytes():
                return time.perf_counter() - started
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{worker.tail()}")
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"worker did not log {WORKER_READY_LINE!r} within {READY_TIMEOUT:g} s")


def sdk_seconds(tree: Tree) -> float:
    done = subprocess.run(
        [sys.executable, "-c", SDK_PROBE],
        env=tree.environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    tree.heavy = list(result["heavy"])
    return float(result["seconds"])


MEASURES: dict[str, tuple[str, Callable[[Tree], float]]] = {
    "serve_ready_s": ("serve: spawn to first 200 from /healthz", serve_seconds),
    "serve_workers_2_ready_s": (
        "serve --workers 2: spawn to first 200",
        lambda tree: serve_seconds(tree, "--workers", "2"),
    ),
    "worker_ready_s": ("worker: spawn to 'worker started'", worker_seconds),
    "sdk_import_s": ("import authbridge.sdk (in-process)", sdk_seconds),
    "help_s": ("authbridge --help (process)", lambda tree: command_seconds(tree, ["--help"])),
    "version_s": (
        "authbridge --version (process)",
        lambda tree: command_seconds(tree, ["--version"]),
    ),
    "serve_help_s": (
        "authbridge serve --help (process)",
        lambda tree: command_seconds(tree, ["serve", "--help"]),
    ),
}


def prepare(tree: Tree) -> None:
    """Migrate the data folder and start the server once (key file, environment, first token),
    so that the measured starts find everything in place."""
    subprocess.run([*CLI, "db", "upgrade"], env=tree.environ, capture_output=True, check=True)
    serve_seconds(tree)
    usage = subprocess.run(
        [*CLI, "serve", "--help"], env=tree.environ, capture_output=True, text=True, check=True
    )
    tree.has_workers = "--workers" in usage.stdout


def measure(trees: Sequence[Tree], runs: int) -> None:
    """Each measure: one warm-up run per tree, then ``runs`` rounds alternating the trees."""
    for key, (label, run) in MEASURES.items():
        print(f"  {label} ...", flush=True)
        chosen = [t for t in trees if key != "serve_workers_2_ready_s" or t.has_workers]
        for tree in chosen:
            run(tree)
        for _ in range(runs):
            for tree in chosen:
                tree.figures.setdefault(key, []).append(run(tree))


@contextlib.contextmanager
def trees_from(sources: Sequence[str]) -> Iterator[list[Tree]]:
    with tempfile.TemporaryDirectory(prefix="authbridge-startup-") as folder:
        trees = []
        for index, source in enumerate(sources or [f"now={ROOT / 'src'}"]):
            name, _, path = source.rpartition("=")
            src = Path(path).resolve()
            if not (src / "authbridge" / "__init__.py").is_file():
                raise SystemExit(f"{src} holds no authbridge package")
            work = Path(folder) / f"{index}-{name or src.parent.name}"
            work.mkdir()
            environ = environment(src, work / "data")
            trees.append(Tree(name or src.parent.name, src, work, environ))
        yield trees


def report(trees: Sequence[Tree]) -> None:
    names = "".join(f" {tree.name[:10]:>10}" for tree in trees)
    print(f"\nmedian seconds{'':30}{names}")
    for key, (label, _) in MEASURES.items():
        cells = "".join(
            f" {statistics.median(tree.figures[key]):10.3f}"
            if key in tree.figures
            else f" {'-':>10}"
            for tree in trees
        )
        print(f"{label:44}{cells}")
    for tree in trees:
        pulled = ", ".join(tree.heavy) if tree.heavy else "none of " + ", ".join(HEAVY_MODULES)
        print(f"{tree.name}: import authbridge.sdk pulled in {pulled}")


def save(trees: Sequence[Tree], runs: int, load: float | None) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for tree in trees:
        name = "startup.json" if len(trees) == 1 else f"startup-{tree.name}.json"
        document = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "tree": tree.name,
            "src": str(tree.src),
            "python": platform.python_version(),
            "load_average_before": load,
            "runs": runs,
            "median_s": {key: statistics.median(values) for key, values in tree.figures.items()},
            "runs_s": tree.figures,
            "sdk_heavy_modules": tree.heavy,
        }
        (RESULTS / name).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {RESULTS / name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="a src folder to time (repeatable; default: this checkout's)",
    )
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (median)")
    parser.add_argument("--no-save", action="store_true", help="write no JSON file")
    options = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with trees_from(options.src) as trees:
        print(f"{options.runs} runs of each; load average before: {load}")
        for tree in trees:
            print(f"preparing {tree.name} ({tree.src}) ...", flush=True)
            prepare(tree)
        measure(trees, options.runs)
        report(trees)
        if not options.no_save:
            save(trees, options.runs, load)
    print(f"load average after: {os.getloadavg()[0] if hasattr(os, 'getloadavg') else None}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
