"""``/v1/themes`` and the theme stylesheets, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import httpx

from tests.support.api_calls import assert_problem, user_token
from tests.support.app import Api
from tests.support.wizard_steps import mint_code, two_slot_solution

HOSTILE_CSS = "body { color: #123456; }\n</style><script>alert(1)</script>\n"
LOGO = "https://cdn.example.test/acme.png"


def put_theme(api: Api, key: str = "acme", **body: object) -> httpx.Response:
    return api.call(
        "PUT", f"/v1/themes/{key}", json={"title": "Acme Integrations", "logo_url": LOGO} | body
    )


def test_a_theme_is_created_replaced_read_and_deleted(api: Api) -> None:
    created = put_theme(api, css="body { color: red; }")
    assert created.status_code == 201, created.text
    assert created.json()["stylesheet_url"].startswith(api.url + "/external/themes/")
    replaced = put_theme(api, title="Acme", css="")
    assert replaced.status_code == 200
    assert replaced.json()["stylesheet_url"] is None
    read = api.call("GET", "/v1/themes/acme").json()
    assert (read["title"], read["logo_url"], read["css"]) == ("Acme", LOGO, "")
    assert [theme["key"] for theme in api.call("GET", "/v1/themes").json()] == ["acme"]
    assert api.call("DELETE", "/v1/themes/acme").status_code == 204
    assert_problem(api.call("GET", "/v1/themes/acme"), 404, "not_found")


def test_bad_themes_are_refused_with_the_field_named(api: Api) -> None:
    http_logo = assert_problem(put_theme(api, logo_url="http://cdn.example.test/a.png"), 422)
    assert "logo_url must be an https URL" in http_logo["detail"]
    huge = assert_problem(put_theme(api, css="a{}" * 30_000), 422)
    assert "css is longer than 64 KiB" in huge["detail"]
    bad_key = assert_problem(put_theme(api, key="no%20spaces"), 422)
    assert "theme key" in bad_key["detail"]
    token = user_token(api, "user-1")
    forbidden = api.call("PUT", "/v1/themes/acme", token=token, json={"title": "x"})
    assert_problem(forbidden, 403, "forbidden")


def test_the_css_is_served_as_its_own_stylesheet_and_the_pages_show_the_theme(api: Api) -> None:
    assert put_theme(api, css=HOSTILE_CSS).status_code == 201
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    page = httpx.get(f"{api.url}/external/solutions/acme/{solution_id}?code={code}", timeout=10)
    assert page.status_code == 200, page.text
    assert '<span class="brand-title">Acme Integrations</span>' in page.text
    assert f'<img class="brand-logo" src="{LOGO}" alt="">' in page.text
    assert "alert(1)" not in page.text  # never inlined
    found = re.search(r'<link rel="stylesheet" href="(/external/themes/[^"]+)">', page.text)
    assert found, page.text
    css = httpx.get(api.url + found.group(1).replace("&amp;", "&"), timeout=10)
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["x-content-type-options"] == "nosniff"
    assert css.text == HOSTILE_CSS
    missing = httpx.get(f"{api.url}/external/themes/00000000-0000-0000-0000-000000000000.css")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/css")


def test_the_default_theme_needs_no_configuration(api: Api) -> None:
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    page = httpx.get(f"{api.url}/external/solutions/default/{solution_id}?code={code}", timeout=10)
    assert page.status_code == 200
    assert '<span class="brand-title">Connect your accounts</span>' in page.text
    assert "/external/themes/" not in page.text


def test_the_connect_page_the_wizard_opens_shows_its_theme(api: Api) -> None:
    assert put_theme(api, css="body { color: #123456; }").status_code == 201
    solution_id = two_slot_solution(api)
    code = mint_code(api)
    url = f"{api.url}/external/solutions/acme/{solution_id}?code={code}&step=source"
    with httpx.Client(timeout=10, follow_redirects=True) as client:
        started = client.post(url, data={"action": "connect", "step": "source"})
        assert started.status_code == 200, started.text  # followed to the connect page
        assert str(started.url).startswith(api.url + "/connect/")
        assert '<span class="brand-title">Acme Integrations</span>' in started.text
        assert '<link rel="stylesheet" href="/external/themes/' in started.text
