from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx
import pytest
from starlette.responses import RedirectResponse

from authbridge.errors import EgressDenied
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.http.policy import EgressGuardBackend
from tests.support.loopback import RecordingApp, port_of

pytestmark = pytest.mark.anyio

DENIED_BY_DEFAULT = [
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fd00::1", "private"),
    ("::ffff:192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),
    ("::ffff:169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "reserved"),
    ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"),
]


@pytest.mark.parametrize(("address", "rule"), DENIED_BY_DEFAULT)
def test_default_policy_denies_internal_addresses(address: str, rule: str) -> None:
    with pytest.raises(EgressDenied) as raised:
        EgressPolicy().check_address(address, "internal.example")
    assert rule in str(raised.value)
    assert "'internal.example'" in str(raised.value)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_default_policy_allows_public_addresses(address: str) -> None:
    EgressPolicy().check_address(address, "public.example")


def test_check_address_accepts_ip_objects() -> None:
    with pytest.raises(EgressDenied):
        EgressPolicy().check_address(ipaddress.ip_address("127.0.0.1"))


def test_allow_loopback_allows_loopback_only() -> None:
    policy = EgressPolicy(allow_loopback=True)
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        policy.check_address(address)
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0"):
        with pytest.raises(EgressDenied):
            policy.check_address(address)


def test_allow_private_allows_private_ranges_but_not_metadata() -> None:
    policy = EgressPolicy(allow_private=True)
    for address in ("10.0.0.1", "192.168.1.1", "fd00::1", "100.64.0.1"):
        policy.check_address(address)
    for address in ("127.0.0.1", "169.254.169.254"):
        with pytest.raises(EgressDenied):
            policy.check_address(address)


def test_allowed_networks_override_every_rule() -> None:
    policy = EgressPolicy(allowed_networks=(ipaddress.ip_network("169.254.169.254/32"),))
    policy.check_address("169.254.169.254")
    with pytest.raises(EgressDenied):
        policy.check_address("169.254.169.253")


@pytest.mark.parametrize(
    "host", ["127.1", "0", "2130706433", "0x7f000001", "0x7f.1", "10.1", "::1", "::ffff:10.0.0.1"]
)
def test_known_addresses_read_a_spelling_as_the_system_resolver_does(host: str) -> None:
    resolved = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, 80)}
    assert set(EgressPolicy().known_addresses(host) or ()) == resolved


def test_known_addresses_of_localhost_names_and_overrides_need_no_lookup() -> None:
    policy = EgressPolicy(resolve={"hooks.internal": "10.0.0.7"})
    loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    for name in ("localhost", "LOCALHOST.", "app.localhost"):
        assert policy.known_addresses(name) == loopback
    assert policy.known_addresses("hooks.internal") == [ipaddress.ip_address("10.0.0.7")]
    assert policy.known_addresses("hooks.example.com") is None  # only DNS can tell
    assert policy.host_denial_reason("hooks.example.com") is None
    assert (
        policy.host_denial_reason("hooks.internal")
        == "10.0.0.7 (written 'hooks.internal'), a private address"
    )
    assert policy.host_denial_reason("2130706433") == (
        "127.0.0.1 (written '2130706433'), a loopback address"
    )
    assert EgressPolicy(allow_loopback=True).host_denial_reason("127.1") is None


def test_resolve_overrides_match_exact_and_wildcard_names() -> None:
    policy = EgressPolicy(
        resolve={"*.freshdesk.test": "127.0.0.1", "API.Example.test": "127.0.0.2"}
    )
    assert policy.override_for("acme.freshdesk.test") == "127.0.0.1"
    assert policy.override_for("a.b.FRESHDESK.test.") == "127.0.0.1"
    assert policy.override_for("api.example.test") == "127.0.0.2"
    assert policy.override_for("freshdesk.test") is None
    assert policy.override_for("evilfreshdesk.test") is None
    assert policy.override_for("other.test") is None


def test_resolve_override_must_be_an_address() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        EgressPolicy(resolve={"api.test": "not-an-ip"})


async def test_resolve_checked_checks_the_override() -> None:
    policy = EgressPolicy(resolve={"metadata.test": "169.254.169.254"})
    with pytest.raises(EgressDenied, match=r"'metadata\.test'.*link-local"):
        await policy.resolve_checked("metadata.test", 80)
    allowed = EgressPolicy(allow_loopback=True, resolve={"api.test": "127.0.0.1"})
    assert await allowed.resolve_checked("api.test", 80) == ["127.0.0.1"]


async def test_resolve_checked_uses_the_system_resolver() -> None:
    with pytest.raises(EgressDenied, match=r"'localhost'.*loopback"):
        await EgressPolicy().resolve_checked("localhost", 80)


class _Refused(Exception):
    pass


class SpyBackend(httpcore.AsyncNetworkBackend):
    """Records connection attempts; its stream records the TLS server name, then refuses."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []
        self.tls_names: list[str | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        spy = self

        class Stream(httpcore.AsyncNetworkStream):
            async def start_tls(
                self,
                ssl_context: ssl.SSLContext,
                server_hostname: str | None = None,
                timeout: float | None = None,  # noqa: ASYNC109
            ) -> httpcore.AsyncNetworkStream:
                spy.tls_names.append(server_hostname)
                raise _Refused

            async def aclose(self) -> None:
                pass

        return Stream()


async def test_guard_connects_to_the_checked_address_and_keeps_the_tls_name() -> None:
    spy = SpyBackend()
    policy = EgressPolicy(allow_loopback=True, resolve={"*.freshdesk.test": "127.0.0.1"})
    async with httpcore.AsyncConnectionPool(
        network_backend=EgressGuardBackend(policy, spy)
    ) as pool:
        with pytest.raises(_Refused):
            await pool.request("GET", "https://acme.freshdesk.test:8443/api")
    assert spy.connected == [("127.0.0.1", 8443)]
    assert spy.tls_names == ["acme.freshdesk.test"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://metadata.test/",
    ],
)
async def test_guard_refuses_before_connecting(url: str) -> None:
    spy = SpyBackend()
    policy = EgressPolicy(resolve={"metadata.test": "169.254.169.254"})
    async with httpcore.AsyncConnectionPool(
        network_backend=EgressGuardBackend(policy, spy)
    ) as pool:
        with pytest.raises(EgressDenied):
            await pool.request("GET", url)
    assert spy.connected == []


async def test_guard_refuses_unix_sockets() -> None:
    with pytest.raises(EgressDenied):
        await EgressGuardBackend(EgressPolicy(allow_loopback=True)).connect_unix_socket("/tmp/x")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "localhost",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "[::ffff:127.0.0.1]",
        "metadata.test",
    ],
)
async def test_client_with_default_policy_refuses_internal_hosts(
    host: str, loopback: Callable[..., str]
) -> None:
    app = RecordingApp()
    port = port_of(loopback(app))
    policy = EgressPolicy(resolve={"metadata.test": "169.254.169.254"})
    async with OutboundClient(policy, timeout=2.0) as client:
        with pytest.raises(EgressDenied):
            await client.get(f"http://{host}:{port}/")
    assert app.requests == []


async def test_client_reaches_loopback_when_allowed(loopback: Callable[..., str]) -> None:
    app = RecordingApp()
    port = port_of(loopback(app))
    policy = EgressPolicy(allow_loopback=True, resolve={"*.freshdesk.test": "127.0.0.1"})
    async with OutboundClient(policy, timeout=5.0) as client:
        response = await client.get(f"http://acme.freshdesk.test:{port}/ping")
    assert response.status_code == 200
    assert [(r.path, r.headers["host"]) for r in app.requests] == [
        ("/ping", f"acme.freshdesk.test:{port}")
    ]


async def test_each_redirect_hop_is_checked(loopback: Callable[..., str]) -> None:
    evil = RecordingApp()
    evil_url = loopback(evil, host="127.0.0.2")
    legit = RecordingApp(lambda received: RedirectResponse(f"{evil_url}/steal", 302))
    legit_url = loopback(legit)
    policy = EgressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    async with OutboundClient(policy, timeout=5.0) as client:
        with pytest.raises(EgressDenied, match=r"127\.0\.0\.2 is a loopback"):
            await client.get(f"{legit_url}/start")
    assert len(legit.requests) == 1
    assert evil.requests == []


async def test_injected_transport_is_still_checked() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    transport = httpx.MockTransport(handler)
    policy = EgressPolicy(allow_loopback=True, resolve={"api.test": "127.0.0.1"})
    async with OutboundClient(policy, transport=transport) as client:
        assert (await client.get("http://api.test/ok")).status_code == 200
        with pytest.raises(EgressDenied):
            await client.get("http://169.254.169.254/latest")
    async with OutboundClient(transport=transport) as client:
        with pytest.raises(EgressDenied):
            await client.get("http://127.0.0.1/")
    assert seen == ["http://api.test/ok"]
