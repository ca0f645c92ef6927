"""What every use case needs: the database, the keyring, the connectors, the outbound client.

A :class:`Bridge` is built once per process (by ``authbridge serve``, a CLI command or a test)
and handed to the services. Services never commit: the caller opens the transaction with
:meth:`Bridge.session` and the services work inside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from threading import Lock
from typing import TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session

from authbridge.connectors.registry import Registry
from authbridge.http import OutboundClient
from authbridge.services.principals import USER_TOKEN_LEEWAY, PrincipalCache
from authbridge.storage import Database
from authbridge.storage.models import utcnow
from authbridge.vault import Keyring, load


class KeySource:
    """The current keyring; a key file is read again when it changes on disk.

    ``authbridge keys rotate`` rewrites the key file while servers run; a server that kept the
    keyring it loaded at start could not read values sealed under the new primary key. Checking
    the file's modification time and inode costs one ``stat`` per use: the key file is
    replaced by a new file on every save, so a change is seen even when it lands within the
    file system's timestamp granularity.
    """

    def __init__(self, keyring: Keyring, path: Path | None = None) -> None:
        self._keyring = keyring
        self._path = path
        self._stamp = self._read_stamp()
        self._lock = Lock()

    def _read_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            status = os.stat(self._path)
        except OSError:
            return None
        return status.st_mtime_ns, status.st_ino

    @property
    def current(self) -> Keyring:
        if self._path is None:
            return self._keyring
        stamp = self._read_stamp()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._keyring = load(self._path)
                    self._stamp = stamp
        return self._keyring


T = TypeVar("T")


@dataclass
class Bridge:
    """The dependencies of the services, shared by every request of one process.

    ``public_url`` is where browsers reach this server (connect pages, OAuth callbacks);
    ``clock`` returns the current UTC time (tests pass a fixed one); ``principals`` holds the
    callers of recently checked tokens (see :class:`PrincipalCache` for the bound on
    revocation); ``token_leeway`` is the clock skew granted to a user token.
    """

    database: Database
    keys: KeySource
    registry: Registry
    http: OutboundClient
    public_url: str
    clock: Callable[[], datetime] = field(default=utcnow)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    token_leeway: timedelta = USER_TOKEN_LEEWAY

    @property
    def keyring(self) -> Keyring:
        return self.keys.current

    def now(self) -> datetime:
        return self.clock()

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A transaction, committed when the block ends without an exception."""
        with self.database.session(readonly=readonly) as session:
            yield session

    async def run(self, work: Callable[[Session], T], *, readonly: bool = False) -> T:
        """Run ``work(session)`` as one unit of work, in a worker thread: one transaction,
        committed when ``work`` returns and rolled back when it raises. The one way pages,
        services and the worker reach the database from the event loop; services themselves
        take a session and never commit.

        **No transaction spans a provider call.** A use case that calls a provider reads in one
        ``run``, calls the mechanism outside any, and stores in another, so that a slow provider
        never holds SQLite's write lock or a PostgreSQL row lock.
        """

        def unit() -> T:
            with self.session(readonly=readonly) as session:
                return work(session)

        return await anyio.to_thread.run_sync(unit)

    def url(self, path: str) -> str:
        """An absolute URL on this server for ``path`` (which starts with ``/``)."""
        return self.public_url + path
