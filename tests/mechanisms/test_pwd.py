"""The ``pwd`` mechanism: username and password, kept as they are (HTTP Basic) or exchanged by
``validate`` for a token with an expiry, renewed by logging in again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authbridge import errors
from authbridge.connectors.models import PwdDefinition, parse_definition
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.mechanisms import Context, get_mechanism
from authbridge.mechanisms.pwd import PwdMechanism
from tests.support.loopback import serve
from tests.support.providers import PasswordService

pytestmark = pytest.mark.anyio

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
USERNAME = "ada@example.test"
PASSWORD = "p4ss-W0rd-x9"


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    async with OutboundClient() as outbound:
        yield outbound


def definition(validate: Callable[..., Any], **properties: Any) -> PwdDefinition:
    found = parse_definition("pwd", {"validate": validate, **properties})
    assert isinstance(found, PwdDefinition)
    return found


def context(client: OutboundClient, now: datetime = NOW, **fields: Any) -> Context:
    values = {"username": USERNAME, "password": PASSWORD}
    values.update(fields)
    return Context(http=client, now=now, fields=values)


async def connect(client: OutboundClient, found: PwdDefinition, **fields: Any) -> Any:
    return await get_mechanism("pwd").connect(found, context(client, **fields))


def test_default_form_is_username_and_password() -> None:
    fields = get_mechanism("pwd").form_fields(definition(lambda context: None))

    assert list(fields) == ["username", "password"]
    assert (fields["username"].type, fields["username"].name) == ("text", "Username")
    assert (fields["password"].type, fields["password"].name) == ("password", "Password")


async def test_without_token_the_username_and_password_are_the_credentials(
    client: OutboundClient,
) -> None:
    seen: list[tuple[str, str]] = []

    async def validate(context: Context) -> None:
        seen.append((context.username, context.password))

    result = await connect(client, definition(validate))

    assert seen == [(USERNAME, PASSWORD)]
    assert result.credentials == {"username": USERNAME, "password": PASSWORD}
    assert result.expires_at is None
    assert result.account_name == USERNAME


@pytest.mark.parametrize(
    ("expires", "expected"),
    [
        (3600, NOW + timedelta(hours=1)),
        (90.5, NOW + timedelta(seconds=90.5)),
        ("7200", NOW + timedelta(hours=2)),
        ("2031-06-01T12:00:00Z", datetime(2031, 6, 1, 12, tzinfo=UTC)),
        (
            datetime(2030, 1, 2, 9, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2030, 1, 2, 7, 0, tzinfo=UTC),
        ),
        (None, None),
    ],
)
async def test_token_and_expiry_are_stored(
    client: OutboundClient, expires: Any, expected: datetime | None
) -> None:
    result = await connect(
        client, definition(lambda context: {"token": "tok-1", "expires": expires})
    )

    assert result.credentials == {"username": USERNAME, "password": PASSWORD, "token": "tok-1"}
    assert result.expires_at == expected


async def test_token_without_expiry(client: OutboundClient) -> None:
    result = await connect(client, definition(lambda context: {"token": "forever"}))
    assert result.credentials["token"] == "forever"
    assert result.expires_at is None


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("a token", "'validate' of a pwd connector must return nothing, or an object with"),
        (42, "'validate' of a pwd connector must return nothing, or an object with"),
        (["tok"], "'validate' of a pwd connector must return nothing, or an object with"),
        ({"access_token": "t"}, "'validate' of a pwd connector must return nothing, or an"),
        ({"token": ""}, "the login did not return a token"),
        ({"token": 1234}, "the login did not return a token"),
        ({"token": "t", "expires": "soon"}, "the login returned an unusable expiry"),
        ({"token": "t", "expires": -5}, "the login returned an unusable expiry"),
        ({"token": "t", "expires": True}, "the login returned an unusable expiry"),
    ],
)
async def test_junk_from_validate_is_a_clear_provider_error(
    client: OutboundClient, outcome: Any, message: str
) -> None:
    with pytest.raises(errors.ProviderError) as caught:
        await connect(client, definition(lambda context: outcome))

    assert type(caught.value) is errors.ProviderError, "not the end user's fault"
    assert caught.value.message.startswith(message)


async def test_validate_returning_false_rejects(client: OutboundClient) -> None:
    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, definition(lambda context: False))

    assert caught.value.message == "The credentials were not accepted."


async def test_raised_message_is_shown_with_the_password_redacted(client: OutboundClient) -> None:
    def validate(context: Context) -> None:
        raise Exception(f"Invalid username/password combination ({context.password}).")

    with pytest.raises(errors.CredentialsRejected) as caught:
        await connect(client, definition(validate))

    assert caught.value.message == "Invalid username/password combination ([redacted])."
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"password": ""}, "password", "'Password' is required"),
        ({"username": "  "}, "username", "'Username' is required"),
        ({"username": "ada\r\nX-Injected: 1"}, "username", "'Username' contains control"),
        ({"password": "pw\x00"}, "password", "'Password' contains control characters"),
        ({"otp": "123456"}, "otp", "unknown field 'otp'"),
    ],
)
async def test_invalid_input_names_the_field(
    client: OutboundClient, fields: dict[str, Any], field: str, message: str
) -> None:
    calls: list[Context] = []

    with pytest.raises(errors.InvalidInput) as caught:
        await connect(client, definition(calls.append), **fields)

    assert caught.value.field == field
    assert caught.value.message.startswith(message)
    assert calls == [], "validate is not called with invalid input"


async def test_password_is_kept_exactly_as_entered(client: OutboundClient) -> None:
    sent: list[str] = []
    result = await connect(
        client, definition(lambda context: sent.append(context.password)), password=" pw x "
    )

    assert sent == [" pw x "]
    assert result.credentials["password"] == " pw x "


async def test_account_name_never_taken_from_the_password(client: OutboundClient) -> None:
    by_path = await connect(
        client, definition(lambda context: None, accountNameFromProfileInfo="password")
    )
    assert by_path.account_name is None

    custom = parse_definition(
        "pwd",
        {
            "auth": {
                "name": {"type": "password", "name": "Passphrase"},
                "id": {"type": "text", "name": "Account id"},
            },
            "validate": lambda context: None,
        },
    )
    result = await get_mechanism("pwd").connect(
        custom, Context(http=client, now=NOW, fields={"name": PASSWORD, "id": "acct-7"})
    )
    assert result.account_name == "acct-7", "'name' is skipped: it is a masked field"


async def test_refresh_logs_in_again_with_stored_username_and_password(
    client: OutboundClient,
) -> None:
    logins: list[dict[str, Any]] = []

    async def validate(context: Context) -> dict[str, Any]:
        logins.append({"fields": dict(context.fields), "tokens": dict(context.tokens)})
        return {"token": f"tok-{len(logins)}", "expires": 600}

    found = definition(validate)
    mechanism = get_mechanism("pwd")
    assert isinstance(mechanism, PwdMechanism)
    first = await mechanism.connect(found, context(client))
    later = NOW + timedelta(minutes=9)

    stored = Context(
        http=client,
        now=later,
        fields=first.credentials,
        tokens={"token": first.credentials["token"]},
    )
    refreshed = await mechanism.refresh(found, stored)

    assert [login["fields"] for login in logins] == [
        {"username": USERNAME, "password": PASSWORD},
        {"username": USERNAME, "password": PASSWORD},
    ]
    assert logins[1]["tokens"] == {}, "the old token is not offered to the new login"
    assert refreshed.credentials == {"username": USERNAME, "password": PASSWORD, "token": "tok-2"}
    assert refreshed.expires_at == later + timedelta(seconds=600)


async def test_refresh_with_a_changed_password_is_rejected(client: OutboundClient) -> None:
    def validate(context: Context) -> dict[str, str]:
        if context.password != "new password":
            raise context.CredentialsRejected("Invalid username or password")
        return {"token": "t"}

    with pytest.raises(errors.CredentialsRejected) as caught:
        await get_mechanism("pwd").refresh(definition(validate), context(client))

    assert caught.value.message == "Invalid username or password"


async def test_api_keys_cannot_be_refreshed(client: OutboundClient) -> None:
    found = parse_definition("apiKey", {"auth": {"key": {"name": "Key"}}})

    with pytest.raises(errors.AuthBridgeError) as caught:
        await get_mechanism("api_key").refresh(found, Context(http=client, now=NOW))

    assert caught.value.message == "'api_key' credentials cannot be refreshed"


# --- the expiry's spellings: expires, expiresIn, expires_in (issue 13) -------------------------


@pytest.fixture(scope="module")
def login_server() -> Iterator[str]:
    """A login endpoint answering ``{token, <spelling>: 3600}`` for ``/login/<spelling>``."""

    async def login(request: Request) -> Response:
        body = await request.json()
        if body != {"username": USERNAME, "password": PASSWORD}:
            return JSONResponse({"message": "Invalid username or password"}, status_code=401)
        return JSONResponse({"token": "tok-9", request.path_params["spelling"]: 3600})

    app = Starlette(routes=[Route("/login/{spelling}", login, methods=["POST"])])
    with serve(app) as url:
        yield url


@pytest.mark.parametrize("spelling", ["expires", "expiresIn", "expires_in"])
async def test_a_declarative_login_reads_every_spelling_of_the_expiry(
    login_server: str, spelling: str
) -> None:
    """A ported ``auth.yaml``: ``validate`` is a request spec whose answer is stored."""
    found = parse_definition(
        "pwd",
        {
            "validate": {
                "method": "POST",
                "url": f"{login_server}/login/{spelling}",
                "json": {"username": "{{username}}", "password": "{{password}}"},
            }
        },
    )
    async with OutboundClient(EgressPolicy(allow_loopback=True), timeout=5) as client:
        result = await connect(client, found)

    assert result.credentials["token"] == "tok-9"
    assert result.expires_at == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ({"token": "t", "expiresIn": 600}, NOW + timedelta(minutes=10)),
        ({"token": "t", "expires_in": "7200"}, NOW + timedelta(hours=2)),
        ({"token": "t", "expires": None, "expiresIn": 60}, NOW + timedelta(minutes=1)),
        ({"token": "t", "expires": 60, "expires_in": 7200}, NOW + timedelta(minutes=1)),
    ],
)
async def test_validate_code_may_spell_the_expiry_as_the_provider_does(
    client: OutboundClient, outcome: dict[str, Any], expected: datetime
) -> None:
    result = await connect(client, definition(lambda context: outcome))
    assert result.expires_at == expected


async def test_an_unusable_expiry_names_its_spelling(client: OutboundClient) -> None:
    with pytest.raises(errors.ProviderError) as caught:
        await connect(client, definition(lambda context: {"token": "t", "expiresIn": "soon"}))
    assert caught.value.message.startswith("the login returned an unusable expiry (expiresIn)")


# --- a raw login body keeps each entered value in its field (issue 17) -------------------------


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ("username={{username}}&password={{password}}", {}),
        ('{"username": "{{username}}", "password": "{{password}}"}', {}),
        ('{"username": "{{username}}", "password": {{password}}}', {"Content-Type": "text/json"}),
    ],
    ids=["form", "json", "json-declared"],
)
async def test_a_raw_login_body_sends_each_entered_value_as_entered(
    data: str, headers: dict[str, str]
) -> None:
    """A username ``alice&scope=admin`` (or one closing a JSON string) stays the username:
    it adds no parameter to the login request."""
    hostile = {"alice&scope=admin": 'pw", "scope": "admin', 'a", "scope": "admin': "pw&x=1"}
    provider = PasswordService(hostile)
    with serve(provider.app) as base_url:
        login = {"method": "POST", "url": f"{base_url}/auth", "data": data, "headers": headers}
        found = parse_definition("pwd", {"validate": login})
        assert isinstance(found, PwdDefinition)
        async with OutboundClient(EgressPolicy(allow_loopback=True), timeout=5) as client:
            for username, password in hostile.items():
                result = await connect(client, found, username=username, password=password)
                assert result.credentials["token"] == provider.tokens[-1]
    for received, (username, password) in zip(provider.received, hostile.items(), strict=True):
        if received.headers["content-type"].startswith("application/x-www-form-urlencoded"):
            sent = parse_qs(received.body.decode())
            assert sent == {"username": [username], "password": [password]}
        else:
            assert received.json() == {"username": username, "password": password}
