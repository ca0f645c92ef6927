"""The reference document's API-key, password and HTTP Basic examples, each written twice in
our format (``connectors/yaml`` and ``connectors/python``), connected against loopback
providers that answer like the real services."""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from authbridge.connectors.models import ApiKeyDefinition, AuthDefinition, PwdDefinition
from authbridge.connectors.registry import Registry, scan_folder
from authbridge.connectors.request_models import RequestSpec
from authbridge.errors import (
    CredentialsRejected,
    InvalidInput,
    UnsafeTemplateValue,
)
from authbridge.mechanisms import Context, get_mechanism
from authbridge.mechanisms.pwd import PwdMechanism
from tests.examples.conftest import NOW
from tests.support.providers import ProviderSuite

pytestmark = pytest.mark.anyio

KINDS = ("yaml", "python")
CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----"

LoadRegistry = Callable[[str], Registry]
MakeContext = Callable[..., Context]


def definition_of(registry: Registry, key: str) -> AuthDefinition:
    return registry.get(key).definition()


def test_both_formats_define_the_same_connectors(registry: LoadRegistry) -> None:
    for kind in KINDS:
        loaded = registry(kind)
        assert sorted(connector.key for connector in loaded) == [
            "basic",
            "freshdesk",
            "password",
            "records",
        ]
        assert {connector.source.name for connector in loaded} == {
            "auth.yaml" if kind == "yaml" else "auth.py"
        }


# --- Freshdesk: API key and subdomain, HTTP Basic <key>:X -------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_freshdesk_connects_with_profile_email(
    kind: str,
    registry: LoadRegistry,
    make_context: MakeContext,
    providers: ProviderSuite,
    port: int,
) -> None:
    definition = definition_of(registry(kind), "freshdesk")
    context = make_context(domain=" acme ", apiKey=ProviderSuite.FRESHDESK_KEY)

    result = await get_mechanism(definition.type).connect(definition, context)

    assert result.account_name == "agent@acme.example"
    assert result.credentials == {"domain": "acme", "apiKey": ProviderSuite.FRESHDESK_KEY}
    assert result.profile is not None
    assert result.profile["contact"] == {"email": "agent@acme.example", "name": "Agent"}
    assert result.expires_at is None
    # validate, then the profile request: both to the entered subdomain, Basic <key>:X
    assert providers.freshdesk.subdomains == ["acme", "acme"]
    for received in providers.freshdesk.received:
        assert received.headers["host"] == f"acme.freshdesk.test:{port}"
        assert received.path == "/api/v2/agents/me"
        assert received.basic_auth == (ProviderSuite.FRESHDESK_KEY, "X")


@pytest.mark.parametrize("kind", KINDS)
async def test_freshdesk_wrong_key_shows_the_providers_message(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "freshdesk")
    context = make_context(domain="acme", apiKey="fd-wrong-key-000")

    with pytest.raises(CredentialsRejected) as caught:
        await get_mechanism(definition.type).connect(definition, context)

    assert caught.value.message == "You have to be logged in to perform this action."
    assert caught.value.status_code == 401
    assert len(providers.freshdesk.received) == 1, "the profile is not requested after a refusal"


@pytest.mark.parametrize("kind", KINDS)
async def test_freshdesk_domain_cannot_change_the_host(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "freshdesk")
    context = make_context(domain="127.0.0.1:9/x#", apiKey=ProviderSuite.FRESHDESK_KEY)

    with pytest.raises(UnsafeTemplateValue) as caught:
        await get_mechanism(definition.type).connect(definition, context)

    assert caught.value.name == "domain"
    assert providers.freshdesk.received == []


@pytest.mark.parametrize("kind", KINDS)
def test_freshdesk_form_fields(kind: str, registry: LoadRegistry) -> None:
    definition = definition_of(registry(kind), "freshdesk")
    assert isinstance(definition, ApiKeyDefinition)
    fields = get_mechanism(definition.type).form_fields(definition)

    assert list(fields) == ["domain", "apiKey"]
    assert [spec.name for spec in fields.values()] == ["Domain", "API Key"]
    assert fields["apiKey"].tooltip is not None
    assert "<i>Your API Key</i>" in fields["apiKey"].tooltip
    assert definition.token_type == "authentication-token"
    assert definition.account_name_from_profile_info == "contact.email"


# --- The second API-key example: a validate request object ------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_records_validate_request_object(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "records")
    assert isinstance(definition, ApiKeyDefinition)
    assert isinstance(definition.validate_, RequestSpec)
    # the YAML spells these `uri` and `qs`, the Python `url` and `params`
    assert definition.validate_.url.endswith("/get-some-records/app_id={{appId}}")
    assert definition.validate_.params == {"limit": 1}
    context = make_context(
        appId=ProviderSuite.RECORDS_APP_ID, apiKey=ProviderSuite.RECORDS_KEY, cert=CERT
    )

    result = await get_mechanism(definition.type).connect(definition, context)

    assert result.account_name == ProviderSuite.RECORDS_APP_ID
    assert result.credentials == {
        "appId": ProviderSuite.RECORDS_APP_ID,
        "apiKey": ProviderSuite.RECORDS_KEY,
        "cert": CERT,
    }
    assert result.profile is None
    [received] = providers.records.received
    assert received.method == "GET"
    assert received.path == f"/get-some-records/app_id={ProviderSuite.RECORDS_APP_ID}"
    assert received.query == {"limit": "1"}
    assert received.headers["authorization"] == f"Basic {ProviderSuite.RECORDS_KEY}"


@pytest.mark.parametrize("kind", KINDS)
async def test_records_wrong_key_message_found_by_heuristic(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "records")
    context = make_context(appId=ProviderSuite.RECORDS_APP_ID, apiKey="nope-123", cert=CERT)

    with pytest.raises(CredentialsRejected) as caught:
        await get_mechanism(definition.type).connect(definition, context)

    assert caught.value.message == "Invalid REST API key"
    assert caught.value.status_code == 401
    assert len(providers.records.received) == 1


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # no callback: the heuristic finds nothing in {"someNestedObject": {...}}
        ("yaml", "403 Forbidden"),
        # validateErrCallback raises the nested message for the UI
        ("python", "This app has been suspended by its owner."),
    ],
)
async def test_records_validate_err_callback(
    kind: str,
    expected: str,
    registry: LoadRegistry,
    make_context: MakeContext,
    providers: ProviderSuite,
) -> None:
    definition = definition_of(registry(kind), "records")
    assert isinstance(definition, ApiKeyDefinition)
    assert (definition.validate_err_callback is not None) == (kind == "python")
    context = make_context(appId=ProviderSuite.RECORDS_SUSPENDED_APP_ID, apiKey="any", cert=CERT)

    with pytest.raises(CredentialsRejected) as caught:
        await get_mechanism(definition.type).connect(definition, context)

    assert caught.value.message == expected
    assert caught.value.body == {
        "someNestedObject": {"message": "This app has been suspended by its owner.", "code": 4031}
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_records_textarea_is_required_and_text_fields_refuse_newlines(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "records")
    mechanism = get_mechanism(definition.type)

    with pytest.raises(InvalidInput) as missing:
        await mechanism.connect(
            definition, make_context(appId=ProviderSuite.RECORDS_APP_ID, apiKey="k-1")
        )
    with pytest.raises(InvalidInput) as newline:
        await mechanism.connect(
            definition,
            make_context(appId="app\n1138", apiKey=ProviderSuite.RECORDS_KEY, cert=CERT),
        )

    assert (missing.value.field, missing.value.message) == ("cert", "'TLS CA' is required")
    assert newline.value.field == "appId"
    assert "APP ID" in newline.value.message
    assert providers.records.received == []


# --- Password exchanged for a token ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "lifetime"),
    [
        ("python", timedelta(seconds=3600)),  # {"expiresIn": 3600} returned as 'expires'
        ("yaml", timedelta(seconds=7200)),  # the endpoint's own {"expires": "7200"}
    ],
)
async def test_password_login_stores_token_and_expiry(
    kind: str,
    lifetime: timedelta,
    registry: LoadRegistry,
    make_context: MakeContext,
    providers: ProviderSuite,
) -> None:
    definition = definition_of(registry(kind), "password")
    context = make_context(username=ProviderSuite.USERNAME, password=ProviderSuite.PASSWORD)

    result = await get_mechanism(definition.type).connect(definition, context)

    assert providers.password.logins == 1
    assert result.credentials == {
        "username": ProviderSuite.USERNAME,
        "password": ProviderSuite.PASSWORD,
        "token": providers.password.tokens[0],
    }
    assert result.expires_at == NOW + lifetime
    assert result.account_name == ProviderSuite.USERNAME
    [received] = providers.password.received
    assert received.method == "POST"
    assert received.json() == {
        "username": ProviderSuite.USERNAME,
        "password": ProviderSuite.PASSWORD,
    }


PASSWORD_ISO_YAML = """\
type: pwd
definition:
  validate:
    method: POST
    url: $BASE/auth/expires-iso
    json: {username: "{{username}}", password: "{{password}}"}
"""


async def test_password_expiry_as_an_iso_date(
    tmp_path: Path, base_url: str, make_context: MakeContext, providers: ProviderSuite
) -> None:
    folder = tmp_path / "inline" / "reference" / "password_iso"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text(string.Template(PASSWORD_ISO_YAML).substitute(BASE=base_url))
    report = scan_folder(tmp_path / "inline", origin="test")
    assert report.problems == []
    [connector] = report.connectors
    definition = connector.definition()
    assert isinstance(definition, PwdDefinition)
    context = make_context(username=ProviderSuite.USERNAME, password=ProviderSuite.PASSWORD)

    result = await get_mechanism(definition.type).connect(definition, context)

    assert result.expires_at == datetime(2031, 6, 1, 12, tzinfo=UTC)
    assert result.credentials["token"] == providers.password.tokens[0]


@pytest.mark.parametrize("kind", KINDS)
async def test_password_wrong_password_shows_nested_provider_message(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "password")
    context = make_context(username=ProviderSuite.USERNAME, password="Tr0ub4dor&3")

    with pytest.raises(CredentialsRejected) as caught:
        await get_mechanism(definition.type).connect(definition, context)

    assert caught.value.message == "Invalid username or password"
    assert "Tr0ub4dor&3" not in str(caught.value)
    assert providers.password.logins == 0
    assert len(providers.password.received) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_password_refresh_logs_in_again(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "password")
    mechanism = get_mechanism(definition.type)
    assert isinstance(mechanism, PwdMechanism)
    first = await mechanism.connect(
        definition,
        make_context(username=ProviderSuite.USERNAME, password=ProviderSuite.PASSWORD),
    )
    later = NOW + timedelta(hours=5)

    # what the service layer hands back: the stored credentials, including the old token
    stored = make_context(**first.credentials).replace(now=later)
    refreshed = await mechanism.refresh(definition, stored)

    assert providers.password.logins == 2
    new_token = providers.password.tokens[1]
    assert new_token != first.credentials["token"]
    assert refreshed.credentials == {
        "username": ProviderSuite.USERNAME,
        "password": ProviderSuite.PASSWORD,
        "token": new_token,
    }
    assert first.expires_at is not None
    assert refreshed.expires_at == later + (first.expires_at - NOW)
    assert providers.password.received[1].json() == {
        "username": ProviderSuite.USERNAME,
        "password": ProviderSuite.PASSWORD,
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_password_refresh_after_password_change_is_rejected(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "password")
    mechanism = get_mechanism(definition.type)
    first = await mechanism.connect(
        definition,
        make_context(username=ProviderSuite.USERNAME, password=ProviderSuite.PASSWORD),
    )
    providers.password.users[ProviderSuite.USERNAME] = "a new password"
    try:
        with pytest.raises(CredentialsRejected) as caught:
            await mechanism.refresh(definition, make_context(**first.credentials))
    finally:
        providers.password.users[ProviderSuite.USERNAME] = ProviderSuite.PASSWORD

    assert caught.value.message == "Invalid username or password"
    assert providers.password.logins == 1


# --- HTTP Basic --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["yaml", "python"])
async def test_basic_auth_stores_username_and_password(
    kind: str, registry: LoadRegistry, make_context: MakeContext, providers: ProviderSuite
) -> None:
    definition = definition_of(registry(kind), "basic")
    assert isinstance(definition, PwdDefinition)
    assert list(definition.auth) == ["username", "password"]  # the default form
    context = make_context(username=ProviderSuite.USERNAME, password=ProviderSuite.PASSWORD)

    result = await get_mechanism(definition.type).connect(definition, context)

    assert result.credentials == {
        "username": ProviderSuite.USERNAME,
        "password": ProviderSuite.PASSWORD,
    }
    assert result.expires_at is None
    assert result.account_name == ProviderSuite.USERNAME
    [received] = providers.basic.received
    assert received.path == "/basic-auth"
    assert received.basic_auth == (ProviderSuite.USERNAME, ProviderSuite.PASSWORD)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("yaml", "Unauthorized"),  # the provider's plain-text body
        ("python", "Wrong username or password."),  # raised by the definition's validate
    ],
)
async def test_basic_auth_wrong_password(
    kind: str,
    expected: str,
    registry: LoadRegistry,
    make_context: MakeContext,
    providers: ProviderSuite,
) -> None:
    definition = definition_of(registry(kind), "basic")
    context = make_context(username=ProviderSuite.USERNAME, password="hunter2-wrong")

    with pytest.raises(CredentialsRejected) as caught:
        await get_mechanism(definition.type).connect(definition, context)

    assert caught.value.message == expected
    [received] = providers.basic.received
    assert received.basic_auth == (ProviderSuite.USERNAME, "hunter2-wrong")
