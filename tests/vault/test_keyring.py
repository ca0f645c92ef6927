import base64
import logging
import re
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import authbridge.vault
from authbridge.errors import AuthBridgeError
from authbridge.vault import AssociatedData, DecryptionFailed, KeyNotFound, Keyring, VaultError

AAD = AssociatedData(table="auths", column="credentials", row_id="42")
SECRET = b"refresh-token-7f3a9c1e5b2d"

# Written by format version 1 with key k7 = bytes(range(32)); it must stay readable forever.
GOLDEN_KEY = bytes(range(32))
GOLDEN_TOKEN = bytes.fromhex(
    "01026b37540941c24639197b1836183696069441f379b4c86c93239a4e361c7520b6acf7362b0d27ee446708a4"
)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def test_round_trip(keyring: Keyring) -> None:
    assert keyring.decrypt(keyring.encrypt(SECRET, aad=AAD), aad=AAD) == SECRET


def test_round_trip_of_empty_plaintext(keyring: Keyring) -> None:
    assert keyring.decrypt(keyring.encrypt(b"", aad=AAD), aad=AAD) == b""


def test_decrypts_a_golden_version_1_token() -> None:
    keyring = Keyring({"k7": GOLDEN_KEY}, "k7")

    assert keyring.decrypt(GOLDEN_TOKEN, aad=AAD) == b"golden secret"


def test_token_layout_is_version_key_id_nonce_then_aes_gcm(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)
    key_id = keyring.primary.encode()
    header = 2 + len(key_id)

    assert token[0] == 1
    assert token[1] == len(key_id)
    assert token[2:header] == key_id
    nonce, sealed = token[header : header + 12], token[header + 12 :]
    assert len(sealed) == len(SECRET) + 16
    cipher = AESGCM(keyring.export_keys()[keyring.primary])
    assert cipher.decrypt(nonce, sealed, token[:header] + AAD.encode()) == SECRET


def test_equal_plaintexts_give_different_tokens(keyring: Keyring) -> None:
    tokens = {keyring.encrypt(SECRET, aad=AAD) for _ in range(50)}
    header = 2 + len(keyring.primary)
    nonces = {token[header : header + 12] for token in tokens}

    assert len(tokens) == 50
    assert len(nonces) == 50


def test_plaintext_never_appears_in_the_token(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)
    json_token = keyring.encrypt_json({"access_token": SECRET.decode()}, aad=AAD)

    for sealed in (token, json_token):
        assert SECRET not in sealed
        assert SECRET[:8] not in sealed
        assert base64.b64encode(SECRET)[:8] not in sealed


def test_every_flipped_bit_fails_to_decrypt(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)

    for index in range(len(token)):
        for bit in (0x01, 0x80):
            altered = bytearray(token)
            altered[index] ^= bit
            with pytest.raises((DecryptionFailed, KeyNotFound)):
                keyring.decrypt(bytes(altered), aad=AAD)


def test_truncated_or_extended_tokens_fail_to_decrypt(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)

    for length in range(len(token)):
        with pytest.raises(DecryptionFailed):
            keyring.decrypt(token[:length], aad=AAD)
    with pytest.raises(DecryptionFailed):
        keyring.decrypt(token + b"\x00", aad=AAD)


def test_unsupported_version_is_named(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)

    with pytest.raises(DecryptionFailed) as caught:
        keyring.decrypt(b"\x02" + token[1:], aad=AAD)

    assert "version 2 is not supported" in caught.value.diagnosis


@pytest.mark.parametrize(
    "moved_to",
    [
        AssociatedData(table="connector_configs", column="credentials", row_id="42"),
        AssociatedData(table="auths", column="profile", row_id="42"),
        AssociatedData(table="auths", column="credentials", row_id="43"),
    ],
    ids=["other table", "other column", "other row"],
)
def test_a_token_moved_elsewhere_fails(keyring: Keyring, moved_to: AssociatedData) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)

    with pytest.raises(DecryptionFailed) as caught:
        keyring.decrypt(token, aad=moved_to)

    diagnosis = caught.value.diagnosis
    assert f"{moved_to.table}.{moved_to.column} of row '{moved_to.row_id}'" in diagnosis
    assert f"(key '{keyring.primary}')" in diagnosis
    for text in (diagnosis, str(caught.value)):
        assert SECRET.decode() not in text
        assert token.hex() not in text
    assert caught.value.code == "decryption_failed"


def test_the_message_of_a_failure_names_nothing_of_the_storage(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)
    lost = Keyring.generate()
    moved = AssociatedData(table="auths", column="credentials", row_id="43")

    for attempt in (
        lambda: keyring.decrypt(token, aad=moved),
        lambda: lost.decrypt(token, aad=AAD),
    ):
        with pytest.raises(DecryptionFailed) as caught:
            attempt()
        error = caught.value
        assert (error.table, error.column, error.key_id) == (
            "auths",
            "credentials",
            keyring.primary,
        )
        for internal in ("auths", "credentials", error.row_id, keyring.primary):
            assert internal in error.diagnosis
            assert internal not in error.message
            assert internal not in str(error)


def location() -> AssociatedData:
    return AssociatedData(table="auths", column="credentials", row_id=str(uuid.uuid4()))


def alerts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "authbridge.vault"]


def test_an_unreadable_value_is_alerted_once_per_location(
    keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = location(), location()
    altered = bytearray(keyring.encrypt(SECRET, aad=first))
    altered[-1] ^= 1

    for _ in range(3):
        for where in (first, second):
            with pytest.raises(DecryptionFailed):
                keyring.decrypt_json(bytes(altered), aad=where)

    lines = alerts(caplog)
    assert [record.levelno for record in lines] == [logging.ERROR, logging.ERROR]
    for record, where in zip(lines, (first, second), strict=True):
        message = record.getMessage()
        assert f"table=auths column=credentials row_id={where.row_id}" in message
        assert f"key_id={keyring.primary}" in message
        assert SECRET.decode() not in message


def test_a_missing_key_is_alerted_once_per_location_too(
    keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    where = location()
    token = keyring.encrypt(SECRET, aad=where)
    lost = Keyring.generate()

    for _ in range(2):
        with pytest.raises(KeyNotFound):
            lost.decrypt(token, aad=where)

    (line,) = alerts(caplog)
    assert f"row_id={where.row_id} key_id={keyring.primary} (key_not_found)" in line.getMessage()


def test_unreadable_tells_why_without_alerting(
    keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    where = location()
    token = keyring.encrypt(SECRET, aad=where)

    assert keyring.unreadable(token, aad=where) is None
    assert isinstance(keyring.unreadable(token, aad=location()), DecryptionFailed)
    assert isinstance(Keyring.generate().unreadable(token, aad=where), KeyNotFound)
    assert alerts(caplog) == []


def test_associated_data_encoding_is_canonical() -> None:
    assert AssociatedData("a", "bc", "1").encode() != AssociatedData("ab", "c", "1").encode()
    assert AssociatedData("t", "a", "bc").encode() != AssociatedData("t", "ab", "c").encode()
    assert AssociatedData("t", "c", "1").encode() == AssociatedData("t", "c", "1").encode()


def test_associated_data_bytes_never_change() -> None:
    # Every stored secret was sealed with these bytes: a different encoding would make the
    # whole database undecryptable.
    assert AssociatedData("authentications", "credentials", "é-1").encode() == (
        b"authbridge.vault.v1"
        + b"\x00\x00\x00\x0fauthentications"
        + b"\x00\x00\x00\x0bcredentials"
        + b"\x00\x00\x00\x04\xc3\xa9-1"
    )


def test_shifting_a_boundary_between_parts_fails(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AssociatedData("a", "bc", "1"))

    with pytest.raises(DecryptionFailed):
        keyring.decrypt(token, aad=AssociatedData("ab", "c", "1"))


@pytest.mark.parametrize("part", ["table", "column", "row_id"])
def test_associated_data_parts_must_not_be_empty(part: str) -> None:
    values = {"table": "t", "column": "c", "row_id": "1", part: ""}

    with pytest.raises(ValueError, match=part):
        AssociatedData(**values)


def test_old_key_still_decrypts_after_rotation(keyring: Keyring) -> None:
    old_token = keyring.encrypt(SECRET, aad=AAD)

    rotated, new_id = keyring.with_new_primary()
    new_token = rotated.encrypt(SECRET, aad=AAD)

    assert rotated.primary == new_id
    assert rotated.key_ids == (keyring.primary, new_id)
    assert rotated.decrypt(old_token, aad=AAD) == SECRET
    assert rotated.key_id_of(old_token) == keyring.primary
    assert rotated.key_id_of(new_token) == new_id
    assert rotated.needs_reencrypt(old_token)
    assert not rotated.needs_reencrypt(new_token)


def test_rotation_leaves_the_original_keyring_unchanged(keyring: Keyring) -> None:
    primary = keyring.primary
    rotated, _ = keyring.with_new_primary()

    assert keyring.primary == primary
    assert keyring.key_ids == (primary,)
    with pytest.raises(KeyNotFound):
        keyring.decrypt(rotated.encrypt(SECRET, aad=AAD), aad=AAD)


RANDOM_KEY_ID = re.compile(r"[0-9a-f]{12}")


def test_a_new_keyring_gets_a_random_key_id() -> None:
    ids = {Keyring.generate().primary for _ in range(20)}

    assert len(ids) == 20
    assert all(RANDOM_KEY_ID.fullmatch(key_id) for key_id in ids)
    assert "k1" not in ids


def test_each_rotation_adds_a_fresh_key_with_a_random_id(keyring: Keyring) -> None:
    ring, new_ids = keyring, []
    for _ in range(3):
        ring, new_id = ring.with_new_primary()
        new_ids.append(new_id)

    keys = ring.export_keys()
    assert ring.key_ids == (keyring.primary, *new_ids)
    assert ring.primary == new_ids[-1]
    assert all(RANDOM_KEY_ID.fullmatch(key_id) for key_id in new_ids)
    assert len(set(ring.key_ids)) == 4
    assert len(set(keys.values())) == 4
    assert keys[keyring.primary] == keyring.export_keys()[keyring.primary]


def test_a_keyring_of_numbered_ids_stays_readable_and_rotates() -> None:
    keyring = Keyring({"k1": bytes(32), "k2": bytes(range(32))}, "k2")
    token = keyring.encrypt(SECRET, aad=AAD)

    rotated, new_id = keyring.with_new_primary()

    assert RANDOM_KEY_ID.fullmatch(new_id)
    assert rotated.key_ids == ("k1", "k2", new_id)
    assert rotated.decrypt(token, aad=AAD) == SECRET


def test_unknown_key_id_raises_key_not_found(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)
    other = Keyring({"k9": AESGCM.generate_key(bit_length=256)}, "k9")

    with pytest.raises(KeyNotFound) as caught:
        other.decrypt(token, aad=AAD)

    assert caught.value.key_id == keyring.primary
    assert f"no key with id '{keyring.primary}'" in caught.value.diagnosis
    assert keyring.primary not in str(caught.value)
    assert caught.value.code == "key_not_found"
    for key in (*keyring.export_keys().values(), *other.export_keys().values()):
        assert key.hex() not in str(caught.value)


def test_same_key_id_with_another_key_fails_to_decrypt(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)
    impostor = Keyring.generate(keyring.primary)

    with pytest.raises(DecryptionFailed) as caught:
        impostor.decrypt(token, aad=AAD)

    assert not isinstance(caught.value, KeyNotFound)
    assert f"(key '{keyring.primary}')" in caught.value.diagnosis


def test_key_id_of_a_malformed_token_fails(keyring: Keyring) -> None:
    with pytest.raises(DecryptionFailed):
        keyring.key_id_of(b"\x01\x02k1")


def test_key_material_never_appears_in_repr(keyring: Keyring) -> None:
    rotated, _ = keyring.with_new_primary()

    for text in (repr(rotated), str(rotated), f"{rotated!r} {[rotated]}"):
        for key in rotated.export_keys().values():
            assert key.hex() not in text
            assert base64.urlsafe_b64encode(key).decode().rstrip("=") not in text
            assert repr(key) not in text
    assert repr(rotated) == (
        f"Keyring(primary={rotated.primary!r}, key_ids=({keyring.primary!r}, {rotated.primary!r}))"
    )


def test_json_round_trip_uses_compact_sorted_json(keyring: Keyring) -> None:
    value = {"b": [1, 2], "a": {"é": None}}

    token = keyring.encrypt_json(value, aad=AAD)

    assert keyring.decrypt_json(token, aad=AAD) == value
    assert keyring.decrypt(token, aad=AAD) == '{"a":{"é":null},"b":[1,2]}'.encode()


def test_decrypt_json_of_non_json_fails_without_showing_it(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET, aad=AAD)

    with pytest.raises(DecryptionFailed) as caught:
        keyring.decrypt_json(token, aad=AAD)
    assert "not JSON" in caught.value.diagnosis
    assert SECRET.decode() not in caught.value.diagnosis
    assert SECRET.decode() not in str(caught.value)


def test_encrypt_json_refuses_values_that_are_not_json(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="JSON"):
        keyring.encrypt_json({"ratio": float("nan")}, aad=AAD)


@pytest.mark.parametrize(
    ("keys", "primary", "message"),
    [
        ({}, "k1", "at least one key"),
        ({"k1": bytes(16)}, "k1", "must be 32 bytes"),
        ({"k1": bytes(33)}, "k1", "must be 32 bytes"),
        ({"k1": bytes(32)}, "k2", "'k2' is not one of the keys"),
        ({"": bytes(32)}, "", "key id '' is invalid"),
        ({"k 1": bytes(32)}, "k 1", "key id 'k 1' is invalid"),
        ({"k" * 33: bytes(32)}, "k" * 33, "is invalid"),
    ],
)
def test_keyring_rejects_invalid_keys(keys: dict[str, bytes], primary: str, message: str) -> None:
    with pytest.raises(VaultError, match=re.escape(message)):
        Keyring(keys, primary)


def test_vault_package_exports_a_curated_api() -> None:
    exported = set(authbridge.vault.__all__)

    assert exported == {
        "ENV_VAR",
        "AssociatedData",
        "DecryptionFailed",
        "KeyNotFound",
        "Keyring",
        "VaultError",
        "from_env",
        "load",
        "load_or_create",
        "save",
    }
    for name in exported:
        assert getattr(authbridge.vault, name) is not None


def test_vault_errors_belong_to_the_error_tree() -> None:
    assert issubclass(DecryptionFailed, VaultError)
    assert issubclass(KeyNotFound, DecryptionFailed)
    assert issubclass(VaultError, AuthBridgeError)
    assert (VaultError.code, VaultError.status) == ("vault_error", 500)
