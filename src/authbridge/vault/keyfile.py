"""Load and save a keyring: a key file in the data folder, or the ``AUTHBRIDGE_KEYS`` variable.

Both hold the same JSON document, key material in base64url (padding optional)::

    {"primary": "k2", "keys": {"k1": "<32 bytes, base64url>", "k2": "<32 bytes, base64url>"}}

The embedded install keeps it in a key file created on first run with mode 0600. A deployment
that runs several processes, or keeps secrets out of its disks, sets ``AUTHBRIDGE_KEYS`` to the
document instead (for example ``AUTHBRIDGE_KEYS="$(cat keys.json)"``) and passes the value to
:func:`from_env`. Key ids stay in order, oldest first, so rotation appends a key and moves
``primary`` to it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from authbridge.errors import VaultError
from authbridge.vault.keyring import Keyring

ENV_VAR = "AUTHBRIDGE_KEYS"

_FILE_MODE = 0o600
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_CHECKS_PERMISSIONS = os.name == "posix"


def load_or_create(path: Path) -> tuple[Keyring, bool]:
    """Load the key file at ``path``, or create it with a new keyring; return it and ``created``.

    A new file's folder is created as needed, and the file is written in full with mode 0600
    before it appears under its name. When another process creates the file first, its keyring
    is loaded and ``created`` is false, so concurrent first runs agree on one key.
    """
    if path.exists():
        return load(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    keyring = Keyring.generate()
    temporary = _write_temporary(path, keyring)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return load(path), False
    finally:
        temporary.unlink()
    _sync_folder(path.parent)
    return keyring, True


def load(path: Path) -> Keyring:
    """Read the key file at ``path``; refuse it when other users may read or change it.

    The mode check runs on POSIX systems, where any group or other permission bit is refused.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise VaultError(f"cannot read the key file {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise VaultError(f"the key file {path} is not a regular file")
        mode = stat.S_IMODE(status.st_mode)
        if _CHECKS_PERMISSIONS and mode & 0o077:
            raise VaultError(
                f"the key file {path} has mode {mode:04o}, so other users may read it; "
                f"restrict it to its owner with: chmod 600 {path}"
            )
        document = file.read()
    return _parse(document, f"the key file {path}")


def save(path: Path, keyring: Keyring) -> None:
    """Write ``keyring`` to ``path`` atomically, replacing any file there, with mode 0600."""
    temporary = _write_temporary(path, keyring)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def from_env(value: str) -> Keyring:
    """Read a keyring from the value of the ``AUTHBRIDGE_KEYS`` environment variable."""
    return _parse(value.encode("utf-8"), ENV_VAR)


def _parse(document: bytes, source: str) -> Keyring:
    if not document.strip():
        raise VaultError(f"{source} is empty; it must hold the keyring JSON")
    try:
        data = json.loads(document, object_pairs_hook=_reject_duplicates)
    except UnicodeDecodeError:
        raise VaultError(f"{source} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise VaultError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except _DuplicateName as error:
        raise VaultError(f"{source} names '{error.name}' twice") from None
    if not isinstance(data, dict):
        raise VaultError(f'{source} must be a JSON object like {{"primary": ..., "keys": ...}}')
    unknown = sorted(set(data) - {"primary", "keys"})
    if unknown:
        raise VaultError(f"{source} has unknown fields: {', '.join(unknown)}")
    primary = data.get("primary")
    encoded_keys = data.get("keys")
    if not isinstance(primary, str):
        raise VaultError(f'{source} needs "primary": the key id (a string) that encrypts')
    if not isinstance(encoded_keys, dict) or not encoded_keys:
        raise VaultError(f'{source} needs "keys": an object of key id to base64url key')
    keys = {
        key_id: _decode_key(key_id, encoded, source) for key_id, encoded in encoded_keys.items()
    }
    try:
        return Keyring(keys, primary)
    except VaultError as error:
        raise VaultError(f"{source}: {error.message}") from None


class _DuplicateName(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    for name in names:
        if names.count(name) > 1:
            raise _DuplicateName(name)
    return dict(pairs)


def _decode_key(key_id: str, encoded: object, source: str) -> bytes:
    if not isinstance(encoded, str) or not _BASE64URL.fullmatch(encoded):
        raise VaultError(f"{source}: key '{key_id}' must be a base64url string")
    unpadded = encoded.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise VaultError(f"{source}: key '{key_id}' is not valid base64url") from None


def _encode(keyring: Keyring) -> bytes:
    keys = {
        key_id: base64.urlsafe_b64encode(key).decode("ascii")
        for key_id, key in keyring.export_keys().items()
    }
    return json.dumps({"primary": keyring.primary, "keys": keys}, indent=2).encode("ascii") + b"\n"


def _write_temporary(path: Path, keyring: Keyring) -> Path:
    """Write the key file's content to a new owner-only file beside ``path``; return its path."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as file:
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), _FILE_MODE)  # O_CREAT's mode is narrowed by the umask
            file.write(_encode(keyring))
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the platform allows opening a folder."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
