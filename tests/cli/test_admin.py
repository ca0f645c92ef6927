"""``authbridge db``, ``keys``, ``tokens`` and ``users`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.cli import app
from authbridge.runtime import Settings, open_database
from authbridge.storage import Database
from authbridge.storage.migrate import current_revision, head_revision
from authbridge.storage.models import Authentication, MasterToken
from authbridge.tenancy.repository import (
    EndUserRepository,
    EnvironmentRepository,
    MasterTokenRepository,
)
from authbridge.vault import AssociatedData, Keyring, load
from tests.support.cli import both
from tests.support.processes import processes

runner = CliRunner()
TOKEN = re.compile(r"abk_[A-Za-z0-9_-]{43}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def failed(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result


# -- runtime -----------------------------------------------------------------------------------


def test_settings_defaults_and_overrides() -> None:
    defaults = Settings.from_env({})
    assert defaults.home == Path(".authbridge")
    assert defaults.key_file == Path(".authbridge/keys.json")
    assert defaults.public_url is None
    assert defaults.base_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert defaults.database_url is None
    assert not defaults.keys_from_env
    custom = Settings.from_env(
        {
            "AUTHBRIDGE_HOME": "/srv/ab",
            "AUTHBRIDGE_DATABASE_URL": "postgres://u@db/ab",
            "AUTHBRIDGE_KEYS": '{"primary": "k1"}',
            "AUTHBRIDGE_PUBLIC_URL": "https://auth.example.com/",
        }
    )
    assert custom.home == Path("/srv/ab")
    assert custom.database_url == "postgresql+psycopg://u@db/ab"
    assert custom.keys_from_env
    assert custom.public_url == "https://auth.example.com"
    assert custom.base_url("127.0.0.1", 9000) == "https://auth.example.com"


def test_the_request_limits_are_settings_with_defaults() -> None:
    defaults = Settings.from_env({})
    assert defaults.proxy_max_body == 10 * 1024 * 1024
    assert (defaults.header_timeout, defaults.body_timeout) == (10.0, 30.0)
    assert defaults.max_connections == 1000
    custom = Settings.from_env(
        {
            "AUTHBRIDGE_PROXY_MAX_BODY_BYTES": "1000",
            "AUTHBRIDGE_HEADER_TIMEOUT_SECONDS": "2.5",
            "AUTHBRIDGE_BODY_TIMEOUT_SECONDS": "5",
            "AUTHBRIDGE_MAX_CONNECTIONS": "64",
        }
    )
    assert custom.proxy_max_body == 1000
    assert (custom.header_timeout, custom.body_timeout) == (2.5, 5.0)
    assert custom.max_connections == 64
    for name, value in [
        ("AUTHBRIDGE_PROXY_MAX_BODY_BYTES", "10MB"),
        ("AUTHBRIDGE_HEADER_TIMEOUT_SECONDS", "0"),
        ("AUTHBRIDGE_BODY_TIMEOUT_SECONDS", "-1"),
        ("AUTHBRIDGE_MAX_CONNECTIONS", "1.5"),
    ]:
        with pytest.raises(Exception, match=name):
            Settings.from_env({name: value})


def test_settings_reject_bad_public_url() -> None:
    with pytest.raises(Exception, match="AUTHBRIDGE_PUBLIC_URL"):
        Settings.from_env({"AUTHBRIDGE_PUBLIC_URL": "ftp://x"})


def test_open_database_migrates_on_first_use(home: Path) -> None:
    settings = Settings.from_env()
    url = settings.resolved_database_url()
    assert current_revision(url) is None
    open_database(settings).dispose()
    assert current_revision(url) == head_revision()


# -- db upgrade --------------------------------------------------------------------------------


@both
def test_db_upgrade_prints_revision(target: str) -> None:
    result = ok("db", "upgrade")
    assert f"revision {head_revision()}" in result.stdout
    assert current_revision(target) == head_revision()
    assert f"revision {head_revision()}" in ok("db", "upgrade").stdout  # and again


def test_bad_database_url_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", "mysql://root:hunter2@db/ab")
    result = failed("db", "upgrade")
    assert "not supported" in result.output
    assert "hunter2" not in result.output


def test_unreachable_database_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", "postgresql://nobody:pw@127.0.0.1:1/none")
    result = failed("tokens", "list")
    assert "database error" in result.output


# -- keys: first run ---------------------------------------------------------------------------


def test_first_run_creates_private_key_file_and_warns(home: Path) -> None:
    result = ok("tokens", "list")
    key_file = home / "keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "back it up" in result.stderr
    assert str(key_file) in result.stderr
    again = ok("tokens", "list")
    assert "back it up" not in again.stderr


def test_unreadable_key_file_is_a_clear_error(home: Path) -> None:
    home.mkdir()
    key_file = home / "keys.json"
    key_file.write_text("{not json")
    os.chmod(key_file, 0o600)
    result = failed("tokens", "list")
    assert "not valid JSON" in result.output
    os.chmod(key_file, 0o644)
    assert "chmod 600" in failed("tokens", "list").output


# -- keys: a missing key file ------------------------------------------------------------------


@both
def test_a_missing_key_file_is_not_replaced_when_the_database_holds_secrets(
    target: str, home: Path, tmp_path: Path
) -> None:
    ok("users", "add", "user-1")  # the key file, and the default environment's secret
    key_file = home / "keys.json"
    original = load(key_file)
    backup = tmp_path / "backup.json"
    key_file.rename(backup)

    result = failed("tokens", "list")

    error = result.stderr
    assert f"the key file {key_file} is missing" in error
    assert f"written with key '{original.primary}'" in error
    assert "environments 1" in error
    assert "AUTHBRIDGE_KEYS" in error
    assert "authbridge keys check" in error
    assert "Created a new key file" not in error
    assert not key_file.exists()
    # Once restored, every stored secret reads again.
    backup.rename(key_file)
    assert "can be decrypted" in ok("keys", "check").stdout
    assert "user-1" in ok("users", "list").stdout


@both
@pytest.mark.processes
def test_serve_refuses_to_start_without_the_key_file_of_its_secrets(
    target: str, home: Path, tmp_path: Path
) -> None:
    ok("users", "add", "user-1")
    key_file = home / "keys.json"
    key_file.rename(tmp_path / "backup.json")
    environ = {"AUTHBRIDGE_HOME": str(home)}
    if not target.startswith("sqlite"):
        environ["AUTHBRIDGE_DATABASE_URL"] = target
    with processes(tmp_path / "logs") as started:
        server = started.server(environ)
        server.spawn()
        assert server.popen is not None
        try:
            code = server.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve started without its key file:\n{server.tail()}")
        output = server.output()
    assert code == 1, output
    assert f"Error: the key file {key_file} is missing" in output
    assert "Traceback" not in output
    assert "Created a new key file" not in output
    assert not key_file.exists()


def _tamper(database: Database, auth_id: str) -> None:
    with database.session() as session:
        row = session.get(Authentication, auth_id)
        assert row is not None
        altered = bytearray(row.credentials_ct)
        altered[-1] ^= 1
        row.credentials_ct = bytes(altered)


def _seal_with_a_lost_key(database: Database, auth_id: str) -> str:
    lost = Keyring.generate()
    with database.session() as session:
        row = session.get(Authentication, auth_id)
        assert row is not None
        row.credentials_ct = lost.encrypt_json(
            {"apiKey": "x"}, aad=AssociatedData("authentications", "credentials_ct", auth_id)
        )
    return lost.primary


@both
def test_keys_check_names_every_secret_it_cannot_read(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    altered, sealed_elsewhere, *_ = _seed_authentications(database, keyring, 4)
    assert "Every stored secret (7) can be decrypted" in ok("keys", "check").stdout
    _tamper(database, altered)
    lost_id = _seal_with_a_lost_key(database, sealed_elsewhere)

    result = failed("keys", "check", "--batch-size", "2")

    assert re.search(rf"authentications\s*│\s*6\s*│\s*{lost_id} \(1\)\s*│\s*1", result.stdout)
    assert (
        f"cannot decrypt authentications.credentials_ct of row '{altered}' "
        f"(key '{keyring.primary}'): the stored value was altered"
    ) in result.stderr
    assert (
        f"cannot decrypt authentications.credentials_ct of row '{sealed_elsewhere}' "
        f"(key '{lost_id}'): no key with id '{lost_id}'"
    ) in result.stderr
    assert result.stderr.rstrip().endswith(
        f"Error: 2 stored secret(s) cannot be decrypted; restore the key file (or "
        f"AUTHBRIDGE_KEYS) that holds key '{lost_id}' and restore the altered rows from a "
        "database backup."
    )
    assert "unreadable stored secret" not in result.stderr  # a check alerts nobody


# -- tokens ------------------------------------------------------------------------------------


@both
def test_tokens_create_prints_a_working_token_once(opened: tuple[Database, Keyring]) -> None:
    database, _ = opened
    result = ok("tokens", "create", "backend")
    tokens = TOKEN.findall(result.stdout)
    assert len(tokens) == 1
    assert "only time" in result.stderr
    with database.session() as session:
        record = MasterTokenRepository(session).verify(tokens[0])
        assert record is not None
        assert record.name == "backend"
        stored = session.scalars(select(MasterToken)).all()
    assert len(stored) == 1
    assert tokens[0] not in repr([vars(row) for row in stored])
    listing = ok("tokens", "list").stdout
    assert tokens[0] not in listing
    assert record.id in listing
    assert tokens[0][:8] in listing


def test_token_is_not_stored_in_plaintext(home: Path) -> None:
    token = TOKEN.findall(ok("tokens", "create", "backend").stdout)[0]
    files = list(home.glob("authbridge.db*"))
    assert files
    contents = b"".join(path.read_bytes() for path in files)
    assert b"backend" in contents  # the file is readable, and holds the row
    assert token.encode() not in contents
    assert token[8:].encode() not in contents


@both
def test_tokens_list_and_revoke(opened: tuple[Database, Keyring]) -> None:
    database, _ = opened
    first = TOKEN.findall(ok("tokens", "create", "one").stdout)[0]
    second = TOKEN.findall(ok("tokens", "create", "two").stdout)[0]
    with database.session() as session:
        record = MasterTokenRepository(session).verify(first)
        assert record is not None
        first_id = record.id
    listing = ok("tokens", "list").stdout
    assert "one" in listing
    assert "two" in listing
    assert f"Revoked master token {first_id}" in ok("tokens", "revoke", first_id).stdout
    with database.session() as session:
        tokens = MasterTokenRepository(session)
        assert tokens.verify(first) is None
        assert tokens.verify(second) is not None
    row = next(line for line in ok("tokens", "list").stdout.splitlines() if first_id in line)
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}\s*│\s*$", row), row
    assert "already revoked" in failed("tokens", "revoke", first_id).output


@both
def test_revoke_unknown_token_is_a_clear_error(target: str) -> None:
    result = failed("tokens", "revoke", "no-such-id")
    assert "no master token with id 'no-such-id'" in result.output


def test_unknown_environment_is_a_clear_error(home: Path) -> None:
    result = failed("tokens", "create", "x", "--env", "staging")
    assert "no environment named 'staging'" in result.output


# -- users -------------------------------------------------------------------------------------


@both
def test_users_add_and_list(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    ok("users", "add", "user-1", "--name", "Ada", "--email", "ada@example.com")
    ok("users", "add", "user-2")
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        users = EndUserRepository(session)
        ada = users.get_by_external_id(environment.id, "user-1")
        assert ada is not None
        assert (ada.name, ada.email) == ("Ada", "ada@example.com")
        assert users.get_by_external_id(environment.id, "user-2") is not None
    listing = ok("users", "list").stdout
    assert "2 end users" in listing
    assert ada.id in listing
    assert "ada@example.com" in listing


@both
def test_duplicate_external_id_is_a_clear_error(target: str) -> None:
    ok("users", "add", "user-1")
    result = failed("users", "add", "user-1", "--name", "Again")
    assert "external id 'user-1' already exists" in result.output
    assert "1 end users" in ok("users", "list").stdout


# -- keys rotate -------------------------------------------------------------------------------


def _seed_authentications(database: Database, keyring: Keyring, count: int) -> dict[str, dict]:
    expected = {}
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        user = EndUserRepository(session).create(environment.id, "user-1")
        auths = AuthenticationRepository(session, keyring)
        for index in range(count):
            credentials = {"apiKey": f"secret-{index}"}
            auth = auths.create(
                environment_id=environment.id,
                end_user_id=user.id,
                connector_key="freshdesk",
                connector_version="1",
                auth_type="api_key",
                name=f"auth {index}",
                credentials=credentials,
                profile={"n": index} if index % 2 else None,
            )
            expected[auth.id] = credentials
    return expected


@both
def test_keys_rotate_reencrypts_every_authentication(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    expected = _seed_authentications(database, keyring, 7)
    result = ok("keys", "rotate", "--batch-size", "3")
    assert "authentications" in result.stdout
    rotated = load(Settings.from_env().key_file)
    new_id = rotated.primary
    assert new_id != keyring.primary
    assert rotated.key_ids == (keyring.primary, new_id)
    with database.session() as session:
        auths = AuthenticationRepository(session, rotated)
        rows = session.scalars(select(Authentication)).all()
        assert {row.id for row in rows} == set(expected)
        for row in rows:
            assert rotated.key_id_of(row.credentials_ct) == new_id
            if row.profile_ct is not None:
                assert rotated.key_id_of(row.profile_ct) == new_id
            assert auths.credentials(row) == expected[row.id]
        environment = EnvironmentRepository(session, rotated).get_or_create()
        assert rotated.key_id_of(environment.jwt_secret_ct) == new_id
    assert f"encrypted with key '{new_id}'" in result.stdout
    # Running it again is safe: a third key, everything still readable.
    ok("keys", "rotate")
    third = load(Settings.from_env().key_file)
    assert third.key_ids == (keyring.primary, new_id, third.primary)
    with database.session() as session:
        auths = AuthenticationRepository(session, third)
        for row in session.scalars(select(Authentication)):
            assert third.key_id_of(row.credentials_ct) == third.primary
            assert auths.credentials(row) == expected[row.id]


def test_keys_rotate_says_that_running_servers_need_no_restart(home: Path) -> None:
    ok("users", "add", "user-1")

    result = ok("keys", "rotate")

    assert "Restart" not in result.stderr
    assert "no restart is needed" in result.stderr


def test_keys_rotate_reencrypt_only_does_not_add_a_key(home: Path) -> None:
    ok("users", "list")
    before = load(home / "keys.json")
    result = ok("keys", "rotate", "--reencrypt-only")
    after = load(home / "keys.json")
    assert after.key_ids == before.key_ids
    assert after.export_keys() == before.export_keys()
    assert "environments" in result.stdout


def test_keys_rotate_with_env_keys_prints_new_value_and_exits_1(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("users", "add", "user-1")  # creates the key file and the database
    document = (home / "keys.json").read_text()
    old_id = json.loads(document)["primary"]
    monkeypatch.setenv("AUTHBRIDGE_KEYS", document)
    (home / "keys.json").unlink()
    result = failed("keys", "rotate")
    assert "AUTHBRIDGE_KEYS" in result.stderr
    assert "restart every authbridge process" in result.stderr  # they read it when they start
    new_value = json.loads(result.stdout.strip().splitlines()[-1])
    new_id = new_value["primary"]
    assert set(new_value["keys"]) == {old_id, new_id}
    assert new_id != old_id
    assert not (home / "keys.json").exists()
    # After the operator sets the new value, --reencrypt-only finishes the rotation.
    monkeypatch.setenv("AUTHBRIDGE_KEYS", json.dumps(new_value))
    assert f"encrypted with key '{new_id}'" in ok("keys", "rotate", "--reencrypt-only").stdout
