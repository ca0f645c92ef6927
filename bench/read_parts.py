"""What a credential read costs, part by part, in one process: the budget behind
``bench/credentials.py``'s ratio.

For each part of ``GET /v1/authentications/{id}/credentials`` it times ``--calls`` (20,000) calls
in a row and prints microseconds per call (wall time, one thread, no HTTP):

* the whole request through the ASGI app, for ``/healthz`` (the ceiling) and for a credentials
  read, with the audit trail on and, side by side, with the audit row left out;
* its parts: the cached token check, the indexed SELECT (raw ``sqlite3`` and through
  ``Database.first``), the key file check (``Bridge.keyring``), AES-GCM decryption, the audit
  row (``AuditRows.row``), the JSON response, the metric;
* the audit writer: microseconds of CPU per row written in batches of ``--batch`` (1,000), into a
  table already holding ``--rows`` (200,000) rows spread over 10,000 targets.

The ratio ``healthz / credentials`` of the first two lines is what ``bench/credentials.py``
measures over HTTP. For a target of 70%, a read may add at most 0.43 times healthz to it.

    .venv/bin/python bench/read_parts.py
    .venv/bin/python bench/read_parts.py --calls 5000 --no-save

SQLite only, in a temporary data folder; writes ``bench/results/read-parts.json``
(``--no-save``: nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS

AUTHS = 2_000
TARGETS = 10_000


def per_call(fn: Callable[[Any], Any], args: list[Any]) -> float:
    started = time.perf_counter()
    for arg in args:
        fn(arg)
    return (time.perf_counter() - started) / len(args) * 1e6


async def asgi_per_call(app: Any, paths: list[str], token: str) -> float:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    started = time.perf_counter()
    for path in paths:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
    elapsed = (time.perf_counter() - started) / len(paths) * 1e6
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses {sorted(set(statuses))}")
    return elapsed


async def whole_requests(calls: int) -> dict[str, float]:
    from credentials import seed

    from authbridge.api.factory import build_app
    from authbridge.authentications import reads
    from authbridge.runtime import (
        ServeOptions,
        Settings,
        migrate_database,
        open_bridge,
        open_database,
        open_keyring,
    )

    settings = Settings.from_env()
    migrate_database(settings)
    seeded = seed(settings, AUTHS, 1_000)
    keyring, _ = open_keyring(settings)
    database = open_database(settings)
    bridge = open_bridge(settings, keyring, database, public_url="http://bench")
    options = ServeOptions(public_url="http://bench", worker=False, log_level="warning")
    app = build_app(settings, bridge, options)
    lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await lifespan_in.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan_in.get, lifespan_out.put)
    )
    await lifespan_out.get()
    figures: dict[str, float] = {}
    try:
        healthz = ["/healthz"] * calls
        reading = [
            f"/v1/authentications/{random.choice(seeded.ids)}/credentials" for _ in range(calls)
        ]
        await asgi_per_call(app, healthz[:500], seeded.token)  # warm-up
        await asgi_per_call(app, reading[:500], seeded.token)
        figures["request: /healthz"] = await asgi_per_call(app, healthz, seeded.token)
        figures["request: credentials (audited)"] = await asgi_per_call(app, reading, seeded.token)
        audit = reads.CredentialReader._audit

        async def no_audit(*_args: Any) -> None:
            return None

        reads.CredentialReader._audit = no_audit  # type: ignore[method-assign,assignment]
        try:
            figures["request: credentials (no audit row)"] = await asgi_per_call(
                app, reading, seeded.token
            )
        finally:
            reads.CredentialReader._audit = audit  # type: ignore[method-assign]
        figures.update(parts(bridge, seeded, calls))
    finally:
        await lifespan_in.put({"type": "lifespan.shutdown"})
        await lifespan
        database.dispose()
    return figures


def parts(bridge: Any, seeded: Any, calls: int) -> dict[str, float]:
    from starlette.responses import JSONResponse

    from authbridge.authentications.rows import _READ_ROW, CredentialRow
    from authbridge.services import metrics
    from authbridge.services.principals import authenticate
    from authbridge.storage.db import _compiled
    from authbridge.tenancy.repository import AuditEntry, AuditRows

    database = bridge.database
    with database.session() as session:
        principal = authenticate(session, bridge.keyring, seeded.token, now=bridge.now())
    environment = principal.environment_id
    ids = [random.choice(seeded.ids) for _ in range(calls)]
    read = _compiled(_READ_ROW, database.engine.dialect)
    database.first(_READ_ROW, {"auth_id": ids[0], "environment_id": environment})
    connection = database._sqlite_connection.value.driver_connection
    row = database.first(_READ_ROW, {"auth_id": ids[0], "environment_id": environment})
    credential_row = CredentialRow(*row[:-1])
    credentials = credential_row.credentials(bridge.keyring)
    rows = AuditRows(database.engine.dialect)
    now = bridge.now()
    bridge.principals.put(seeded.token, principal, now=now)
    return {
        "part: token check (cached)": per_call(lambda _: bridge.principals.get(seeded.token), ids),
        "part: SELECT, raw sqlite3": per_call(
            lambda auth_id: connection.execute(read.sql, [auth_id, environment]).fetchone(), ids
        ),
        "part: SELECT, Database.first": per_call(
            lambda auth_id: database.first(
                _READ_ROW, {"auth_id": auth_id, "environment_id": environment}
            ),
            ids,
        ),
        "part: key file check (Bridge.keyring)": per_call(lambda _: bridge.keyring, ids),
        "part: AES-GCM decrypt + JSON": per_call(
            lambda _: credential_row.credentials(bridge.keyring), ids
        ),
        "part: audit row (AuditRows.row)": per_call(
            lambda auth_id: rows.row(
                AuditEntry(
                    environment_id=environment,
                    actor=principal.actor,
                    action="authentication.credentials_read",
                    target_type="authentication",
                    target_id=auth_id,
                    at=now,
                )
            ),
            ids,
        ),
        "part: JSON response": per_call(
            lambda auth_id: JSONResponse(
                {
                    "authentication_id": auth_id,
                    "connector": "sendgrid",
                    "auth_type": "api_key",
                    "credentials": credentials,
                    "expires_at": None,
                }
            ),
            ids,
        ),
        "part: metric": per_call(lambda _: metrics.credential_reads("api_key").inc(), ids),
    }


def audit_writer(rows_before: int, batch: int) -> dict[str, float]:
    from authbridge.storage.db import Database
    from authbridge.storage.migrate import upgrade
    from authbridge.tenancy.repository import AuditEntry, AuditRepository, AuditRows

    folder = Path(tempfile.mkdtemp(prefix="authbridge-audit-"))
    url = f"sqlite:///{folder / 'audit.db'}"
    upgrade(url)
    database = Database(url)
    try:
        with database.session() as session:
            session.connection().exec_driver_sql(
                "INSERT INTO environments (id, name, jwt_secret_ct, created_at) "
                "VALUES ('env', 'default', x'00', '2026-01-01')"
            )
        make = AuditRows(database.engine.dialect)
        targets = [f"auth_{number:05d}" for number in range(TARGETS)]
        now = datetime.now(UTC)

        def rows(count: int) -> list[Any]:
            return [
                make.row(
                    AuditEntry(
                        environment_id="env",
                        actor="master:bench",
                        action="authentication.credentials_read",
                        target_type="authentication",
                        target_id=random.choice(targets),
                        at=now,
                    )
                )
                for _ in range(count)
            ]

        def write(all_rows: list[Any]) -> float:
            cpu = time.thread_time()
            for start in range(0, len(all_rows), batch):
                with database.session() as session:
                    AuditRepository(session).record_rows(all_rows[start : start + batch])
            return (time.thread_time() - cpu) / len(all_rows) * 1e6

        write(rows(rows_before))
        return {f"audit writer: CPU per row, batches of {batch:,}": write(rows(20 * batch))}
    finally:
        database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000, help="calls per figure")
    parser.add_argument("--rows", type=int, default=200_000, help="audit rows already stored")
    parser.add_argument("--batch", type=int, default=1_000, help="audit rows per transaction")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="authbridge-parts-")
    os.environ["AUTHBRIDGE_HOME"] = home
    os.environ.pop("AUTHBRIDGE_DATABASE_URL", None)
    figures = asyncio.run(whole_requests(args.calls))
    figures.update(audit_writer(args.rows, args.batch))
    width = max(len(name) for name in figures)
    print()
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:8.2f} µs")
    ceiling = figures["request: /healthz"]
    audited = figures["request: credentials (audited)"]
    print(
        f"\nhealthz / credentials = {ceiling / audited:.0%} in process "
        f"(without the audit row {ceiling / figures['request: credentials (no audit row)']:.0%});"
        f" 70% allows {ceiling / 0.7 - ceiling:.1f} µs over /healthz, the read adds "
        f"{audited - ceiling:.1f} µs (the audit writer's CPU comes on top, in its thread)"
    )
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "read-parts.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
