"""Connect sessions: the one-time links that open the connect pages, and what the pages do.

The host (with a master token) opens a session for an end user and a connector; the link
``/connect/{code}`` is valid for 10 minutes and creates (or, when editing, updates) one
authentication: the code is used up by the success that stores it, so a wrong key can be
corrected and submitted again, while a link prefetched by a mail scanner still works.

The page's work is split so no database transaction stays open while a provider is called:
:func:`load_page` reads (one transaction), :func:`run_form` calls the mechanism (no database),
:func:`finish` uses up the code and stores the result (another transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications import service as authentications
from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connect.repository import ConnectSessionRepository
from authbridge.connector_configs.service import ConnectorSetup, resolve_variant, setup
from authbridge.connectors.models import Fields
from authbridge.mechanisms import ConnectResult, Context, get_mechanism
from authbridge.mechanisms.form import check_fields
from authbridge.mechanisms.properties import call
from authbridge.redaction import redact
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.storage.models import Authentication, ConnectSession, EndUser
from authbridge.tenancy.repository import EndUserRepository
from authbridge.themes import service as themes
from authbridge.themes.service import PageTheme

EXPIRED_LINK = "This link has expired or was already used. Ask for a new one."
MAX_PICKABLE = 50
#: The key of a session's variant in its ``options`` (absent for the default variant).
VARIANT_OPTION = "variant"

log = logging.getLogger("authbridge.connect")


@dataclass(frozen=True)
class ConnectOptions:
    """The host's choices for the page (the reference's query parameters).

    A session opened by the configuration wizard also carries the slot's ``scopes`` (asked
    for instead of the connector's) and ``return_to``, a path on this server: the success
    goes back there instead of posting to a popup's opener, and the page offers no existing
    account to pick (the wizard offers those itself). ``theme`` is the key of the theme the
    wizard or edit link shows, so the connect page is branded like them. ``delete_after``
    schedules the deletion of the account that long after it is connected (or reconnected).
    """

    skip_title_field: bool = False
    skip_auth_settings: bool = False
    allow_account_change: bool = False
    scopes: tuple[str, ...] | None = None
    return_to: str | None = None
    theme: str | None = None
    delete_after: timedelta | None = None

    def as_dict(self) -> dict[str, Any]:
        stored: dict[str, Any] = {
            "skip_title_field": self.skip_title_field,
            "skip_auth_settings": self.skip_auth_settings,
            "allow_account_change": self.allow_account_change,
        }
        if self.scopes is not None:
            stored["scopes"] = list(self.scopes)
        if self.return_to is not None:
            stored["return_to"] = self.return_to
        if self.theme is not None:
            stored["theme"] = self.theme
        if self.delete_after is not None:
            stored["delete_after_seconds"] = self.delete_after.total_seconds()
        return stored

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> ConnectOptions:
        scopes = stored.get("scopes")
        return_to = stored.get("return_to")
        theme = stored.get("theme")
        delete_after = stored.get("delete_after_seconds")
        return cls(
            skip_title_field=bool(stored.get("skip_title_field")),
            skip_auth_settings=bool(stored.get("skip_auth_settings")),
            allow_account_change=bool(stored.get("allow_account_change")),
            scopes=tuple(str(scope) for scope in scopes) if isinstance(scopes, list) else None,
            return_to=return_to if isinstance(return_to, str) else None,
            theme=theme if isinstance(theme, str) else None,
            delete_after=timedelta(seconds=delete_after)
            if isinstance(delete_after, int | float) and delete_after > 0
            else None,
        )


@dataclass(frozen=True)
class OpenedSession:
    record: ConnectSession
    end_user: EndUser
    url: str = field(repr=False)


@dataclass(frozen=True)
class ConnectPage:
    """Everything the connect page shows for one code."""

    record: ConnectSession
    setup: ConnectorSetup
    end_user: EndUser
    editing: Authentication | None
    existing: Sequence[Authentication]
    fields: Fields
    prefill: Mapping[str, str] = field(repr=False)
    options: ConnectOptions
    theme: PageTheme | None = None

    @property
    def signs_in_at_provider(self) -> bool:
        """Whether connecting sends the end user to the provider (OAuth 1.0a, OAuth 2 code).

        Every other connector connects from this page: a form, or a single button (``none``
        and OAuth 2 client credentials, which fetch their token without the end user).
        """
        definition = self.setup.definition
        return get_mechanism(definition.type).signs_in_at_provider(definition)

    @property
    def principal(self) -> Principal:
        """Who acts in the audit log: the connect session, on behalf of its end user."""
        return Principal(
            environment_id=self.record.environment_id,
            actor=f"connect:{self.record.id}",
            end_user_id=self.record.end_user_id,
            external_user_id=self.end_user.external_user_id,
        )


def check_origin(origin: str) -> str:
    """An exact web origin (``https://app.example.com``): scheme, host and optional port only."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, or a port out of range
        parts, port = urlsplit(""), -1
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or port == -1
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise errors.InvalidInput(
            "origin must be a web origin such as https://app.example.com (scheme, host and "
            "port only)",
            field="origin",
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def open_session(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    *,
    external_user_id: str,
    connector: str,
    version: str | None = None,
    variant: str | None = None,
    authentication_id: str | None = None,
    origin: str | None = None,
    options: ConnectOptions = ConnectOptions(),
    user_name: str | None = None,
    user_email: str | None = None,
) -> OpenedSession:
    """Open a connect link for an end user (created on first sight) and a connector.

    A new account gets the newest version and the default variant unless given; a reconnect
    (``authentication_id``) keeps the authentication's own version (unless one is given) and
    its variant, since another variant is another account at another host.
    """
    principal.require_master()
    checked_origin = check_origin(origin) if origin else None
    end_user = EndUserRepository(session).get_or_create(
        principal.environment_id, external_user_id, name=user_name, email=user_email
    )
    if authentication_id is not None:
        auth = authentications.get(bridge, session, principal, authentication_id)
        if auth.end_user_id != end_user.id or auth.connector_key != connector:
            raise errors.InvalidInput(
                f"authentication '{authentication_id}' is not a '{connector}' authentication "
                f"of end user '{external_user_id}'",
                field="authentication_id",
            )
        found = bridge.registry.get(connector, version or auth.connector_version)
        chosen = resolve_variant(found, variant)
        if variant is not None and chosen != auth.connector_variant:
            raise errors.InvalidInput(
                f"authentication '{authentication_id}' belongs to another variant of "
                f"'{found.key}'; connect a new account for variant '{variant}' instead",
                field="variant",
            )
        chosen = auth.connector_variant
    else:
        found = bridge.registry.get(connector, version)
        chosen = resolve_variant(found, variant)
    stored_options: dict[str, Any] = options.as_dict()
    if chosen is not None:
        stored_options[VARIANT_OPTION] = chosen
    issued = ConnectSessionRepository(session).create(
        environment_id=principal.environment_id,
        end_user_id=end_user.id,
        connector_key=found.key,
        connector_version=found.version,
        authentication_id=authentication_id,
        origin=checked_origin,
        options=stored_options,
        now=bridge.now(),
    )
    return OpenedSession(
        record=issued.record, end_user=end_user, url=bridge.url(f"/connect/{issued.code}")
    )


def load_page(bridge: Bridge, session: Session, code: str) -> ConnectPage:
    """What the page of ``code`` shows; :class:`errors.ExpiredLink` when the link is not valid."""
    record = ConnectSessionRepository(session).get_valid(code, now=bridge.now())
    if record is None:
        raise errors.ExpiredLink(EXPIRED_LINK)
    return page_for(bridge, session, record)


def page_for(bridge: Bridge, session: Session, record: ConnectSession) -> ConnectPage:
    """The page of a connect session already found valid (by its code, or an OAuth state)."""
    now = bridge.now()
    end_user = EndUserRepository(session).get(record.environment_id, record.end_user_id)
    if end_user is None:
        raise errors.NotFound(EXPIRED_LINK)
    stored_options = dict(record.options)
    variant = stored_options.pop(VARIANT_OPTION, None)
    connector_setup = setup(
        bridge,
        session,
        record.environment_id,
        record.connector_key,
        record.connector_version,
        variant,
    )
    auths = AuthenticationRepository(session, bridge.keyring)
    editing = None
    prefill: dict[str, str] = {}
    mechanism = get_mechanism(connector_setup.definition.type)
    fields = mechanism.form_fields(connector_setup.definition)
    if record.authentication_id is not None:
        editing = auths.get(record.environment_id, record.authentication_id, now=now)
        if editing is None:
            raise errors.NotFound("The account to edit no longer exists.")
        stored = auths.credentials(editing)
        prefill = {
            name: str(stored[name])
            for name, spec in fields.items()
            if not spec.is_secret and isinstance(stored.get(name), str | int | float)
        }
    options = ConnectOptions.of(stored_options)
    existing: Sequence[Authentication] = ()
    if editing is None and options.return_to is None:
        listed = auths.list(
            record.environment_id,
            now=now,
            end_user_id=record.end_user_id,
            connector_key=record.connector_key,
            limit=MAX_PICKABLE,
        ).items
        existing = [auth for auth in listed if auth.connector_variant == connector_setup.variant]
    return ConnectPage(
        record=record,
        setup=connector_setup,
        end_user=end_user,
        editing=editing,
        existing=existing,
        fields=fields,
        prefill=prefill,
        options=options,
        theme=_theme(bridge, session, record.environment_id, options.theme),
    )


def _theme(
    bridge: Bridge, session: Session, environment_id: str, key: str | None
) -> PageTheme | None:
    """The theme of a page the wizard or an edit link opened (none if it was deleted since)."""
    if key is None:
        return None
    try:
        return themes.for_page(bridge, session, environment_id, key)
    except errors.NotFound:
        return None


def form_context(bridge: Bridge, page: ConnectPage, entered: Mapping[str, Any]) -> Context:
    return Context(
        http=bridge.http,
        now=bridge.now(),
        fields=entered,
        config=page.setup.config,
        callback_url=page.setup.callback_url,
    )


async def run_form(bridge: Bridge, page: ConnectPage, entered: Mapping[str, str]) -> ConnectResult:
    """Check the entered fields and run the connector's mechanism (no database work)."""
    definition = page.setup.definition
    if page.signs_in_at_provider:
        raise errors.InvalidInput(
            f"'{page.setup.connector.label}' connects through its provider's sign-in page, "
            "not a form"
        )
    check_fields(page.fields, entered)
    mechanism = get_mechanism(definition.type)
    return await mechanism.connect(definition, form_context(bridge, page, entered))


async def connected(
    bridge: Bridge,
    code: str | None,
    page: ConnectPage,
    result: ConnectResult,
    *,
    name: str | None = None,
) -> Authentication:
    """Store the account (:func:`finish`), then run the definition's ``on_connected`` with it.

    The callback runs after the store, outside any transaction, so it gets the stored
    authentication's id (``context.auth_id``: to schedule a logout, say). When it fails, a new
    account is taken back (deleted, ``authentication.deleted`` following ``.created``) and the
    link opened again, so the end user can try again and nothing is kept; a reconnect keeps its
    new credentials (the provider may already have revoked the old ones) and the failure is
    shown all the same.
    """
    auth = await bridge.run(
        lambda session: finish(bridge, session, code, page, result, name=name),
    )
    try:
        await _on_connected(bridge, page, result, auth)
    except errors.AuthBridgeError as failure:
        if page.editing is None:
            try:
                await bridge.run(lambda session: _take_back(bridge, session, page, auth))
            except Exception as exc:
                log.error(
                    "on_connected failed for authentication %s and it could not be taken back: "
                    "%s (%s)",
                    auth.id,
                    failure.message,
                    type(exc).__name__,
                )
        raise
    return auth


def _take_back(bridge: Bridge, session: Session, page: ConnectPage, auth: Authentication) -> None:
    authentications.delete(bridge, session, page.principal, auth.id)
    ConnectSessionRepository(session).reopen(page.record.id)


async def _on_connected(
    bridge: Bridge, page: ConnectPage, result: ConnectResult, auth: Authentication
) -> None:
    """Run the definition's ``on_connected`` callback, given the stored account (no database)."""
    callback = page.setup.definition.on_connected
    if callback is None:
        return
    context = Context(
        http=bridge.http,
        now=bridge.now(),
        config=page.setup.config,
        callback_url=page.setup.callback_url,
        tokens=result.credentials,
        profile=result.profile,
        auth_id=auth.id,
    )
    try:
        await call(callback, context)
    except errors.AuthBridgeError:
        raise
    except Exception as exc:
        message = redact(str(exc) or type(exc).__name__, context.secrets())
        raise errors.ProviderError(f"on_connected failed: {message}") from exc


def account_identity(profile: Mapping[str, Any] | None) -> str | None:
    """The provider's id of the account in its profile, if the profile has one.

    The name is no identity: the end user may have renamed the connection.
    """
    if profile is not None:
        for key in ("id", "user_id", "sub", "account_id"):
            value = profile.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return f"{key}:{value}"
    return None


def finish(
    bridge: Bridge,
    session: Session,
    code: str | None,
    page: ConnectPage,
    result: ConnectResult,
    *,
    name: str | None = None,
) -> Authentication:
    """Use up the session and store the connected account (in place when editing).

    ``code`` is the link's code; ``None`` when the session was reached through an OAuth state.
    A reconnect that brings back another account than the one being edited is refused unless
    the session allows it.
    """
    sessions = ConnectSessionRepository(session)
    now = bridge.now()
    if code is None:
        record = sessions.consume_by_id(page.record.id, now=now)
    else:
        record = sessions.consume(code, now=now)
    if record is None:
        raise errors.ExpiredLink(EXPIRED_LINK)
    if page.options.skip_title_field:
        name = None
    existing = None
    if page.editing is not None:
        existing = authentications.get(bridge, session, page.principal, page.editing.id)
        _check_same_account(bridge, session, page, existing, result)
    return authentications.store(
        bridge,
        session,
        page.principal,
        end_user_id=record.end_user_id,
        setup=page.setup,
        result=result,
        name=name,
        existing=existing,
        delete_at=None if page.options.delete_after is None else now + page.options.delete_after,
        via="connect_page",
    )


def _check_same_account(
    bridge: Bridge,
    session: Session,
    page: ConnectPage,
    existing: Authentication,
    result: ConnectResult,
) -> None:
    if page.options.allow_account_change:
        return
    stored_profile = AuthenticationRepository(session, bridge.keyring).profile(existing)
    before = account_identity(stored_profile)
    after = account_identity(result.profile)
    if before is not None and after is not None and before != after:
        shown = result.account_name or "another account"
        raise errors.Conflict(
            f"You signed in as {shown}, but this connection belongs to {existing.name}. "
            "Sign in with that account, or add a new connection instead."
        )


def pick(
    bridge: Bridge, session: Session, code: str, page: ConnectPage, auth_id: str
) -> Authentication:
    """Choose one of the end user's existing authentications instead of adding one."""
    if auth_id not in {auth.id for auth in page.existing}:
        raise errors.InvalidInput("choose one of the accounts listed", field="authentication_id")
    if ConnectSessionRepository(session).consume(code, now=bridge.now()) is None:
        raise errors.ExpiredLink(EXPIRED_LINK)
    return authentications.get(bridge, session, page.principal, auth_id)


def expires_in(record: ConnectSession, now: datetime) -> int:
    return max(0, int((record.expires_at - now).total_seconds()))
