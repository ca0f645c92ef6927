"""The credential-injecting proxy: one request forwarded to a connector's API, signed.

``/v1/proxy/{auth_id}/{path}`` sends the request on to the base URL of the connector's request
rules with the credentials applied (:mod:`authbridge.mechanisms.request_rules`). This module
holds what the route needs besides HTTP plumbing:

* :func:`read_target` runs in one read-only transaction (:mod:`read_transactions`; the route
  refreshes due credentials first through :func:`freshness.read_fresh`), without an audit
  row: the proxied call queues one when it ends, with its status and duration
  (:func:`audit_entry`);
* :class:`RuleCache` keeps the request rules rendered for an authentication as long as its row
  and its connector configuration stay as they were, so an unchanged authentication is not
  decrypted and rendered again for every request;
* the header filters of RFC 9110 §7.6.1 (hop-by-hop headers never cross a proxy) plus our own
  ``Authorization`` and cookies;
* :class:`BodySpool`, which keeps a copy of the request body while it streams upstream, so the
  request can be sent again after a 401 and a refresh;
* :func:`send`, which opens the upstream response through the process's outbound client (its
  egress policy and timeouts) and maps transport failures to problems: 504 for a timeout,
  502 for an unreachable or refused host.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote, unquote_plus, urlencode

import httpx
from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications import service as authentications
from authbridge.authentications import use as credential_use
from authbridge.authentications.freshness import Stored
from authbridge.authentications.rows import read_stamp_row
from authbridge.authentications.use import RequestCredentials
from authbridge.connector_configs import service as connectors
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.connectors.request_models import RequestRules
from authbridge.http import OutboundClient
from authbridge.mechanisms.request_rules import RequestAuth
from authbridge.redaction import redact
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.tenancy.repository import AuditEntry

ACTION = "authentication.proxied"
#: RFC 9110 §7.6.1 and §7.8: connection-specific headers, never forwarded by a proxy.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
#: Request headers that describe our hop, not the upstream's: the host, our bearer token, and
#: ``Expect`` (a 100-continue is answered by our server, not forwarded).
OWN_REQUEST_HEADERS = frozenset({"host", "authorization", "expect"})
#: Our cookies (connect flows) start with this; the caller's other cookies are forwarded.
OWN_COOKIE_PREFIX = "ab_"
SPOOL_IN_MEMORY = 1024 * 1024
REPLAY_CHUNK = 64 * 1024
#: An upstream body of at most this size (by its Content-Length) is read whole and sent on in
#: one piece, which costs less than streaming it; a larger or unsized one streams.
BUFFERED_BODY = 64 * 1024
#: How many authentications' rendered rules a process keeps (least recently used go first).
CACHED_RULES = 1024
#: A proxied path is checked as sent and after each of this many rounds of percent-decoding
#: (``%252e`` is ``.`` after two); a path that would decode further is refused.
DECODING_ROUNDS = 3
#: What some server or framework upstream reads as a separator of path segments.
_SEPARATORS = re.compile(r"[/\\]")
T = TypeVar("T")


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """An authentication's request rules, rendered, with what a proxied request needs besides."""

    rules: RequestAuth = dataclasses.field(repr=False)
    """The rules to sign requests with (their query parameters are put in the URL instead)."""
    secrets: tuple[str, ...] = dataclasses.field(repr=False)
    """Every stored text value: what must never reach the audit log."""
    renewable: bool
    """Whether a 401 is worth a forced refresh (an API key cannot be renewed)."""


@dataclass(frozen=True)
class Target:
    """One authentication as a proxied request found it: rendered rules from the cache, or
    what rendering them needs (:func:`prepare`)."""

    auth: Stored = dataclasses.field(repr=False)
    """The row read (what :mod:`freshness` judges)."""
    stamp: tuple[Any, ...]
    """What the rendered rules depend on: the row's version, its connector, the
    configuration's last change."""
    prepared: Prepared | None
    read: RequestCredentials | None = dataclasses.field(default=None, repr=False)


class RuleCache:
    """Rendered request rules per authentication, reused while the stamp is the same.

    The stamp holds the row's ``version``, which every change of the credentials, the profile
    or the connector version bumps, and the connector configuration's ``updated_at``; both are
    read by every request, so a change is used by the next request. Only declarative rules are
    kept: a callable ``request`` is called for every request. Shared by the event loop and the
    worker threads, hence the lock.
    """

    def __init__(self, size: int = CACHED_RULES) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[tuple[Any, ...], Prepared]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, auth_id: str, stamp: tuple[Any, ...]) -> Prepared | None:
        with self._lock:
            entry = self._entries.get(auth_id)
            if entry is None or entry[0] != stamp:
                return None
            self._entries.move_to_end(auth_id)
            return entry[1]

    def put(self, auth_id: str, stamp: tuple[Any, ...], prepared: Prepared) -> None:
        with self._lock:
            self._entries[auth_id] = (stamp, prepared)
            self._entries.move_to_end(auth_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def cached_target(
    bridge: Bridge, principal: Principal, auth_id: str, cache: RuleCache
) -> Target | None:
    """The target with its rendered rules from ``cache``, read with one Core SELECT
    (:func:`read_stamp_row`: the row's stamp, no ORM, no secret); ``None`` when the cache
    holds no rules for the current stamp (then :func:`read_target`). Refuses someone else's
    authentication (not found)."""
    row = read_stamp_row(bridge.database, principal.environment_id, auth_id, now=bridge.now())
    if row is None:
        raise errors.NotFound(f"authentication '{auth_id}' not found")
    principal.check_owner(row.end_user_id, what=f"authentication '{auth_id}'")
    cached = cache.get(row.id, row.stamp)
    return None if cached is None else Target(row, row.stamp, cached)


def read_target(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    auth_id: str,
    cache: RuleCache,
) -> Target:
    """The authentication for one proxied request: its rendered rules when the cache has them
    for its current stamp, else its credentials and connector.

    Refuses someone else's authentication (not found); whether its credentials may be used is
    for the caller to judge (:mod:`freshness`). The credentials include the refresh token
    (never sent: the rules cannot name it), so the caller can tell whether they can be renewed.
    Unlike a credentials read this writes no audit row: the proxied request writes one when it
    ends.
    """
    auth = authentications.get(bridge, session, principal, auth_id)
    settings = ConnectorConfigRepository(session, bridge.keyring).get(
        principal.environment_id, auth.connector_key, auth.connector_variant or ""
    )
    stamp = (
        auth.version,
        auth.connector_key,
        auth.connector_version,
        auth.connector_variant,
        None if settings is None else settings.updated_at,
    )
    cached = cache.get(auth.id, stamp)
    if cached is not None:
        return Target(auth, stamp, cached)
    repository = authentications.repository(bridge, session)
    setup = connectors.setup(
        bridge,
        session,
        principal.environment_id,
        auth.connector_key,
        auth.connector_version,
        auth.connector_variant,
    )
    read = RequestCredentials(
        auth=auth,
        credentials=repository.credentials(auth),
        profile=repository.profile(auth),
        setup=setup,
    )
    return Target(auth, stamp, None, read)


async def prepare(bridge: Bridge, cache: RuleCache, target: Target) -> Prepared:
    """The target's rendered rules: from the cache, or rendered now (and kept when the rules
    are declarative)."""
    if target.prepared is not None:
        return target.prepared
    read = target.read
    assert read is not None  # a target without cached rules carries what rendering needs
    rules = await credential_use.request_auth(bridge, read)
    prepared = Prepared(
        rules=rules,
        secrets=tuple(secret_values(read.credentials)),
        renewable=credential_use.can_refresh(read.setup.definition, read.credentials),
    )
    declared = read.setup.definition.request
    if declared is None or isinstance(declared, RequestRules):
        cache.put(target.auth.id, target.stamp, prepared)
    return prepared


def secret_values(credentials: Mapping[str, Any]) -> list[str]:
    """Every stored text value: what must never reach the audit log."""
    return [value for value in credentials.values() if isinstance(value, str)]


def upstream_url(rules: RequestAuth, raw_path: str, query: str) -> str:
    """The connector's base URL joined with the path and query the caller sent (as sent), and
    the rules' query parameters (which replace the caller's of the same name).

    A path that could climb out of the base URL's path is refused (:func:`path_problem`).
    Without a base URL there is nowhere to forward to (409).
    """
    if rules.base_url is None:
        raise errors.Conflict(
            "the connector declares no base URL in its request rules, so it cannot be proxied"
        )
    problem = path_problem(raw_path)
    if problem is not None:
        raise errors.InvalidInput(problem, field="path")
    pairs = [
        pair
        for pair in query.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) not in rules.params
    ]
    if rules.params:
        pairs.append(urlencode(rules.params))
    url = rules.base_url.rstrip("/") + "/" + raw_path
    return f"{url}?{'&'.join(pairs)}" if pairs else url


def path_problem(raw_path: str) -> str | None:
    """Why ``raw_path`` (as sent) could leave the connector's base path upstream, or ``None``.

    The path goes upstream as sent, and upstreams differ in what they decode before resolving
    dot segments: some decode ``%2f`` to ``/`` (``..%2fadmin``), some decode twice
    (``%252e%252e``), some read ``\\`` as ``/`` (``..%5c``), some drop ``;`` parameters
    from a segment (``..;/``, Tomcat), some fold compatibility characters (U+FF0E, a fullwidth dot).
    So a ``.`` or ``..`` segment is looked for in the path as sent and after each round of
    percent-decoding, with ``/`` and ``\\`` as separators, each segment without its ``;``
    parameters, NFKC-normalised and stripped of spaces and NUL.
    """
    text = raw_path
    for rounds in range(DECODING_ROUNDS + 1):
        found = _dot_segment(text)
        if found is not None:
            name, backslash, parameters = found
            how = [] if rounds == 0 else [_decoded(rounds)]
            if backslash:
                how.append("with '\\' read as '/'")
            if parameters:
                how.append("before ';' parameters")
            detail = f" ({', '.join(how)})" if how else ""
            return (
                f"the path must stay under the connector's base URL, but it has a '{name}'"
                f" segment{detail}"
            )
        decoded = unquote(text)
        if decoded == text:
            return None
        text = decoded
    return f"the path is percent-encoded more than {DECODING_ROUNDS} times over"


def _dot_segment(text: str) -> tuple[str, bool, bool] | None:
    """The first ``.`` or ``..`` segment of ``text``: the name, whether it took ``\\`` as a
    separator to find, and whether ``;`` parameters followed it."""
    passes = [(False, text.split("/"))]
    if "\\" in text:
        passes.append((True, _SEPARATORS.split(text)))
    for backslash, segments in passes:
        for segment in segments:
            bare, semicolon, _ = segment.partition(";")
            if not bare.isascii():
                bare = unicodedata.normalize("NFKC", bare)
            name = bare.strip(" \t\r\n\x00")
            if name in (".", ".."):
                return name, backslash, bool(semicolon)
    return None


def _decoded(rounds: int) -> str:
    times = "once" if rounds == 1 else "twice" if rounds == 2 else f"{rounds} times"
    return f"percent-decoded {times}"


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[str]:
    """The header names a ``Connection`` header lists (they are hop-by-hop too)."""
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(
                token.strip().lower() for token in value.decode("latin-1").split(",") if token
            )
    return named


def _hop_by_hop(name: str, listed: set[str]) -> bool:
    return name in HOP_BY_HOP or name.startswith("proxy-") or name in listed


def request_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The caller's headers to forward: without hop-by-hop headers, our own ``Authorization``,
    ``Host`` (httpx sets the upstream's) and our cookies. Without an ``Accept-Encoding`` of the
    caller's, ``identity`` is asked for, so the body arrives as the caller expects it."""
    listed = connection_tokens(raw)
    forwarded: list[tuple[str, str]] = []
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if _hop_by_hop(name, listed) or name in OWN_REQUEST_HEADERS:
            continue
        if name == "cookie":
            value = _foreign_cookies(value)
            if not value:
                continue
        forwarded.append((name, value))
    if not any(name == "accept-encoding" for name, _ in forwarded):
        forwarded.append(("accept-encoding", "identity"))
    return forwarded


def _foreign_cookies(header: str) -> str:
    pairs = (pair.strip() for pair in header.split(";"))
    return "; ".join(pair for pair in pairs if pair and not pair.startswith(OWN_COOKIE_PREFIX))


def response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's headers to pass back: all but the hop-by-hop ones."""
    listed = connection_tokens(raw)
    return [
        (name.lower(), value)
        for name, value in raw
        if not _hop_by_hop(name.decode("latin-1").lower(), listed)
    ]


class BodySpool:
    """A request body streamed upstream while a copy is kept, to send it again after a 401.

    The copy stays in memory up to 1 MiB, then moves to a temporary file, so a large body
    never sits in memory whole. :meth:`replay` first reads what the first attempt left unread
    (an upstream may answer before reading the whole body).
    """

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115

    async def stream(self) -> AsyncIterator[bytes]:
        """The body from the caller, copied as it passes."""
        async for chunk in self._source:
            self._copy.write(chunk)
            yield chunk

    async def replay(self) -> AsyncIterator[bytes]:
        """The whole body again, from the copy."""
        async for chunk in self._source:
            self._copy.write(chunk)
        self._copy.seek(0)
        while chunk := self._copy.read(REPLAY_CHUNK):
            yield chunk

    def close(self) -> None:
        self._copy.close()


async def send(
    http: OutboundClient,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: AsyncIterator[bytes] | None,
    rules: RequestAuth,
) -> httpx.Response:
    """Open the upstream response (status and headers read, body not yet): the caller reads
    it with ``aiter_raw`` and closes it.

    Timeouts are :class:`errors.UpstreamTimeout` (504); a connection that fails is
    :class:`errors.UpstreamUnreachable` (502); an address the egress policy refuses is
    :class:`errors.EgressDenied` (502). Messages name the host, never the URL.
    """
    target = httpx.URL(url)
    where = f"{method} {target.scheme}://{target.host}"
    try:
        # The rules' query parameters are in ``url`` already (the caller's query as sent).
        signing = dataclasses.replace(rules, params={})
        return await http.open_stream(method, target, headers, body, auth=signing.auth())
    except httpx.TimeoutException as exc:
        raise errors.UpstreamTimeout(f"{where}: the upstream API did not answer in time") from exc
    except httpx.ConnectError as exc:
        raise errors.UpstreamUnreachable(f"{where}: could not connect to the upstream API") from exc
    except httpx.TransportError as exc:
        raise errors.UpstreamUnreachable(
            f"{where}: the connection to the upstream API failed"
        ) from exc


async def small_body(upstream: httpx.Response) -> bytes | None:
    """The upstream's body when its ``Content-Length`` says it is small, else ``None`` (it is
    streamed). Failures are mapped like :func:`send`'s."""
    length = upstream.headers.get("content-length", "")
    if not length.isdigit() or int(length) > BUFFERED_BODY:
        return None
    url = upstream.request.url
    where = f"{upstream.request.method} {url.scheme}://{url.host}"
    try:
        return b"".join([chunk async for chunk in upstream.aiter_raw()])
    except httpx.TimeoutException as exc:
        raise errors.UpstreamTimeout(f"{where}: the upstream API did not answer in time") from exc
    except httpx.TransportError as exc:
        raise errors.UpstreamUnreachable(
            f"{where}: the connection to the upstream API failed"
        ) from exc


@dataclass(frozen=True)
class ProxiedCall:
    """One proxied request as the audit log keeps it: never a header, query value or body."""

    environment_id: str
    actor: str
    auth_id: str
    method: str
    host: str
    path: str
    status: int
    seconds: float
    retried: bool
    at: datetime


def proxied_call(
    principal: Principal,
    auth_id: str,
    *,
    method: str,
    url: str,
    status: int,
    seconds: float,
    retried: bool,
    secrets: Iterable[str],
    at: datetime,
) -> ProxiedCall:
    """The audit entry of a request to ``url``: its host and path (no query; any stored value
    in the path redacted), status and duration."""
    target = httpx.URL(url)
    return ProxiedCall(
        environment_id=principal.environment_id,
        actor=principal.actor,
        auth_id=auth_id,
        method=method,
        host=target.host,
        path=redact(target.path, secrets),
        status=status,
        seconds=seconds,
        retried=retried,
        at=at,
    )


def audit_entry(call: ProxiedCall) -> AuditEntry:
    """The audit row of a proxied request (``authentication.proxied``)."""
    return AuditEntry(
        environment_id=call.environment_id,
        actor=call.actor,
        action=ACTION,
        target_type=authentications.TARGET,
        target_id=call.auth_id,
        detail={
            "method": call.method,
            "host": call.host,
            "path": call.path,
            "status": call.status,
            "duration_ms": round(call.seconds * 1000, 1),
            "retried": call.retried,
        },
        at=call.at,
    )
