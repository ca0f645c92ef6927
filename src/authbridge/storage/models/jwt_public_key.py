"""The ``jwt_keys`` table: public keys the host signs its own JWTs with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class JwtPublicKey(Base):
    """A PEM public key for RS256, ES256 or EdDSA host JWTs, found by its ``kid``."""

    __tablename__ = "jwt_keys"
    __table_args__ = (UniqueConstraint("environment_id", "kid"),)

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    kid: Mapped[str] = mapped_column(String(255))
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"JwtPublicKey(id={self.id!r}, kid={self.kid!r}, algorithm={self.algorithm!r})"
