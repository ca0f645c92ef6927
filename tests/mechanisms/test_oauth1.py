"""The ``oauth1`` mechanism: RFC 5849's published examples reproduced by our signer, and the full
OAuth 1.0a flow against a loopback provider that verifies every signature with Authlib."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from urllib.request import parse_http_list, parse_keqv_list

import httpx
import pytest
from authlib.oauth1.rfc5849 import client_auth
from authlib.oauth1.rfc5849.signature import (
    construct_base_string,
    generate_signature_base_string,
    hmac_sha1_signature,
)
from authlib.oauth1.rfc5849.wrapper import OAuth1Request
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authbridge import errors
from authbridge.connectors.models import OAuth1Definition, parse_definition
from authbridge.http import OutboundClient
from authbridge.mechanisms import ClientConfig, Context, get_mechanism
from authbridge.mechanisms.oauth1 import OAuth1Mechanism, OAuth1Signer, OAuth1Start
from tests.support.loopback import serve
from tests.support.oauth1_provider import PROFILE, OAuth1Provider

pytestmark = pytest.mark.anyio

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
CALLBACK = "http://127.0.0.1:9/auth/photos/callback"
# RFC 5849 §1.2 (and OAuth Core 1.0 Appendix A): the photos.example.net example.
CONSUMER_KEY, CONSUMER_SECRET = "dpf43f3p2l4k3l03", "kd94hf93k423kf44"
ACCESS_TOKEN, ACCESS_SECRET = "nnch734d00sl2jdk", "pfkkdhi9sl3r4s00"
mechanism = OAuth1Mechanism()


def header_params(authorization: str) -> dict[str, str]:
    scheme, _, rest = authorization.partition(" ")
    assert scheme == "OAuth"
    return {key: unquote(value) for key, value in parse_keqv_list(parse_http_list(rest)).items()}


def fix_nonce(monkeypatch: pytest.MonkeyPatch, nonce: str, timestamp: str) -> None:
    monkeypatch.setattr(client_auth, "generate_nonce", lambda: nonce)
    monkeypatch.setattr(client_auth, "generate_timestamp", lambda: timestamp)


def signed(auth: httpx.Auth, request: httpx.Request) -> httpx.Request:
    return next(auth.sync_auth_flow(request))


def photos_definition(base: str = "https://photos.example.net", **extra: Any) -> OAuth1Definition:
    raw: dict[str, Any] = {
        "requestRequestToken": f"{base}/initiate",
        "authUrl": f"{base}/authorize?name=AuthBridge",
        "requestAccessToken": f"{base}/token",
        **extra,
    }
    definition = parse_definition("oauth", raw)
    assert isinstance(definition, OAuth1Definition)
    return definition


# --- RFC 5849's published examples ---------------------------------------------------------


def test_signs_the_photos_resource_request_of_the_oauth_core_appendix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the example is plain http
    fix_nonce(monkeypatch, "kllo9940pd9333jh", "1191242096")
    auth = mechanism.sign(
        photos_definition(),
        ClientConfig(consumer_key=CONSUMER_KEY, consumer_secret=CONSUMER_SECRET),
        {"access_token": ACCESS_TOKEN, "access_token_secret": ACCESS_SECRET},
    )
    request = signed(
        auth,
        httpx.Request("GET", "http://photos.example.net/photos?file=vacation.jpg&size=original"),
    )
    params = header_params(request.headers["Authorization"])
    assert params["oauth_signature"] == "tR3+Ty81lMeYAr/Fid0kMTYa/WM="
    assert params["oauth_token"] == ACCESS_TOKEN
    assert params["oauth_consumer_key"] == CONSUMER_KEY
    assert "file" not in params
    assert request.url.params["file"] == "vacation.jpg"


def _rfc_signature(request: httpx.Request, consumer: str, token_secret: str | None) -> str:
    """Recompute the signature of a signed request from its own parameters (server side)."""
    parsed = OAuth1Request(
        request.method, str(request.url), request.content.decode(), request.headers
    )
    base = generate_signature_base_string(parsed)
    return str(hmac_sha1_signature(base, consumer, token_secret))


def test_reproduces_the_section_1_2_flow_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    # §1.2's printed signatures cover its parameters as listed (no oauth_version): Authlib's
    # signature functions reproduce them exactly.
    initiate = [
        ("oauth_consumer_key", CONSUMER_KEY),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131200"),
        ("oauth_nonce", "wIjqoS"),
        ("oauth_callback", "http://printer.example.com/ready"),
    ]
    base = construct_base_string("POST", "https://photos.example.net/initiate", initiate)
    assert hmac_sha1_signature(base, CONSUMER_SECRET, None) == "74KNZJeDHnMBp0EMJ9ZHt/XKycU="
    photos = [
        ("oauth_consumer_key", CONSUMER_KEY),
        ("oauth_token", ACCESS_TOKEN),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131202"),
        ("oauth_nonce", "chapoH"),
        ("file", "vacation.jpg"),
        ("size", "original"),
    ]
    base = construct_base_string("GET", "http://photos.example.net/photos", photos)
    assert hmac_sha1_signature(base, CONSUMER_SECRET, ACCESS_SECRET) == (
        "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    )
    # Our signer sends §1.2's requests with its values, and the provider-side recomputation
    # agrees with the signature it sent.
    fix_nonce(monkeypatch, "wIjqoS", "137131200")
    auth = OAuth1Signer(
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        callback_url="http://printer.example.com/ready",
    )
    request = signed(auth, httpx.Request("POST", "https://photos.example.net/initiate"))
    params = header_params(request.headers["Authorization"])
    assert params["oauth_callback"] == "http://printer.example.com/ready"
    assert params["oauth_signature"] == _rfc_signature(request, CONSUMER_SECRET, None)
    fix_nonce(monkeypatch, "walatlh", "137131201")
    auth = OAuth1Signer(
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        token="hh5s93j4hdidpola",
        token_secret="hdhd0244k9j7ao03",
        verifier="hfdp7dh39dks9884",
    )
    request = signed(auth, httpx.Request("POST", "https://photos.example.net/token"))
    params = header_params(request.headers["Authorization"])
    assert (params["oauth_token"], params["oauth_verifier"]) == (
        "hh5s93j4hdidpola",
        "hfdp7dh39dks9884",
    )
    assert params["oauth_signature"] == _rfc_signature(request, CONSUMER_SECRET, "hdhd0244k9j7ao03")


RFC_3_4_1_BASE_STRING = (
    "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
    "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
    "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
    "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
    "9d7dh3k39sjv7"
)


def test_signature_base_string_of_section_3_4_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    fix_nonce(monkeypatch, "7d8f3e4a", "137131201")
    auth = OAuth1Signer(
        consumer_key="9djdj82h48djs9d2",
        consumer_secret="j49sk3j29djd",
        token="kkk9d7dh3k39sjv7",
        token_secret="dh893hdasih9",
    )
    request = signed(
        auth,
        httpx.Request(
            "POST",
            "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            content=b"c2&a3=2+q",
        ),
    )
    assert request.content == b"c2&a3=2+q"
    parsed = OAuth1Request("POST", str(request.url), request.content.decode(), request.headers)
    # Authlib always sends oauth_version=1.0 (optional in RFC 5849 §3.1); without it the base
    # string is exactly the RFC's.
    with_version = generate_signature_base_string(parsed)
    assert with_version.replace("%26oauth_version%3D1.0", "") == RFC_3_4_1_BASE_STRING
    params = header_params(request.headers["Authorization"])
    assert params["oauth_signature"] == hmac_sha1_signature(
        with_version, "j49sk3j29djd", "dh893hdasih9"
    )


# --- the full flow against the loopback provider -------------------------------------------


@pytest.fixture
def provider() -> OAuth1Provider:
    return OAuth1Provider()


@pytest.fixture
def base_url(provider: OAuth1Provider) -> Iterator[str]:
    with serve(provider.app) as url:
        yield url


def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def context_for(client: OutboundClient, secret: str = CONSUMER_SECRET) -> Context:
    return Context(
        http=client,
        now=NOW,
        config=ClientConfig(consumer_key=CONSUMER_KEY, consumer_secret=secret),
        callback_url=CALLBACK,
    )


def full_definition(base_url: str, method: str = "HMAC-SHA1", **extra: Any) -> OAuth1Definition:
    return photos_definition(
        base_url,
        requestProfileInfo=f"{base_url}/me",
        accountNameFromProfileInfo="name",
        validateAccessToken=f"{base_url}/validate",
        signatureMethod=method,
        **extra,
    )


@pytest.mark.parametrize("method", ["HMAC-SHA1", "RSA-SHA1", "PLAINTEXT"])
async def test_full_flow(
    method: str, provider: OAuth1Provider, base_url: str, client: OutboundClient
) -> None:
    secret = CONSUMER_SECRET
    if method == "RSA-SHA1":
        secret, public = rsa_pair()
        provider.add_consumer(CONSUMER_KEY, rsa_public_key=public)
    else:
        provider.add_consumer(CONSUMER_KEY, CONSUMER_SECRET)
    definition = full_definition(base_url, method)
    context = context_for(client, secret)
    assert isinstance(get_mechanism("oauth1"), OAuth1Mechanism)

    start = await mechanism.start(definition, context)
    assert start.request_token in provider.request_tokens
    query = parse_qs(urlsplit(start.url).query)
    assert query == {"name": ["AuthBridge"], "oauth_token": [start.request_token]}
    assert start.url.startswith(f"{base_url}/authorize?")
    initiate = provider.received[0]
    assert initiate.oauth_params["oauth_callback"] == CALLBACK
    assert initiate.oauth_params["oauth_signature_method"] == method

    verifier = provider.authorize(start.request_token)
    result = await mechanism.complete(
        definition,
        context,
        request_token=start.request_token,
        request_token_secret=start.request_token_secret,
        oauth_token=start.request_token,
        oauth_verifier=verifier,
    )
    assert result.account_name == PROFILE["name"]
    assert result.profile == PROFILE
    assert set(result.credentials) == {"access_token", "access_token_secret"}
    assert result.credentials["access_token"] in provider.access_tokens
    assert [r.path for r in provider.received] == ["/initiate", "/token", "/me", "/validate"]
    assert all(r.oauth_params["oauth_signature_method"] == method for r in provider.received)
    assert provider.received[1].oauth_params["oauth_verifier"] == verifier

    # The signer a later proxy uses.
    auth = mechanism.sign(definition, context.config, result.credentials)
    response = await client.get(f"{base_url}/me", auth=auth)
    assert response.status_code == 200, response.text
    assert response.json() == PROFILE


async def test_a_bad_consumer_secret_is_refused_by_the_provider_without_echoing_it(
    provider: OAuth1Provider, base_url: str, client: OutboundClient
) -> None:
    provider.add_consumer(CONSUMER_KEY, CONSUMER_SECRET)
    wrong = "not-the-consumer-secret"
    with pytest.raises(errors.CredentialsRejected) as caught:
        await mechanism.start(full_definition(base_url), context_for(client, wrong))
    assert caught.value.status_code == 401
    assert "signature" in caught.value.message.lower()
    assert wrong not in caught.value.message


async def start_and_authorize(
    provider: OAuth1Provider, definition: OAuth1Definition, context: Context
) -> tuple[OAuth1Start, str]:
    start = await mechanism.start(definition, context)
    return start, provider.authorize(start.request_token)


async def test_a_callback_for_another_request_token_is_refused(
    provider: OAuth1Provider, base_url: str, client: OutboundClient
) -> None:
    provider.add_consumer(CONSUMER_KEY, CONSUMER_SECRET)
    definition = full_definition(base_url)
    context = context_for(client)
    start, verifier = await start_and_authorize(provider, definition, context)
    with pytest.raises(errors.ProviderError, match="oauth_token"):
        await mechanism.complete(
            definition,
            context,
            request_token=start.request_token,
            request_token_secret=start.request_token_secret,
            oauth_token="someone-elses-token",
            oauth_verifier=verifier,
        )
    assert [r.path for r in provider.received] == ["/initiate"]


async def test_a_wrong_verifier_fails_with_the_providers_message(
    provider: OAuth1Provider, base_url: str, client: OutboundClient
) -> None:
    provider.add_consumer(CONSUMER_KEY, CONSUMER_SECRET)
    definition = full_definition(base_url)
    context = context_for(client)
    start, _ = await start_and_authorize(provider, definition, context)
    with pytest.raises(errors.ProviderError) as caught:
        await mechanism.complete(
            definition,
            context,
            request_token=start.request_token,
            request_token_secret=start.request_token_secret,
            oauth_token=start.request_token,
            oauth_verifier="guessed-verifier",
        )
    message = caught.value.message
    assert message == "The verifier does not match the request token (verifier_invalid)"
    assert start.request_token_secret not in message
    assert CONSUMER_SECRET not in message


async def test_a_revoked_token_is_invalid(
    provider: OAuth1Provider, base_url: str, client: OutboundClient
) -> None:
    provider.add_consumer(CONSUMER_KEY, CONSUMER_SECRET)
    definition = full_definition(base_url)
    context = context_for(client)
    start, verifier = await start_and_authorize(provider, definition, context)
    result = await mechanism.complete(
        definition,
        context,
        request_token=start.request_token,
        request_token_secret=start.request_token_secret,
        oauth_token=start.request_token,
        oauth_verifier=verifier,
    )
    stored = context.replace(tokens=result.credentials)
    await mechanism.check_tokens(definition, stored)
    provider.revoke(str(result.credentials["access_token"]))
    with pytest.raises(errors.InvalidToken) as caught:
        await mechanism.check_tokens(definition, stored)
    assert caught.value.status_code == 401
    assert str(result.credentials["access_token_secret"]) not in caught.value.message


async def test_extra_token_parameters_become_the_profile_without_a_profile_request(
    provider: OAuth1Provider, base_url: str, client: OutboundClient
) -> None:
    provider.add_consumer(CONSUMER_KEY, CONSUMER_SECRET)
    provider.extra_token_params.update(user_id="6253282", screen_name="twitterapi")
    definition = photos_definition(
        base_url,
        authUrl=f"{base_url}/authorize?oauth_token={{{{requestToken}}}}",
        accountNameFromProfileInfo="screen_name",
    )
    context = context_for(client)
    start, verifier = await start_and_authorize(provider, definition, context)
    assert parse_qs(urlsplit(start.url).query) == {"oauth_token": [start.request_token]}
    result = await mechanism.complete(
        definition,
        context,
        request_token=start.request_token,
        request_token_secret=start.request_token_secret,
        oauth_token=start.request_token,
        oauth_verifier=verifier,
    )
    assert result.profile == {"user_id": "6253282", "screen_name": "twitterapi"}
    assert result.account_name == "twitterapi"
    assert set(result.credentials) == {"access_token", "access_token_secret"}


# --- callables, as in the reference's Trello example ----------------------------------------


async def test_callable_properties_use_the_context(client: OutboundClient) -> None:
    seen: dict[str, Any] = {}

    def request_request_token(context: Context) -> dict[str, str]:
        seen["consumer"] = context.consumerKey
        return {"requestToken": "req-1", "requestTokenSecret": "req-secret-1"}

    def auth_url(context: Context) -> str:
        return f"https://trello.test/1/OAuthAuthorizeToken?oauth_token={context.requestToken}"

    async def request_access_token(context: Context) -> dict[str, str]:
        seen["access"] = (context.requestToken, context.requestTokenSecret, context.oauthVerifier)
        return {"accessToken": "acc-1", "accessTokenSecret": "acc-secret-1"}

    def profile(context: Context) -> dict[str, str]:
        return {"id": f"member-of-{context.accessToken}"}

    def validate(context: Context) -> None:
        if context.accessToken != "acc-1":
            raise context.InvalidTokenError("Invalid token.")

    definition = parse_definition(
        "oauth",
        {
            "requestRequestToken": request_request_token,
            "authUrl": auth_url,
            "requestAccessToken": request_access_token,
            "requestProfileInfo": profile,
            "accountNameFromProfileInfo": "id",
            "validateAccessToken": validate,
        },
    )
    context = context_for(client)
    start = await mechanism.start(definition, context)
    assert start == OAuth1Start(
        url="https://trello.test/1/OAuthAuthorizeToken?oauth_token=req-1",
        request_token="req-1",
        request_token_secret="req-secret-1",
    )
    result = await mechanism.complete(
        definition,
        context,
        request_token="req-1",
        request_token_secret="req-secret-1",
        oauth_token="req-1",
        oauth_verifier="ver-1",
    )
    assert seen == {"consumer": CONSUMER_KEY, "access": ("req-1", "req-secret-1", "ver-1")}
    assert result.account_name == "member-of-acc-1"
    assert result.credentials == {"access_token": "acc-1", "access_token_secret": "acc-secret-1"}
    with pytest.raises(errors.InvalidToken, match="Invalid token"):
        await mechanism.check_tokens(definition, context.replace(tokens={"access_token": "old"}))


def test_secrets_stay_out_of_reprs() -> None:
    start = OAuth1Start(url="https://p.test/a", request_token="rt", request_token_secret="rts-9f")
    assert "rts-9f" not in repr(start)
    auth = OAuth1Signer(
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        token=ACCESS_TOKEN,
        token_secret=ACCESS_SECRET,
    )
    assert CONSUMER_SECRET not in repr(auth)
    assert ACCESS_SECRET not in repr(auth)


def test_an_insecure_provider_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    auth = OAuth1Signer(consumer_key=CONSUMER_KEY, consumer_secret=CONSUMER_SECRET)
    with pytest.raises(errors.ProviderError, match="https"):
        signed(auth, httpx.Request("GET", "http://photos.example.net/photos"))
