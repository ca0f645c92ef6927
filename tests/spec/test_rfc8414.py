"""RFC 8414 metadata: the well-known URL of an issuer, and a document's validation."""

from __future__ import annotations

from typing import Any

import pytest

from authbridge.spec.rfc8414 import (
    InvalidMetadata,
    issuer_of_well_known_url,
    parse_metadata,
    well_known_url,
)

ISSUER = "https://as.example.test"


def document(**changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "response_types_supported": ["code"],
    }
    found.update(changes)
    return {key: value for key, value in found.items() if value is not None}


@pytest.mark.parametrize(
    ("issuer", "url"),
    [
        (ISSUER, f"{ISSUER}/.well-known/oauth-authorization-server"),
        (f"{ISSUER}/", f"{ISSUER}/.well-known/oauth-authorization-server"),
        (f"{ISSUER}/tenant/1", f"{ISSUER}/.well-known/oauth-authorization-server/tenant/1"),
    ],
)
def test_the_well_known_part_goes_before_the_issuers_path(issuer: str, url: str) -> None:
    assert well_known_url(issuer) == url


@pytest.mark.parametrize(
    ("url", "issuer"),
    [
        (f"{ISSUER}/.well-known/oauth-authorization-server/t1", f"{ISSUER}/t1"),
        (f"{ISSUER}/.well-known/oauth-authorization-server", ISSUER),
        (f"{ISSUER}/t1/.well-known/openid-configuration", f"{ISSUER}/t1"),
        (
            "https://accounts.google.com/.well-known/openid-configuration",
            "https://accounts.google.com",
        ),
        (f"{ISSUER}/metadata.json", None),
        (f"{ISSUER}/.well-known/openid-configuration?x=1", None),
    ],
)
def test_the_issuer_of_a_standard_url(url: str, issuer: str | None) -> None:
    assert issuer_of_well_known_url(url) == issuer


def test_a_valid_document_gives_endpoints_and_rfc9207_support() -> None:
    found = parse_metadata(
        document(
            revocation_endpoint=f"{ISSUER}/revoke",
            authorization_response_iss_parameter_supported=True,
        ),
        expected_issuer=ISSUER,
    )
    assert found.issuer == ISSUER
    assert found.authorization_endpoint == f"{ISSUER}/authorize"
    assert found.token_endpoint == f"{ISSUER}/token"
    assert found.revocation_endpoint == f"{ISSUER}/revoke"
    assert found.iss_parameter_supported is True
    assert parse_metadata(document(), expected_issuer=None).iss_parameter_supported is False


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, 2], "not a JSON object"),
        ("<html>", "not a JSON object"),
        (document(issuer=None), '"issuer" is required'),
        (document(issuer="http://as.example.test"), "https"),
        (document(token_endpoint="http://as.example.test/token"), "https"),
        (document(issuer=f"{ISSUER}/"), "RFC 8414 §3.3"),
    ],
)
def test_an_unusable_document_says_why(body: Any, reason: str) -> None:
    with pytest.raises(InvalidMetadata, match=reason):
        parse_metadata(body, expected_issuer=ISSUER)
