import base64
import hashlib

import pytest

from authbridge.spec.rfc7636 import (
    UNRESERVED_CHARACTERS,
    code_challenge,
    generate_code_verifier,
    validate_code_verifier,
)

# RFC 7636 Appendix B
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc_appendix_b() -> None:
    assert code_challenge(RFC_VERIFIER, "S256") == RFC_CHALLENGE


def test_s256_is_the_default_method() -> None:
    assert code_challenge(RFC_VERIFIER) == RFC_CHALLENGE


def test_plain_returns_the_verifier() -> None:
    assert code_challenge(RFC_VERIFIER, "plain") == RFC_VERIFIER


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="code_challenge_method"):
        code_challenge(RFC_VERIFIER, "S512")  # type: ignore[arg-type]


def test_generated_verifier_has_the_default_length_and_charset() -> None:
    verifier = generate_code_verifier()
    assert len(verifier) == 64
    assert set(verifier) <= set(UNRESERVED_CHARACTERS)


@pytest.mark.parametrize("length", [43, 128])
def test_generated_verifier_honours_the_bounds(length: int) -> None:
    verifier = generate_code_verifier(length)
    assert len(verifier) == length
    validate_code_verifier(verifier)


@pytest.mark.parametrize("length", [0, 42, 129])
def test_generated_verifier_refuses_lengths_outside_the_rfc(length: int) -> None:
    with pytest.raises(ValueError, match=f"not {length}"):
        generate_code_verifier(length)


def test_generated_verifiers_differ() -> None:
    assert len({generate_code_verifier() for _ in range(20)}) == 20


def test_challenge_of_a_generated_verifier_is_unpadded_base64url_sha256() -> None:
    verifier = generate_code_verifier(100)
    challenge = code_challenge(verifier)
    assert len(challenge) == 43
    assert "=" not in challenge
    padded = challenge + "="
    assert base64.urlsafe_b64decode(padded) == hashlib.sha256(verifier.encode()).digest()


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, ""])
def test_challenge_refuses_verifiers_of_the_wrong_length(verifier: str) -> None:
    with pytest.raises(ValueError, match=f"this one has {len(verifier)}"):
        code_challenge(verifier)


@pytest.mark.parametrize("bad", ["+", "/", "=", " ", "é", "%"])
def test_challenge_refuses_characters_outside_the_unreserved_set(bad: str) -> None:
    verifier = RFC_VERIFIER[:-1] + bad
    with pytest.raises(ValueError, match="may only contain") as caught:
        code_challenge(verifier, "plain")
    assert RFC_VERIFIER[:20] not in str(caught.value)
