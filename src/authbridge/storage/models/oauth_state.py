"""The ``oauth_states`` table: one pending OAuth redirect, between the start and the callback."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class OAuthState(Base):
    """A redirect to a provider that has not come back yet.

    ``lookup_hash`` is the SHA-256 of what the callback carries to find it (the OAuth 2
    ``state``, or the OAuth 1.0a request token); ``binding_hash`` the SHA-256 of the cookie set in
    the browser that started the flow, so the callback must come back to the same browser.
    ``secrets_ct`` holds, encrypted, the PKCE verifier or the request token secret. Single use:
    ``used_at`` is set by the one callback that wins.
    """

    __tablename__ = "oauth_states"

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    connect_session_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("connect_sessions.id", ondelete="CASCADE"), index=True
    )
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    binding_hash: Mapped[str] = mapped_column(String(64))
    secrets_ct: Mapped[bytes] = mapped_column(LargeBinary)
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return (
            f"OAuthState(id={self.id!r}, expires_at={self.expires_at!r}, used_at={self.used_at!r})"
        )
