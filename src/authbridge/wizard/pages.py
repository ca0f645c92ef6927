"""The configuration wizard, edit links and theme stylesheets (``/external/...``).

* ``/external/solutions/{theme}/{solutionId}?code=…`` (a new instance) and
  ``/external/solutions/{theme}/instances/{instanceId}?code=…`` (an instance of the code's end
  user): one screen per visible auth slot, then the config form; ``step`` names the screen.
  Every form posts to the page's own URL and passes the Origin check.
* ``/external/auth/edit/{theme}/{authId}?code=…&skipTitleField=true&skipAuthSettings=true``:
  reconnects the authentication in place through the connect page.
* A code opens one of them (the first; a wizard's screens are all one): any other page with it
  is refused, and so is an edit link opened twice.
* "Connect a new account" and edit links go through the connect pages; their success comes
  back to ``/external/return``, which finds the code again in a cookie set for that one
  connect session (HttpOnly, ``/external/`` only, 10 minutes): the code is never stored.
* ``/external/themes/{id}.css``: a theme's CSS as ``text/css`` with ``nosniff``.

Pages are rendered like the connect pages (:mod:`authbridge.api.rendering`): strict CSP, no
inline script, ``no-store``, ``same-origin`` referrers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.api.deps import get_bridge
from authbridge.api.rendering import (
    FORBIDDEN_ORIGIN,
    SECURITY_HEADERS,
    PageRoute,
    error_page,
    log,
    message_page,
    origin_allowed,
    page_message,
    read_form,
    render,
    web_origin,
)
from authbridge.services.bridge import Bridge
from authbridge.storage.models import Authentication
from authbridge.themes import service as themes
from authbridge.themes.service import PageTheme
from authbridge.wizard import service as wizard

COOKIE_PREFIX = "ab_wizard_"
COOKIE_MAX_AGE = 600
CONFIG_PREFIX = "config."
DEFAULT_THEME = PageTheme(key=themes.DEFAULT_KEY, title=themes.DEFAULT_TITLE)


class WizardRoute(PageRoute):
    """The wizard's error pages show the default theme (the page's own may be what failed)."""

    theme = DEFAULT_THEME


router = APIRouter(include_in_schema=False, route_class=WizardRoute)
TRUE = {"true", "1", "yes"}


def cookie_name(connect_session_id: str) -> str:
    """The cookie that keeps the code while the browser is on the connect pages."""
    return COOKIE_PREFIX + hashlib.sha256(connect_session_id.encode()).hexdigest()[:16]


def _prefix(bridge: Bridge) -> str:
    return urlsplit(bridge.public_url).path.rstrip("/")


def _redirect(location: str, **headers: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={**SECURITY_HEADERS, **headers})


def _keep_code(bridge: Bridge, response: Response, connect_session_id: str, code: str) -> None:
    response.set_cookie(
        cookie_name(connect_session_id),
        code,
        max_age=COOKIE_MAX_AGE,
        path=_prefix(bridge) + "/external/",
        secure=bridge.public_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )


def _check_plain(*values: str | None) -> None:
    """Refuse NUL in what comes from the URL: PostgreSQL text cannot hold it (a 500 else)."""
    if any(value is not None and "\x00" in value for value in values):
        raise errors.NotFound("This page does not exist.")


# --- the wizard --------------------------------------------------------------------------------


class Target(TypedDict, total=False):
    """What a wizard page is for: a solution (a new instance) or an instance."""

    solution_id: str
    instance_id: str


@dataclass
class Screen:
    """Everything one wizard screen shows."""

    wizard: wizard.Wizard
    theme: PageTheme
    step: str
    choices: list[Authentication] = field(default_factory=list)


def _load(
    bridge: Bridge,
    session: Session,
    code: str,
    theme_key: str,
    path: str,
    step: str,
    *,
    solution_id: str | None = None,
    instance_id: str | None = None,
    enter: bool = False,
) -> Screen:
    _check_plain(code, theme_key, path, step, solution_id, instance_id)
    opened = wizard.open_code(bridge, session, code)
    theme = themes.for_page(bridge, session, opened.record.environment_id, theme_key)
    loaded = wizard.load_wizard(
        bridge,
        session,
        code,
        path=path,
        theme=theme.key,
        solution_id=solution_id,
        instance_id=instance_id,
        enter=enter,
    )
    step = step if step in loaded.steps else loaded.steps[0]
    screen = Screen(wizard=loaded, theme=theme, step=step)
    if step != wizard.CONFIG_STEP:
        screen.choices = wizard.choices(bridge, session, loaded, loaded.slot(step))
    return screen


def _url(bridge: Bridge, path: str, code: str, step: str | None = None) -> str:
    query = {"code": code} | ({"step": step} if step else {})
    return f"{_prefix(bridge)}{path}?{urlencode(query)}"


def _location(bridge: Bridge, path: str, code: str, step: str | None = None) -> str:
    """The absolute URL of a wizard screen, for redirects."""
    return web_origin(bridge.public_url) + _url(bridge, path, code, step)


def _screen_page(
    bridge: Bridge,
    screen: Screen,
    code: str,
    *,
    error: errors.AuthBridgeError | None = None,
    entered: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    current = screen.wizard
    steps = current.steps
    index = steps.index(screen.step)
    values: dict[str, Any] = {}
    if screen.step == wizard.CONFIG_STEP:
        heading = "Settings"
        problems = error.problems if isinstance(error, errors.FormErrors) else {}
        values.update(
            slot=None,
            fields=wizard.config_fields(current, entered),
            problems=problems,
            prefix=CONFIG_PREFIX,
        )
        next_url = None
    else:
        slot = current.slot(screen.step)
        chosen = current.auth_values.get(slot.external_id)
        offered = {auth.id for auth in screen.choices}
        heading = f"Choose your {slot.title} account"
        values.update(slot=slot, choices=screen.choices, chosen=chosen)
        next_url = _url(bridge, current.path, code, steps[index + 1]) if chosen in offered else None
    return render(
        bridge,
        "wizard.html",
        status_code=status_code,
        theme=screen.theme,
        title=f"{heading} · {screen.theme.title}",
        heading=heading,
        solution_title=current.solution.title,
        number=index + 1,
        total=len(steps),
        step=screen.step,
        action=_url(bridge, current.path, code, screen.step),
        back_url=_url(bridge, current.path, code, steps[index - 1]) if index else None,
        next_url=next_url,
        error=None
        if isinstance(error, errors.FormErrors) or error is None
        else page_message(error),
        error_heading="That did not work",
        **values,
    )


async def _show(request: Request, theme_key: str, path: str, **target: Unpack[Target]) -> Response:
    bridge = get_bridge(request)
    code = request.query_params.get("code", "")
    step = request.query_params.get("step", "")
    screen = await bridge.run(
        lambda session: _load(bridge, session, code, theme_key, path, step, **target),
        readonly=True,
    )
    if not screen.wizard.entered:  # the code's first page: bind it to this wizard
        screen = await bridge.run(
            lambda session: _load(
                bridge, session, code, theme_key, path, step, enter=True, **target
            )
        )
    return _screen_page(bridge, screen, code)


async def _submit(
    request: Request, theme_key: str, path: str, **target: Unpack[Target]
) -> Response:
    bridge = get_bridge(request)
    if not origin_allowed(request, bridge):
        return message_page(bridge, title="Not allowed", message=FORBIDDEN_ORIGIN, status_code=403)
    code = request.query_params.get("code", "")
    submitted = await read_form(request)
    step = submitted.get("step", "")
    screen = await bridge.run(
        lambda session: _load(bridge, session, code, theme_key, path, step, **target),
        readonly=True,
    )
    try:
        return await _act(bridge, screen, code, submitted, **target)
    except errors.FormErrors as error:
        entered = {
            key.removeprefix(CONFIG_PREFIX): value
            for key, value in submitted.items()
            if key.startswith(CONFIG_PREFIX)
        }
        return _screen_page(bridge, screen, code, error=error, entered=entered, status_code=422)
    except errors.AuthBridgeError as error:
        if isinstance(error, errors.ExpiredLink):
            return error_page(bridge, error, theme=screen.theme or DEFAULT_THEME)
        if error.status >= 500 and not isinstance(
            error, errors.ProviderError | errors.DecryptionFailed
        ):
            log.error("wizard step failed: %s (%s)", error.message, error.code)
        return _screen_page(bridge, screen, code, error=error, status_code=error.status)


async def _act(
    bridge: Bridge,
    screen: Screen,
    code: str,
    submitted: Mapping[str, str],
    **target: Unpack[Target],
) -> Response:
    """Do what the screen's form asked, in one transaction (on a freshly loaded wizard)."""
    action = submitted.get("action")
    step = screen.step
    path = screen.wizard.path

    def reload(session: Session) -> wizard.Wizard:
        return wizard.load_wizard(
            bridge, session, code, path=path, theme=screen.theme.key, **target
        )

    if action == "pick" and step != wizard.CONFIG_STEP:
        auth_id = submitted.get("authentication_id", "")
        await bridge.run(
            lambda session: wizard.pick(bridge, session, reload(session), step, auth_id)
        )
        return _redirect(_location(bridge, path, code, screen.wizard.step_after(step)))
    if action == "connect" and step != wizard.CONFIG_STEP:
        url, connect_session_id = await bridge.run(
            lambda session: wizard.start_connect(bridge, session, reload(session), step)
        )
        response = _redirect(url)
        _keep_code(bridge, response, connect_session_id, code)
        return response
    if action == "finish" and step == wizard.CONFIG_STEP:
        config = {
            key.removeprefix(CONFIG_PREFIX): value
            for key, value in submitted.items()
            if key.startswith(CONFIG_PREFIX)
        }
        instance = await bridge.run(
            lambda session: wizard.finish(bridge, session, reload(session), config)
        )
        return render(
            bridge,
            "wizard_done.html",
            theme=screen.theme,
            title="All set",
            message="All set. You can close this window.",
            result_json=json.dumps({"solutionInstanceId": instance.id}),
            origin=screen.wizard.opened.record.origin or "",
        )
    raise errors.InvalidInput("choose an account, or fill in the form")


def _solution_path(theme_key: str, solution_id: str) -> str:
    return f"/external/solutions/{theme_key}/{solution_id}"


def _instance_path(theme_key: str, instance_id: str) -> str:
    return f"/external/solutions/{theme_key}/instances/{instance_id}"


@router.get("/external/solutions/{theme_key}/instances/{instance_id}")
async def show_instance(theme_key: str, instance_id: str, request: Request) -> Response:
    path = _instance_path(theme_key, instance_id)
    return await _show(request, theme_key, path, instance_id=instance_id)


@router.post("/external/solutions/{theme_key}/instances/{instance_id}")
async def submit_instance(theme_key: str, instance_id: str, request: Request) -> Response:
    path = _instance_path(theme_key, instance_id)
    return await _submit(request, theme_key, path, instance_id=instance_id)


@router.get("/external/solutions/{theme_key}/{solution_id}")
async def show_solution(theme_key: str, solution_id: str, request: Request) -> Response:
    path = _solution_path(theme_key, solution_id)
    return await _show(request, theme_key, path, solution_id=solution_id)


@router.post("/external/solutions/{theme_key}/{solution_id}")
async def submit_solution(theme_key: str, solution_id: str, request: Request) -> Response:
    path = _solution_path(theme_key, solution_id)
    return await _submit(request, theme_key, path, solution_id=solution_id)


# --- edit links and the way back -----------------------------------------------------------------


@router.get("/external/auth/edit/{theme_key}/{auth_id}")
async def edit(theme_key: str, auth_id: str, request: Request) -> Response:
    """Reconnect ``auth_id`` in place: straight to the connect page in reconnect mode (and,
    for OAuth with ``skipAuthSettings``, from there straight to the provider's consent)."""
    bridge = get_bridge(request)
    query = request.query_params
    code = query.get("code", "")
    options = wizard.EditOptions(
        skip_title_field=query.get("skipTitleField", "").lower() in TRUE,
        skip_auth_settings=query.get("skipAuthSettings", "").lower() in TRUE,
        theme=theme_key,
    )

    def start(session: Session) -> tuple[str, str]:
        _check_plain(code, theme_key, auth_id)
        opened = wizard.open_code(bridge, session, code)
        themes.for_page(bridge, session, opened.record.environment_id, theme_key)
        return wizard.start_edit(bridge, session, opened, auth_id, options)

    url, connect_session_id = await bridge.run(start)
    response = _redirect(url)
    _keep_code(bridge, response, connect_session_id, code)
    return response


@router.get("/external/return")
async def came_back(request: Request) -> Response:
    """Where a connect session of the wizard or an edit link ends (see the module's doc)."""
    bridge = get_bridge(request)
    connect_session_id = request.query_params.get("connect_session", "")
    auth_id = request.query_params.get("auth", "")
    cookie = cookie_name(connect_session_id)
    code = request.cookies.get(cookie, "")
    try:
        _check_plain(code, connect_session_id, auth_id)
        returned = await bridge.run(
            lambda session: wizard.connected(bridge, session, code, connect_session_id, auth_id),
        )
        response = await _answer(bridge, returned, code)
    except Exception as exc:
        response = error_page(bridge, exc, theme=DEFAULT_THEME)
    response.delete_cookie(cookie, path=_prefix(bridge) + "/external/")
    return response


async def _answer(bridge: Bridge, returned: wizard.Returned, code: str) -> Response:
    """Back to the wizard's next step, the same step to try again, or an edit link's end."""
    if returned.problem is not None:
        return await _retry(bridge, returned, code)
    if returned.path is not None:
        return _redirect(_location(bridge, returned.path, code, returned.step))
    return render(
        bridge,
        "success.html",
        title="Connected",
        result_json=json.dumps(
            {"authId": returned.auth.id, "connector": returned.auth.connector_key}
        ),
        origin=returned.opened.record.origin or "",
        account=returned.auth.name,
    )


async def _retry(bridge: Bridge, returned: wizard.Returned, code: str) -> Response:
    """The step the account was connected for, again, saying what it lacked (422): its
    "Connect a new account" tries once more."""
    current, step, problem = returned.wizard, returned.step, returned.problem
    assert current is not None
    assert step is not None
    assert problem is not None
    target: Target = (
        {"instance_id": current.instance.id}
        if current.instance is not None
        else {"solution_id": current.solution.id}
    )
    theme_key = current.theme or themes.DEFAULT_KEY
    screen = await bridge.run(
        lambda session: _load(bridge, session, code, theme_key, current.path, step, **target),
        readonly=True,
    )
    return _screen_page(bridge, screen, code, error=errors.InvalidInput(problem), status_code=422)


@router.get("/external/themes/{theme_id}.css")
async def stylesheet(theme_id: str, request: Request) -> Response:
    """A theme's CSS, a stylesheet of its own: never inlined, never sniffed as anything else."""
    bridge = get_bridge(request)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    try:
        _check_plain(theme_id)
        css = await bridge.run(lambda session: themes.css_of(session, theme_id), readonly=True)
    except errors.NotFound:
        return Response("/* no such stylesheet */", 404, headers, media_type="text/css")
    return Response(css, 200, headers, media_type="text/css")
