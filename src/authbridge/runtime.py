"""What a running authbridge needs from its environment: settings, the keyring and the database.

:class:`Settings` is read once from the environment (``AUTHBRIDGE_HOME``,
``AUTHBRIDGE_DATABASE_URL``, ``AUTHBRIDGE_KEYS``, ``AUTHBRIDGE_PUBLIC_URL``). The server and the
command line open the keyring with :func:`open_keyring` (the key file in the data folder is
created on first run, and the caller must then say that it has to be backed up; never over a
database that already holds secrets) and the database with :func:`open_database`, which
migrates it to the current schema when it is behind.

Starting must be quick, so that a restarted process serves again at once: the schema check
is a read of ``alembic_version`` against the head revision read from the migration
scripts' ``revision =`` lines, and Alembic (its environment, every script) is imported only
when the database is behind.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import String, column, inspect, make_url, select, table
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from authbridge.connectors.registry import Registry
from authbridge.errors import InvalidInput, Problem, VaultError
from authbridge.http import (
    EgressPolicy,
    HostTarget,
    OutboundClient,
    outbound_ssl_context,
    parse_host_map,
)
from authbridge.refresh.service import Refresher
from authbridge.services.bridge import Bridge, KeySource
from authbridge.services.principals import USER_TOKEN_LEEWAY
from authbridge.storage import Database
from authbridge.storage.db import (
    DATABASE_URL_ENV_VAR,
    DEFAULT_HOME,
    HOME_ENV_VAR,
    default_url,
    make_engine,
    normalize_url,
)
from authbridge.storage.repositories import StoredSecrets, stored_secrets
from authbridge.vault import ENV_VAR as KEYS_ENV_VAR
from authbridge.vault import Keyring, from_env, load_or_create

PUBLIC_URL_ENV_VAR = "AUTHBRIDGE_PUBLIC_URL"
CONNECTORS_ENV_VAR = "AUTHBRIDGE_CONNECTORS"
GRAPHIQL_ENV_VAR = "AUTHBRIDGE_GRAPHIQL"
INTROSPECTION_ENV_VAR = "AUTHBRIDGE_GRAPHQL_INTROSPECTION"
PUBLIC_METRICS_ENV_VAR = "AUTHBRIDGE_PUBLIC_METRICS"
TOKEN_LEEWAY_ENV_VAR = "AUTHBRIDGE_USER_TOKEN_LEEWAY_SECONDS"
#: The most clock skew a user token may be granted (its clocks are the host's and ours).
MAX_TOKEN_LEEWAY = 300.0
POOL_SIZE_ENV_VAR = "AUTHBRIDGE_DATABASE_POOL_SIZE"
REFRESH_LEASE_ENV_VAR = "AUTHBRIDGE_REFRESH_LEASE_SECONDS"
PROXY_MAX_BODY_ENV_VAR = "AUTHBRIDGE_PROXY_MAX_BODY_BYTES"
HEADER_TIMEOUT_ENV_VAR = "AUTHBRIDGE_HEADER_TIMEOUT_SECONDS"
BODY_TIMEOUT_ENV_VAR = "AUTHBRIDGE_BODY_TIMEOUT_SECONDS"
MAX_CONNECTIONS_ENV_VAR = "AUTHBRIDGE_MAX_CONNECTIONS"
SERVE_OPTIONS_ENV_VAR = "AUTHBRIDGE_SERVE_OPTIONS"
HOST_MAP_ENV_VAR = "AUTHBRIDGE_HOST_MAP"
CA_BUNDLE_ENV_VAR = "AUTHBRIDGE_CA_BUNDLE"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
#: The defaults of the request limits (docs/configuration.md says why).
DEFAULT_PROXY_MAX_BODY = 10 * 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1000
KEY_FILE = "keys.json"
MIGRATION_SCRIPTS = Path(__file__).resolve().parent / "storage" / "migrations" / "versions"
VERSION_TABLE = "alembic_version"

log = logging.getLogger("authbridge.connectors")


@dataclass(frozen=True)
class Settings:
    """The process's configuration, as read from the environment by :meth:`from_env`.

    ``database_url`` and ``keys_json`` are ``None`` when the embedded defaults apply: the SQLite
    file and the key file in ``home``. ``pool_size`` (``AUTHBRIDGE_DATABASE_POOL_SIZE``, default
    :data:`~authbridge.storage.db.POOL_SIZE`) is the process's budget of PostgreSQL connections,
    all kept open and never exceeded, so that every process sharing a server fits within its
    ``max_connections``; ``refresh_lease`` (``AUTHBRIDGE_REFRESH_LEASE_SECONDS``) replaces the
    refresh lease's 30 seconds (tests that kill processes shorten it); ``connector_folders``
    (``AUTHBRIDGE_CONNECTORS``, separated like ``PATH``) are loaded after the bundled catalog;
    ``graphiql`` (``AUTHBRIDGE_GRAPHIQL=1``) serves the GraphiQL page at ``/graphql`` and
    answers introspection, which ``graphql_introspection``
    (``AUTHBRIDGE_GRAPHQL_INTROSPECTION=1``) allows alone; ``public_metrics``
    (``AUTHBRIDGE_PUBLIC_METRICS=1``) serves ``/metrics`` without a master token;
    ``user_token_leeway`` (``AUTHBRIDGE_USER_TOKEN_LEEWAY_SECONDS``, default 5) is the clock
    skew granted to a user token's ``exp``, ``nbf`` and ``iat``; ``host_map``
    (``AUTHBRIDGE_HOST_MAP``, :func:`~authbridge.http.parse_host_map`) sends the outbound
    client's connections for some hosts to another address and port, and ``ca_bundle``
    (``AUTHBRIDGE_CA_BUNDLE``) is a PEM file of CAs it trusts on top of certifi's (test and
    staging providers).

    The request limits of ``authbridge serve``: ``proxy_max_body`` (bytes,
    ``AUTHBRIDGE_PROXY_MAX_BODY_BYTES``) bounds a proxied request's body; ``header_timeout``
    (``AUTHBRIDGE_HEADER_TIMEOUT_SECONDS``) is how long a connection may take to send a
    request's headers, ``body_timeout`` (``AUTHBRIDGE_BODY_TIMEOUT_SECONDS``) its body (plus a
    second for every 64 KiB received), and ``max_connections`` (``AUTHBRIDGE_MAX_CONNECTIONS``)
    how many connections one server process holds at once.

    This is the one place that reads ``AUTHBRIDGE_*`` variables (``AUTHBRIDGE_SERVE_OPTIONS``
    excepted: ``serve`` writes it for its own processes, :class:`ServeOptions`); the table of
    them all is in ``docs/configuration.md``.
    """

    home: Path
    database_url: str | None = None
    keys_json: str | None = None
    public_url: str | None = None
    pool_size: int | None = None
    refresh_lease: timedelta | None = None
    connector_folders: tuple[Path, ...] = ()
    graphiql: bool = False
    graphql_introspection: bool = False
    public_metrics: bool = False
    user_token_leeway: timedelta = USER_TOKEN_LEEWAY
    host_map: Mapping[str, HostTarget] = field(default_factory=dict, hash=False)
    ca_bundle: Path | None = None
    proxy_max_body: int = DEFAULT_PROXY_MAX_BODY
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (the process environment by default).

        Raises :class:`InvalidInput` for a database URL, public URL or number that cannot work.
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
        leeway = _leeway(environ)
        graphiql = _switch(environ, GRAPHIQL_ENV_VAR)
        proxy_max_body = _positive(environ, PROXY_MAX_BODY_ENV_VAR, int)
        header_timeout = _positive(environ, HEADER_TIMEOUT_ENV_VAR, float)
        body_timeout = _positive(environ, BODY_TIMEOUT_ENV_VAR, float)
        max_connections = _positive(environ, MAX_CONNECTIONS_ENV_VAR, int)
        return cls(
            home=home,
            database_url=database_url,
            keys_json=keys_json,
            public_url=public_url,
            pool_size=pool_size,
            refresh_lease=None if lease is None else timedelta(seconds=lease),
            connector_folders=connector_folders(environ),
            graphiql=graphiql,
            graphql_introspection=graphiql or _switch(environ, INTROSPECTION_ENV_VAR),
            public_metrics=_switch(environ, PUBLIC_METRICS_ENV_VAR),
            user_token_leeway=USER_TOKEN_LEEWAY if leeway is None else leeway,
            host_map=_host_map(environ),
            ca_bundle=_ca_bundle(environ),
            proxy_max_body=proxy_max_body or DEFAULT_PROXY_MAX_BODY,
            header_timeout=header_timeout or DEFAULT_HEADER_TIMEOUT,
            body_timeout=body_timeout or DEFAULT_BODY_TIMEOUT,
            max_connections=max_connections or DEFAULT_MAX_CONNECTIONS,
        )

    def egress_policy(self, *, allow_loopback: bool = False) -> EgressPolicy:
        """The outbound client's policy: public addresses, loopback if allowed, and the host
        map's addresses for the hosts it maps."""
        return EgressPolicy(allow_loopback=allow_loopback, host_map=self.host_map)

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


def connector_folders(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The folders of ``AUTHBRIDGE_CONNECTORS`` (separated like ``PATH``), for
    :meth:`Settings.from_env` and for the commands that need only connectors (``authbridge
    connectors``), which must not fail on a database or public URL they never use."""
    value = (os.environ if environ is None else environ).get(CONNECTORS_ENV_VAR, "")
    return tuple(Path(part) for part in value.split(os.pathsep) if part)


@dataclass(frozen=True)
class ServeOptions:
    """What ``authbridge serve`` resolved from its command line, for every server process.

    With ``--workers N`` the processes are started afresh by uvicorn, so ``serve`` hands them
    these as JSON in ``AUTHBRIDGE_SERVE_OPTIONS`` (:meth:`to_json`, :meth:`from_env`); the
    settings they read from the environment as every command does.
    """

    public_url: str
    connector_folders: tuple[str, ...] = ()
    allow_loopback: bool = False
    worker: bool = True
    warn_days: float = 7.0
    log_level: str = "info"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeOptions:
        """Read ``AUTHBRIDGE_SERVE_OPTIONS``; :class:`InvalidInput` unless ``serve`` wrote it."""
        text = (os.environ if environ is None else environ).get(SERVE_OPTIONS_ENV_VAR, "")
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            data["connector_folders"] = tuple(data.get("connector_folders", ()))
            return cls(**data)
        except (ValueError, TypeError) as error:
            raise InvalidInput(
                f"{SERVE_OPTIONS_ENV_VAR} is not what authbridge serve writes: {error}",
                field=SERVE_OPTIONS_ENV_VAR,
            ) from None


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


def _switch(environ: Mapping[str, str], name: str) -> bool:
    """An on/off setting: ``1`` is on; unset, empty or ``0`` off; anything else refused."""
    text = environ.get(name, "").strip()
    if text not in {"", "0", "1"}:
        raise InvalidInput(f"{name} must be 1 (on) or 0 (off), got {text!r}", field=name)
    return text == "1"


def _leeway(environ: Mapping[str, str]) -> timedelta | None:
    text = environ.get(TOKEN_LEEWAY_ENV_VAR, "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_TOKEN_LEEWAY:
        raise InvalidInput(
            f"{TOKEN_LEEWAY_ENV_VAR} must be a number of seconds from 0 to "
            f"{MAX_TOKEN_LEEWAY:.0f}, got {text!r}",
            field=TOKEN_LEEWAY_ENV_VAR,
        )
    return timedelta(seconds=seconds)


def _host_map(environ: Mapping[str, str]) -> dict[str, HostTarget]:
    text = environ.get(HOST_MAP_ENV_VAR, "")
    try:
        table = parse_host_map(text)
        EgressPolicy(host_map=table)  # refuses an address no map may name
    except ValueError as error:
        raise InvalidInput(
            f"{HOST_MAP_ENV_VAR} must be host=address[:port] entries separated by commas "
            f"(acme.example.com=127.0.0.1:8443,*.example.test=10.0.0.5): {error}",
            field=HOST_MAP_ENV_VAR,
        ) from None
    return table


def _ca_bundle(environ: Mapping[str, str]) -> Path | None:
    text = environ.get(CA_BUNDLE_ENV_VAR, "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    try:
        outbound_ssl_context(path)
    except (OSError, ssl.SSLError) as error:
        reason = (
            "no PEM certificate could be read from it"
            if isinstance(error, ssl.SSLError)
            else error.strerror or error
        )
        raise InvalidInput(
            f"{CA_BUNDLE_ENV_VAR} must be a readable PEM file of CA certificates, "
            f"got {text!r}: {reason}",
            field=CA_BUNDLE_ENV_VAR,
        ) from None
    return path


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


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str) -> None:
    """Log lines with ``key=value`` fields on stderr: authbridge's at ``level`` (``info``,
    ``DEBUG`` …), the libraries' from warnings up (httpx logs every request URL at info, and a
    URL may hold a key)."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("authbridge").setLevel(level.upper())


def open_keyring(settings: Settings) -> tuple[Keyring, bool]:
    """Return the keyring and whether it was just created.

    With ``AUTHBRIDGE_KEYS`` set, the keyring is read from it and never created. Otherwise the
    key file ``<home>/keys.json`` is loaded, or created (mode 0600) on first run; when
    ``created`` is true the caller must tell the operator to back the file up. Raises
    :class:`~authbridge.errors.VaultError` for a keyring that cannot be read, and when the key
    file is missing but the database already holds secrets: a new key could read none of
    them, so the message says what is missing and how to restore it instead.
    """
    if settings.keys_json is not None:
        return from_env(settings.keys_json), False
    settings.ensure_home()
    if not settings.key_file.exists():
        stored = secrets_in_database(settings)
        if stored.total:
            raise VaultError(missing_key_file(settings, stored))
    return load_or_create(settings.key_file)


def secrets_in_database(settings: Settings) -> StoredSecrets:
    """What the configured database holds encrypted, read over one short-lived connection
    (nothing for a SQLite file that does not exist yet, which is not created)."""
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        path = make_url(url).database
        if not path or path == ":memory:" or not Path(path).exists():
            return StoredSecrets({}, ())
    engine = make_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            return stored_secrets(session)
    finally:
        engine.dispose()


def missing_key_file(settings: Settings, stored: StoredSecrets) -> str:
    """Why no key is created over ``stored``, and how to get the key file back (one line)."""
    tables = ", ".join(f"{name} {count}" for name, count in stored.counts.items())
    keys = ", ".join(f"'{key_id}'" for key_id in stored.key_ids)
    noun = "key" if len(stored.key_ids) == 1 else "keys"
    written = f" written with {noun} {keys}" if stored.key_ids else ""
    secrets = "1 encrypted secret" if stored.total == 1 else f"{stored.total} encrypted secrets"
    return (
        f"the key file {settings.key_file} is missing, but the database already holds "
        f"{secrets} ({tables}){written}; a new key could read none of "
        f"them, so none was created. Restore {KEY_FILE} from your backup to {settings.key_file} "
        f"(chmod 600), or set {KEYS_ENV_VAR} to its content, then run `authbridge keys check` "
        "to confirm that every stored secret can be read. If the key is lost for good, so are "
        f"those secrets: to start afresh, point {HOME_ENV_VAR} or {DATABASE_URL_ENV_VAR} at a "
        "new database."
    )


def keyring_json(keyring: Keyring) -> str:
    """Return ``keyring`` as the one-line JSON document ``AUTHBRIDGE_KEYS`` takes."""
    keys = {
        key_id: base64.urlsafe_b64encode(key).decode("ascii")
        for key_id, key in keyring.export_keys().items()
    }
    return json.dumps({"primary": keyring.primary, "keys": keys}, separators=(",", ":"))


def migrate_database(settings: Settings) -> str:
    """Bring the database to the newest schema if it is behind; return its revision.

    A database already at the head costs one connection and two small queries; Alembic is imported
    (and every migration script loaded) only to upgrade, or when the scripts' revisions cannot
    be read without it.
    """
    url = settings.resolved_database_url()
    head = packaged_head_revision()
    if head is not None and database_revisions(url) == {head}:
        return head
    from authbridge.storage.migrate import current_revision, head_revision, upgrade

    head = head_revision()
    if current_revision(url) != head:
        upgrade(url)
    return head


# `revision: str = "0005"` and `down_revision: str | None = "0004"` (or `= None`), as the
# script template writes them.
_REVISION_LINE = re.compile(
    r"""^(?P<name>revision|down_revision) [ \t]* (?: : [^=\n]* )? = [ \t]*
    (?: "(?P<double>[^"\n]+)" | '(?P<single>[^'\n]+)' | None ) [ \t]* (?: \#.* )? $""",
    re.MULTILINE | re.VERBOSE,
)


def packaged_head_revision(folder: Path = MIGRATION_SCRIPTS) -> str | None:
    """The newest revision of the migration scripts in ``folder``, read from their
    ``revision = "…"`` and ``down_revision = …`` lines without importing Alembic.

    ``None`` when that is not certain (a script whose lines are not one plain string or
    ``None`` each, a merge, several heads, no scripts): then Alembic has to say.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in folder.glob("*.py"):
        if script.name.startswith("_"):
            continue
        found: dict[str, list[str | None]] = {"revision": [], "down_revision": []}
        for match in _REVISION_LINE.finditer(script.read_text(encoding="utf-8")):
            found[match["name"]].append(match["double"] or match["single"])
        if len(found["revision"]) != 1 or len(found["down_revision"]) != 1:
            return None
        revision, parent = found["revision"][0], found["down_revision"][0]
        if revision is None or revision in revisions:
            return None
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return None
    return heads.pop()


def database_revisions(url: str) -> set[str]:
    """The revisions in the database's ``alembic_version`` table, read over one short-lived
    connection; empty when the table does not exist (a database never migrated)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return set()
            query = select(column("version_num", String)).select_from(table(VERSION_TABLE))
            return set(connection.scalars(query))
    finally:
        engine.dispose()


def open_database(settings: Settings) -> Database:
    """Open the configured database, migrating it first when it is not at the newest schema.

    The caller owns the returned :class:`Database` and should :meth:`~Database.dispose` it.
    """
    migrate_database(settings)
    url = settings.resolved_database_url()
    if settings.pool_size is not None and not url.startswith("sqlite"):
        return Database(url, pool_size=settings.pool_size)  # no overflow: see make_engine
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
    broken_connectors: Literal["refuse", "log", "ignore"] = "refuse",
) -> Bridge:
    """Assemble the services' dependencies for a server (or a command that runs mechanisms).

    The connectors are the catalog plus ``AUTHBRIDGE_CONNECTORS`` and ``connector_folders``;
    ``allow_loopback`` lets connectors call providers on this machine (the sandbox). A connector
    with problems makes this raise :class:`~authbridge.errors.DefinitionError` (``refuse``, for
    commands), or is left out, with one warning per file (``log``, for a server's start) or
    silently (``ignore``, for the processes of ``serve --workers``, whose parent logged it).
    """
    folders = [*settings.connector_folders, *connector_folders]
    if broken_connectors == "refuse":
        registry = Registry.load(folders)
    else:
        registry, problems = Registry.load_usable(folders)
        if broken_connectors == "log":
            log_broken_connectors(problems)
    return Bridge(
        database=database,
        keys=KeySource(keyring, None if settings.keys_from_env else settings.key_file),
        registry=registry,
        http=OutboundClient(
            settings.egress_policy(allow_loopback=allow_loopback), ca_bundle=settings.ca_bundle
        ),
        public_url=public_url,
        token_leeway=settings.user_token_leeway,
    )


def log_broken_connectors(problems: Sequence[Problem]) -> None:
    """One warning for each connector file left out, with every problem found in it."""
    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file, found in by_file.items():
        reasons = "; ".join(
            f"{problem.path}: {problem.reason}" if problem.path else problem.reason
            for problem in found
        )
        log.warning("connector left out: %s: %s", file, " ".join(reasons.split()))
