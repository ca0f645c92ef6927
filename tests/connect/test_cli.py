"""``authbridge connect-link`` on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connect.repository import ConnectSessionRepository
from authbridge.storage import Database
from authbridge.storage.models import utcnow
from authbridge.tenancy.repository import EndUserRepository, EnvironmentRepository
from authbridge.vault import Keyring
from tests.support.cli import both, failed, ok

PUBLIC_URL = "https://auth.example.com"
SECRET = "gh-secret-8c1f2e7a9b"


@both
def test_connect_link_prints_a_valid_one_time_url(
    opened: tuple[Database, Keyring], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, keyring = opened
    monkeypatch.setenv("AUTHBRIDGE_PUBLIC_URL", PUBLIC_URL)
    result = ok(
        "connect-link",
        "user-42",
        "freshdesk",
        "--origin",
        "https://App.example.com",
        "--skip-title-field",
        "--name",
        "Ada",
        "--email",
        "ada@example.com",
    )
    url = result.stdout.strip()
    assert result.stdout == url + "\n"  # the URL alone
    assert url.startswith(PUBLIC_URL + "/connect/")
    assert "valid until" in result.stderr
    assert "10 minutes" in result.stderr
    assert "AUTHBRIDGE_PUBLIC_URL" not in result.stderr
    code = url.rsplit("/", 1)[1]
    with database.session(readonly=True) as session:
        record = ConnectSessionRepository(session).get_valid(code, now=utcnow())
        assert record is not None
        assert record.connector_key == "freshdesk"
        assert record.origin == "https://app.example.com"
        assert record.options["skip_title_field"] is True
        assert record.authentication_id is None
        assert record.expires_at - record.created_at == timedelta(minutes=10)
        environment = EnvironmentRepository(session, keyring).get_by_name("default")
        assert environment is not None
        user = EndUserRepository(session).get(environment.id, record.end_user_id)
        assert user is not None
        assert (user.external_user_id, user.name, user.email) == (
            "user-42",
            "Ada",
            "ada@example.com",
        )
        later = ConnectSessionRepository(session).get_valid(
            code, now=utcnow() + timedelta(minutes=11)
        )
        assert later is None


def test_connect_link_without_public_url_says_so(home: Path) -> None:
    result = ok("connect-link", "user-1", "freshdesk")
    assert result.stdout.startswith("http://127.0.0.1:8000/connect/")
    assert "AUTHBRIDGE_PUBLIC_URL is not set" in result.stderr


@both
def test_connect_link_edit(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        user = EndUserRepository(session).create(environment.id, "user-1")
        auth = AuthenticationRepository(session, keyring).create(
            environment_id=environment.id,
            end_user_id=user.id,
            connector_key="freshdesk",
            connector_version="1",
            auth_type="api_key",
            name="support desk",
            credentials={"domain": "acme", "api_key": "k"},
        )
    wrong = failed("connect-link", "user-1", "freshdesk", "--edit", "no-such-auth")
    assert "--edit: there is no authentication 'no-such-auth'" in wrong.stderr
    other_user = failed("connect-link", "user-2", "freshdesk", "--edit", auth.id)
    assert f"'{auth.id}' is not a 'freshdesk' authentication of end user 'user-2'" in (
        other_user.stderr
    )
    assert (
        "not a 'stripe' authentication"
        in failed("connect-link", "user-1", "stripe", "--edit", auth.id).stderr
    )
    with database.session(readonly=True) as session:  # the failed calls left nothing behind
        assert EndUserRepository(session).get_by_external_id(environment.id, "user-2") is None

    result = ok("connect-link", "user-1", "freshdesk", "--edit", auth.id)
    assert "to reconnect Freshdesk" in result.stderr
    code = result.stdout.strip().rsplit("/", 1)[1]
    with database.session(readonly=True) as session:
        record = ConnectSessionRepository(session).get_valid(code, now=utcnow())
        assert record is not None
        assert record.authentication_id == auth.id


def test_connect_link_bad_input_is_a_clear_error(home: Path) -> None:
    bad_origin = failed("connect-link", "user-1", "freshdesk", "--origin", "https://a.example/x")
    assert "--origin must be a web origin" in bad_origin.stderr
    assert "must not be empty" in failed("connect-link", " ", "freshdesk").stderr
    assert "longer than 255" in failed("connect-link", "u" * 256, "freshdesk").stderr
    assert (
        "no environment named 'staging'"
        in failed("connect-link", "user-1", "freshdesk", "--env", "staging").stderr
    )


def test_connect_link_for_an_unconfigured_oauth_connector_warns(home: Path) -> None:
    result = ok("connect-link", "user-1", "github")
    assert "/connect/" in result.stdout
    assert "'github' is not configured" in result.stderr
    ok("connector-config", "set", "github", "--client-id", "Iv1.abc")
    partly = ok("connect-link", "user-1", "github")
    assert "still needs --client-secret" in partly.stderr
    ok("connector-config", "set", "github", "--client-secret", SECRET)
    ready = ok("connect-link", "user-1", "github")
    assert "still needs" not in ready.stderr
    assert "not configured" not in ready.stderr


@both
def test_connect_link_schedules_the_deletion_and_can_skip_to_the_provider(
    opened: tuple[Database, Keyring],
) -> None:
    database, _ = opened
    result = ok("connect-link", "user-7", "github", "--delete-after", "7d", "--skip-auth-settings")
    code = result.stdout.strip().rsplit("/", 1)[1]
    with database.session(readonly=True) as session:
        record = ConnectSessionRepository(session).get_valid(code, now=utcnow())
        assert record is not None
        assert record.options["delete_after_seconds"] == 7 * 86400
        assert record.options["skip_auth_settings"] is True
    for wrong in ("0", "soon", "-3h", "4000d"):
        assert (
            "--delete-after takes a duration"
            in failed("connect-link", "user-7", "github", "--delete-after", wrong).stderr
        )


def test_connect_link_finds_the_connectors_of_its_connectors_option(
    home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mine" / "acme" / "gadget"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text("type: none\n")
    assert "no connector named 'gadget'" in failed("connect-link", "user-1", "gadget").stderr
    ok("connect-link", "user-1", "gadget", "--connectors", str(tmp_path / "mine"))
    shown = ok("connector-config", "show", "gadget", "--connectors", str(tmp_path / "mine"))
    assert "gadget" in shown.stdout
