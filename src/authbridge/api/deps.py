"""Request dependencies: the process's :class:`Bridge` and the caller's bearer token.

Endpoints open their transaction themselves with :func:`transaction`, so it is committed
(or rolled back, and the error answered as a problem) before the response is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal, authenticate

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
        principal = authenticate(session, bridge.keyring, token, now=bridge.now())
        if master:
            principal.require_master()
        yield session, principal


async def caller(bridge: Bridge, token: str) -> Principal:
    """The principal of ``token``, from the process's cache when it was checked in the last
    seconds (:class:`~authbridge.services.principals.PrincipalCache`), else checked in a
    transaction of its own (which may record the token's use) in a worker thread.

    For the credential reads, which otherwise need no transaction that writes.
    """
    principal = bridge.principals.get(token)
    if principal is not None:
        return principal

    def check() -> Principal:
        with bridge.session() as session:
            return authenticate(session, bridge.keyring, token, now=bridge.now())

    principal = await run_in_threadpool(check)
    bridge.principals.put(token, principal, now=bridge.now())
    return principal
