from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from authbridge.errors import CredentialsRejected, ProviderError, ProviderUnavailable
from authbridge.http import error_for_status, parse_retry_after, provider_message
from authbridge.redaction import REDACTED, redact, spellings


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "Bad key"}, "Bad key"),
        ({"error": "invalid_grant"}, "invalid_grant"),
        ({"error": {"message": "Token expired", "code": 190}}, "Token expired"),
        ({"error": "invalid_grant", "error_description": "Code was used"}, "Code was used"),
        ({"errors": [{"message": "Not authorized"}, {"message": "second"}]}, "Not authorized"),
        ({"errors": ["first problem"]}, "first problem"),
        ({"detail": "Invalid token."}, "Invalid token."),
        ({"detail": [{"msg": "field required"}, {"msg": "bad type"}]}, "field required; bad type"),
        ({"fault": {"faultstring": "Invalid ApiKey"}}, "Invalid ApiKey"),
        ({"oauth_problem": "token_rejected"}, "token_rejected"),
        (
            {"oauth_problem": "verifier_invalid", "oauth_problem_advice": "Wrong verifier"},
            "Wrong verifier (verifier_invalid)",
        ),
        ({"title": "Unauthorized", "status": 401}, "Unauthorized"),
        ([{"message": "in a list"}], "in a list"),
        ("Invalid credentials", "Invalid credentials"),
        ("  padded text \n", "padded text"),
    ],
)
def test_provider_message_shapes(body: object, expected: str) -> None:
    assert provider_message(400, body, "Bad Request") == expected


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        {},
        {"message": ""},
        {"error": {"code": 5}},
        {"unrelated": "value"},
        "<html><body>Login failed</body></html>",
        "x" * 300,
        42,
    ],
)
def test_provider_message_falls_back_to_the_status_text(body: object) -> None:
    assert provider_message(401, body, "Unauthorized") == "401 Unauthorized"


def test_status_text_uses_the_standard_phrase_when_none_is_given() -> None:
    assert provider_message(403, None, "") == "403 Forbidden"
    assert provider_message(599, None, "") == "599 Error"


def test_provider_message_redacts_secrets() -> None:
    body = {"message": "Key sk_live_123 is invalid for user a%2Bb (sk_live_123)"}
    message = provider_message(401, body, "Unauthorized", ["sk_live_123", "a+b"])
    assert message == "Key [redacted] is invalid for user [redacted] ([redacted])"


def test_provider_message_strips_control_characters_and_trims() -> None:
    message = provider_message(400, {"message": "line one\r\nline\x00two\x1b[31m" + "y" * 400}, "")
    assert not any(char in message for char in "\r\n\x00\x1b")
    assert message.startswith("line one line two [31m")
    assert len(message) == 300
    assert message.endswith("…")


def test_provider_message_short_secret_is_not_redacted() -> None:
    assert provider_message(400, {"message": "id ab failed"}, "", ["ab"]) == "id ab failed"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, CredentialsRejected),
        (403, CredentialsRejected),
        (429, ProviderUnavailable),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (400, ProviderError),
        (404, ProviderError),
        (422, ProviderError),
    ],
)
def test_error_for_status_picks_the_class(status: int, error_class: type[ProviderError]) -> None:
    body = {"message": "nope"}
    error = error_for_status(status, body)
    assert type(error) is error_class
    assert error.status_code == status
    assert error.body == body
    assert error.message == "nope"


def test_error_for_status_parses_retry_after() -> None:
    error = error_for_status(429, None, reason_phrase="Too Many Requests", retry_after="30")
    assert isinstance(error, ProviderUnavailable)
    assert error.retry_after == 30.0
    assert error.message == "429 Too Many Requests"


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None


def test_redact_replaces_raw_and_url_quoted_forms_longest_first() -> None:
    text = "key=p%40ss+w%2Frd raw=p@ss w/rd token=abcdef sub=abc"
    assert redact(text, ["p@ss w/rd", "abc", "abcdef", "xy"]) == (
        "key=[redacted] raw=[redacted] token=[redacted] sub=[redacted]"
    )


def test_redact_never_rewrites_its_own_marker() -> None:
    assert redact("abc", ["abc", "dac", "red"]) == "[redacted]"


def test_redact_without_secrets_returns_the_text() -> None:
    assert redact("nothing to hide", []) == "nothing to hide"


ENCODED_SECRET = "sk_live_5fG7~~~hQ2mZ9"  # its base64 holds '+' (base64url: '-')


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:"])
@pytest.mark.parametrize("suffix", [b"", b":", b":X", b":XY"])
def test_redact_finds_a_secret_in_base64_at_any_offset_with_or_without_padding(
    prefix: bytes, suffix: bytes
) -> None:
    blob = prefix + ENCODED_SECRET.encode() + suffix
    standard = base64.b64encode(blob).decode()
    urlsafe = base64.urlsafe_b64encode(blob).decode()
    for text in (standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("=")):
        redacted = redact(f"auth {text}.", [ENCODED_SECRET])
        assert redacted.count(REDACTED) == 1, text
        # Left: the characters of the bytes around it (and those they share with the secret).
        before, after = redacted.removeprefix("auth ").removesuffix(".").split(REDACTED)
        assert len(before) <= len(base64.b64encode(prefix))
        assert len(after) <= len(base64.b64encode(suffix)) + 3


def test_redact_removes_hex_and_percent_spellings_in_either_case() -> None:
    secret = "p@ss/w0rd~1"
    data = secret.encode()
    spelled = [
        data.hex(),
        data.hex().upper(),
        "".join(f"%{byte:02X}" for byte in data),
        "".join(f"%{byte:02x}" for byte in data),
        "p%40ss%2fw0rd~1",
        "p%40ss%2Fw0rd~1",
    ]
    assert redact(" ".join(spelled), [secret]) == " ".join([REDACTED] * len(spelled))


def test_redact_leaves_short_encodings_alone() -> None:
    assert redact("id YWJj (abc)", ["abc"]) == f"id YWJj ({REDACTED})"


def test_a_secrets_spellings_are_computed_once() -> None:
    spellings.cache_clear()
    for _ in range(3):
        redact("text", ["first-secret", "second-secret"])
        redact("text", ["first-secret"])
    assert spellings.cache_info().misses == 2
