"""Public keys the host registers to sign its own JWTs (RS256, ES256, EdDSA)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authbridge.errors import Conflict
from authbridge.storage.models import JwtPublicKey, new_id, utcnow
from authbridge.storage.repositories._dml import affected_rows


class JwtKeyRepository:
    """Queries and changes of the ``jwt_keys`` table.

    Keys are stored as given: check them first with :meth:`authbridge.hostjwt.JwtKey.public`.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self, environment_id: str, kid: str, algorithm: str, public_key_pem: str
    ) -> JwtPublicKey:
        """Register a public key; :class:`Conflict` when ``kid`` is not new in the environment
        (also when a concurrent transaction has just added it)."""
        key = JwtPublicKey(
            id=new_id(),
            environment_id=environment_id,
            kid=kid,
            algorithm=algorithm,
            public_key_pem=public_key_pem,
            created_at=utcnow(),
        )
        try:
            with self.session.begin_nested():  # a duplicate undoes this insert only
                self.session.add(key)
        except IntegrityError:
            raise Conflict(
                f"a key with id '{kid}' is already registered; remove it first or choose another"
            ) from None
        return key

    def get(self, environment_id: str, kid: str) -> JwtPublicKey | None:
        statement = select(JwtPublicKey).where(
            JwtPublicKey.environment_id == environment_id, JwtPublicKey.kid == kid
        )
        return self.session.scalars(statement).first()

    def list(self, environment_id: str) -> Sequence[JwtPublicKey]:
        """Return the environment's keys, oldest first."""
        statement = (
            select(JwtPublicKey)
            .where(JwtPublicKey.environment_id == environment_id)
            .order_by(JwtPublicKey.created_at, JwtPublicKey.id)
        )
        return list(self.session.scalars(statement))

    def delete(self, environment_id: str, kid: str) -> bool:
        """Remove a key; return whether it existed."""
        statement = delete(JwtPublicKey).where(
            JwtPublicKey.environment_id == environment_id, JwtPublicKey.kid == kid
        )
        return affected_rows(self.session, statement) == 1
