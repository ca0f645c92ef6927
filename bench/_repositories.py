"""The repositories the benchmarks seed with, from whichever tree is on the path: the benches
run older trees side by side (``--server-src``, ``PYTHONPATH``), and the repositories moved into
the slices (issue 12)."""

from __future__ import annotations

try:
    from authbridge.authentications.repository import AuthenticationRepository
    from authbridge.connector_configs.repository import ConnectorConfigRepository
    from authbridge.tenancy.repository import (
        EndUserRepository,
        EnvironmentRepository,
        MasterTokenRepository,
    )
except ModuleNotFoundError:  # a tree from before the slices
    from authbridge.storage.repositories import (  # type: ignore[attr-defined,no-redef]
        AuthenticationRepository,
        ConnectorConfigRepository,
        EndUserRepository,
        EnvironmentRepository,
        MasterTokenRepository,
    )

__all__ = [
    "AuthenticationRepository",
    "ConnectorConfigRepository",
    "EndUserRepository",
    "EnvironmentRepository",
    "MasterTokenRepository",
]
