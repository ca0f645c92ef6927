"""Secrets at rest: an AES-256-GCM keyring and the key file or variable that holds it.

Every secret is encrypted by :meth:`Keyring.encrypt` into a self-describing token bound by
:class:`AssociatedData` to the table, column and row that store it. New writes use the primary
key; older keys stay in the keyring so that existing tokens still decrypt until they are
re-encrypted (:meth:`Keyring.needs_reencrypt`).
"""

from authbridge.errors import DecryptionFailed, KeyNotFound, VaultError
from authbridge.vault.keyfile import ENV_VAR, from_env, load, load_or_create, save
from authbridge.vault.keyring import AssociatedData, Keyring

__all__ = [
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
]
