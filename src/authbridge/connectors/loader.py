"""Loading connector definitions from a folder.

Layout: ``<vendor>/<service>/auth.py`` or ``auth.yaml`` (optionally one level deeper,
``<vendor>/<service>/<module>/auth.*``), with an optional ``manifest.yaml`` beside it. The
connector's key is the manifest's ``key``, else the name of the folder holding the auth file.
A folder with a manifest and no auth file is a connector without per-user auth (type ``none``,
Rollout's ``auth: false``): its integration code uses what the host configures, nothing an end
user connects.

``auth.py`` exports ``type`` and ``definition`` (a mapping, or a callable returning one, given
a :class:`DefinitionContext` or, when it takes no argument, nothing). ``auth.yaml`` holds the
same two keys and cannot hold code. Every problem is reported with its file, key path and
reason, also when definition code raises; loading a folder collects them all instead of
stopping at the first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from authbridge.connectors.models import (
    AUTH_TYPES,
    AuthDefinition,
    AuthType,
    NoneDefinition,
    canonical_type,
    parse_definition,
)
from authbridge.connectors.request_models import Model
from authbridge.errors import DefinitionError, Problem
from authbridge.redaction import redact

AUTH_FILES = ("auth.py", "auth.yaml", "auth.yml")
MANIFEST_FILES = ("manifest.yaml", "manifest.yml")
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_REASON_LENGTH = 300
PLACEHOLDER_CALLBACK = "https://authbridge.invalid/auth/{key}/callback"


class Variant(Model):
    """One service environment of a connector (e.g. production and sandbox hosts).

    ``values`` are template values its definition may use (``https://{{login}}.salesforce.com``);
    each variant may have its own connector configuration (its own OAuth app).
    """

    label: str | None = None
    values: dict[str, str] = Field(default_factory=dict)


class Manifest(Model):
    """What a connector says about itself besides its auth: label, version, icon, docs,
    variants (the first one is the default), and how many days before a hard expiry its
    authentications are warned about (``expiry_warning_days``; the worker's default when
    ``None``)."""

    key: str | None = None
    label: str | None = None
    version: str = "1"
    icon: str | None = None
    docs_url: str | None = None
    description: str | None = None
    scopes_docs: dict[str, str] = Field(default_factory=dict)
    variants: dict[str, Variant] = Field(default_factory=dict)
    expiry_warning_days: float | None = Field(default=None, gt=0, le=365)

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, Variant]) -> dict[str, Variant]:
        for name in value:
            if not KEY_PATTERN.match(name):
                raise ValueError(
                    f"variant name {name!r} must be lowercase letters, digits, '-' or '_'"
                )
        return value

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str | None) -> str | None:
        if value is not None and not KEY_PATTERN.match(value):
            raise ValueError("must be lowercase letters, digits, '-' or '_' (at most 64)")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value


class DefinitionContext:
    """What a callable ``definition`` receives: client credentials and the callback URL.

    Values are readable in snake_case or camelCase (``callback_url`` / ``callbackUrl``).
    """

    def __init__(
        self,
        *,
        callback_url: str,
        client_id: str = "",
        client_secret: str = "",
        consumer_key: str = "",
        consumer_secret: str = "",
    ) -> None:
        self.callback_url = callback_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret

    def __getattr__(self, name: str) -> Any:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        if snake != name and snake in self.__dict__:
            return self.__dict__[snake]
        raise AttributeError(name)

    def secrets(self) -> list[str]:
        """The values a message about the definition must not show."""
        return [value for value in (self.client_secret, self.consumer_secret) if value]

    def __repr__(self) -> str:
        return f"DefinitionContext(callback_url={self.callback_url!r})"


@dataclass(frozen=True, eq=False)
class Connector:
    """One loaded connector version: its manifest and auth definition."""

    key: str
    version: str
    auth_type: AuthType
    manifest: Manifest
    source: Path
    origin: str
    static_definition: AuthDefinition | None = field(default=None, repr=False)
    factory: Callable[[DefinitionContext], Any] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.manifest.label or self.key.replace("_", " ").replace("-", " ").title()

    @property
    def default_variant(self) -> str | None:
        """The first declared variant, or ``None`` for a connector without variants."""
        return next(iter(self.manifest.variants), None)

    def definition(self, context: DefinitionContext | None = None) -> AuthDefinition:
        """The auth definition; a callable definition is built with ``context``.

        Raises :class:`DefinitionError` when the callable raises or returns no valid definition.
        """
        if self.static_definition is not None:
            return self.static_definition
        assert self.factory is not None
        context = context or DefinitionContext(
            callback_url=PLACEHOLDER_CALLBACK.format(key=self.key)
        )
        raw = _call_definition(self.factory, context, str(self.source))
        problems = _definition_problems(str(self.source), self.auth_type, raw, from_yaml=False)
        if problems:
            raise DefinitionError(problems)
        return parse_definition(self.auth_type, raw)


def _call_definition(factory: Callable[..., Any], context: DefinitionContext, name: str) -> Any:
    """Call a callable ``definition`` with ``context``, or with nothing when it takes no
    argument (``definition: () => {...}`` in an ``auth.js``); what goes wrong is a problem."""
    arguments = _definition_arguments(factory, context)
    if arguments is None:
        raise DefinitionError(
            [Problem(name, "definition", "must take one argument (the context) or none")]
        )
    try:
        raw = factory(*arguments)
    except Exception as exc:  # any error in third-party definition code is a problem to report
        text = " ".join(redact(str(exc), context.secrets()).split())
        if len(text) > MAX_REASON_LENGTH:
            text = text[: MAX_REASON_LENGTH - 1].rstrip() + "…"
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise DefinitionError(
            [Problem(name, "definition", f"calling it failed: {reason}")]
        ) from exc
    if inspect.isawaitable(raw):
        close = getattr(raw, "close", None)
        if callable(close):
            close()  # never awaited, and never warned about
        raise DefinitionError(
            [
                Problem(
                    name,
                    "definition",
                    "must return a mapping, not an awaitable: a definition cannot be async",
                )
            ]
        )
    return raw


def _definition_arguments(
    factory: Callable[..., Any], context: DefinitionContext
) -> tuple[DefinitionContext] | tuple[()] | None:
    """``(context,)`` when ``factory`` takes an argument, ``()`` when it takes none, else None."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin): as documented
        return (context,)
    with_context: tuple[DefinitionContext] = (context,)
    for arguments in (with_context, ()):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        return arguments
    return None


def _connector_key(name: str, manifest: Manifest, key: str | None, folder: Path) -> str:
    key = manifest.key or key or folder.name
    if not KEY_PATTERN.match(key):
        raise DefinitionError(
            [
                Problem(
                    name,
                    "",
                    f"connector key {key!r} must be lowercase letters, digits, '-' or '_';"
                    " rename the folder or set 'key' in manifest.yaml",
                )
            ]
        )
    return key


def load_manifest_only(folder: Path, *, origin: str) -> Connector:
    """Load a connector without per-user auth from the manifest of a folder that holds no
    auth file: its type is ``none`` and its definition empty."""
    manifest_file = next(folder / name for name in MANIFEST_FILES if (folder / name).is_file())
    manifest = _load_manifest(folder)
    return Connector(
        key=_connector_key(str(manifest_file), manifest, None, folder),
        version=manifest.version,
        auth_type="none",
        manifest=manifest,
        source=manifest_file,
        origin=origin,
        static_definition=NoneDefinition(),
    )


def load_connector(auth_file: Path, *, origin: str, key: str | None = None) -> Connector:
    """Load one connector from its auth file; :class:`DefinitionError` lists every problem."""
    name = str(auth_file)
    manifest = _load_manifest(auth_file.parent)
    key = _connector_key(name, manifest, key, auth_file.parent)
    if auth_file.suffix == ".py":
        auth_type, raw = _read_python(auth_file)
    else:
        auth_type, raw = _read_yaml(auth_file)
    connector = Connector(
        key=key,
        version=manifest.version,
        auth_type=auth_type,
        manifest=manifest,
        source=auth_file,
        origin=origin,
    )
    if callable(raw):
        connector = dataclasses.replace(connector, factory=raw)
        connector.definition()  # validate now with placeholder client values
        return connector
    problems = _definition_problems(name, auth_type, raw, from_yaml=auth_file.suffix != ".py")
    if problems:
        raise DefinitionError(problems)
    return dataclasses.replace(connector, static_definition=parse_definition(auth_type, raw))


def connector_identity(auth_file: Path) -> tuple[str, str | None]:
    """The key and version ``auth_file`` loads as, or would if it had no problems: the
    manifest's, else the folder's name; the version is ``None`` when the manifest is unreadable
    (then any version may be meant)."""
    try:
        manifest = _load_manifest(auth_file.parent)
    except DefinitionError:
        return auth_file.parent.name, None
    return manifest.key or auth_file.parent.name, manifest.version


def _load_manifest(folder: Path) -> Manifest:
    for candidate in MANIFEST_FILES:
        path = folder / candidate
        if path.is_file():
            data = _yaml_document(path)
            if not isinstance(data, Mapping):
                raise DefinitionError([Problem(str(path), "", "must be a mapping")])
            try:
                return Manifest.model_validate(data)
            except ValidationError as exc:
                raise DefinitionError(_problems_from(str(path), "", exc, False)) from exc
    return Manifest()


#: libyaml's parser when PyYAML was built with it (the wheels are): 7x faster than the pure
#: Python one, and the catalog is parsed at every start. Same safe constructor, same errors.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_document(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)  # noqa: S506
    except yaml.constructor.ConstructorError as exc:
        line = f"line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise DefinitionError(
            [
                Problem(
                    str(path),
                    line,
                    "YAML tags that build objects are not allowed: a YAML "
                    "definition cannot hold code; write auth.py for callables",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise DefinitionError([Problem(str(path), line, f"invalid YAML: {reason}")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([Problem(str(path), "", f"cannot read: {exc}")]) from exc


def _read_yaml(path: Path) -> tuple[AuthType, Any]:
    data = _yaml_document(path)
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [Problem(str(path), "", "must be a mapping with 'type' and 'definition'")]
        )
    problems = [
        Problem(str(path), key, "unknown key; expected 'type' and 'definition'")
        for key in data
        if key not in ("type", "definition")
    ]
    auth_type = _auth_type(str(path), data.get("type"), problems)
    if "definition" not in data and auth_type != "none":
        problems.append(Problem(str(path), "definition", "is required"))
    if problems or auth_type is None:
        raise DefinitionError(problems)
    return auth_type, data.get("definition") or {}


def _read_python(path: Path) -> tuple[AuthType, Any]:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(f"authbridge_connector_{digest}", path)
    if spec is None or spec.loader is None:
        raise DefinitionError([Problem(str(path), "", "cannot be imported as a Python module")])
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any error in third-party definition code is a problem to report
        raise DefinitionError(
            [Problem(str(path), "", f"importing it failed: {type(exc).__name__}: {exc}")]
        ) from exc
    problems: list[Problem] = []
    auth_type = _auth_type(str(path), getattr(module, "type", None), problems)
    if not hasattr(module, "definition") and auth_type != "none":
        problems.append(
            Problem(str(path), "definition", "is required (a mapping or a callable returning one)")
        )
    if problems or auth_type is None:
        raise DefinitionError(problems)
    return auth_type, getattr(module, "definition", {})


def _auth_type(name: str, value: Any, problems: list[Problem]) -> AuthType | None:
    canonical = canonical_type(value)
    if value is None:
        problems.append(Problem(name, "type", f"is required: one of {', '.join(AUTH_TYPES)}"))
    elif canonical not in AUTH_TYPES:
        problems.append(
            Problem(
                name,
                "type",
                f"{value!r} is not an auth type: use one of "
                f"{', '.join(AUTH_TYPES)} (or the aliases apiKey, oauth)",
            )
        )
    else:
        return canonical
    return None


def _definition_problems(
    name: str, auth_type: AuthType, raw: Any, from_yaml: bool
) -> list[Problem]:
    if not isinstance(raw, Mapping):
        return [
            Problem(
                name, "definition", "must be a mapping (or, in auth.py, a callable returning one)"
            )
        ]
    try:
        parse_definition(auth_type, raw)
    except ValidationError as exc:
        return _problems_from(name, "definition", exc, from_yaml, tag=auth_type)
    return []


def _problems_from(
    name: str, prefix: str, exc: ValidationError, from_yaml: bool, tag: str | None = None
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if tag is not None and loc and (loc[0] == tag or loc[0].startswith("function-")):
            loc = loc[1:]
        loc = [part for part in loc if not part.startswith(("function-", "<"))]
        path = ".".join([prefix, *loc]) if prefix else ".".join(loc)
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "callable_type":
            reason = (
                "must be a Python callable, which a YAML definition cannot hold; write auth.py"
                if from_yaml
                else "must be a callable"
            )
        elif error["type"] == "extra_forbidden":
            reason = "unknown key"
        elif error["type"] == "missing":
            reason = "is required"
        problems.append(Problem(name, path, reason))
    return problems
