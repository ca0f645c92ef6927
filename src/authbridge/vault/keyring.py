"""A keyring of AES-256-GCM keys that encrypts secrets bound to where they are stored.

A token (the stored form of one secret) describes itself, so a keyring holding several keys can
read tokens written by any of them while new writes use the primary key::

    version   1 byte     TOKEN_VERSION
    key id    1 byte     length n, then n ASCII bytes
    nonce     12 bytes   random for every encryption
    sealed    rest       AES-256-GCM ciphertext followed by its 16-byte tag

The GCM associated data is the token header (version and key id) followed by the canonical
encoding of :class:`AssociatedData`, so a token copied to another table, column or row, or
relabelled with another key id, fails authentication instead of decrypting.

A new key gets a random id (:func:`new_key_id`), never one a lost keyring may have used: a token
written by a key that is gone is then told apart as :class:`KeyNotFound`, instead of failing
to authenticate under an unrelated key of the same name. Key files of older versions, whose ids
were ``k1``, ``k2`` …, are read as they are.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authbridge.errors import DecryptionFailed, KeyNotFound, VaultError
from authbridge.vault.alerts import alert

TOKEN_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")

_AAD_LABEL = b"authbridge.vault.v1"
_KEY_ID_BYTES = 6


@dataclass(frozen=True)
class AssociatedData:
    """Where a secret is stored; a token decrypts only under the same table, column and row."""

    table: str
    column: str
    row_id: str

    def __post_init__(self) -> None:
        for name in ("table", "column", "row_id"):
            if not getattr(self, name):
                raise ValueError(f"AssociatedData.{name} must not be empty")

    def encode(self) -> bytes:
        """Return the canonical bytes: a label, then each part prefixed by its 4-byte length."""
        row_id = self.row_id.encode("utf-8")
        return _aad_prefix(self.table, self.column) + struct.pack(">I", len(row_id)) + row_id


@functools.cache
def _aad_prefix(table: str, column: str) -> bytes:
    """The label, the table and the column of associated data, encoded once per location kind
    (every credentials read decrypts with one)."""
    parts = [_AAD_LABEL]
    for text in (table, column):
        encoded = text.encode("utf-8")
        parts.append(struct.pack(">I", len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


@dataclass(frozen=True)
class _ParsedToken:
    header: bytes
    key_id: str
    nonce: bytes
    sealed: bytes


class Keyring:
    """An ordered set of 256-bit keys by key id, one of which (the primary) encrypts new values.

    A keyring is immutable: :meth:`with_new_primary` returns a new one. Its ``repr`` shows key ids
    only, never key material.
    """

    __slots__ = ("_ciphers", "_keys", "_primary")

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        """Hold ``keys`` (key id to 32 raw bytes, in order) with ``primary`` encrypting new values.

        Raises :class:`VaultError` when there is no key, a key id is not 1 to 32 characters of
        ``A-Z a-z 0-9 _ -``, a key is not 32 bytes, or ``primary`` is not one of the key ids.
        """
        if not keys:
            raise VaultError("a keyring needs at least one key")
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
                raise VaultError(
                    f"key id {key_id!r} is invalid: use 1 to 32 characters of A-Z, a-z, 0-9, _ or -"
                )
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                size = len(key) if isinstance(key, bytes) else type(key).__name__
                raise VaultError(f"key '{key_id}' must be {KEY_BYTES} bytes (256 bits), got {size}")
        if primary not in keys:
            raise VaultError(f"the primary key id '{primary}' is not one of the keys")
        self._keys: dict[str, bytes] = dict(keys)
        self._ciphers: dict[str, AESGCM] = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._primary = primary

    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        """Return a keyring holding one freshly generated primary key named ``key_id`` (by
        default a random id, :func:`new_key_id`)."""
        key_id = new_key_id() if key_id is None else key_id
        return cls({key_id: AESGCM.generate_key(bit_length=KEY_BYTES * 8)}, key_id)

    @property
    def primary(self) -> str:
        """The key id that encrypts new values."""
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, in order (oldest first for keyrings grown by :meth:`with_new_primary`)."""
        return tuple(self._keys)

    def export_keys(self) -> dict[str, bytes]:
        """Return the raw key material by key id. Only for writing the key file; never log it."""
        return dict(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(primary={self._primary!r}, key_ids={self.key_ids!r})"

    def encrypt(self, plaintext: bytes, *, aad: AssociatedData) -> bytes:
        """Encrypt ``plaintext`` with the primary key, bound to ``aad``; return the token.

        Every call draws a new random 96-bit nonce, so equal plaintexts give different tokens.
        Rotate the primary key well before it has encrypted 2**32 values.
        """
        header = _header(self._primary)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._primary].encrypt(nonce, plaintext, header + aad.encode())
        return header + nonce + sealed

    def decrypt(self, token: bytes, *, aad: AssociatedData) -> bytes:
        """Return the plaintext of ``token``, which must have been encrypted under ``aad``.

        Raises :class:`KeyNotFound` when the token names a key id this keyring lacks, and
        :class:`DecryptionFailed` when the token is malformed, altered or bound to another
        location; either is logged once per location (:mod:`authbridge.vault.alerts`).
        """
        try:
            return self._open(token, aad)
        except DecryptionFailed as error:
            alert(error)
            raise

    def unreadable(self, token: bytes, *, aad: AssociatedData) -> DecryptionFailed | None:
        """Why ``token`` cannot be decrypted under ``aad`` (``None`` when it can), without
        logging it: for a check of every stored value (``authbridge keys check``)."""
        try:
            self._open(token, aad)
        except DecryptionFailed as error:
            return error
        return None

    def _open(self, token: bytes, aad: AssociatedData) -> bytes:
        parsed = _parse(token, aad)
        cipher = self._ciphers.get(parsed.key_id)
        if cipher is None:
            raise KeyNotFound(parsed.key_id, table=aad.table, column=aad.column, row_id=aad.row_id)
        try:
            return cipher.decrypt(parsed.nonce, parsed.sealed, parsed.header + aad.encode())
        except InvalidTag:
            raise _failed(
                aad,
                "the stored value was altered, belongs to another table, column or row, or "
                "was written by another key of the same id",
                parsed.key_id,
            ) from None

    def encrypt_json(self, value: Any, *, aad: AssociatedData) -> bytes:
        """Encrypt ``value`` as compact JSON with sorted keys (see :meth:`encrypt`)."""
        document = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return self.encrypt(document.encode("utf-8"), aad=aad)

    def decrypt_json(self, token: bytes, *, aad: AssociatedData) -> Any:
        """Decrypt a token written by :meth:`encrypt_json` and return the JSON value."""
        plaintext = self.decrypt(token, aad=aad)
        try:
            return json.loads(plaintext.decode("utf-8"))
        except ValueError:
            error = _failed(aad, "it decrypts, but is not JSON", self.key_id_of(token))
            alert(error)
            raise error from None

    @staticmethod
    def key_id_of(token: bytes) -> str:
        """Return the id of the key that encrypted ``token``, without decrypting it (no keyring
        is needed: ``Keyring.key_id_of(token)``).

        Raises :class:`DecryptionFailed` when ``token`` is not a vault token.
        """
        return _parse(token, None).key_id

    def needs_reencrypt(self, token: bytes) -> bool:
        """Tell whether ``token`` was encrypted with a key other than the primary."""
        return self.key_id_of(token) != self._primary

    def with_new_primary(self) -> tuple[Keyring, str]:
        """Return a keyring with a freshly generated key added as primary, and its key id.

        Every existing key is kept so that older tokens still decrypt. The new id is random
        (:func:`new_key_id`) and none of the existing ones.
        """
        new_id = new_key_id()
        while new_id in self._keys:
            new_id = new_key_id()
        keys = {**self._keys, new_id: AESGCM.generate_key(bit_length=KEY_BYTES * 8)}
        return Keyring(keys, new_id), new_id


def new_key_id() -> str:
    """A random key id: 12 lowercase hex digits (48 random bits), so that a new keyring never
    reuses the id of a key that was lost."""
    return secrets.token_hex(_KEY_ID_BYTES)


def _failed(aad: AssociatedData, reason: str, key_id: str | None = None) -> DecryptionFailed:
    return DecryptionFailed(
        reason, table=aad.table, column=aad.column, row_id=aad.row_id, key_id=key_id
    )


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes([TOKEN_VERSION, len(encoded)]) + encoded


def _parse(token: bytes, aad: AssociatedData | None) -> _ParsedToken:
    def malformed(reason: str) -> DecryptionFailed:
        return DecryptionFailed(reason) if aad is None else _failed(aad, reason)

    if len(token) < 2:
        raise malformed("it is too short to be a vault token")
    if token[0] != TOKEN_VERSION:
        raise malformed(f"token version {token[0]} is not supported")
    key_id_end = 2 + token[1]
    raw_key_id = token[2:key_id_end]
    try:
        key_id = raw_key_id.decode("ascii")
    except UnicodeDecodeError:
        raise malformed("its key id is not valid") from None
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise malformed("its key id is not valid")
    nonce_end = key_id_end + NONCE_BYTES
    if len(token) < nonce_end + TAG_BYTES:
        raise malformed("it is too short to be a vault token")
    return _ParsedToken(
        header=token[:key_id_end],
        key_id=key_id,
        nonce=token[key_id_end:nonce_end],
        sealed=token[nonce_end:],
    )
