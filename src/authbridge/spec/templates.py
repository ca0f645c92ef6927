"""Safe rendering of ``{{name}}`` templates in request specs.

A placeholder is ``{{ name }}`` (whitespace allowed); a dotted name (``profile_info.id``) looks
into nested mappings. Each renderer knows where its result goes and refuses a value that would
change the request's shape there:

* :func:`render_url` parses the *template* first and fills each URL component on its own: a
  value never changes the scheme, host or port, except that a host placeholder may be filled by
  exactly one DNS label; anywhere else it is percent-encoded.
* :func:`render_header` refuses control characters (no header injection).
* :func:`render_body` fills a raw body template in the syntax of its media type: values are
  form-encoded in a form, JSON-escaped in JSON, escaped in XML, so a value never adds a
  parameter, member or element; a body of another type takes only plain tokens.
* :func:`render_text`, :func:`render_value` and :func:`render_structure` fill values that a
  library encodes afterwards (form fields, JSON documents).

Error messages name the value, never show it. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, quote_plus, urlsplit
from xml.sax.saxutils import escape as xml_escape

from authbridge.errors import MissingTemplateValue, TemplateError, UnsafeTemplateValue

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")
DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
_URL = re.compile(r"(?P<scheme>[^:/?#]+):(?://(?P<authority>[^/?#]*))?(?P<rest>.*)", re.DOTALL)
_SCHEMES = frozenset({"http", "https"})
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
JSON_MEDIA_TYPE = "application/json"
#: What a value may hold in a raw body whose syntax authbridge does not know (``text/plain``).
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9._~-]*", re.ASCII)
#: Characters XML 1.0 does not allow at all, escaped or not.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

Values = Mapping[str, object]


def template_names(template: str) -> set[str]:
    """The names the placeholders of ``template`` refer to."""
    return {match.group(1) for match in PLACEHOLDER.finditer(template)}


def _find(values: Values, name: str) -> object:
    """The value ``name`` refers to (possibly None); a dotted name looks into mappings, and
    into lists by index (``accounts.0.base_uri``)."""
    if name in values:
        return values[name]
    current: object = values
    for part in name.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise MissingTemplateValue(name)
    return current


def lookup(values: Values, name: str) -> object:
    """The value a placeholder's ``name`` refers to; :class:`MissingTemplateValue` when none."""
    found = _find(values, name)
    if found is None:
        raise MissingTemplateValue(name)
    return found


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _scalar(name: str, value: object) -> str:
    """A value that may stand in a URL or a header: a string, number or boolean."""
    if not isinstance(value, str | int | float | bool):
        raise TemplateError(f"the value of '{name}' must be a string or a number here")
    return _as_text(value)


def _substitute(template: str, values: Values, fill: Callable[[str, object], str]) -> str:
    return PLACEHOLDER.sub(
        lambda match: fill(match.group(1), lookup(values, match.group(1))), template
    )


def render_text(template: str, values: Values) -> str:
    """Plain substitution, for bodies: numbers as digits, booleans as JSON, objects as JSON."""
    return _substitute(template, values, lambda _name, value: _as_text(value))


def render_value(template: str, values: Values) -> object:
    """The raw value when ``template`` is one placeholder (keeps numbers and objects), else text."""
    whole = PLACEHOLDER.fullmatch(template.strip())
    if whole is not None:
        return _find(values, whole.group(1))
    return render_text(template, values)


def render_structure(obj: object, values: Values) -> object:
    """Render every string inside nested dicts and lists (keys are rendered as text)."""
    if isinstance(obj, str):
        return render_value(obj, values)
    if isinstance(obj, Mapping):
        return {
            render_text(key, values) if isinstance(key, str) else key: render_structure(
                item, values
            )
            for key, item in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [render_structure(item, values) for item in obj]
    return obj


def body_media_type(content_type: str | None, template: str) -> str:
    """The media type a raw body template is filled for: the declared ``Content-Type``'s
    (lowercase, without parameters), else JSON for a template that starts like a JSON object
    or array, else a form."""
    if content_type is not None and content_type.strip():
        return content_type.partition(";")[0].strip().lower()
    return JSON_MEDIA_TYPE if template.lstrip()[:1] in ("{", "[") else FORM_MEDIA_TYPE


def _is_json(media_type: str) -> bool:
    return media_type in (JSON_MEDIA_TYPE, "text/json") or media_type.endswith("+json")


def _is_xml(media_type: str) -> bool:
    return media_type in ("application/xml", "text/xml") or media_type.endswith("+xml")


def render_body(template: str, values: Values, media_type: str) -> str:
    """Fill a raw body template so that no value changes the body's structure.

    * a form (``application/x-www-form-urlencoded``): each value is form-encoded as the
      mapping form of ``data`` encodes it (``a&scope=admin`` becomes ``a%26scope%3Dadmin``);
    * JSON (``application/json``, ``text/json``, ``+json``): inside a string literal a value
      is escaped as JSON string content; a placeholder outside one is replaced by the value
      as JSON (a string quoted, numbers, booleans and objects as they are); the result must
      parse;
    * XML (``application/xml``, ``text/xml``, ``+xml``): ``& < > " '`` are escaped and
      characters XML cannot hold are refused;
    * any other type: a value may hold only letters, digits and ``-._~``.

    The template's own text is left as written.
    """
    if media_type == FORM_MEDIA_TYPE:
        return _substitute(
            template, values, lambda _name, value: quote_plus(_as_text(value), safe="")
        )
    if _is_json(media_type):
        return _render_json(template, values)
    if _is_xml(media_type):
        return _substitute(template, values, _xml_value)

    def plain(name: str, value: object) -> str:
        text = _as_text(value)
        if not _PLAIN_TOKEN.fullmatch(text):
            raise UnsafeTemplateValue(
                name,
                f"holds characters that cannot be encoded in a {media_type} body (only letters,"
                " digits and '-._~' can be: the connector should declare a form, JSON or XML"
                " Content-Type)",
            )
        return text

    return _substitute(template, values, plain)


def _xml_value(name: str, value: object) -> str:
    text = _as_text(value)
    if _NOT_XML.search(text):
        raise UnsafeTemplateValue(name, "contains a control character XML cannot hold")
    return xml_escape(text, {'"': "&quot;", "'": "&apos;"})


def _json_string_state(literal: str, in_string: bool) -> tuple[bool, bool]:
    """Whether a JSON text is inside a string literal after ``literal``, and whether it ends
    on a backslash that escapes what follows."""
    escaped = False
    for char in literal:
        if escaped:
            escaped = False
        elif in_string and char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
    return in_string, escaped


def _render_json(template: str, values: Values) -> str:
    parts: list[str] = []
    in_string, position = False, 0
    for match in PLACEHOLDER.finditer(template):
        literal = template[position : match.start()]
        in_string, escaped = _json_string_state(literal, in_string)
        if escaped:
            raise TemplateError(
                "the JSON body template escapes a placeholder with a backslash; the connector"
                " definition is wrong"
            )
        value = lookup(values, match.group(1))
        # In a string, the value's text escaped (without the quotes json.dumps adds).
        filled = json.dumps(_as_text(value))[1:-1] if in_string else json.dumps(value, default=str)
        parts += [literal, filled]
        position = match.end()
    parts.append(template[position:])
    rendered = "".join(parts)
    try:
        json.loads(rendered)
    except ValueError as exc:
        raise TemplateError(
            "the JSON body template is not JSON once filled; the connector definition is wrong"
        ) from exc
    return rendered


def _header_value(name: str, value: object) -> str:
    text = _scalar(name, value)
    for char in text:
        if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or char in "\u2028\u2029":
            raise UnsafeTemplateValue(name, "contains a control character (line break or NUL)")
        if ord(char) > 0x7F:
            raise UnsafeTemplateValue(name, "contains a character not allowed in an HTTP header")
    return text


def render_header(template: str, values: Values) -> str:
    """Render a header value; a value with a control or non-ASCII character is refused."""
    return _substitute(template, values, _header_value)


def _fixed(template: str, component: str) -> str:
    if PLACEHOLDER.search(template) or "{{" in template:
        raise TemplateError(
            f"the URL template has a placeholder in its {component}; the connector definition"
            " is wrong: only the host, path, query and fragment may hold placeholders"
        )
    return template


def _host_label(name: str, value: object) -> str:
    text = _scalar(name, value)
    if not DNS_LABEL.fullmatch(text):
        raise UnsafeTemplateValue(
            name, "must be a single DNS label (letters, digits and inner hyphens) in the host"
        )
    return text


def _path_segment(name: str, value: object) -> str:
    text = _scalar(name, value)
    if not text.strip("."):
        raise UnsafeTemplateValue(name, "must not be empty or only dots in a URL path")
    return quote(text, safe="")


def _query_value(name: str, value: object) -> str:
    return quote_plus(_scalar(name, value), safe="")


def _fragment_value(name: str, value: object) -> str:
    return quote(_scalar(name, value), safe="")


def _split_host_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise TemplateError("the URL template has an unclosed '[' in its host")
        host, after = hostport[: end + 1], hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise TemplateError("the URL template has text after its IPv6 host")
        return _fixed(host, "host"), after[1:]
    if "}}" in hostport:
        # A colon can only separate the port after the last placeholder.
        tail_start = hostport.rfind("}}") + 2
        colon = hostport.find(":", tail_start)
    else:
        colon = hostport.rfind(":")
    if colon < 0:
        return hostport, ""
    return hostport[:colon], hostport[colon + 1 :]


def render_url(template: str, values: Values) -> str:
    """Render a URL template so that no value can change its scheme, host or port.

    The template is split into components before anything is filled in. The scheme, userinfo
    and port may not hold placeholders; a host placeholder takes one DNS label; path values are
    percent-encoded with no safe character (``../admin`` becomes ``..%2Fadmin``) and values
    made of dots are refused; query and fragment values are encoded as query values.
    """
    parts = _URL.fullmatch(template.strip())
    if parts is None or parts.group("authority") is None:
        raise TemplateError("the URL template is not an absolute http(s) URL")
    scheme = _fixed(parts.group("scheme"), "scheme").lower()
    if scheme not in _SCHEMES:
        raise TemplateError("the URL template is not an absolute http(s) URL")
    authority = parts.group("authority")
    userinfo, _, hostport = authority.rpartition("@")
    if "@" in authority:
        _fixed(userinfo, "userinfo")
    host_template, port = _split_host_port(hostport)
    _fixed(port, "port")
    if ":" in host_template and not host_template.startswith("["):
        raise TemplateError(
            "the URL template has a placeholder in its port; the connector definition is wrong"
        )
    if port and not port.isdigit():
        raise TemplateError("the URL template's port is not a number")
    if not host_template:
        raise TemplateError("the URL template has no host")
    host = _substitute(host_template, values, _host_label)

    rest = parts.group("rest")
    rest, hash_mark, fragment = rest.partition("#")
    path, question_mark, query = rest.partition("?")
    path = _substitute(path, values, _path_segment)
    query = _substitute(query, values, _query_value)
    fragment = _substitute(fragment, values, _fragment_value)

    prefix = f"{userinfo}@" if "@" in authority else ""
    netloc = f"{prefix}{host}:{port}" if port else f"{prefix}{host}"
    url = f"{scheme}://{netloc}{path}{question_mark}{query}{hash_mark}{fragment}"
    _check_shape(url, scheme, host, port)
    return url


def _check_shape(url: str, scheme: str, host: str, port: str) -> None:
    """Belt and braces: the rendered URL parses back to the template's scheme, host and port."""
    try:
        parsed = urlsplit(url)
        parsed_port = parsed.port
    except ValueError as exc:
        raise TemplateError("the rendered URL does not parse") from exc
    expected_host = host.strip("[]").lower()
    if (
        parsed.scheme != scheme
        or (parsed.hostname or "") != expected_host
        or parsed_port != (int(port) if port else None)
    ):
        raise TemplateError("the rendered URL does not keep the template's scheme, host and port")
