"""``authbridge jwt secret show|rotate`` and ``jwt keys add|list|remove`` on SQLite and
PostgreSQL: what the commands print and store is what the server verifies host JWTs with."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from authbridge.services.principals import authenticate
from authbridge.storage import Database
from authbridge.tenancy.repository import EnvironmentRepository, JwtKeyRepository
from authbridge.vault import Keyring
from tests.support.cli import both, failed, ok


def stored_secret(database: Database, keyring: Keyring, name: str = "default") -> bytes:
    with database.session(readonly=True) as session:
        environments = EnvironmentRepository(session, keyring)
        environment = environments.get_by_name(name)
        assert environment is not None
        return environments.jwt_secret(environment)


def user_of(database: Database, keyring: Keyring, token: str) -> str | None:
    """The external id of the user token's end user, as the server checks it."""
    with database.session() as session:
        return authenticate(session, keyring, token, now=datetime.now(UTC)).external_user_id


def host_token(key: bytes | rsa.RSAPrivateKey, algorithm: str, **header: str) -> str:
    now = int(time.time())
    claims = {"sub": "alice", "iat": now, "exp": now + 300}
    return jwt.encode(claims, key, algorithm=algorithm, headers=header)


def write_public(folder: Path, private_key: object, name: str = "host.pub.pem") -> Path:
    path = folder / name
    public = private_key.public_key()  # type: ignore[attr-defined]
    path.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return path


@both
def test_secret_show_prints_the_secret_alone_on_stdout(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    result = ok("jwt", "secret", "show")

    shown = result.stdout.strip()
    assert result.stdout == shown + "\n"  # usable as $(authbridge jwt secret show)
    assert base64.urlsafe_b64decode(shown) == stored_secret(database, keyring)
    assert "base64url" in result.stderr
    assert user_of(database, keyring, host_token(base64.urlsafe_b64decode(shown), "HS256"))


@both
def test_secret_rotate_needs_yes_then_replaces_the_secret(
    opened: tuple[Database, Keyring],
) -> None:
    database, keyring = opened
    before = base64.urlsafe_b64decode(ok("jwt", "secret", "show").stdout.strip())

    refused = failed("jwt", "secret", "rotate")
    assert "add --yes to go ahead" in refused.stderr
    assert stored_secret(database, keyring) == before

    rotated = base64.urlsafe_b64decode(ok("jwt", "secret", "rotate", "--yes").stdout.strip())
    assert rotated != before
    assert stored_secret(database, keyring) == rotated
    assert base64.urlsafe_b64decode(ok("jwt", "secret", "show").stdout.strip()) == rotated


def test_secret_of_an_unknown_environment_is_a_clear_error(home: Path) -> None:
    assert (
        "no environment named 'staging'" in failed("jwt", "secret", "show", "-e", "staging").stderr
    )


@both
def test_keys_add_list_and_remove(opened: tuple[Database, Keyring], tmp_path: Path) -> None:
    database, keyring = opened
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    jwk = jwt.algorithms.OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True)
    (tmp_path / "ed.jwk").write_text(json.dumps(jwk | {"kid": "ed-1"}))

    added = ok("jwt", "keys", "add", str(write_public(tmp_path, rsa_key)), "--kid", "rsa-1")
    ok("jwt", "keys", "add", "-", "--kid", "ec-1", stdin=write_public(tmp_path, ec_key).read_text())
    ok("jwt", "keys", "add", str(tmp_path / "ed.jwk"))

    assert "Registered key 'rsa-1' (RS256) in environment 'default'." in added.stdout
    listing = ok("jwt", "keys", "list").stdout
    assert "3 public keys" in listing
    for kid, algorithm in [("rsa-1", "RS256"), ("ec-1", "ES256"), ("ed-1", "EdDSA")]:
        assert kid in listing
        assert algorithm in listing
    token = host_token(rsa_key, "RS256", kid="rsa-1")
    assert user_of(database, keyring, token) == "alice"

    assert "Removed key 'rsa-1'" in ok("jwt", "keys", "remove", "rsa-1").stdout
    with database.session(readonly=True) as session:
        environment = EnvironmentRepository(session, keyring).get_by_name("default")
        assert environment is not None
        kids = [key.kid for key in JwtKeyRepository(session).list(environment.id)]
    assert kids == ["ec-1", "ed-1"]
    assert "no key with id 'rsa-1'" in failed("jwt", "keys", "remove", "rsa-1").stderr


@both
def test_bad_keys_are_one_line_errors(target: str, tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "host.pem"
    private.write_bytes(rsa_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = write_public(tmp_path, rsa_key)
    binary = tmp_path / "key.der"
    binary.write_bytes(b"\x30\x82\xff\xfe")

    cases = [
        (("jwt", "keys", "add", str(private), "--kid", "k"), "this is a private key"),
        (("jwt", "keys", "add", str(public)), "give the key an id (kid)"),
        (("jwt", "keys", "add", str(public), "--kid", "k", "--algorithm", "XS1"), "XS1"),
        (("jwt", "keys", "add", str(binary), "--kid", "k"), "is not text"),
        (("jwt", "keys", "add", str(tmp_path / "none.pem"), "--kid", "k"), "No such file"),
    ]
    for args, reason in cases:
        stderr = failed(*args).stderr
        assert reason in stderr, args
        assert private.read_text() not in stderr
    ok("jwt", "keys", "add", str(public), "--kid", "k")
    assert (
        "'k' is already registered"
        in failed("jwt", "keys", "add", str(public), "--kid", "k").stderr
    )
    assert "1 public keys" in ok("jwt", "keys", "list").stdout


@pytest.mark.parametrize(
    "command", [["jwt"], ["jwt", "secret"], ["jwt", "keys"], ["jwt", "keys", "add"]]
)
def test_every_jwt_command_explains_itself(home: Path, command: list[str]) -> None:
    result = ok(*command, "--help")
    assert "Usage:" in result.stdout
    assert ("HS256" in result.stdout) or ("public key" in result.stdout)
