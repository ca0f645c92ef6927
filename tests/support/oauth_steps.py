"""The steps of an end user's OAuth sign-in through authbridge's connect page and the sandbox."""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from authbridge.connect.oauth import COOKIE_PREFIX


def query_of(url: str) -> dict[str, str]:
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"repeated query parameters in {url}"
    return dict(pairs)


def start(browser: httpx.Client, connect_url: str, **form: str) -> str:
    """Show the connect page and click its OAuth button; the provider URL it redirects to."""
    shown = browser.get(connect_url)
    assert shown.status_code == 200, shown.text
    assert f'action="{urlsplit(connect_url).path}/oauth"' in shown.text
    started = browser.post(connect_url + "/oauth", data=form)
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert any(name.startswith(COOKIE_PREFIX) for name in browser.cookies)
    return location


def consent(browser: httpx.Client, authorize_url: str, decision: str = "approve") -> str:
    """Answer the sandbox's OAuth 2 consent page; the callback URL it redirects to."""
    page = browser.get(authorize_url)
    assert page.status_code == 200, page.text
    assert "Approve" in page.text
    endpoint = urlunsplit(urlsplit(authorize_url)._replace(query=""))
    answer = browser.post(endpoint, data=query_of(authorize_url) | {"decision": decision})
    assert answer.status_code == 303, answer.text
    callback: str = answer.headers["location"]
    return callback


def result_of(response: httpx.Response) -> dict[str, Any]:
    """The ``{authId, connector}`` a success page hands to the host."""
    assert response.status_code == 200, response.text
    found = re.search(r'data-result="([^"]*)"', response.text)
    assert found, response.text
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result
