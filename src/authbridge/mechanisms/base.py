"""The interface every auth mechanism offers the service layer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import httpx

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, AuthType, Fields
from authbridge.http import OutboundClient
from authbridge.mechanisms.context import Context
from authbridge.spec import expiry

#: Credentials only authbridge itself uses (to renew the others): never served to a caller,
#: never a template value, never sent out.
PRIVATE_CREDENTIALS = frozenset({"refresh_token", "refreshToken"})


@dataclass(frozen=True)
class ConnectResult:
    """A connected account, as a mechanism hands it to the service layer.

    ``credentials`` are what gets encrypted and stored (entered fields, tokens);
    ``account_name`` is ``None`` when neither the definition nor the profile names the account,
    so the caller picks a default. Secrets stay out of ``repr``.
    """

    account_name: str | None
    credentials: Mapping[str, Any] = field(repr=False)
    profile: Mapping[str, Any] | None = field(default=None, repr=False)
    email: str | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Revocation:
    """A token revocation request (RFC 7009), built while the authentication is read and sent
    once the transaction that deletes it has committed (no transaction spans a provider
    call). ``secrets`` are what to redact from a failure's message."""

    url: str
    token_type_hint: str
    form: Mapping[str, str] = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)

    async def send(self, http: OutboundClient, *, wait_seconds: float) -> httpx.Response:
        """POST the request, waiting at most ``wait_seconds``; the caller judges the answer."""
        return await http.request(
            "POST",
            self.url,
            data=dict(self.form),
            headers=dict(self.headers),
            timeout=wait_seconds,
        )


class Mechanism(ABC):
    """One auth type's behaviour; stateless, so one instance serves every connector."""

    type: ClassVar[AuthType]

    def form_fields(self, definition: AuthDefinition) -> Fields:
        """The inputs the connect page shows for ``definition`` (none by default)."""
        return {}

    @abstractmethod
    async def connect(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        """Turn what the end user (or host) supplied in ``context`` into a connected account."""

    async def check_tokens(self, definition: AuthDefinition, context: Context) -> None:
        """Check tokens obtained elsewhere (an import) with ``validate_access_token``.

        Raises :class:`errors.InvalidToken` when the provider refuses them; mechanisms without
        tokens accept anything.
        """
        return None

    async def refresh(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        """Renew expiring credentials; ``context`` holds the stored fields and tokens."""
        raise errors.AuthBridgeError(f"'{self.type}' credentials cannot be refreshed")

    def can_refresh(self, definition: AuthDefinition, credentials: Mapping[str, Any]) -> bool:
        """Whether :meth:`refresh` can renew these stored credentials (an API key cannot)."""
        return False

    def refresh_due_at(
        self, definition: AuthDefinition, expires_at: datetime | None, now: datetime
    ) -> datetime | None:
        """When to refresh credentials issued at ``now`` and expiring at ``expires_at``
        (``None``: never): the default margin before expiry."""
        if expires_at is None:
            return None
        return expiry.refresh_due_at(expires_at, expiry.refresh_margin(), issued_at=now)

    def revocation(self, definition: AuthDefinition, context: Context) -> Revocation | None:
        """The request that revokes the stored tokens (``context.tokens``) at the provider,
        or ``None`` when there is nothing to revoke (the default: no tokens, or no endpoint).
        An :class:`errors.AuthBridgeError` (or :class:`ValueError`) says why it cannot be
        built."""
        return None

    def hard_expires_at(
        self, definition: AuthDefinition, expires_at: datetime | None
    ) -> datetime | None:
        """When the end user must reconnect at the latest (``None``: the credentials are
        renewed, or never expire)."""
        return None
