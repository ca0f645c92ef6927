"""``context.httpRequest``: the axios-like client of ported ``auth.js`` code, over real HTTP to a
loopback provider (the reference's pwd, HTTP Basic and Freshdesk examples, in Python)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authbridge import errors
from authbridge.connectors.models import parse_definition
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.mechanisms import Context, get_mechanism
from authbridge.mechanisms.http_request import HttpResponse
from tests.support.loopback import serve

pytestmark = pytest.mark.anyio

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
USERNAME = "ada@example.test"
PASSWORD = "pw-{{username}}-Zq81"
API_KEY = "key-Wv4x9Lm2"


async def login(request: Request) -> Response:
    body = await request.json()
    valid = body == {"username": USERNAME, "password": PASSWORD}
    return JSONResponse({"isValid": valid, "token": "tok-1" if valid else None, "expiresIn": 3600})


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme != "Basic":
        return None
    username, _, password = base64.b64decode(encoded).decode().partition(":")
    return username, password


async def basic_auth(request: Request) -> Response:
    if _basic(request) != (USERNAME, PASSWORD):
        return JSONResponse({"message": "Bad username or password"}, status_code=401)
    return JSONResponse({"authenticated": True})


async def agents_me(request: Request) -> Response:
    given = _basic(request)
    if given != (API_KEY, "X"):
        shown = ":".join(given or ())  # a careless provider echoes what it was sent
        return JSONResponse({"message": f"Unknown key {shown}"}, status_code=401)
    return JSONResponse({"contact": {"email": "agent@helpdesk.example"}})


async def echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "query": dict(request.query_params),
            "authorization": request.headers.get("authorization"),
            "content_type": request.headers.get("content-type"),
            "body": (await request.body()).decode(),
        }
    )


async def status(request: Request) -> Response:
    code = int(request.path_params["code"])
    return JSONResponse({"message": f"answered {code}"}, status_code=code)


APP = Starlette(
    routes=[
        Route("/auth", login, methods=["POST"]),
        Route("/basic-auth", basic_auth),
        Route("/api/v2/agents/me", agents_me),
        Route("/echo", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/status/{code:int}", status),
    ]
)


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with serve(APP) as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    async with OutboundClient(EgressPolicy(allow_loopback=True), timeout=5) as outbound:
        yield outbound


def context(client: OutboundClient, **fields: Any) -> Context:
    return Context(http=client, now=NOW, fields=fields)


async def test_the_references_pwd_validate_runs_as_ported(
    client: OutboundClient, provider: str
) -> None:
    async def validate(context: Context) -> dict[str, Any]:
        response = await context.httpRequest.post(
            f"{provider}/auth", {"username": context.username, "password": context.password}
        )
        data = response.data
        if not data["isValid"]:
            raise Exception("Invalid username/password combination.")
        return {"token": data["token"], "expires": data["expiresIn"]}

    found = parse_definition("pwd", {"validate": validate})
    pwd = get_mechanism("pwd")

    result = await pwd.connect(found, context(client, username=USERNAME, password=PASSWORD))
    assert result.credentials["token"] == "tok-1"
    assert result.expires_at == NOW + timedelta(hours=1)

    with pytest.raises(errors.CredentialsRejected) as caught:
        await pwd.connect(found, context(client, username=USERNAME, password="wrong"))
    assert caught.value.message == "Invalid username/password combination."


async def test_http_basic_with_get_and_a_config(client: OutboundClient, provider: str) -> None:
    async def validate(context: Context) -> None:
        await context.httpRequest.get(
            f"{provider}/basic-auth",
            {"auth": {"username": context.username, "password": context.password}},
        )

    found = parse_definition("pwd", {"validate": validate})
    result = await get_mechanism("pwd").connect(
        found, context(client, username=USERNAME, password=PASSWORD)
    )
    assert result.credentials == {"username": USERNAME, "password": PASSWORD}

    with pytest.raises(errors.CredentialsRejected) as caught:
        await get_mechanism("pwd").connect(
            found, context(client, username=USERNAME, password="not-it-9")
        )
    assert caught.value.message == "Bad username or password"
    assert caught.value.status_code == 401


async def test_a_callable_returning_the_response_gives_its_data(
    client: OutboundClient, provider: str
) -> None:
    """Freshdesk's ``requestProfileInfo`` returns what ``context.httpRequest`` answered."""

    async def request_profile_info(context: Context) -> HttpResponse:
        return await context.httpRequest(
            {
                "method": "GET",
                "url": f"{provider}/api/v2/agents/me",
                "auth": {"user": context.apiKey, "password": "X"},
                "json": True,
            }
        )

    found = parse_definition(
        "apiKey",
        {
            "auth": {"apiKey": {"type": "password", "name": "API key"}},
            "requestProfileInfo": request_profile_info,
            "accountNameFromProfileInfo": "contact.email",
        },
    )
    result = await get_mechanism("api_key").connect(found, context(client, apiKey=API_KEY))
    assert result.profile == {"contact": {"email": "agent@helpdesk.example"}}
    assert result.account_name == "agent@helpdesk.example"


async def test_values_are_sent_as_given_and_never_rendered(
    client: OutboundClient, provider: str
) -> None:
    http = context(client, username=USERNAME, password=PASSWORD).httpRequest

    posted = await http.post(f"{provider}/echo", {"password": PASSWORD}, params={"q": "{{x}}"})
    assert posted.status == 200
    assert posted.data["query"] == {"q": "{{x}}"}
    assert json.loads(posted.data["body"]) == {"password": PASSWORD}
    assert posted.data["content_type"] == "application/json"

    form = await http({"method": "put", "url": f"{provider}/echo", "form": {"a": "1 2"}})
    assert (form.data["method"], form.data["body"]) == ("PUT", "a=1+2")
    assert form.data["content_type"] == "application/x-www-form-urlencoded"

    bearer = await http.delete(f"{provider}/echo", auth={"bearer": "t0k"})
    assert (bearer.data["method"], bearer.data["authorization"]) == ("DELETE", "Bearer t0k")

    text = await http.patch(f"{provider}/echo", "raw text", headers={"Content-Type": "text/plain"})
    assert (text.data["body"], text.data["content_type"]) == ("raw text", "text/plain")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (401, errors.CredentialsRejected),
        (403, errors.CredentialsRejected),
        (404, errors.ProviderError),
        (429, errors.ProviderUnavailable),
        (502, errors.ProviderUnavailable),
    ],
)
async def test_an_answer_that_is_not_2xx_raises(
    client: OutboundClient, provider: str, code: int, error: type[errors.ProviderError]
) -> None:
    with pytest.raises(errors.ProviderError) as caught:
        await context(client).httpRequest.get(f"{provider}/status/{code}")
    assert type(caught.value) is error
    assert caught.value.status_code == code
    assert caught.value.message == f"answered {code}"


async def test_secrets_are_kept_out_of_the_message(client: OutboundClient, provider: str) -> None:
    """The provider echoes the credentials it was sent; the messages show none of them."""
    found = parse_definition(
        "apiKey",
        {
            "auth": {"apiKey": {"type": "password", "name": "API key"}},
            "validate": lambda context: context.httpRequest.get(
                f"{provider}/api/v2/agents/me", auth={"username": context.apiKey}
            ),
        },
    )
    with pytest.raises(errors.CredentialsRejected) as caught:
        await get_mechanism("api_key").connect(found, context(client, apiKey=API_KEY))
    assert caught.value.message == "Unknown key [redacted]:"

    with pytest.raises(errors.CredentialsRejected) as caught:
        await context(client).httpRequest.get(
            f"{provider}/api/v2/agents/me", auth={"user": "other", "pass": "only-in-code-77"}
        )
    assert caught.value.message == "Unknown key other:[redacted]"


async def test_a_wrong_config_says_what_is_wrong(client: OutboundClient, provider: str) -> None:
    http = context(client).httpRequest
    with pytest.raises(TypeError, match="unknown option 'timeout'"):
        await http.get(f"{provider}/echo", timeout=5)
    with pytest.raises(TypeError, match="give one body, not data and form"):
        await http.post(f"{provider}/echo", {"a": 1}, form={"b": "2"})
    with pytest.raises(ValueError, match="'url' must be an absolute http"):
        await http({"url": "/relative"})


async def test_the_egress_policy_applies(provider: str) -> None:
    async with OutboundClient() as guarded:  # loopback is refused by default
        with pytest.raises(errors.AuthBridgeError):
            await context(guarded).httpRequest.get(f"{provider}/echo")


async def test_the_other_names_stay(client: OutboundClient, provider: str) -> None:
    ctx = context(client, username=USERNAME)
    assert ctx.http is client
    assert (await ctx.http_request.get(f"{provider}/echo")).data["method"] == "GET"
    answered = await ctx.request({"method": "POST", "url": f"{provider}/echo", "json": {}})
    assert answered["method"] == "POST"
