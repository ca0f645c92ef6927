"""Encrypting a row's secret columns with the keyring, bound to the table, column and row.

Every ciphertext is bound by :class:`~authbridge.vault.AssociatedData` to the table, column
and id of the row that holds it, so a row's id must be assigned before its secrets are
encrypted, and a ciphertext copied into another row, column or table fails to decrypt.
:data:`ENCRYPTED_COLUMNS` lists every such column, for key rotation.
"""

from __future__ import annotations

from typing import Any

from authbridge.storage.models import Base
from authbridge.vault import AssociatedData, Keyring

ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "environments": ("jwt_secret_ct",),
    "connector_configs": ("secrets_ct",),
    "authentications": ("credentials_ct", "profile_ct"),
    "oauth_states": ("secrets_ct",),
    "webhook_endpoints": ("secret_ct",),
}


def associated_data(table: str, column: str, row_id: str) -> AssociatedData:
    """What binds a ciphertext to ``column`` of row ``row_id`` of ``table`` (for rows read
    without an ORM object; :func:`seal` and :func:`unseal` take the row itself)."""
    if column not in ENCRYPTED_COLUMNS.get(table, ()):
        raise ValueError(f"{table}.{column} is not an encrypted column")
    return AssociatedData(table=table, column=column, row_id=row_id)


def _table_of(row: Base) -> str:
    return str(row.__tablename__)


def _id_of(row: Base) -> str:
    row_id = getattr(row, "id", None)
    if not isinstance(row_id, str) or not row_id:
        raise ValueError("assign the row's id before encrypting its secrets")
    return row_id


def seal(keyring: Keyring, row: Base, column: str, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` for ``column`` of ``row`` (whose id is already set)."""
    return keyring.encrypt(plaintext, aad=associated_data(_table_of(row), column, _id_of(row)))


def unseal(keyring: Keyring, row: Base, column: str) -> bytes:
    """Decrypt the value stored in ``column`` of ``row``."""
    token = getattr(row, column)
    return keyring.decrypt(token, aad=associated_data(_table_of(row), column, _id_of(row)))


def seal_json(keyring: Keyring, row: Base, column: str, value: Any) -> bytes:
    """Encrypt the JSON value ``value`` for ``column`` of ``row`` (whose id is already set)."""
    return keyring.encrypt_json(value, aad=associated_data(_table_of(row), column, _id_of(row)))


def unseal_json(keyring: Keyring, row: Base, column: str) -> Any:
    """Decrypt the JSON value stored in ``column`` of ``row``."""
    token = getattr(row, column)
    return keyring.decrypt_json(token, aad=associated_data(_table_of(row), column, _id_of(row)))


def reseal(keyring: Keyring, table: str, column: str, row_id: str, token: bytes) -> bytes | None:
    """Re-encrypt ``token`` under the primary key, or return ``None`` when it already uses it."""
    if not keyring.needs_reencrypt(token):
        return None
    aad = associated_data(table, column, row_id)
    return keyring.encrypt(keyring.decrypt(token, aad=aad), aad=aad)
