from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

import authbridge.http
from authbridge import __version__
from authbridge.connectors.request_models import RequestSpec
from authbridge.errors import (
    CredentialsRejected,
    MissingTemplateValue,
    ProviderError,
    ProviderUnavailable,
    TemplateError,
    UnsafeTemplateValue,
)
from authbridge.http import EgressPolicy, OutboundClient, ProviderResponse
from tests.support.loopback import Received, RecordingApp, port_of

pytestmark = pytest.mark.anyio

Start = Callable[..., str]


def spec(**fields: Any) -> RequestSpec:
    return RequestSpec.model_validate(fields)


def test_public_api_is_curated() -> None:
    assert sorted(authbridge.http.__all__) == [
        "EgressPolicy",
        "HostTarget",
        "OutboundClient",
        "ProviderResponse",
        "error_for_status",
        "outbound_ssl_context",
        "parse_body",
        "parse_host_map",
        "parse_retry_after",
        "provider_message",
    ]
    for name in authbridge.http.__all__:
        assert getattr(authbridge.http, name) is not None


async def test_execute_renders_and_sends_a_get(client: OutboundClient, loopback: Start) -> None:
    app = RecordingApp(lambda received: JSONResponse({"id": 7, "name": "Ann"}))
    port = port_of(loopback(app))
    request = spec(
        url=f"http://{{{{domain}}}}.freshdesk.test:{port}/api/v2/agents/me?fixed=1",
        headers={"X-Api-Key": "{{api_key}}", "Accept": "application/json"},
        params={"expand": "{{expand}}", "limit": 5},
    )
    values = {"domain": "acme", "api_key": "k-123", "expand": "a b&c"}
    response = await client.execute(request, values)
    assert response == ProviderResponse(200, response.headers, {"id": 7, "name": "Ann"})
    (received,) = app.requests
    assert received.method == "GET"
    assert received.path == "/api/v2/agents/me"
    assert received.query == "fixed=1&expand=a+b%26c&limit=5"
    assert received.headers["host"] == f"acme.freshdesk.test:{port}"
    assert received.headers["x-api-key"] == "k-123"
    assert received.headers["user-agent"] == f"authbridge/{__version__}"


async def test_execute_uses_the_default_method_and_a_json_body(
    client: OutboundClient, loopback: Start
) -> None:
    app = RecordingApp()
    base = loopback(app)
    request = spec(
        url=f"{base}/token", json={"code": "{{code}}", "n": "{{n}}", "nested": ["{{code}}"]}
    )
    await client.execute(request, {"code": "abc", "n": 3}, default_method="post")
    (received,) = app.requests
    assert received.method == "POST"
    assert received.headers["content-type"] == "application/json"
    assert json.loads(received.body) == {"code": "abc", "n": 3, "nested": ["abc"]}


async def test_execute_sends_form_data_and_basic_auth(
    client: OutboundClient, loopback: Start
) -> None:
    app = RecordingApp()
    base = loopback(app)
    request = spec(
        method="POST",
        url=f"{base}/oauth/token",
        data={"grant_type": "authorization_code", "code": "{{code}}"},
        auth={"username": "{{client_id}}", "password": "{{client_secret}}"},
    )
    values = {"code": "a&b=c", "client_id": "cid", "client_secret": "s:cret"}
    await client.execute(request, values)
    (received,) = app.requests
    assert received.body == b"grant_type=authorization_code&code=a%26b%3Dc"
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(b"cid:s:cret").decode()
    assert received.headers["authorization"] == f"Basic {expected}"


async def test_execute_sends_a_raw_text_body_and_bearer(
    client: OutboundClient, loopback: Start
) -> None:
    app = RecordingApp()
    base = loopback(app)
    request = spec(
        method="PUT",
        url=f"{base}/raw",
        data="token={{token}}",
        auth={"bearer": "{{token}}"},
        headers={"Content-Type": "text/plain"},
    )
    await client.execute(request, {"token": "tok-1"})
    (received,) = app.requests
    assert received.method == "PUT"
    assert received.body == b"token=tok-1"
    assert received.headers["authorization"] == "Bearer tok-1"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (JSONResponse({"a": 1}), {"a": 1}),
        (Response(b'{"a": [1]}', media_type="application/vnd.api+json"), {"a": [1]}),
        (PlainTextResponse('{"a": 2}'), {"a": 2}),
        (PlainTextResponse("[1, 2]"), [1, 2]),
        (PlainTextResponse("{not json"), "{not json"),
        (
            Response(b"access_token=x&scope=a+b", media_type="application/x-www-form-urlencoded"),
            {"access_token": "x", "scope": "a b"},
        ),
        (
            PlainTextResponse("oauth_token=t&oauth_token_secret=s"),
            {"oauth_token": "t", "oauth_token_secret": "s"},
        ),
        (PlainTextResponse("hello world"), "hello world"),
        (Response(status_code=204), None),
    ],
)
async def test_execute_parses_the_body_by_content_type(
    client: OutboundClient, loopback: Start, reply: Response, expected: object
) -> None:
    base = loopback(RecordingApp(lambda received: reply))
    response = await client.execute(spec(url=f"{base}/x"), {})
    assert response.body == expected


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, CredentialsRejected),
        (403, CredentialsRejected),
        (404, ProviderError),
        (422, ProviderError),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
    ],
)
async def test_execute_maps_error_statuses(
    client: OutboundClient, loopback: Start, status: int, error_class: type[ProviderError]
) -> None:
    body = {"error": "bad", "error_description": "The key sk-123 is not valid"}
    base = loopback(RecordingApp(lambda received: JSONResponse(body, status_code=status)))
    with pytest.raises(error_class) as raised:
        await client.execute(
            spec(url=f"{base}/me?key={{{{key}}}}"), {"key": "sk-123"}, secrets=["sk-123"]
        )
    assert type(raised.value) is error_class
    assert raised.value.status_code == status
    assert raised.value.body == body
    assert raised.value.message == "The key [redacted] is not valid"


async def test_execute_redacts_auth_secrets_even_when_not_listed(
    client: OutboundClient, loopback: Start
) -> None:
    reply = PlainTextResponse("token tok-secret-1 revoked", status_code=401)
    base = loopback(RecordingApp(lambda received: reply))
    with pytest.raises(CredentialsRejected, match=r"^token \[redacted\] revoked$"):
        await client.execute(
            spec(url=f"{base}/me", auth={"bearer": "{{t}}"}), {"t": "tok-secret-1"}
        )


async def test_execute_429_carries_retry_after(client: OutboundClient, loopback: Start) -> None:
    reply = PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "12"})
    base = loopback(RecordingApp(lambda received: reply))
    with pytest.raises(ProviderUnavailable) as raised:
        await client.execute(spec(url=f"{base}/me"), {})
    assert raised.value.retry_after == 12.0
    assert raised.value.message == "slow down"


async def test_timeout_is_unavailable_and_names_the_template_only(loopback: Start) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep(1)
        await PlainTextResponse("late")(scope, receive, send)

    port = port_of(loopback(slow))
    request = spec(
        url=f"http://{{{{domain}}}}.freshdesk.test:{port}/api?key={{{{key}}}}", timeout=0.2
    )
    policy = EgressPolicy(allow_loopback=True, resolve={"*.freshdesk.test": "127.0.0.1"})
    async with OutboundClient(policy) as client:
        with pytest.raises(ProviderUnavailable) as raised:
            await client.execute(request, {"domain": "acme", "key": "secret-key"})
    message = str(raised.value)
    assert message == (
        f"GET http://{{{{domain}}}}.freshdesk.test:{port}/api: the provider did not answer in time"
    )
    assert "secret-key" not in message


async def test_connection_refused_is_unavailable(client: OutboundClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProviderUnavailable, match="could not reach the provider"):
        await client.execute(spec(url=f"http://127.0.0.1:{port}/x"), {})


async def test_unresolvable_name_is_unavailable() -> None:
    async with OutboundClient(EgressPolicy(allow_loopback=True)) as client:
        with pytest.raises(ProviderUnavailable):
            await client.execute(spec(url="http://does-not-exist.invalid/x"), {})


async def test_redirects_are_followed_up_to_five(client: OutboundClient, loopback: Start) -> None:
    def hop(received: Received) -> Response:
        number = int(received.path.rsplit("/", 1)[1])
        if number < 5:
            return RedirectResponse(f"/hop/{number + 1}", status_code=302)
        return JSONResponse({"arrived": number})

    app = RecordingApp(hop)
    base = loopback(app)
    response = await client.execute(spec(url=f"{base}/hop/0"), {})
    assert response.body == {"arrived": 5}
    assert len(app.requests) == 6


async def test_more_than_five_redirects_fail(client: OutboundClient, loopback: Start) -> None:
    app = RecordingApp(lambda received: RedirectResponse("/again", status_code=302))
    base = loopback(app)
    with pytest.raises(ProviderError, match="more than 5 redirects"):
        await client.execute(spec(url=f"{base}/start"), {})
    assert len(app.requests) == 6


async def test_https_to_http_redirect_is_refused() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://api.test/plain"})

    policy = EgressPolicy(allow_loopback=True, resolve={"api.test": "127.0.0.1"})
    async with OutboundClient(policy, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ProviderError, match="insecure"):
            await client.execute(spec(url="https://api.test/start"), {})
    assert seen == ["https://api.test/start"]


class _StampAuth(httpx.Auth):
    """A stand-in signer: adds a header computed from the request it signs."""

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Stamp {request.method} {request.url.path}"
        yield request


async def test_execute_signs_with_the_given_auth(client: OutboundClient, loopback: Start) -> None:
    app = RecordingApp()
    base = loopback(app)
    await client.execute(spec(url=f"{base}/me"), {}, auth=_StampAuth())
    (received,) = app.requests
    assert received.headers["authorization"] == "Stamp GET /me"


async def test_execute_refuses_a_signer_beside_a_declared_auth(
    client: OutboundClient, loopback: Start
) -> None:
    app = RecordingApp()
    base = loopback(app)
    with pytest.raises(TemplateError, match="may not also declare 'auth'"):
        await client.execute(spec(url=f"{base}/me", auth={"bearer": "t"}), {}, auth=_StampAuth())
    assert app.requests == []


async def test_template_errors_are_raised_before_sending(
    client: OutboundClient, loopback: Start
) -> None:
    app = RecordingApp()
    base = loopback(app)
    with pytest.raises(MissingTemplateValue):
        await client.execute(spec(url=f"{base}/x", headers={"X-Key": "{{key}}"}), {})
    with pytest.raises(UnsafeTemplateValue):
        await client.execute(spec(url=f"{base}/x", auth={"bearer": "{{t}}"}), {"t": "a\nb"})
    with pytest.raises(TemplateError, match="may not hold a placeholder"):
        await client.execute(spec(url=f"{base}/x", headers={"X-{{n}}": "v"}), {"n": "a"})
    assert app.requests == []


async def test_request_returns_any_status(client: OutboundClient, loopback: Start) -> None:
    base = loopback(RecordingApp(lambda received: PlainTextResponse("missing", status_code=404)))
    response = await client.get(f"{base}/nothing")
    assert response.status_code == 404
    posted = await client.post(f"{base}/nothing", json={"a": 1})
    assert posted.status_code == 404


async def test_request_failure_names_only_scheme_and_host(client: OutboundClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProviderUnavailable) as raised:
        await client.get(f"http://127.0.0.1:{port}/bot123:secret/getMe?key=k1")
    assert str(raised.value) == "GET http://127.0.0.1: could not reach the provider"


async def test_closed_client_refuses_requests(loopback: Start) -> None:
    base = loopback(RecordingApp())
    client = OutboundClient(EgressPolicy(allow_loopback=True))
    assert (await client.get(f"{base}/x")).status_code == 200
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get(f"{base}/x")
