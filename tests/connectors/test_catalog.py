"""The bundled catalog (``catalog/authbridge``): complete, documented, and every URL sound.

These checks read each entry's YAML as written, besides loading it, so that they see exactly what
an author typed: an explicit empty ``scope`` list, a placeholder's position in a URL, a value a
variant must supply. The ``sandbox`` namespace (loopback test providers) is left out.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from authbridge import errors
from authbridge.connectors.models import OAuth2Definition
from authbridge.connectors.registry import CATALOG, Registry, scan_folder
from authbridge.http import OutboundClient
from authbridge.mechanisms import ClientConfig, Context
from authbridge.mechanisms.oauth2 import OAuth2Mechanism, check_callback
from authbridge.mechanisms.oauth2_tokens import read_tokens
from authbridge.mechanisms.request_rules import prepare
from authbridge.spec.templates import DNS_LABEL, PLACEHOLDER, render_url, template_names

NAMESPACE = CATALOG / "authbridge"

REQUIRED_PROVIDERS = {
    "google", "microsoft", "github", "slack", "salesforce", "hubspot", "asana", "trello",
    "dropbox", "atlassian", "zendesk", "freshdesk", "notion", "airtable", "stripe", "sendgrid",
    "twilio", "shopify", "zoom", "linear", "intercom", "mailchimp", "typeform", "quickbooks",
    "xero", "box", "x", "linkedin", "facebook", "gitlab", "pipedrive",
}  # fmt: skip

URL_KEYS = {
    "auth_url",
    "request_request_token",
    "request_access_token",
    "refresh_access_token",
    "request_profile_info",
    "validate",
    "validate_access_token",
    "revoke_url",
    "issuer",
    "url",
    "base_url",
}
"""Keys whose string value is a URL (directly, or as the ``url`` of a request spec)."""

RUNTIME_VALUES = {
    "access_token",
    "refresh_token",
    "code",
    "authorization_code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "request_token",
    "callback_url",
}
"""Template values the mechanisms supply themselves (tokens, grant values, client)."""

ORIGIN_VALUES = {"instance_url", "api_domain"}
"""Token response values holding a whole origin, usable only at the start of a base URL."""

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

TOKEN_RESPONSE = {
    "access_token": "at-catalog-123",
    "token_type": "Bearer",
    "refresh_token": "rt-catalog-456",
    "expires_in": 3600,
    "instance_url": "https://acme.my.salesforce.com",
    "api_domain": "https://acme.pipedrive.com",
}
"""A token response carrying every provider-specific value the catalog's rules use."""

PROFILE = {
    "dc": "us21",
    "accounts": [{"account_id": "acct-1", "base_uri": "https://na3.docusign.net"}],
}
"""A stored profile carrying every value the catalog's rules read from it (``profile_info``)."""

NO_SCOPES = "(none)"
"""The ``scopes_docs`` key explaining why an OAuth 2 entry requests no scope."""


@dataclass(frozen=True)
class Entry:
    """One catalog entry as written: its folder name, auth.yaml and manifest.yaml."""

    key: str
    auth: Mapping[str, Any]
    manifest: Mapping[str, Any]

    @property
    def definition(self) -> Mapping[str, Any]:
        return self.auth.get("definition") or {}

    @property
    def request(self) -> Mapping[str, Any]:
        return self.definition.get("request") or {}

    @property
    def variant_values(self) -> list[Mapping[str, str]]:
        return [variant["values"] for variant in (self.manifest.get("variants") or {}).values()]

    @property
    def field_names(self) -> set[str]:
        fields = self.definition.get("auth")
        if fields is None and self.auth["type"] == "pwd":
            return {"username", "password"}
        return set(fields or {})


def _entries() -> list[Entry]:
    entries = []
    for folder in sorted(path for path in NAMESPACE.iterdir() if path.is_dir()):
        auth = yaml.safe_load((folder / "auth.yaml").read_text(encoding="utf-8"))
        manifest = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))
        entries.append(Entry(folder.name, auth, manifest))
    return entries


ENTRIES = _entries()


@functools.cache
def _registry() -> Registry:
    """The catalog loaded once (definitions are frozen, so sharing it is safe)."""
    return Registry.load()


def _by_key(entries: list[Entry]) -> list[Any]:
    return [pytest.param(entry, id=entry.key) for entry in entries]


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside ``value`` with its dot path (mapping keys included as strings)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path}.{key}" if path else str(key), str(key)
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def _url_templates(entry: Entry) -> Iterator[tuple[str, str]]:
    """The URL templates of an entry's definition: plain URL properties and spec ``url``s."""
    for path, text in _strings(entry.definition):
        parts = path.split(".")
        if parts[-1] in URL_KEYS and text != parts[-1]:
            yield path, text


def _dummy(names: set[str]) -> dict[str, str]:
    return {name: "x1" for name in names}


def _check_url(url: str, where: str, *, page: bool = False) -> None:
    """An absolute https URL on a public host; only a documentation ``page`` may have a fragment."""
    parts = urlsplit(url)
    assert parts.scheme == "https", f"{where}: {url!r} is not https"
    assert parts.hostname, f"{where}: {url!r} has no host"
    assert "." in parts.hostname, f"{where}: {url!r} has no public host"
    assert parts.hostname.rsplit(".", 1)[1].isalpha(), f"{where}: {url!r} has an odd host"
    assert parts.username is None, f"{where}: {url!r} has userinfo"
    assert parts.port is None, f"{where}: {url!r} has a port"
    assert page or not parts.fragment, f"{where}: {url!r} has a fragment"
    assert not re.search(r"\s", url), f"{where}: {url!r} holds whitespace"


def test_bundled_catalog_loads_without_problems() -> None:
    report = scan_folder(CATALOG, origin="catalog")
    assert [str(problem) for problem in report.problems] == []
    keys = {connector.key for connector in report.connectors}
    assert {entry.key for entry in ENTRIES} <= keys


def test_catalog_has_at_least_40_providers_outside_sandbox() -> None:
    report = scan_folder(NAMESPACE.parent, origin="catalog")
    outside = [c for c in report.connectors if c.source.parent.parent == NAMESPACE]
    assert len(outside) >= 40, len(outside)


def test_required_providers_are_present() -> None:
    assert REQUIRED_PROVIDERS - {entry.key for entry in ENTRIES} == set()


@pytest.mark.parametrize("entry", _by_key(ENTRIES))
def test_entry_is_documented(entry: Entry) -> None:
    manifest = entry.manifest
    assert manifest.get("label"), "label"
    assert manifest.get("version") == "1", "version"
    assert manifest.get("description"), "description"
    assert "\n" not in manifest["description"].strip(), "description is one line"
    _check_url(manifest.get("docs_url") or "", "docs_url", page=True)
    assert "{{" not in manifest["docs_url"]


@pytest.mark.parametrize("entry", _by_key(ENTRIES))
def test_entry_has_request_rules_with_a_base_url(entry: Entry) -> None:
    base_url = entry.request.get("base_url")
    assert isinstance(base_url, str), "request.base_url"
    assert base_url.strip(), "request.base_url is empty"
    if entry.auth["type"] in ("api_key", "pwd"):
        applied = [*(entry.request.get("headers") or {}), *(entry.request.get("params") or {})]
        assert applied or entry.request.get("auth"), "request rules apply no credential"


@pytest.mark.parametrize("entry", _by_key(ENTRIES))
def test_entry_names_its_accounts(entry: Entry) -> None:
    assert entry.definition.get("request_profile_info"), "request_profile_info"
    assert entry.definition.get("account_name_from_profile_info"), "account name path"
    if entry.auth["type"] in ("api_key", "pwd"):
        assert entry.definition.get("validate"), "validate"


@pytest.mark.parametrize("entry", _by_key(ENTRIES))
def test_every_url_is_https_and_well_formed(entry: Entry) -> None:
    for path, text in [*_strings(entry.definition), *_strings(entry.manifest)]:
        assert "http://" not in text, f"{path}: {text!r} mentions plain http"
    variant_names = {name for values in entry.variant_values for name in values}
    for path, template in _url_templates(entry):
        names = template_names(template)
        origin = PLACEHOLDER.match(template)
        if origin is not None:
            assert path == "request.base_url", f"{path}: only a base URL may start with a value"
            allowed = entry.request.get("allowed_hosts") or []
            assert allowed, f"{path}: an origin placeholder needs request.allowed_hosts"
            name = origin.group(1)
            assert name in ORIGIN_VALUES or name.startswith("profile_info."), name
            rest = template[origin.end() :]
            assert rest.startswith("/"), f"{path}: the origin must be followed by a path"
            template = f"https://x1{allowed[0]}{rest}"
            names -= {name}
        else:
            assert "allowed_hosts" not in entry.request or path != "request.base_url", (
                "allowed_hosts only goes with a base URL starting with an origin placeholder"
            )
        known = RUNTIME_VALUES | entry.field_names | variant_names
        unknown = {n for n in names if n not in known and not n.startswith("profile_info.")}
        assert unknown == set(), f"{path}: no value for {sorted(unknown)}"
        # render_url refuses placeholders in the scheme, userinfo or port and fills the host
        # label by label, exactly as at run time.
        _check_url(render_url(template, _dummy(names)), f"{entry.key}: {path}")


@pytest.mark.parametrize("entry", _by_key([e for e in ENTRIES if e.manifest.get("variants")]))
def test_variants_supply_the_same_host_labels(entry: Entry) -> None:
    values = entry.variant_values
    assert len(values) >= 2
    for variant in values:
        assert set(variant) == set(values[0]), "every variant sets the same values"
        for name, value in variant.items():
            assert DNS_LABEL.fullmatch(value), f"{name}={value!r} is not one DNS label"


@pytest.mark.parametrize("entry", _by_key([e for e in ENTRIES if e.auth["type"] == "oauth2"]))
def test_oauth2_scopes_are_declared_and_documented(entry: Entry) -> None:
    definition = entry.definition
    assert "scope" in definition, "declare 'scope' (an empty list when there are none)"
    assert "scope_delimiter" in definition, "declare 'scope_delimiter'"
    docs = entry.manifest.get("scopes_docs") or {}
    scopes = definition["scope"]
    if not scopes:
        assert docs.get(NO_SCOPES), f"no default scope: scopes_docs[{NO_SCOPES!r}] says why"
    for scope in scopes:
        assert docs.get(scope), f"scope {scope!r} is not in scopes_docs"


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundClient]:
    client = OutboundClient()
    try:
        yield client
    finally:
        await client.aclose()


def _stored_credentials(entry: Entry, definition: Any, context: Context) -> dict[str, Any]:
    """Credentials shaped as each mechanism stores them after a successful connect."""
    if isinstance(definition, OAuth2Definition):
        return read_tokens(TOKEN_RESPONSE, context, definition).credentials(" ")
    if entry.auth["type"] == "oauth1":
        return {"access_token": "tok-catalog", "access_token_secret": "toksecret-catalog"}
    fields = entry.definition.get("auth") or {"username": {}, "password": {"type": "password"}}
    return {
        name: f"secret-{name}" if (spec or {}).get("type") == "password" else "acme"
        for name, spec in fields.items()
    }


@pytest.mark.anyio
@pytest.mark.parametrize("entry", _by_key(ENTRIES))
async def test_request_rules_render_for_stored_credentials(
    entry: Entry, outbound: OutboundClient
) -> None:
    """The rules put the stored credential on the request and point at an https base URL."""
    connector = _registry().get(entry.key)
    definition = connector.definition()
    variants = entry.variant_values
    config = ClientConfig(
        client_id="client-catalog",
        client_secret="client-secret-catalog",
        consumer_key="consumer-catalog",
        consumer_secret="consumer-secret-catalog",
        variant_values=variants[0] if variants else {},
    )
    context = Context(http=outbound, now=NOW, config=config)
    credentials = _stored_credentials(entry, definition, context)
    rendered = await prepare(
        definition,
        credentials=credentials,
        config=config,
        profile=PROFILE,
        http=outbound,
        now=NOW,
    )
    assert rendered.base_url is not None
    _check_url(rendered.base_url, f"{entry.key}: rendered base URL")
    if entry.auth["type"] == "oauth1":
        assert rendered.oauth1 is not None
        assert rendered.oauth1.token == "tok-catalog"
        return
    applied = [*rendered.headers.values(), *rendered.params.values(), *(rendered.basic or ())]
    secrets = [value for value in credentials.values() if str(value).startswith(("at-", "secret-"))]
    assert secrets, "no credential to look for"
    for secret in secrets:
        assert any(secret in text for text in applied), f"{entry.key}: {secret} is not applied"
    assert not any("rt-catalog" in text for text in applied), "the refresh token leaks"


@pytest.mark.anyio
@pytest.mark.parametrize("entry", _by_key([e for e in ENTRIES if e.auth["type"] == "oauth2"]))
async def test_authorization_url_builds_for_every_variant(
    entry: Entry, outbound: OutboundClient
) -> None:
    """The authorization request renders for each variant with the declared scope and PKCE."""
    definition = _registry().get(entry.key).definition()
    assert isinstance(definition, OAuth2Definition)
    for values in entry.variant_values or [{}]:
        config = ClientConfig(client_id="client-catalog", variant_values=values)
        context = Context(
            http=outbound, now=NOW, config=config, callback_url="https://example.com/callback"
        )
        built = await OAuth2Mechanism().authorization_request(definition, context, state="st-1")
        _check_url(built.url, f"{entry.key}: authorization URL")
        query = parse_qs(urlsplit(built.url).query)
        assert query["client_id"] == ["client-catalog"]
        assert query["state"] == ["st-1"]
        assert query["redirect_uri"] == ["https://example.com/callback"]
        expected = definition.scope_delimiter.join(definition.scope)
        assert query.get("scope", [""]) == [expected]
        assert ("code_challenge" in query) is definition.pkce
        assert all(value not in built.url for value in ("{{", "}}"))


def test_google_callbacks_with_its_iss_are_accepted_and_others_refused() -> None:
    """Google adds ``iss`` (RFC 9207) to some authorization responses, unannounced: its entry
    declares the issuer so such a callback is compared, not refused as unexpected."""
    definition = _registry().get("google").definition()
    assert isinstance(definition, OAuth2Definition)
    assert definition.issuer == "https://accounts.google.com"
    expected = {"expected_issuer": definition.issuer, "issuer_required": definition.issuer_required}
    assert check_callback({"code": "c", "iss": "https://accounts.google.com"}, **expected) == "c"
    assert check_callback({"code": "c"}, **expected) == "c"
    with pytest.raises(errors.ProviderError, match="unexpected issuer"):
        check_callback({"code": "c", "iss": "https://evil.example"}, **expected)


def test_connectors_list_shows_every_catalog_entry_with_its_auth_type() -> None:
    from authbridge.cli import app  # imports the whole API; only this test needs it

    runner = CliRunner()
    table = runner.invoke(app, ["connectors", "list"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    header = next(line for line in lines if "auth type" in line)
    assert header.index("key") < header.index("auth type")
    rows = {line.split("│")[1].strip(): line for line in lines if line.count("│") >= 5}
    for key, auth_type in {"x": "oauth1", "salesforce": "oauth2", "shopify": "api_key"}.items():
        assert f" {auth_type} " in rows[key], rows[key]
    listed = json.loads(runner.invoke(app, ["connectors", "list", "--json"]).stdout)
    types = {row["key"]: row["type"] for row in listed}
    for entry in ENTRIES:
        assert types[entry.key] == entry.auth["type"]


def test_checks_catch_a_plain_http_url_and_an_unknown_placeholder() -> None:
    """The URL check fails on the mistakes it exists for (so it cannot pass vacuously)."""
    broken = Entry(
        "broken",
        {
            "type": "oauth2",
            "definition": {
                "auth_url": "https://{{tenat}}.example.com/authorize",
                "request": {"base_url": "http://api.example.com"},
            },
        },
        {"docs_url": "https://example.com/docs"},
    )
    with pytest.raises(AssertionError, match="plain http"):
        test_every_url_is_https_and_well_formed(broken)
    broken.definition["request"]["base_url"] = "https://api.example.com"
    with pytest.raises(AssertionError, match="no value for \\['tenat'\\]"):
        test_every_url_is_https_and_well_formed(broken)
