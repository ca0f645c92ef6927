"""Request bodies within their route's limit, and the token checked before a body is read.

:class:`BodyLimits` is a pure ASGI middleware in front of every route. A request without a
body (a credential read) costs it one look at the headers. A body may be as large as its
route class allows (:class:`Limits`): JSON for the API (``/v1``, ``/graphql``) :data:`API_BODY`,
the forms of the connect and wizard pages :data:`FORM_BODY`, the credential proxy
``AUTHBRIDGE_PROXY_MAX_BODY_BYTES`` (default 10 MiB). A ``Content-Length`` above the limit is
answered 413 before a byte of the body is read; a body sent without one (chunked) is read
until it passes the limit, then answered 413 and read no further. The answer is a problem
document for the API and the proxy, a page for the pages.

On the REST API (``/v1``), a request with a body is answered 401 before its body is read
unless it carries a usable token, checked like a credential read's
(:func:`~authbridge.api.deps.caller`, from the process's principal cache): FastAPI parses a
body before it resolves any dependency, so a route's own check would come after the parse.
The proxy checks the token before it reads the body itself.

How long a body may take to arrive is the connection's business
(:mod:`authbridge.serving`).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authbridge import errors
from authbridge.api import problems, rendering
from authbridge.api.deps import bearer_token, caller
from authbridge.runtime import DEFAULT_PROXY_MAX_BODY

KIB = 1024
MIB = 1024 * KIB
#: The largest JSON body of the API: a solution spec or a theme's CSS is a fraction of it.
API_BODY = MIB
#: The largest form of the connect and wizard pages (their fields' limits:
#: :func:`authbridge.api.rendering.read_form`).
FORM_BODY = 256 * KIB
PROXY_BODY = DEFAULT_PROXY_MAX_BODY

PROXY_PREFIX = "/v1/proxy/"
PAGE_PREFIXES = ("/connect/", "/external/", "/auth/")
API_PREFIX = "/v1/"


def size_text(size: int) -> str:
    """``1 MiB``, ``64 KiB`` or ``1,500 bytes``."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit:,} {name}"
    return f"{size:,} bytes"


@dataclass(frozen=True)
class Limits:
    """The largest body of each route class, in bytes."""

    api: int = API_BODY
    form: int = FORM_BODY
    proxy: int = PROXY_BODY


DEFAULT_LIMITS = Limits()


class BodyTooLarge(ClientDisconnect):
    """Raised into the app by ``receive`` once a body has passed its limit: the 413 has been
    answered already, and the app stops as it would for a caller that went away (the proxy
    audits the request with :attr:`status`)."""

    status = 413


class BodyLimits:
    """The middleware (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: Limits = DEFAULT_LIMITS) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and (length is None or length == b"0"):
            await self.app(scope, receive, send)  # no body: the credential reads' way
            return
        size = int(length) if length is not None and length.isdigit() and not chunked else None
        await self._with_body(scope, receive, send, size)

    async def _with_body(
        self, scope: Scope, receive: Receive, send: Send, length: int | None
    ) -> None:
        """``length`` is the body's ``Content-Length``, ``None`` when it is sent chunked."""
        path: str = scope["path"]
        limit, what = self._limit_of(path)
        if length is not None and length > limit:
            await self._too_large(scope, limit, what)(scope, receive, send)
            return
        if path.startswith(API_PREFIX) and not path.startswith(PROXY_PREFIX):
            refused = await _token_refused(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
        if length is not None:
            await self.app(scope, receive, send)  # the parser never reads past Content-Length
            return
        await self._counted(scope, receive, send, limit, what)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, limit: int, what: str
    ) -> None:
        received = 0
        answered = False
        started = False

        async def limited() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not answered:
                        answered = True
                        await self._too_large(scope, limit, what)(scope, receive, send)
                    raise BodyTooLarge()
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if answered:
                return  # what the app answers after the 413 goes nowhere
            started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except BodyTooLarge:
            if not answered:
                raise

    def _limit_of(self, path: str) -> tuple[int, str]:
        if path.startswith(PROXY_PREFIX):
            return self.limits.proxy, "a proxied request (AUTHBRIDGE_PROXY_MAX_BODY_BYTES)"
        if path.startswith(PAGE_PREFIXES):
            return self.limits.form, "a form"
        return self.limits.api, "an API request"

    def _too_large(self, scope: Scope, limit: int, what: str) -> Response:
        error = errors.RequestTooLarge(
            f"the request body is larger than {size_text(limit)}, the most {what} may send"
        )
        if scope["path"].startswith(PAGE_PREFIXES):
            return rendering.error_page(scope["app"].state.bridge, error)
        return problems.from_error(error)


async def _token_refused(scope: Scope) -> Response | None:
    """The 401 (or 503) for a request without a usable token, ``None`` when it has one."""
    request = Request(scope)
    try:
        await caller(request.app.state.bridge, bearer_token(request))
    except errors.AuthBridgeError as error:
        return problems.from_error(error)
    except Exception as exc:
        return problems.from_database_error(exc)
    return None
