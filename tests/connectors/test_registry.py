"""The registry: bundled catalog, host folders overriding it, versions."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from authbridge.connectors.registry import CATALOG, Registry, scan_folder, version_key
from authbridge.errors import ConnectorNotFound, DefinitionError


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_bundled_catalog_is_valid_and_loads() -> None:
    report = scan_folder(CATALOG, origin="catalog")
    assert report.problems == []
    registry = Registry.load()
    assert {"freshdesk", "github", "trello"} <= {c.key for c in registry}
    assert registry.get("trello").auth_type == "oauth1"


def test_catalog_urls_are_https() -> None:
    """Every provider URL is https, except the sandbox's, which are on this machine only."""
    for connector in Registry.load():
        definition = connector.definition()
        sandbox = connector.key.startswith("sandbox-")
        for name, value in definition:
            url = getattr(value, "url", value)
            if isinstance(url, str) and "://" in url:
                parts = urlsplit(url)
                if sandbox:
                    assert (parts.scheme, parts.netloc) == ("http", "127.0.0.1:8400"), url
                else:
                    assert parts.scheme == "https", (connector.key, name, url)
                    assert parts.netloc, (connector.key, name, url)


def test_versions_newest_first_by_number(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        write(tmp_path, f"acme/v{version}/auth.yaml", "type: none\n")
        write(tmp_path, f"acme/v{version}/manifest.yaml", f"key: thing\nversion: '{version}'\n")
    registry = Registry.load([tmp_path], include_catalog=False)
    assert registry.get("thing").version == "10"
    assert registry.get("thing", "2").version == "2"
    assert [c.version for c in registry.versions("thing")] == ["1", "2", "10"]
    assert version_key("1.10") > version_key("1.9")


def test_folder_overrides_catalog_connector(tmp_path: Path) -> None:
    write(tmp_path, "mine/freshdesk/auth.yaml", "type: none\n")
    registry = Registry.load([tmp_path])
    connector = registry.get("freshdesk")
    assert connector.auth_type == "none"
    assert connector.origin == str(tmp_path)


def test_unknown_key_and_version_errors() -> None:
    registry = Registry.load()
    with pytest.raises(ConnectorNotFound, match="did you mean freshdesk"):
        registry.get("fresh")
    with pytest.raises(ConnectorNotFound, match=r"has no version 9 \(versions: 1\)"):
        registry.get("freshdesk", "9")


def test_load_raises_with_every_problem(tmp_path: Path) -> None:
    write(tmp_path, "a/one/auth.yaml", "type: pwd\ndefinition: {}\n")
    write(tmp_path, "a/two/auth.yaml", "type: nope\n")
    with pytest.raises(DefinitionError) as caught:
        Registry.load([tmp_path])
    found = sorted((Path(p.file).parent.name, p.path) for p in caught.value.problems)
    assert found == [("one", "definition.validate"), ("two", "definition"), ("two", "type")]


def test_load_usable_leaves_broken_connectors_out(tmp_path: Path) -> None:
    write(tmp_path, "a/good/auth.yaml", "type: none\n")
    write(
        tmp_path,
        "a/crashy/auth.py",
        "type = 'none'\n\n\ndef definition():\n    raise OSError('x')\n",
    )
    registry, problems = Registry.load_usable([tmp_path], include_catalog=False)
    assert [c.key for c in registry] == ["good"]
    assert [(Path(p.file).parent.name, p.path, p.reason) for p in problems] == [
        ("crashy", "definition", "calling it failed: OSError: x")
    ]


def test_a_broken_override_hides_the_catalog_connector_it_replaces(tmp_path: Path) -> None:
    """The host gets its own definition or none: never the bundled one in its place."""
    write(tmp_path, "mine/freshdesk/auth.yaml", "type: apiKey\ndefinition: {auth: {}}\n")
    write(tmp_path, "mine/github/auth.yaml", "type: oauth2\ndefinition: {}\n")
    write(tmp_path, "mine/github/manifest.yaml", "version: '7'\n")
    write(tmp_path, "mine/slack/auth.yaml", "type: none\n")
    write(tmp_path, "mine/slack/manifest.yaml", "version: [not, text]\n")
    registry, problems = Registry.load_usable([tmp_path])
    assert "freshdesk" not in registry, "same key and version: the bundled one is hidden"
    assert "slack" not in registry, "unreadable manifest: every version of the key is hidden"
    assert registry.get("github").origin == "catalog", "another version: the catalog's stays"
    assert {Path(p.file).parent.name for p in problems} == {"freshdesk", "github", "slack"}
    assert len(registry) == len(Registry.load()) - 2


def test_load_usable_still_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="is not a folder"):
        Registry.load_usable([tmp_path / "nowhere"])


def test_a_callback_path_names_a_key_but_for_case_dashes_and_underscores(tmp_path: Path) -> None:
    write(tmp_path, "acme/my-service/auth.yaml", "type: none\n")
    write(tmp_path, "acme/crm/auth.yaml", "type: none\n")
    write(tmp_path, "acme/crm/manifest.yaml", "key: sales_crm\n")
    write(tmp_path, "acme/kit/auth.yaml", "type: none\n")
    registry = Registry.load([tmp_path], include_catalog=False)
    for name in ("my-service", "myService", "MyService", "my_service", "MY-SERVICE"):
        assert registry.callback_key(name) == "my-service", name
    assert registry.callback_key("salesCrm") == "sales_crm"
    assert registry.callback_key("KIT") == "kit"
    # Only ASCII folds: the Kelvin sign lower-cases to "k", but names no connector.
    for name in ("myServices", "my.service", "\u212aIT", ""):
        with pytest.raises(ConnectorNotFound):
            registry.callback_key(name)


def test_a_callback_path_that_could_name_two_keys_needs_the_exact_one(tmp_path: Path) -> None:
    write(tmp_path, "acme/my-service/auth.yaml", "type: none\n")
    write(tmp_path, "acme/my_service/auth.yaml", "type: none\n")
    registry = Registry.load([tmp_path], include_catalog=False)
    assert registry.callback_key("my_service") == "my_service"
    assert registry.callback_key("my-service") == "my-service"
    with pytest.raises(ConnectorNotFound) as caught:
        registry.callback_key("myService")
    assert caught.value.message == (
        "'myService' could name any of the connectors my-service, my_service: "
        "register the redirect URI with the exact key"
    )
