"""The message shown when a provider refuses: every common error shape, HTML never shown,
transient failures told apart, and an echoed secret redacted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from authbridge.connectors.models import ApiKeyDefinition, FieldSpec
from authbridge.connectors.request_models import RequestSpec
from authbridge.errors import CredentialsRejected, ProviderError, ProviderUnavailable
from authbridge.mechanisms import Context, get_mechanism
from tests.support.providers import ProviderSuite

pytestmark = pytest.mark.anyio

MakeContext = Callable[..., Context]
API_KEY = "sk_live_5fG7hQ2mZ9"


def definition_for(base_url: str, shape: str, **validate: Any) -> ApiKeyDefinition:
    spec = {"url": f"{base_url}/errors/{shape}", "headers": {"X-Api-Key": "{{api_key}}"}}
    return ApiKeyDefinition(
        auth={"api_key": FieldSpec(type="password", name="API key")},
        validate_=RequestSpec.model_validate({**spec, **validate}),
    )


async def connect(definition: ApiKeyDefinition, context: Context) -> None:
    await get_mechanism(definition.type).connect(definition, context)


REJECTIONS = [
    ("message", 401, "Invalid API key provided."),
    ("error-string", 401, "The API key is not active."),
    ("error-description", 400, "The key has been revoked."),
    ("errors-list", 422, "The key has expired."),
    ("detail-string", 403, "Not enough permissions for this key."),
    ("detail-list", 422, "Field required; Input should be 'eu' or 'us'"),
    ("plain-text", 401, "Bad API key."),
    ("html", 401, "401 Unauthorized"),
    ("empty-403", 403, "403 Forbidden"),
    ("not-found", 404, "No such endpoint."),
]


@pytest.mark.parametrize(("shape", "status", "expected"), REJECTIONS)
async def test_validate_failure_shows_the_providers_message(
    shape: str,
    status: int,
    expected: str,
    base_url: str,
    make_context: MakeContext,
    providers: ProviderSuite,
) -> None:
    with pytest.raises(CredentialsRejected) as caught:
        await connect(definition_for(base_url, shape), make_context(api_key=API_KEY))

    assert caught.value.message == expected
    assert caught.value.status_code == status
    [received] = providers.errors.received
    assert received.path == f"/errors/{shape}"
    assert received.headers["x-api-key"] == API_KEY


@pytest.mark.parametrize(
    ("shape", "error_type"),
    [
        ("message", CredentialsRejected),
        ("detail-string", CredentialsRejected),
        ("error-description", ProviderError),
        ("not-found", ProviderError),
        ("server-error", ProviderUnavailable),
    ],
)
async def test_request_outside_validate_keeps_the_status_class(
    shape: str,
    error_type: type[ProviderError],
    base_url: str,
    make_context: MakeContext,
    providers: ProviderSuite,
) -> None:
    """Only 401/403 mean "wrong credentials" for a plain request; validate treats any refusal
    as one (the test above)."""
    context = make_context(api_key=API_KEY)

    with pytest.raises(ProviderError) as caught:
        await context.request({"url": f"{base_url}/errors/{shape}"})

    assert type(caught.value) is error_type


async def test_html_error_page_is_never_shown(
    base_url: str, make_context: MakeContext, providers: ProviderSuite
) -> None:
    with pytest.raises(CredentialsRejected) as caught:
        await connect(definition_for(base_url, "html"), make_context(api_key=API_KEY))

    message = caught.value.message
    assert message == "401 Unauthorized"
    for fragment in ("<", ">", "script", "evil.example", "Access denied"):
        assert fragment not in message


@pytest.mark.parametrize(
    ("shape", "status", "expected", "retry_after"),
    [
        ("server-error", 500, "Internal failure, request id 77.", None),
        ("bad-gateway-html", 502, "502 Bad Gateway", None),
        ("rate-limited", 429, "Too many requests.", 30.0),
    ],
)
async def test_transient_failures_are_provider_unavailable(
    shape: str,
    status: int,
    expected: str,
    retry_after: float | None,
    base_url: str,
    make_context: MakeContext,
    providers: ProviderSuite,
) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await connect(definition_for(base_url, shape), make_context(api_key=API_KEY))

    error = caught.value
    assert not isinstance(error, CredentialsRejected)
    assert (error.status_code, error.message, error.retry_after) == (status, expected, retry_after)
    assert len(providers.errors.received) == 1


async def test_unreachable_provider_is_unavailable(make_context: MakeContext) -> None:
    definition = ApiKeyDefinition(
        auth={"api_key": FieldSpec(type="password", name="API key")},
        validate_="http://127.0.0.1:1/unreachable?key={{api_key}}",
    )

    with pytest.raises(ProviderUnavailable) as caught:
        await connect(definition, make_context(api_key=API_KEY))

    assert (
        caught.value.message == "GET http://127.0.0.1:1/unreachable: could not reach the provider"
    )


@pytest.mark.parametrize(
    ("key", "where"),
    [
        (API_KEY, {"headers": {"X-Api-Key": "{{api_key}}"}}),
        # sent in the query (percent-encoded there), echoed decoded
        ("k3y/with space+plus&more", {"headers": {}, "params": {"api_key": "{{api_key}}"}}),
    ],
)
async def test_echoed_api_key_is_redacted(
    key: str,
    where: dict[str, Any],
    base_url: str,
    make_context: MakeContext,
    providers: ProviderSuite,
) -> None:
    definition = definition_for(base_url, "echo", **where)

    with pytest.raises(CredentialsRejected) as caught:
        await connect(definition, make_context(api_key=key))

    [received] = providers.errors.received
    assert key in (received.headers.get("x-api-key"), received.query.get("api_key"))
    message = caught.value.message
    assert key not in message
    assert key not in str(caught.value)
    assert message == "The API key '[redacted]' is not valid (key=[redacted])."


async def test_echoed_key_is_redacted_from_a_callable_validate(
    base_url: str, make_context: MakeContext, providers: ProviderSuite
) -> None:
    async def validate(context: Context) -> bool:
        await context.request(
            {"url": f"{base_url}/errors/echo", "headers": {"X-Api-Key": "{{api_key}}"}}
        )
        return True

    definition = ApiKeyDefinition(
        auth={"api_key": FieldSpec(type="password", name="API key")}, validate_=validate
    )

    with pytest.raises(CredentialsRejected) as caught:
        await connect(definition, make_context(api_key=API_KEY))

    assert API_KEY not in caught.value.message
    assert "[redacted]" in caught.value.message
