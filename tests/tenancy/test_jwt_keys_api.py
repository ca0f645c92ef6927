"""``/v1/jwt-secret`` and ``/v1/jwt-keys``: the host gets the secret and registers the public
keys that its own JWTs (user tokens, jwt connectors' tokens) are verified with."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import text

from tests.support.api_calls import assert_problem, environment_secret, user_token
from tests.support.app import Api

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def signed(key: bytes | PrivateKey, algorithm: str, sub: str = "alice", **header: Any) -> str:
    """A user token the host signs itself."""
    now = int(time.time())
    return jwt.encode(
        {"sub": sub, "iat": now, "exp": now + 300}, key, algorithm=algorithm, headers=header
    )


def works(api: Api, token: str) -> bool:
    """Whether ``token`` is accepted as a user token (else it is a 401 problem)."""
    response = api.call("GET", "/v1/authentications", token=token)
    if response.status_code == 401:
        assert_problem(response, 401, "unauthenticated")
        return False
    assert response.status_code == 200, response.text
    return True


def public_pem(private_key: PrivateKey) -> str:
    pem: bytes = private_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def add_key(api: Api, **body: Any) -> dict[str, Any]:
    response = api.call("POST", "/v1/jwt-keys", json=body)
    assert response.status_code == 201, response.text
    added: dict[str, Any] = response.json()
    return added


def audit_actions(api: Api) -> list[tuple[str, str | None]]:
    items = api.call("GET", "/v1/audit-events").json()["items"]
    return [(item["action"], item["target_id"]) for item in items]


# -- the HMAC secret ---------------------------------------------------------------------------


def test_the_shown_secret_signs_user_tokens(api: Api) -> None:
    response = api.call("GET", "/v1/jwt-secret")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body.keys() == {"secret", "encoding", "algorithm"}
    assert (body["encoding"], body["algorithm"]) == ("base64url", "HS256")
    secret = base64.urlsafe_b64decode(body["secret"])
    assert secret == environment_secret(api)
    assert works(api, signed(secret, "HS256"))
    assert audit_actions(api) == [("environment.jwt_secret_read", api.environment_id)]


def test_rotating_refuses_every_token_signed_with_the_old_secret(api: Api) -> None:
    old_secret = base64.urlsafe_b64decode(api.call("GET", "/v1/jwt-secret").json()["secret"])
    host_signed, minted = signed(old_secret, "HS256"), user_token(api, "bob")
    assert works(api, host_signed)
    assert works(api, minted)

    rotated = api.call("POST", "/v1/jwt-secret/rotate")

    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new_secret = base64.urlsafe_b64decode(rotated.json()["secret"])
    assert new_secret != old_secret
    assert len(new_secret) == 32
    assert not works(api, host_signed)  # at once in this process: the token cache was cleared
    assert not works(api, minted)
    assert works(api, signed(new_secret, "HS256"))
    assert works(api, user_token(api, "bob"))
    shown = api.call("GET", "/v1/jwt-secret").json()["secret"]
    assert base64.urlsafe_b64decode(shown) == new_secret
    assert ("environment.jwt_secret_rotated", api.environment_id) in audit_actions(api)


def test_the_secret_is_never_logged_nor_stored_in_plaintext(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shown = [api.call("GET", "/v1/jwt-secret").json()["secret"]]
    shown.append(api.call("POST", "/v1/jwt-secret/rotate").json()["secret"])

    with api.bridge.session() as session:
        rows = session.execute(text("SELECT * FROM environments")).all()
        audit = session.execute(text("SELECT * FROM audit_events")).all()
    for value in shown:
        raw = base64.urlsafe_b64decode(value)
        assert value not in caplog.text
        assert raw.hex() not in caplog.text
        assert all(raw not in bytes(row.jwt_secret_ct) for row in rows)
        assert value not in str(audit)


def test_only_a_master_token_gets_or_rotates_the_secret(api: Api) -> None:
    token = user_token(api, "alice")
    for method, path in [("GET", "/v1/jwt-secret"), ("POST", "/v1/jwt-secret/rotate")]:
        response = api.call(method, path, token=token)
        assert_problem(response, 403, "forbidden")
        assert "secret" not in response.json()
    assert works(api, token)  # nothing was rotated


# -- public keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
    ids=["RS256", "ES256", "EdDSA"],
)
@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_a_registered_public_key_verifies_the_host_s_tokens(
    api: Api, make: Any, algorithm: str, form: str
) -> None:
    private_key: PrivateKey = make()
    if form == "pem":
        body: dict[str, Any] = {"key": public_pem(private_key), "kid": "host-1"}
    else:
        jwk = jwt.get_algorithm_by_name(algorithm).to_jwk(private_key.public_key(), as_dict=True)
        body = {"key": jwk | {"kid": "host-1"}}
    token = signed(private_key, algorithm, kid="host-1")
    assert not works(api, token)

    added = add_key(api, **body)

    assert (added["kid"], added["algorithm"]) == ("host-1", algorithm)
    assert added["public_key"] == public_pem(private_key)
    assert works(api, token)
    listed = api.call("GET", "/v1/jwt-keys").json()
    assert [(key["kid"], key["algorithm"]) for key in listed] == [("host-1", algorithm)]

    removed = api.call("DELETE", "/v1/jwt-keys/host-1")

    assert removed.status_code == 204, removed.text
    assert not works(api, token)  # at once in this process
    assert api.call("GET", "/v1/jwt-keys").json() == []
    assert audit_actions(api) == [("jwt_key.added", "host-1"), ("jwt_key.removed", "host-1")]


def test_a_key_is_used_with_the_algorithm_it_was_registered_for(api: Api) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    add_key(api, key=public_pem(private_key), kid="pss", algorithm="PS256")
    add_key(api, key=json.dumps({"kid": "jwk-384"} | rsa_jwk(private_key, alg="RS384")))

    assert works(api, signed(private_key, "PS256", kid="pss"))
    assert works(api, signed(private_key, "RS384", kid="jwk-384"))
    assert not works(api, signed(private_key, "RS256", kid="pss"))


def rsa_jwk(private_key: rsa.RSAPrivateKey, **members: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return jwk | members


def test_bad_keys_are_clear_4xx_and_store_nothing(api: Api) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private_pem = private_key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    ).decode()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"key": private_pem, "kid": "k"}, "key", "this is a private key"),
        ({"key": "not a key", "kid": "k"}, "key", "not a PEM public key"),
        ({"key": public_pem(weak), "kid": "k"}, "key", "at least 2048 bits"),
        ({"key": public_pem(private_key)}, "kid", "give the key an id"),
        ({"key": public_pem(private_key), "kid": "a/b"}, "kid", "a key id is 1 to 64"),
        ({"key": public_pem(private_key), "kid": "k", "algorithm": "HS256"}, "algorithm", ""),
        ({"key": public_pem(private_key), "kid": "k", "algorithm": "ES256"}, "key", "EC key"),
        ({"key": public_pem(private_key), "kid": "k", "algorithm": "none"}, "algorithm", ""),
        ({"key": rsa_jwk(private_key, d="AQAB"), "kid": "k"}, "key", "holds a private key"),
        ({"key": {"kty": "oct", "k": "c2VjcmV0"}, "kid": "k"}, "key", "symmetric JWK"),
        ({"key": "x" * 20000, "kid": "k"}, "key", "longer than"),
    ]
    for body, field, reason in cases:
        response = api.call("POST", "/v1/jwt-keys", json=body)
        problem = assert_problem(response, 422, "invalid_input")
        assert problem["field"] == field, (body, problem)
        assert reason in problem["detail"], problem
        assert "AQAB" not in problem["detail"]
    assert api.call("GET", "/v1/jwt-keys").json() == []

    add_key(api, key=public_pem(private_key), kid="k")
    again = api.call("POST", "/v1/jwt-keys", json={"key": public_pem(weak), "kid": "k"})
    assert_problem(again, 422, "invalid_input")
    duplicate = api.call("POST", "/v1/jwt-keys", json={"key": public_pem(private_key), "kid": "k"})
    assert "'k' is already registered" in assert_problem(duplicate, 409, "conflict")["detail"]
    missing = api.call("DELETE", "/v1/jwt-keys/nope")
    assert "no key with id 'nope'" in assert_problem(missing, 404, "not_found")["detail"]
    assert [key["kid"] for key in api.call("GET", "/v1/jwt-keys").json()] == ["k"]


def test_only_a_master_token_manages_keys(api: Api) -> None:
    token = user_token(api, "alice")
    private_key = ed25519.Ed25519PrivateKey.generate()
    body = {"key": public_pem(private_key), "kid": "k"}
    assert_problem(api.call("POST", "/v1/jwt-keys", token=token, json=body), 403, "forbidden")
    assert_problem(api.call("GET", "/v1/jwt-keys", token=token), 403, "forbidden")
    add_key(api, **body)
    assert_problem(api.call("DELETE", "/v1/jwt-keys/k", token=token), 403, "forbidden")
    assert len(api.call("GET", "/v1/jwt-keys").json()) == 1
