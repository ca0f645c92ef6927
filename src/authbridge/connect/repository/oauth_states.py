"""OAuth states: what the callback of a provider redirect needs, kept between two requests."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from authbridge.storage.crypto import seal_json, unseal_json
from authbridge.storage.models import OAuthState, new_id, utcnow
from authbridge.storage.repositories._dml import affected_rows, hash_secret
from authbridge.vault import Keyring

STATE_BYTES = 32
STATE_TTL = timedelta(minutes=10)
_SECRETS = "secrets_ct"


@dataclass(frozen=True)
class IssuedOAuthState:
    """A new state: ``state`` goes to the provider, ``binding`` into the browser's cookie."""

    record: OAuthState
    state: str = field(repr=False)
    binding: str = field(repr=False)


@dataclass(frozen=True)
class ClaimedOAuthState:
    record: OAuthState
    secrets: Mapping[str, Any] = field(repr=False)


class OAuthStateRepository:
    """Queries and changes of the ``oauth_states`` table."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring

    def create(
        self,
        *,
        environment_id: str,
        connect_session_id: str,
        redirect_uri: str,
        scopes: Sequence[str] = (),
        secrets_: Mapping[str, Any] | None = None,
        lookup: str | None = None,
        now: datetime | None = None,
        ttl: timedelta = STATE_TTL,
    ) -> IssuedOAuthState:
        """Store a pending redirect; ``lookup`` (an OAuth 1.0a request token) replaces the state.

        ``secrets_`` (PKCE verifier, request token secret) are encrypted.
        """
        now = now or utcnow()
        state = lookup or secrets.token_urlsafe(STATE_BYTES)
        binding = secrets.token_urlsafe(STATE_BYTES)
        record = OAuthState(
            id=new_id(),
            environment_id=environment_id,
            connect_session_id=connect_session_id,
            lookup_hash=hash_secret(state),
            binding_hash=hash_secret(binding),
            redirect_uri=redirect_uri,
            scopes=list(scopes),
            created_at=now,
            expires_at=now + ttl,
        )
        record.secrets_ct = seal_json(self.keyring, record, _SECRETS, dict(secrets_ or {}))
        self.session.add(record)
        self.session.flush()
        return IssuedOAuthState(record=record, state=state, binding=binding)

    def claim(self, state: str, binding: str, *, now: datetime) -> ClaimedOAuthState | None:
        """Use up the state, if it is unused, unexpired and was started by this browser.

        One conditional UPDATE decides, so of two callbacks with the same state exactly one
        wins; a callback from another browser (wrong ``binding``) changes nothing.
        """
        statement = (
            update(OAuthState)
            .where(
                OAuthState.lookup_hash == hash_secret(state),
                OAuthState.binding_hash == hash_secret(binding),
                OAuthState.used_at.is_(None),
                OAuthState.expires_at > now,
            )
            .values(used_at=now)
            .returning(OAuthState)
        )
        record = self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()
        if record is None:
            return None
        return ClaimedOAuthState(record=record, secrets=unseal_json(self.keyring, record, _SECRETS))

    def delete_expired(self, before: datetime) -> int:
        statement = delete(OAuthState).where(OAuthState.expires_at < before)
        return affected_rows(self.session, statement)
