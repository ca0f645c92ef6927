"""RFC 9457 problem details: the one place where errors become HTTP answers.

Every :class:`~authbridge.errors.AuthBridgeError` is answered with its ``status`` and a JSON
body ``{type, title, status, detail, code}`` (plus ``field`` for invalid input and
``retry_after`` for a provider or database that asked us to wait). ``detail`` is the error's
``message``, which never holds a secret; a provider's raw body (``ProviderError.body``) is never
rendered. Request validation errors name the fields at fault but never echo the values sent.

A stored secret that cannot be decrypted is a 500 ``decryption_failed`` (or ``key_not_found``)
whose detail names nothing of the storage: the request is fine and nothing the caller sends
can mend it. The vault has logged where it is (table, column, row, key id) once per row, so it
is not logged again here.

Database trouble (an exhausted pool, a refused or lost connection, a serialization failure or
deadlock, a locked SQLite file; see :mod:`authbridge.storage.faults`) is a 503 with
``Retry-After`` and one warning line naming the kind, without a traceback. Anything else that
is unexpected, other database errors included, is logged once with its traceback and answered
with a bare 500 problem.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authbridge import errors
from authbridge.storage import faults

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://authbridge.dev/problems/"
log = logging.getLogger("authbridge.api")


class Problem(BaseModel):
    """The body of every error answer, as the OpenAPI document describes it."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    retry_after: float | None = None
    problems: list[str] | None = None
    invalid_params: list[dict[str, str]] | None = None


_PROBLEM_CONTENT = {MEDIA_TYPE: {"schema": Problem.model_json_schema()}}
#: Declared on every API route, so the document shows problem documents (not FastAPI's default
#: validation error body) for 4xx and 5xx answers.
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "A problem with the request", "content": _PROBLEM_CONTENT},
    "5XX": {"description": "A problem on the server or the provider", "content": _PROBLEM_CONTENT},
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem response (RFC 9457 §3) with our stable ``code`` as an extension member."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def from_error(error: errors.AuthBridgeError) -> JSONResponse:
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(error, errors.InvalidInput) and error.field:
        extra["field"] = error.field
    if isinstance(error, errors.ProviderUnavailable) and error.retry_after is not None:
        extra["retry_after"] = error.retry_after
    if isinstance(error, errors.DefinitionError):
        extra["problems"] = [str(item) for item in error.problems]
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, errors.DatabaseUnavailable):
        extra["retry_after"] = error.retry_after
        headers["Retry-After"] = str(error.retry_after)
        log.warning(
            "database unavailable: %s (%s); answered 503, retry after %d s",
            error.kind,
            error.cause or error.code,
            error.retry_after,
        )
    elif error.status >= 500 and not isinstance(
        error, errors.ProviderError | errors.DecryptionFailed
    ):
        log.error("request failed: %s (%s)", error.message, error.code)
    return problem(error.status, error.code, error.message, extra=extra, headers=headers)


def unexpected(exc: BaseException) -> JSONResponse:
    """Log ``exc`` with its traceback and answer the bare 500 problem (no detail of ``exc``)."""
    log.error("unexpected error", exc_info=exc)
    return problem(500, "internal_error", "An unexpected error occurred; it has been logged.")


def from_database_error(exc: BaseException) -> JSONResponse:
    """Answer database trouble with a 503 (see :func:`from_error`), any other error as a bug."""
    error = faults.unavailable(exc)
    return unexpected(exc) if error is None else from_error(error)


def _location(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body",)]
    return ".".join(parts) or "body"


def validation_problem(exc: RequestValidationError) -> JSONResponse:
    """Name each invalid field and why, without echoing the value (it may be a secret)."""
    invalid = [
        {
            # a JSON syntax error's location is a character offset, not a field
            "field": "body"
            if item.get("type") == "json_invalid"
            else _location(item.get("loc", ())),
            "reason": str(item.get("msg", "invalid")),
        }
        for item in exc.errors()
    ]
    first = invalid[0] if invalid else {"field": "body", "reason": "invalid"}
    detail = f"{first['field']}: {first['reason']}"
    if len(invalid) > 1:
        detail += f" (and {len(invalid) - 1} more)"
    return problem(422, "invalid_request", detail, extra={"invalid_params": invalid})


class AnswerUnexpected:
    """Answer an exception that no handler took with the bare 500 problem, logging it once.

    Starlette runs the handler registered for ``Exception`` in its outermost middleware, which
    re-raises after answering so that the server logs the error as well: every bug left two
    tracebacks. This middleware sits inside that one and ends the exception here. When the
    response had already started nothing can be answered, and the server, seeing it unfinished,
    closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            response = unexpected(exc)
            if not started:
                await response(scope, receive, send)


#: The methods ``Allow`` may name (OPTIONS always, HEAD wherever GET is).
METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route of the app answers at the request's path, for ``Allow``.

    Starlette's 405 names the methods of the first route that matched the path only, and one
    path often has a route per method (``GET`` and ``POST /v1/authentications``): each method
    is tried against the app's routes as the router would.
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(sorted([*allowed, "OPTIONS"]))


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``, and the middleware that ends unexpected errors."""

    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.AuthBridgeError)
        return from_error(exc)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        headers = exc.headers
        if status == 405:
            # OPTIONS is answered for every path that exists: which methods it takes.
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
        code = HTTPStatus(status).phrase.lower().replace(" ", "_")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).description
        return problem(status, code, detail, headers=headers)

    async def on_database_error(_request: Request, exc: Exception) -> JSONResponse:
        return from_database_error(exc)

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Only for errors raised outside AnswerUnexpected (in middleware added after it).
        return unexpected(exc)

    app.add_exception_handler(errors.AuthBridgeError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Handlers for specific classes run in Starlette's ExceptionMiddleware, which answers and
    # does not re-raise. DBAPIError covers OperationalError, IntegrityError and the rest;
    # TimeoutError is the pool's; the drivers' own classes are for raw connections.
    for database_error in (sa_exc.DBAPIError, sa_exc.TimeoutError, psycopg.Error, sqlite3.Error):
        app.add_exception_handler(database_error, on_database_error)
    app.add_middleware(AnswerUnexpected)
    app.add_exception_handler(Exception, on_unexpected)
