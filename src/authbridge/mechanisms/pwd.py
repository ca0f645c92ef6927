"""``pwd``: username and password, used as HTTP Basic or exchanged for an expiring token.

``validate`` returns nothing (the username and password are the credentials, e.g. for HTTP
Basic) or ``{"token": ..., "expires": ...}``: ``expires`` is a date, or the token's lifetime in
seconds as a number or numeric string, and may be spelled ``expiresIn`` or ``expires_in`` as
providers answer (the first spelling with a value counts, in that order). A request-spec
``validate`` whose response body has a ``token`` is read the same way; a body without one means
HTTP Basic use. A token that expires
is renewed by logging in again with the stored username and password
(:meth:`PwdMechanism.refresh`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, PwdDefinition
from authbridge.mechanisms.base import ConnectResult
from authbridge.mechanisms.context import Context
from authbridge.mechanisms.form import FormMechanism, Validation
from authbridge.spec.expiry import expires_at_from

EXPIRY_KEYS = ("expires", "expiresIn", "expires_in")


class PwdMechanism(FormMechanism):
    type = "pwd"

    def interpret_validation(
        self, outcome: Any, context: Context, *, from_code: bool
    ) -> Validation:
        if outcome is None or outcome is True:
            return Validation()
        if not from_code and (not isinstance(outcome, Mapping) or "token" not in outcome):
            return Validation()  # a provider's answer without a token: HTTP Basic use
        if not isinstance(outcome, Mapping) or "token" not in outcome:
            raise errors.ProviderError(
                "'validate' of a pwd connector must return nothing, or an object with 'token'"
                " (and optionally 'expires')"
            )
        token = outcome["token"]
        if not isinstance(token, str) or not token:
            raise errors.ProviderError("the login did not return a token")
        key = next((key for key in EXPIRY_KEYS if outcome.get(key) is not None), "expires")
        try:
            expires_at = expires_at_from(outcome.get(key), now=context.now)
        except ValueError as exc:
            raise errors.ProviderError(
                f"the login returned an unusable expiry ({key}): {exc}"
            ) from exc
        return Validation(tokens={"token": token}, expires_at=expires_at)

    def can_refresh(self, definition: AuthDefinition, credentials: Mapping[str, Any]) -> bool:
        """The stored username and password log in again."""
        return True

    async def refresh(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        """Log in again with the stored username and password to get a fresh token."""
        assert isinstance(definition, PwdDefinition)
        stored = {name: context.fields[name] for name in definition.auth if name in context.fields}
        return await self.connect(definition, context.replace(fields=stored, tokens={}))
