"""OAuth states: single use, expiring, bound to the browser, secrets encrypted."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from authbridge.connect.repository import ConnectSessionRepository, OAuthStateRepository
from authbridge.storage import Database
from authbridge.storage.models import EndUser, Environment, utcnow
from authbridge.vault import Keyring


def _start(database: Database, keyring: Keyring, environment: Environment, end_user: EndUser):
    with database.session() as session:
        connect = ConnectSessionRepository(session).create(
            environment_id=environment.id,
            end_user_id=end_user.id,
            connector_key="github",
            connector_version="1",
        )
        return OAuthStateRepository(session, keyring).create(
            environment_id=environment.id,
            connect_session_id=connect.record.id,
            redirect_uri="https://auth.example.com/auth/github/callback",
            scopes=["repo"],
            secrets_={"code_verifier": "verifier-secret-value"},
        )


def test_a_state_is_claimed_once_by_the_browser_that_started_it(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    issued = _start(database, keyring, environment, end_user)
    now = utcnow()
    with database.session() as session:
        states = OAuthStateRepository(session, keyring)
        assert states.claim(issued.state, "another-browser", now=now) is None
        claimed = states.claim(issued.state, issued.binding, now=now)
        assert claimed is not None
        assert claimed.secrets == {"code_verifier": "verifier-secret-value"}
        assert claimed.record.scopes == ["repo"]
        assert states.claim(issued.state, issued.binding, now=now) is None


def test_an_expired_state_cannot_be_claimed(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    issued = _start(database, keyring, environment, end_user)
    later = utcnow() + timedelta(minutes=11)
    with database.session() as session:
        assert (
            OAuthStateRepository(session, keyring).claim(issued.state, issued.binding, now=later)
            is None
        )


def test_the_verifier_and_the_state_are_not_stored_in_plaintext(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    issued = _start(database, keyring, environment, end_user)
    with database.session() as session:
        row = session.execute(text("SELECT * FROM oauth_states")).one()
    stored = repr(tuple(row))
    assert "verifier-secret-value" not in stored
    assert issued.state not in stored
    assert issued.binding not in stored
