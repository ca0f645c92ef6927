"""The ``jwt`` mechanism: a verified token's ``authData`` runs through the form pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from authbridge import errors
from authbridge.connectors.models import JwtDefinition, parse_definition
from authbridge.hostjwt import JwtKey
from authbridge.http import OutboundClient
from authbridge.mechanisms import Context, get_mechanism
from authbridge.mechanisms.jwt import JwtMechanism, auth_data_from

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SECRET = b"environment-secret-0123456789-abcdefghij"
KEYS = [JwtKey.hmac(SECRET, kid="env")]
AUTH_DATA = {"api_key": "key-123", "workspace": "  acme  "}

pytestmark = pytest.mark.anyio


@pytest.fixture
async def context() -> AsyncIterator[Context]:
    client = OutboundClient()
    try:
        yield Context(http=client, now=NOW)
    finally:
        await client.aclose()


def token_for(payload: dict[str, Any], secret: bytes = SECRET, **extra: Any) -> str:
    claims = {"sub": "user-42", "iat": NOW_TS, "exp": NOW_TS + 300, **extra, **payload}
    return pyjwt.encode(claims, secret, algorithm="HS256", headers={"kid": "env"})


def definition(**properties: Any) -> JwtDefinition:
    def profile(context: Context) -> dict[str, Any]:
        return {"account": {"label": f"{context.workspace} workspace"}}

    raw: dict[str, Any] = {
        "auth": {
            "api_key": {"type": "password", "name": "API key"},
            "workspace": {"type": "text", "name": "Workspace"},
        },
        "requestProfileInfo": profile,
        "accountNameFromProfileInfo": "account.label",
        **properties,
    }
    parsed = parse_definition("jwt", raw)
    assert isinstance(parsed, JwtDefinition)
    return parsed


MECHANISM = JwtMechanism()


def test_registered_for_the_jwt_type() -> None:
    assert isinstance(get_mechanism("jwt"), JwtMechanism)


async def test_auth_data_becomes_the_credentials(context: Context) -> None:
    seen: list[str] = []

    def validate(ctx: Context) -> bool:
        seen.append(ctx.api_key)
        return True

    token = token_for({"authData": AUTH_DATA})
    claims, result = await MECHANISM.connect_with_token(
        definition(validate=validate), token, KEYS, context
    )
    assert claims["sub"] == "user-42"
    assert claims["authData"] == AUTH_DATA
    assert dict(result.credentials) == {"api_key": "key-123", "workspace": "acme"}
    assert seen == ["key-123"]
    assert result.account_name == "acme workspace"
    assert result.profile == {"account": {"label": "acme workspace"}}


async def test_snake_case_auth_data_is_accepted(context: Context) -> None:
    token = token_for({"auth_data": AUTH_DATA})
    _, result = await MECHANISM.connect_with_token(definition(), token, KEYS, context)
    assert result.credentials["workspace"] == "acme"


async def test_account_name_from_the_fields_without_a_profile(context: Context) -> None:
    simple = definition(requestProfileInfo=None, accountNameFromProfileInfo="workspace")
    _, result = await MECHANISM.connect_with_token(
        simple, token_for({"authData": AUTH_DATA}), KEYS, context
    )
    assert result.account_name == "acme"


async def test_public_key_token(context: Context) -> None:
    private_key = ed25519.Ed25519PrivateKey.generate()
    pem = private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    claims = {"sub": "user-7", "exp": NOW_TS + 60, "authData": AUTH_DATA}
    token = pyjwt.encode(claims, private_key, algorithm="EdDSA")
    verified, result = await MECHANISM.connect_with_token(
        definition(), token, [JwtKey.public(pem.decode())], context
    )
    assert verified["sub"] == "user-7"
    assert result.credentials["api_key"] == "key-123"


async def test_the_context_clock_is_used(context: Context) -> None:
    token = token_for({"authData": AUTH_DATA})
    late = context.replace(now=NOW + timedelta(hours=1))
    with pytest.raises(errors.JwtError, match=r"^the token has expired$"):
        await MECHANISM.connect_with_token(definition(), token, KEYS, late)


async def test_audience_and_issuer_are_checked(context: Context) -> None:
    token = token_for({"authData": AUTH_DATA}, aud="authbridge", iss="https://host.example")
    claims, _ = await MECHANISM.connect_with_token(
        definition(), token, KEYS, context, audience="authbridge", issuer="https://host.example"
    )
    assert claims["aud"] == "authbridge"
    with pytest.raises(errors.JwtError, match=r"^audience mismatch$"):
        await MECHANISM.connect_with_token(
            definition(), token, KEYS, context, audience="other", issuer="https://host.example"
        )
    with pytest.raises(errors.JwtError, match=r"^issuer mismatch$"):
        await MECHANISM.connect_with_token(
            definition(), token, KEYS, context, audience="authbridge", issuer="https://evil"
        )


async def test_refused_token_never_reaches_validate(context: Context) -> None:
    calls: list[Context] = []
    token = token_for({"authData": AUTH_DATA}, secret=b"w" * 40)
    with pytest.raises(errors.JwtError, match=r"^the token's signature is invalid$") as caught:
        await MECHANISM.connect_with_token(definition(validate=calls.append), token, KEYS, context)
    assert calls == []
    assert token not in caught.value.message
    assert "key-123" not in caught.value.message


async def test_missing_auth_data_is_refused(context: Context) -> None:
    with pytest.raises(errors.JwtError, match=r"^the token has no authData claim$"):
        await MECHANISM.connect_with_token(definition(), token_for({}), KEYS, context)


@pytest.mark.parametrize("value", ["api_key=k", ["k"], 42])
async def test_auth_data_must_be_an_object(context: Context, value: Any) -> None:
    with pytest.raises(errors.JwtError, match=r"^the authData claim must be an object$"):
        await MECHANISM.connect_with_token(
            definition(), token_for({"authData": value}), KEYS, context
        )


def test_auth_data_given_twice_is_refused() -> None:
    with pytest.raises(errors.JwtError, match="both an authData and an auth_data"):
        auth_data_from({"authData": {}, "auth_data": {}})


async def test_missing_required_field_is_invalid_input(context: Context) -> None:
    token = token_for({"authData": {"workspace": "acme"}})
    with pytest.raises(errors.InvalidInput, match="'API key' is required") as caught:
        await MECHANISM.connect_with_token(definition(), token, KEYS, context)
    assert caught.value.field == "api_key"


async def test_unknown_field_is_invalid_input(context: Context) -> None:
    token = token_for({"authData": {**AUTH_DATA, "password": "hunter2"}})
    with pytest.raises(errors.InvalidInput, match="unknown field 'password'") as caught:
        await MECHANISM.connect_with_token(definition(), token, KEYS, context)
    assert caught.value.field == "password"


async def test_non_text_field_is_invalid_input(context: Context) -> None:
    token = token_for({"authData": {**AUTH_DATA, "workspace": {"id": 1}}})
    with pytest.raises(errors.InvalidInput, match="'Workspace' must be text"):
        await MECHANISM.connect_with_token(definition(), token, KEYS, context)


async def test_validate_that_rejects_raises_credentials_rejected(context: Context) -> None:
    def validate(ctx: Context) -> None:
        if ctx.api_key != "right":
            raise ctx.CredentialsRejected("That API key was revoked.")

    token = token_for({"authData": AUTH_DATA})
    with pytest.raises(errors.CredentialsRejected, match=r"^That API key was revoked\.$"):
        await MECHANISM.connect_with_token(definition(validate=validate), token, KEYS, context)


async def test_validate_returning_false_raises_credentials_rejected(context: Context) -> None:
    async def validate(ctx: Context) -> bool:
        return False

    token = token_for({"authData": AUTH_DATA})
    with pytest.raises(errors.CredentialsRejected):
        await MECHANISM.connect_with_token(definition(validate=validate), token, KEYS, context)


async def test_plain_connect_takes_fields_directly(context: Context) -> None:
    result = await MECHANISM.connect(definition(), context.replace(fields=AUTH_DATA))
    assert dict(result.credentials) == {"api_key": "key-123", "workspace": "acme"}
    assert result.account_name == "acme workspace"
