"""Auth mechanisms: one module per auth type, looked up by type.

mechanism = get_mechanism(definition.type)
result = await mechanism.connect(definition, context)
"""

from __future__ import annotations

from authbridge.connectors.models import AuthType
from authbridge.mechanisms.api_key import ApiKeyMechanism
from authbridge.mechanisms.base import (
    ConnectResult,
    DefinedRevocation,
    Mechanism,
    RedirectMechanism,
    Revocation,
    SignIn,
    TokenRevocation,
)
from authbridge.mechanisms.context import ClientConfig, Context
from authbridge.mechanisms.jwt import JwtMechanism
from authbridge.mechanisms.none import NoneMechanism
from authbridge.mechanisms.oauth1 import OAuth1Mechanism
from authbridge.mechanisms.oauth2 import OAuth2Mechanism
from authbridge.mechanisms.pwd import PwdMechanism

__all__ = [
    "ClientConfig",
    "ConnectResult",
    "Context",
    "DefinedRevocation",
    "Mechanism",
    "RedirectMechanism",
    "Revocation",
    "SignIn",
    "TokenRevocation",
    "get_mechanism",
]

_MECHANISMS: dict[str, Mechanism] = {
    mechanism.type: mechanism
    for mechanism in (
        NoneMechanism(),
        ApiKeyMechanism(),
        PwdMechanism(),
        JwtMechanism(),
        OAuth1Mechanism(),
        OAuth2Mechanism(),
    )
}


def get_mechanism(auth_type: AuthType) -> Mechanism:
    """The mechanism for ``auth_type``; ``KeyError`` for a type with no flow yet."""
    return _MECHANISMS[auth_type]
