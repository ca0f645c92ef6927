"""What every connect page shares: templates, security headers, the common pages.

A failure that leaves a page route nothing to show ends in :func:`error_page`, the HTML
counterpart of :mod:`authbridge.api.problems`: routers of pages are built with
``route_class=PageRoute``, which answers any exception their handler lets through with it.
A route catches an error itself only where it has something better to show (its form again,
with the error beside the field).

Every page is sent with a strict Content Security Policy (no inline script or style),
``nosniff``, ``no-store`` and a referrer policy that keeps the one-time code in the URL from
other sites (``same-origin``; ``no-referrer`` on OAuth callbacks). Values are autoescaped; only
tooltips, sanitised by nh3 when the definition was loaded, are rendered as HTML.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.staticfiles import StaticFiles

from authbridge import errors
from authbridge.api.deps import get_bridge
from authbridge.connect import service as connect
from authbridge.services.bridge import Bridge
from authbridge.storage import faults
from authbridge.storage.models import Authentication
from authbridge.themes.service import PageTheme

log = logging.getLogger("authbridge.connect.pages")

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: A page's form may have this many fields, each this large (the whole form: api.limits).
FORM_FIELDS = 1000
FORM_FIELD = 64 * 1024
FIELD_PREFIX = "field."
IMAGE_SCHEMES = ("https:", "data:image/")

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
        "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    # The page's URL holds the one-time code: no other site may see it as a referrer. Our own
    # form POST still carries the page's real Origin (with no-referrer it would be "null").
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

SELF = "'self'"
FORBIDDEN_ORIGIN = "This form can only be submitted from the page that shows it."
CONNECT_FAILED = "Connecting account failed"

templates = Environment(
    loader=PackageLoader("authbridge.api", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

T = TypeVar("T")


class StaticAssets(StaticFiles):
    """The connect pages' stylesheet and scripts, and ``authbridge.js`` for host pages."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_files() -> StaticAssets:
    return StaticAssets(directory=STATIC_DIR)


# --- helpers -----------------------------------------------------------------------------------


def web_origin(url: str) -> str:
    """The origin a browser serialises for ``url``: scheme, lowercase host, non-default port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"


def origin_allowed(request: Request, bridge: Bridge) -> bool:
    """Whether a POST may come from where it says it comes from.

    A present ``Origin`` must be this server's own origin (the pages' ``same-origin`` referrer
    policy lets the browser send it; ``null`` is refused). A request without ``Origin`` (not a
    browser form) is accepted: the code is the credential.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return web_origin(origin) == web_origin(bridge.public_url)


def static_url(bridge: Bridge, name: str) -> str:
    """The path of a static file, below the path of ``public_url`` (when it has one)."""
    prefix = urlsplit(bridge.public_url).path.rstrip("/")
    return f"{prefix}/static/{name}"


def render(
    bridge: Bridge,
    template: str,
    *,
    status_code: int = 200,
    referrer_policy: str = "same-origin",
    form_action: str = SELF,
    **values: Any,
) -> HTMLResponse:
    """A page with the security headers; ``referrer_policy`` is ``no-referrer`` on callbacks.

    ``form_action`` widens the CSP's ``form-action`` for the OAuth button (:func:`form_action`).
    """
    values.setdefault("theme", None)  # the wizard's pages show their theme (themes.service)
    html = templates.get_template(template).render(
        stylesheet=static_url(bridge, "connect.css"),
        static_url=lambda name: static_url(bridge, name),
        referrer_policy=referrer_policy,
        **values,
    )
    headers = {**SECURITY_HEADERS, "Referrer-Policy": referrer_policy}
    if form_action != SELF:
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
            f"form-action {SELF};", f"form-action {form_action};"
        )
    return HTMLResponse(html, status_code=status_code, headers=headers)


def form_action(page: connect.ConnectPage) -> str:
    """Where the page's forms may lead: here, and for OAuth connectors the provider too.

    Browsers check ``form-action`` on every redirect of a form submission, so the OAuth button
    (a POST answered by a 303 to the provider's sign-in page, which may redirect again) needs
    the provider: any https origin, and the authorization URL's own origin when it is a fixed
    http one (a local provider such as the sandbox). That page has no secret field to lose.
    """
    if not page.signs_in_at_provider:
        return SELF
    sources = [SELF, "https:"]
    auth_url = getattr(page.setup.definition, "auth_url", None)
    if isinstance(auth_url, str):
        parts = urlsplit(auth_url)
        if parts.scheme == "http" and parts.hostname and not set("{}'; ") & set(parts.netloc):
            sources.append(web_origin(auth_url))
    return " ".join(sources)


def message_page(
    bridge: Bridge, *, title: str, message: str, status_code: int, **options: Any
) -> HTMLResponse:
    return render(
        bridge, "message.html", status_code=status_code, title=title, message=message, **options
    )


def expired_page(
    bridge: Bridge, message: str = connect.EXPIRED_LINK, **options: Any
) -> HTMLResponse:
    return message_page(bridge, title="Link expired", message=message, status_code=404, **options)


def button_image(page: connect.ConnectPage) -> str | None:
    """The definition's connect button image, when its URL is one the page may show."""
    button = page.setup.definition.connect_account_button
    if button is None or not button.image.lower().startswith(IMAGE_SCHEMES):
        return None
    return button.image


def connect_page(
    bridge: Bridge,
    page: connect.ConnectPage,
    code: str,
    *,
    values: Mapping[str, str] | None = None,
    name: str | None = None,
    error: errors.AuthBridgeError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The page of a valid code: pick list and form, or the failure of a submission.

    ``values`` are what the end user typed (re-shown after a failure, never a secret); without
    them the form is prefilled from the authentication being edited.

    ``skip_auth_settings`` (a session option) applies only to OAuth connectors (see
    :mod:`authbridge.connect.oauth_pages`); a form connector's fields are its credentials and are
    always shown.
    """
    definition = page.setup.definition
    shown = dict(page.prefill if values is None else values)
    for key, spec in page.fields.items():
        if spec.is_secret:
            shown.pop(key, None)
        elif key not in shown and spec.default is not None and values is None:
            shown[key] = spec.default
    if name is None and page.editing is not None:
        name = page.editing.name
    label = page.setup.connector.label
    return render(
        bridge,
        "connect.html",
        status_code=status_code,
        form_action=form_action(page),
        title=f"Reconnect {page.editing.name}" if page.editing else f"Connect {label}",
        label=label,
        auth_type=definition.type,
        oauth=page.signs_in_at_provider,
        editing=page.editing,
        existing=[] if page.editing else list(page.existing),
        fields=page.fields,
        values=shown,
        name=name or "",
        show_name=not page.options.skip_title_field and definition.type != "none",
        button_image=button_image(page),
        oauth_start=f"{urlsplit(bridge.public_url).path.rstrip('/')}/connect/{code}/oauth",
        error=page_message(error) if error else None,
        error_field=getattr(error, "field", None),
        failed_heading=CONNECT_FAILED,
        field_prefix=FIELD_PREFIX,
        theme=page.theme,
    )


def success_page(
    bridge: Bridge, page: connect.ConnectPage, auth: Authentication, **options: Any
) -> Response:
    """The result for the host's popup, or, for a session the wizard opened, back to it."""
    if page.options.return_to is not None:
        query = urlencode({"connect_session": page.record.id, "auth": auth.id})
        return RedirectResponse(
            f"{bridge.url(page.options.return_to)}?{query}",
            status_code=303,
            headers={**SECURITY_HEADERS, **_referrer(options)},
        )
    result = {"authId": auth.id, "connector": page.record.connector_key}
    return render(
        bridge,
        "success.html",
        **options,
        title="Connected",
        result_json=json.dumps(result),
        origin=page.record.origin or "",
        account=auth.name,
    )


def _referrer(options: Mapping[str, Any]) -> dict[str, str]:
    policy = options.get("referrer_policy")
    return {"Referrer-Policy": policy} if isinstance(policy, str) else {}


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a page's form (files are ignored), within the forms' limits.

    The body is at most :data:`~authbridge.api.limits.FORM_BODY` (the middleware saw to it);
    more than :data:`FORM_FIELDS` fields, or a field over :data:`FORM_FIELD`, is a
    :class:`~authbridge.errors.RequestTooLarge` naming the limit. A multipart form is parsed
    with the same limits, and one the parser refuses is invalid input in its words.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        fields = (await request.body()).split(b"&")
        if len(fields) > FORM_FIELDS:
            raise errors.RequestTooLarge(f"a form may have at most {FORM_FIELDS:,} fields")
        if any(len(item) > FORM_FIELD for item in fields):
            raise errors.RequestTooLarge(f"a form field may hold at most {FORM_FIELD // 1024} KiB")
    try:
        async with request.form(
            max_fields=FORM_FIELDS, max_files=FORM_FIELDS, max_part_size=FORM_FIELD
        ) as form:
            return {key: value for key, value in form.items() if isinstance(value, str)}
    except HTTPException as exc:  # Starlette's words name the limit (a multipart form)
        raise errors.InvalidInput(f"the form cannot be read: {exc.detail}") from None


def is_expired_link(error: errors.AuthBridgeError) -> bool:
    return isinstance(error, errors.ExpiredLink)


UNEXPECTED = "An unexpected error occurred; it has been logged. Please try again later."
BROKEN_DEFINITION = (
    "This connector is not set up correctly on the server; the problem has been logged. "
    "Please tell the application's administrators."
)


def page_message(error: errors.AuthBridgeError) -> str:
    """What a page says of ``error``: its message, but never a broken definition's, which
    names the server's files (that one is logged instead)."""
    if isinstance(error, errors.DefinitionError):
        log.error("a connector definition failed on a page: %s", error.message)
        return BROKEN_DEFINITION
    return error.message


def error_page(
    bridge: Bridge, exc: Exception, *, theme: PageTheme | None = None, **options: Any
) -> HTMLResponse:
    """The page of a failure that leaves nothing else to show, for every page route.

    An expired or used link says so (404); something not found, a connector not installed, or
    a conflict (the link is not the one this page waits for) is a 404 that names it; database
    trouble is a 503 with ``Retry-After``, logged as one
    warning; anything else unexpected is a bare 500, logged once with its traceback. The
    message is the error's own, which never quotes a secret; ``options`` go to :func:`render`.
    """
    error = exc if isinstance(exc, errors.AuthBridgeError) else faults.unavailable(exc)
    options["theme"] = theme
    if error is None:
        log.error("page failed unexpectedly", exc_info=exc)
        return message_page(
            bridge, title="Something went wrong", message=UNEXPECTED, status_code=500, **options
        )
    if isinstance(error, errors.ExpiredLink):
        return expired_page(bridge, error.message, **options)
    if isinstance(error, errors.RequestTooLarge):
        title = "Too large"
    elif isinstance(error, errors.ConnectorNotFound):
        title = "Not available"
    elif isinstance(error, errors.NotFound):
        title = "Not found"
    else:
        title = "Something went wrong"
    status = 404 if error.status == 409 else error.status
    response = message_page(
        bridge, title=title, message=page_message(error), status_code=status, **options
    )
    if isinstance(error, errors.DatabaseUnavailable):
        response.headers["Retry-After"] = str(error.retry_after)
        log.warning(
            "database unavailable: %s (%s); page answered 503, retry after %d s",
            error.kind,
            error.cause or error.code,
            error.retry_after,
        )
    elif error.status >= 500 and not isinstance(
        error, errors.ProviderError | errors.DecryptionFailed
    ):
        log.error("page failed: %s (%s)", error.message, error.code)
    return response


class PageRoute(APIRoute):
    """A page route: what its handler raises is answered by :func:`error_page`.

    FastAPI's own answers (an unknown method, a malformed parameter) still go to the problem
    handlers. ``theme`` is the one error pages of the router show (the wizard's default). A
    browser that went away while sending its form (or was answered 413 meanwhile,
    :mod:`authbridge.api.limits`) is nobody to answer, and no error.
    """

    theme: ClassVar[PageTheme | None] = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        theme = self.theme

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, RequestValidationError):
                raise
            except ClientDisconnect:
                return Response(status_code=400)  # sent to nobody
            except Exception as exc:
                return error_page(get_bridge(request), exc, theme=theme)

        return answer
