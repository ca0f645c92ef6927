"""The ``environments`` table: isolation units with their own tokens, configs and keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import Base, id_column, utcnow


class Environment(Base):
    """An environment (``default``, ``dev``, ``prod`` …).

    ``jwt_secret_ct`` is the encrypted HMAC secret that signs user tokens and verifies HS256 JWTs
    the host signs itself.
    """

    __tablename__ = "environments"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    jwt_secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Environment(id={self.id!r}, name={self.name!r})"
