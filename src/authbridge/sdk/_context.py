"""The context a trigger or action runs with: fresh credentials and an authenticating client.

``context.http`` applies the connector's request rules to every request through
:class:`RefreshingAuth`, an ``httpx.Auth`` flow that wraps the rules' own auth: when the
provider answers 401 it has authbridge refresh the authentication once (``POST
.../refresh``), reads the new rules and credentials, and sends the request again, once. A
second 401 is the caller's answer, and so is the first when the credentials cannot be
refreshed (an API key; authbridge answers 409); when the refresh fails for a passing reason
(the provider is down) the request raises :class:`~authbridge.sdk.Unavailable`. Concurrent
requests that all get a 401 for the same credentials cause one refresh: the others see the
rules were replaced meanwhile and just retry with the new ones.

The original URL and headers are kept, so the retry applies the new rules to the request as
the caller built it, not on top of the old rules' headers and parameters.

A request is retried only when its body is buffered (no body, ``content=bytes``, ``json=``,
``data=``, ``files=``): a streamed body (``content=`` an iterator) has been consumed by the
first attempt, so its 401 is returned without refreshing.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING

import anyio
import httpx

from authbridge.sdk._errors import Conflict
from authbridge.sdk._models import Credentials

if TYPE_CHECKING:
    from authbridge.mechanisms.request_rules import RequestAuth
    from authbridge.sdk._async_client import AsyncClient
    from authbridge.sdk._client import Client

__all__ = ["AsyncContext", "Context", "RefreshingAuth"]


class _Rules:
    """The request rules in force, the credentials they came with, and their generation."""

    def __init__(self, rules: RequestAuth, credentials: Credentials, generation: int) -> None:
        self.rules = rules
        self.auth = rules.auth()
        self.credentials = credentials
        self.generation = generation


class _Unsent:
    """A request's URL and headers before any rules applied, to apply new rules afresh."""

    def __init__(self, request: httpx.Request) -> None:
        self.url = request.url
        self.headers = request.headers.copy()

    def restore(self, request: httpx.Request) -> httpx.Request:
        request.url = self.url
        request.headers = self.headers.copy()
        return request


def _retryable(response: httpx.Response, request: httpx.Request) -> bool:
    return response.status_code == 401 and isinstance(request.stream, httpx.ByteStream)


class RefreshingAuth(httpx.Auth):
    """Apply the context's current rules; on a 401, refresh once and send again once.

    ``refresh(generation)`` replaces the rules unless another request already did since
    ``generation``, and says whether to retry (``False``: the authentication cannot be
    refreshed, so the 401 stands).
    """

    def __init__(
        self,
        current: Callable[[], _Rules],
        refresh: Callable[[int], bool] | None = None,
        arefresh: Callable[[int], Awaitable[bool]] | None = None,
    ) -> None:
        self._current = current
        self._refresh = refresh
        self._arefresh = arefresh

    def __repr__(self) -> str:
        return f"RefreshingAuth({self._current().rules!r})"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        assert self._refresh is not None, "a sync client needs a sync refresh"
        unsent = _Unsent(request)
        rules = self._current()
        response = yield from _drive(rules.auth.sync_auth_flow(request))
        if not _retryable(response, request) or not self._refresh(rules.generation):
            return
        yield from _drive(self._current().auth.sync_auth_flow(unsent.restore(request)))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        assert self._arefresh is not None, "an async client needs an async refresh"
        unsent = _Unsent(request)
        for attempt in range(2):
            rules = self._current()
            flow = rules.auth.async_auth_flow(request)
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    break
            if attempt or not _retryable(response, request):
                return
            if not await self._arefresh(rules.generation):
                return
            unsent.restore(request)


def _drive(
    flow: Generator[httpx.Request, httpx.Response, None],
) -> Generator[httpx.Request, httpx.Response, httpx.Response]:
    """Run an inner auth flow to its end; return the last response it was sent."""
    outgoing = next(flow)
    while True:
        response = yield outgoing
        try:
            outgoing = flow.send(response)
        except StopIteration:
            return response


class _BaseContext:
    def __init__(self, auth_id: str | None, rules: RequestAuth, credentials: Credentials) -> None:
        self.auth_id = auth_id
        self._rules = _Rules(rules, credentials, 0)

    @property
    def auth(self) -> Credentials:
        """The fresh credentials (after a refresh on 401, the new ones)."""
        return self._rules.credentials

    @property
    def connector(self) -> str:
        """The connector's key (``sandbox-apikey``)."""
        return self._rules.credentials.connector

    def _replace(self, rules: RequestAuth, credentials: Credentials) -> None:
        self._rules = _Rules(rules, credentials, self._rules.generation + 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(auth_id={self.auth_id!r}, connector={self.connector!r})"


class Context(_BaseContext):
    """What a sync trigger or action receives: ``auth``, ``http``, ``auth_id``, ``connector``.

    Made by ``Client.context(auth_id)``, which closes ``http`` when its block ends; for a
    connector without per-user auth (``Client.context(connector=key)``) ``auth_id`` is ``None``
    and a 401 is never retried, as there is nothing to refresh.
    """

    def __init__(
        self,
        client: Client,
        auth_id: str | None,
        rules: RequestAuth,
        credentials: Credentials,
        *,
        timeout: float,
    ) -> None:
        super().__init__(auth_id, rules, credentials)
        self._client = client
        self._lock = threading.Lock()
        auth = RefreshingAuth(lambda: self._rules, refresh=self._refresh_after)
        self.http = httpx.Client(base_url=rules.base_url or "", auth=auth, timeout=timeout)

    def _refresh_after(self, generation: int) -> bool:
        if self.auth_id is None:
            return False
        with self._lock:
            if self._rules.generation != generation:
                return True
            try:
                self._client.refresh(self.auth_id)
            except Conflict:
                return False
            self._replace(
                self._client.request_auth(self.auth_id), self._client.credentials(self.auth_id)
            )
            return True


class AsyncContext(_BaseContext):
    """What an async trigger or action receives; ``http`` is an ``httpx.AsyncClient``.

    Made by ``AsyncClient.context(auth_id)`` (or ``context(connector=key)``), which closes
    ``http`` when its block ends.
    """

    def __init__(
        self,
        client: AsyncClient,
        auth_id: str | None,
        rules: RequestAuth,
        credentials: Credentials,
        *,
        timeout: float,
    ) -> None:
        super().__init__(auth_id, rules, credentials)
        self._client = client
        self._lock = anyio.Lock()
        auth = RefreshingAuth(lambda: self._rules, arefresh=self._refresh_after)
        self.http = httpx.AsyncClient(base_url=rules.base_url or "", auth=auth, timeout=timeout)

    async def _refresh_after(self, generation: int) -> bool:
        if self.auth_id is None:
            return False
        async with self._lock:
            if self._rules.generation != generation:
                return True
            try:
                await self._client.refresh(self.auth_id)
            except Conflict:
                return False
            self._replace(
                await self._client.request_auth(self.auth_id),
                await self._client.credentials(self.auth_id),
            )
            return True
