"""Alembic migrations of the schema; run them with ``authbridge.storage.migrate.upgrade``."""
