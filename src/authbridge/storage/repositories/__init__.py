"""What is left of the shared repositories: re-encryption under a new key (every table) and
the pagination helpers. Each domain's repository lives in its slice (``tenancy.repository``,
``authentications.repository``, …).

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

__all__ = [
    "MAX_PAGE_SIZE",
    "Page",
    "ReencryptBatch",
    "count_rows",
    "pending_count",
    "reencrypt_batch",
]
