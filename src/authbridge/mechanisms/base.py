"""The interface every auth mechanism offers the service layer."""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import httpx

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, AuthType, Fields, FieldSpec
from authbridge.connectors.request_models import RequestSpec
from authbridge.http import OutboundClient
from authbridge.mechanisms.context import ClientConfig, Context
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


@dataclass(frozen=True)
class DefinedRevocation:
    """A revocation the definition describes itself (GitHub's ``DELETE
    /applications/{client_id}/grant``): a request spec run with ``context``'s values, or code
    given ``context``. Built and sent as :class:`Revocation` is. ``send`` raises when the
    provider refuses (a non-2xx answer, code that raises or returns ``False``)."""

    action: RequestSpec | Callable[..., Any] = field(repr=False)
    context: Context = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)

    async def send(self, http: OutboundClient, *, wait_seconds: float) -> None:
        """Run the spec (``POST`` unless it names a method) or the code, waiting at most
        ``wait_seconds`` (a spec's own ``timeout`` wins)."""
        context = self.context.replace(http=http)
        if isinstance(self.action, RequestSpec):
            spec = self.action
            if spec.timeout is None:
                spec = spec.model_copy(update={"timeout": wait_seconds})
            await http.execute(spec, context.values(), default_method="POST", secrets=self.secrets)
            return
        result = self.action(context)
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, wait_seconds)
        if result is False:
            raise errors.ProviderError("the revocation code returned False")


TokenRevocation = Revocation | DefinedRevocation
"""What :meth:`Mechanism.revocation` builds: RFC 7009 at a URL, or the definition's own."""


class Mechanism(ABC):
    """One auth type's behaviour; stateless, so one instance serves every connector."""

    type: ClassVar[AuthType]
    #: Whether rendering the request rules needs the connector's client secret (OAuth 1.0a
    #: signs every request with the consumer secret), so that only a master token may read them.
    request_auth_needs_master: ClassVar[bool] = False
    #: Whether each end user connects an account of their own (``False`` for ``none``: the
    #: request rules are rendered from the host's configuration alone, with no authentication).
    per_user: ClassVar[bool] = True

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

    def revocation(self, definition: AuthDefinition, context: Context) -> TokenRevocation | None:
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

    def signs_in_at_provider(self, definition: AuthDefinition) -> bool:
        """Whether connecting sends the end user to the provider and back (a
        :class:`RedirectMechanism`); every other definition connects from the connect page."""
        return False

    def import_template(self, definition: AuthDefinition) -> dict[str, Any]:
        """What an import of these credentials holds besides the connector and the end user
        (``GET /v1/connectors/{key}/import-template``), with placeholders: by default the
        connect form's fields."""
        fields = self.form_fields(definition)
        return {"fields": {name: _placeholder(name, spec) for name, spec in fields.items()}}


def _placeholder(name: str, spec: FieldSpec) -> str:
    described = spec.name or name
    if spec.options:
        described += f": one of {', '.join(option.value for option in spec.options)}"
    if not spec.required:
        described += " (optional: remove this line to leave it empty)"
    return f"<{described}>"


@dataclass(frozen=True)
class SignIn:
    """Where to send the end user to sign in at the provider, and what the callback needs.

    ``lookup`` finds the pending sign-in when the provider redirects back (OAuth 2's
    ``state``, OAuth 1.0a's request token); ``secrets`` (a PKCE verifier, a request token
    secret) are kept server-side, encrypted, until then.
    """

    url: str = field(repr=False)
    lookup: str = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...]
    secrets: Mapping[str, Any] = field(repr=False)


class RedirectMechanism(Mechanism):
    """A mechanism that connects by a round trip through the provider's sign-in page (OAuth
    1.0a, the OAuth 2 authorization code grant): one protocol for the service that stores the
    pending sign-in and answers the callback."""

    def signs_in_at_provider(self, definition: AuthDefinition) -> bool:
        return True

    @abstractmethod
    def missing_configuration(self, config: ClientConfig) -> str | None:
        """What the host has still to configure before a sign-in can start (``client id``,
        ``consumer key``), or ``None``."""

    @abstractmethod
    async def sign_in(
        self, definition: AuthDefinition, context: Context, *, scopes: Sequence[str] | None
    ) -> SignIn:
        """Prepare the redirect to the provider (``scopes``: a connect link's own choice)."""

    @abstractmethod
    def callback_lookup(self, query: Mapping[str, str]) -> str:
        """What in the callback's query finds the pending sign-in (``""`` when nothing)."""

    @abstractmethod
    async def signed_in(
        self,
        definition: AuthDefinition,
        context: Context,
        query: Mapping[str, str],
        *,
        redirect_uri: str,
        scopes: Sequence[str],
        secrets: Mapping[str, Any],
    ) -> ConnectResult:
        """Check the provider's redirect back and trade it for credentials, with the redirect
        URI, scopes and secrets :meth:`sign_in` returned (kept meanwhile by the caller)."""
