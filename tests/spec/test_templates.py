from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from authbridge.errors import MissingTemplateValue, TemplateError, UnsafeTemplateValue
from authbridge.spec.templates import (
    FORM_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    body_media_type,
    render_body,
    render_header,
    render_structure,
    render_text,
    render_url,
    render_value,
    template_names,
)

FRESHDESK = "https://{{domain}}.freshdesk.com/api/v2/agents/me"


def test_template_names_allow_whitespace_and_dots() -> None:
    names = template_names("{{a}} {{ b }} {{  profile.id\t}} {{a}} {{ not a name }}")
    assert names == {"a", "b", "profile.id"}


def test_render_text_substitutes_scalars_and_nested_values() -> None:
    values = {"name": "Ann", "count": 3, "flag": True, "profile": {"id": 42}}
    rendered = render_text("{{name}}/{{ count }}/{{flag}}/{{profile.id}}", values)
    assert rendered == "Ann/3/true/42"


def test_a_dotted_name_indexes_into_lists() -> None:
    values = {"profile": {"accounts": [{"base_uri": "https://na3.example"}]}}
    assert render_text("{{profile.accounts.0.base_uri}}", values) == "https://na3.example"
    with pytest.raises(MissingTemplateValue):
        render_text("{{profile.accounts.1.base_uri}}", values)


def test_render_text_prefers_a_literal_dotted_key() -> None:
    assert render_text("{{a.b}}", {"a.b": "flat", "a": {"b": "nested"}}) == "flat"


def test_render_text_missing_value_names_it() -> None:
    with pytest.raises(MissingTemplateValue) as raised:
        render_text("x {{ api_key }}", {})
    assert raised.value.name == "api_key"


def test_render_text_none_is_missing() -> None:
    with pytest.raises(MissingTemplateValue):
        render_text("{{token}}", {"token": None})


def test_render_text_missing_nested_value() -> None:
    with pytest.raises(MissingTemplateValue) as raised:
        render_text("{{profile.email}}", {"profile": {"id": 1}})
    assert raised.value.name == "profile.email"


def test_render_value_keeps_raw_values_for_a_whole_placeholder() -> None:
    values = {"n": 5, "obj": {"a": [1, 2]}, "nothing": None}
    assert render_value("{{n}}", values) == 5
    assert render_value(" {{ obj }} ", values) == {"a": [1, 2]}
    assert render_value("{{nothing}}", values) is None
    assert render_value("n={{n}}", values) == "n=5"


def test_render_structure_renders_nested_strings_and_keys() -> None:
    values = {"user": "ann", "limit": 10, "key_name": "token"}
    body = {"{{key_name}}": "{{user}}", "list": ["{{limit}}", "x-{{user}}", 7], "keep": None}
    assert render_structure(body, values) == {
        "token": "ann",
        "list": [10, "x-ann", 7],
        "keep": None,
    }


def test_render_header_substitutes_a_clean_value() -> None:
    assert render_header("Bearer {{token}}", {"token": "abc.def"}) == "Bearer abc.def"


@pytest.mark.parametrize(
    "value",
    ["x\r\nX-Evil: 1", "x\nX-Evil: 1", "x\rY", "nul\x00byte", "tab\tx", "del\x7f", "\u2028"],
)
def test_render_header_refuses_control_characters(value: str) -> None:
    with pytest.raises(UnsafeTemplateValue) as raised:
        render_header("Token {{api_key}}", {"api_key": value})
    assert raised.value.name == "api_key"
    assert value not in str(raised.value)


def test_render_header_refuses_non_ascii() -> None:
    with pytest.raises(UnsafeTemplateValue):
        render_header("{{api_key}}", {"api_key": "\uff4bey"})


def test_render_header_refuses_objects() -> None:
    with pytest.raises(TemplateError):
        render_header("{{api_key}}", {"api_key": {"a": 1}})


def test_render_url_fills_host_label_path_and_query() -> None:
    url = render_url(
        "https://{{domain}}.example.com:8443/users/{{user}}/items?q={{query}}&limit={{n}}#{{frag}}",
        {"domain": "acme-1", "user": "a b/c", "query": "x&y=z#w", "n": 5, "frag": "top part"},
    )
    assert url == (
        "https://acme-1.example.com:8443/users/a%20b%2Fc/items?q=x%26y%3Dz%23w&limit=5#top%20part"
    )


@pytest.mark.parametrize(
    "domain",
    [
        "evil.com#",
        "a.b",
        "@evil.com",
        "evil.com/",
        "[::1]",
        "127.0.0.1",
        "localhost.",
        "-acme",
        "acme-",
        "",
        "a" * 64,
        "\uff45vil",  # fullwidth e
        "\u0435vil",  # Cyrillic e
        "acme\n",
        "acme:80",
        "a%2eb",
    ],
)
def test_render_url_host_accepts_only_one_dns_label(domain: str) -> None:
    with pytest.raises(UnsafeTemplateValue) as raised:
        render_url(FRESHDESK, {"domain": domain})
    assert raised.value.name == "domain"
    if domain:
        assert domain not in str(raised.value)


@pytest.mark.parametrize("domain", ["localhost", "acme", "a" * 63, "xn--80ak6aa92e", "123"])
def test_render_url_host_accepts_a_label(domain: str) -> None:
    url = render_url(FRESHDESK, {"domain": domain})
    assert urlsplit(url).hostname == f"{domain}.freshdesk.com"


def test_render_url_whole_host_placeholder_takes_one_label() -> None:
    assert render_url("http://{{host}}/x", {"host": "localhost"}) == "http://localhost/x"
    with pytest.raises(UnsafeTemplateValue):
        render_url("http://{{host}}/x", {"host": "169.254.169.254"})


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("../admin", "..%2Fadmin"),
        ("%2e%2e", "%252e%252e"),
        ("a?b=c#d", "a%3Fb%3Dc%23d"),
        ("x y", "x%20y"),
        ("é", "%C3%A9"),
        ("...x", "...x"),
    ],
)
def test_render_url_percent_encodes_path_values(value: str, encoded: str) -> None:
    url = render_url("https://api.example.com/v1/{{id}}/me", {"id": value})
    assert url == f"https://api.example.com/v1/{encoded}/me"


@pytest.mark.parametrize("value", ["..", ".", "", "...."])
def test_render_url_refuses_dot_segments_in_path(value: str) -> None:
    with pytest.raises(UnsafeTemplateValue) as raised:
        render_url("https://api.example.com/v1/{{id}}/me", {"id": value})
    assert raised.value.name == "id"


def test_render_url_encodes_query_values() -> None:
    url = render_url("https://api.example.com/?key={{key}}&x=1", {"key": "a&admin=1 +#"})
    assert urlsplit(url).query == "key=a%26admin%3D1+%2B%23&x=1"
    assert urlsplit(url).hostname == "api.example.com"


@pytest.mark.parametrize(
    "template",
    [
        "{{scheme}}://api.example.com/",
        "https://api.example.com:{{port}}/",
        "https://{{user}}@api.example.com/",
        "https://user:{{password}}@api.example.com/",
        "https://{{domain}}:{{port}}/",
    ],
)
def test_render_url_refuses_placeholders_in_fixed_components(template: str) -> None:
    values = {"scheme": "https", "port": "80", "user": "u", "password": "p", "domain": "acme"}
    with pytest.raises(TemplateError, match="definition is wrong"):
        render_url(template, values)


@pytest.mark.parametrize(
    "template", ["ftp://example.com/{{x}}", "/relative/{{x}}", "{{base}}/path", "javascript:x"]
)
def test_render_url_requires_an_absolute_http_url(template: str) -> None:
    with pytest.raises(TemplateError):
        render_url(template, {"x": "1", "base": "https://example.com"})


@pytest.mark.parametrize("value", [None, {"a": 1}, [1], object()])
def test_render_url_refuses_non_scalar_values(value: object) -> None:
    with pytest.raises(TemplateError):
        render_url("https://api.example.com/{{v}}", {"v": value})


def test_render_url_keeps_literal_userinfo_port_and_ipv6_host() -> None:
    assert render_url("http://u:p@[::1]:8080/{{x}}", {"x": "y"}) == "http://u:p@[::1]:8080/y"


def test_render_url_missing_value() -> None:
    with pytest.raises(MissingTemplateValue):
        render_url(FRESHDESK, {})


def test_render_url_accepts_bool_and_numbers() -> None:
    url = render_url(
        "https://api.example.com/{{n}}?on={{on}}&f={{f}}", {"n": 1, "on": True, "f": 0.5}
    )
    assert url == "https://api.example.com/1?on=true&f=0.5"


def test_shape_check_catches_a_changed_host_or_port() -> None:
    from authbridge.spec.templates import _check_shape

    _check_shape("https://acme.example.com:8443/x", "https", "acme.example.com", "8443")
    with pytest.raises(TemplateError):
        _check_shape("https://evil.com/#.example.com", "https", "acme.example.com", "")
    with pytest.raises(TemplateError):
        _check_shape("https://acme.example.com:1/", "https", "acme.example.com", "")
    with pytest.raises(TemplateError):
        _check_shape("https://acme.example.com:99999/", "https", "acme.example.com", "")


@pytest.mark.parametrize(
    ("content_type", "template", "expected"),
    [
        (None, "a={{a}}&b=1", FORM_MEDIA_TYPE),
        (None, '  {"a": "{{a}}"}', JSON_MEDIA_TYPE),
        (None, "[{{a}}]", JSON_MEDIA_TYPE),
        ("Application/JSON; charset=utf-8", "a={{a}}", JSON_MEDIA_TYPE),
        ("text/plain", '{"a": 1}', "text/plain"),
        ("  ", "a=1", FORM_MEDIA_TYPE),
    ],
)
def test_a_raw_body_is_filled_for_its_declared_type_else_by_its_shape(
    content_type: str | None, template: str, expected: str
) -> None:
    assert body_media_type(content_type, template) == expected


def test_render_body_form_encodes_values_and_leaves_the_template_as_written() -> None:
    values = {"u": "alice&scope=admin", "p": "a b+c%", "n": 3, "flag": True}
    rendered = render_body("x=%20&u={{u}}&p={{p}}&n={{n}}&f={{flag}}", values, FORM_MEDIA_TYPE)
    assert rendered == "x=%20&u=alice%26scope%3Dadmin&p=a+b%2Bc%25&n=3&f=true"


def test_render_body_json_escapes_inside_strings_and_writes_json_outside() -> None:
    values = {"s": 'a"b\\c\n\u2028', "n": 2.5, "obj": {"k": [1, None]}, "t": "x"}
    template = '{"s": "<{{s}}>", "n": {{n}}, "obj": {{obj}}, "t": {{t}}, "lit": "{\\"{{t}}"}'
    rendered = render_body(template, values, "application/problem+json")
    assert json.loads(rendered) == {
        "s": '<a"b\\c\n\u2028>',
        "n": 2.5,
        "obj": {"k": [1, None]},
        "t": "x",
        "lit": '{"x',
    }


def test_render_body_json_refuses_a_placeholder_escaped_by_the_template() -> None:
    with pytest.raises(TemplateError, match="backslash"):
        render_body('{"a": "\\{{a}}"}', {"a": "x"}, JSON_MEDIA_TYPE)


def test_render_body_xml_escapes_markup_and_refuses_what_xml_cannot_hold() -> None:
    rendered = render_body("<a b='{{v}}'>{{v}}</a>", {"v": "<x>&'\""}, "text/xml")
    assert rendered == "<a b='&lt;x&gt;&amp;&apos;&quot;'>&lt;x&gt;&amp;&apos;&quot;</a>"
    with pytest.raises(UnsafeTemplateValue) as raised:
        render_body("<a>{{v}}</a>", {"v": "nul\x00"}, "application/soap+xml")
    assert raised.value.name == "v"
