from urllib.parse import parse_qsl, urlsplit

import pytest

from authbridge.spec.rfc6749 import AuthorizationResponse, OAuthError, parse_callback
from authbridge.spec.rfc9207 import IssuerMismatch, check_issuer, issuer_parameter_supported

HONEST = "https://honest.as.example"
# RFC 9207 §2.1 and §2.2 (line breaks removed)
RFC_RESPONSE = (
    "https://client.example/cb?code=x1848ZT64p4IirMPT0R-X3141MFPTuBX-VFL_cvaplMH58"
    "&state=ZWVlNDBlYzA1NjdkMDNhYjg3ZjUxZjAyNGQzMTM2NzI&iss=https%3A%2F%2Fhonest.as.example"
)
RFC_ERROR = (
    "https://client.example/cb?error=access_denied"
    "&state=N2JjNGJhY2JiZjRhYzA3MGJkMzNmMDE5OWJhZmJhZjA&iss=https%3A%2F%2Fhonest.as.example"
)


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_rfc_example_response_is_accepted_from_the_honest_server() -> None:
    response = parse_callback(query_of(RFC_RESPONSE))
    assert isinstance(response, AuthorizationResponse)
    assert response.iss == HONEST
    check_issuer(response.iss, expected_issuer=HONEST, issuer_required=True)


def test_rfc_example_response_is_rejected_when_sent_to_another_server() -> None:
    response = parse_callback(query_of(RFC_RESPONSE))
    assert isinstance(response, AuthorizationResponse)
    with pytest.raises(IssuerMismatch) as caught:
        check_issuer(response.iss, expected_issuer="https://attacker.example")
    assert caught.value.expected == "https://attacker.example"
    assert caught.value.received == HONEST
    assert "https://honest.as.example" in str(caught.value)


def test_rfc_example_error_carries_iss_and_state() -> None:
    error = parse_callback(query_of(RFC_ERROR))
    assert isinstance(error, OAuthError)
    assert error.error == "access_denied"
    assert error.state == "N2JjNGJhY2JiZjRhYzA3MGJkMzNmMDE5OWJhZmJhZjA"
    assert error.iss == HONEST
    check_issuer(error.iss, expected_issuer=HONEST, issuer_required=True)


@pytest.mark.parametrize(
    "received",
    [HONEST + "/", "https://HONEST.as.example", "HTTPS://honest.as.example", "", HONEST + " "],
)
def test_comparison_is_exact_without_normalisation(received: str) -> None:
    with pytest.raises(IssuerMismatch):
        check_issuer(received, expected_issuer=HONEST)


def test_missing_iss_is_rejected_when_the_server_announced_it() -> None:
    with pytest.raises(IssuerMismatch, match="no 'iss'") as caught:
        check_issuer(None, expected_issuer=HONEST, issuer_required=True)
    assert caught.value.received is None


def test_missing_iss_is_accepted_from_a_server_that_may_not_support_it() -> None:
    check_issuer(None, expected_issuer=HONEST, issuer_required=False)


@pytest.mark.parametrize("received", [HONEST, None])
def test_required_issuer_without_an_expected_value_fails_closed(received: str | None) -> None:
    with pytest.raises(IssuerMismatch, match="no issuer is configured"):
        check_issuer(received, expected_issuer=None, issuer_required=True)


def test_no_iss_and_nothing_to_compare_is_accepted_when_not_required() -> None:
    check_issuer(None, expected_issuer=None)


def test_an_iss_with_no_expected_issuer_is_refused() -> None:
    with pytest.raises(IssuerMismatch, match="no issuer is configured") as caught:
        check_issuer(HONEST, expected_issuer=None)
    assert caught.value.received == HONEST


@pytest.mark.parametrize(
    ("metadata", "supported"),
    [
        ({"issuer": HONEST, "authorization_response_iss_parameter_supported": True}, True),
        ({"issuer": HONEST, "authorization_response_iss_parameter_supported": False}, False),
        ({"issuer": HONEST, "authorization_response_iss_parameter_supported": "true"}, False),
        ({"issuer": HONEST}, False),
    ],
)
def test_issuer_parameter_supported_reads_metadata(
    metadata: dict[str, object], supported: bool
) -> None:
    assert issuer_parameter_supported(metadata) is supported
