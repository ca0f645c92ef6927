"""Definition models: aliases, defaults, strictness."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from authbridge.connectors.models import (
    ApiKeyDefinition,
    OAuth1Definition,
    OAuth2Definition,
    PwdDefinition,
    parse_definition,
)
from authbridge.connectors.request_models import RequestSpec


def test_camel_case_keys_and_type_alias_port_over() -> None:
    definition = parse_definition(
        "apiKey",
        {
            "tokenType": "authentication-token",
            "auth": {"domain": {"type": "text", "name": "Domain"}, "apiKey": {"type": "text"}},
            "accountNameFromProfileInfo": "contact.email",
            "requestProfileInfo": "https://{{domain}}.example.com/me",
        },
    )
    assert isinstance(definition, ApiKeyDefinition)
    assert definition.account_name_from_profile_info == "contact.email"
    assert definition.request_profile_info == "https://{{domain}}.example.com/me"
    assert definition.token_type == "authentication-token"


def test_oauth_alias_means_oauth1() -> None:
    definition = parse_definition(
        "oauth",
        {
            "requestRequestToken": "https://x.example/request",
            "authUrl": "https://x.example/authorize?oauth_token={{request_token}}",
            "requestAccessToken": "https://x.example/access",
        },
    )
    assert isinstance(definition, OAuth1Definition)
    assert definition.signature_method == "HMAC-SHA1"


def test_request_spec_aliases_uri_qs_user_and_json_switch() -> None:
    spec = RequestSpec.model_validate(
        {
            "method": "get",
            "uri": "https://api.example.com/users/{{id}}",
            "qs": {"token": "{{token}}"},
            "auth": {"user": "{{key}}"},
            "json": True,
        }
    )
    assert spec.method == "GET"
    assert spec.url == "https://api.example.com/users/{{id}}"
    assert spec.params == {"token": "{{token}}"}
    assert spec.auth is not None
    assert spec.auth.model_dump() == {
        "username": "{{key}}",
        "password": "",
    }
    assert spec.json_body is None


def test_pwd_has_default_username_and_password_fields() -> None:
    definition = parse_definition("pwd", {"validate": "https://api.example.com/login"})
    assert isinstance(definition, PwdDefinition)
    assert list(definition.auth) == ["username", "password"]
    assert definition.auth["password"].is_secret
    assert not definition.auth["username"].is_secret


def test_pwd_requires_validate() -> None:
    with pytest.raises(ValidationError, match="validate"):
        parse_definition("pwd", {})


def test_oauth2_defaults_follow_the_reference() -> None:
    definition = parse_definition(
        "oauth2",
        {"authUrl": "https://p.example/authorize", "requestAccessToken": "https://p.example/t"},
    )
    assert isinstance(definition, OAuth2Definition)
    assert definition.scope_delimiter == ","
    assert definition.refresh_before_exp == 5
    assert definition.refresh_before_exp_units == "minutes"
    assert definition.pkce is True


def test_oauth2_scope_string_and_grant_requirements() -> None:
    definition = parse_definition(
        "oauth2",
        {
            "grantType": "client_credentials",
            "requestAccessToken": "https://p.example/t",
            "scope": "a b",
        },
    )
    assert isinstance(definition, OAuth2Definition)
    assert definition.scope == ("a b",)
    with pytest.raises(ValidationError, match="auth_url"):
        parse_definition("oauth2", {"requestAccessToken": "https://p.example/t"})


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        parse_definition("none", {"colour": "blue"})


def test_tooltips_are_sanitised() -> None:
    definition = parse_definition(
        "apiKey",
        {
            "auth": {
                "key": {
                    "tooltip": "Find it <b>here</b><script>alert(1)</script>"
                    '<a href="javascript:alert(1)" onclick="x()">docs</a>'
                }
            }
        },
    )
    assert isinstance(definition, ApiKeyDefinition)
    tooltip = definition.auth["key"].tooltip
    assert tooltip is not None
    assert "<b>here</b>" in tooltip
    assert "script" not in tooltip
    assert "javascript:" not in tooltip
    assert "onclick" not in tooltip


def test_select_fields_need_options_and_a_valid_default() -> None:
    with pytest.raises(ValidationError, match="options"):
        parse_definition("apiKey", {"auth": {"region": {"type": "select"}}})
    with pytest.raises(ValidationError, match="not one of the options"):
        parse_definition(
            "apiKey",
            {"auth": {"region": {"type": "select", "options": ["eu", "us"], "default": "ap"}}},
        )


def test_definitions_are_frozen() -> None:
    definition = parse_definition("pwd", {"validate": "https://api.example.com/login"})
    with pytest.raises(ValidationError):
        definition.validate_ = "https://elsewhere.example"  # type: ignore[misc]
