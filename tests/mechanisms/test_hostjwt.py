"""Verification of host-signed JWTs: algorithms, keys, claims and safe error messages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from authbridge import errors
from authbridge.hostjwt import JwtKey, verify

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SECRET = b"host-secret-0123456789-abcdefghijklmnop"
OTHER_SECRET = b"another-secret-0123456789-abcdefghijklmn"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hs_token(
    claims: dict[str, Any],
    secret: bytes = SECRET,
    *,
    alg: str = "HS256",
    header: dict[str, Any] | None = None,
) -> str:
    """An HMAC-signed token, built by hand so any secret (even a PEM) can be used."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT', **(header or {})})}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-42", "iat": NOW_TS - 5, "exp": NOW_TS + 300, **extra}


def public_pem(private_key: Any) -> str:
    pem: bytes = private_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def refusal(token: str, keys: list[JwtKey], **options: Any) -> str:
    with pytest.raises(errors.JwtError) as caught:
        verify(token, keys, now=options.pop("now", NOW), **options)
    return caught.value.message


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


HS_KEY = JwtKey.hmac(SECRET)


# --- good tokens -----------------------------------------------------------------------------


def test_hs256_token_returns_its_claims() -> None:
    token = hs_token(claims(authData={"api_key": "k"}))
    assert verify(token, [HS_KEY], now=NOW) == claims(authData={"api_key": "k"})


def test_pyjwt_encoded_hs256_token_verifies() -> None:
    token = pyjwt.encode(claims(), SECRET, algorithm="HS256")
    assert verify(token, [HS_KEY], now=NOW)["sub"] == "user-42"


@pytest.mark.parametrize(
    ("fixture", "algorithm"),
    [("rsa_key", "RS256"), ("ec_key", "ES256"), ("ed_key", "EdDSA")],
)
def test_public_key_tokens_verify_with_inferred_algorithm(
    request: pytest.FixtureRequest, fixture: str, algorithm: str
) -> None:
    private_key = request.getfixturevalue(fixture)
    key = JwtKey.public(public_pem(private_key), kid="k1")
    assert key.algorithm == algorithm
    token = pyjwt.encode(claims(), private_key, algorithm=algorithm, headers={"kid": "k1"})
    assert verify(token, [key], now=NOW)["sub"] == "user-42"


def test_rsa_key_can_be_registered_for_ps256(rsa_key: rsa.RSAPrivateKey) -> None:
    key = JwtKey.public(public_pem(rsa_key), algorithm="PS256")
    ps_token = pyjwt.encode(claims(), rsa_key, algorithm="PS256")
    assert verify(ps_token, [key], now=NOW)["sub"] == "user-42"
    rs_token = pyjwt.encode(claims(), rsa_key, algorithm="RS256")
    assert refusal(rs_token, [key]) == "algorithm 'RS256' is not allowed: no registered key uses it"


def test_es384_is_inferred_from_a_p384_key() -> None:
    private_key = ec.generate_private_key(ec.SECP384R1())
    key = JwtKey.public(public_pem(private_key))
    assert key.algorithm == "ES384"
    token = pyjwt.encode(claims(), private_key, algorithm="ES384")
    assert verify(token, [key], now=NOW)["sub"] == "user-42"


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone 10 hours off UTC, so a naive ``now`` read as local time would show."""
    monkeypatch.setenv("TZ", "Pacific/Honolulu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_naive_now_is_taken_as_utc() -> None:
    token = hs_token(claims())
    assert verify(token, [HS_KEY], now=NOW.replace(tzinfo=None))["sub"] == "user-42"
    late = (NOW + timedelta(hours=1)).replace(tzinfo=None)
    assert refusal(token, [HS_KEY], now=late) == "the token has expired"


# --- time claims -----------------------------------------------------------------------------


def test_expired_token_is_refused() -> None:
    token = hs_token(claims(exp=NOW_TS - 31))
    assert refusal(token, [HS_KEY]) == "the token has expired"


def test_expiry_within_the_leeway_is_accepted() -> None:
    token = hs_token(claims(exp=NOW_TS - 29))
    assert verify(token, [HS_KEY], now=NOW)["exp"] == NOW_TS - 29
    assert refusal(token, [HS_KEY], leeway=timedelta(0)) == "the token has expired"


def test_token_not_yet_valid_is_refused() -> None:
    token = hs_token(claims(nbf=NOW_TS + 31))
    assert refusal(token, [HS_KEY]) == "the token is not valid yet"
    assert verify(hs_token(claims(nbf=NOW_TS + 29)), [HS_KEY], now=NOW)


def test_token_issued_in_the_future_is_refused() -> None:
    token = hs_token(claims(iat=NOW_TS + 31))
    assert refusal(token, [HS_KEY]) == "the token was issued in the future"
    assert verify(hs_token(claims(iat=NOW_TS + 29)), [HS_KEY], now=NOW)


def test_the_given_now_is_used_not_the_clock() -> None:
    token = hs_token({"exp": 946_684_800})  # 2000-01-01: long past on the real clock
    assert verify(token, [HS_KEY], now=datetime(1999, 12, 31, tzinfo=UTC)) == {"exp": 946_684_800}


@pytest.mark.parametrize("value", ["tomorrow", True, None, [1]])
def test_non_numeric_time_claims_are_refused(value: Any) -> None:
    token = hs_token(claims(nbf=value))
    if value is None:  # a null claim counts as absent
        assert verify(token, [HS_KEY], now=NOW)["nbf"] is None
    else:
        assert refusal(token, [HS_KEY]) == "the 'nbf' claim must be a number of seconds"


def test_exp_is_required_by_default() -> None:
    token = hs_token({"sub": "user-42"})
    assert refusal(token, [HS_KEY]) == "the token has no 'exp' claim"
    assert verify(token, [HS_KEY], now=NOW, required=()) == {"sub": "user-42"}
    assert refusal(token, [HS_KEY], required=("sub", "jti")) == "the token has no 'jti' claim"


def test_max_lifetime_bounds_exp_minus_iat() -> None:
    token = hs_token(claims(iat=NOW_TS - 10, exp=NOW_TS + 600))
    assert verify(token, [HS_KEY], now=NOW, max_lifetime=timedelta(minutes=11))
    message = refusal(token, [HS_KEY], max_lifetime=timedelta(minutes=10))
    assert message == "the token's lifetime exceeds 600 seconds"


def test_max_lifetime_without_iat_counts_from_now() -> None:
    token = hs_token({"exp": NOW_TS + 601})
    message = refusal(token, [HS_KEY], max_lifetime=timedelta(minutes=10))
    assert message == "the token's lifetime exceeds 600 seconds"
    assert verify(token, [HS_KEY], now=NOW + timedelta(seconds=2), max_lifetime=timedelta(600))


# --- issuer and audience ---------------------------------------------------------------------


def test_wrong_issuer_is_refused() -> None:
    token = hs_token(claims(iss="https://other.example"))
    assert refusal(token, [HS_KEY], issuer="https://host.example") == "issuer mismatch"
    assert verify(
        hs_token(claims(iss="https://host.example")),
        [HS_KEY],
        now=NOW,
        issuer="https://host.example",
    )
    missing = refusal(hs_token(claims()), [HS_KEY], issuer="https://host.example")
    assert missing == "the token has no 'iss' claim"


def test_wrong_audience_is_refused() -> None:
    token = hs_token(claims(aud="someone-else"))
    assert refusal(token, [HS_KEY], audience="authbridge") == "audience mismatch"


def test_audience_may_be_one_of_a_list() -> None:
    token = hs_token(claims(aud=["someone-else", "authbridge"]))
    assert verify(token, [HS_KEY], now=NOW, audience="authbridge")
    assert refusal(token, [HS_KEY], audience="third") == "audience mismatch"


def test_missing_audience_is_refused_when_one_is_expected() -> None:
    assert refusal(hs_token(claims()), [HS_KEY], audience="authbridge") == (
        "the token has no 'aud' claim"
    )


def test_token_naming_an_audience_is_refused_when_none_is_expected() -> None:
    message = refusal(hs_token(claims(aud="authbridge")), [HS_KEY])
    assert message.startswith("audience mismatch")


# --- signatures and algorithms ---------------------------------------------------------------


def test_bad_signature_is_refused() -> None:
    token = hs_token(claims(), OTHER_SECRET)
    assert refusal(token, [HS_KEY]) == "the token's signature is invalid"


def test_tampered_payload_is_refused() -> None:
    header, _, signature = hs_token(claims()).split(".")
    tampered = f"{header}.{segment(claims(sub='admin'))}.{signature}"
    assert refusal(tampered, [HS_KEY]) == "the token's signature is invalid"


def test_tampered_public_key_token_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    header, _, signature = pyjwt.encode(claims(), ec_key, algorithm="ES256").split(".")
    tampered = f"{header}.{segment(claims(sub='admin'))}.{signature}"
    key = JwtKey.public(public_pem(ec_key))
    assert refusal(tampered, [key]) == "the token's signature is invalid"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str) -> None:
    token = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims())}."
    assert refusal(token, [HS_KEY]) == "algorithm 'none' is not allowed"


def test_algorithm_without_a_key_is_refused() -> None:
    token = hs_token(claims(), b"x" * 64, alg="HS512")
    assert refusal(token, [HS_KEY]) == "algorithm 'HS512' is not allowed: no registered key uses it"


@pytest.mark.parametrize("alg", ["ES256K", "HS1", "RS1"])
def test_algorithm_outside_the_allowlist_is_refused(alg: str) -> None:
    token = f"{segment({'alg': alg})}.{segment(claims())}.{b64url(b'sig')}"
    assert refusal(token, [HS_KEY]) == f"algorithm '{alg}' is not allowed"


def test_key_confusion_hs256_with_rsa_public_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    forged = hs_token(claims(), pem.encode())
    key = JwtKey.public(pem)
    assert refusal(forged, [key]) == "algorithm 'HS256' is not allowed: no registered key uses it"
    forged_with_kid = hs_token(claims(), pem.encode(), header={"kid": "rsa"})
    named = JwtKey.public(pem, kid="rsa")
    assert refusal(forged_with_kid, [named]) == "algorithm 'HS256' is not allowed for key 'rsa'"


def test_a_public_key_cannot_be_registered_as_hmac_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(errors.InvalidInput, match="looks like a public key"):
        JwtKey.hmac(public_pem(rsa_key))


def test_a_key_embedded_in_the_token_is_ignored(rsa_key: rsa.RSAPrivateKey) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    embedded = pyjwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    token = pyjwt.encode(claims(), attacker, algorithm="RS256", headers={"jwk": embedded})
    key = JwtKey.public(public_pem(rsa_key))
    assert refusal(token, [key]) == "the token's signature is invalid"


@pytest.mark.parametrize(
    "header", [{"crit": ["exp"], "exp": 1}, {"crit": ["b64"], "b64": False}, {"crit": []}]
)
def test_critical_header_extensions_are_refused(header: dict[str, Any]) -> None:
    token = hs_token(claims(), header=header)
    assert refusal(token, [HS_KEY]) == (
        "the token's header has critical extensions, which are not supported"
    )


def test_non_string_kid_is_malformed() -> None:
    token = hs_token(claims(), header={"kid": 7})
    assert refusal(token, [HS_KEY]) == "the token is not a well-formed JWT"


# --- key selection ---------------------------------------------------------------------------


def test_unknown_kid_is_refused() -> None:
    token = hs_token(claims(), header={"kid": "other"})
    assert refusal(token, [JwtKey.hmac(SECRET, kid="main")]) == "no key for kid 'other'"


def test_kid_selects_the_key() -> None:
    keys = [JwtKey.hmac(SECRET, kid="old"), JwtKey.hmac(OTHER_SECRET, kid="new")]
    token = hs_token(claims(), OTHER_SECRET, header={"kid": "new"})
    assert verify(token, keys, now=NOW)["sub"] == "user-42"
    wrong = hs_token(claims(), OTHER_SECRET, header={"kid": "old"})
    assert refusal(wrong, keys) == "the token's signature is invalid"


def test_without_kid_every_key_of_the_algorithm_is_tried() -> None:
    keys = [JwtKey.hmac(SECRET), JwtKey.hmac(OTHER_SECRET)]
    assert verify(hs_token(claims(), OTHER_SECRET), keys, now=NOW)["sub"] == "user-42"
    third = hs_token(claims(), b"third-secret-0123456789-abcdefghijklmno")
    assert refusal(third, keys) == "the token's signature is invalid"


def test_unprintable_kid_is_not_echoed() -> None:
    token = hs_token(claims(), header={"kid": "<script>" * 3})
    assert refusal(token, [HS_KEY]) == "no key for kid (unprintable)"


# --- malformed tokens ------------------------------------------------------------------------


def _signed_raw_payload(payload: bytes) -> str:
    signing_input = f"{segment({'alg': 'HS256'})}.{b64url(payload)}"
    signature = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "not.a.jwt",
        f"{b64url(b'[1]')}.{segment(claims())}.",
        f"{b64url(b'{{')}.{segment(claims())}.",
        f"{segment({'alg': 'HS256'})}!.{segment(claims())}.{b64url(b'sig')}",
        f"{segment({'alg': 'HS256'})}.{segment(claims())}.{b64url(b'sig')}.extra",
        _signed_raw_payload(b"not json"),
        _signed_raw_payload(b"[1, 2]"),
        _signed_raw_payload(b'{"exp": Infinity}'),
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert refusal(token, [HS_KEY]) == "the token is not a well-formed JWT"


def test_non_string_token_is_refused() -> None:
    assert refusal(b"a.b.c", [HS_KEY]) == "the token is not a well-formed JWT"  # type: ignore[arg-type]


def test_oversized_token_is_refused() -> None:
    token = hs_token(claims(padding="x" * 70_000))
    assert refusal(token, [HS_KEY]) == "the token is longer than 65536 characters"


def test_header_without_alg_is_refused() -> None:
    token = f"{segment({'typ': 'JWT'})}.{segment(claims())}.{b64url(b'sig')}"
    assert refusal(token, [HS_KEY]) == "the token's header names no algorithm"


def test_non_string_sub_is_refused() -> None:
    assert refusal(hs_token(claims(sub=42)), [HS_KEY]) == "the 'sub' claim must be a string"


# --- messages never leak ---------------------------------------------------------------------

FAILING_TOKENS: list[Callable[[], str]] = [
    lambda: hs_token(claims(exp=NOW_TS - 100)),
    lambda: hs_token(claims(nbf=NOW_TS + 100)),
    lambda: hs_token(claims(iat=NOW_TS + 100)),
    lambda: hs_token(claims(aud="x")),
    lambda: hs_token(claims(), OTHER_SECRET),
    lambda: hs_token(claims(), header={"kid": "nope"}),
    lambda: hs_token(claims(), SECRET, alg="HS384"),
    lambda: f"{segment({'alg': 'none'})}.{segment(claims())}.",
    lambda: hs_token(claims())[:-3],
    lambda: "garbage-token-value",
]


@pytest.mark.parametrize("make_token", FAILING_TOKENS)
def test_messages_never_contain_the_token_or_the_secret(make_token: Callable[[], str]) -> None:
    token = make_token()
    message = refusal(token, [HS_KEY], issuer="host")
    assert token not in message
    assert all(part not in message for part in token.split(".") if len(part) > 8)
    assert SECRET.decode() not in message
    assert "host-secret" not in message
    assert str(errors.JwtError(message)) == message


# --- keys ------------------------------------------------------------------------------------


def test_key_repr_never_shows_key_material(rsa_key: rsa.RSAPrivateKey) -> None:
    assert repr(HS_KEY) == "JwtKey(kid=None, algorithm='HS256')"
    assert "host-secret" not in repr(HS_KEY)
    public = JwtKey.public(public_pem(rsa_key), kid="k")
    assert repr(public) == "JwtKey(kid='k', algorithm='RS256')"


def test_short_hmac_secret_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="at least 32 bytes") as caught:
        JwtKey.hmac(b"s" * 31)
    assert caught.value.field == "key"
    assert JwtKey.hmac("s" * 32).key == b"s" * 32


def test_hmac_secret_length_follows_the_hash() -> None:
    with pytest.raises(errors.InvalidInput, match="at least 64 bytes"):
        JwtKey.hmac(b"s" * 63, algorithm="HS512")
    assert JwtKey.hmac(b"s" * 64, algorithm="HS512").algorithm == "HS512"


def test_hmac_constructor_refuses_other_algorithms() -> None:
    with pytest.raises(errors.InvalidInput, match="not an HMAC algorithm"):
        JwtKey.hmac(SECRET, algorithm="RS256")


def test_private_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    private_pem = rsa_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    with pytest.raises(errors.InvalidInput, match="this is a private key") as caught:
        JwtKey.public(private_pem)
    assert "MII" not in caught.value.message


@pytest.mark.parametrize(
    "pem",
    ["not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", ""],
)
def test_malformed_pem_is_refused(pem: str) -> None:
    with pytest.raises(errors.InvalidInput, match="not a PEM public key"):
        JwtKey.public(pem)


def test_weak_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(errors.InvalidInput, match="at least 2048 bits"):
        JwtKey.public(public_pem(weak))


def test_unsupported_curve_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="curve secp521r1 is not supported"):
        JwtKey.public(public_pem(ec.generate_private_key(ec.SECP521R1())))


def test_algorithm_must_fit_the_key(
    ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(errors.InvalidInput, match="must be an RSA key"):
        JwtKey.public(public_pem(ec_key), algorithm="RS256")
    with pytest.raises(errors.InvalidInput, match="must be an EC key on curve secp384r1"):
        JwtKey.public(public_pem(ec_key), algorithm="ES384")
    with pytest.raises(errors.InvalidInput, match="must be an Ed25519 or Ed448 key"):
        JwtKey.public(public_pem(rsa_key), algorithm="EdDSA")
    with pytest.raises(errors.InvalidInput, match="needs a shared secret"):
        JwtKey.public(public_pem(rsa_key), algorithm="HS256")


def test_plain_constructor_validates_too() -> None:
    with pytest.raises(errors.InvalidInput, match="not supported"):
        JwtKey(kid=None, algorithm="none", key=SECRET)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInput, match="must be bytes"):
        JwtKey(kid=None, algorithm="HS256", key=SECRET.decode())


# -- registering public keys: PEM or JWK ------------------------------------------------------


def _alg_of(private_key: Any) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return "ES256"
    return "EdDSA"


def jwk_of(private_key: Any, **members: Any) -> dict[str, Any]:
    """The public half of ``private_key`` as a JWK, with ``members`` added."""
    algorithm = pyjwt.get_algorithm_by_name(_alg_of(private_key))
    found: dict[str, Any] = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return found | members


@pytest.mark.parametrize("kind", ["rsa_key", "ec_key", "ed_key"])
def test_a_jwk_verifies_tokens_like_its_pem(kind: str, request: pytest.FixtureRequest) -> None:
    private_key = request.getfixturevalue(kind)
    algorithm = _alg_of(private_key)
    key = JwtKey.registered(json.dumps(jwk_of(private_key, kid="host-1")))
    assert (key.kid, key.algorithm) == ("host-1", algorithm)
    assert key.key == public_pem(private_key)
    token = pyjwt.encode(claims(), private_key, algorithm=algorithm, headers={"kid": "host-1"})
    assert verify(token, [key], now=NOW)["sub"] == "user-42"


def test_a_jwk_s_alg_and_kid_are_used_unless_given_and_must_agree(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    declared = jwk_of(rsa_key, kid="k1", alg="PS256")
    assert JwtKey.from_jwk(declared).algorithm == "PS256"
    assert JwtKey.from_jwk(declared, kid="k1", algorithm="PS256").kid == "k1"
    with pytest.raises(errors.InvalidInput, match="differs from the JWK's") as caught:
        JwtKey.from_jwk(declared, kid="k2")
    assert caught.value.field == "kid"
    with pytest.raises(errors.InvalidInput, match="differs from the JWK's"):
        JwtKey.from_jwk(declared, algorithm="RS256")


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "oct", "k": b64url(SECRET)}, "symmetric JWK is not a public key"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}, "holds a private key"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, "not a valid public JWK"),
        ({"kty": "RSA", "n": "AQAB"}, "not a valid public JWK"),
        ({"kty": "XYZ"}, "not a valid public JWK"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AA", "use": "enc"}, "'use' must be 'sig'"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AA", "alg": "RSA-OAEP"}, "is not supported"),
    ],
)
def test_unusable_jwks_are_refused(jwk: dict[str, Any], reason: str) -> None:
    with pytest.raises(errors.InvalidInput, match=reason) as caught:
        JwtKey.from_jwk(jwk, kid="k")
    assert "AQAB" not in caught.value.message


def test_a_private_rsa_jwk_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    private = pyjwt.algorithms.RSAAlgorithm.to_jwk(rsa_key, as_dict=True)
    with pytest.raises(errors.InvalidInput, match="holds a private key"):
        JwtKey.registered(json.dumps(private), kid="k")


def test_a_registered_key_needs_a_kid_of_a_plain_shape(ed_key: ed25519.Ed25519PrivateKey) -> None:
    pem = public_pem(ed_key)
    with pytest.raises(errors.InvalidInput, match="give the key an id") as caught:
        JwtKey.registered(pem)
    assert caught.value.field == "kid"
    with pytest.raises(errors.InvalidInput, match="a key id is 1 to 64"):
        JwtKey.registered(pem, kid="has space")
    with pytest.raises(errors.InvalidInput, match="a key id is 1 to 64"):
        JwtKey.registered(pem, kid="k" * 65)
    with pytest.raises(errors.InvalidInput, match="not a valid JWK"):
        JwtKey.registered("{not json", kid="k")
    assert JwtKey.registered(f"\n  {pem}  \n", kid="ok").key == pem
