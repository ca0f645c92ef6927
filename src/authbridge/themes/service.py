"""Themes: the title, logo and stylesheet of the wizard and edit pages, per environment.

A host white-labels the pages by putting a theme (``PUT /v1/themes/{key}``) and using its key
in the page URLs (``/external/solutions/{key}/...``, ``/external/auth/edit/{key}/...``); with
a reverse proxy on its own domain as the public URL, every link and asset stays on that domain.

The host's CSS is never inlined: it is served as a stylesheet of its own
(``/external/themes/{id}.css``, ``text/css`` with ``nosniff``), so the pages keep their strict
Content-Security-Policy and no ``</style>`` in the CSS can end up as markup. The key
``default`` always works: the configured theme of that key, else :data:`DEFAULT_TITLE` with
the bundled stylesheet only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal, storable_text
from authbridge.storage.models import Theme
from authbridge.themes.repository import ThemeRepository

DEFAULT_KEY = "default"
DEFAULT_TITLE = "Connect your accounts"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TITLE = 255
MAX_LOGO_URL = 2048
MAX_CSS_BYTES = 64 * 1024
UNKNOWN_THEME = "There is no theme '{key}'. Check the link, or ask the application's support."


@dataclass(frozen=True)
class PageTheme:
    """What a page shows of a theme: title, logo, and the path of its stylesheet (if any)."""

    key: str
    title: str
    logo_url: str | None = None
    stylesheet: str | None = None


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise errors.InvalidInput("a theme key is 1 to 64 letters, digits, '-' or '_'", field="key")
    return key


def _check_title(title: str) -> str:
    if not storable_text(title):
        raise errors.InvalidInput("title must be valid UTF-8 text", field="title")
    cleaned = title.strip()
    if not cleaned or len(cleaned) > MAX_TITLE:
        raise errors.InvalidInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cleaned):
        raise errors.InvalidInput("title must not contain control characters", field="title")
    return cleaned


def _check_logo_url(logo_url: str | None) -> str | None:
    if not logo_url:
        return None
    try:
        parts = urlsplit(logo_url)
        valid = parts.scheme == "https" and bool(parts.hostname) and parts.username is None
    except ValueError:
        valid = False
    too_long = len(logo_url) > MAX_LOGO_URL
    if not valid or too_long or not logo_url.isascii() or any(c.isspace() for c in logo_url):
        raise errors.InvalidInput(
            "logo_url must be an https URL (ASCII, without spaces or credentials)",
            field="logo_url",
        )
    return logo_url


def _check_css(css: str) -> str:
    if not storable_text(css):
        raise errors.InvalidInput("css must be valid UTF-8 text without NUL", field="css")
    if len(css.encode("utf-8")) > MAX_CSS_BYTES:
        raise errors.InvalidInput(f"css is longer than {MAX_CSS_BYTES // 1024} KiB", field="css")
    return css


def put(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    key: str,
    *,
    title: str,
    logo_url: str | None = None,
    css: str = "",
) -> tuple[Theme, bool]:
    """Create or replace the theme ``key``; return it and whether it was created."""
    principal.require_master()
    return ThemeRepository(session).upsert(
        principal.environment_id,
        check_key(key),
        title=_check_title(title),
        logo_url=_check_logo_url(logo_url),
        css=_check_css(css),
        now=bridge.now(),
    )


def list_themes(session: Session, principal: Principal) -> list[Theme]:
    """The environment's themes."""
    return list(ThemeRepository(session).list(principal.environment_id))


def get(session: Session, principal: Principal, key: str) -> Theme:
    principal.require_master()
    valid = KEY_PATTERN.fullmatch(key) is not None
    theme = ThemeRepository(session).get(principal.environment_id, key) if valid else None
    if theme is None:
        raise errors.NotFound(f"theme '{key}' not found")
    return theme


def delete(session: Session, principal: Principal, key: str) -> None:
    ThemeRepository(session).delete(get(session, principal, key))


def stylesheet_path(theme: Theme) -> str:
    """The path of the theme's stylesheet; the version changes it when the CSS changes."""
    return f"/external/themes/{theme.id}.css?v={int(theme.updated_at.timestamp())}"


def for_page(bridge: Bridge, session: Session, environment_id: str, key: str) -> PageTheme:
    """The theme a page of ``environment_id`` shows for ``key``; :class:`errors.NotFound`
    (with a message for the end user) when there is none."""
    theme = (
        ThemeRepository(session).get(environment_id, key) if KEY_PATTERN.fullmatch(key) else None
    )
    if theme is None:
        if key == DEFAULT_KEY:
            return PageTheme(key=key, title=DEFAULT_TITLE)
        raise errors.NotFound(UNKNOWN_THEME.format(key=key[:64]))
    return PageTheme(
        key=theme.key,
        title=theme.title,
        logo_url=theme.logo_url,
        stylesheet=_prefix(bridge) + stylesheet_path(theme) if theme.css else None,
    )


def _prefix(bridge: Bridge) -> str:
    return urlsplit(bridge.public_url).path.rstrip("/")


def css_of(session: Session, theme_id: str) -> str:
    """The CSS of the theme with row id ``theme_id``; :class:`errors.NotFound` otherwise."""
    theme = ThemeRepository(session).get_by_id(theme_id)
    if theme is None:
        raise errors.NotFound("no such stylesheet")
    return theme.css
