"""The ``api_key`` mechanism: checking entered fields, ``validate`` outcomes, account names and
the messages shown when a callable fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from authbridge import errors
from authbridge.connectors.models import ApiKeyDefinition, parse_definition
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.mechanisms import Context, get_mechanism
from authbridge.mechanisms.api_key import ApiKeyMechanism

pytestmark = pytest.mark.anyio

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = "key-Zq81xWv4"
FIELDS: dict[str, Any] = {
    "workspace": {"type": "text", "name": "Workspace"},
    "api_key": {"type": "password", "name": "API key"},
    "region": {
        "type": "select",
        "name": "Region",
        "options": [{"value": "eu", "label": "Europe"}, "us"],
        "default": "eu",
    },
    "note": {"type": "textarea", "name": "Note", "required": False},
}


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
async def client(sent: list[httpx.Request]) -> AsyncIterator[OutboundClient]:
    """A client whose requests to ``api.example.test`` are answered by a mock transport."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.headers.get("x-api-key") == KEY:
            return httpx.Response(200, json={"user": {"email": "me@example.test"}})
        return httpx.Response(401, json={"message": "Unknown key"})

    policy = EgressPolicy(allow_loopback=True, resolve={"api.example.test": "127.0.0.1"})
    async with OutboundClient(policy, transport=httpx.MockTransport(answer)) as outbound:
        yield outbound


def definition(**properties: Any) -> ApiKeyDefinition:
    found = parse_definition("apiKey", {"auth": FIELDS, **properties})
    assert isinstance(found, ApiKeyDefinition)
    return found


def entered(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"workspace": "acme", "api_key": KEY}
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


async def connect(client: OutboundClient, found: ApiKeyDefinition, fields: dict[str, Any]) -> Any:
    return await get_mechanism("api_key").connect(
        found, Context(http=client, now=NOW, fields=fields)
    )


def test_registered_under_its_type() -> None:
    mechanism = get_mechanism("api_key")
    assert isinstance(mechanism, ApiKeyMechanism)
    assert list(mechanism.form_fields(definition())) == ["workspace", "api_key", "region", "note"]


# --- entered fields ----------------------------------------------------------------------------


async def test_fields_are_trimmed_and_defaults_filled(client: OutboundClient) -> None:
    result = await connect(client, definition(), entered(workspace="  acme  "))

    assert result.credentials == {"workspace": "acme", "api_key": KEY, "region": "eu"}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (entered(api_key=None), "api_key", "'API key' is required"),
        (entered(api_key="   "), "api_key", "'API key' is required"),
        (entered(workspace=""), "workspace", "'Workspace' is required"),
        (entered(region="mars"), "region", "'Region' must be one of the offered options"),
        (entered(region="Europe"), "region", "'Region' must be one of the offered options"),
        (entered(workspace=["acme"]), "workspace", "'Workspace' must be text"),
        (entered(workspace=True), "workspace", "'Workspace' must be text"),
        (entered(workspace="x" * 10_001), "workspace", "'Workspace' is longer than 10000"),
        (entered(secret="x"), "secret", "unknown field 'secret'"),
    ],
)
async def test_invalid_input_names_the_field(
    client: OutboundClient,
    sent: list[httpx.Request],
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        await connect(client, definition(validate="https://api.example.test/me"), fields)

    assert caught.value.field == field
    assert caught.value.message.startswith(message)
    assert sent == [], "nothing is sent before the fields are valid"


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "tab\there", "esc\x1b[0m", "del\x7f"])
@pytest.mark.parametrize(("name", "label"), [("workspace", "Workspace"), ("api_key", "API key")])
async def test_control_characters_are_refused(
    client: OutboundClient, bad: str, name: str, label: str
) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        await connect(client, definition(), entered(**{name: bad}))

    assert caught.value.field == name
    assert caught.value.message == f"'{label}' contains control characters"
    assert bad not in caught.value.message


async def test_textarea_keeps_line_breaks_but_not_nul(client: OutboundClient) -> None:
    note = "first line\r\n\tsecond line"
    result = await connect(client, definition(), entered(note=note))
    assert result.credentials["note"] == note

    with pytest.raises(errors.InvalidInput) as caught:
        await connect(client, definition(), entered(note="a\x00b"))
    assert caught.value.field == "note"


# --- validate ----------------------------------------------------------------------------------


async def test_validate_url_sends_the_key_and_accepts(
    client: OutboundClient, sent: list[httpx.Request]
) -> None:
    found = definition(
        validate={"url": "https://api.example.test/me", "headers": {"X-Api-Key": "{{api_key}}"}}
    )

    result = await connect(client, found, entered())

    assert [request.url.path for request in sent] == ["/me"]
    assert sent[0].headers["x-api-key"] == KEY
    assert result.credentials["api_key"] == KEY


async def test_validate_refused_by_provider(client: OutboundClient) -> None:
    found = definition(
        validate={"url": "https://api.example.test/me", "headers": {"X-Api-Key": "{{api_key}}"}}
    )

    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, found, entered(api_key="key-wrong-0000"))

    assert caught.value.message == "Unknown key"


@pytest.mark.parametrize("is_async", [True, False])
async def test_validate_returning_false_rejects(client: OutboundClient, is_async: bool) -> None:
    calls: list[str] = []

    def check(context: Context) -> bool:
        calls.append(context.api_key)
        return False

    async def check_async(context: Context) -> bool:
        return check(context)

    found = definition(validate=check_async if is_async else check)

    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, found, entered())

    assert caught.value.message == "The credentials were not accepted."
    assert calls == [KEY]


@pytest.mark.parametrize("outcome", [True, None, {"anything": 1}, "ok"])
async def test_validate_returning_anything_else_accepts(
    client: OutboundClient, outcome: Any
) -> None:
    result = await connect(client, definition(validate=lambda context: outcome), entered())
    assert result.credentials == {"workspace": "acme", "api_key": KEY, "region": "eu"}
    assert result.expires_at is None


async def test_exception_message_is_shown_with_the_key_redacted(client: OutboundClient) -> None:
    async def validate(context: Context) -> bool:
        raise Exception(f"bad key {context.api_key}")

    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, definition(validate=validate), entered())

    assert caught.value.message == "bad key [redacted]"
    assert KEY not in str(caught.value)


async def test_exception_without_message_shows_its_type(client: OutboundClient) -> None:
    def validate(context: Context) -> bool:
        raise LookupError

    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, definition(validate=validate), entered())

    assert caught.value.message == "LookupError"


async def test_context_credentials_rejected_passes_through(client: OutboundClient) -> None:
    def validate(context: Context) -> bool:
        raise context.CredentialsRejected("This key is read-only; create a full-access key.")

    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, definition(validate=validate), entered())

    assert caught.value.message == "This key is read-only; create a full-access key."


async def test_err_callback_message_is_redacted(
    client: OutboundClient, sent: list[httpx.Request]
) -> None:
    def callback(error: errors.ProviderError) -> None:
        raise Exception(f"{error.message}: {KEY} was refused")

    found = definition(
        validate={"url": "https://api.example.test/me?key={{api_key}}"},
        validateErrCallback=callback,
    )

    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, found, entered())

    assert caught.value.message == "Unknown key: [redacted] was refused"
    assert len(sent) == 1


async def test_context_values_in_both_spellings(client: OutboundClient) -> None:
    seen: dict[str, Any] = {}

    def validate(context: Context) -> bool:
        seen["snake"] = context.api_key
        seen["camel"] = context.apiKey
        seen["item"] = context["workspace"]
        return True

    await connect(client, definition(validate=validate), entered())

    assert seen == {"snake": KEY, "camel": KEY, "item": "acme"}


async def test_camel_case_field_is_readable_in_snake_case(client: OutboundClient) -> None:
    found = parse_definition(
        "apiKey",
        {"auth": {"apiKey": {"name": "API Key"}}, "validate": lambda context: context.api_key},
    )

    result = await get_mechanism("api_key").connect(
        found, Context(http=client, now=NOW, fields={"apiKey": KEY})
    )

    assert result.credentials == {"apiKey": KEY}


# --- account name ------------------------------------------------------------------------------


async def test_account_name_from_profile_path(client: OutboundClient) -> None:
    found = definition(
        requestProfileInfo={
            "url": "https://api.example.test/me",
            "headers": {"X-Api-Key": "{{api_key}}"},
        },
        accountNameFromProfileInfo="user.email",
    )

    result = await connect(client, found, entered())

    assert result.account_name == "me@example.test"
    assert result.profile == {"user": {"email": "me@example.test"}}


async def test_account_name_from_entered_field_without_profile(client: OutboundClient) -> None:
    result = await connect(client, definition(accountNameFromProfileInfo="workspace"), entered())
    assert result.account_name == "acme"


async def test_account_name_never_taken_from_a_password_field(client: OutboundClient) -> None:
    by_path = definition(accountNameFromProfileInfo="api_key")
    result = await connect(client, by_path, entered())
    assert result.account_name is None

    only_secret = parse_definition(
        "apiKey", {"auth": {"name": {"type": "password", "name": "Token"}}}
    )
    result = await get_mechanism("api_key").connect(
        only_secret, Context(http=client, now=NOW, fields={"name": KEY})
    )
    assert result.account_name is None, "the 'name' heuristic skips a masked field"
    assert result.credentials == {"name": KEY}


async def test_account_name_from_callable(client: OutboundClient) -> None:
    found = definition(accountNameFromProfileInfo=lambda context: f"{context.workspace} (EU)")
    result = await connect(client, found, entered())
    assert result.account_name == "acme (EU)"


async def test_profile_must_be_an_object(client: OutboundClient) -> None:
    found = definition(requestProfileInfo=lambda context: ["not", "an", "object"])

    with pytest.raises(errors.ProviderError) as caught:
        await connect(client, found, entered())

    assert caught.value.message == "the profile request did not return a JSON object"


async def test_a_lone_surrogate_is_refused_before_anything_is_stored(
    client: OutboundClient,
) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        await connect(client, definition(), entered(workspace="a\ud800"))

    assert caught.value.field == "workspace"
    assert caught.value.message == "'Workspace' is not valid text"
