import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import pytest

from authbridge.spec.rfc6749 import (
    RESERVED_AUTHORIZATION_PARAMETERS,
    AuthorizationResponse,
    OAuthError,
    TokenResponseError,
    authorization_code_params,
    authorization_url,
    client_auth,
    client_credentials_params,
    join_scope,
    parse_callback,
    parse_error_response,
    parse_token_body,
    parse_token_response,
    refresh_token_params,
)
from authbridge.spec.rfc7636 import code_challenge

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ENDPOINT = "https://server.example.com/authorize"
# RFC 6749 §4.1.1
RFC_AUTHORIZATION_QUERY = (
    "response_type=code&client_id=s6BhdRkqt3&state=xyz"
    "&redirect_uri=https%3A%2F%2Fclient%2Eexample%2Ecom%2Fcb"
)
# RFC 6749 §5.1
RFC_TOKEN_RESPONSE = {
    "access_token": "2YotnFZFEjr1zCsicMWpAA",
    "token_type": "example",
    "expires_in": 3600,
    "refresh_token": "tGzv3JOkF0XG5Qx2TlKWIA",
    "example_parameter": "example_value",
}
# GitHub's form-encoded token response
GITHUB_BODY = (
    "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer"
)


def rfc_url(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "client_id": "s6BhdRkqt3",
        "redirect_uri": "https://client.example.com/cb",
        "state": "xyz",
    }
    arguments.update(overrides)
    return authorization_url(ENDPOINT, **arguments)  # type: ignore[arg-type]


def pairs(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


# authorization request, §4.1.1


def test_authorization_url_carries_the_rfc_example_parameters() -> None:
    url = rfc_url()
    assert url.startswith(ENDPOINT + "?")
    assert sorted(pairs(url)) == sorted(parse_qsl(RFC_AUTHORIZATION_QUERY))
    assert url == (
        "https://server.example.com/authorize?response_type=code&client_id=s6BhdRkqt3"
        "&redirect_uri=https%3A%2F%2Fclient.example.com%2Fcb&state=xyz"
    )


def test_authorization_url_keeps_the_endpoint_query_verbatim() -> None:
    url = authorization_url(
        "https://as.example/authorize?tenant=a%7Eb&flag=",
        client_id="c",
        redirect_uri="https://app.example/cb",
        state="s",
    )
    assert url.startswith("https://as.example/authorize?tenant=a%7Eb&flag=&response_type=code&")
    assert ("tenant", "a~b") in pairs(url)


def test_authorization_url_joins_scope_with_the_delimiter() -> None:
    spaced = dict(pairs(rfc_url(scope=["openid", "email"])))
    assert spaced["scope"] == "openid email"
    assert "scope=openid+email" in rfc_url(scope=["openid", "email"])
    comma = dict(pairs(rfc_url(scope=["repo", "gist"], scope_delimiter=",")))
    assert comma["scope"] == "repo,gist"


def test_authorization_url_omits_empty_scope_and_pkce() -> None:
    names = [name for name, _ in pairs(rfc_url(scope=[]))]
    assert names == ["response_type", "client_id", "redirect_uri", "state"]


def test_authorization_url_adds_the_code_challenge() -> None:
    challenge = code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    params = dict(pairs(rfc_url(code_challenge=challenge)))
    assert params["code_challenge"] == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert params["code_challenge_method"] == "S256"


def test_authorization_url_adds_extra_parameters() -> None:
    params = pairs(rfc_url(extra={"access_type": "offline", "prompt": "consent"}))
    assert params[-2:] == [("access_type", "offline"), ("prompt", "consent")]


@pytest.mark.parametrize("name", sorted(RESERVED_AUTHORIZATION_PARAMETERS))
def test_extra_may_not_override_reserved_parameters(name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        rfc_url(extra={name: "evil"})


def test_extra_scope_conflicts_with_a_given_scope() -> None:
    with pytest.raises(ValueError, match="'scope' would be sent twice"):
        rfc_url(scope=["a"], extra={"scope": "b"})
    assert dict(pairs(rfc_url(extra={"scope": "b"})))["scope"] == "b"


def test_endpoint_query_may_not_repeat_a_parameter() -> None:
    with pytest.raises(ValueError, match="already contains 'client_id'"):
        authorization_url(ENDPOINT + "?client_id=x", client_id="c", redirect_uri="r", state="s")


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [(ENDPOINT + "#frag", "fragment"), ("/authorize", "absolute"), ("server.example", "absolute")],
)
def test_authorization_url_refuses_bad_endpoints(endpoint: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        authorization_url(endpoint, client_id="c", redirect_uri="r", state="s")


def test_authorization_url_refuses_empty_state() -> None:
    with pytest.raises(ValueError, match="state"):
        rfc_url(state="")


def test_join_scope_refuses_a_single_string() -> None:
    with pytest.raises(TypeError, match="not a single string"):
        join_scope("read write")


@pytest.mark.parametrize("token", ["", "read write", "a,b", "tab\there"])
def test_join_scope_refuses_bad_tokens(token: str) -> None:
    with pytest.raises(ValueError, match="invalid scope token"):
        join_scope(["ok", token], ",")


# authorization response, §4.1.2


def test_parse_callback_reads_the_rfc_example() -> None:
    url = "https://client.example.com/cb?code=SplxlOBeZQQYbYQWbYwR&state=xyz"
    response = parse_callback(dict(pairs(url)))
    assert response == AuthorizationResponse(code="SplxlOBeZQQYbYQWbYwR", state="xyz", iss=None)
    assert "SplxlOBeZQQYbYQWbYwR" not in repr(response)


def test_parse_callback_returns_the_rfc_error_example() -> None:
    url = "https://client.example.com/cb?error=access_denied&state=xyz"
    error = parse_callback(dict(pairs(url)))
    assert isinstance(error, OAuthError)
    assert (error.error, error.description, error.uri, error.state) == (
        "access_denied",
        None,
        None,
        "xyz",
    )


def test_parse_callback_needs_code_or_error() -> None:
    with pytest.raises(ValueError, match="neither code nor error"):
        parse_callback({"state": "xyz"})


# token request, §4.1.3, §6, §4.4.2


def test_authorization_code_params() -> None:
    assert authorization_code_params("SplxlOBeZQQYbYQWbYwR", "https://client.example.com/cb") == {
        "grant_type": "authorization_code",
        "code": "SplxlOBeZQQYbYQWbYwR",
        "redirect_uri": "https://client.example.com/cb",
    }


def test_authorization_code_params_with_verifier() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    params = authorization_code_params("code", "https://client.example.com/cb", verifier)
    assert params["code_verifier"] == verifier


def test_authorization_code_params_refuses_a_bad_verifier() -> None:
    with pytest.raises(ValueError, match="code_verifier"):
        authorization_code_params("code", "https://client.example.com/cb", "short")


def test_refresh_token_params() -> None:
    assert refresh_token_params("tGzv3JOkF0XG5Qx2TlKWIA") == {
        "grant_type": "refresh_token",
        "refresh_token": "tGzv3JOkF0XG5Qx2TlKWIA",
    }
    assert refresh_token_params("t", ["a", "b"])["scope"] == "a b"


def test_client_credentials_params() -> None:
    assert client_credentials_params() == {"grant_type": "client_credentials"}
    assert client_credentials_params(["a", "b"], scope_delimiter=",") == {
        "grant_type": "client_credentials",
        "scope": "a,b",
    }


# client authentication, §2.3.1


def test_basic_auth_matches_the_rfc_example() -> None:
    headers, body = client_auth("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw", "basic")
    assert headers == {"Authorization": "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"}
    assert body == {}


def test_basic_auth_form_encodes_before_base64() -> None:
    headers, _ = client_auth("my client", "p@ss:w/rd+é %", "basic")
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    decoded = base64.b64decode(token).decode("ascii")
    assert decoded == "my+client:p%40ss%3Aw%2Frd%2B%C3%A9+%25"
    username, _, password = decoded.partition(":")
    assert (unquote_plus(username), unquote_plus(password)) == ("my client", "p@ss:w/rd+é %")


def test_basic_auth_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="needs a client secret"):
        client_auth("c", None, "basic")


def test_body_auth() -> None:
    assert client_auth("c", "s", "body") == ({}, {"client_id": "c", "client_secret": "s"})
    assert client_auth("c", None, "body") == ({}, {"client_id": "c"})


def test_unknown_auth_method() -> None:
    with pytest.raises(ValueError, match="unknown client authentication method"):
        client_auth("c", "s", "jwt")  # type: ignore[arg-type]


# token response, §5.1


def test_parse_token_response_reads_the_rfc_example() -> None:
    token = parse_token_response(RFC_TOKEN_RESPONSE, now=NOW)
    assert token.access_token == "2YotnFZFEjr1zCsicMWpAA"
    assert token.token_type == "example"
    assert token.refresh_token == "tGzv3JOkF0XG5Qx2TlKWIA"
    assert token.expires_at == NOW + timedelta(seconds=3600)
    assert token.scope is None
    assert token.id_token is None
    assert dict(token.extra) == {"example_parameter": "example_value"}


def test_token_repr_hides_credentials() -> None:
    body = {**RFC_TOKEN_RESPONSE, "id_token": "eyJhbGciOi.payload.sig"}
    text = repr(parse_token_response(body, now=NOW))
    for secret in (
        "2YotnFZFEjr1zCsicMWpAA",
        "tGzv3JOkF0XG5Qx2TlKWIA",
        "eyJhbGciOi",
        "example_value",
    ):
        assert secret not in text
    assert "token_type='example'" in text


def test_token_extra_is_read_only() -> None:
    token = parse_token_response(RFC_TOKEN_RESPONSE, now=NOW)
    with pytest.raises(TypeError):
        token.extra["example_parameter"] = "changed"  # type: ignore[index]


def test_parse_token_response_reads_a_json_string_and_string_expires_in() -> None:
    body = '{"access_token": "abc", "token_type": "Bearer", "expires_in": "120", "scope": "a b"}'
    token = parse_token_response(body, now=NOW)
    assert token.expires_at == NOW + timedelta(minutes=2)
    assert token.scope == ("a", "b")


def test_an_expires_in_of_zero_means_the_token_does_not_expire() -> None:
    token = parse_token_response({"access_token": "x", "expires_in": 0}, now=NOW)
    assert token.expires_at is None


def test_parse_token_response_reads_a_github_form_body() -> None:
    token = parse_token_response(GITHUB_BODY, now=NOW, scope_delimiter=",")
    assert token.access_token == "gho_16C7e42F292c6912E7710c838347Ae178B4a"
    assert token.token_type == "bearer"
    assert token.scope == ("repo", "gist")
    assert token.expires_at is None


@pytest.mark.parametrize(
    ("scope", "expected"), [("", ()), (["a", "b"], ("a", "b")), ("a  b", ("a", "b"))]
)
def test_scope_shapes(scope: object, expected: tuple[str, ...]) -> None:
    token = parse_token_response({"access_token": "x", "scope": scope}, now=NOW)
    assert token.scope == expected


def test_missing_token_type_defaults_to_bearer_and_empty_refresh_token_is_none() -> None:
    token = parse_token_response({"access_token": "x", "refresh_token": ""}, now=NOW)
    assert token.token_type == "Bearer"
    assert token.refresh_token is None


@pytest.mark.parametrize(
    "body", [{}, {"access_token": ""}, {"access_token": 42}, {"token_type": "Bearer"}]
)
def test_missing_access_token_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(TokenResponseError, match="no access_token"):
        parse_token_response(body, now=NOW)


@pytest.mark.parametrize("expires_in", ["soon", -1, True, "2030-01-01T00:00:00Z"])
def test_invalid_expires_in_is_refused(expires_in: object) -> None:
    with pytest.raises(TokenResponseError, match="expires_in") as caught:
        parse_token_response({"access_token": "secret-token", "expires_in": expires_in}, now=NOW)
    assert "secret-token" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"access_token": "x", "refresh_token": 5}, "refresh_token is not a string"),
        ({"access_token": "x", "token_type": 5}, "token_type is not a string"),
        ({"access_token": "x", "scope": {"a": 1}}, "scope is neither"),
    ],
)
def test_wrongly_typed_fields_are_refused(body: dict[str, object], message: str) -> None:
    with pytest.raises(TokenResponseError, match=message):
        parse_token_response(body, now=NOW)


def test_error_body_with_status_200_raises_the_oauth_error() -> None:
    body = "error=bad_verification_code&error_description=The+code+is+incorrect"
    with pytest.raises(OAuthError) as caught:
        parse_token_response(body, now=NOW)
    assert caught.value.error == "bad_verification_code"
    assert caught.value.description == "The code is incorrect"
    assert str(caught.value) == "bad_verification_code: The code is incorrect"


def test_parse_token_response_refuses_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_token_response(RFC_TOKEN_RESPONSE, now=datetime(2025, 3, 1))


# token bodies


def test_parse_token_body_reads_form_encoding() -> None:
    assert parse_token_body(GITHUB_BODY) == {
        "access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "scope": "repo,gist",
        "token_type": "bearer",
    }


def test_parse_token_body_copies_a_mapping() -> None:
    original = {"access_token": "x"}
    copy = parse_token_body(original)
    copy["access_token"] = "y"
    assert original == {"access_token": "x"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"access_token": "secret-token"', "malformed JSON"),
        ('["secret-token"]', "not an object"),
        ("<html>secret-token</html>", "neither JSON nor a form"),
        ("access_token=secret-token&access_token=other", "'access_token' appears twice"),
    ],
)
def test_parse_token_body_refuses_bad_bodies_without_quoting_them(raw: str, message: str) -> None:
    with pytest.raises(TokenResponseError, match=message) as caught:
        parse_token_body(raw)
    assert "secret-token" not in str(caught.value)


# error response, §5.2


def test_parse_error_response_reads_the_rfc_example() -> None:
    error = parse_error_response('{"error": "invalid_request"}')
    assert error is not None
    assert (error.error, error.description, error.uri) == ("invalid_request", None, None)
    assert str(error) == "invalid_request"


def test_parse_error_response_reads_description_and_uri() -> None:
    error = parse_error_response(
        {
            "error": "invalid_grant",
            "error_description": "expired",
            "error_uri": "https://as.example/errors/invalid_grant",
        }
    )
    assert error is not None
    assert (error.error, error.description, error.uri) == (
        "invalid_grant",
        "expired",
        "https://as.example/errors/invalid_grant",
    )


@pytest.mark.parametrize(
    "body",
    [RFC_TOKEN_RESPONSE, "<html>Bad Gateway</html>", {"error": {"message": "x"}}, {"error": ""}],
)
def test_parse_error_response_returns_none_for_other_bodies(body: object) -> None:
    assert parse_error_response(body) is None  # type: ignore[arg-type]
