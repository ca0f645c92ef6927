import base64
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from authbridge.vault import (
    AssociatedData,
    Keyring,
    VaultError,
    from_env,
    keyfile,
    load,
    load_or_create,
    save,
)

AAD = AssociatedData(table="auths", column="credentials", row_id="1")

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def document(primary: str = "k1", **keys: object) -> str:
    return json.dumps({"primary": primary, "keys": keys or {"k1": encode(bytes(32))}})


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_load_or_create_creates_the_folder_and_a_keyring(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "keys.json"

    keyring, created = load_or_create(path)

    assert created
    assert re.fullmatch(r"[0-9a-f]{12}", keyring.primary)  # random: never a lost key's id
    saved = json.loads(path.read_text())
    assert saved["primary"] == keyring.primary
    key = keyring.export_keys()[keyring.primary]
    assert base64.urlsafe_b64decode(saved["keys"][keyring.primary]) == key
    assert len(key) == 32
    assert load_or_create(tmp_path / "other.json")[0].primary != keyring.primary


def test_a_key_file_of_numbered_ids_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(document("k2", k1=encode(bytes(32)), k2=encode(bytes(range(32)))))
    path.chmod(0o600)
    written = Keyring({"k1": bytes(32), "k2": bytes(range(32))}, "k2").encrypt(b"old", aad=AAD)

    keyring, created = load_or_create(path)

    assert not created
    assert keyring.key_ids == ("k1", "k2")
    assert keyring.decrypt(written, aad=AAD) == b"old"


@posix_only
@pytest.mark.usefixtures("permissive_umask")
def test_a_created_key_file_has_mode_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"

    load_or_create(path)

    assert mode_of(path) == 0o600


def test_load_or_create_loads_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first, _ = load_or_create(path)
    token = first.encrypt(b"secret", aad=AAD)

    second, created = load_or_create(path)

    assert not created
    assert second.decrypt(token, aad=AAD) == b"secret"


def test_a_key_file_created_meanwhile_by_another_process_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    winner = Keyring.generate()
    write_temporary = keyfile._write_temporary

    def lose_the_race(target: Path, keyring: Keyring) -> Path:
        os.replace(write_temporary(target, winner), target)
        return write_temporary(target, keyring)

    monkeypatch.setattr(keyfile, "_write_temporary", lose_the_race)

    keyring, created = load_or_create(path)

    assert not created
    assert keyring.export_keys() == winner.export_keys()
    assert load(path).export_keys() == winner.export_keys()
    assert [entry.name for entry in tmp_path.iterdir()] == ["keys.json"]


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"

    keyring, _ = load_or_create(path)
    save(path, keyring.with_new_primary()[0])

    assert [entry.name for entry in tmp_path.iterdir()] == ["keys.json"]


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    load_or_create(path)
    path.chmod(mode)

    with pytest.raises(VaultError) as caught:
        load_or_create(path)

    message = str(caught.value)
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message


@posix_only
def test_an_owner_only_read_only_key_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    created, _ = load_or_create(path)
    path.chmod(0o400)

    assert load(path).export_keys() == created.export_keys()


def test_save_replaces_the_file_and_load_reads_it_back(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyring, _ = load_or_create(path)
    old_token = keyring.encrypt(b"old", aad=AAD)
    rotated, new_id = keyring.with_new_primary()

    save(path, rotated)
    loaded = load(path)

    assert loaded.primary == new_id
    assert loaded.key_ids == (keyring.primary, new_id)
    assert loaded.decrypt(old_token, aad=AAD) == b"old"
    assert loaded.export_keys() == rotated.export_keys()


@posix_only
@pytest.mark.usefixtures("permissive_umask")
def test_save_writes_mode_0600_over_a_looser_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{}")
    path.chmod(0o644)

    save(path, Keyring.generate())

    assert mode_of(path) == 0o600


def test_a_malformed_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    save(path, Keyring.generate())
    path.write_text("{not json")

    with pytest.raises(VaultError, match=f"key file {path} is not valid JSON"):
        load(path)


def test_a_missing_key_file_is_a_vault_error(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="cannot read the key file"):
        load(tmp_path / "absent.json")


def test_from_env_reads_the_key_file_format(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyring, _ = load_or_create(path)
    rotated, _ = keyring.with_new_primary()
    save(path, rotated)

    from_variable = from_env(path.read_text())

    assert from_variable.primary == rotated.primary
    assert from_variable.export_keys() == rotated.export_keys()


def test_from_env_accepts_unpadded_base64url() -> None:
    key = bytes(range(224, 256))
    value = document(k1=encode(key).rstrip("="))

    assert from_env(value).export_keys() == {"k1": key}


SECRET_KEY_TEXT = encode(bytes(range(100, 116)))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "AUTHBRIDGE_KEYS is empty"),
        ("   ", "AUTHBRIDGE_KEYS is empty"),
        ("{not json", "AUTHBRIDGE_KEYS is not valid JSON"),
        ('["k1"]', "AUTHBRIDGE_KEYS must be a JSON object"),
        ('{"keys": {}}', 'AUTHBRIDGE_KEYS needs "primary"'),
        ('{"primary": "k1"}', 'AUTHBRIDGE_KEYS needs "keys"'),
        ('{"primary": "k1", "keys": {}}', 'AUTHBRIDGE_KEYS needs "keys"'),
        ('{"primary": "k1", "keys": ["x"]}', 'AUTHBRIDGE_KEYS needs "keys"'),
        (document("k 1", **{"k 1": encode(bytes(32))}), "AUTHBRIDGE_KEYS: key id 'k 1' is invalid"),
        (document(k1=12), "AUTHBRIDGE_KEYS: key 'k1' must be a base64url string"),
        (document(k1="a+b/"), "AUTHBRIDGE_KEYS: key 'k1' must be a base64url string"),
        (document(k1="abcde"), "AUTHBRIDGE_KEYS: key 'k1' is not valid base64url"),
        (document(k1=SECRET_KEY_TEXT), "AUTHBRIDGE_KEYS: key 'k1' must be 32 bytes"),
        (document("k2"), "AUTHBRIDGE_KEYS: the primary key id 'k2' is not one of the keys"),
        ('{"primary": "k1", "keys": {}, "note": 1}', "AUTHBRIDGE_KEYS has unknown fields: note"),
        (
            '{"primary": "k1", "keys": {"k1": "a", "k1": "b"}}',
            "AUTHBRIDGE_KEYS names 'k1' twice",
        ),
    ],
)
def test_from_env_explains_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(VaultError) as caught:
        from_env(value)

    assert str(caught.value).startswith(message)
    assert SECRET_KEY_TEXT not in str(caught.value)
