"""Server metadata (RFC 8414 / OpenID discovery) filling an ``oauth2`` definition, and the
RFC 9207 ``iss`` checks it enables, against a loopback authorization server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from authbridge import errors
from authbridge.connectors.models import OAuth2Definition, parse_definition
from authbridge.http import OutboundClient
from authbridge.mechanisms import ClientConfig, Context
from authbridge.mechanisms.oauth2 import OAuth2Mechanism
from authbridge.mechanisms.oauth2_discovery import MetadataCache, discovered, metadata_cache
from tests.support.loopback import serve
from tests.support.oauth2_provider import OAuth2Provider

pytestmark = pytest.mark.anyio

CALLBACK = "https://bridge.example.test/auth/acme/callback"
mechanism = OAuth2Mechanism()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    metadata_cache.clear()
    yield
    metadata_cache.clear()


@pytest.fixture
def provider() -> OAuth2Provider:
    return OAuth2Provider()


@pytest.fixture
def base_url(provider: OAuth2Provider) -> Iterator[str]:
    with serve(provider.app) as url:
        yield url


def definition(**properties: Any) -> OAuth2Definition:
    found = parse_definition("oauth2", properties)
    assert isinstance(found, OAuth2Definition)
    return found


def context(client: OutboundClient, provider: OAuth2Provider, **changes: Any) -> Context:
    config = ClientConfig(client_id=provider.client_id, client_secret=provider.client_secret)
    values: dict[str, Any] = {"http": client, "config": config, "callback_url": CALLBACK}
    values["now"] = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    values.update(changes)
    return Context(**values)


async def sign_in_and_back(
    client: OutboundClient, provider: OAuth2Provider, found: OAuth2Definition, **query: str
) -> Any:
    """The whole round trip: sign-in URL, the provider's code, the callback with ``query``."""
    ctx = context(client, provider)
    sign_in = await mechanism.sign_in(found, ctx, scopes=None)
    code = provider.issue_code_for(sign_in.url)
    return await mechanism.signed_in(
        found,
        ctx,
        {"code": code, "state": sign_in.lookup, **query},
        redirect_uri=sign_in.redirect_uri,
        scopes=sign_in.scopes,
        secrets=sign_in.secrets,
    )


# --- the definition --------------------------------------------------------------------------


def test_an_issuer_or_a_discovery_url_is_enough_to_declare() -> None:
    assert definition(issuer="https://as.example.test").auth_url is None
    found = definition(discoveryUrl="https://as.example.test/.well-known/openid-configuration")
    assert found.discovery_url is not None
    with pytest.raises(ValueError, match="discovery_url"):
        definition(requestProfileInfo="https://as.example.test/me")
    with pytest.raises(ValueError, match="absolute http"):
        definition(discoveryUrl="/.well-known/openid-configuration")
    with pytest.raises(ValueError, match="no query or fragment"):
        definition(issuer="https://as.example.test/?tenant=1")


# --- endpoints from the metadata -------------------------------------------------------------


async def test_an_issuer_alone_finds_the_endpoints_and_connects(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(issuer=base_url, requestProfileInfo=f"{base_url}/me")

    result = await sign_in_and_back(client, provider, found, iss=base_url)

    assert result.credentials["access_token"] in provider.access_tokens
    assert len(provider.token_requests) == 1
    assert provider.metadata_requests == 1  # sign-in and callback share the cached document


async def test_the_authorization_url_is_the_metadatas_and_declared_values_win(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(discoveryUrl=f"{base_url}/.well-known/openid-configuration")
    request = await mechanism.authorization_request(found, context(client, provider), state="st-1")
    assert request.url.startswith(f"{base_url}/authorize?")

    declared = definition(
        discoveryUrl=f"{base_url}/.well-known/oauth-authorization-server",
        authUrl="https://elsewhere.example.test/consent",
    )
    request = await mechanism.authorization_request(
        declared, context(client, provider), state="st-1"
    )
    assert request.url.startswith("https://elsewhere.example.test/consent?")


async def test_client_credentials_and_refresh_use_the_metadatas_token_endpoint(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(issuer=base_url, grantType="client_credentials")
    result = await mechanism.connect(found, context(client, provider))
    assert result.credentials["access_token"] in provider.access_tokens

    code_grant = definition(issuer=base_url)
    provider.refresh_tokens.add("rt-1")
    refreshed = await mechanism.refresh(
        code_grant, context(client, provider, tokens={"refresh_token": "rt-1"})
    )
    assert refreshed.credentials["access_token"] in provider.access_tokens
    assert provider.metadata_requests == 1


async def test_the_metadata_is_cached_for_an_hour(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    now = [1000.0]
    cache = MetadataCache(ttl=3600, clock=lambda: now[0])
    found = definition(issuer=base_url)
    ctx = context(client, provider)

    filled, metadata = await discovered(found, ctx, cache=cache)
    await discovered(found, ctx, cache=cache)
    now[0] += 3599
    await discovered(found, ctx, cache=cache)
    assert provider.metadata_requests == 1
    now[0] += 2
    await discovered(found, ctx, cache=cache)
    assert provider.metadata_requests == 2

    assert metadata is not None
    assert metadata.issuer == base_url
    assert filled.auth_url == f"{base_url}/authorize"
    assert filled.request_access_token == f"{base_url}/token"
    assert filled.revocation == f"{base_url}/revoke"
    assert filled.issuer == base_url


async def test_revocation_uses_the_cached_metadatas_endpoint(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(issuer=base_url)
    ctx = context(client, provider, tokens={"access_token": "a-tok", "refresh_token": "r-tok"})
    await discovered(found, ctx)

    revocation = mechanism.revocation(found, ctx)

    assert revocation is not None
    assert revocation.url == f"{base_url}/revoke"


# --- metadata that cannot be used ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_metadata_names_the_url(
    client: OutboundClient, provider: OAuth2Provider
) -> None:
    issuer = f"http://127.0.0.1:{_closed_port()}"
    found = definition(issuer=issuer)
    with pytest.raises(errors.ProviderUnavailable) as caught:
        await mechanism.authorization_request(found, context(client, provider), state="s")
    assert f"{issuer}/.well-known/oauth-authorization-server" in caught.value.message
    assert "could not reach" in caught.value.message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"response_types_supported": None}, '"response_types_supported" is required'),
        ({"authorization_endpoint": None}, '"authorization_endpoint" is required'),
        ({"issuer": "https://evil.example.test"}, "RFC 8414 §3.3"),
    ],
)
async def test_invalid_metadata_names_the_url_and_reason(
    client: OutboundClient,
    provider: OAuth2Provider,
    base_url: str,
    changes: dict[str, Any],
    reason: str,
) -> None:
    provider.metadata.update(changes)
    found = definition(issuer=base_url)
    with pytest.raises(errors.ProviderError) as caught:
        await mechanism.authorization_request(found, context(client, provider), state="s")
    assert f"{base_url}/.well-known/oauth-authorization-server" in caught.value.message
    assert reason in caught.value.message
    assert provider.metadata_requests == 1
    # A failure is not cached: the next connect asks again.
    with pytest.raises(errors.ProviderError):
        await mechanism.authorization_request(found, context(client, provider), state="s")
    assert provider.metadata_requests == 2


async def test_a_missing_document_names_the_url_and_status(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(discoveryUrl=f"{base_url}/nowhere/.well-known/openid-configuration")
    with pytest.raises(errors.ProviderError, match="HTTP 404") as caught:
        await mechanism.authorization_request(found, context(client, provider), state="s")
    assert f"{base_url}/nowhere/.well-known/openid-configuration" in caught.value.message


async def test_an_openid_document_must_name_the_issuer_its_url_belongs_to(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    provider.metadata["issuer"] = f"{base_url}/other"
    found = definition(discoveryUrl=f"{base_url}/.well-known/openid-configuration")
    with pytest.raises(errors.ProviderError, match=r"RFC 8414 §3\.3"):
        await mechanism.authorization_request(found, context(client, provider), state="s")


# --- the callback's iss (RFC 9207) -----------------------------------------------------------


async def test_the_metadatas_issuer_is_checked_at_the_callback(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(discoveryUrl=f"{base_url}/.well-known/oauth-authorization-server")
    with pytest.raises(errors.ProviderError, match="unexpected issuer"):
        await sign_in_and_back(client, provider, found, iss="https://evil.example.test")
    assert provider.token_requests == []
    result = await sign_in_and_back(client, provider, found, iss=base_url)
    assert result.credentials["access_token"] in provider.access_tokens
    # The server does not announce RFC 9207 support: a missing iss is accepted.
    await sign_in_and_back(client, provider, found)


async def test_a_missing_iss_is_refused_when_the_metadata_announces_it(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    provider.metadata["authorization_response_iss_parameter_supported"] = True
    found = definition(issuer=base_url)
    with pytest.raises(errors.ProviderError, match="has no 'iss' parameter"):
        await sign_in_and_back(client, provider, found)
    assert provider.token_requests == []
    await sign_in_and_back(client, provider, found, iss=base_url)


async def test_an_iss_with_no_issuer_known_is_refused(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(authUrl=f"{base_url}/authorize", requestAccessToken=f"{base_url}/token")
    with pytest.raises(errors.ProviderError, match="declares none to compare it with"):
        await sign_in_and_back(client, provider, found, iss=base_url)
    assert provider.token_requests == []
    assert provider.metadata_requests == 0  # nothing asked for discovery
    result = await sign_in_and_back(client, provider, found)
    assert result.credentials["access_token"] in provider.access_tokens
