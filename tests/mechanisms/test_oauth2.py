"""The ``oauth2`` engine against a loopback authorization server: authorization URL, code
exchange, profile, refresh and client credentials, and the callback checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from authbridge import errors
from authbridge.connectors.models import OAuth2Definition, parse_definition
from authbridge.connectors.request_models import RequestSpec
from authbridge.http import OutboundClient
from authbridge.mechanisms import ClientConfig, Context, DefinedRevocation, get_mechanism
from authbridge.mechanisms.oauth2 import OAuth2Mechanism, check_callback
from authbridge.mechanisms.oauth2_tokens import Tokens
from tests.support.loopback import serve
from tests.support.oauth2_provider import OAuth2Provider

pytestmark = pytest.mark.anyio

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
ISSUER = "https://as.example.test"
CALLBACK = "https://bridge.example.test/auth/acme/callback"
mechanism = OAuth2Mechanism()


@pytest.fixture
def provider() -> OAuth2Provider:
    return OAuth2Provider()


@pytest.fixture
def base_url(provider: OAuth2Provider) -> Iterator[str]:
    with serve(provider.app) as url:
        yield url


def definition(base_url: str = "https://as.example.test", **properties: Any) -> OAuth2Definition:
    raw: dict[str, Any] = {
        "authUrl": f"{base_url}/authorize",
        "requestAccessToken": f"{base_url}/token",
        "requestProfileInfo": f"{base_url}/me",
    }
    raw.update(properties)
    found = parse_definition("oauth2", raw)
    assert isinstance(found, OAuth2Definition)
    return found


def context(
    client: OutboundClient, provider: OAuth2Provider | None = None, **changes: Any
) -> Context:
    provider = provider or OAuth2Provider()
    config = ClientConfig(client_id=provider.client_id, client_secret=provider.client_secret)
    values: dict[str, Any] = {"http": client, "now": NOW, "config": config}
    values["callback_url"] = CALLBACK
    values.update(changes)
    return Context(**values)


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def connect_through_code(
    client: OutboundClient, provider: OAuth2Provider, found: OAuth2Definition
) -> Any:
    ctx = context(client, provider)
    request = await mechanism.authorization_request(found, ctx, state="st-1")
    code = provider.issue_code_for(request.url)
    return await mechanism.exchange_code(found, ctx, code=code, code_verifier=request.code_verifier)


# --- authorization request -------------------------------------------------------------------


async def test_authorization_url_has_challenge_but_never_the_verifier(
    client: OutboundClient,
) -> None:
    found = definition(scope=["read", "write"])
    request = await mechanism.authorization_request(found, context(client), state="st-1")

    query = query_of(request.url)
    assert request.code_verifier is not None
    assert request.code_verifier not in request.url
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["client-123"]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["state"] == ["st-1"]
    assert query["scope"] == ["read,write"]
    assert request.redirect_uri == CALLBACK
    assert request.code_verifier not in repr(request)


async def test_scope_delimiter_and_configured_scopes(client: OutboundClient) -> None:
    found = definition(scope=["openid", "email"], scopeDelimiter=" ")
    by_definition = await mechanism.authorization_request(found, context(client), state="s")
    config = ClientConfig(client_id="c", scopes=("a", "b"))
    by_config = await mechanism.authorization_request(
        found, context(client, config=config), state="s"
    )
    given = await mechanism.authorization_request(found, context(client), state="s", scopes=["x"])

    assert query_of(by_definition.url)["scope"] == ["openid email"]
    assert "scope=openid+email" in by_definition.url
    assert query_of(by_config.url)["scope"] == ["a b"]
    assert query_of(given.url)["scope"] == ["x"]


async def test_pkce_can_be_disabled_and_extra_parameters_added(client: OutboundClient) -> None:
    found = definition(pkce=False, authorizationParams={"access_type": "offline"})
    request = await mechanism.authorization_request(found, context(client), state="s")

    assert request.code_verifier is None
    assert "code_challenge" not in query_of(request.url)
    assert query_of(request.url)["access_type"] == ["offline"]


async def test_callable_auth_url_receives_state_scope_and_challenge(
    client: OutboundClient,
) -> None:
    seen: dict[str, Any] = {}

    def auth_url(ctx: Context) -> str:
        seen.update(state=ctx.state, scope=ctx.scope, challenge=ctx.codeChallenge)
        return f"https://jira.example.test/authorize?audience=api&state={ctx.state}"

    found = definition(authUrl=auth_url, scope=["a", "b"])
    request = await mechanism.authorization_request(found, context(client), state="st-9")

    assert request.url == "https://jira.example.test/authorize?audience=api&state=st-9"
    assert seen["state"] == "st-9"
    assert seen["scope"] == "a,b"
    assert request.code_verifier is not None
    assert seen["challenge"]
    assert seen["challenge"] != request.code_verifier


# --- code exchange ---------------------------------------------------------------------------


@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_code_exchange_with_client_auth_profile_and_names(
    client: OutboundClient, provider: OAuth2Provider, base_url: str, client_auth: str
) -> None:
    provider.client_auth = client_auth  # type: ignore[assignment]
    found = definition(
        base_url,
        clientAuthentication=client_auth,
        accountNameFromProfileInfo="login",
        emailFromProfileInfo="contact.email",
        scope=["repo"],
    )
    result = await connect_through_code(client, provider, found)

    sent = provider.token_requests[-1]
    if client_auth == "basic":
        assert sent.authorization is not None
        assert sent.authorization.startswith("Basic ")
        assert "client_secret" not in sent.form
    else:
        assert sent.authorization is None
        assert sent.form["client_secret"] == provider.client_secret
    assert sent.form["grant_type"] == "authorization_code"
    assert result.account_name == "ada"
    assert result.email == "ada@x.test"
    assert result.profile == provider.profile
    assert result.credentials["access_token"] in provider.access_tokens
    assert result.credentials["refresh_token"] in provider.refresh_tokens
    assert result.credentials["scope"] == "repo"
    assert result.scopes == ("repo",)
    assert result.expires_at == NOW + timedelta(seconds=3600)


async def test_redirect_uri_is_byte_identical_and_pkce_verified(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    callback = "https://bridge.example.test/auth/acme/callback?x=a%20b&y=é"
    found = definition(base_url)
    ctx = context(client, provider, callback_url=callback)
    request = await mechanism.authorization_request(found, ctx, state="s")
    code = provider.issue_code_for(request.url)

    result = await mechanism.exchange_code(
        found, ctx, code=code, code_verifier=request.code_verifier
    )

    sent = provider.token_requests[-1]
    assert sent.form["redirect_uri"] == query_of(request.url)["redirect_uri"][0] == callback
    sent_raw = sent.raw_body.decode().split("redirect_uri=")[1].split("&")[0]
    url_raw = request.url.split("redirect_uri=")[1].split("&")[0]
    assert sent_raw == url_raw
    assert sent.form["code_verifier"] == request.code_verifier
    assert result.credentials["access_token"]


async def test_wrong_pkce_verifier_is_refused_by_the_provider(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(base_url)
    ctx = context(client, provider)
    request = await mechanism.authorization_request(found, ctx, state="s")
    code = provider.issue_code_for(request.url)

    with pytest.raises(errors.InvalidToken, match="PKCE verification failed"):
        await mechanism.exchange_code(found, ctx, code=code, code_verifier="v" * 50)


async def test_github_style_form_token_body_without_expiry(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    provider.form_body = True
    provider.expires_in = None
    provider.issue_refresh_tokens = False
    result = await connect_through_code(client, provider, definition(base_url, scope=["repo"]))

    assert result.credentials["access_token"] in provider.access_tokens
    assert "refresh_token" not in result.credentials
    assert result.expires_at is None
    assert result.account_name == "ada"  # "login" is one of the default name keys


@pytest.mark.parametrize(
    ("status", "body", "expected", "message"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "code expired"},
            errors.InvalidToken,
            "code expired",
        ),
        (400, {"error": "invalid_scope"}, errors.ProviderError, "invalid_scope"),
        (
            200,
            "error=bad_verification_code&error_description=The+code+is+wrong",
            errors.ProviderError,
            "The code is wrong",
        ),
        (503, {"message": "maintenance"}, errors.ProviderUnavailable, "maintenance"),
    ],
)
async def test_token_error_responses_become_messages(
    client: OutboundClient,
    provider: OAuth2Provider,
    base_url: str,
    status: int,
    body: Any,
    expected: type[errors.ProviderError],
    message: str,
) -> None:
    provider.fail_next = (status, body)
    with pytest.raises(expected, match=message) as caught:
        await connect_through_code(client, provider, definition(base_url))
    assert type(caught.value) is expected


async def test_request_access_token_as_callable(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    seen: dict[str, Any] = {}

    async def exchange(ctx: Context) -> dict[str, Any]:
        seen.update(code=ctx.authorizationCode, verifier=ctx.code_verifier)
        provider.access_tokens.add("cb-token")
        return {
            "accessToken": "cb-token",
            "refreshToken": "cb-refresh",
            "accessTokenExpDate": NOW + timedelta(hours=2),
        }

    found = definition(base_url, requestAccessToken=exchange)
    result = await mechanism.exchange_code(
        found, context(client, provider), code="the-code", code_verifier="v" * 43
    )

    assert seen == {"code": "the-code", "verifier": "v" * 43}
    assert result.credentials["refresh_token"] == "cb-refresh"
    assert result.expires_at == NOW + timedelta(hours=2)
    assert "cb-token" not in repr(result)
    assert "cb-refresh" not in repr(result)


async def test_validate_access_token_may_declare_the_token_invalid(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    def validate(ctx: Context) -> None:
        raise ctx.InvalidTokenError("token revoked upstream")

    with pytest.raises(errors.InvalidToken, match="token revoked upstream"):
        await connect_through_code(
            client, provider, definition(base_url, validateAccessToken=validate)
        )


async def test_validate_access_token_url_uses_bearer(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    ok = await connect_through_code(
        client, provider, definition(base_url, validateAccessToken=f"{base_url}/me")
    )
    assert ok.account_name == "ada"

    bad = definition(base_url, requestAccessToken=lambda ctx: {"access_token": "unknown"})
    with pytest.raises(errors.InvalidToken):
        await mechanism.exchange_code(
            bad.model_copy(update={"validate_access_token": f"{base_url}/me"}),
            context(client, provider),
            code="c",
            code_verifier=None,
        )


# --- refresh ---------------------------------------------------------------------------------


async def refresh_context(
    client: OutboundClient, provider: OAuth2Provider, found: OAuth2Definition
) -> tuple[Context, Any]:
    connected = await connect_through_code(client, provider, found)
    return context(client, provider, tokens=connected.credentials), connected


async def test_refresh_keeps_the_old_refresh_token_when_none_comes_back(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(base_url, scope=["repo"])
    ctx, connected = await refresh_context(client, provider, found)

    refreshed = await mechanism.refresh(found, ctx)

    sent = provider.token_requests[-1].form
    assert sent["grant_type"] == "refresh_token"
    assert sent["refresh_token"] == connected.credentials["refresh_token"]
    assert refreshed.credentials["refresh_token"] == connected.credentials["refresh_token"]
    assert refreshed.credentials["access_token"] != connected.credentials["access_token"]
    assert refreshed.credentials["scope"] == "repo"
    assert refreshed.expires_at == NOW + timedelta(seconds=3600)


async def test_token_response_values_are_stored_and_kept_across_refreshes(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    provider.extra_token_values = {
        "instance_url": "https://acme.my.salesforce.com",
        "nested": {"not": "kept"},
        "expires_on": 1,
    }
    found = definition(base_url)
    ctx, connected = await refresh_context(client, provider, found)
    assert connected.credentials["instance_url"] == "https://acme.my.salesforce.com"
    assert "nested" not in connected.credentials
    assert "expires_on" not in connected.credentials

    provider.extra_token_values = {}  # this refresh answer leaves the value out
    refreshed = await mechanism.refresh(found, ctx)

    assert refreshed.credentials["instance_url"] == "https://acme.my.salesforce.com"
    assert refreshed.credentials["access_token"] != connected.credentials["access_token"]


async def test_refresh_stores_a_rotated_refresh_token(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    provider.rotate_refresh_tokens = True
    found = definition(base_url, refreshAccessToken=f"{base_url}/token")
    ctx, connected = await refresh_context(client, provider, found)

    refreshed = await mechanism.refresh(found, ctx)

    new = refreshed.credentials["refresh_token"]
    assert new != connected.credentials["refresh_token"]
    assert new in provider.refresh_tokens
    assert connected.credentials["refresh_token"] not in provider.refresh_tokens


async def test_refresh_with_a_revoked_token_is_invalid(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(base_url)
    ctx, _ = await refresh_context(client, provider, found)
    provider.refresh_tokens.clear()

    with pytest.raises(errors.InvalidToken, match="the refresh token is revoked"):
        await mechanism.refresh(found, ctx)


async def test_refresh_401_is_invalid_and_503_is_unavailable(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    found = definition(base_url)
    ctx, _ = await refresh_context(client, provider, found)

    provider.fail_next = (401, "Unauthorized")
    with pytest.raises(errors.InvalidToken):
        await mechanism.refresh(found, ctx)
    provider.fail_next = (503, {"error": "temporarily_unavailable"})
    with pytest.raises(errors.ProviderUnavailable):
        await mechanism.refresh(found, ctx)


async def test_refresh_without_a_stored_refresh_token(client: OutboundClient) -> None:
    with pytest.raises(errors.InvalidToken, match="no refresh token"):
        await mechanism.refresh(definition(), context(client, tokens={"access_token": "a"}))


def test_refresh_margin_from_the_definition() -> None:
    expires = NOW + timedelta(hours=1)
    assert mechanism.refresh_due_at(definition(), expires, NOW) == expires - timedelta(minutes=5)
    seconds = definition(refreshBeforeExp=30, refreshBeforeExpUnits="seconds")
    assert mechanism.refresh_due_at(seconds, expires, NOW) == expires - timedelta(seconds=30)
    assert mechanism.refresh_due_at(definition(), None, NOW) is None


def test_a_hard_expiry_is_never_refreshed_and_is_when_the_end_user_reconnects() -> None:
    expires = NOW + timedelta(hours=1)
    hard = definition(hardExpiry=True)
    assert mechanism.refresh_due_at(hard, expires, NOW) is None
    assert mechanism.hard_expires_at(hard, expires) == expires
    assert mechanism.hard_expires_at(definition(), expires) is None


def test_what_can_be_refreshed() -> None:
    assert mechanism.can_refresh(definition(), {"access_token": "a", "refresh_token": "r"})
    assert not mechanism.can_refresh(definition(), {"access_token": "a"})
    machine = definition(grantType="client_credentials")
    assert mechanism.can_refresh(machine, {"access_token": "a"})


# --- client credentials ----------------------------------------------------------------------


async def test_client_credentials_connect_and_refresh(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    provider.client_auth = "basic"
    found = definition(
        base_url,
        grantType="client_credentials",
        clientAuthentication="basic",
        scope=["jobs"],
        authUrl=None,
        requestProfileInfo=None,
    )
    connected = await mechanism.connect(found, context(client, provider))

    assert provider.token_requests[-1].form == {"grant_type": "client_credentials", "scope": "jobs"}
    assert connected.credentials["access_token"] in provider.access_tokens
    assert connected.scopes == ("jobs",)

    refreshed = await mechanism.refresh(
        found, context(client, provider, tokens=connected.credentials)
    )
    assert refreshed.credentials["access_token"] != connected.credentials["access_token"]
    assert len(provider.token_requests) == 2


async def test_connect_of_an_authorization_code_definition_explains(
    client: OutboundClient,
) -> None:
    with pytest.raises(errors.AuthBridgeError, match="redirected"):
        await get_mechanism("oauth2").connect(definition(), context(client))


# --- callback --------------------------------------------------------------------------------


def test_check_callback_returns_the_code() -> None:
    query = {"code": "abc", "state": "s", "iss": "https://as.example.test"}
    assert check_callback(query, expected_issuer=ISSUER, issuer_required=True) == "abc"
    assert check_callback({"code": "abc"}, expected_issuer=None, issuer_required=False) == "abc"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"error": "access_denied", "iss": ISSUER}, "The authorization was denied."),
        ({"error": "invalid_scope", "error_description": "no admin", "iss": ISSUER}, "no admin"),
        ({"code": "abc", "iss": "https://evil.test"}, "unexpected issuer"),
        ({"code": "abc"}, "unexpected issuer"),
        ({"error": "access_denied", "iss": "https://evil.test"}, "unexpected issuer"),
        ({"state": "s"}, "neither a code nor an error"),
    ],
)
def test_check_callback_errors(query: dict[str, str], message: str) -> None:
    with pytest.raises(errors.ProviderError, match=message):
        check_callback(query, expected_issuer=ISSUER, issuer_required=True)


def test_token_values_never_in_repr() -> None:
    tokens = Tokens(access_token="AT-secret", token_type="bearer", refresh_token="RT-secret")
    assert "secret" not in repr(tokens)


async def test_request_access_token_as_request_spec(
    client: OutboundClient, provider: OAuth2Provider, base_url: str
) -> None:
    spec = {
        "method": "POST",
        "url": f"{base_url}/token",
        "data": {
            "grant_type": "authorization_code",
            "code": "{{authorization_code}}",
            "code_verifier": "{{code_verifier}}",
            "redirect_uri": "{{redirect_uri}}",
            "client_id": "{{client_id}}",
            "client_secret": "{{client_secret}}",
        },
    }
    found = definition(base_url, requestAccessToken=spec)
    ctx = context(client, provider)
    request = await mechanism.authorization_request(found, ctx, state="s")
    code = provider.issue_code_for(request.url)

    result = await mechanism.exchange_code(
        found, ctx, code=code, code_verifier=request.code_verifier
    )

    assert provider.token_requests[-1].form["code_verifier"] == request.code_verifier
    assert result.credentials["access_token"] in provider.access_tokens
    provider.fail_next = (400, {"error": "invalid_grant", "error_description": "used code"})
    with pytest.raises(errors.InvalidToken, match="used code"):
        await mechanism.exchange_code(found, ctx, code=code, code_verifier=request.code_verifier)


# --- revocation (RFC 7009) -------------------------------------------------------------------


async def test_revocation_of_the_refresh_token_with_the_client_authenticated(
    client: OutboundClient,
) -> None:
    found = definition(revokeUrl="https://as.example.test/revoke")
    tokens = {"access_token": "a-tok", "refresh_token": "r-tok"}
    revocation = mechanism.revocation(found, context(client, tokens=tokens))

    assert revocation is not None
    assert revocation.url == "https://as.example.test/revoke"
    assert revocation.form["token"] == "r-tok"
    assert revocation.form["token_type_hint"] == "refresh_token"
    assert revocation.form["client_id"] == OAuth2Provider().client_id  # "body", the default
    assert "r-tok" in revocation.secrets
    assert "r-tok" not in repr(revocation)
    basic = definition(revokeUrl="https://as.example.test/revoke", clientAuthentication="basic")
    in_header = mechanism.revocation(basic, context(client, tokens=tokens))
    assert in_header is not None
    assert in_header.headers["Authorization"].startswith("Basic ")
    assert "client_id" not in in_header.form


async def test_no_revocation_without_an_endpoint_or_a_token(client: OutboundClient) -> None:
    tokens = {"access_token": "a-tok"}
    assert mechanism.revocation(definition(), context(client, tokens=tokens)) is None
    with_endpoint = definition(revokeUrl="https://as.example.test/revoke")
    assert mechanism.revocation(with_endpoint, context(client, tokens={})) is None


async def test_a_revocation_needs_the_client_id(client: OutboundClient) -> None:
    found = definition(revokeUrl="https://as.example.test/revoke")
    unconfigured = context(client, config=ClientConfig(), tokens={"access_token": "a-tok"})
    with pytest.raises(errors.NotConfigured, match="client id"):
        mechanism.revocation(found, unconfigured)


async def test_a_revocation_request_spec_is_kept_with_its_context_not_made_rfc_7009(
    client: OutboundClient,
) -> None:
    spec = {
        "method": "DELETE",
        "url": "https://api.example.test/applications/{{client_id}}/grant",
        "auth": {"username": "{{client_id}}", "password": "{{client_secret}}"},
        "json": {"access_token": "{{access_token}}"},
    }
    found = definition(revocation=spec)
    revocation = mechanism.revocation(found, context(client, tokens={"access_token": "a-tok"}))

    assert isinstance(revocation, DefinedRevocation)
    assert isinstance(revocation.action, RequestSpec)
    assert revocation.action.method == "DELETE"
    assert "a-tok" in revocation.secrets
    assert OAuth2Provider().client_secret in revocation.secrets
    assert "a-tok" not in repr(revocation)
    assert mechanism.revocation(found, context(client, tokens={})) is None  # nothing to revoke
    assert definition(revoke=spec).revocation == found.revocation  # the shorter spelling
    url_form = definition(revoke_url="https://as.example.test/revoke")
    assert url_form.revocation == "https://as.example.test/revoke"  # RFC 7009, as before
    with pytest.raises(ValidationError, match="revoke"):
        definition(revocation=spec, revokeUrl="https://as.example.test/revoke")
