"""What is left of the shared repositories: re-encryption under a new key and the check of
every stored secret (every table), and the pagination helpers. Each domain's repository lives
in its slice (``tenancy.repository``, ``authentications.repository``, …).

Each repository takes the caller's :class:`~sqlalchemy.orm.Session` (and the keyring where
secrets are involved), flushes what it writes, and never commits: the request, command or task
that opened the session owns the transaction.
"""

from authbridge.storage.pagination import MAX_PAGE_SIZE, Page
from authbridge.storage.repositories.reencrypt import (
    ReencryptBatch,
    count_rows,
    pending_count,
    reencrypt_batch,
)
from authbridge.storage.repositories.stored_secrets import (
    CheckBatch,
    StoredSecrets,
    check_batch,
    stored_secrets,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "CheckBatch",
    "Page",
    "ReencryptBatch",
    "StoredSecrets",
    "check_batch",
    "count_rows",
    "pending_count",
    "reencrypt_batch",
    "stored_secrets",
]
