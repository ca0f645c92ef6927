"""Hostile field values against real loopback servers.

A legitimate server (127.0.0.1) stands for the provider the definition names; an "evil" server
(127.0.0.2, also reachable as ``evil.com`` and ``evil.test``) stands for wherever an attacker
would like the request to go. The policy allows loopback, so only the template rendering stands
between a value and the evil server: each value is either refused before any request, or the
one request that leaves reaches the legitimate server with the value encoded.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest

from authbridge.connectors.request_models import RequestSpec
from authbridge.errors import EgressDenied, TemplateError, UnsafeTemplateValue
from authbridge.http import EgressPolicy, OutboundClient
from tests.support.loopback import RecordingApp, port_of, serve

pytestmark = pytest.mark.anyio

CRLF = "x\r\nX-Evil: 1"
FULLWIDTH = "\uff45vil"  # fullwidth "e"
CYRILLIC = "\u0435vil"  # Cyrillic "e"


@dataclass
class Servers:
    legit: RecordingApp
    evil: RecordingApp
    port: int
    evil_port: int
    client: OutboundClient

    async def run(self, **fields: Any) -> Any:
        values = fields.pop("values")
        return await self.client.execute(RequestSpec.model_validate(fields), values)

    def assert_nothing_sent(self) -> None:
        assert self.legit.requests == []
        assert self.evil.requests == []


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[RecordingApp, int, RecordingApp, int]]:
    """The two servers, shared by the module's tests (each test starts with empty records)."""
    legit, evil = RecordingApp(), RecordingApp()
    with serve(legit) as legit_url, serve(evil, host="127.0.0.2") as evil_url:
        yield legit, port_of(legit_url), evil, port_of(evil_url)


@pytest.fixture
async def servers(
    running: tuple[RecordingApp, int, RecordingApp, int],
) -> AsyncIterator[Servers]:
    legit, port, evil, evil_port = running
    legit.requests.clear()
    evil.requests.clear()
    policy = EgressPolicy(
        allow_loopback=True,
        resolve={
            "*.freshdesk.test": "127.0.0.1",
            "evil.com": "127.0.0.2",
            "*.evil.com": "127.0.0.2",
            "evil.test": "127.0.0.2",
        },
    )
    async with OutboundClient(policy, timeout=5.0) as client:
        yield Servers(legit, evil, port, evil_port, client)


def agents_me(servers: Servers) -> str:
    return f"http://{{{{domain}}}}.freshdesk.test:{servers.port}/api/v2/agents/me"


HOST_ATTACKS = [
    "evil.com#",
    "evil.com/",
    "evil.com?",
    "evil.com\\",
    "a.b",
    "@evil.com",
    "x@evil.com",
    "evil.com:{evil_port}",
    "evil.test:{evil_port}/x#",
    "[::1]",
    "127.0.0.1",
    "169.254.169.254",
    "localhost.",
    FULLWIDTH,
    CYRILLIC,
    CRLF,
    "evil%2ecom",
    "",
]


@pytest.mark.parametrize("value", HOST_ATTACKS)
async def test_host_values_other_than_one_label_are_refused_before_sending(
    servers: Servers, value: str
) -> None:
    value = value.format(evil_port=servers.evil_port)
    with pytest.raises(UnsafeTemplateValue) as raised:
        await servers.run(url=agents_me(servers), values={"domain": value})
    assert raised.value.name == "domain"
    if value:
        assert value not in str(raised.value)
    servers.assert_nothing_sent()


@pytest.mark.parametrize("value", ["localhost", "acme", "evil", "xn--e1awd7f"])
async def test_a_label_only_ever_reaches_the_named_domain(servers: Servers, value: str) -> None:
    await servers.run(url=agents_me(servers), values={"domain": value})
    (received,) = servers.legit.requests
    assert received.headers["host"] == f"{value}.freshdesk.test:{servers.port}"
    assert received.path == "/api/v2/agents/me"
    assert servers.evil.requests == []


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("../admin", "/api/v2/agents/..%2Fadmin/me"),
        ("%2e%2e", "/api/v2/agents/%252e%252e/me"),
        ("..%2f..%2fadmin", "/api/v2/agents/..%252f..%252fadmin/me"),
        ("@evil.com", "/api/v2/agents/%40evil.com/me"),
        ("evil.com#", "/api/v2/agents/evil.com%23/me"),
        ("//evil.test/x", "/api/v2/agents/%2F%2Fevil.test%2Fx/me"),
        ("?admin=1", "/api/v2/agents/%3Fadmin%3D1/me"),
        (CRLF, "/api/v2/agents/x%0D%0AX-Evil%3A%201/me"),
        (CYRILLIC, "/api/v2/agents/%D0%B5vil/me"),
    ],
)
async def test_path_values_are_percent_encoded(servers: Servers, value: str, path: str) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/api/v2/agents/{{{{id}}}}/me"
    await servers.run(url=url, values={"id": value})
    (received,) = servers.legit.requests
    assert received.path == path
    assert received.query == ""
    assert "x-evil" not in received.headers
    assert servers.evil.requests == []


@pytest.mark.parametrize("value", ["..", ".", "..."])
async def test_dot_segments_are_refused(servers: Servers, value: str) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/api/v2/agents/{{{{id}}}}/me"
    with pytest.raises(UnsafeTemplateValue):
        await servers.run(url=url, values={"id": value})
    servers.assert_nothing_sent()


@pytest.mark.parametrize(
    ("value", "query"),
    [
        ("a&admin=1", "key=a%26admin%3D1&x=1"),
        ("#frag", "key=%23frag&x=1"),
        ("a b+c", "key=a+b%2Bc&x=1"),
        (CRLF, "key=x%0D%0AX-Evil%3A+1&x=1"),
        ("http://evil.test/", "key=http%3A%2F%2Fevil.test%2F&x=1"),
    ],
)
async def test_query_values_are_encoded(servers: Servers, value: str, query: str) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/api/v2/agents/me?key={{{{key}}}}&x=1"
    await servers.run(url=url, values={"key": value})
    (received,) = servers.legit.requests
    assert received.path == "/api/v2/agents/me"
    assert received.query == query
    assert parse_qs(received.query)["key"] == [value]
    assert "x-evil" not in received.headers
    assert servers.evil.requests == []


async def test_params_values_are_encoded(servers: Servers) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/api/v2/agents/me"
    await servers.run(url=url, params={"q": "{{q}}"}, values={"q": "a&admin=1#x"})
    (received,) = servers.legit.requests
    assert parse_qs(received.query) == {"q": ["a&admin=1#x"]}


@pytest.mark.parametrize("value", [CRLF, "x\nX-Evil: 1", "x\rX-Evil: 1", "nul\x00", CYRILLIC])
async def test_header_values_cannot_inject(servers: Servers, value: str) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/api/v2/agents/me"
    with pytest.raises(UnsafeTemplateValue):
        await servers.run(url=url, headers={"X-Api-Key": "{{key}}"}, values={"key": value})
    with pytest.raises(UnsafeTemplateValue):
        await servers.run(url=url, auth={"bearer": "{{key}}"}, values={"key": value})
    servers.assert_nothing_sent()


async def test_body_values_stay_inside_their_field(servers: Servers) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/login"
    hostile = '", "admin": true, "x": "'
    await servers.run(url=url, method="POST", json={"name": "{{name}}"}, values={"name": hostile})
    await servers.run(
        url=url, method="POST", data={"name": "{{name}}"}, values={"name": "a&admin=1"}
    )
    first, second = servers.legit.requests
    assert json.loads(first.body) == {"name": hostile}
    assert parse_qs(second.body.decode()) == {"name": ["a&admin=1"]}


FORM_HOSTILE = {"username": "alice&scope=admin", "password": "p&w=1 +%25#"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}],
    ids=["undeclared", "declared"],
)
async def test_a_raw_form_body_keeps_each_value_in_its_parameter(
    servers: Servers, headers: dict[str, str]
) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/oauth/token"
    template = "grant_type=password&username={{username}}&password={{password}}"
    await servers.run(url=url, method="POST", data=template, headers=headers, values=FORM_HOSTILE)
    (received,) = servers.legit.requests
    assert parse_qs(received.body.decode(), keep_blank_values=True) == {
        "grant_type": ["password"],
        "username": ["alice&scope=admin"],
        "password": ["p&w=1 +%25#"],
    }
    assert received.headers["content-type"].startswith("application/x-www-form-urlencoded")


JSON_HOSTILE = '", "admin": true, "x": "\\'


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/json"}, {"content-type": "application/vnd.api+json"}],
    ids=["undeclared", "json", "vendor-json"],
)
async def test_a_raw_json_body_keeps_each_value_in_its_member(
    servers: Servers, headers: dict[str, str]
) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/login"
    template = '{"name": "{{name}}", "note": "by {{name}}", "count": {{count}}, "tags": {{tags}}}'
    values = {"name": JSON_HOSTILE, "count": 3, "tags": ["a", "}"]}
    await servers.run(url=url, method="POST", data=template, headers=headers, values=values)
    (received,) = servers.legit.requests
    assert json.loads(received.body) == {
        "name": JSON_HOSTILE,
        "note": f"by {JSON_HOSTILE}",
        "count": 3,
        "tags": ["a", "}"],
    }
    assert "json" in received.headers["content-type"]


async def test_a_raw_xml_body_keeps_each_value_in_its_element(servers: Servers) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/login"
    hostile = "</user><admin>1</admin><user a='\"'>&amp;"
    template = '<login kind="{{name}}"><user>{{name}}</user></login>'
    headers = {"Content-Type": "application/xml"}
    await servers.run(
        url=url, method="POST", data=template, headers=headers, values={"name": hostile}
    )
    (received,) = servers.legit.requests
    login = ET.fromstring(received.body)
    assert [child.tag for child in login] == ["user"]
    assert login.get("kind") == hostile
    assert login.findtext("user") == hostile


@pytest.mark.parametrize("value", ["a&admin=1", "a b", "x\r\ny", '"}'])
async def test_a_raw_body_of_an_unknown_type_takes_only_plain_tokens(
    servers: Servers, value: str
) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/raw"
    headers = {"Content-Type": "text/plain"}
    with pytest.raises(UnsafeTemplateValue) as raised:
        await servers.run(
            url=url, method="PUT", data="token={{token}}", headers=headers, values={"token": value}
        )
    assert raised.value.name == "token"
    assert value not in str(raised.value)
    servers.assert_nothing_sent()
    await servers.run(
        url=url,
        method="PUT",
        data="token={{token}}",
        headers=headers,
        values={"token": "tok-1.x_y~"},
    )
    (received,) = servers.legit.requests
    assert received.body == b"token=tok-1.x_y~"


async def test_a_raw_json_template_that_is_not_json_is_a_definition_error(
    servers: Servers,
) -> None:
    url = f"http://acme.freshdesk.test:{servers.port}/login"
    with pytest.raises(TemplateError, match="definition is wrong"):
        await servers.run(url=url, method="POST", data='{"name": {{name}', values={"name": "x"})
    servers.assert_nothing_sent()


@pytest.mark.parametrize(
    "template",
    [
        "http://acme.freshdesk.test:{{port}}/",
        "{{scheme}}://acme.freshdesk.test/",
        "http://{{user}}@acme.freshdesk.test/",
    ],
)
async def test_placeholders_in_fixed_components_are_a_definition_error(
    servers: Servers, template: str
) -> None:
    values = {"port": servers.evil_port, "scheme": "http", "user": "evil.test:1"}
    with pytest.raises(TemplateError, match="definition is wrong"):
        await servers.run(url=template, values=values)
    servers.assert_nothing_sent()


@pytest.mark.parametrize("value", ["localhost", "2130706433", "0x7f000001", "metadata"])
async def test_a_whole_host_label_is_still_checked_where_it_resolves(
    servers: Servers, value: str
) -> None:
    policy = EgressPolicy(resolve={"metadata": "169.254.169.254"})
    async with OutboundClient(policy, timeout=2.0) as client:
        spec = RequestSpec(url=f"http://{{{{host}}}}:{servers.port}/api")
        with pytest.raises(EgressDenied):
            await client.execute(spec, {"host": value})
    servers.assert_nothing_sent()
