"""Which addresses outbound requests may reach, and the network backend that enforces it.

:class:`EgressGuardBackend` resolves each host itself, checks every address with
:meth:`EgressPolicy.check_address`, and connects only to an address it checked, so a name that
resolves to an internal address (or is re-bound to one between two lookups) is refused.
:class:`GuardedTransport` is httpx's transport on that backend; :class:`HostCheckingTransport`
applies the same check in front of an injected transport (tests).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import httpcore
import httpx

from authbridge.errors import EgressDenied

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_net = ipaddress.ip_network

UNSPECIFIED = (_net("0.0.0.0/8"), _net("::/128"))
LOOPBACK = (_net("127.0.0.0/8"), _net("::1/128"))
LINK_LOCAL = (_net("169.254.0.0/16"), _net("fe80::/10"))
PRIVATE = (
    _net("10.0.0.0/8"),
    _net("172.16.0.0/12"),
    _net("192.168.0.0/16"),
    _net("fc00::/7"),
)
CARRIER_GRADE_NAT = (_net("100.64.0.0/10"),)
MULTICAST = (_net("224.0.0.0/4"), _net("ff00::/8"))


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


NAT64 = _net("64:ff9b::/96")


#: What a host map may never name, however explicitly: the rules that no permission lifts.
_NEVER_MAPPED = ("an unspecified address", "a link-local address", "a multicast address")


@dataclass(frozen=True)
class HostTarget:
    """Where a mapped host is reached: an IP address, and a port replacing the URL's if set."""

    address: str
    port: int | None = None

    def __str__(self) -> str:
        shown = f"[{self.address}]" if ":" in self.address else self.address
        return shown if self.port is None else f"{shown}:{self.port}"


def _pattern(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _lookup(table: Mapping[str, Any], host: str) -> Any:
    """The entry of ``host`` in a table of names and ``*.`` wildcards (exact names first)."""
    name = host.lower().rstrip(".")
    if name in table:
        return table[name]
    for pattern, entry in table.items():
        if pattern.startswith("*.") and name.endswith(pattern[1:]) and name != pattern[2:]:
            return entry
    return None


_HOST_NAME = re.compile(
    r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*"
)
_TARGET = re.compile(
    r"\[(?P<v6>[^\]]+)\](?::(?P<v6port>[^:]*))?|(?P<v4>[^:]+)(?::(?P<port>[^:]*))?"
)


def parse_host_map(text: str) -> dict[str, HostTarget]:
    """Read ``acme.freshdesk.com=127.0.0.1:8443,*.example.test=10.0.0.5``: comma-separated
    ``host=address[:port]`` entries (``[v6]:port`` for IPv6), a host or a ``*.`` wildcard
    matching its subdomains, like curl's ``--connect-to``.

    Raises :class:`ValueError` naming the entry that cannot work.
    """
    table: dict[str, HostTarget] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        host, equals, target = entry.partition("=")
        name = _pattern(host)
        if not equals or not _HOST_NAME.fullmatch(name):
            raise ValueError(
                f"{entry.strip()!r} is not host=address[:port] (a host name or *.domain)"
            )
        if name in table:
            raise ValueError(f"{name!r} is mapped twice")
        match = _TARGET.fullmatch(target.strip())
        address = match and (match["v6"] or match["v4"])
        port_text = match and (match["v6port"] if match["v6"] else match["port"])
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            raise ValueError(
                f"{name!r} must map to an IP address, optionally with a port "
                f"(127.0.0.1:8443, [::1]:8443), got {target.strip()!r}"
            ) from None
        port: int | None = None
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{name!r} maps to a port that is not 1-65535: {port_text!r}")
            port = int(port_text)
        table[name] = HostTarget(str(ip), port)
    return table


def _plain(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), else the address.

    ``::ffff:127.0.0.1`` reaches 127.0.0.1, so it is judged as 127.0.0.1.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.scope_id is not None:
        address = ipaddress.IPv6Address(address.compressed.split("%", 1)[0])
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return address


@dataclass(frozen=True)
class EgressPolicy:
    """The addresses outbound requests may reach; public addresses only by default.

    ``allowed_networks`` are always reachable (they override every rule). ``resolve`` maps a host
    name, or a wildcard ``*.example.test`` matching its subdomains, to a fixed IP address, like
    curl's ``--resolve``; the address is still checked.

    ``host_map`` (``AUTHBRIDGE_HOST_MAP``, :func:`parse_host_map`) maps names the same way to
    an address and optional port, like curl's ``--connect-to``: the URL, its ``Host`` header and
    the TLS server name stay the original host. It comes before ``resolve``, and it is the
    operator's own permission for the address it names (loopback, private, carrier-grade NAT)
    when reached through the map, never for unspecified, link-local (cloud metadata) or
    multicast addresses, which it may not name.
    """

    allow_loopback: bool = False
    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    host_map: Mapping[str, HostTarget] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def __post_init__(self) -> None:
        table = {}
        for host, address in self.resolve.items():
            ipaddress.ip_address(address)  # a ValueError names the bad address
            table[host.lower().rstrip(".")] = address
        object.__setattr__(self, "resolve", MappingProxyType(table))
        object.__setattr__(self, "allowed_networks", tuple(self.allowed_networks))
        mapped = {}
        for host, target in self.host_map.items():
            reason = self.denial_reason(ipaddress.ip_address(target.address), mapped=True)
            if reason is not None:
                raise ValueError(f"{host!r} may not be mapped to {target.address}, {reason}")
            mapped[_pattern(host)] = target
        object.__setattr__(self, "host_map", MappingProxyType(mapped))

    def mapped_target(self, host: str) -> HostTarget | None:
        """Where ``host_map`` sends ``host``, if anywhere (exact names before wildcards)."""
        target: HostTarget | None = _lookup(self.host_map, host)
        return target

    def override_for(self, host: str) -> str | None:
        """The fixed address ``host_map`` or ``resolve`` gives ``host``, if any (exact names
        before wildcards)."""
        target = self.mapped_target(host)
        if target is not None:
            return target.address
        address: str | None = _lookup(self.resolve, host)
        return address

    def denial_reason(self, address: IPAddress, *, mapped: bool = False) -> str | None:
        """Why ``address`` may not be contacted, or None when it may (``mapped``: reached
        through the operator's ``host_map``, which permits loopback and private addresses)."""
        plain = _plain(address)
        if _within(plain, self.allowed_networks) or _within(address, self.allowed_networks):
            return None
        if mapped:
            reason = self.denial_reason(address)
            return reason if reason is not None and reason.startswith(_NEVER_MAPPED) else None
        if _within(plain, UNSPECIFIED):
            return "an unspecified address"
        if _within(plain, LOOPBACK):
            return None if self.allow_loopback else "a loopback address"
        if _within(plain, LINK_LOCAL):
            return "a link-local address (this includes cloud metadata services)"
        if _within(plain, MULTICAST):
            return "a multicast address"
        if _within(plain, PRIVATE):
            return None if self.allow_private else "a private address"
        if _within(plain, CARRIER_GRADE_NAT):
            return None if self.allow_private else "a carrier-grade NAT address"
        if not plain.is_global:
            return "a reserved or special-purpose address"
        return None

    def known_addresses(self, host: str) -> list[IPAddress] | None:
        """The addresses ``host`` reaches without asking DNS, or ``None`` for a name only DNS
        can answer.

        An address in any spelling the system resolver takes (``127.1``, ``0``,
        ``2130706433``, ``0x7f000001``, ``::ffff:127.0.0.1``) is read by the resolver itself
        (``AI_NUMERICHOST``: no lookup), as :meth:`resolve_checked` would read it; ``localhost``
        and the names under it are loopback (RFC 6761, section 6.3); a name in ``resolve`` has
        its fixed address.
        """
        name = host.strip("[]").lower()
        override = self.override_for(name)
        if override is not None:
            return [ipaddress.ip_address(override)]
        bare = name.rstrip(".")
        if bare == "localhost" or bare.endswith(".localhost"):
            return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
        try:  # a zone (fe80::1%25eth0 in a URL) names an interface, not another address
            infos = socket.getaddrinfo(name.split("%", 1)[0], None, flags=socket.AI_NUMERICHOST)
        except (OSError, UnicodeError, ValueError):
            return None
        found = dict.fromkeys(ipaddress.ip_address(str(info[4][0])) for info in infos)
        return list(found) or None

    def host_denial_reason(self, host: str) -> str | None:
        """Why a request to ``host`` would be refused, as far as that is known without DNS
        (see :meth:`known_addresses`): ``"127.0.0.1 (written '127.1'), a loopback address"``;
        ``None`` when it may be reached, or when only DNS can tell (checked when sent)."""
        mapped = self.mapped_target(host.strip("[]")) is not None
        for address in self.known_addresses(host) or ():
            reason = self.denial_reason(address, mapped=mapped)
            if reason is not None:
                shown = _plain(address)
                written = "" if str(shown) == host.strip("[]") else f" (written '{host}')"
                return f"{shown}{written}, {reason}"
        return None

    def check_address(
        self, address: IPAddress | str, host: str | None = None, *, mapped: bool = False
    ) -> None:
        """Raise :class:`EgressDenied` unless ``address`` (resolved from ``host``, through the
        host map when ``mapped``) is allowed."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        reason = self.denial_reason(ip, mapped=mapped)
        if reason is not None:
            target = f" to '{host}'" if host is not None and host != str(ip) else ""
            raise EgressDenied(
                f"outbound request{target} refused: {ip} is {reason}, which the egress policy"
                " does not allow"
            )

    async def resolve_checked(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and check every address; return the addresses to connect to.

        Raises :class:`EgressDenied` when any address is refused, and :class:`OSError`
        (``socket.gaierror``) when the name does not resolve.
        """
        return [address for address, _ in await self.connect_targets(host, port)]

    async def connect_targets(self, host: str, port: int) -> list[tuple[str, int]]:
        """Like :meth:`resolve_checked`, with the port to connect to: the host map's, if it
        gives one, else ``port``."""
        target = self.mapped_target(host)
        if target is not None:
            self.check_address(target.address, host, mapped=True)
            return [(target.address, port if target.port is None else target.port)]
        override = self.override_for(host)
        if override is not None:
            addresses = [override]
        else:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(address, host)
        return [(address, port) for address in addresses]


class EgressGuardBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks, then connects to the checked address."""

    def __init__(
        self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                targets = await self._policy.connect_targets(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving '{host}' timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve '{host}'") from exc
        failure: httpcore.ConnectError | None = None
        for address, target_port in targets:
            try:
                return await self._inner.connect_tcp(
                    address, target_port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None  # connect_targets never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("outbound requests over a unix socket are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on an :class:`EgressGuardBackend`."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        # Loading the CA bundle into a context costs ~20 ms: one context, made once, serves
        # both the pool httpx builds here and ours (and every shard of a ShardedTransport).
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=EgressGuardBackend(policy),
        )


def outbound_ssl_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """The outbound client's TLS context: certifi's CAs (httpx's default), plus the PEM
    certificates in ``ca_bundle`` (``AUTHBRIDGE_CA_BUNDLE``) when given.

    Raises :class:`OSError` or :class:`ssl.SSLError` for a bundle that cannot be read.
    """
    context = httpx.create_ssl_context(trust_env=False)
    if ca_bundle is not None:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class ShardedTransport(httpx.AsyncBaseTransport):
    """``shards`` :class:`GuardedTransport` pools side by side, each request sent through the
    one with the fewest requests under way (until its response is closed).

    httpcore 1.0's pool costs CPU in proportion to the requests *and* connections it holds for
    every request it assigns (it scans them all, polling each idle socket): through one pool,
    32 concurrent requests cost 2.3 ms of CPU each and the proxy served 80 requests/s; through
    8 pools, 0.5 ms each (httpx issue #3215). The connection limit is shared out among them.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        limits: httpx.Limits,
        shards: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        per_shard = httpx.Limits(
            max_connections=-(-(limits.max_connections or 100) // shards),
            max_keepalive_connections=-(-(limits.max_keepalive_connections or 100) // shards),
            keepalive_expiry=limits.keepalive_expiry,
        )
        context = ssl_context or outbound_ssl_context()
        self._shards = [
            GuardedTransport(policy, limits=per_shard, ssl_context=context) for _ in range(shards)
        ]
        self._load = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._load.__getitem__)
        self._load[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._load[index] -= 1
            raise
        response.stream = _Released(response.stream, lambda: self._release(index))
        return response

    def _release(self, index: int) -> None:
        self._load[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Released(httpx.AsyncByteStream):
    """A response body that calls ``release`` once, when it is closed."""

    def __init__(self, inner: Any, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await self._inner.aclose()
        finally:
            if release is not None:
                release()


class HostCheckingTransport(httpx.AsyncBaseTransport):
    """Wraps an injected transport (tests): each request's host is resolved and checked first."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: EgressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            await self._policy.resolve_checked(request.url.host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"could not resolve '{request.url.host}'") from exc
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
