"""``bridge.context(auth_id)``: fresh credentials, an authenticating client, one refresh on 401."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest

from authbridge.sdk import AsyncClient, AsyncContext, Client, Context, Unavailable
from tests.sdk.conftest import RevokingProvider, connect_oauth
from tests.support.app import SANDBOX_KEY, Api


def new_profile(context: Context) -> dict[str, object]:
    """A trigger, as a host writes one."""
    profile: dict[str, object] = context.http.get("/me").raise_for_status().json()
    return profile


def test_the_context_holds_fresh_credentials_and_an_authenticating_client(
    bridge: Client, provider: RevokingProvider
) -> None:
    auth_id = connect_oauth(bridge, provider)

    with bridge.context(auth_id) as context:
        assert context.auth_id == auth_id
        assert context.connector == "sdk-oauth2"
        assert "refresh_token" not in context.auth
        assert new_profile(context) == provider.profile
        assert str(context.http.base_url).rstrip("/") == provider.url

    assert provider.me_tokens == [context.auth["access_token"]]
    assert provider.refreshes() == 0
    assert context.http.is_closed


def test_a_revoked_token_is_refreshed_once_and_the_request_retried(
    bridge: Client, provider: RevokingProvider
) -> None:
    auth_id = connect_oauth(bridge, provider)
    with bridge.context(auth_id) as context:
        old = context.auth["access_token"]
        provider.revoke(old)

        response = context.http.get("/me")

        assert response.status_code == 200
        assert response.json() == provider.profile
        assert provider.refreshes() == 1
        new = context.auth["access_token"]
        assert new != old
        assert provider.me_tokens == [old, new]
        assert [r.status_code for r in response.history] == [401]
        # later requests use the new token without refreshing again
        assert new_profile(context) == provider.profile
        assert provider.refreshes() == 1


def test_a_request_body_is_sent_again_on_the_retry(
    bridge: Client, provider: RevokingProvider, sdk_api: Api
) -> None:
    auth_id = connect_oauth(bridge, provider)
    with bridge.context(auth_id) as context:
        provider.revoke(context.auth["access_token"])
        sent: list[bytes] = []
        context.http.event_hooks["request"] = [lambda request: sent.append(request.read())]

        response = context.http.request("GET", "/me", json={"since": "2026-01-01"})

    assert response.status_code == 200
    assert sent == [b'{"since":"2026-01-01"}'] * 2


def test_a_streamed_body_is_not_retried(bridge: Client, provider: RevokingProvider) -> None:
    auth_id = connect_oauth(bridge, provider)
    with bridge.context(auth_id) as context:
        provider.revoke(context.auth["access_token"])

        response = context.http.request("GET", "/me", content=iter([b"chunk"]))

    assert response.status_code == 401
    assert provider.refreshes() == 0


def test_a_second_401_after_the_refresh_is_returned_not_retried_again(
    bridge: Client, provider: RevokingProvider
) -> None:
    auth_id = connect_oauth(bridge, provider)
    provider.refuse_all = True
    with bridge.context(auth_id) as context:
        response = context.http.get("/me")

    assert response.status_code == 401
    assert provider.refreshes() == 1
    assert len(provider.me_tokens) == 2
    assert provider.me_tokens[0] != provider.me_tokens[1]


def test_threads_that_all_get_a_401_share_one_refresh(
    bridge: Client, provider: RevokingProvider
) -> None:
    auth_id = connect_oauth(bridge, provider)
    with bridge.context(auth_id) as context:
        provider.revoke(context.auth["access_token"])
        with ThreadPoolExecutor(max_workers=5) as pool:
            answers = list(pool.map(lambda _: context.http.get("/me"), range(5)))

    assert [answer.status_code for answer in answers] == [200] * 5
    assert provider.refreshes() == 1


def test_a_refresh_the_provider_fails_raises_unavailable(
    bridge: Client, provider: RevokingProvider
) -> None:
    auth_id = connect_oauth(bridge, provider)
    with bridge.context(auth_id) as context:
        provider.revoke(context.auth["access_token"])
        provider.fail_next = (503, {"error": "temporarily_unavailable"})

        with pytest.raises(Unavailable) as unavailable:
            context.http.get("/me")

    assert unavailable.value.retry_after is not None


def test_an_api_key_goes_in_its_templated_header(bridge: Client, sandbox_url: str) -> None:
    auth = bridge.import_authentication(
        "sandbox-apikey", external_user_id="user-1", fields={"api_key": SANDBOX_KEY}
    )
    with bridge.context(auth.id) as context:
        assert str(context.http.base_url) == sandbox_url + "/apikey/"
        assert context.auth["api_key"] == SANDBOX_KEY
        profile = new_profile(context)

    assert profile["login"]  # the sandbox answers its profile only to a well-formed key


def test_a_401_for_credentials_that_cannot_be_refreshed_is_returned(bridge: Client) -> None:
    auth = bridge.import_authentication(
        "sandbox-apikey",
        external_user_id="user-1",
        fields={"api_key": "revoked-key"},
        validate=False,
    )
    with bridge.context(auth.id) as context:
        response = context.http.get("/me")

    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API key"}
    assert bridge.get_authentication(auth.id).status == "active"


@pytest.mark.anyio
async def test_async_context_refreshes_once_on_401(
    sdk_api: Api, provider: RevokingProvider
) -> None:
    async with AsyncClient(sdk_api.url, sdk_api.master_token) as bridge:
        with Client(sdk_api.url, sdk_api.master_token) as sync_bridge:
            auth_id = connect_oauth(sync_bridge, provider)
        async with bridge.context(auth_id) as context:
            assert isinstance(context, AsyncContext)
            old = context.auth["access_token"]
            provider.revoke(old)

            response = await context.http.get("/me")

            assert response.status_code == 200
            assert response.json() == provider.profile
            assert provider.refreshes() == 1
            assert provider.me_tokens == [old, context.auth["access_token"]]


@pytest.mark.anyio
async def test_async_second_401_is_returned(sdk_api: Api, provider: RevokingProvider) -> None:
    with Client(sdk_api.url, sdk_api.master_token) as sync_bridge:
        auth_id = connect_oauth(sync_bridge, provider)
    provider.refuse_all = True
    async with (
        AsyncClient(sdk_api.url, sdk_api.master_token) as bridge,
        bridge.context(auth_id) as context,
    ):
        response = await context.http.get("/me")

    assert response.status_code == 401
    assert provider.refreshes() == 1
    assert len(provider.me_tokens) == 2


@pytest.mark.anyio
async def test_concurrent_401s_share_one_refresh(sdk_api: Api, provider: RevokingProvider) -> None:
    with Client(sdk_api.url, sdk_api.master_token) as sync_bridge:
        auth_id = connect_oauth(sync_bridge, provider)
    answers: list[httpx.Response] = []
    async with (
        AsyncClient(sdk_api.url, sdk_api.master_token) as bridge,
        bridge.context(auth_id) as context,
    ):
        provider.revoke(context.auth["access_token"])

        async def fetch() -> None:
            answers.append(await context.http.get("/me"))

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(fetch)

    assert [answer.status_code for answer in answers] == [200] * 5
    assert provider.refreshes() == 1
