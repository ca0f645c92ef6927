"""Verifying JWTs that the host signs (RFC 7519), for ``jwt`` auths and user tokens.

The host signs with an environment secret (HS256/384/512) or with a private key whose public
half it registered (RS*, PS256, ES256, ES384, EdDSA). Verification is strict:

* the token's ``alg`` must be one of :data:`ALGORITHMS` and equal the declared algorithm of the
  key that verifies it. Keys are chosen by ``kid`` when the token names one, else every key whose
  algorithm is ``alg``. ``none`` is refused, and a public key can never serve as an HMAC secret
  (the "key confusion" attack), because a key is only ever used with its own algorithm;
* keys are never taken from the token (``jwk``, ``jku``, ``x5u`` and ``x5c`` are ignored) and
  critical header extensions (``crit``) are refused;
* ``exp``, ``nbf`` and ``iat`` are checked against the ``now`` given by the caller (never the
  clock), with a leeway; ``iss`` and ``aud`` against the expected values.

Every failure raises :class:`authbridge.errors.JwtError` whose message names the check that
failed and never contains the token or key material. Signatures are checked by PyJWT's JWS
layer; claims are checked here so that the time source is explicit.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args, overload

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from jwt.api_jwk import PyJWK
from jwt.api_jws import PyJWS
from jwt.exceptions import DecodeError, InvalidSignatureError, PyJWTError

from authbridge import errors

__all__ = [
    "ALGORITHMS",
    "KID_PATTERN",
    "MAX_TOKEN_LENGTH",
    "Algorithm",
    "JwtKey",
    "algorithm_named",
    "verify",
]

Algorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"
]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
"""The allowlist: no other ``alg`` is ever accepted."""

MAX_TOKEN_LENGTH = 64 * 1024
"""Longer tokens are refused before any parsing."""

HMAC_MIN_SECRET_BYTES: Mapping[str, int] = {"HS256": 32, "HS384": 48, "HS512": 64}
"""RFC 7518 §3.2: an HMAC key must be at least as long as the hash output."""

RSA_MIN_KEY_BITS = 2048
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256"})
_EC_CURVES: Mapping[str, type[ec.EllipticCurve]] = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}
_ALGORITHM_BY_CURVE: Mapping[str, Algorithm] = {"secp256r1": "ES256", "secp384r1": "ES384"}

_PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
_MALFORMED = "the token is not a well-formed JWT"
_SHOWABLE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")
KID_PATTERN = re.compile(r"[A-Za-z0-9._:@+=-]{1,64}")
"""A registered key's id: what error messages can show, and a URL path segment."""
_JWK_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _is_hmac(algorithm: str) -> bool:
    return algorithm.startswith("HS")


@dataclass(frozen=True)
class JwtKey:
    """A key the host signs JWTs with: an HMAC secret or a PEM public key.

    ``algorithm`` is the only algorithm the key is ever used with. ``key`` is the secret as
    bytes for ``HS*``, or the PEM text of a public key for the others. Prefer the constructors
    :meth:`hmac` and :meth:`public`; the plain constructor validates the same way. The key
    material never appears in ``repr``. Invalid keys raise :class:`errors.InvalidInput`.
    """

    kid: str | None
    algorithm: Algorithm
    key: bytes | str = field(repr=False)
    _verifier: bytes | _PublicKey = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise errors.InvalidInput(
                f"algorithm {_shown(self.algorithm)} is not supported; use one of "
                + ", ".join(ALGORITHMS),
                field="algorithm",
            )
        if self.kid is not None and not self.kid:
            raise errors.InvalidInput("a key id must not be empty", field="kid")
        verifier: bytes | _PublicKey
        if _is_hmac(self.algorithm):
            verifier = _checked_secret(self.key, self.algorithm)
        else:
            verifier = _checked_public_key(self.key, self.algorithm)
        object.__setattr__(self, "_verifier", verifier)

    @classmethod
    def hmac(
        cls, secret: bytes | str, kid: str | None = None, algorithm: Algorithm = "HS256"
    ) -> JwtKey:
        """A shared secret for ``HS256`` (or ``HS384``/``HS512``); text is UTF-8 encoded.

        Refuses secrets shorter than the hash output (32 bytes for HS256, RFC 7518 §3.2) and
        values that look like a public key, certificate or JWK.
        """
        if not _is_hmac(algorithm):
            raise errors.InvalidInput(
                f"algorithm {_shown(algorithm)} is not an HMAC algorithm (HS256, HS384, HS512)",
                field="algorithm",
            )
        raw = secret.encode() if isinstance(secret, str) else secret
        return cls(kid=kid, algorithm=algorithm, key=raw)

    @classmethod
    def public(
        cls, pem: str | bytes, kid: str | None = None, algorithm: Algorithm | None = None
    ) -> JwtKey:
        """A PEM public key; ``algorithm`` is inferred from the key type unless given.

        RSA → ``RS256`` (or ``RS384``, ``RS512``, ``PS256`` when given), EC P-256 → ``ES256``,
        EC P-384 → ``ES384``, Ed25519/Ed448 → ``EdDSA``. Private keys, malformed PEM, RSA keys
        under 2048 bits and algorithms that do not fit the key are refused.
        """
        text = pem.decode() if isinstance(pem, bytes) else pem
        if algorithm is None:
            algorithm = _infer_algorithm(_load_public_key(text))
        elif _is_hmac(algorithm):
            raise errors.InvalidInput(
                f"algorithm {algorithm} needs a shared secret, not a public key",
                field="algorithm",
            )
        return cls(kid=kid, algorithm=algorithm, key=text)

    @classmethod
    def from_jwk(
        cls, jwk: Mapping[str, Any], kid: str | None = None, algorithm: Algorithm | None = None
    ) -> JwtKey:
        """A public key given as a JWK (RFC 7517), kept as PEM; ``kid`` and ``algorithm``
        default to the JWK's ``kid`` and ``alg`` and must agree with them when both are given.

        Private and symmetric JWKs, and keys whose ``use`` is not ``sig``, are refused.
        """
        if not all(isinstance(name, str) for name in jwk):
            raise errors.InvalidInput("the JWK must be a JSON object", field="key")
        if jwk.get("kty") == "oct":
            raise errors.InvalidInput(
                "a symmetric JWK is not a public key; HS256 tokens are signed with the "
                "environment's secret",
                field="key",
            )
        if _JWK_PRIVATE_MEMBERS & set(jwk):
            raise errors.InvalidInput(
                "this JWK holds a private key; register only the public key (keep the private "
                "key with the host)",
                field="key",
            )
        if jwk.get("use", "sig") != "sig":
            raise errors.InvalidInput("the JWK's 'use' must be 'sig'", field="key")
        kid = _agreed("kid", kid, jwk.get("kid"))
        declared = algorithm_named(_agreed("algorithm", algorithm, jwk.get("alg")))
        try:
            public_key = PyJWK(dict(jwk)).key
        except (PyJWTError, ValueError, TypeError):
            raise errors.InvalidInput("the key is not a valid public JWK", field="key") from None
        pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        return cls.public(pem, kid=kid, algorithm=declared)

    @classmethod
    def registered(
        cls, text: str, kid: str | None = None, algorithm: Algorithm | None = None
    ) -> JwtKey:
        """A public key the host registers: PEM text, or a JWK as JSON text; with a ``kid``
        (given, or the JWK's) that :data:`KID_PATTERN` allows."""
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                jwk = json.loads(stripped, parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                raise errors.InvalidInput(
                    "the key is JSON but not a valid JWK", field="key"
                ) from None
            if not isinstance(jwk, dict):
                raise errors.InvalidInput("the JWK must be a JSON object", field="key")
            key = cls.from_jwk(jwk, kid=kid, algorithm=algorithm)
        else:
            key = cls.public(stripped + "\n", kid=kid, algorithm=algorithm)
        if key.kid is None:
            raise errors.InvalidInput(
                "give the key an id (kid): the host names it in the JWT header", field="kid"
            )
        if not KID_PATTERN.fullmatch(key.kid):
            raise errors.InvalidInput(
                "a key id is 1 to 64 letters, digits or . _ : @ + = -", field="kid"
            )
        return key


def _agreed(name: str, given: str | None, declared: object) -> str | None:
    """``given``, else the JWK's own value; the two must not disagree."""
    if declared is not None and not isinstance(declared, str):
        raise errors.InvalidInput(f"the JWK's {name} must be a string", field="key")
    if given is not None and declared is not None and given != declared:
        raise errors.InvalidInput(
            f"the {name} given ({_shown(given)}) differs from the JWK's ({_shown(declared)})",
            field=name,
        )
    return given if given is not None else declared


@overload
def algorithm_named(value: str) -> Algorithm: ...
@overload
def algorithm_named(value: None) -> None: ...
def algorithm_named(value: str | None) -> Algorithm | None:
    """``value`` as an :data:`Algorithm`; :class:`errors.InvalidInput` when it is none of
    :data:`ALGORITHMS`."""
    if value is None:
        return None
    for algorithm in ALGORITHMS:
        if algorithm == value:
            return algorithm
    raise errors.InvalidInput(
        f"algorithm {_shown(value)} is not supported; use one of " + ", ".join(ALGORITHMS),
        field="algorithm",
    )


def _checked_secret(key: bytes | str, algorithm: str) -> bytes:
    if not isinstance(key, bytes):
        raise errors.InvalidInput(f"an {algorithm} secret must be bytes", field="key")
    minimum = HMAC_MIN_SECRET_BYTES[algorithm]
    if len(key) < minimum:
        raise errors.InvalidInput(
            f"an {algorithm} secret must be at least {minimum} bytes long (RFC 7518 §3.2); "
            f"this one has {len(key)}",
            field="key",
        )
    try:  # PyJWT refuses secrets that are public keys, certificates or JWKs
        PyJWS().get_algorithm_by_name(algorithm).prepare_key(key)
    except PyJWTError:
        raise errors.InvalidInput(
            "the secret looks like a public key, certificate or JWK; register a public key "
            "with its own algorithm instead",
            field="key",
        ) from None
    return key


def _load_public_key(pem: str) -> PublicKeyTypes:
    if "PRIVATE KEY-----" in pem:
        raise errors.InvalidInput(
            "this is a private key; register only the public key (keep the private key with "
            "the host)",
            field="key",
        )
    try:
        return load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnicodeError):
        raise errors.InvalidInput(
            "the key is not a PEM public key ('-----BEGIN PUBLIC KEY-----')", field="key"
        ) from None
    except UnsupportedAlgorithm:
        raise errors.InvalidInput("the public key's type is not supported", field="key") from None


def _infer_algorithm(public_key: PublicKeyTypes) -> Algorithm:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        inferred = _ALGORITHM_BY_CURVE.get(public_key.curve.name)
        if inferred is None:
            raise errors.InvalidInput(
                f"EC curve {public_key.curve.name} is not supported; use P-256 or P-384",
                field="key",
            )
        return inferred
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA"
    raise errors.InvalidInput("the public key's type is not supported", field="key")


def _checked_public_key(key: bytes | str, algorithm: str) -> _PublicKey:
    if not isinstance(key, str):
        raise errors.InvalidInput(f"an {algorithm} key must be PEM text", field="key")
    public_key = _load_public_key(key)
    if algorithm in _RSA_ALGORITHMS:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise errors.InvalidInput(f"an {algorithm} key must be an RSA key", field="key")
        if public_key.key_size < RSA_MIN_KEY_BITS:
            raise errors.InvalidInput(
                f"an RSA key must have at least {RSA_MIN_KEY_BITS} bits; this one has "
                f"{public_key.key_size}",
                field="key",
            )
        return public_key
    if algorithm in _EC_CURVES:
        curve = _EC_CURVES[algorithm]
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, curve
        ):
            raise errors.InvalidInput(
                f"an {algorithm} key must be an EC key on curve {curve.name}", field="key"
            )
        return public_key
    if not isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise errors.InvalidInput("an EdDSA key must be an Ed25519 or Ed448 key", field="key")
    return public_key


def verify(
    token: str,
    keys: Sequence[JwtKey],
    *,
    now: datetime,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: timedelta = timedelta(seconds=30),
    required: Sequence[str] = ("exp",),
    max_lifetime: timedelta | None = None,
) -> dict[str, Any]:
    """Verify ``token`` with one of ``keys`` and return its claims.

    ``now`` is the current time (a naive datetime is taken as UTC). ``exp`` must be after
    ``now``, ``nbf`` and ``iat`` not after it, each give or take ``leeway``. With ``issuer``
    the ``iss`` claim must equal it; with ``audience`` the ``aud`` claim (a string or a list)
    must contain it, and without ``audience`` a token that names one is refused (RFC 7519
    §4.1.3). Every claim in ``required`` must be present. With ``max_lifetime``, ``exp`` minus
    ``iat`` (or minus ``now`` when there is no ``iat``) must not exceed it.

    Raises :class:`errors.JwtError` naming the failed check.
    """
    if not isinstance(token, str):
        raise errors.JwtError(_MALFORMED)
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise errors.JwtError(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
    header = _unverified_header(token)
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or not algorithm:
        raise errors.JwtError("the token's header names no algorithm")
    if algorithm.lower() == "none":
        raise errors.JwtError("algorithm 'none' is not allowed")
    if algorithm not in ALGORITHMS:
        raise errors.JwtError(f"algorithm {_shown(algorithm)} is not allowed")
    if "crit" in header:
        raise errors.JwtError("the token's header has critical extensions, which are not supported")
    candidates = _candidate_keys(header.get("kid"), algorithm, keys)
    claims = _parse_claims(_verified_payload(token, algorithm, candidates))
    _check_claims(
        claims,
        now=now,
        audience=audience,
        issuer=issuer,
        leeway=leeway,
        required=required,
        max_lifetime=max_lifetime,
    )
    return claims


def _shown(value: object) -> str:
    """A header value fit for an error message: quoted when short and plain, else elided."""
    if isinstance(value, str) and _SHOWABLE.fullmatch(value):
        return f"'{value}'"
    return "(unprintable)"


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read before anything is trusted to choose the algorithm and key."""
    segments = token.split(".")
    if len(segments) != 3:
        raise errors.JwtError(_MALFORMED)
    encoded = segments[0]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
        header = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # binascii.Error and UnicodeError are ValueErrors
        raise errors.JwtError(_MALFORMED) from None
    if not isinstance(header, dict) or not isinstance(header.get("kid", ""), str):
        raise errors.JwtError(_MALFORMED)
    return header


def _candidate_keys(kid: object, algorithm: str, keys: Sequence[JwtKey]) -> list[JwtKey]:
    if kid is not None:
        named = [key for key in keys if key.kid == kid]
        if not named:
            raise errors.JwtError(f"no key for kid {_shown(kid)}")
        matching = [key for key in named if key.algorithm == algorithm]
        if not matching:
            raise errors.JwtError(f"algorithm '{algorithm}' is not allowed for key {_shown(kid)}")
        return matching
    matching = [key for key in keys if key.algorithm == algorithm]
    if not matching:
        raise errors.JwtError(f"algorithm '{algorithm}' is not allowed: no registered key uses it")
    return matching


def _verified_payload(token: str, algorithm: str, candidates: Sequence[JwtKey]) -> bytes:
    verifier = PyJWS(algorithms=[algorithm], options={"enforce_minimum_key_length": True})
    for key in candidates:
        try:
            decoded = verifier.decode_complete(token, key=key._verifier, algorithms=[algorithm])
        except InvalidSignatureError:
            continue
        except DecodeError:
            raise errors.JwtError(_MALFORMED) from None
        except PyJWTError:
            raise errors.JwtError("the token's signature is invalid") from None
        payload: bytes = decoded["payload"]
        return payload
    raise errors.JwtError("the token's signature is invalid")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise errors.JwtError(_MALFORMED) from None
    if not isinstance(claims, dict):
        raise errors.JwtError(_MALFORMED)
    return claims


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2) as seconds, or None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise errors.JwtError(f"the '{name}' claim must be a number of seconds")
    return float(value)


def _check_claims(
    claims: Mapping[str, Any],
    *,
    now: datetime,
    audience: str | None,
    issuer: str | None,
    leeway: timedelta,
    required: Sequence[str],
    max_lifetime: timedelta | None,
) -> None:
    for name in required:
        if name not in claims:
            raise errors.JwtError(f"the token has no '{name}' claim")
    current = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()
    skew = leeway.total_seconds()
    if skew < 0:
        raise ValueError("the leeway must not be negative")
    expires = _numeric_date(claims, "exp")
    not_before = _numeric_date(claims, "nbf")
    issued = _numeric_date(claims, "iat")
    if expires is not None and current >= expires + skew:
        raise errors.JwtError("the token has expired")
    if not_before is not None and current + skew < not_before:
        raise errors.JwtError("the token is not valid yet")
    if issued is not None and issued > current + skew:
        raise errors.JwtError("the token was issued in the future")
    if max_lifetime is not None:
        if expires is None:
            raise errors.JwtError("the token has no 'exp' claim")
        start = issued if issued is not None else current
        if expires - start > max_lifetime.total_seconds():
            raise errors.JwtError(
                f"the token's lifetime exceeds {int(max_lifetime.total_seconds())} seconds"
            )
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise errors.JwtError(f"the '{name}' claim must be a string")
    if issuer is not None:
        if "iss" not in claims:
            raise errors.JwtError("the token has no 'iss' claim")
        if claims["iss"] != issuer:
            raise errors.JwtError("issuer mismatch")
    _check_audience(claims.get("aud"), audience)


def _check_audience(token_audience: Any, expected: str | None) -> None:
    if token_audience is None:
        if expected is not None:
            raise errors.JwtError("the token has no 'aud' claim")
        return
    if isinstance(token_audience, str):
        audiences = [token_audience]
    elif isinstance(token_audience, list) and all(isinstance(a, str) for a in token_audience):
        audiences = token_audience
    else:
        raise errors.JwtError("the 'aud' claim must be a string or a list of strings")
    if expected is None:
        raise errors.JwtError("audience mismatch: the token names an audience, none is expected")
    if expected not in audiences:
        raise errors.JwtError("audience mismatch")
