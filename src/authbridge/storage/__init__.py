"""Persistence: the database, ORM models (one module per table), repositories and migrations.

Open a :class:`Database` once per process; each request, command or task opens a transaction
with :meth:`Database.session` and passes the session to repositories
(:mod:`authbridge.storage.repositories`), which hold every SQL query. Secret columns are
encrypted with the vault's keyring, bound to their table, column and row
(:mod:`authbridge.storage.crypto`). :func:`authbridge.storage.migrate.upgrade` brings a
database to the current schema.
"""

from authbridge.storage.db import (
    DATABASE_URL_ENV_VAR,
    HOME_ENV_VAR,
    Database,
    default_url,
    normalize_url,
)

__all__ = [
    "DATABASE_URL_ENV_VAR",
    "HOME_ENV_VAR",
    "Database",
    "default_url",
    "normalize_url",
]
