"""``/metrics`` needs a master token unless the server was started with public metrics."""

from __future__ import annotations

import httpx
import pytest

from authbridge import errors
from authbridge.api import create_app
from authbridge.runtime import Settings
from tests.support.api_calls import assert_problem, user_token
from tests.support.app import Api
from tests.support.loopback import serve


def test_metrics_need_a_master_token_by_default(api: Api) -> None:
    assert_problem(httpx.get(f"{api.url}/metrics"), 401, "unauthenticated")
    token = user_token(api, "user-1")
    assert_problem(api.call("GET", "/metrics", token=token), 403, "forbidden")
    served = api.call("GET", "/metrics")
    assert served.status_code == 200, served.text
    assert "authbridge_" in served.text


def test_public_metrics_are_served_without_a_token(api: Api) -> None:
    with serve(create_app(api.bridge, public_metrics=True)) as url:
        served = httpx.get(f"{url}/metrics")
    assert served.status_code == 200, served.text
    assert served.headers["content-type"].startswith("text/plain")


def test_the_switches_are_read_strictly() -> None:
    assert Settings.from_env({}).public_metrics is False
    assert Settings.from_env({"AUTHBRIDGE_PUBLIC_METRICS": "1"}).public_metrics is True
    assert Settings.from_env({"AUTHBRIDGE_GRAPHIQL": "1"}).graphql_introspection is True
    assert (
        Settings.from_env({"AUTHBRIDGE_GRAPHQL_INTROSPECTION": "0"}).graphql_introspection is False
    )
    with pytest.raises(errors.InvalidInput, match="AUTHBRIDGE_PUBLIC_METRICS must be 1"):
        Settings.from_env({"AUTHBRIDGE_PUBLIC_METRICS": "yes"})
