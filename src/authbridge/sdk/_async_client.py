"""The async REST client, :class:`AsyncClient` (the same calls as :class:`Client`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import httpx

from authbridge.sdk import _calls as calls
from authbridge.sdk._client import DEFAULT_TIMEOUT, PAGE_SIZE, BearerToken
from authbridge.sdk._context import AsyncContext
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

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """The authbridge REST API for asyncio; ``async with`` it or ``aclose()`` it.

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url, auth=BearerToken(token), timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: calls.Call[T]) -> T:
        response = await self._http.request(
            call.method, call.path, params=dict(call.params), json=call.body
        )
        if response.is_error:
            raise error_from_response(response)
        return call.read(response)

    async def _items(
        self, page: Callable[[str | None], calls.Call[calls.Page[T]]]
    ) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            found = await self._send(page(cursor))
            for item in found.items:
                yield item
            if found.next_cursor is None:
                return
            cursor = found.next_cursor

    # -- the context of a trigger or action --------------------------------------------------

    @asynccontextmanager
    async def context(
        self,
        auth_id: str | None = None,
        *,
        connector: str | None = None,
        version: str | None = None,
        variant: str | None = None,
    ) -> AsyncIterator[AsyncContext]:
        """The :class:`AsyncContext` for code using ``auth_id``'s account; ``http`` closes after.

        ``context.auth`` holds the fresh credentials and ``context.http`` sends requests to the
        connector's base URL with the credentials applied, refreshing them once on a 401.

        For a connector without per-user auth (type ``none``) give ``connector`` (and its
        ``version`` or ``variant``) instead: no end user connects anything, ``context.auth`` is
        empty and ``http`` applies the rules the host configured (a master token).
        """
        if auth_id is not None and connector is None:
            credentials = await self.credentials(auth_id)
            rules = await self.request_auth(auth_id)
        elif auth_id is None and connector is not None:
            credentials = Credentials.none(connector)
            rules = await self.connector_request_auth(connector, version=version, variant=variant)
        else:
            raise ValueError(calls.CONTEXT_OF)
        context = AsyncContext(self, auth_id, rules, credentials, timeout=self.timeout)
        async with context.http:
            yield context

    # -- end users and user tokens -----------------------------------------------------------

    async def put_end_user(
        self, external_user_id: str, *, name: str | None = None, email: str | None = None
    ) -> EndUser:
        """Create the end user, or update its name and email (master token)."""
        return await self._send(calls.put_end_user(external_user_id, name, email))

    async def get_end_user(self, external_user_id: str) -> EndUser:
        return await self._send(calls.get_end_user(external_user_id))

    def list_end_users(self, *, page_size: int = PAGE_SIZE) -> AsyncIterator[EndUser]:
        """Every end user, oldest first, fetched page by page as iterated (master token)."""
        return self._items(lambda cursor: calls.list_end_users(page_size, cursor))

    async def create_user_token(
        self, external_user_id: str, *, ttl_seconds: int = 900
    ) -> UserToken:
        """A token that sees only this end user's data (the end user is created if new)."""
        return await self._send(calls.create_user_token(external_user_id, ttl_seconds))

    # -- authentications ---------------------------------------------------------------------

    def list_authentications(
        self,
        *,
        external_user_id: str | None = None,
        connector: str | None = None,
        status: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[Authentication]:
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

    async def get_authentication(self, auth_id: str) -> Authentication:
        return await self._send(calls.get_authentication(auth_id))

    async def import_authentication(
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
        return await self._send(
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

    async def update_authentication(
        self,
        auth_id: str,
        *,
        name: str | None = None,
        delete_at: datetime | None = None,
        clear_delete_at: bool = False,
    ) -> Authentication:
        """Rename it, or schedule (``delete_at``) or cancel (``clear_delete_at``) its deletion."""
        return await self._send(
            calls.update_authentication(
                auth_id, name=name, delete_at=delete_at, clear_delete_at=clear_delete_at
            )
        )

    async def delete_authentication(self, auth_id: str) -> None:
        await self._send(calls.delete_authentication(auth_id))

    async def credentials(self, auth_id: str) -> Credentials:
        """Fresh credentials (refreshed first when due); never the refresh token. Audited."""
        return await self._send(calls.credentials(auth_id))

    async def request_auth(self, auth_id: str) -> RequestAuth:
        """The connector's request rules rendered with these credentials (fresh)."""
        return await self._send(calls.request_auth(auth_id))

    async def connector_request_auth(
        self, key: str, *, version: str | None = None, variant: str | None = None
    ) -> RequestAuth:
        """The request rules of a connector without per-user auth (type ``none``), rendered
        from the host's configuration of it (master token)."""
        return await self._send(calls.connector_request_auth(key, version, variant))

    async def refresh(self, auth_id: str) -> Refreshed:
        """Refresh now, whether due or not; :class:`Conflict` when it cannot be refreshed,
        :class:`Unavailable` (with ``retry_after``) when the provider failed."""
        return await self._send(calls.refresh(auth_id))

    # -- connect links and connectors --------------------------------------------------------

    async def create_connect_session(
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
        return await self._send(
            calls.create_connect_session(
                external_user_id,
                connector,
                authentication_id=authentication_id,
                origin=origin,
                version=version,
                variant=variant,
            )
        )

    async def list_connectors(self) -> list[Connector]:
        return await self._send(calls.list_connectors())

    async def get_connector(self, key: str, *, version: str | None = None) -> Connector:
        return await self._send(calls.get_connector(key, version))

    # -- webhook endpoints -------------------------------------------------------------------

    async def create_webhook_endpoint(
        self, url: str, *, event_types: Sequence[str] = (), description: str | None = None
    ) -> IssuedWebhookEndpoint:
        """The answer holds the signing secret, this once (``event_types`` empty: all)."""
        return await self._send(calls.create_webhook_endpoint(url, event_types, description))

    def list_webhook_endpoints(
        self, *, page_size: int = PAGE_SIZE
    ) -> AsyncIterator[WebhookEndpoint]:
        return self._items(lambda cursor: calls.list_webhook_endpoints(page_size, cursor))

    async def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        await self._send(calls.delete_webhook_endpoint(endpoint_id))
