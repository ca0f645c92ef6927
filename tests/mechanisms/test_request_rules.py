"""Request rules: rendering a definition's ``request`` into headers, parameters, Basic
credentials, a base URL and OAuth 1.0a signing, and applying them to httpx requests."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth1.rfc5849 import client_auth  # type: ignore[import-untyped]
from pydantic import ValidationError

from authbridge import errors
from authbridge.connectors.loader import load_connector
from authbridge.connectors.models import AuthDefinition, parse_definition
from authbridge.connectors.request_models import RequestRules
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.mechanisms import ClientConfig, Context
from authbridge.mechanisms.request_rules import OAuth1Signing, RequestAuth, prepare
from tests.support.loopback import serve
from tests.support.oauth1_provider import PROFILE, Credential, OAuth1Provider

pytestmark = pytest.mark.anyio

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SALESFORCE = {
    "base_url": "{{instance_url}}/services/data/v60.0",
    "allowed_hosts": [".my.salesforce.com"],
}


def api_key(request: object, **extra: Any) -> AuthDefinition:
    fields = {"domain": {"name": "Domain"}, "api_key": {"type": "password"}}
    return parse_definition("api_key", {"auth": fields, "request": request, **extra})


def oauth2(request: object | None = None) -> AuthDefinition:
    definition: dict[str, Any] = {
        "auth_url": "https://idp.example/authorize",
        "request_access_token": "https://idp.example/token",
    }
    if request is not None:
        definition["request"] = request
    return parse_definition("oauth2", definition)


async def rendered(
    definition: AuthDefinition,
    credentials: Mapping[str, Any],
    config: ClientConfig | None = None,
    **kwargs: Any,
) -> RequestAuth:
    return await prepare(
        definition, credentials=credentials, config=config or ClientConfig(), **kwargs
    )


def sent(auth: RequestAuth, url: str, **kwargs: Any) -> httpx.Request:
    """The request as it leaves a client using ``auth.auth()``."""
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth.auth()) as client:
        client.request(kwargs.pop("method", "GET"), url, **kwargs)
    (request,) = captured
    return request


# --- each kind of rule ----------------------------------------------------------------------


async def test_subdomain_base_url_header_and_query_parameter_templates() -> None:
    definition = api_key(
        {
            "base_url": "https://{{domain}}.freshdesk.com/api/v2",
            "headers": {"X-Api-Key": "{{api_key}}", "Accept": "application/json"},
            "params": {"key": "{{apiKey}}"},
        }
    )
    auth = await rendered(definition, {"domain": "acme", "api_key": "k-123"})
    assert auth.base_url == "https://acme.freshdesk.com/api/v2"
    request = sent(auth, f"{auth.base_url}/tickets?page=2")
    assert request.headers["X-Api-Key"] == "k-123"
    assert request.headers["Accept"] == "application/json"
    assert request.url.params["page"] == "2"
    assert request.url.params["key"] == "k-123"
    assert "Authorization" not in request.headers


async def test_http_basic_from_templates() -> None:
    definition = api_key({"auth": {"username": "{{api_key}}", "password": "X"}})
    auth = await rendered(definition, {"domain": "acme", "api_key": "k-123"})
    assert auth.basic == ("k-123", "X")
    request = sent(auth, "https://acme.freshdesk.com/api/v2/tickets")
    assert request.headers["Authorization"] == httpx.BasicAuth("k-123", "X")._auth_header


async def test_bearer_rule_and_default_bearer_for_oauth2() -> None:
    explicit = await rendered(api_key({"auth": {"bearer": "{{api_key}}"}}), {"api_key": "k-9"})
    assert explicit.headers == {"Authorization": "Bearer k-9"}
    default = await rendered(oauth2(), {"access_token": "at-1", "refresh_token": "rt-1"})
    assert default.headers == {"Authorization": "Bearer at-1"}
    assert default.base_url is None
    with_base = await rendered(
        oauth2({"base_url": "https://api.example/v1"}), {"access_token": "a"}
    )
    assert with_base.headers == {"Authorization": "Bearer a"}


async def test_oauth2_rules_with_their_own_placement_replace_the_default() -> None:
    in_query = await rendered(
        oauth2({"params": {"access_token": "{{access_token}}"}}), {"access_token": "a"}
    )
    assert in_query.headers == {}
    assert in_query.params == {"access_token": "a"}


async def test_settings_and_variant_values_fill_templates_and_win_over_credentials() -> None:
    definition = api_key({"base_url": "https://{{region}}.api.example/{{api_version}}"})
    config = ClientConfig(
        settings={"api_version": "v3", "region": "eu"}, variant_values={"region": "us"}
    )
    auth = await rendered(
        definition,
        {"api_key": "k", "region": "evil", "api_version": "v0"},
        config,
    )
    assert auth.base_url == "https://us.api.example/v3"
    extra = await rendered(definition, {}, config, extra_values={"region": "ap"})
    assert extra.base_url == "https://ap.api.example/v3"


async def test_the_stored_profile_is_profile_info() -> None:
    definition = oauth2({"base_url": "https://{{profile_info.dc}}.api.mailchimp.com/3.0"})
    auth = await rendered(definition, {"access_token": "a"}, profile={"dc": "us6"})
    assert auth.base_url == "https://us6.api.mailchimp.com/3.0"
    with pytest.raises(errors.UnsafeTemplateValue, match=r"profile_info\.dc"):
        await rendered(definition, {"access_token": "a"}, profile={"dc": "evil.com/x"})


# --- values that must not be used ------------------------------------------------------------


@pytest.mark.parametrize("name", ["refresh_token", "refreshToken"])
async def test_the_refresh_token_is_never_a_template_value(name: str) -> None:
    definition = oauth2({"headers": {"X-Refresh": "{{" + name + "}}"}})
    with pytest.raises(errors.MissingTemplateValue):
        await rendered(definition, {"access_token": "a", "refresh_token": "r", "refreshToken": "r"})


@pytest.mark.parametrize("domain", ["evil.com/x", "evil.com", "acme@evil", "a b", ""])
async def test_a_subdomain_value_must_be_one_dns_label(domain: str) -> None:
    definition = api_key({"base_url": "https://{{domain}}.freshdesk.com/api/v2"})
    with pytest.raises(errors.TemplateError) as caught:
        await rendered(definition, {"domain": domain, "api_key": "secret-key"})
    assert "domain" in caught.value.message
    assert "secret-key" not in caught.value.message


async def test_a_header_value_with_a_line_break_is_refused() -> None:
    definition = api_key({"headers": {"X-Api-Key": "{{api_key}}"}})
    with pytest.raises(errors.UnsafeTemplateValue, match="api_key"):
        await rendered(definition, {"api_key": "k\r\nX-Admin: 1"})


# --- an origin taken from a value (Salesforce's instance_url) --------------------------------


async def test_allowed_host_origin_is_accepted() -> None:
    credentials = {"access_token": "a", "instance_url": "https://na1.my.salesforce.com/"}
    auth = await rendered(oauth2(SALESFORCE), credentials)
    assert auth.base_url == "https://na1.my.salesforce.com/services/data/v60.0"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://evil.com", "allowed hosts"),
        ("https://my.salesforce.com.evil.com", "allowed hosts"),
        ("https://evilmy.salesforce.com", "allowed hosts"),
        ("http://na1.my.salesforce.com", "https"),
        ("https://user:pw@na1.my.salesforce.com", "user name"),
        ("https://evil.com@na1.my.salesforce.com", "user name"),
        ("https://na1.my.salesforce.com?x=1", "query"),
        ("https://na1.my.salesforce.com#x", "query"),
        ("https://evil.com\\.my.salesforce.com", "DNS host"),
        ("na1.my.salesforce.com", "https"),
        ("https://na1.my.salesforce.com /x", "https URL"),
    ],
)
async def test_allowed_host_origin_refuses_other_values(value: str, reason: str) -> None:
    with pytest.raises(errors.UnsafeTemplateValue, match=reason) as caught:
        await rendered(oauth2(SALESFORCE), {"access_token": "a", "instance_url": value})
    assert "instance_url" in caught.value.message


def test_an_origin_placeholder_needs_allowed_hosts_and_only_it_may_have_them() -> None:
    with pytest.raises(ValidationError, match="needs 'allowed_hosts'"):
        RequestRules(base_url="{{instance_url}}/services")
    with pytest.raises(ValidationError, match="only for a 'base_url' that starts"):
        RequestRules(base_url="https://api.example", allowed_hosts=(".example.com",))
    with pytest.raises(ValidationError, match="must be a lowercase domain suffix"):
        RequestRules(base_url="{{instance_url}}", allowed_hosts=("salesforce.com",))
    with pytest.raises(ValidationError, match="must be a lowercase domain suffix"):
        RequestRules(base_url="{{instance_url}}", allowed_hosts=(".com",))


# --- definitions ------------------------------------------------------------------------------


def test_bad_rules_are_definition_problems_with_key_paths(tmp_path: Path) -> None:
    auth = tmp_path / "acme" / "desk" / "auth.yaml"
    auth.parent.mkdir(parents=True)
    auth.write_text(
        textwrap.dedent(
            """
            type: apiKey
            definition:
              auth: {api_key: {type: password}}
              request:
                base_url: "{{scheme}}://api.acme.example"
                headers: {"Bad Header": x}
                colour: red
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(errors.DefinitionError) as caught:
        load_connector(auth, origin="test")
    found = {problem.path: problem.reason for problem in caught.value.problems}
    assert found["definition.request.colour"] == "unknown key"
    assert "not a valid HTTP header name" in found["definition.request.headers"]
    assert len(found) == 2  # the base URL problem is reported once the rest is valid
    auth.write_text(
        "type: apiKey\ndefinition:\n  auth: {api_key: {}}\n  request:\n"
        "    base_url: 'https://api.acme.example:{{port}}/'\n",
        encoding="utf-8",
    )
    with pytest.raises(errors.DefinitionError) as caught:
        load_connector(auth, origin="test")
    (problem,) = caught.value.problems
    assert problem.path == "definition.request"
    assert "'base_url'" in problem.reason
    assert "port" in problem.reason
    auth.write_text("type: apiKey\ndefinition:\n  auth: {api_key: {}}\n  request: 3\n")
    with pytest.raises(errors.DefinitionError) as caught:
        load_connector(auth, origin="test")
    assert [(p.path, p.reason) for p in caught.value.problems] == [
        ("definition.request", "must be a mapping of request rules or a callable")
    ]


@pytest.fixture
async def outbound() -> Any:
    async with OutboundClient(EgressPolicy()) as client:
        yield client


async def test_a_callable_request_gets_a_context_and_its_rules_are_rendered(
    outbound: OutboundClient,
) -> None:
    seen: list[Context] = []

    async def request(context: Context) -> dict[str, Any]:
        seen.append(context)
        return {
            "base_url": f"https://{context.domain}.api.example",
            "headers": {"X-Key": "{{api_key}}"},
        }

    definition = api_key(request)
    auth = await rendered(
        definition,
        {"domain": "acme", "api_key": "k-1", "refresh_token": "r"},
        http=outbound,
        now=NOW,
    )
    assert auth.base_url == "https://acme.api.example"
    assert auth.headers == {"X-Key": "k-1"}
    (context,) = seen
    assert context.fields == {"domain": "acme", "api_key": "k-1"}
    assert "refresh_token" not in context.values()


async def test_a_callable_returning_bad_rules_is_a_clear_error(outbound: OutboundClient) -> None:
    definition = api_key(lambda context: {"headers": {"X": "1"}, "cookies": {}})
    with pytest.raises(errors.ProviderError, match=r"invalid rules .*cookies"):
        await rendered(definition, {"api_key": "k"}, http=outbound, now=NOW)


# --- OAuth 1.0a ------------------------------------------------------------------------------


@pytest.fixture
def provider() -> OAuth1Provider:
    provider = OAuth1Provider()
    provider.add_consumer("consumer-1", "consumer-secret")
    provider.access_tokens["token-1"] = Credential("token-secret", "consumer-1")
    return provider


@pytest.fixture
def provider_url(provider: OAuth1Provider) -> Iterator[str]:
    with serve(provider.app) as url:
        yield url


def oauth1(request: object | None = None) -> AuthDefinition:
    definition: dict[str, Any] = {
        "request_request_token": "https://x.example/initiate",
        "auth_url": "https://x.example/authorize",
        "request_access_token": "https://x.example/token",
    }
    if request is not None:
        definition["request"] = request
    return parse_definition("oauth", definition)


@pytest.mark.parametrize("secret", ["consumer-secret", "wrong-secret"])
async def test_oauth1_signature_verifies_at_the_provider(
    provider: OAuth1Provider, provider_url: str, secret: str
) -> None:
    definition = oauth1({"base_url": provider_url, "params": {"format": "json"}})
    config = ClientConfig(consumer_key="consumer-1", consumer_secret=secret)
    credentials = {"access_token": "token-1", "access_token_secret": "token-secret"}
    auth = await rendered(definition, credentials, config)
    assert auth.oauth1 is not None
    assert auth.oauth1.token == "token-1"
    wire = RequestAuth.from_json(auth.to_json())  # the SDK signs from the wire form
    async with httpx.AsyncClient(base_url=provider_url, auth=wire.auth()) as client:
        response = await client.get("/me", params={"fields": "name email"})
    if secret == "wrong-secret":
        assert response.status_code == 401
        return
    assert response.status_code == 200, response.text
    assert response.json() == PROFILE
    (received,) = provider.received
    assert received.oauth_params["oauth_token"] == "token-1"


def test_oauth1_signs_a_form_body_and_leaves_other_bodies_streaming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_auth, "generate_nonce", lambda: "fixed-nonce")
    monkeypatch.setattr(client_auth, "generate_timestamp", lambda: "1700000000")
    auth = RequestAuth(oauth1=OAuth1Signing("ck", "cs", "t", "ts"))
    url = "https://api.example/post"
    form = [sent(auth, url, method="POST", data={"status": text}) for text in ("hi", "ho")]
    # Form parameters are part of the signature base string (RFC 5849 §3.4.1.3.1) ...
    assert _signature(form[0]) != _signature(form[1])

    def chunks(text: bytes) -> Iterator[bytes]:
        yield text

    # ... other bodies are not, and are sent without being read first.
    streamed = [sent(auth, url, method="POST", content=chunks(body)) for body in (b"1", b"2")]
    assert _signature(streamed[0]) == _signature(streamed[1])
    assert streamed[0].headers["Authorization"].startswith("OAuth ")


def _signature(request: httpx.Request) -> str:
    header = request.headers["Authorization"]
    return header.split('oauth_signature="', 1)[1].split('"', 1)[0]


async def test_oauth1_needs_the_consumer_configured() -> None:
    with pytest.raises(errors.Conflict, match="consumer key and secret"):
        await rendered(oauth1(), {"access_token": "t", "access_token_secret": "s"})


# --- wire form and repr ----------------------------------------------------------------------


def test_wire_form_round_trips_and_malformed_documents_are_refused() -> None:
    auth = RequestAuth(
        base_url="https://api.example/v1",
        headers={"X-Key": "k"},
        params={"p": "v"},
        basic=("u", "pw"),
        oauth1=OAuth1Signing("ck", "cs", "t", "ts", "PLAINTEXT"),
    )
    assert RequestAuth.from_json(auth.to_json()) == auth
    with pytest.raises(ValueError, match="not a request-auth document"):
        RequestAuth.from_json({"basic": {"username": "u"}})


def test_repr_shows_no_secret() -> None:
    auth = RequestAuth(
        base_url="https://api.example/bot-secret-path",
        headers={"Authorization": "Bearer secret-token"},
        params={"key": "secret-key"},
        basic=("secret-user", "secret-password"),
        oauth1=OAuth1Signing("ck", "secret-cs", "secret-t", "secret-ts"),
    )
    for text in (repr(auth), repr(auth.auth())):
        assert "secret" not in text
        assert "Authorization" in text
        assert "api.example" in text
