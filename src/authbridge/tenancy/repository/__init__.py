"""The tenancy tables: environments, end users, master tokens, the JWT keys a host registers
and the audit log."""

from authbridge.tenancy.repository.audit import AuditEntry, AuditRepository, AuditRow, AuditRows
from authbridge.tenancy.repository.end_users import EndUserRepository
from authbridge.tenancy.repository.environments import DEFAULT_ENVIRONMENT, EnvironmentRepository
from authbridge.tenancy.repository.jwt_keys import JwtKeyRepository
from authbridge.tenancy.repository.master_tokens import IssuedMasterToken, MasterTokenRepository

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "AuditEntry",
    "AuditRepository",
    "AuditRow",
    "AuditRows",
    "EndUserRepository",
    "EnvironmentRepository",
    "IssuedMasterToken",
    "JwtKeyRepository",
    "MasterTokenRepository",
]
