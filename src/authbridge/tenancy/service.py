"""Tenancy: environments, their master tokens, end users, user tokens, the keys host JWTs are
signed with, and the audit log.

The REST API (``/v1/end-users``, ``/v1/user-tokens``, ``/v1/master-tokens``, ``/v1/jwt-secret``,
``/v1/jwt-keys``, ``/v1/audit-events``), GraphQL's user mutations and queries, and the CLI
(``tokens``, ``users``, ``jwt``, ``serve``'s first start) all go through here. Functions take
the caller's session; the adapter owns the transaction.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.hostjwt import JwtKey, algorithm_named
from authbridge.services.bridge import Bridge
from authbridge.services.principals import DEFAULT_USER_TOKEN_TTL, Principal, mint_user_token
from authbridge.storage.models import AuditEvent, EndUser, Environment, JwtPublicKey, MasterToken
from authbridge.storage.repositories import Page
from authbridge.tenancy.repository import (
    DEFAULT_ENVIRONMENT,
    AuditRepository,
    EndUserRepository,
    EnvironmentRepository,
    IssuedMasterToken,
    JwtKeyRepository,
    MasterTokenRepository,
)
from authbridge.vault import Keyring

#: The name of the master token ``serve`` creates (and prints) on a database that has none.
FIRST_TOKEN_NAME = "first run"

# -- environments ------------------------------------------------------------------------------


def environment_named(session: Session, keyring: Keyring, name: str) -> Environment:
    """Environment ``name``; ``default`` is created on first use, any other must exist."""
    environments = EnvironmentRepository(session, keyring)
    if name == DEFAULT_ENVIRONMENT:
        return environments.get_or_create(name)
    environment = environments.get_by_name(name)
    if environment is None:
        raise errors.NotFound(f"there is no environment named '{name}'")
    return environment


def bootstrap(session: Session, keyring: Keyring) -> IssuedMasterToken | None:
    """Make sure the ``default`` environment exists and, on a database without any master
    token, create the first one (returned: its only plaintext copy, for ``serve`` to print)."""
    environment = EnvironmentRepository(session, keyring).get_or_create()
    tokens = MasterTokenRepository(session)
    if tokens.list(environment.id, include_revoked=True):
        return None
    return tokens.create(environment.id, FIRST_TOKEN_NAME)


# -- master tokens -----------------------------------------------------------------------------


def create_master_token(session: Session, environment_id: str, name: str) -> IssuedMasterToken:
    """A new master token named ``name`` (not blank); its plaintext is in the answer only."""
    if not name.strip():
        raise errors.InvalidInput("the token name must not be empty", field="name")
    return MasterTokenRepository(session).create(environment_id, name.strip())


def list_master_tokens(
    session: Session, environment_id: str, *, include_revoked: bool = False
) -> list[MasterToken]:
    """The environment's master tokens, oldest first."""
    return list(
        MasterTokenRepository(session).list(environment_id, include_revoked=include_revoked)
    )


def revoke_master_token(session: Session, environment_id: str, token_id: str) -> None:
    """Revoke a master token; :class:`errors.NotFound` for an unknown id and for a token
    revoked already. Once committed, clear the process's principal cache
    (``bridge.principals.clear()``) so that it stops trusting the token at once; the other
    processes do within the cache's bound."""
    tokens = MasterTokenRepository(session)
    if not tokens.revoke(environment_id, token_id):
        if tokens.get(environment_id, token_id) is None:
            raise errors.NotFound(f"there is no master token with id '{token_id}'")
        raise errors.NotFound(f"master token '{token_id}' is already revoked")


# -- end users ---------------------------------------------------------------------------------


def put_end_user(
    session: Session,
    environment_id: str,
    external_user_id: str,
    *,
    name: str | None,
    email: str | None,
) -> EndUser:
    """Create the end user, or set the name and email of the existing one."""
    users = EndUserRepository(session)
    end_user = users.get_or_create(environment_id, external_user_id)
    return users.update(end_user, name=name, email=email)


def add_end_user(
    session: Session,
    environment_id: str,
    external_user_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
) -> EndUser:
    """A new end user; :class:`errors.Conflict` when the external id is taken (also by a
    concurrent request)."""
    if not external_user_id.strip():
        raise errors.InvalidInput("the external id must not be empty", field="external_user_id")
    return EndUserRepository(session).create(
        environment_id, external_user_id, name=name, email=email
    )


def seen_end_user(session: Session, environment_id: str, external_user_id: str) -> EndUser:
    """The end user with this external id, created on first sight (without a name or email)."""
    return EndUserRepository(session).get_or_create(environment_id, external_user_id)


def end_user(session: Session, principal: Principal, external_user_id: str) -> EndUser:
    """The end user with this external id (a user token finds only its own)."""
    found = EndUserRepository(session).get_by_external_id(
        principal.environment_id, external_user_id
    )
    if found is None:
        raise errors.NotFound(f"end user '{external_user_id}' not found")
    principal.check_owner(found.id, what=f"end user '{external_user_id}'")
    return found


def end_user_by_id(session: Session, principal: Principal, user_id: str) -> EndUser:
    """The end user with authbridge's id ``user_id`` (a user token finds only its own)."""
    found = EndUserRepository(session).get(principal.environment_id, user_id)
    if found is None:
        raise errors.NotFound(f"user '{user_id}' not found")
    principal.check_owner(found.id, what=f"user '{user_id}'")
    return found


def external_ids(session: Session, end_user_ids: Iterable[str | None]) -> dict[str, str]:
    """The host's ids of these end users (for the views of authentications and instances)."""
    return EndUserRepository(session).external_ids(end_user_ids)


def find_end_user(session: Session, environment_id: str, external_user_id: str) -> EndUser | None:
    """The end user with this external id, or ``None``."""
    return EndUserRepository(session).get_by_external_id(environment_id, external_user_id)


def end_users_page(
    session: Session, environment_id: str, *, limit: int, cursor: str | None = None
) -> Page[EndUser]:
    """One page of the environment's end users, oldest first."""
    return EndUserRepository(session).list(environment_id, limit=limit, cursor=cursor)


def all_end_users(session: Session, environment_id: str) -> list[EndUser]:
    """Every end user of the environment, oldest first (read page by page)."""
    users: list[EndUser] = []
    cursor: str | None = None
    while True:
        page = end_users_page(session, environment_id, limit=200, cursor=cursor)
        users.extend(page.items)
        if page.next_cursor is None:
            return users
        cursor = page.next_cursor


# -- user tokens -------------------------------------------------------------------------------


def issue_user_token(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    end_user: EndUser,
    *,
    ttl: timedelta = DEFAULT_USER_TOKEN_TTL,
) -> tuple[str, datetime]:
    """A user token for ``end_user`` (it sees and changes only this end user's data) and when
    it expires; :class:`errors.InvalidInput` for a lifetime out of bounds."""
    environment = EnvironmentRepository(session, bridge.keyring).get(environment_id)
    if environment is None:
        raise errors.NotFound(f"environment '{environment_id}' not found")
    return mint_user_token(
        session, bridge.keyring, environment, end_user, now=bridge.now(), ttl=ttl
    )


# -- the keys of host JWTs ---------------------------------------------------------------------

#: How the HMAC secret is shown: its 32 random bytes, base64url-encoded; sign with the bytes.
JWT_SECRET_ENCODING = "base64url"
JWT_SECRET_READ = "environment.jwt_secret_read"
JWT_SECRET_ROTATED = "environment.jwt_secret_rotated"
JWT_KEY_ADDED = "jwt_key.added"
JWT_KEY_REMOVED = "jwt_key.removed"
#: The longest key text accepted (a 4096-bit RSA key is about 800 characters of PEM).
MAX_KEY_TEXT = 16 * 1024


def _environment(session: Session, keyring: Keyring, environment_id: str) -> Environment:
    environment = EnvironmentRepository(session, keyring).get(environment_id)
    if environment is None:
        raise errors.NotFound(f"environment '{environment_id}' not found")
    return environment


def _shown_secret(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode()


def _audit_jwt(
    session: Session,
    environment_id: str,
    actor: str,
    action: str,
    target: tuple[str, str],
    now: datetime,
    detail: dict[str, str] | None = None,
) -> None:
    AuditRepository(session).record(
        environment_id=environment_id,
        actor=actor,
        action=action,
        target_type=target[0],
        target_id=target[1],
        detail=detail,
        now=now,
    )


def jwt_secret(
    session: Session, keyring: Keyring, environment_id: str, *, actor: str, now: datetime
) -> str:
    """The environment's HMAC secret, which signs HS256 host JWTs and user tokens, as
    :data:`JWT_SECRET_ENCODING` text (the host decodes it and signs with the bytes). The read
    is audited; the secret itself is never logged."""
    environment = _environment(session, keyring, environment_id)
    secret = EnvironmentRepository(session, keyring).jwt_secret(environment)
    _audit_jwt(
        session, environment.id, actor, JWT_SECRET_READ, ("environment", environment.id), now
    )
    return _shown_secret(secret)


def rotate_jwt_secret(
    session: Session, keyring: Keyring, environment_id: str, *, actor: str, now: datetime
) -> str:
    """Replace the HMAC secret with a fresh one and return it (as :func:`jwt_secret`).

    Every JWT signed with the old secret is refused from then on, user tokens authbridge
    minted included; once committed, clear the process's principal cache
    (``bridge.principals.clear()``), the other processes stop trusting them within its bound.
    """
    environment = _environment(session, keyring, environment_id)
    secret = EnvironmentRepository(session, keyring).rotate_jwt_secret(environment)
    target = ("environment", environment.id)
    _audit_jwt(session, environment.id, actor, JWT_SECRET_ROTATED, target, now)
    return _shown_secret(secret)


def add_jwt_key(
    session: Session,
    environment_id: str,
    key: str,
    *,
    kid: str | None,
    algorithm: str | None,
    actor: str,
    now: datetime,
) -> JwtPublicKey:
    """Register a public key the host signs JWTs with: PEM text or a JWK (JSON text), for
    RS256 (RS384, RS512, PS256), ES256 (ES384) or EdDSA, the algorithm inferred from the key
    unless given. ``kid`` (else the JWK's) is required and must be new in the environment
    (:class:`errors.Conflict`); a private, malformed or too weak key is
    :class:`errors.InvalidInput`."""
    if len(key) > MAX_KEY_TEXT:
        raise errors.InvalidInput(
            f"the key is longer than {MAX_KEY_TEXT} characters; send one public key", field="key"
        )
    checked = JwtKey.registered(key, kid=kid, algorithm=algorithm_named(algorithm))
    assert checked.kid is not None
    assert isinstance(checked.key, str)
    record = JwtKeyRepository(session).add(
        environment_id, checked.kid, checked.algorithm, checked.key
    )
    detail: dict[str, str] = {"algorithm": checked.algorithm}
    _audit_jwt(session, environment_id, actor, JWT_KEY_ADDED, ("jwt_key", checked.kid), now, detail)
    return record


def list_jwt_keys(session: Session, environment_id: str) -> list[JwtPublicKey]:
    """The environment's registered public keys, oldest first."""
    return list(JwtKeyRepository(session).list(environment_id))


def remove_jwt_key(
    session: Session, environment_id: str, kid: str, *, actor: str, now: datetime
) -> None:
    """Remove a registered key (:class:`errors.NotFound` when there is none with ``kid``): JWTs
    it signed are refused from then on; clear the principal cache once committed."""
    if not JwtKeyRepository(session).delete(environment_id, kid):
        raise errors.NotFound(f"there is no key with id '{kid}'")
    _audit_jwt(session, environment_id, actor, JWT_KEY_REMOVED, ("jwt_key", kid), now)


# -- audit log ---------------------------------------------------------------------------------


def audit_page(
    session: Session,
    environment_id: str,
    *,
    target_id: str | None = None,
    action: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[AuditEvent]:
    """One page of the environment's audit events, oldest first."""
    return AuditRepository(session).list(
        environment_id, target_id=target_id, action=action, limit=limit, cursor=cursor
    )
