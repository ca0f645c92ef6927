"""The connector registry: the bundled catalog plus the host's own folders.

A folder's connector replaces a catalog connector with the same key and version, so a host can
adjust a bundled definition by copying it into its folder. :meth:`Registry.load` refuses any
problem; :meth:`Registry.load_usable` (the server's) leaves broken connectors out instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authbridge.connectors.loader import (
    AUTH_FILES,
    MANIFEST_FILES,
    Connector,
    connector_identity,
    load_connector,
    load_manifest_only,
)
from authbridge.errors import ConnectorNotFound, DefinitionError, Problem

CATALOG = Path(__file__).resolve().parent.parent / "catalog"


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key for versions: numeric parts numerically (``1.10`` after ``1.9``)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-]", version)
    )


@dataclass
class LoadReport:
    """What loading a folder found: connectors and every problem (loading never stops early)."""

    connectors: list[Connector] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    broken: list[tuple[str, str | None]] = field(default_factory=list)
    """The key and version (``None``: unknown) of each connector that failed to load."""


def _connector_folders(root: Path) -> list[Path]:
    """The folders holding an auth file, and those holding only a manifest (a connector
    without per-user auth) unless connectors sit below them."""
    with_auth = {path.parent for name in AUTH_FILES for path in root.rglob(name)}
    with_manifest = {path.parent for name in MANIFEST_FILES for path in root.rglob(name)}
    manifest_only = {
        folder
        for folder in with_manifest - with_auth
        if not any(auth.is_relative_to(folder) for auth in with_auth)
    }
    return sorted(with_auth | manifest_only)


def scan_folder(root: Path, *, origin: str) -> LoadReport:
    """Load every connector under ``root`` (``<vendor>/<service>[/<module>]/auth.*``, or a
    ``manifest.yaml`` alone)."""
    report = LoadReport()
    if not root.is_dir():
        report.problems.append(Problem(str(root), "", "is not a folder"))
        return report
    seen: dict[tuple[str, str], Path] = {}
    for folder in _connector_folders(root):
        relative = folder.relative_to(root).parts
        if any(part.startswith((".", "__")) for part in relative):
            continue
        auth_files = [folder / name for name in AUTH_FILES if (folder / name).is_file()]
        found = auth_files or [
            folder / name for name in MANIFEST_FILES if (folder / name).is_file()
        ]
        if len(relative) not in (2, 3):
            report.problems.append(
                Problem(
                    str(found[0]),
                    "",
                    "must sit at <vendor>/<service>/auth.* or <vendor>/<service>/<module>/auth.*",
                )
            )
            continue
        if len(found) > 1:
            names = ", ".join(path.name for path in found)
            report.problems.append(Problem(str(folder), "", f"has {names}: keep only one"))
            continue
        auth_file = found[0]
        try:
            if auth_files:
                connector = load_connector(auth_file, origin=origin)
            else:
                connector = load_manifest_only(folder, origin=origin)
        except DefinitionError as exc:
            report.problems.extend(exc.problems)
            report.broken.append(connector_identity(auth_file))
            continue
        ident = (connector.key, connector.version)
        if ident in seen:
            report.problems.append(
                Problem(
                    str(auth_file),
                    "",
                    f"connector '{connector.key}' version {connector.version} is already "
                    f"defined by {seen[ident]}",
                )
            )
            continue
        seen[ident] = auth_file
        report.connectors.append(connector)
    return report


def loose_key(name: str) -> str:
    """A key as a redirect URI may spell it, folded: lower case, without ``-`` and ``_``
    (``myService``, ``my_service`` and ``my-service`` are all ``myservice``)."""
    return name.lower().replace("-", "").replace("_", "")


class Registry:
    """Connectors by key and version; iteration yields the newest version of each key."""

    def __init__(self, connectors: Iterable[Connector]) -> None:
        self._by_key: dict[str, dict[str, Connector]] = {}
        for connector in connectors:
            self._by_key.setdefault(connector.key, {})[connector.version] = connector
        self._by_loose_key: dict[str, list[str]] = {}
        for key in sorted(self._by_key):
            self._by_loose_key.setdefault(loose_key(key), []).append(key)

    @classmethod
    def load(cls, folders: Sequence[Path] = (), *, include_catalog: bool = True) -> Registry:
        """The catalog (unless excluded) overlaid with ``folders`` in order.

        Raises :class:`DefinitionError` listing every problem found in any folder.
        """
        registry, problems = cls._scan(folders, include_catalog=include_catalog)
        if problems:
            raise DefinitionError(problems)
        return registry

    @classmethod
    def load_usable(
        cls, folders: Sequence[Path] = (), *, include_catalog: bool = True
    ) -> tuple[Registry, list[Problem]]:
        """Every connector that loads, and the problems of those left out.

        A broken connector also hides what it would have replaced (an earlier folder's or the
        catalog's connector of the same key and version, every version when its manifest is
        unreadable): the host gets its own definition or none, never a bundled one silently in
        its place. A folder that does not exist is still refused (:class:`DefinitionError`).
        """
        for folder in folders:
            if not Path(folder).is_dir():
                raise DefinitionError([Problem(str(folder), "", "is not a folder")])
        return cls._scan(folders, include_catalog=include_catalog)

    @classmethod
    def _scan(
        cls, folders: Sequence[Path], *, include_catalog: bool
    ) -> tuple[Registry, list[Problem]]:
        sources = [(CATALOG, "catalog")] if include_catalog else []
        sources += [(Path(folder), str(folder)) for folder in folders]
        connectors: list[Connector] = []
        problems: list[Problem] = []
        for root, origin in sources:
            report = scan_folder(root, origin=origin)
            for key, version in report.broken:
                connectors = [
                    c
                    for c in connectors
                    if c.key != key or (version is not None and c.version != version)
                ]
            connectors.extend(report.connectors)
            problems.extend(report.problems)
        return cls(connectors), problems

    def get(self, key: str, version: str | None = None) -> Connector:
        versions = self._by_key.get(key)
        if not versions:
            close = [known for known in self._by_key if key in known or known in key]
            hint = f"; did you mean {', '.join(sorted(close))}?" if close else ""
            raise ConnectorNotFound(f"no connector named '{key}'{hint}")
        if version is None:
            return versions[max(versions, key=version_key)]
        if version not in versions:
            known = ", ".join(sorted(versions, key=version_key))
            raise ConnectorNotFound(
                f"connector '{key}' has no version {version} (versions: {known})"
            )
        return versions[version]

    def callback_key(self, name: str) -> str:
        """The key of the connector a callback path names (``/auth/{name}/callback``).

        The exact key, else the one key equal to ``name`` but for case, ``-`` and ``_``, as a
        porter may have registered the redirect URI at the provider (``myService`` for
        ``my-service``). Raises :class:`ConnectorNotFound` when no key matches, or when several
        do and only the exact key can tell them apart.
        """
        if name in self._by_key or not name.isascii():
            return self.get(name).key
        matches = self._by_loose_key.get(loose_key(name), [])
        if len(matches) > 1:
            raise ConnectorNotFound(
                f"'{name}' could name any of the connectors {', '.join(matches)}: "
                "register the redirect URI with the exact key"
            )
        return matches[0] if matches else self.get(name).key

    def versions(self, key: str) -> list[Connector]:
        return [self._by_key[key][v] for v in sorted(self._by_key.get(key, {}), key=version_key)]

    def __iter__(self) -> Iterator[Connector]:
        for key in sorted(self._by_key):
            yield self.get(key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key
