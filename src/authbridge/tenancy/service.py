"""Tenancy: environments, their master tokens, end users, user tokens and the audit log.

The REST API (``/v1/end-users``, ``/v1/user-tokens``, ``/v1/master-tokens``,
``/v1/audit-events``), GraphQL's user mutations and queries, and the CLI (``tokens``, ``users``,
``serve``'s first start) all go through here. Functions take the caller's session; the adapter
owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.services.bridge import Bridge
from authbridge.services.principals import DEFAULT_USER_TOKEN_TTL, Principal, mint_user_token
from authbridge.storage.models import AuditEvent, EndUser, Environment, MasterToken
from authbridge.storage.repositories import Page
from authbridge.tenancy.repository import (
    DEFAULT_ENVIRONMENT,
    AuditRepository,
    EndUserRepository,
    EnvironmentRepository,
    IssuedMasterToken,
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
