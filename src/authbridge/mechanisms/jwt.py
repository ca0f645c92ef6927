"""``jwt``: credentials the host passes in the ``authData`` claim of a JWT it signs.

The host already knows its end user's credentials for its own app, so instead of showing a
form it signs a short-lived JWT whose ``authData`` claim holds the fields of the connector's
``auth`` mapping, and whose ``sub`` is its external user id. :meth:`JwtMechanism.connect_with_token`
verifies the token (:mod:`authbridge.hostjwt`) and runs the ordinary form pipeline on
``authData``: the fields are checked against the definition, then ``validate``, the profile and
the account name run as for ``api_key``. Plain :meth:`~FormMechanism.connect` takes the fields
directly (the host's import path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, JwtDefinition
from authbridge.hostjwt import JwtKey, verify
from authbridge.mechanisms.base import ConnectResult
from authbridge.mechanisms.context import Context
from authbridge.mechanisms.form import FormMechanism

AUTH_DATA_CLAIMS = ("authData", "auth_data")
"""The claim carrying the credentials, in the reference's spelling and in snake_case."""


def auth_data_from(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The credentials in verified ``claims``: the ``authData`` (or ``auth_data``) object.

    Raises :class:`errors.JwtError` when the claim is missing, not an object, or given twice.
    """
    present = [name for name in AUTH_DATA_CLAIMS if name in claims]
    if not present:
        raise errors.JwtError("the token has no authData claim")
    if len(present) > 1:
        raise errors.JwtError("the token has both an authData and an auth_data claim")
    auth_data = claims[present[0]]
    if not isinstance(auth_data, Mapping):
        raise errors.JwtError("the authData claim must be an object")
    return dict(auth_data)


class JwtMechanism(FormMechanism):
    """Connects an account from a host-signed JWT, or from fields the host sends directly."""

    type = "jwt"

    async def connect_with_token(
        self,
        definition: AuthDefinition,
        token: str,
        keys: Sequence[JwtKey],
        context: Context,
        *,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> tuple[dict[str, Any], ConnectResult]:
        """Verify ``token`` with ``keys`` at ``context.now`` and connect its ``authData``.

        Returns the verified claims (the service reads ``sub``, the host's external user id)
        and the connected account. Raises :class:`errors.JwtError` when the token is refused,
        :class:`errors.InvalidInput` when ``authData`` does not fit the definition's fields,
        and what ``validate`` or the profile request raise.
        """
        assert isinstance(definition, JwtDefinition)
        claims = verify(token, keys, now=context.now, audience=audience, issuer=issuer)
        auth_data = auth_data_from(claims)
        result = await self.connect(definition, context.replace(fields=auth_data))
        return claims, result
