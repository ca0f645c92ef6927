"""The configuration wizard and edit links, opened by one-time authorization codes.

The host mints a code for one end user (:func:`create_authorization_code`, 10 minutes). The
code opens one dialog: the wizard for a solution (a new instance) or for one of the end user's
instances, or an edit link for one of the end user's authentications. The first page it opens
binds it to that dialog (:func:`_enter`); the wizard's own screens (in any tab) are the same
dialog, while another wizard, an edit link, or the same edit link again is refused. It is used
up by the flow that finishes (the instance stored, the account reconnected); a finished flow
cannot be replayed. A connect session the dialog opened lives no longer than the code, and one
it no longer waits for is closed, so a tab left behind can store nothing.

The wizard's progress is kept on the code's row (:attr:`AuthorizationCode.progress`): which
account fills which slot, and the connect session a "connect a new account" step is waiting
for (config values go straight from the last screen into the instance). The browser only
ever names a step and, among the accounts it was offered, the one it picks; slots, connectors
and scopes come from the solution. The settings form is :mod:`config_form`.

"Connect a new account" opens an ordinary connect session (the connect pages and OAuth flows)
for the slot's connector, version, variant and scopes, whose success comes back to
:func:`connected` instead of posting to a popup's opener.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications import service as authentications
from authbridge.connect.repository import ConnectSessionRepository
from authbridge.connect.repository.sessions import DEFAULT_TTL as CONNECT_TTL
from authbridge.connect.service import VARIANT_OPTION, ConnectOptions, check_origin
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from authbridge.storage.models import (
    Authentication,
    AuthorizationCode,
    AuthSlot,
    ConfigSlot,
    EndUser,
    Solution,
    SolutionInstance,
)
from authbridge.tenancy.repository import EndUserRepository
from authbridge.wizard import config_form
from authbridge.wizard.repository import AuthorizationCodeRepository

EXPIRED_CODE = "This link has expired or was already used. Ask the application for a new one."
ALREADY_OPENED = (
    "This link was already used to open another window; a link opens one only. "
    "Ask the application for a new one."
)
#: The key of :attr:`AuthorizationCode.progress` naming the dialog the code opened.
DIALOG = "dialog"
CONFIG_STEP = "config"
RETURN_PATH = "/external/return"


# --- codes -------------------------------------------------------------------------------------


def create_authorization_code(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    *,
    end_user_id: str,
    origin: str | None = None,
) -> tuple[str, datetime]:
    """Mint a one-time code for ``end_user_id`` (a user token: only for its own end user).

    ``origin`` is the host page's exact origin: the finished wizard posts its result there.
    Return the code (its only plaintext copy) and when it expires.
    """
    principal.check_owner(end_user_id, what=f"end user '{end_user_id}'")
    if EndUserRepository(session).get(principal.environment_id, end_user_id) is None:
        raise errors.NotFound(f"end user '{end_user_id}' not found")
    checked = check_origin(origin) if origin else None
    issued = AuthorizationCodeRepository(session).create(
        environment_id=principal.environment_id,
        end_user_id=end_user_id,
        origin=checked,
        now=bridge.now(),
    )
    return issued.code, issued.record.expires_at


@dataclass(frozen=True)
class Opened:
    """A valid code, its end user, and the principal the pages act as (the end user's)."""

    record: AuthorizationCode
    end_user: EndUser

    @property
    def principal(self) -> Principal:
        return Principal(
            environment_id=self.record.environment_id,
            actor=f"wizard:{self.record.id}",
            end_user_id=self.end_user.id,
            external_user_id=self.end_user.external_user_id,
        )


def open_code(bridge: Bridge, session: Session, code: str) -> Opened:
    """The unused, unexpired code; :class:`errors.ExpiredLink` otherwise (nothing is used
    up)."""
    record = (
        AuthorizationCodeRepository(session).get_valid(code, now=bridge.now()) if code else None
    )
    end_user = (
        EndUserRepository(session).get(record.environment_id, record.end_user_id)
        if record is not None
        else None
    )
    if record is None or end_user is None:
        raise errors.ExpiredLink(EXPIRED_CODE)
    return Opened(record=record, end_user=end_user)


def _use_up(bridge: Bridge, session: Session, opened: Opened) -> None:
    if not AuthorizationCodeRepository(session).consume(opened.record, now=bridge.now()):
        raise errors.ExpiredLink(EXPIRED_CODE)


def wizard_dialog(path: str) -> str:
    """The dialog of the wizard page ``path`` (its screens are all one dialog)."""
    return f"wizard:{path}"


def edit_dialog(auth_id: str) -> str:
    return f"edit:{auth_id}"


def bound_dialog(record: AuthorizationCode) -> str | None:
    """The dialog the code opened, ``None`` before its first page."""
    dialog = (record.progress or {}).get(DIALOG)
    return dialog if isinstance(dialog, str) else None


def _enter(session: Session, opened: Opened, dialog: str, *, again: bool) -> None:
    """Bind the code to ``dialog`` if it opened none yet; come back into it when ``again``
    (the wizard's screens); refuse anything else with :data:`ALREADY_OPENED`.

    The code's row is read again and locked first, so of two tabs opening two dialogs at
    once exactly one wins, and ``opened.record.progress`` is the current one.
    """
    codes = AuthorizationCodeRepository(session)
    record = codes.lock(opened.record)
    bound = bound_dialog(record)
    if bound is None:
        codes.save_progress(record, {DIALOG: dialog})
    elif bound != dialog or not again:
        raise errors.ExpiredLink(ALREADY_OPENED)


def _connect_ttl(bridge: Bridge, opened: Opened) -> timedelta:
    """A connect session the code opens expires with it at the latest."""
    return min(CONNECT_TTL, opened.record.expires_at - bridge.now())


def _close_pending(bridge: Bridge, session: Session, progress: Mapping[str, Any]) -> None:
    """Close the connect session the dialog waited for, if any: it can store nothing now."""
    pending = progress.get("pending") or {}
    connect_session = pending.get("connect_session")
    if isinstance(connect_session, str):
        ConnectSessionRepository(session).consume_by_id(connect_session, now=bridge.now())


# --- the wizard --------------------------------------------------------------------------------


@dataclass
class Wizard:
    """One opened wizard: the solution, the instance when editing, the values so far."""

    opened: Opened
    solution: Solution
    instance: SolutionInstance | None
    path: str
    auth_values: dict[str, str]
    config_values: dict[str, Any]
    progress: dict[str, Any] = field(repr=False)
    entered: bool = True

    @property
    def theme(self) -> str | None:
        """The key of the theme the wizard's pages show (the connect page shows it too)."""
        theme = self.progress.get("theme")
        return theme if isinstance(theme, str) else None

    @property
    def auth_steps(self) -> list[AuthSlot]:
        """The slots the end user fills: hidden and static slots never appear."""
        return [slot for slot in self.solution.auth_slots if not slot.hidden and not slot.static]

    @property
    def config_slots(self) -> list[ConfigSlot]:
        return [slot for slot in self.solution.config_slots if not slot.hidden]

    @property
    def steps(self) -> list[str]:
        return [slot.external_id for slot in self.auth_steps] + [CONFIG_STEP]

    def slot(self, external_id: str) -> AuthSlot:
        for slot in self.auth_steps:
            if slot.external_id == external_id:
                return slot
        raise errors.NotFound(f"this wizard has no step '{external_id[:128]}'")

    def step_after(self, step: str) -> str:
        steps = self.steps
        return steps[min(steps.index(step) + 1, len(steps) - 1)] if step in steps else steps[0]


def load_wizard(
    bridge: Bridge,
    session: Session,
    code: str,
    *,
    path: str,
    theme: str | None = None,
    solution_id: str | None = None,
    instance_id: str | None = None,
    enter: bool = True,
) -> Wizard:
    """The wizard of ``code`` for a solution (new instance) or an instance of the end user.

    ``path`` is the wizard's page (without the code), the dialog the code is bound to: a code
    that opened another one is refused. ``enter`` binds an unbound code to it (a write);
    without it (a read-only page view) :attr:`Wizard.entered` says whether it was bound.
    """
    opened = open_code(bridge, session, code)
    principal = opened.principal
    instance = None
    if instance_id is not None:
        instance = solutions.get_instance(bridge, session, principal, instance_id)
        solution = solutions.solution_of(session, instance)
    else:
        assert solution_id is not None
        solution = solutions.get_solution(bridge, session, principal, solution_id)
    dialog = wizard_dialog(path)
    if enter:
        _enter(session, opened, dialog, again=True)
    elif bound_dialog(opened.record) not in (None, dialog):
        raise errors.ExpiredLink(ALREADY_OPENED)
    progress = dict(opened.record.progress or {})
    if progress.get("path") != path:
        progress = {
            DIALOG: dialog,
            "path": path,
            "theme": theme,
            "solution": solution.id,
            "instance": instance.id if instance else None,
            "auth": {},
        }
    auth_values = {row.external_id: row.auth_id for row in instance.auth_values} if instance else {}
    auth_values.update(progress["auth"])
    config_values = (
        solutions.effective_config(solution, instance)
        if instance is not None
        else {s.external_id: s.default for s in solution.config_slots if s.default is not None}
    )
    return Wizard(
        opened=opened,
        solution=solution,
        instance=instance,
        path=path,
        auth_values=auth_values,
        config_values=config_values,
        progress=progress,
        entered=bound_dialog(opened.record) == dialog,
    )


def choices(
    bridge: Bridge, session: Session, wizard: Wizard, slot: AuthSlot
) -> list[Authentication]:
    """The end user's accounts that may fill ``slot`` (right connector and scopes, unused
    elsewhere when the slot is force-unique). Within the wizard too, a force-unique slot does
    not share its account with another slot."""
    unique = {s.external_id for s in wizard.auth_steps if s.force_unique}
    taken = {
        auth_id
        for step, auth_id in wizard.auth_values.items()
        if step != slot.external_id and (slot.force_unique or step in unique)
    }
    offered = solutions.eligible_auths(
        bridge, session, wizard.opened.principal, wizard.instance, slot, wizard.opened.end_user.id
    )
    return [auth for auth in offered if auth.id not in taken]


def _save(session: Session, wizard: Wizard) -> None:
    AuthorizationCodeRepository(session).save_progress(wizard.opened.record, wizard.progress)


def pick(bridge: Bridge, session: Session, wizard: Wizard, step: str, auth_id: str) -> None:
    """Fill the slot of ``step`` with one of the accounts it offers."""
    slot = wizard.slot(step)
    if auth_id not in {auth.id for auth in choices(bridge, session, wizard, slot)}:
        raise errors.InvalidInput("choose one of the accounts listed", field="authentication_id")
    wizard.progress["auth"] = {**wizard.progress["auth"], step: auth_id}
    wizard.auth_values[step] = auth_id
    _save(session, wizard)


def start_connect(bridge: Bridge, session: Session, wizard: Wizard, step: str) -> tuple[str, str]:
    """Open a connect session for the slot of ``step``; return its page's URL and its id.

    The session's connector, version, variant and scopes are the slot's; its success comes
    back to :data:`RETURN_PATH`.
    """
    slot = wizard.slot(step)
    bridge.registry.get(slot.connector_key, slot.connector_version)
    options = ConnectOptions(
        scopes=tuple(slot.scopes or ()), return_to=RETURN_PATH, theme=wizard.theme
    ).as_dict()
    if slot.connector_variant is not None:
        options[VARIANT_OPTION] = slot.connector_variant
    _close_pending(bridge, session, wizard.progress)  # one connect at a time: the newest
    issued = ConnectSessionRepository(session).create(
        environment_id=wizard.opened.record.environment_id,
        end_user_id=wizard.opened.end_user.id,
        connector_key=slot.connector_key,
        connector_version=slot.connector_version,
        options=options,
        now=bridge.now(),
        ttl=_connect_ttl(bridge, wizard.opened),
    )
    wizard.progress["pending"] = {"connect_session": issued.record.id, "step": step}
    _save(session, wizard)
    return bridge.url(f"/connect/{issued.code}"), issued.record.id


def config_fields(
    wizard: Wizard, entered: Mapping[str, str] | None = None
) -> list[config_form.ConfigField]:
    """The settings form: one field per visible config slot, showing ``entered`` (after a
    failed submission) or the current value (the instance's, else the default)."""
    return [
        config_form.field_for(slot, wizard.config_values, entered) for slot in wizard.config_slots
    ]


def finish(
    bridge: Bridge, session: Session, wizard: Wizard, submitted: Mapping[str, str]
) -> SolutionInstance:
    """Check the config form, then create (or update) the instance, enable it when complete,
    and use the code up. :class:`errors.FormErrors` names each field that is wrong."""
    entered = config_form.read(config_fields(wizard), submitted)
    unfilled = [
        slot.title for slot in wizard.auth_steps if slot.external_id not in wizard.auth_values
    ]
    if unfilled:
        raise errors.InvalidInput(f"choose an account for: {', '.join(unfilled)}")
    config_values = {**wizard.config_values, **entered}
    principal = wizard.opened.principal
    auth_values = {
        step: wizard.auth_values[step] for step in (s.external_id for s in wizard.auth_steps)
    }
    if wizard.instance is None:
        instance = solutions.create_instance(
            bridge,
            session,
            principal,
            solution_id=wizard.solution.id,
            end_user_id=wizard.opened.end_user.id,
            name=wizard.solution.title,
            auth_values=auth_values,
            config_values=config_values,
        )
    else:
        instance = solutions.update_instance(
            bridge,
            session,
            principal,
            wizard.instance.id,
            auth_values=auth_values,
            config_values=config_values,
        )
    if not instance.enabled and not solutions.missing_for_enable(wizard.solution, instance):
        instance = solutions.update_instance(bridge, session, principal, instance.id, enabled=True)
    _close_pending(bridge, session, wizard.progress)
    _use_up(bridge, session, wizard.opened)
    return instance


# --- edit links and the way back from the connect pages ---------------------------------------


@dataclass(frozen=True)
class EditOptions:
    """The reference's query parameters of an edit link."""

    skip_title_field: bool = False
    skip_auth_settings: bool = False
    theme: str | None = None


def start_edit(
    bridge: Bridge, session: Session, opened: Opened, auth_id: str, options: EditOptions
) -> tuple[str, str]:
    """Open a connect session that reconnects the end user's ``auth_id`` in place (same id);
    return its page's URL and its id. Another end user's authentication is "not found".

    This is the code's one dialog: a code that opened any page before (this one included) is
    refused, so no second connect session ever waits on it.
    """
    auth = authentications.get(bridge, session, opened.principal, auth_id)
    dialog = edit_dialog(auth.id)
    _enter(session, opened, dialog, again=False)
    stored = ConnectOptions(
        skip_title_field=options.skip_title_field,
        skip_auth_settings=options.skip_auth_settings,
        return_to=RETURN_PATH,
        scopes=tuple(auth.scopes) if auth.scopes else None,
        theme=options.theme,
    ).as_dict()
    if auth.connector_variant is not None:
        stored[VARIANT_OPTION] = auth.connector_variant
    issued = ConnectSessionRepository(session).create(
        environment_id=opened.record.environment_id,
        end_user_id=opened.end_user.id,
        connector_key=auth.connector_key,
        connector_version=auth.connector_version,
        authentication_id=auth.id,
        options=stored,
        now=bridge.now(),
        ttl=_connect_ttl(bridge, opened),
    )
    AuthorizationCodeRepository(session).save_progress(
        opened.record,
        {DIALOG: dialog, "pending": {"connect_session": issued.record.id, "edit": auth.id}},
    )
    return bridge.url(f"/connect/{issued.code}"), issued.record.id


@dataclass(frozen=True)
class Returned:
    """Where the browser goes after a connect: back to the wizard's ``path`` at ``step``, or,
    for an edit link, the end (``auth`` reconnected in place, the code used up).

    ``problem`` says why the account just connected cannot fill the step's slot (the scopes
    the provider did not grant): the browser stays on that ``step`` of ``wizard`` to try again.
    """

    opened: Opened
    auth: Authentication
    path: str | None = None
    step: str | None = None
    problem: str | None = None
    wizard: Wizard | None = None


NOT_FOR_THIS_LINK = "This account was not connected for this link. Start again from the link."
RETRY = 'Choose "Connect a new account" to try again, and allow everything the provider asks.'


def connect_problem(slot: AuthSlot, auth: Authentication) -> str | None:
    """Why the account just connected for ``slot`` cannot fill it, told to the end user: the
    scopes the provider did not grant (the connect session asked for them all), or, when the
    slot refuses wider grants, those it granted beyond them."""
    granted = set(auth.scopes or ())
    missing = [scope for scope in slot.scopes or () if scope not in granted]
    if missing:
        return (
            f"{auth.name} was connected without the permission(s) {slot.title} needs: "
            f"{', '.join(missing)}. {RETRY}"
        )
    extra = solutions.extra_scopes(auth, slot)
    if extra and slot.on_extra_scopes == "refuse":
        return (
            f"{auth.name} was granted more than {slot.title} may use: {', '.join(extra)}. "
            'Choose "Connect a new account" to try again, and allow only what is asked.'
        )
    return None


def connected(
    bridge: Bridge, session: Session, code: str, connect_session_id: str, auth_id: str
) -> Returned:
    """Take the account that a connect session of this code's wizard or edit link stored.

    The connect session must be the one the code waits for, and used up (its account stored);
    in the wizard the account then fills the step's slot exactly as if it had been picked.
    """
    opened = open_code(bridge, session, code)
    AuthorizationCodeRepository(session).lock(opened.record)
    progress = dict(opened.record.progress or {})
    pending = progress.get("pending") or {}
    record = ConnectSessionRepository(session).get(opened.record.environment_id, connect_session_id)
    if (
        pending.get("connect_session") != connect_session_id
        or record is None
        or record.used_at is None
    ):
        raise errors.Conflict(NOT_FOR_THIS_LINK)
    if "edit" in pending:
        if pending["edit"] != auth_id:
            raise errors.Conflict(NOT_FOR_THIS_LINK)
        auth = authentications.get(bridge, session, opened.principal, auth_id)
        AuthorizationCodeRepository(session).save_progress(
            opened.record, {DIALOG: edit_dialog(auth_id)}
        )
        _use_up(bridge, session, opened)
        return Returned(opened=opened, auth=auth)
    wizard = load_wizard(
        bridge,
        session,
        code,
        path=str(progress.get("path")),
        theme=progress.get("theme"),
        solution_id=progress.get("solution"),
        instance_id=progress.get("instance"),
    )
    wizard.progress.pop("pending", None)
    step = str(pending.get("step"))
    auth = authentications.get(bridge, session, opened.principal, auth_id)
    problem = connect_problem(wizard.slot(step), auth)
    if problem is not None:
        _save(session, wizard)
        return Returned(
            opened=opened, auth=auth, path=wizard.path, step=step, problem=problem, wizard=wizard
        )
    pick(bridge, session, wizard, step, auth_id)
    return Returned(opened=opened, auth=auth, path=wizard.path, step=wizard.step_after(step))
