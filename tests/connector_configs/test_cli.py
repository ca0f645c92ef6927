"""``authbridge connector-config`` on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from sqlalchemy import select

from authbridge.connector_configs.repository import ConnectorConfigRepository, ConnectorSettings
from authbridge.runtime import Settings, open_database, open_keyring
from authbridge.storage import Database
from authbridge.storage.models import ConnectorConfig
from authbridge.tenancy.repository import EnvironmentRepository
from authbridge.vault import Keyring
from tests.support.cli import both, failed, ok

PUBLIC_URL = "https://auth.example.com"
SECRET = "gh-secret-8c1f2e7a9b"
OTHER_SECRET = "another-secret-5d4c3b2a"


@pytest.fixture
def widget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A connectors folder with an OAuth 2 connector that declares two settings."""
    folder = tmp_path / "connectors" / "acme" / "widget"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text(
        dedent(
            """\
            type: oauth2
            definition:
              auth_url: https://widget.example/authorize
              request_access_token: https://widget.example/token
              scope: [read]
              settings:
                tenant: {type: text, name: Tenant}
                signing_secret: {type: password, name: Signing secret, required: false}
            """
        )
    )
    monkeypatch.setenv("AUTHBRIDGE_CONNECTORS", str(tmp_path / "connectors"))
    return "widget"


def stored(database: Database, keyring: Keyring, key: str) -> ConnectorSettings | None:
    with database.session(readonly=True) as session:
        environment = EnvironmentRepository(session, keyring).get_by_name("default")
        if environment is None:  # a command that failed created nothing, not even this
            return None
        return ConnectorConfigRepository(session, keyring).get(environment.id, key)


@both
def test_set_show_list_delete_round_trip(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    result = ok(
        "connector-config",
        "set",
        "github",
        "--client-id",
        "Iv1.abc",
        "--client-secret",
        "-",
        "--scope",
        "repo",
        "--scope",
        "read:user",
        stdin=SECRET + "\n",
    )
    assert "Saved the configuration of 'github'" in result.stdout
    assert SECRET not in result.output
    config = stored(database, keyring, "github")
    assert config is not None
    assert (config.client_id, config.client_secret) == ("Iv1.abc", SECRET)
    assert config.scopes == ("repo", "read:user")

    shown = ok("connector-config", "show", "github")
    assert SECRET not in shown.output
    assert "Iv1.abc" in shown.stdout
    assert "client secret    set" in shown.stdout
    assert "repo read:user" in shown.stdout
    assert "http://127.0.0.1:8000/auth/github/callback" in shown.stdout
    assert "AUTHBRIDGE_PUBLIC_URL is not set" in shown.stderr

    listing = ok("connector-config", "list")
    assert SECRET not in listing.output
    assert "1 connector configurations" in listing.stdout
    row = next(line for line in listing.stdout.splitlines() if "github" in line)
    assert "Iv1.abc" in row
    assert "not set" in row  # the consumer secret
    assert "http://127.0.0.1:8000/auth/github/callback" in row

    assert (
        "Deleted the configuration of 'github'" in ok("connector-config", "delete", "github").stdout
    )
    assert stored(database, keyring, "github") is None
    assert "not configured yet" in ok("connector-config", "show", "github").stdout
    assert "0 connector configurations" in ok("connector-config", "list").stdout
    again = failed("connector-config", "delete", "github")
    assert "'github' has no configuration in environment 'default'" in again.stderr


@both
def test_show_gives_the_exact_redirect_uri(
    opened: tuple[Database, Keyring], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHBRIDGE_PUBLIC_URL", PUBLIC_URL + "/")
    shown = ok("connector-config", "show", "github")
    assert f"redirect URI     {PUBLIC_URL}/auth/github/callback\n" in shown.stdout
    assert "read:user user:email (the connector's default)" in shown.stdout
    assert "AUTHBRIDGE_PUBLIC_URL" not in shown.stderr
    ok("connector-config", "set", "github", "--redirect-uri", "https://app.example.com/cb")
    shown = ok("connector-config", "show", "github")
    assert "redirect URI     https://app.example.com/cb\n" in shown.stdout
    assert "set with --redirect-uri" in shown.stdout


@both
def test_secrets_given_on_the_command_line_are_never_printed(
    opened: tuple[Database, Keyring],
) -> None:
    database, keyring = opened
    result = ok(
        "connector-config",
        "set",
        "trello",
        "--consumer-key",
        "ck-1",
        "--consumer-secret",
        OTHER_SECRET,
    )
    outputs = [
        result.output,
        ok("connector-config", "show", "trello").output,
        ok("connector-config", "list").output,
    ]
    assert all(OTHER_SECRET not in output for output in outputs)
    assert "consumer secret  set" in outputs[1]
    config = stored(database, keyring, "trello")
    assert config is not None
    assert config.consumer_secret == OTHER_SECRET


@both
def test_secret_is_stored_encrypted(opened: tuple[Database, Keyring]) -> None:
    database, _ = opened
    ok("connector-config", "set", "github", "--client-id", "Iv1.abc", "--client-secret", SECRET)
    with database.session(readonly=True) as session:
        row = session.scalars(select(ConnectorConfig)).one()
        assert SECRET.encode() not in row.secrets_ct
        assert row.client_id == "Iv1.abc"


def test_secret_is_not_in_the_database_file(home: Path) -> None:
    ok("connector-config", "set", "github", "--client-id", "Iv1.abc", "--client-secret", SECRET)
    files = list(home.glob("authbridge.db*"))
    assert files
    contents = b"".join(path.read_bytes() for path in files)
    assert b"Iv1.abc" in contents  # the file is readable, and holds the row
    assert SECRET.encode() not in contents


@both
def test_set_keeps_the_values_not_given(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    ok(
        "connector-config",
        "set",
        "github",
        "--client-id",
        "Iv1.abc",
        "--client-secret",
        SECRET,
        "--redirect-uri",
        "https://app.example.com/cb",
        "--scope",
        "repo",
    )
    ok("connector-config", "set", "github", "--client-id", "Iv1.new")
    config = stored(database, keyring, "github")
    assert config is not None
    assert config.client_id == "Iv1.new"
    assert config.client_secret == SECRET
    assert config.redirect_uri == "https://app.example.com/cb"
    assert config.scopes == ("repo",)

    ok("connector-config", "set", "github", "--scope", "gist", "--scope", "user")
    config = stored(database, keyring, "github")
    assert config is not None
    assert config.scopes == ("gist", "user")
    assert config.client_secret == SECRET

    # Empty values and --default-scopes take a value back out.
    ok("connector-config", "set", "github", "--redirect-uri", "", "--default-scopes")
    config = stored(database, keyring, "github")
    assert config is not None
    assert config.redirect_uri is None
    assert config.scopes is None
    assert (config.client_id, config.client_secret) == ("Iv1.new", SECRET)


@both
def test_settings_are_checked_merged_and_never_shown(
    opened: tuple[Database, Keyring], widget: str
) -> None:
    database, keyring = opened
    unknown = failed("connector-config", "set", widget, "--setting", "colour=blue")
    assert "has no setting 'colour' (signing_secret, tenant)" in unknown.stderr
    assert (
        "'Tenant' is required"
        in failed("connector-config", "set", widget, "--client-id", "x").stderr
    )
    assert "NAME=VALUE" in failed("connector-config", "set", widget, "--setting", "tenant").stderr
    github = failed("connector-config", "set", "github", "--setting", "tenant=x")
    assert "it declares none" in github.stderr

    ok("connector-config", "set", widget, "--client-id", "w-1", "--setting", "tenant=acme")
    ok("connector-config", "set", widget, "--setting", "signing_secret=-", stdin=OTHER_SECRET)
    config = stored(database, keyring, widget)
    assert config is not None
    assert dict(config.settings) == {"tenant": "acme", "signing_secret": OTHER_SECRET}
    assert config.client_id == "w-1"

    shown = ok("connector-config", "show", widget)
    assert "tenant (set), signing_secret (set)" in shown.stdout
    assert "acme" not in shown.output
    assert OTHER_SECRET not in shown.output
    listing = ok("connector-config", "list").stdout
    assert "signing_secret, tenant" in listing
    assert OTHER_SECRET not in listing

    ok("connector-config", "set", widget, "--setting", "signing_secret=")
    config = stored(database, keyring, widget)
    assert config is not None
    assert dict(config.settings) == {"tenant": "acme"}
    assert "signing_secret (not set)" in ok("connector-config", "show", widget).stdout


@both
def test_unknown_connector_is_a_clear_error(target: str) -> None:
    for args in (
        ("connector-config", "set", "nope", "--client-id", "x"),
        ("connector-config", "show", "nope"),
        ("connector-config", "delete", "nope"),
        ("connect-link", "user-1", "nope"),
    ):
        assert "no connector named 'nope'" in failed(*args).stderr


@both
def test_bad_redirect_uri_is_a_clear_error(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    for value in ("ftp://example.com/cb", "not a url", "https://app.example.com/cb#x"):
        result = failed("connector-config", "set", "github", "--redirect-uri", value)
        assert "--redirect-uri must be an absolute http(s) URL" in result.stderr
    assert stored(database, keyring, "github") is None


def test_bad_scope_is_a_clear_error(home: Path) -> None:
    result = failed("connector-config", "set", "github", "--scope", "two words")
    assert "each --scope must be non-empty text without spaces" in result.stderr
    both_ways = failed("connector-config", "set", "github", "--scope", "a", "--default-scopes")
    assert "either --scope or --default-scopes" in both_ways.stderr


def test_nothing_to_set_is_a_clear_error(home: Path) -> None:
    assert "nothing to set" in failed("connector-config", "set", "github").stderr


def test_standard_input_holds_one_secret(home: Path) -> None:
    result = failed(
        "connector-config",
        "set",
        "trello",
        "--consumer-key",
        "ck",
        "--consumer-secret",
        "-",
        "--client-secret",
        "-",
        stdin=SECRET,
    )
    assert "both ask for standard input" in result.stderr
    empty = failed("connector-config", "set", "github", "--client-secret", "-", stdin="")
    assert "standard input is empty" in empty.stderr


def test_a_multi_line_secret_is_read_whole(home: Path) -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\n"
    ok(
        "connector-config",
        "set",
        "trello",
        "--consumer-key",
        "ck",
        "--consumer-secret",
        "-",
        stdin=pem,
    )
    settings = Settings.from_env()
    keyring, _ = open_keyring(settings)
    database = open_database(settings)
    try:
        config = stored(database, keyring, "trello")
    finally:
        database.dispose()
    assert config is not None
    assert config.consumer_secret == pem.rstrip("\n")


def test_on_a_terminal_secrets_are_asked_for_hidden(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("authbridge.connector_configs.cli._stdin_is_terminal", lambda: True)
    result = ok(
        "connector-config",
        "set",
        "trello",
        "--consumer-key",
        "ck",
        "--consumer-secret",
        "-",
        stdin=OTHER_SECRET + "\n",
    )
    assert "Consumer secret" in result.stderr  # the prompt, on standard error
    assert OTHER_SECRET not in result.output
    settings = Settings.from_env()
    keyring, _ = open_keyring(settings)
    database = open_database(settings)
    try:
        config = stored(database, keyring, "trello")
    finally:
        database.dispose()
    assert config is not None
    assert config.consumer_secret == OTHER_SECRET


def test_oauth_connector_without_a_secret_is_set_with_a_hint(home: Path) -> None:
    result = ok("connector-config", "set", "github", "--client-id", "Iv1.abc")
    assert "still needs --client-secret" in result.stderr
    assert "client secret    not set" in result.stdout


def test_help_explains_each_command(home: Path) -> None:
    assert "Secrets are stored encrypted" in ok("connector-config", "--help").stdout
    assert "--client-secret" in ok("connector-config", "set", "--help").stdout
    assert "redirect URI" in ok("connector-config", "show", "--help").stdout
    assert "List the environment" in ok("connector-config", "list", "--help").stdout
    assert "Delete" in ok("connector-config", "delete", "--help").stdout
    link_help = ok("connect-link", "--help").stdout
    assert "valid 10 minutes" in link_help
    assert "--edit" in link_help


@both
def test_each_variant_has_its_own_configuration(
    opened: tuple[Database, Keyring], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, keyring = opened
    folder = tmp_path / "variant-connectors" / "acme" / "regional"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text(
        "type: oauth2\ndefinition:\n  auth_url: https://{{login}}.regional.example/authorize\n"
        "  request_access_token: https://{{login}}.regional.example/token\n"
    )
    (folder / "manifest.yaml").write_text(
        "variants:\n  production: {values: {login: login}}\n  sandbox: {values: {login: test}}\n"
    )
    monkeypatch.setenv("AUTHBRIDGE_CONNECTORS", str(tmp_path / "variant-connectors"))
    ok("connector-config", "set", "regional", "--client-id", "prod-id")
    saved = ok("connector-config", "set", "regional", "--variant", "sandbox", "--client-id", "sb")
    assert "'regional' (variant sandbox)" in saved.stdout
    with database.session(readonly=True) as session:
        environment = EnvironmentRepository(session, keyring).get_by_name("default")
        assert environment is not None
        repository = ConnectorConfigRepository(session, keyring)
        default = repository.get(environment.id, "regional")
        sandbox = repository.get(environment.id, "regional", "sandbox")
    assert default is not None
    assert default.client_id == "prod-id"
    assert sandbox is not None
    assert sandbox.client_id == "sb"

    shown = ok("connector-config", "show", "regional", "--variant", "sandbox")
    assert "variant sandbox" in shown.stdout
    assert "sb" in shown.stdout
    listing = ok("connector-config", "list")
    assert "2 connector configurations" in listing.stdout
    unknown = failed("connector-config", "set", "regional", "--variant", "qa", "--client-id", "x")
    assert "variants: production, sandbox" in unknown.stderr
    ok("connector-config", "delete", "regional", "--variant", "sandbox")
    assert "prod-id" in ok("connector-config", "show", "regional").stdout
    again = failed("connector-config", "delete", "regional", "--variant", "sandbox")
    assert "(variant sandbox) has no configuration" in again.stderr
