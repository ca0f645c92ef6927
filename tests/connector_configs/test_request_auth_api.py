"""``GET /v1/connectors/{key}/request-auth``: the request rules of a connector without per-user
auth, rendered from the host's configuration and variant, for the host (master token) only."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from authbridge.connectors.registry import Registry
from tests.support.api_calls import assert_problem, user_token
from tests.support.app import Api

SHARED_KEY = "host-shared-key-7f3a9c"


@pytest.fixture
def internal(api: Api, tmp_path: Path) -> Api:
    """``acme-internal``: ``type: none`` with a setting and two variants (hosts)."""
    folder = tmp_path / "no-auth" / "acme" / "internal"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text(
        dedent(
            """\
            type: none
            definition:
              settings:
                api_key: {type: password, name: Shared API key}
              request:
                base_url: https://{{region}}.acme.example/api
                headers: {X-API-Key: "{{api_key}}"}
            """
        )
    )
    (folder / "manifest.yaml").write_text(
        dedent(
            """\
            key: acme-internal
            variants:
              eu: {values: {region: eu}}
              us: {values: {region: us}}
            """
        )
    )
    added = Registry.load([tmp_path / "no-auth"], include_catalog=False)
    api.bridge.registry = Registry([*api.bridge.registry, *added])
    return api


def test_the_rules_are_rendered_from_the_configuration_of_the_variant(internal: Api) -> None:
    for variant in ("eu", "us"):
        body = {"settings": {"api_key": f"{SHARED_KEY}-{variant}"}}
        stored = internal.call(
            "PUT", "/v1/connector-configs/acme-internal", params={"variant": variant}, json=body
        )
        assert stored.status_code == 200, stored.text

    default = internal.call("GET", "/v1/connectors/acme-internal/request-auth")
    us = internal.call("GET", "/v1/connectors/acme-internal/request-auth", params={"variant": "us"})

    assert default.status_code == 200, default.text
    assert default.json() == {
        "base_url": "https://eu.acme.example/api",
        "headers": {"X-API-Key": f"{SHARED_KEY}-eu"},
        "params": {},
        "basic": None,
        "oauth1": None,
        "expires_at": None,
    }
    assert us.json()["base_url"] == "https://us.acme.example/api"
    assert us.json()["headers"] == {"X-API-Key": f"{SHARED_KEY}-us"}
    events = internal.call(
        "GET", "/v1/audit-events", params={"action": "connector.request_auth_read"}
    )
    details = [(event["target_id"], event["detail"]) for event in events.json()["items"]]
    assert details == [
        ("acme-internal", {"version": "1", "variant": "eu"}),
        ("acme-internal", {"version": "1", "variant": "us"}),
    ]


def test_only_the_host_reads_them(internal: Api) -> None:
    token = user_token(internal, "alice")
    refused = internal.call("GET", "/v1/connectors/acme-internal/request-auth", token=token)
    assert_problem(refused, 403, "forbidden")


def test_what_cannot_be_rendered_is_a_clear_4xx(internal: Api) -> None:
    unset = internal.call("GET", "/v1/connectors/acme-internal/request-auth")
    assert "api_key" in assert_problem(unset, 422, "missing_template_value")["detail"]
    per_user = internal.call("GET", "/v1/connectors/sandbox-apikey/request-auth")
    problem = assert_problem(per_user, 422, "invalid_input")
    assert "each end user connects an account" in problem["detail"]
    unknown = internal.call("GET", "/v1/connectors/acme-nothing/request-auth")
    assert_problem(unknown, 404)
    variant = internal.call(
        "GET", "/v1/connectors/acme-internal/request-auth", params={"variant": "mars"}
    )
    assert "variants: eu, us" in assert_problem(variant, 422, "invalid_input")["detail"]
