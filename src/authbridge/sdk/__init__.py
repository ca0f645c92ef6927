"""The Python SDK of authbridge: the REST API, and a context for trigger and action code.

    from authbridge.sdk import Client

    def new_issues(context):
        return context.http.get("/issues").json()

    with Client("http://127.0.0.1:8000", token) as bridge:
        with bridge.context(auth_id) as context:
            issues = new_issues(context)

``context.auth`` holds the authentication's fresh credentials and ``context.http`` is an
``httpx.Client`` pointed at the connector's base URL that puts the credentials on every request
by the connector's request rules; on a 401 it refreshes the credentials once and retries once.
:class:`AsyncClient` and :class:`AsyncContext` are the same for asyncio.

Importing the SDK does not import the server, and :class:`RequestAuth` (which brings the auth
mechanisms: Authlib, PyJWT, the connector models) is imported on first use, so that a script
that only calls the REST API starts quickly.
"""

import typing as _typing

from authbridge.sdk._async_client import AsyncClient
from authbridge.sdk._client import Client
from authbridge.sdk._context import AsyncContext, Context
from authbridge.sdk._errors import (
    AuthbridgeAPIError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)
from authbridge.sdk._models import (
    Authentication,
    Connector,
    ConnectorField,
    ConnectSession,
    Credentials,
    EndUser,
    IssuedWebhookEndpoint,
    Refreshed,
    UserToken,
    WebhookEndpoint,
)

if _typing.TYPE_CHECKING:
    from authbridge.mechanisms.request_rules import RequestAuth

__all__ = [
    "AsyncClient",
    "AsyncContext",
    "AuthbridgeAPIError",
    "Authentication",
    "Client",
    "Conflict",
    "ConnectSession",
    "Connector",
    "ConnectorField",
    "Context",
    "Credentials",
    "EndUser",
    "Forbidden",
    "InvalidRequest",
    "IssuedWebhookEndpoint",
    "NotFound",
    "Refreshed",
    "RequestAuth",
    "Unauthorized",
    "Unavailable",
    "UserToken",
    "WebhookEndpoint",
]


def __getattr__(name: str) -> _typing.Any:
    if name == "RequestAuth":
        from authbridge.mechanisms.request_rules import RequestAuth

        return RequestAuth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "RequestAuth"})
