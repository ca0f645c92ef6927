"""One alert per unreadable stored secret: an ERROR line naming where it is, for the operator.

A ciphertext that cannot be decrypted (altered, copied from another row, or written with a key
the keyring lacks) stays so until the operator restores the key or the row, and every read of
it fails again. The caller is told only that a stored secret cannot be decrypted (see
:class:`~authbridge.errors.DecryptionFailed`); the log gets one line per table, column and row,
with the key id and the reason, however often the row is read. The last :data:`REMEMBERED`
locations are remembered, so a process never holds more than that, and a row alerted long ago
among many others may be alerted again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from threading import Lock

from authbridge.errors import DecryptionFailed

REMEMBERED = 10_000

log = logging.getLogger("authbridge.vault")

_alerted: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_lock = Lock()


def alert(error: DecryptionFailed) -> None:
    """Log ``error`` with its location unless that location was alerted already."""
    if error.table is None or error.column is None or error.row_id is None:
        return
    location = (error.table, error.column, error.row_id)
    with _lock:
        if location in _alerted:
            _alerted.move_to_end(location)
            return
        _alerted[location] = None
        if len(_alerted) > REMEMBERED:
            _alerted.popitem(last=False)
    log.error(
        "unreadable stored secret table=%s column=%s row_id=%s key_id=%s (%s): %s; "
        "logged once per row",
        error.table,
        error.column,
        error.row_id,
        error.key_id or "-",
        error.code,
        error.reason,
    )
