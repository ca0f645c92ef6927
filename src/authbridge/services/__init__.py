"""What every slice's use cases share: the :class:`~authbridge.services.bridge.Bridge` and its
unit of work (``Bridge.run``), principals (tokens → callers, the principal cache), read-only
transactions, the audit trail of reads, re-encryption under a new key, and the metrics. The use
cases themselves live in their slices (``authentications``, ``refresh``, ``tenancy``, …; see
``docs/architecture.md``, "Slices")."""
