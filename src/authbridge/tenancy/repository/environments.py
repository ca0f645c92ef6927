"""Environments, and the encrypted secret each one signs user tokens with."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authbridge.storage.crypto import seal, unseal
from authbridge.storage.models import Environment, new_id, utcnow
from authbridge.vault import Keyring

DEFAULT_ENVIRONMENT = "default"
JWT_SECRET_BYTES = 32


class EnvironmentRepository:
    """Queries and changes of the ``environments`` table."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring

    def get(self, environment_id: str) -> Environment | None:
        return self.session.get(Environment, environment_id)

    def get_by_name(self, name: str) -> Environment | None:
        return self.session.scalars(select(Environment).where(Environment.name == name)).first()

    def list(self) -> list[Environment]:
        return list(self.session.scalars(select(Environment).order_by(Environment.name)))

    def create(self, name: str) -> Environment:
        """Add an environment with a fresh 256-bit JWT secret; the name must be new."""
        environment = Environment(id=new_id(), name=name, created_at=utcnow())
        environment.jwt_secret_ct = seal(
            self.keyring, environment, "jwt_secret_ct", secrets.token_bytes(JWT_SECRET_BYTES)
        )
        self.session.add(environment)
        self.session.flush()
        return environment

    def get_or_create(self, name: str = DEFAULT_ENVIRONMENT) -> Environment:
        """Return the environment called ``name``, creating it when it does not exist yet.

        Safe when several processes start at once: the loser of the race reads the winner's row.
        """
        existing = self.get_by_name(name)
        if existing is not None:
            return existing
        try:
            with self.session.begin_nested():
                return self.create(name)
        except IntegrityError:
            created = self.get_by_name(name)
            if created is None:
                raise
            return created

    def rotate_jwt_secret(self, environment: Environment) -> bytes:
        """Replace the environment's HMAC secret with a fresh 256-bit one and return it."""
        secret = secrets.token_bytes(JWT_SECRET_BYTES)
        environment.jwt_secret_ct = seal(self.keyring, environment, "jwt_secret_ct", secret)
        self.session.flush()
        return secret

    def jwt_secret(self, environment: Environment) -> bytes:
        """Decrypt the environment's HMAC secret (for user tokens and HS256 host JWTs)."""
        return unseal(self.keyring, environment, "jwt_secret_ct")
