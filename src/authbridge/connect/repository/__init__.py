"""The connect tables: connect sessions (the one-time links) and the OAuth states between the
redirect to a provider and its callback."""

from authbridge.connect.repository.oauth_states import (
    ClaimedOAuthState,
    IssuedOAuthState,
    OAuthStateRepository,
)
from authbridge.connect.repository.sessions import ConnectSessionRepository, IssuedConnectSession

__all__ = [
    "ClaimedOAuthState",
    "ConnectSessionRepository",
    "IssuedConnectSession",
    "IssuedOAuthState",
    "OAuthStateRepository",
]
