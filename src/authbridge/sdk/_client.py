"""The sync REST client, :class:`Client`."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import httpx

from authbridge.sdk import _calls as calls
from authbridge.sdk._context import Context
from authbridge.sdk._errors import error_from_response
from authbridge.sdk._models import (
    Authentication,
    Connector,
    ConnectSession,
    Credentials,
    EndUser,
    IssuedWebhookEndpoint,
    Refreshed,
    UserToken,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from authbridge.mechanisms.request_rules import RequestAuth

__all__ = ["DEFAULT_TIMEOUT", "PAGE_SIZE", "BearerToken", "Client"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0
#: Items asked for per page when iterating a list (the server's maximum).
PAGE_SIZE = 200


class BearerToken(httpx.Auth):
    """Sends the API token as ``Authorization: Bearer``; its ``repr`` hides it."""

    def __init__(self, token: str) -> None:
        if not token or token != token.strip():
            raise ValueError("the API token must be a non-empty string without surrounding spaces")
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken(***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class Client:
    """The authbridge REST API, synchronously; use it in a ``with`` block or ``close()`` it.

    ``token`` is a master token (``abk_…``) or a user token. Error answers raise
    :class:`~authbridge.sdk.AuthbridgeAPIError` subclasses; network failures raise httpx's own
    errors. ``transport`` replaces httpx's (``httpx.MockTransport`` in a host's tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=base_url, auth=BearerToken(token), timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: calls.Call[T]) -> T:
        response = self._http.request(
            call.method, call.path, params=dict(call.params), json=call.body
        )
        if response.is_error:
            raise error_from_response(response)
        return call.read(response)

    def _items(self, page: Callable[[str | None], calls.Call[calls.Page[T]]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            found = self._send(page(cursor))
            yield from found.items
            if found.next_cursor is None:
                return
            cursor = found.next_cursor

    # -- the context of a trigger or action --------------------------------------------------

    @contextmanager
    def context(
        self,
        auth_id: str | None = None,
        *,
        connector: str | None = None,
        version: str | None = None,
        variant: str | None = None,
    ) -> Iterator[Context]:
        """The :class:`Context` for code using ``auth_id``'s account; ``http`` closes after.

        ``context.auth`` holds the fresh credentials and ``context.http`` sends requests to the
        connector's base URL with the credentials applied, refreshing them once on a 401.

        For a connector without per-user auth (type ``none``) give ``connector`` (and its
        ``version`` or ``variant``) instead: no end user connects anything, ``context.auth`` is
        empty and ``http`` applies the rules the host configured (a master token).
        """
        if auth_id is not None and connector is None:
            credentials = self.credentials(auth_id)
            rules = self.request_auth(auth_id)
        elif auth_id is None and connector is not None:
            credentials = Credentials.none(connector)
            rules = self.connector_request_auth(connector, version=version, variant=variant)
        else:
            raise ValueError(calls.CONTEXT_OF)
        context = Context(self, auth_id, rules, credentials, timeout=self.timeout)
        with context.http:
            yield context

    # -- end users and user tokens -----------------------------------------------------------

    def put_end_user(
        self, external_user_id: str, *, name: str | None = None, email: str | None = None
    ) -> EndUser:
        """Create the end user, or update its name and email (master token)."""
        return self._send(calls.put_end_user(external_user_id, name, email))

    def get_end_user(self, external_user_id: str) -> EndUser:
        return self._send(calls.get_end_user(external_user_id))

    def list_end_users(self, *, page_size: int = PAGE_SIZE) -> Iterator[EndUser]:
        """Every end user, oldest first, fetched page by page as iterated (master token)."""
        return self._items(lambda cursor: calls.list_end_users(page_size, cursor))

    def create_user_token(self, external_user_id: str, *, ttl_seconds: int = 900) -> UserToken:
        """A token that sees only this end user's data (the end user is created if new)."""
        return self._send(calls.create_user_token(external_user_id, ttl_seconds))

    # -- authentications ---------------------------------------------------------------------

    def list_authentications(
        self,
        *,
        external_user_id: str | None = None,
        connector: str | None = None,
        status: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Authentication]:
        """Matching authentications, oldest first, fetched page by page as iterated."""
        return self._items(
            lambda cursor: calls.list_authentications(
                external_user_id=external_user_id,
                connector=connector,
                status=status,
                limit=page_size,
                cursor=cursor,
            )
        )

    def get_authentication(self, auth_id: str) -> Authentication:
        return self._send(calls.get_authentication(auth_id))

    def import_authentication(
        self,
        connector: str,
        *,
        external_user_id: str | None = None,
        fields: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        name: str | None = None,
        version: str | None = None,
        variant: str | None = None,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | None = None,
        hard_expires_at: datetime | None = None,
        delete_at: datetime | None = None,
        validate: bool = True,
    ) -> Authentication:
        """Store credentials obtained elsewhere: ``fields`` for form connectors, ``tokens``
        for OAuth ones; the provider checks them first unless ``validate=False``. ``variant``
        picks the connector's service environment (its default when omitted)."""
        return self._send(
            calls.import_authentication(
                connector,
                external_user_id=external_user_id,
                fields=fields,
                tokens=tokens,
                name=name,
                version=version,
                variant=variant,
                scopes=scopes,
                expires_at=expires_at,
                hard_expires_at=hard_expires_at,
                delete_at=delete_at,
                validate=validate,
            )
        )

    def update_authentication(
        self,
        auth_id: str,
        *,
        name: str | None = None,
        delete_at: datetime | None = None,
        clear_delete_at: bool = False,
    ) -> Authentication:
        """Rename it, or schedule (``delete_at``) or cancel (``clear_delete_at``) its deletion."""
        return self._send(
            calls.update_authentication(
                auth_id, name=name, delete_at=delete_at, clear_delete_at=clear_delete_at
            )
        )

    def delete_authentication(self, auth_id: str) -> None:
        self._send(calls.delete_authentication(auth_id))

    def credentials(self, auth_id: str) -> Credentials:
        """Fresh credentials (refreshed first when due); never the refresh token. Audited."""
        return self._send(calls.credentials(auth_id))

    def request_auth(self, auth_id: str) -> RequestAuth:
        """The connector's request rules rendered with these credentials (fresh)."""
        return self._send(calls.request_auth(auth_id))

    def connector_request_auth(
        self, key: str, *, version: str | None = None, variant: str | None = None
    ) -> RequestAuth:
        """The request rules of a connector without per-user auth (type ``none``), rendered
        from the host's configuration of it (master token)."""
        return self._send(calls.connector_request_auth(key, version, variant))

    def refresh(self, auth_id: str) -> Refreshed:
        """Refresh now, whether due or not; :class:`Conflict` when it cannot be refreshed,
        :class:`Unavailable` (with ``retry_after``) when the provider failed."""
        return self._send(calls.refresh(auth_id))

    # -- connect links and connectors --------------------------------------------------------

    def create_connect_session(
        self,
        external_user_id: str,
        connector: str,
        *,
        authentication_id: str | None = None,
        origin: str | None = None,
        version: str | None = None,
        variant: str | None = None,
    ) -> ConnectSession:
        """A one-time connect link for this end user; ``origin`` receives the popup's result."""
        return self._send(
            calls.create_connect_session(
                external_user_id,
                connector,
                authentication_id=authentication_id,
                origin=origin,
                version=version,
                variant=variant,
            )
        )

    def list_connectors(self) -> list[Connector]:
        return self._send(calls.list_connectors())

    def get_connector(self, key: str, *, version: str | None = None) -> Connector:
        return self._send(calls.get_connector(key, version))

    # -- webhook endpoints -------------------------------------------------------------------

    def create_webhook_endpoint(
        self, url: str, *, event_types: Sequence[str] = (), description: str | None = None
    ) -> IssuedWebhookEndpoint:
        """The answer holds the signing secret, this once (``event_types`` empty: all)."""
        return self._send(calls.create_webhook_endpoint(url, event_types, description))

    def list_webhook_endpoints(self, *, page_size: int = PAGE_SIZE) -> Iterator[WebhookEndpoint]:
        return self._items(lambda cursor: calls.list_webhook_endpoints(page_size, cursor))

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self._send(calls.delete_webhook_endpoint(endpoint_id))
