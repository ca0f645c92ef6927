"""AUTHBRIDGE_HOST_MAP and AUTHBRIDGE_CA_BUNDLE: a provider URL on a made-up host reaches a
test server over verified HTTPS.

The server is a real HTTPS loopback server whose certificate, for ``acme.freshdesk.test``, is
signed by a test CA made with ``cryptography``; nothing resolves that name but the host map.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from authbridge.connectors.request_models import RequestSpec
from authbridge.errors import EgressDenied, InvalidInput, ProviderUnavailable
from authbridge.http import EgressPolicy, HostTarget, OutboundClient, parse_host_map
from authbridge.runtime import CA_BUNDLE_ENV_VAR, HOST_MAP_ENV_VAR, Settings, open_bridge
from authbridge.storage import Database
from authbridge.vault import load_or_create
from tests.support.loopback import RecordingApp, port_of, serve
from tests.support.tls import TestCA

pytestmark = pytest.mark.anyio

HOST = "acme.freshdesk.test"


@dataclass(frozen=True)
class Provider:
    app: RecordingApp
    port: int
    ca: TestCA


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    """An HTTPS server on 127.0.0.1 with a certificate for acme.freshdesk.test from a test CA."""
    ca = TestCA.create(tmp_path / "ca")
    app = RecordingApp()
    with serve(app, tls=ca.issue(HOST)) as base_url:
        yield Provider(app, port_of(base_url), ca)


def spec(url: str) -> RequestSpec:
    return RequestSpec.model_validate({"url": url})


def causes(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__ or current.__context__


def settings(**environ: str) -> Settings:
    return Settings.from_env({"AUTHBRIDGE_HOME": "/nonexistent", **environ})


async def send(configured: Settings, url: str) -> Any:
    policy = configured.egress_policy()  # no --allow-loopback: the map is the permission
    async with OutboundClient(policy, timeout=5.0, ca_bundle=configured.ca_bundle) as client:
        return await client.execute(spec(url), {"domain": "acme"})


async def test_a_mapped_host_reaches_the_test_server_and_its_certificate_verifies(
    provider: Provider,
) -> None:
    configured = settings(
        AUTHBRIDGE_HOST_MAP=f"{HOST}=127.0.0.1",
        AUTHBRIDGE_CA_BUNDLE=str(provider.ca.cert_file),
    )
    answer = await send(configured, f"https://{{{{domain}}}}.freshdesk.test:{provider.port}/api")
    assert answer.status_code == 200
    assert answer.body == {"ok": True}
    [received] = provider.app.requests
    assert received.path == "/api"
    assert received.headers["host"] == f"{HOST}:{provider.port}"  # the original host


async def test_a_mapped_port_replaces_the_urls_and_a_wildcard_matches(
    provider: Provider,
) -> None:
    configured = settings(
        AUTHBRIDGE_HOST_MAP=f"*.freshdesk.test=127.0.0.1:{provider.port}",
        AUTHBRIDGE_CA_BUNDLE=str(provider.ca.cert_file),
    )
    answer = await send(configured, "https://{{domain}}.freshdesk.test/api/me")
    assert answer.status_code == 200
    [received] = provider.app.requests
    assert received.path == "/api/me"
    assert received.headers["host"] == HOST  # as in the URL (port 443), as curl sends it


async def test_without_the_ca_bundle_the_test_certificate_is_refused(provider: Provider) -> None:
    configured = settings(AUTHBRIDGE_HOST_MAP=f"{HOST}=127.0.0.1:{provider.port}")
    with pytest.raises(ProviderUnavailable, match="could not reach the provider") as raised:
        await send(configured, f"https://{HOST}/api")
    assert any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes(raised.value))
    assert provider.app.requests == []


async def test_a_certificate_for_another_name_is_refused(provider: Provider) -> None:
    """The TLS server name stays the URL's host: a map does not make the certificate fit."""
    configured = settings(
        AUTHBRIDGE_HOST_MAP=f"other.freshdesk.test=127.0.0.1:{provider.port}",
        AUTHBRIDGE_CA_BUNDLE=str(provider.ca.cert_file),
    )
    with pytest.raises(ProviderUnavailable) as raised:
        await send(configured, "https://other.freshdesk.test/api")
    verify = [c for c in causes(raised.value) if isinstance(c, ssl.SSLCertVerificationError)]
    assert verify
    assert "Hostname mismatch" in str(verify[0])


async def test_without_the_map_the_name_does_not_resolve(provider: Provider) -> None:
    configured = settings(AUTHBRIDGE_CA_BUNDLE=str(provider.ca.cert_file))
    with pytest.raises(ProviderUnavailable) as raised:
        await send(configured, f"https://{HOST}:{provider.port}/api")
    assert any("could not resolve" in str(cause) for cause in causes(raised.value))
    assert provider.app.requests == []


async def test_the_map_permits_only_the_hosts_it_maps() -> None:
    policy = settings(
        AUTHBRIDGE_HOST_MAP="*.example.test=10.0.0.5,api.test=127.0.0.1"
    ).egress_policy()
    assert await policy.connect_targets("a.example.test", 443) == [("10.0.0.5", 443)]
    assert await policy.resolve_checked("api.test", 80) == ["127.0.0.1"]
    assert policy.host_denial_reason("api.test") is None
    with pytest.raises(EgressDenied, match="loopback"):  # not mapped: the policy as before
        await policy.resolve_checked("127.0.0.1", 80)
    assert policy.host_denial_reason("10.0.0.5") == "10.0.0.5, a private address"


def test_a_map_never_names_metadata_unspecified_or_multicast_addresses() -> None:
    for address in ("169.254.169.254", "0.0.0.0", "224.0.0.1", "[fe80::1]"):
        with pytest.raises(ValueError, match="may not be mapped"):
            EgressPolicy(host_map=parse_host_map(f"api.test={address}"))
        with pytest.raises(InvalidInput, match=HOST_MAP_ENV_VAR):
            settings(AUTHBRIDGE_HOST_MAP=f"api.test={address}")


def test_host_map_entries_are_parsed() -> None:
    assert parse_host_map(
        " Acme.Freshdesk.com.=127.0.0.1:8443, *.example.test=10.0.0.5 ,v6.test=[::1]:9,"
    ) == {
        "acme.freshdesk.com": HostTarget("127.0.0.1", 8443),
        "*.example.test": HostTarget("10.0.0.5"),
        "v6.test": HostTarget("::1", 9),
    }
    assert parse_host_map("") == {}
    assert settings().host_map == {}
    assert settings().ca_bundle is None
    assert str(HostTarget("::1", 9)) == "[::1]:9"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("acme.test", "is not host=address"),
        ("=127.0.0.1", "is not host=address"),
        ("acme .test=127.0.0.1", "is not host=address"),
        ("a.*.test=127.0.0.1", "is not host=address"),
        ("acme.test=not-an-ip", "must map to an IP address"),
        ("acme.test=::1", "must map to an IP address"),
        ("acme.test=127.0.0.1:0", "not 1-65535"),
        ("acme.test=127.0.0.1:99999", "not 1-65535"),
        ("acme.test=127.0.0.1:https", "not 1-65535"),
        ("acme.test=127.0.0.1,ACME.test=10.0.0.1", "mapped twice"),
    ],
)
def test_a_bad_host_map_is_refused_naming_the_variable(value: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        settings(AUTHBRIDGE_HOST_MAP=value)
    assert str(raised.value).startswith(f"{HOST_MAP_ENV_VAR} must be host=address[:port]")
    assert reason in str(raised.value)
    assert raised.value.field == HOST_MAP_ENV_VAR


def test_a_bad_ca_bundle_is_refused_naming_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(InvalidInput, match=f"{CA_BUNDLE_ENV_VAR} .*No such file") as raised:
        settings(AUTHBRIDGE_CA_BUNDLE=str(missing))
    assert raised.value.field == CA_BUNDLE_ENV_VAR
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(InvalidInput, match=f"{CA_BUNDLE_ENV_VAR} .*no PEM certificate"):
        settings(AUTHBRIDGE_CA_BUNDLE=str(garbage))
    good = TestCA.create(tmp_path / "ca").cert_file
    assert settings(AUTHBRIDGE_CA_BUNDLE=str(good)).ca_bundle == good


async def test_the_bridge_client_uses_the_settings(provider: Provider, tmp_path: Path) -> None:
    """The server's outbound client (open_bridge) is built with the map and the bundle."""
    configured = settings(
        AUTHBRIDGE_HOME=str(tmp_path / "home"),
        AUTHBRIDGE_HOST_MAP=f"{HOST}=127.0.0.1:{provider.port}",
        AUTHBRIDGE_CA_BUNDLE=str(provider.ca.cert_file),
    )
    keyring, _ = load_or_create(tmp_path / "keys.json")
    database = Database(f"sqlite:///{tmp_path / 'authbridge.db'}")
    try:
        bridge = open_bridge(configured, keyring, database, public_url="http://127.0.0.1:8000")
        async with bridge.http as client:
            answer = await client.execute(spec(f"https://{HOST}/api"), {})
    finally:
        database.dispose()
    assert answer.body == {"ok": True}
