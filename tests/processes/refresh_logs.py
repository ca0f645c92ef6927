"""What the refreshers of a deployment logged, read back from the processes' log lines.

Each process logs with ``authbridge.runtime.LOG_FORMAT`` (``<asctime> <LEVEL> <logger> <message>``);
the lines read here are the refresher's (logger ``authbridge.refresh``) and the status changes
(``authentication <id> (<connector>) is now invalid|expired: <reason>``, from any logger):

* ``refresher <uuid> runs in process <pid>`` (INFO, once per refresher): who owns a lease;
* ``refresh of authentication <id> (<connector>) takes over the lease of refresher <uuid>,
  which did not finish`` (WARNING): a lease that ran out without being released;
* ``refresh of authentication <id>: storing the new credentials failed (<error>); retrying in
  <s> s`` (WARNING): a store tried again;
* ``refresh of authentication <id>: new credentials stored after <n> failed attempts`` (INFO):
  the end of those retries (optional: without it, retries are taken to go on);
* a live refresher finding its lease lost before it stored its result (ERROR).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from authbridge.runtime import LOG_FORMAT

_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>[A-Z]+) (?P<logger>authbridge\S*) "
    r"(?P<message>.*)$",
    re.MULTILINE,
)
_OWNER = re.compile(r"^refresher (?P<owner>\S+) runs in process (?P<pid>\d+)$")
_TAKEOVER = re.compile(
    r"^refresh of authentication (?P<auth>\S+) \((?P<connector>[^)]*)\) takes over the lease "
    r"of refresher (?P<previous>\S+), which did not finish"
)
_STATUS = re.compile(
    r"^authentication (?P<auth>\S+) \((?P<connector>[^)]*)\) is now "
    r"(?P<status>invalid|expired): (?P<reason>.*)$"
)
_RETRY = re.compile(
    r"^refresh of authentication (?P<auth>\S+): storing the new credentials failed "
    r"\((?P<error>[^)]*)\); retrying in (?P<delay>[\d.]+) s"
)
_STORED = re.compile(
    r"^refresh of authentication (?P<auth>\S+): new credentials stored after "
    r"(?P<failures>\d+) failed attempts"
)
#: A live refresher whose lease ran out before it stored (its result is lost).
LEASE_LOST = ("the lease was lost before the new credentials were stored", "result not stored")


@dataclass(frozen=True)
class Entry:
    """One line: the process that logged it, when (epoch seconds), its level, its fields."""

    source: str
    at: float
    level: str
    fields: Mapping[str, str]
    message: str

    def __getitem__(self, name: str) -> str:
        return self.fields[name]


@dataclass
class RefreshLog:
    """The lines of :mod:`this module <tests.processes.refresh_logs>`'s kinds, every process's."""

    #: Refresher (lease owner) id to the process that ran it: its name and pid.
    owners: dict[str, tuple[str, int]] = field(default_factory=dict)
    takeovers: list[Entry] = field(default_factory=list)
    status_changes: list[Entry] = field(default_factory=list)
    store_retries: list[Entry] = field(default_factory=list)
    stored_after_retries: list[Entry] = field(default_factory=list)
    leases_lost: list[Entry] = field(default_factory=list)

    def add(self, source: str, text: str) -> None:
        """Add the lines of ``text``, logged by the process named ``source``."""
        for line in _LINE.finditer(text):
            at = datetime.strptime(line["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time
            level, message = line["level"], line["message"]
            if (owner := _OWNER.match(message)) is not None:
                self.owners[owner["owner"]] = (source, int(owner["pid"]))
                continue
            for found, pattern in (
                (self.takeovers, _TAKEOVER),
                (self.status_changes, _STATUS),
                (self.store_retries, _RETRY),
                (self.stored_after_retries, _STORED),
            ):
                if (match := pattern.match(message)) is not None:
                    found.append(Entry(source, at, level, match.groupdict(), message))
                    break
            else:
                if any(marker in message for marker in LEASE_LOST):
                    self.leases_lost.append(Entry(source, at, level, {}, message))

    def retrying(self) -> dict[str, list[tuple[float, float]]]:
        """For each authentication, the spans (epoch seconds) from a failed store to the store
        that succeeded after it (``inf`` when none was logged)."""
        spans: dict[str, list[tuple[float, float]]] = {}
        opened: dict[tuple[str, str], float] = {}
        events = sorted(
            [(entry.at, 0, entry) for entry in self.store_retries]
            + [(entry.at, 1, entry) for entry in self.stored_after_retries],
            key=lambda event: event[:2],
        )
        for at, stored, entry in events:
            key = (entry.source, entry["auth"])
            if not stored:
                opened.setdefault(key, at)
            elif key in opened:
                spans.setdefault(key[1], []).append((opened.pop(key), at))
        for (_, auth_id), at in opened.items():
            spans.setdefault(auth_id, []).append((at, float("inf")))
        return spans


def read(logs: Mapping[str, str], records: Iterable[logging.LogRecord] = ()) -> RefreshLog:
    """The refresh log of processes (``{name: log text}``) and of records captured in the test
    process itself (named ``test``)."""
    parsed = RefreshLog()
    for source, text in logs.items():
        parsed.add(source, text)
    formatter = logging.Formatter(LOG_FORMAT)
    parsed.add("test", "\n".join(formatter.format(record) for record in records))
    return parsed
