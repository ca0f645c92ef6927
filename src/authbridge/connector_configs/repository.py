"""Connector configurations: OAuth clients and settings per environment, secrets encrypted.

A connector with variants (production, sandbox …) has one configuration per variant, since each
has its own OAuth app; ``variant=""`` is the connector's default variant (and the only one of a
connector without variants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authbridge.storage.crypto import seal_json, unseal_json
from authbridge.storage.models import ConnectorConfig, new_id, utcnow
from authbridge.storage.repositories._dml import affected_rows
from authbridge.vault import Keyring

_SECRETS = "secrets_ct"


@dataclass(frozen=True)
class ConnectorSettings:
    """A connector configuration with its secrets decrypted; ``repr`` leaves the secrets out."""

    id: str
    environment_id: str
    connector_key: str
    variant: str
    client_id: str | None
    consumer_key: str | None
    redirect_uri: str | None
    scopes: tuple[str, ...] | None
    updated_at: datetime
    client_secret: str | None = field(default=None, repr=False)
    consumer_secret: str | None = field(default=None, repr=False)
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)


class ConnectorConfigRepository:
    """Queries and changes of the ``connector_configs`` table."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring

    def upsert(
        self,
        environment_id: str,
        connector_key: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        redirect_uri: str | None = None,
        scopes: Sequence[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        variant: str = "",
    ) -> ConnectorSettings:
        """Set the whole configuration of ``connector_key``, replacing any previous one.

        ``settings`` holds any other value the definition declares (all encrypted).
        """
        document = {
            "client_secret": client_secret,
            "consumer_secret": consumer_secret,
            "settings": dict(settings or {}),
        }
        values: dict[str, Any] = {
            "client_id": client_id,
            "consumer_key": consumer_key,
            "redirect_uri": redirect_uri,
            "scopes": None if scopes is None else list(scopes),
        }
        now = utcnow()
        config = self._find(environment_id, connector_key, variant, for_update=True)
        if config is None:
            try:
                with self.session.begin_nested():
                    config = ConnectorConfig(
                        id=new_id(),
                        environment_id=environment_id,
                        connector_key=connector_key,
                        variant=variant,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                    config.secrets_ct = seal_json(self.keyring, config, _SECRETS, document)
                    self.session.add(config)
                    self.session.flush()
                return self._settings(config, document)
            except IntegrityError:
                config = self._find(environment_id, connector_key, variant, for_update=True)
                if config is None:
                    raise
        for name, value in values.items():
            setattr(config, name, value)
        config.secrets_ct = seal_json(self.keyring, config, _SECRETS, document)
        config.updated_at = now
        self.session.flush()
        return self._settings(config, document)

    def get(
        self, environment_id: str, connector_key: str, variant: str = ""
    ) -> ConnectorSettings | None:
        """Return the configuration with its secrets decrypted, or ``None``."""
        config = self._find(environment_id, connector_key, variant)
        if config is None:
            return None
        return self._settings(config, unseal_json(self.keyring, config, _SECRETS))

    def list(self, environment_id: str) -> Sequence[ConnectorConfig]:
        """Return the environment's configurations (secrets still encrypted), by connector key
        and variant (the default variant first)."""
        statement = (
            select(ConnectorConfig)
            .where(ConnectorConfig.environment_id == environment_id)
            .order_by(ConnectorConfig.connector_key, ConnectorConfig.variant)
        )
        return list(self.session.scalars(statement))

    def delete(self, environment_id: str, connector_key: str, variant: str = "") -> bool:
        """Remove a configuration; return whether it existed."""
        statement = delete(ConnectorConfig).where(
            ConnectorConfig.environment_id == environment_id,
            ConnectorConfig.connector_key == connector_key,
            ConnectorConfig.variant == variant,
        )
        return affected_rows(self.session, statement) == 1

    def _find(
        self, environment_id: str, connector_key: str, variant: str, *, for_update: bool = False
    ) -> ConnectorConfig | None:
        statement = select(ConnectorConfig).where(
            ConnectorConfig.environment_id == environment_id,
            ConnectorConfig.connector_key == connector_key,
            ConnectorConfig.variant == variant,
        )
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).first()

    @staticmethod
    def _settings(config: ConnectorConfig, document: Mapping[str, Any]) -> ConnectorSettings:
        return ConnectorSettings(
            id=config.id,
            environment_id=config.environment_id,
            connector_key=config.connector_key,
            variant=config.variant,
            client_id=config.client_id,
            consumer_key=config.consumer_key,
            redirect_uri=config.redirect_uri,
            scopes=None if config.scopes is None else tuple(config.scopes),
            updated_at=config.updated_at,
            client_secret=document.get("client_secret"),
            consumer_secret=document.get("consumer_secret"),
            settings=dict(document.get("settings") or {}),
        )
