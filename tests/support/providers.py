"""Loopback provider apps: small Starlette services that answer like real providers.

Each service records every request it receives (:class:`Received`: method, path, query,
headers, body) so tests can assert exactly what left authbridge. :class:`ProviderSuite` puts
them all behind one server: requests for ``<sub>.freshdesk.test`` go to the Freshdesk-like
service, every other request is routed by path.

    FreshdeskService   GET /api/v2/agents/me, HTTP Basic ``<api key>:X``, any ``<sub>`` host
    RecordsService     GET /get-some-records/app_id=<app id>, ``Authorization: Basic <api key>``
    PasswordService    POST /auth (and /auth/expires-iso, /auth/expires-string): a token
    BasicAuthService   GET /basic-auth, HTTP Basic (like postman-echo)
    ErrorShapes        GET /errors/<shape>: the error bodies providers answer with
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Route

FRESHDESK_SUFFIX = ".freshdesk.test"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Received:
    """One request as a provider saw it; header names are lowercase."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    @property
    def host(self) -> str:
        """The Host header without its port."""
        return self.headers.get("host", "").rsplit(":", 1)[0]

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """The decoded HTTP Basic credentials, if the request carried them."""
        return decode_basic(self.headers.get("authorization"))

    def json(self) -> Any:
        return json.loads(self.body)


def decode_basic(header: str | None) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` → ``(user, password)``; None for anything else."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class Provider:
    """Base of the services: a Starlette app over ``routes``, recording what it received."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.app = Starlette(routes=self.routes())

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    async def record(self, request: Request) -> Received:
        received = Received(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=await request.body(),
        )
        self.received.append(received)
        return received

    def reset(self) -> None:
        self.received.clear()


class FreshdeskService(Provider):
    """Freshdesk's ``/api/v2/agents/me`` on every ``<sub>.freshdesk.test`` host.

    ``api_keys`` maps a subdomain to the API key it accepts (as the Basic user, password ``X``).
    """

    UNAUTHORIZED = {
        "code": "invalid_credentials",
        "message": "You have to be logged in to perform this action.",
    }

    def __init__(self, api_keys: Mapping[str, str]) -> None:
        self.api_keys = dict(api_keys)
        self.subdomains: list[str] = []
        super().__init__()

    def routes(self) -> list[BaseRoute]:
        return [Route("/api/v2/agents/me", self.me)]

    async def me(self, request: Request) -> Response:
        received = await self.record(request)
        subdomain = received.host.removesuffix(FRESHDESK_SUFFIX)
        self.subdomains.append(subdomain)
        credentials = received.basic_auth
        expected = self.api_keys.get(subdomain)
        if expected is None or credentials is None or credentials[0] != expected:
            return JSONResponse(self.UNAUTHORIZED, status_code=401)
        contact = {"email": f"agent@{subdomain}.example", "name": "Agent"}
        return JSONResponse({"id": 42, "contact": contact})

    def reset(self) -> None:
        super().reset()
        self.subdomains.clear()


class RecordsService(Provider):
    """The reference's second API-key example: the raw key after ``Basic`` (not base64).

    An app id listed in ``suspended`` answers 403 with the message nested one level down, a
    shape the message heuristic does not know (``validate_err_callback`` reads it).
    """

    SUSPENDED_MESSAGE = "This app has been suspended by its owner."

    def __init__(self, apps: Mapping[str, str], suspended: frozenset[str] = frozenset()) -> None:
        self.apps = dict(apps)
        self.suspended = suspended
        super().__init__()

    def routes(self) -> list[BaseRoute]:
        return [Route("/get-some-records/app_id={app_id}", self.records)]

    async def records(self, request: Request) -> Response:
        await self.record(request)
        app_id = request.path_params["app_id"]
        if app_id in self.suspended:
            nested = {"someNestedObject": {"message": self.SUSPENDED_MESSAGE, "code": 4031}}
            return JSONResponse(nested, status_code=403)
        expected = self.apps.get(app_id)
        if expected is None or request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"errors": [{"message": "Invalid REST API key"}]}, 401)
        return JSONResponse({"app_id": app_id, "records": [{"id": 1}]})


class PasswordService(Provider):
    """Username and password exchanged for a token, as in the reference's pwd example.

    ``POST /auth`` takes ``username`` and ``password`` as JSON or as a form and answers
    ``{isValid, token, expiresIn: 3600}``; ``/auth/expires-iso`` states ``expires`` as an ISO
    date (:attr:`EXPIRES_ISO`), ``/auth/expires-string`` as the string ``"7200"``. ``logins``
    counts successful logins and ``tokens`` lists the tokens issued.
    """

    EXPIRES_ISO = "2031-06-01T12:00:00Z"
    REJECTED = {"error": {"message": "Invalid username or password"}}

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        self.tokens: list[str] = []
        super().__init__()

    @property
    def logins(self) -> int:
        return len(self.tokens)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/auth", self.login, methods=["POST"]),
            Route("/auth/expires-iso", self.login, methods=["POST"]),
            Route("/auth/expires-string", self.login, methods=["POST"]),
        ]

    async def login(self, request: Request) -> Response:
        received = await self.record(request)
        submitted: Any
        if received.headers.get("content-type", "").startswith(FORM):
            submitted = dict(parse_qsl(received.body.decode()))
        else:
            try:
                submitted = received.json()
            except ValueError:
                return JSONResponse({"error": {"message": "Expected a JSON body"}}, 400)
        username = submitted.get("username") if isinstance(submitted, dict) else None
        password = submitted.get("password") if isinstance(submitted, dict) else None
        if username not in self.users or self.users[username] != password:
            return JSONResponse(self.REJECTED, status_code=401)
        token = f"tok-{len(self.tokens) + 1}-{secrets.token_hex(4)}"
        self.tokens.append(token)
        if received.path.endswith("/expires-iso"):
            return JSONResponse({"token": token, "expires": self.EXPIRES_ISO})
        if received.path.endswith("/expires-string"):
            return JSONResponse({"token": token, "expires": "7200"})
        return JSONResponse({"isValid": True, "token": token, "expiresIn": 3600})

    def reset(self) -> None:
        super().reset()
        self.tokens.clear()


class BasicAuthService(Provider):
    """``GET /basic-auth`` like postman-echo: 200 ``{"authenticated": true}`` or 401."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        super().__init__()

    def routes(self) -> list[BaseRoute]:
        return [Route("/basic-auth", self.basic_auth)]

    async def basic_auth(self, request: Request) -> Response:
        received = await self.record(request)
        credentials = received.basic_auth
        if credentials is None or self.users.get(credentials[0]) != credentials[1]:
            return PlainTextResponse(
                "Unauthorized", status_code=401, headers={"WWW-Authenticate": 'Basic realm="x"'}
            )
        return JSONResponse({"authenticated": True})


HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Access denied</title></head><body>"
    "<h1>Access denied</h1><script>document.location='https://evil.example'</script>"
    "</body></html>"
)


@dataclass(frozen=True)
class Shape:
    """An error answer: status, body (JSON value, or text with ``media_type``) and headers."""

    status: int
    body: Any = None
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


ERROR_SHAPES: Mapping[str, Shape] = {
    "message": Shape(401, {"message": "Invalid API key provided."}),
    "error-string": Shape(401, {"error": "The API key is not active."}),
    "error-description": Shape(
        400, {"error": "invalid_grant", "error_description": "The key has been revoked."}
    ),
    "errors-list": Shape(
        422, {"errors": [{"message": "The key has expired.", "code": 17}, {"message": "other"}]}
    ),
    "detail-string": Shape(403, {"detail": "Not enough permissions for this key."}),
    "detail-list": Shape(
        422,
        {
            "detail": [
                {"loc": ["header", "x-api-key"], "msg": "Field required", "type": "missing"},
                {"loc": ["query", "region"], "msg": "Input should be 'eu' or 'us'"},
            ]
        },
    ),
    "plain-text": Shape(401, "Bad API key.", media_type="text/plain"),
    "html": Shape(401, HTML_PAGE, media_type="text/html"),
    "empty-403": Shape(403),
    "not-found": Shape(404, {"message": "No such endpoint."}),
    "server-error": Shape(500, {"message": "Internal failure, request id 77."}),
    "bad-gateway-html": Shape(502, HTML_PAGE, media_type="text/html"),
    "rate-limited": Shape(429, {"message": "Too many requests."}, headers={"Retry-After": "30"}),
}


class ErrorShapes(Provider):
    """``GET /errors/<shape>`` answers the :data:`ERROR_SHAPES` entry of that name.

    ``GET /errors/echo`` answers 401 with a message quoting the API key it was sent (the
    ``X-Api-Key`` header, else the ``api_key`` query parameter), as careless providers do;
    ``GET /errors/echo-encoded`` quotes it in every spelling of :func:`encoded_spellings`.
    """

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/errors/echo", self.echo),
            Route("/errors/echo-encoded", self.echo_encoded),
            Route("/errors/{shape}", self.shape),
        ]

    async def shape(self, request: Request) -> Response:
        await self.record(request)
        shape = ERROR_SHAPES.get(request.path_params["shape"])
        if shape is None:
            return PlainTextResponse("unknown shape", status_code=500)
        headers = dict(shape.headers)
        if shape.body is None:
            return Response(status_code=shape.status, headers=headers)
        if shape.media_type == "application/json":
            return JSONResponse(shape.body, status_code=shape.status, headers=headers)
        if shape.media_type == "text/html":
            return HTMLResponse(shape.body, status_code=shape.status, headers=headers)
        return PlainTextResponse(shape.body, status_code=shape.status, headers=headers)

    async def echo(self, request: Request) -> Response:
        received = await self.record(request)
        key = received.headers.get("x-api-key") or received.query.get("api_key", "")
        message = f"The API key '{key}' is not valid (key={key})."
        return JSONResponse({"error": {"message": message, "key": key}}, status_code=401)

    async def echo_encoded(self, request: Request) -> Response:
        received = await self.record(request)
        key = received.headers.get("x-api-key", "")
        quoted = "; ".join(f"{name} {text}" for name, text in encoded_spellings(key).items())
        message = f"Refused: {quoted}."
        return JSONResponse({"error": {"message": message}}, status_code=401)


#: A key whose base64 is padded and holds a ``+`` (``/`` in base64url): every spelling differs.
ECHOED_KEY = "sk_echo~~~5fG7hQ"


def encoded_spellings(secret: str) -> dict[str, str]:
    """How careless providers echo a key: base64 (padded or not, alone or inside a Basic
    header's ``user:key`` and a ``key:`` prefix, so at each of the three byte offsets),
    base64url, hex and percent-encoding."""
    data = secret.encode()
    return {
        "base64": base64.b64encode(data).decode(),
        "unpadded": base64.b64encode(data).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "basic": base64.b64encode(b"user:" + data).decode(),
        "prefixed": base64.b64encode(b"key:" + data + b":x").decode(),
        "hex": data.hex(),
        "HEX": data.hex().upper(),
        "percent": "".join(f"%{byte:02x}" for byte in data),
    }


class ProviderSuite:
    """Every service behind one ASGI app, for one loopback server.

    Credentials the services accept are the class attributes below.
    """

    FRESHDESK_DOMAIN = "acme"
    FRESHDESK_KEY = "fd-Key-7Qx92LmT"
    RECORDS_APP_ID = "app-1138"
    RECORDS_KEY = "rest-Key-55aa"
    RECORDS_SUSPENDED_APP_ID = "app-666"
    USERNAME = "ada@acme.example"
    PASSWORD = "correct horse battery staple"

    def __init__(self) -> None:
        self.freshdesk = FreshdeskService({self.FRESHDESK_DOMAIN: self.FRESHDESK_KEY})
        self.records = RecordsService(
            {self.RECORDS_APP_ID: self.RECORDS_KEY, self.RECORDS_SUSPENDED_APP_ID: "any"},
            suspended=frozenset({self.RECORDS_SUSPENDED_APP_ID}),
        )
        self.password = PasswordService({self.USERNAME: self.PASSWORD})
        self.basic = BasicAuthService({self.USERNAME: self.PASSWORD})
        self.errors = ErrorShapes()
        self.app = Starlette(
            routes=[
                Host("{subdomain}" + FRESHDESK_SUFFIX, app=self.freshdesk.app),
                *self.records.routes(),
                *self.password.routes(),
                *self.basic.routes(),
                *self.errors.routes(),
            ]
        )

    @property
    def services(self) -> tuple[Provider, ...]:
        return (self.freshdesk, self.records, self.password, self.basic, self.errors)

    def reset(self) -> None:
        for service in self.services:
            service.reset()
