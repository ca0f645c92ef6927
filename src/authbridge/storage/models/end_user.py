"""The ``end_users`` table: the host's customers, known by the host's own user id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow
from authbridge.storage.models.environment import Environment


class EndUser(Base):
    """One end user; ``external_user_id`` is unique within the environment."""

    __tablename__ = "end_users"
    __table_args__ = (UniqueConstraint("environment_id", "external_user_id"),)

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    external_user_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    environment: Mapped[Environment] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return f"EndUser(id={self.id!r}, external_user_id={self.external_user_id!r})"
