"""Keeping credentials fresh, exactly once across processes, and the rest of their lifecycle.
A slice:

* ``repository``: the refresh leases (take, store, extend, fail) and the worker's scans of the
  ``authentications`` table (due refreshes, expiry warnings, hard expiry, deletion claims);
* ``group_transactions``: lease takes and stores of concurrent refreshes sharing a
  transaction; ``service``: the refresher (leases, single flight, durable stores);
* ``lifecycle``: expiry warnings, hard expiry, scheduled deletion with revocation;
* ``worker``: the background worker's ticks and graceful stop; ``cli``: ``authbridge worker``.
"""
