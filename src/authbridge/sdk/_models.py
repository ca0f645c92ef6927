"""Typed results of the REST API: frozen pydantic models, plus :class:`Credentials`.

Models ignore members they do not know, so a newer server does not break an older SDK. Values
that are secrets (a user token, a connect link, a webhook secret, credentials) stay out of
``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Authentication",
    "ConnectSession",
    "Connector",
    "ConnectorField",
    "Credentials",
    "EndUser",
    "IssuedWebhookEndpoint",
    "Refreshed",
    "UserToken",
    "WebhookEndpoint",
]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class EndUser(_Result):
    id: str
    external_user_id: str
    name: str | None = None
    email: str | None = None
    created_at: datetime


class UserToken(_Result):
    """A short-lived token that sees only one end user's data."""

    token: str = Field(repr=False)
    expires_at: datetime


class Authentication(_Result):
    """A connected account (without its credentials: see :meth:`Client.credentials`)."""

    id: str
    connector: str
    connector_version: str
    connector_variant: str | None = None
    auth_type: str
    name: str
    external_user_id: str | None = None
    email: str | None = None
    scopes: tuple[str, ...] = ()
    status: str
    last_error: str | None = None
    expires_at: datetime | None = None
    hard_expires_at: datetime | None = None
    delete_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class Refreshed(_Result):
    """The outcome of a forced refresh."""

    outcome: str
    expires_at: datetime | None = None


class ConnectSession(_Result):
    """A one-time connect link; ``url`` is a bearer secret until used, so not in ``repr``."""

    id: str
    url: str = Field(repr=False)
    expires_at: datetime


class ConnectorField(_Result):
    name: str
    label: str
    type: str
    required: bool
    tooltip: str | None = None
    options: tuple[str, ...] = ()


class Connector(_Result):
    key: str
    version: str
    label: str
    auth_type: str
    description: str | None = None
    docs_url: str | None = None
    fields: tuple[ConnectorField, ...] = ()
    variants: tuple[str, ...] = ()


class WebhookEndpoint(_Result):
    id: str
    url: str
    description: str | None = None
    event_types: tuple[str, ...] = ()
    enabled: bool
    created_at: datetime
    updated_at: datetime


class IssuedWebhookEndpoint(WebhookEndpoint):
    """An endpoint as created: with its signing secret, shown this once."""

    secret: str = Field(repr=False)


class Credentials(Mapping[str, Any]):
    """An authentication's fresh credentials: a read-only mapping of the stored values.

    The entered fields and tokens (``credentials["api_key"]``, ``["access_token"]``), never
    the refresh token, which only authbridge uses. ``repr`` names the keys, not the values.
    A connector without per-user auth has none: ``authentication_id`` is ``None`` and the
    mapping empty (:meth:`none`).
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        *,
        authentication_id: str | None,
        connector: str,
        auth_type: str,
        expires_at: datetime | None,
    ) -> None:
        self._values = dict(values)
        self.authentication_id = authentication_id
        self.connector = connector
        self.auth_type = auth_type
        self.expires_at = expires_at

    @classmethod
    def none(cls, connector: str) -> Credentials:
        """No credentials: those of a connector without per-user auth."""
        return cls(
            {}, authentication_id=None, connector=connector, auth_type="none", expires_at=None
        )

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Credentials:
        """Read the body of ``GET /v1/authentications/{id}/credentials``."""
        values = body.get("credentials")
        if not isinstance(values, Mapping):
            raise ValueError("not a credentials document")
        expires = body.get("expires_at")
        return cls(
            values,
            authentication_id=str(body["authentication_id"]),
            connector=str(body["connector"]),
            auth_type=str(body["auth_type"]),
            expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
        )

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return (
            f"Credentials(authentication_id={self.authentication_id!r}, "
            f"connector={self.connector!r}, keys={sorted(self._values)})"
        )
