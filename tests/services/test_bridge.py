"""The bridge's key source: a running server reads a key file rotated under it."""

from __future__ import annotations

import os
from pathlib import Path

from authbridge.services.bridge import KeySource
from authbridge.vault import AssociatedData, Keyring, load_or_create, save

AAD = AssociatedData(table="authentications", column="credentials_ct", row_id="a1")


def test_a_rotated_key_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyring, _ = load_or_create(path)
    source = KeySource(keyring, path)
    rotated, _ = keyring.with_new_primary()
    save(path, rotated)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    sealed_by_rotation = rotated.encrypt(b"secret", aad=AAD)
    assert source.current.primary == rotated.primary
    assert source.current.decrypt(sealed_by_rotation, aad=AAD) == b"secret"


def test_keys_from_the_environment_never_change(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    source = KeySource(keyring)
    assert source.current is keyring
