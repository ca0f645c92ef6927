"""README.md's host-JWT example (tour step 8), as written, against a running server.

The Python block is taken from the README and run with ``AB`` and ``JWT_SECRET`` set and a
``host-key.pem`` beside it, as the README's shell block leaves them; the two stand-ins are the
REST twins of its commands (``GET /v1/jwt-secret`` for ``jwt secret show``, ``POST
/v1/jwt-keys`` for ``jwt keys add``) and a key made with ``cryptography`` instead of openssl.
The server serves the bundled catalog, as ``make run`` does.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from authbridge.connectors.registry import Registry
from tests.support.app import Api

README = Path(__file__).resolve().parents[2] / "README.md"
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def readme_example() -> str:
    """The README's Python block that connects with host-signed JWTs."""
    (block,) = [
        block
        for block in PYTHON_BLOCK.findall(README.read_text(encoding="utf-8"))
        if "/v1/authentications/jwt" in block
    ]
    return block


@pytest.fixture
def host(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> rsa.RSAPrivateKey:
    """The README's set-up: the secret in ``JWT_SECRET``, ``host-key.pem`` in the working
    folder and its public half registered as ``host-1``."""
    api.bridge.registry = Registry.load()  # the catalog, whose sandbox-jwt the README uses
    secret = api.call("GET", "/v1/jwt-secret")
    assert secret.status_code == 200, secret.text
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "host-key.pem").write_bytes(
        private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    public = private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    registered = api.call("POST", "/v1/jwt-keys", json={"key": public.decode(), "kid": "host-1"})
    assert registered.status_code == 201, registered.text
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AB", api.url)
    monkeypatch.setenv("JWT_SECRET", secret.json()["secret"])
    return private_key


def run_example() -> None:
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "__main__"})


def test_the_readme_example_connects_with_host_signed_jwts(
    api: Api, host: rsa.RSAPrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    run_example()

    printed = capsys.readouterr().out.split()
    assert printed[0] == "connected"
    auth = api.call("GET", f"/v1/authentications/{printed[1]}").json()
    assert (auth["connector"], auth["external_user_id"], auth["name"]) == (
        "sandbox-jwt",
        "user-42",
        "acme",
    )
    credentials = api.call("GET", f"/v1/authentications/{printed[1]}/credentials").json()
    assert credentials["credentials"] == {"workspace": "acme", "internal_key": "ik-0451"}


def test_the_example_s_user_token_needs_the_registered_key(
    api: Api, host: rsa.RSAPrivateKey
) -> None:
    assert api.call("DELETE", "/v1/jwt-keys/host-1").status_code == 204

    with pytest.raises(httpx.HTTPStatusError, match="401"):
        run_example()


def test_the_example_s_connect_token_needs_the_current_secret(
    api: Api, host: rsa.RSAPrivateKey
) -> None:
    assert api.call("POST", "/v1/jwt-secret/rotate").status_code == 200

    with pytest.raises(httpx.HTTPStatusError, match="422"):
        run_example()
    assert api.call("GET", "/v1/authentications").json()["items"] == []
