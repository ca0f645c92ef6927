"""Resolving a definition property: call it, run its request spec, or GET/POST its URL."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from authbridge import errors
from authbridge.connectors.request_models import RequestSpec
from authbridge.mechanisms.context import Context
from authbridge.mechanisms.http_request import HttpResponse
from authbridge.redaction import redact

PROFILE_NAME_KEYS = ("name", "display_name", "displayName", "email", "login", "username", "id")


async def call(function: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async definition callable and return its (awaited) result."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def resolve(
    prop: str | RequestSpec | Callable[..., Any],
    context: Context,
    *,
    method: str = "GET",
    failure: type[errors.ProviderError] = errors.ProviderError,
) -> Any:
    """Resolve ``prop`` in ``context``.

    A callable is called with the context; a request spec is executed with the context's values
    in its templates (``method`` when the spec names none); a URL string is requested with
    ``method``. A callable may return what ``context.httpRequest`` answered: its ``data`` is the
    result. Exceptions raised by definition code become ``failure`` with their message (secret
    values redacted); authbridge's own errors pass through unchanged.
    """
    try:
        if callable(prop):
            result = await call(prop, context)
            return result.data if isinstance(result, HttpResponse) else result
        spec = RequestSpec(url=prop) if isinstance(prop, str) else prop
        return await context.request(spec, method=method)
    except errors.AuthBridgeError:
        raise
    except Exception as exc:  # definition code may raise anything; its message is shown
        message = redact(str(exc), context.secrets()) or type(exc).__name__
        raise failure(message) from exc


async def check_token(outcome: Awaitable[Any]) -> None:
    """Await a ``validate_access_token`` outcome; a refusal raises :class:`InvalidToken`.

    A rejection by the provider (401/403) or an outcome of ``False`` means the stored token is
    no longer accepted, which marks the authentication ``invalid``; transient failures pass
    through unchanged.
    """
    try:
        result = await outcome
    except errors.CredentialsRejected as exc:
        raise errors.InvalidToken(exc.message, status_code=exc.status_code, body=exc.body) from exc
    if result is False:
        raise errors.InvalidToken("the provider did not accept the access token")


def pick_path(data: Any, path: str) -> Any:
    """Follow a dot path (``contact.email``, ``emails.0.value``) into nested data, or None."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, Sequence) and not isinstance(current, str) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


def _as_name(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text or None


async def account_name(
    name_from: str | Callable[..., Any] | None,
    context: Context,
    source: Mapping[str, Any] | None,
) -> str | None:
    """The account's display name.

    ``name_from`` is the definition's ``account_name_from_profile_info``: a callable given the
    context (whose ``profile`` is set), or a dot path into ``source`` (the profile, or the
    entered fields when there is no profile request). Without it, common profile keys are tried.
    """
    if callable(name_from):
        return _as_name(await call(name_from, context))
    if source is None:
        return None
    if name_from is not None:
        return _as_name(pick_path(source, name_from))
    for key in PROFILE_NAME_KEYS:
        name = _as_name(source.get(key))
        if name is not None:
            return name
    return None
