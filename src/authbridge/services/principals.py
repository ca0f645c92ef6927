"""Who is calling: a master token of an environment, or a user token scoped to one end user.

A bearer token is either a master token (``abk_…``, stored as a hash) or a user token: a JWT
whose ``sub`` is the end user's external id, signed with the environment's HMAC secret
(minted by :func:`mint_user_token`, or by the host itself with the same secret) or with a
public key registered for the environment. The optional ``env`` claim names the environment
(``default`` when absent); a token naming an audience must name ``authbridge``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeGuard

import jwt
from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.hostjwt import JwtKey, algorithm_named, verify
from authbridge.mechanisms.jwt import AUTH_DATA_CLAIMS
from authbridge.storage.models import EndUser, Environment
from authbridge.tenancy.repository import (
    DEFAULT_ENVIRONMENT,
    EndUserRepository,
    EnvironmentRepository,
    JwtKeyRepository,
    MasterTokenRepository,
)
from authbridge.tenancy.repository.master_tokens import LAST_USED_RESOLUTION
from authbridge.vault import Keyring

AUDIENCE = "authbridge"
ENVIRONMENT_CLAIM = "env"
DEFAULT_USER_TOKEN_TTL = timedelta(minutes=15)
MAX_USER_TOKEN_TTL = timedelta(hours=24)
#: The clock skew granted to a user token by default (``AUTHBRIDGE_USER_TOKEN_LEEWAY_SECONDS``).
USER_TOKEN_LEEWAY = timedelta(seconds=5)
MAX_EXTERNAL_ID = 255
"""The longest external user id (the ``end_users.external_user_id`` column)."""
DEFAULT_CACHE_SECONDS = 2.0
"""How long a checked token is trusted without asking the database again: the bound within
which a revoked master token (or a removed environment key) stops working in every process."""
MAX_CACHE_SECONDS = 5.0
CACHED_PRINCIPALS = 10_000


def storable_text(value: object) -> TypeGuard[str]:
    """Whether ``value`` is text a database can hold: JSON allows NUL and lone surrogates."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def is_external_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be an end user's external id, as a JWT's ``sub`` names it."""
    return storable_text(value) and 0 < len(value) <= MAX_EXTERNAL_ID


@dataclass(frozen=True)
class Principal:
    """The caller of a request.

    ``end_user_id`` is set for a user token, which sees and changes only that end user's data;
    ``actor`` is what the audit log records (``master:<token id>`` or ``user:<end user id>``).
    """

    environment_id: str
    actor: str
    end_user_id: str | None = None
    external_user_id: str | None = None

    @property
    def is_master(self) -> bool:
        return self.end_user_id is None

    def require_master(self) -> None:
        if not self.is_master:
            raise errors.Forbidden("this needs a master token; a user token cannot do it")

    def check_owner(self, end_user_id: str | None, *, what: str) -> None:
        """Refuse a user token access to something another end user (or nobody) owns.

        The refusal reads like "not found" so a user token cannot probe other users' ids.
        """
        if self.end_user_id is not None and end_user_id != self.end_user_id:
            raise errors.NotFound(f"{what} not found")


def authenticate(
    session: Session,
    keyring: Keyring,
    token: str,
    *,
    now: datetime,
    leeway: timedelta = USER_TOKEN_LEEWAY,
) -> Principal:
    """Return the principal of bearer ``token``; raise :class:`Unauthenticated` otherwise.

    A user token's times are checked give or take ``leeway``.
    """
    token = token.strip()
    if not token:
        raise errors.Unauthenticated("send a token in the header 'Authorization: Bearer <token>'")
    if token.startswith("abk_"):
        tokens = MasterTokenRepository(session)
        record = tokens.verify(token)
        if record is None:
            raise errors.Unauthenticated("the master token is unknown or revoked")
        # The row was just read: skip the UPDATE when it would change nothing (every request
        # but one a minute), a statement saved on the hottest path.
        if record.last_used_at is None or record.last_used_at < now - LAST_USED_RESOLUTION:
            tokens.record_use(record, now)
        return Principal(environment_id=record.environment_id, actor=f"master:{record.id}")
    if token.count(".") == 2:
        return _user_principal(session, keyring, token, now=now, leeway=leeway)
    raise errors.Unauthenticated(
        "the bearer token is neither a master token nor a user token (JWT)"
    )


def _user_principal(
    session: Session, keyring: Keyring, token: str, *, now: datetime, leeway: timedelta
) -> Principal:
    claims = _unverified_claims(token)
    if any(claim in claims for claim in AUTH_DATA_CLAIMS):
        # A connect JWT hands credentials to POST /v1/authentications/jwt; a host may pass it
        # through a browser, so it must never double as an API token.
        raise errors.Unauthenticated(
            "a JWT carrying authData connects an account; it is not an API token"
        )
    name = claims.get(ENVIRONMENT_CLAIM, DEFAULT_ENVIRONMENT)
    environments = EnvironmentRepository(session, keyring)
    environment = environments.get_by_name(name) if storable_text(name) else None
    if environment is None:
        raise errors.Unauthenticated("the user token names an unknown environment")
    keys = environment_keys(session, keyring, environment)
    try:
        verified = verify(
            token,
            keys,
            now=now,
            leeway=leeway,
            audience=AUDIENCE if "aud" in claims else None,
            required=("exp", "sub"),
            max_lifetime=MAX_USER_TOKEN_TTL,
        )
    except errors.JwtError as error:
        raise errors.Unauthenticated(f"the user token was refused: {error.message}") from None
    subject = verified["sub"]
    if not is_external_id(subject):
        raise errors.Unauthenticated(
            "the user token's 'sub' must be the end user's external id "
            f"(1 to {MAX_EXTERNAL_ID} characters)"
        )
    end_user = EndUserRepository(session).get_or_create(environment.id, subject)
    return Principal(
        environment_id=environment.id,
        actor=f"user:{end_user.id}",
        end_user_id=end_user.id,
        external_user_id=end_user.external_user_id,
    )


def _unverified_claims(token: str) -> dict[str, Any]:
    """The payload, read only to choose the environment whose keys then verify the token."""
    payload = token.split(".")[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (ValueError, RecursionError):
        raise errors.Unauthenticated("the user token is not a well-formed JWT") from None
    if not isinstance(claims, dict):
        raise errors.Unauthenticated("the user token is not a well-formed JWT")
    return claims


def environment_keys(session: Session, keyring: Keyring, environment: Environment) -> list[JwtKey]:
    """The keys that verify JWTs the host signs for ``environment``: its secret and public keys."""
    secret = EnvironmentRepository(session, keyring).jwt_secret(environment)
    keys = [JwtKey.hmac(secret)]
    for record in JwtKeyRepository(session).list(environment.id):
        algorithm = algorithm_named(record.algorithm)  # as registered: RS384, PS256 …
        keys.append(JwtKey.public(record.public_key_pem, kid=record.kid, algorithm=algorithm))
    return keys


def mint_user_token(
    session: Session,
    keyring: Keyring,
    environment: Environment,
    end_user: EndUser,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_USER_TOKEN_TTL,
) -> tuple[str, datetime]:
    """Sign a user token for ``end_user``; return it and when it expires."""
    if not timedelta(seconds=1) <= ttl <= MAX_USER_TOKEN_TTL:
        raise errors.InvalidInput(
            f"a user token lives between 1 second and {int(MAX_USER_TOKEN_TTL.total_seconds())} "
            "seconds",
            field="ttl_seconds",
        )
    expires_at = now + ttl
    claims = {
        "sub": end_user.external_user_id,
        ENVIRONMENT_CLAIM: environment.name,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    secret = EnvironmentRepository(session, keyring).jwt_secret(environment)
    return jwt.encode(claims, secret, algorithm="HS256"), expires_at


class PrincipalCache:
    """Principals of recently checked bearer tokens, trusted for ``seconds`` (≤ 5).

    A credentials read would otherwise verify its token in the database (and a user token's
    signature) on every call. An entry is keyed by the SHA-256 of the token, never the token,
    and lives ``seconds`` at most, and never past a user token's ``exp``: a token revoked in
    another process stops working within ``seconds``; :meth:`clear` (on revocation in this
    process) at once. Failed checks are never cached. Shared by the event loop and worker
    threads, hence the lock.
    """

    def __init__(
        self,
        seconds: float = DEFAULT_CACHE_SECONDS,
        *,
        size: int = CACHED_PRINCIPALS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= seconds <= MAX_CACHE_SECONDS:
            raise ValueError(f"a token is cached between 0 and {MAX_CACHE_SECONDS} seconds")
        self.seconds = seconds
        self._size = size
        self._clock = clock
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        #: Checks under way on the event loop, by key, shared by concurrent requests.
        self.checks: dict[bytes, asyncio.Future[Principal]] = {}

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, token: str) -> Principal | None:
        key = self.key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            with self._lock:
                self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, token: str, principal: Principal, *, now: datetime) -> None:
        if self.seconds <= 0:
            return
        lifetime = self.seconds
        if not principal.is_master:
            # A user token is trusted no longer than it is valid.
            exp = _unverified_claims(token).get("exp")
            if isinstance(exp, int | float):
                lifetime = min(lifetime, exp - now.timestamp())
        if lifetime <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()  # rare: more distinct tokens in seconds than it holds
            self._entries[self.key(token)] = (self._clock() + lifetime, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
