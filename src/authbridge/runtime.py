"""What a running authbridge needs from its environment: settings, the keyring and the database.

:class:`Settings` is read once from the environment (``AUTHBRIDGE_HOME``,
``AUTHBRIDGE_DATABASE_URL``, ``AUTHBRIDGE_KEYS``, ``AUTHBRIDGE_PUBLIC_URL``). The server and the
command line open the keyring with :func:`open_keyring` (the key file in the data folder is
created on first run, and the caller must then say that it has to be backed up) and the database
with :func:`open_database`, which migrates it to the current schema when it is behind.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from authbridge.connectors.registry import Registry, folders_from_env
from authbridge.errors import InvalidInput
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.services.bridge import Bridge, KeySource
from authbridge.services.refresh import Refresher
from authbridge.storage import Database
from authbridge.storage.db import (
    DATABASE_URL_ENV_VAR,
    DEFAULT_HOME,
    HOME_ENV_VAR,
    default_url,
    normalize_url,
)
from authbridge.storage.migrate import current_revision, head_revision, upgrade
from authbridge.vault import ENV_VAR as KEYS_ENV_VAR
from authbridge.vault import Keyring, from_env, load_or_create

PUBLIC_URL_ENV_VAR = "AUTHBRIDGE_PUBLIC_URL"
POOL_SIZE_ENV_VAR = "AUTHBRIDGE_DATABASE_POOL_SIZE"
REFRESH_LEASE_ENV_VAR = "AUTHBRIDGE_REFRESH_LEASE_SECONDS"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
KEY_FILE = "keys.json"


@dataclass(frozen=True)
class Settings:
    """The process's configuration, as read from the environment by :meth:`from_env`.

    ``database_url`` and ``keys_json`` are ``None`` when the embedded defaults apply: the SQLite
    file and the key file in ``home``. ``pool_size`` (``AUTHBRIDGE_DATABASE_POOL_SIZE``) caps a
    process's PostgreSQL connections, so that every process sharing a server fits within its
    ``max_connections``; ``refresh_lease`` (``AUTHBRIDGE_REFRESH_LEASE_SECONDS``) replaces the
    refresh lease's 30 seconds (tests that kill processes shorten it).
    """

    home: Path
    database_url: str | None = None
    keys_json: str | None = None
    public_url: str | None = None
    pool_size: int | None = None
    refresh_lease: timedelta | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (the process environment by default).

        Raises :class:`InvalidInput` for a database URL or public URL that cannot work.
        """
        environ = os.environ if environ is None else environ
        home = Path(environ.get(HOME_ENV_VAR) or DEFAULT_HOME).expanduser()
        database_url = environ.get(DATABASE_URL_ENV_VAR, "").strip() or None
        if database_url is not None:
            database_url = normalize_url(database_url)
        keys_json = environ.get(KEYS_ENV_VAR, "").strip() or None
        public_url = _check_public_url(environ.get(PUBLIC_URL_ENV_VAR, "").strip())
        pool_size = _positive(environ, POOL_SIZE_ENV_VAR, int)
        lease = _positive(environ, REFRESH_LEASE_ENV_VAR, float)
        return cls(
            home=home,
            database_url=database_url,
            keys_json=keys_json,
            public_url=public_url,
            pool_size=pool_size,
            refresh_lease=None if lease is None else timedelta(seconds=lease),
        )

    def base_url(self, host: str = "127.0.0.1", port: int = 8000) -> str:
        """Where browsers reach us: ``AUTHBRIDGE_PUBLIC_URL``, else the listening address."""
        if self.public_url is not None:
            return self.public_url
        if host in {"0.0.0.0", "::", ""}:  # noqa: S104 (a wildcard is not reachable as such)
            host = "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def key_file(self) -> Path:
        """The key file used when ``AUTHBRIDGE_KEYS`` is not set."""
        return self.home / KEY_FILE

    @property
    def keys_from_env(self) -> bool:
        """Whether the keyring comes from ``AUTHBRIDGE_KEYS`` rather than the key file."""
        return self.keys_json is not None

    def resolved_database_url(self) -> str:
        """The database URL: ``AUTHBRIDGE_DATABASE_URL``, else the SQLite file in ``home``."""
        if self.database_url is not None:
            return self.database_url
        return default_url(self.ensure_home())

    def ensure_home(self) -> Path:
        """Create the data folder (owner-only) if it does not exist yet, and return it."""
        if not self.home.is_dir():
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.home


N = TypeVar("N", int, float)


def _positive(environ: Mapping[str, str], name: str, kind: Callable[[str], N]) -> N | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise InvalidInput(f"{name} must be a positive number, got {text!r}", field=name)
    return value


def _check_public_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(
            f"{PUBLIC_URL_ENV_VAR} must be an http:// or https:// URL such as "
            f"{DEFAULT_PUBLIC_URL}, got {value!r}",
            field=PUBLIC_URL_ENV_VAR,
        )
    return value.rstrip("/")


def open_keyring(settings: Settings) -> tuple[Keyring, bool]:
    """Return the keyring and whether it was just created.

    With ``AUTHBRIDGE_KEYS`` set, the keyring is read from it and never created. Otherwise the
    key file ``<home>/keys.json`` is loaded, or created (mode 0600) on first run; when
    ``created`` is true the caller must tell the operator to back the file up. Raises
    :class:`~authbridge.errors.VaultError` for a keyring that cannot be read.
    """
    if settings.keys_json is not None:
        return from_env(settings.keys_json), False
    settings.ensure_home()
    return load_or_create(settings.key_file)


def keyring_json(keyring: Keyring) -> str:
    """Return ``keyring`` as the one-line JSON document ``AUTHBRIDGE_KEYS`` takes."""
    keys = {
        key_id: base64.urlsafe_b64encode(key).decode("ascii")
        for key_id, key in keyring.export_keys().items()
    }
    return json.dumps({"primary": keyring.primary, "keys": keys}, separators=(",", ":"))


def migrate_database(settings: Settings) -> str:
    """Bring the database to the newest schema if it is behind; return its revision."""
    url = settings.resolved_database_url()
    head = head_revision()
    if current_revision(url) != head:
        upgrade(url)
    return head


def open_database(settings: Settings) -> Database:
    """Open the configured database, migrating it first when it is not at the newest schema.

    The caller owns the returned :class:`Database` and should :meth:`~Database.dispose` it.
    """
    migrate_database(settings)
    url = settings.resolved_database_url()
    if settings.pool_size is not None and not url.startswith("sqlite"):
        return Database(url, pool_size=settings.pool_size, max_overflow=0)
    return Database(url)


def open_refresher(settings: Settings, bridge: Bridge) -> Refresher:
    """The process's one :class:`Refresher`, with ``AUTHBRIDGE_REFRESH_LEASE_SECONDS`` if set."""
    if settings.refresh_lease is None:
        return Refresher(bridge)
    return Refresher(bridge, lease=settings.refresh_lease)


def open_bridge(
    settings: Settings,
    keyring: Keyring,
    database: Database,
    *,
    public_url: str,
    connector_folders: Sequence[Path] = (),
    allow_loopback: bool = False,
) -> Bridge:
    """Assemble the services' dependencies for a server (or a command that runs mechanisms).

    The connectors are the catalog plus ``AUTHBRIDGE_CONNECTORS`` and ``connector_folders``;
    ``allow_loopback`` lets connectors call providers on this machine (the sandbox).
    """
    folders = [*folders_from_env(), *connector_folders]
    return Bridge(
        database=database,
        keys=KeySource(keyring, None if settings.keys_from_env else settings.key_file),
        registry=Registry.load(folders),
        http=OutboundClient(EgressPolicy(allow_loopback=allow_loopback)),
        public_url=public_url,
    )
