"""Request dependencies: the process's :class:`Bridge` and the caller's bearer token.

Endpoints open their transaction themselves with :func:`transaction`, so it is committed
(or rolled back, and the error answered as a problem) before the response is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal, authenticate
from authbridge.services.read_transactions import read_first

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A master token (abk_…) or a user token (a JWT whose sub is the end user)",
)


def get_bridge(request: Request) -> Bridge:
    bridge: Bridge = request.app.state.bridge
    return bridge


# The dependencies are ``async def`` although they never await: FastAPI runs a plain ``def``
# dependency in the threadpool, a thread hop per dependency and request.
async def _bridge_dependency(request: Request) -> Bridge:
    return get_bridge(request)


async def get_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    if credentials is None:
        raise errors.Unauthenticated("send a token in the header 'Authorization: Bearer <token>'")
    return credentials.credentials


def bearer_token(request: Request) -> str:
    """The bearer token of ``request``, for the hottest routes, which take no dependencies
    (resolving them costs more than the rest of a credentials read); as :func:`get_token`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated("send a token in the header 'Authorization: Bearer <token>'")
    return token.strip()


#: What a route reading :func:`bearer_token` itself declares, so the OpenAPI document shows
#: the same security requirement as for the routes depending on ``TokenDep``.
BEARER_SECURITY: dict[str, Any] = {"security": [{"token": []}]}


async def plain_params(request: Request) -> None:
    """Refuse NUL in path and query parameters: PostgreSQL text cannot hold it (a 500 else)."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in str(value):
            raise errors.InvalidInput(f"'{name}' must not contain NUL characters", field=name)


BridgeDep = Annotated[Bridge, Depends(_bridge_dependency)]
TokenDep = Annotated[str, Depends(get_token)]


@contextmanager
def transaction(
    bridge: Bridge, token: str, *, master: bool = False
) -> Iterator[tuple[Session, Principal]]:
    """A transaction and the authenticated caller (a master token when ``master``)."""
    with bridge.session() as session:
        principal = authenticate(
            session, bridge.keyring, token, now=bridge.now(), leeway=bridge.token_leeway
        )
        if master:
            principal.require_master()
        yield session, principal


async def caller(bridge: Bridge, token: str) -> Principal:
    """The principal of ``token``, from the process's cache when it was checked in the last
    seconds (:class:`~authbridge.services.principals.PrincipalCache`), else checked in a
    worker thread, read-only unless the check must write (a token's last use, once a minute).

    Concurrent requests with a token not in the cache share one check. For the credential
    reads, which otherwise need no transaction that writes.
    """
    cache = bridge.principals
    principal = cache.get(token)
    if principal is not None:
        return principal
    key = cache.key(token)
    pending = cache.checks.get(key)
    if pending is not None:
        return await asyncio.shield(pending)

    def check(session: Session) -> Principal:
        return authenticate(
            session, bridge.keyring, token, now=bridge.now(), leeway=bridge.token_leeway
        )

    future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
    cache.checks[key] = future
    try:
        principal = await run_in_threadpool(read_first, bridge, check)
        cache.put(token, principal, now=bridge.now())
        future.set_result(principal)
        return principal
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no warning when nobody else waited
        raise
    finally:
        del cache.checks[key]
