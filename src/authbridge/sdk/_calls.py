"""Every REST call the SDK makes, described once for the sync and the async client.

A :class:`Call` is a request (method, path, query, JSON body) plus how to read its answer; the
clients only send it. Path values are percent-encoded, so an id holding ``?``, ``#`` or ``..``
stays one path segment and cannot reach another route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

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

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and the reading of its (successful) answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _segment(value: str) -> str:
    if not value:
        raise ValueError("an id in a path must not be empty")
    return quote(value, safe="")


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: cls.model_validate(response.json())


def _models(cls: type[M]) -> Callable[[httpx.Response], list[M]]:
    return lambda response: [cls.model_validate(item) for item in response.json()]


def _page(cls: type[M]) -> Callable[[httpx.Response], Page[M]]:
    def read(response: httpx.Response) -> Page[M]:
        body = response.json()
        items = [cls.model_validate(item) for item in body["items"]]
        return Page(items, body.get("next_cursor"))

    return read


def _nothing(response: httpx.Response) -> None:
    return None


def _query(**values: str | int | None) -> dict[str, str | int]:
    return {name: value for name, value in values.items() if value is not None}


def _body(**values: Any) -> dict[str, Any]:
    """A JSON body of the values given (``None``: not sent); datetimes as ISO 8601."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None
    }


# -- end users and user tokens ---------------------------------------------------------------


def put_end_user(external_user_id: str, name: str | None, email: str | None) -> Call[EndUser]:
    body = {"external_user_id": external_user_id, "name": name, "email": email}
    path = f"/v1/end-users/{_segment(external_user_id)}"
    return Call("PUT", path, _model(EndUser), body=body)


def get_end_user(external_user_id: str) -> Call[EndUser]:
    return Call("GET", f"/v1/end-users/{_segment(external_user_id)}", _model(EndUser))


def list_end_users(limit: int, cursor: str | None) -> Call[Page[EndUser]]:
    return Call("GET", "/v1/end-users", _page(EndUser), params=_query(limit=limit, cursor=cursor))


def create_user_token(external_user_id: str, ttl_seconds: int) -> Call[UserToken]:
    body = {"external_user_id": external_user_id, "ttl_seconds": ttl_seconds}
    return Call("POST", "/v1/user-tokens", _model(UserToken), body=body)


# -- authentications -------------------------------------------------------------------------


def list_authentications(
    *,
    external_user_id: str | None,
    connector: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Call[Page[Authentication]]:
    params = _query(
        external_user_id=external_user_id,
        connector=connector,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "/v1/authentications", _page(Authentication), params=params)


def _auth_path(auth_id: str, rest: str = "") -> str:
    return f"/v1/authentications/{_segment(auth_id)}{rest}"


def get_authentication(auth_id: str) -> Call[Authentication]:
    return Call("GET", _auth_path(auth_id), _model(Authentication))


def import_authentication(
    connector: str,
    *,
    external_user_id: str | None,
    fields: Mapping[str, str] | None,
    tokens: Mapping[str, str] | None,
    name: str | None,
    version: str | None,
    variant: str | None,
    scopes: Sequence[str] | None,
    expires_at: datetime | None,
    hard_expires_at: datetime | None,
    delete_at: datetime | None,
    validate: bool,
) -> Call[Authentication]:
    body = _body(
        connector=connector,
        external_user_id=external_user_id,
        fields=dict(fields) if fields is not None else None,
        tokens=dict(tokens) if tokens is not None else None,
        name=name,
        version=version,
        variant=variant,
        scopes=list(scopes) if scopes is not None else None,
        expires_at=expires_at,
        hard_expires_at=hard_expires_at,
        delete_at=delete_at,
        validate=validate,
    )
    return Call("POST", "/v1/authentications", _model(Authentication), body=body)


def update_authentication(
    auth_id: str, *, name: str | None, delete_at: datetime | None, clear_delete_at: bool
) -> Call[Authentication]:
    body = _body(name=name, delete_at=delete_at, clear_delete_at=clear_delete_at or None)
    return Call("PATCH", _auth_path(auth_id), _model(Authentication), body=body)


def delete_authentication(auth_id: str) -> Call[None]:
    return Call("DELETE", _auth_path(auth_id), _nothing)


def credentials(auth_id: str) -> Call[Credentials]:
    return Call(
        "GET",
        _auth_path(auth_id, "/credentials"),
        lambda response: Credentials.from_json(response.json()),
    )


def request_auth(auth_id: str) -> Call[RequestAuth]:
    from authbridge.mechanisms.request_rules import RequestAuth  # heavy: imported when used

    return Call(
        "GET",
        _auth_path(auth_id, "/request-auth"),
        lambda response: RequestAuth.from_json(response.json()),
    )


CONTEXT_OF = (
    "give the context an auth_id, or connector= for a connector without per-user auth, not both"
)


def connector_request_auth(key: str, version: str | None, variant: str | None) -> Call[RequestAuth]:
    from authbridge.mechanisms.request_rules import RequestAuth  # heavy: imported when used

    return Call(
        "GET",
        f"/v1/connectors/{_segment(key)}/request-auth",
        lambda response: RequestAuth.from_json(response.json()),
        params=_query(version=version, variant=variant),
    )


def refresh(auth_id: str) -> Call[Refreshed]:
    return Call("POST", _auth_path(auth_id, "/refresh"), _model(Refreshed))


# -- connect links and connectors ------------------------------------------------------------


def create_connect_session(
    external_user_id: str,
    connector: str,
    *,
    authentication_id: str | None,
    origin: str | None,
    version: str | None,
    variant: str | None,
) -> Call[ConnectSession]:
    body = _body(
        external_user_id=external_user_id,
        connector=connector,
        authentication_id=authentication_id,
        origin=origin,
        version=version,
        variant=variant,
    )
    return Call("POST", "/v1/connect/sessions", _model(ConnectSession), body=body)


def list_connectors() -> Call[list[Connector]]:
    return Call("GET", "/v1/connectors", _models(Connector))


def get_connector(key: str, version: str | None) -> Call[Connector]:
    params = _query(version=version)
    return Call("GET", f"/v1/connectors/{_segment(key)}", _model(Connector), params=params)


# -- webhook endpoints -----------------------------------------------------------------------


def create_webhook_endpoint(
    url: str, event_types: Sequence[str], description: str | None
) -> Call[IssuedWebhookEndpoint]:
    body = _body(url=url, event_types=list(event_types), description=description)
    return Call("POST", "/v1/webhook-endpoints", _model(IssuedWebhookEndpoint), body=body)


def list_webhook_endpoints(limit: int, cursor: str | None) -> Call[Page[WebhookEndpoint]]:
    params = _query(limit=limit, cursor=cursor)
    return Call("GET", "/v1/webhook-endpoints", _page(WebhookEndpoint), params=params)


def delete_webhook_endpoint(endpoint_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/webhook-endpoints/{_segment(endpoint_id)}", _nothing)
