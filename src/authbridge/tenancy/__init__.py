"""Tenancy: environments, their master tokens and user tokens, end users, the public keys a
host registers for its JWTs, and the audit log. A slice:

* ``repository``: the tables (a package, one module per table);
* ``service``: bootstrap, master tokens, end users, user tokens, the audit listing;
* ``schemas`` and ``endpoints``: ``/v1/end-users``, ``/v1/user-tokens``, ``/v1/master-tokens``,
  ``/v1/audit-events``; ``cli``: ``authbridge tokens`` and ``authbridge users``.

Tokens are turned into the caller's principal by ``services/principals.py``, which every
use case shares.
"""
