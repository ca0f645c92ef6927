"""``context.httpRequest``: the axios-like client an ``auth.js`` module calls, for ``auth.py``.

``await context.httpRequest(config)`` sends one request described the way axios (and the
``request`` library) describe one: ``method``, ``url`` (or ``uri``), ``headers``, ``params`` (or
``qs``), one body, and ``auth``. The shortcuts take the URL first: ``get``, ``delete`` and
``head`` then a config, ``post``, ``put`` and ``patch`` then the body and a config; a config may
also be given as keyword arguments (``context.httpRequest.get(url, auth={...})``).

Bodies: ``data`` (axios) or ``body`` is sent as JSON when it is a mapping or a list and as it
is when it is text or bytes; ``json`` is a JSON body (``json: true``, the ``request`` library's
switch, is ignored); ``form`` is form-encoded. ``auth`` is ``{username, password}`` (or
``user``, ``pass``) for HTTP Basic or ``{bearer}``.

Nothing is rendered: the code built its values itself, so a value holding ``{{`` is sent as it
is (``context.request`` is the one that fills templates). The request goes through the outbound
client and its egress policy. The answer is an :class:`HttpResponse` (``data``, ``status``,
``headers``); an answer that is not 2xx raises as every provider call does:
:class:`~authbridge.errors.CredentialsRejected` for 401 and 403,
:class:`~authbridge.errors.ProviderUnavailable` for 429 and 5xx, else
:class:`~authbridge.errors.ProviderError`, each with the provider's message, secrets redacted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from authbridge.http import error_for_status, parse_body

if TYPE_CHECKING:
    from authbridge.http import OutboundClient

__all__ = ["HttpRequest", "HttpResponse"]

_BODIES = ("data", "body", "json", "form")
OPTIONS = ("method", "url", "uri", "headers", "params", "qs", "auth", *_BODIES)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class HttpResponse:
    """A 2xx answer: the body parsed by its content type, the status and the headers."""

    data: Any
    status: int
    headers: httpx.Headers


class HttpRequest:
    """``context.httpRequest``: call it with a config, or use a method shortcut."""

    def __init__(self, http: OutboundClient, secrets: Callable[[], list[str]]) -> None:
        self._http = http
        self._secrets = secrets

    async def __call__(
        self, config: Mapping[str, Any] | None = None, /, **options: Any
    ) -> HttpResponse:
        """Send the request ``config`` (and ``options``) describe."""
        return await self._send({**(config or {}), **options})

    async def get(
        self, url: str, config: Mapping[str, Any] | None = None, /, **options: Any
    ) -> HttpResponse:
        return await self._send({**(config or {}), **options, "method": "GET", "url": url})

    async def delete(
        self, url: str, config: Mapping[str, Any] | None = None, /, **options: Any
    ) -> HttpResponse:
        return await self._send({**(config or {}), **options, "method": "DELETE", "url": url})

    async def head(
        self, url: str, config: Mapping[str, Any] | None = None, /, **options: Any
    ) -> HttpResponse:
        return await self._send({**(config or {}), **options, "method": "HEAD", "url": url})

    async def post(
        self, url: str, data: Any = None, config: Mapping[str, Any] | None = None, /, **options: Any
    ) -> HttpResponse:
        return await self._with_body("POST", url, data, {**(config or {}), **options})

    async def put(
        self, url: str, data: Any = None, config: Mapping[str, Any] | None = None, /, **options: Any
    ) -> HttpResponse:
        return await self._with_body("PUT", url, data, {**(config or {}), **options})

    async def patch(
        self, url: str, data: Any = None, config: Mapping[str, Any] | None = None, /, **options: Any
    ) -> HttpResponse:
        return await self._with_body("PATCH", url, data, {**(config or {}), **options})

    async def _with_body(
        self, method: str, url: str, data: Any, config: dict[str, Any]
    ) -> HttpResponse:
        if data is not None:
            config["data"] = data
        return await self._send({**config, "method": method, "url": url})

    async def _send(self, config: Mapping[str, Any]) -> HttpResponse:
        unknown = sorted(str(name) for name in config if name not in OPTIONS)
        if unknown:
            raise TypeError(
                f"context.httpRequest: unknown option '{unknown[0]}' (use {', '.join(OPTIONS)})"
            )
        method = str(config.get("method") or "GET").upper()
        if method not in METHODS:
            raise ValueError(f"context.httpRequest: unknown method {method!r}")
        url = config.get("url", config.get("uri"))
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ValueError("context.httpRequest: 'url' must be an absolute http(s) URL")
        hidden = self._secrets()
        headers = _text_mapping(config.get("headers"), "headers")
        auth: httpx.Auth | None = None
        given = config.get("auth")
        if given is not None:
            auth, bearer, secret = _auth_of(given)
            if bearer is not None:
                headers["Authorization"] = f"Bearer {bearer}"
            hidden.append(secret)
        params = _text_mapping(config.get("params", config.get("qs")), "params")
        request_url = httpx.URL(url)
        if params:
            request_url = request_url.copy_merge_params(params)
        response = await self._http.request(
            method,
            request_url,
            headers=headers,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            **_body_of(config),
        )
        parsed = parse_body(response)
        if not response.is_success:
            raise error_for_status(
                response.status_code,
                parsed,
                reason_phrase=response.reason_phrase,
                retry_after=response.headers.get("retry-after"),
                secrets=hidden,
            )
        return HttpResponse(data=parsed, status=response.status_code, headers=response.headers)


def _text_mapping(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"context.httpRequest: '{name}' must be a mapping")
    return {str(key): _text(item) for key, item in value.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _auth_of(value: Any) -> tuple[httpx.Auth | None, str | None, str]:
    """HTTP Basic auth or a bearer token from ``{username, password}`` or ``{bearer}``; and
    the secret to keep out of messages."""
    if not isinstance(value, Mapping):
        raise TypeError("context.httpRequest: 'auth' must be {username, password} or {bearer}")
    if "bearer" in value:
        token = _text(value["bearer"])
        return None, token, token
    username = value.get("username", value.get("user"))
    if username is None:
        raise TypeError("context.httpRequest: 'auth' needs 'username' (or 'user') or 'bearer'")
    password = _text(value.get("password", value.get("pass", "")))
    return httpx.BasicAuth(_text(username), password), None, password


def _body_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """httpx's keyword for the one body in ``config`` (``json: true`` is no body)."""
    bodies = [
        name
        for name in _BODIES
        if config.get(name) is not None and not (name == "json" and isinstance(config[name], bool))
    ]
    if len(bodies) > 1:
        raise TypeError(f"context.httpRequest: give one body, not {' and '.join(bodies)}")
    if not bodies:
        return {}
    name = bodies[0]
    value = config[name]
    if name == "form":
        if not isinstance(value, Mapping):
            raise TypeError("context.httpRequest: 'form' must be a mapping")
        return {"data": {str(key): _text(item) for key, item in value.items()}}
    if name == "json" or isinstance(value, Mapping | list | tuple):
        return {"json": value}
    if isinstance(value, str):
        return {"content": value.encode()}
    if isinstance(value, bytes):
        return {"content": value}
    raise TypeError(f"context.httpRequest: '{name}' must be a mapping, a list, text or bytes")
