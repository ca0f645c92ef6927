"""The ``connector_configs`` table: per-environment OAuth clients and connector settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class ConnectorConfig(Base):
    """One connector's configuration in one environment.

    ``secrets_ct`` is the encrypted JSON of the client secret, consumer secret and any other
    setting the definition declares; the identifiers beside it are not secret.
    """

    __tablename__ = "connector_configs"
    __table_args__ = (UniqueConstraint("environment_id", "connector_key", "variant"),)

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    connector_key: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    """The connector variant this configuration is for (each may have its own OAuth app);
    ``""`` is the connector's default variant."""
    client_id: Mapped[str | None] = mapped_column(String(512))
    consumer_key: Mapped[str | None] = mapped_column(String(512))
    redirect_uri: Mapped[str | None] = mapped_column(String(2048))
    scopes: Mapped[list[str] | None] = mapped_column(JSON)
    secrets_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"ConnectorConfig(id={self.id!r}, connector_key={self.connector_key!r})"
