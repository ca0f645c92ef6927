"""``/v1/themes``: the branding of the configuration wizard and edit pages (master token)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.api.schemas import Request
from authbridge.storage.models import Theme
from authbridge.themes import service as themes

router = APIRouter(prefix="/v1/themes", tags=["themes"])


class ThemeIn(Request):
    title: str = Field(min_length=1, max_length=themes.MAX_TITLE)
    logo_url: str | None = Field(
        default=None, max_length=themes.MAX_LOGO_URL, description="An https URL"
    )
    css: str = Field(
        default="",
        description=f"A stylesheet of at most {themes.MAX_CSS_BYTES // 1024} KiB, served as "
        "its own file after the pages' own stylesheet",
    )


class ThemeOut(BaseModel):
    key: str = Field(description="Use it in the page URLs: /external/solutions/{key}/...")
    title: str
    logo_url: str | None
    css: str
    stylesheet_url: str | None = Field(description="Where the pages load the CSS from")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, theme: Theme, url: str) -> ThemeOut:
        return cls(
            key=theme.key,
            title=theme.title,
            logo_url=theme.logo_url,
            css=theme.css,
            stylesheet_url=url + themes.stylesheet_path(theme) if theme.css else None,
            created_at=theme.created_at,
            updated_at=theme.updated_at,
        )


@router.put(
    "/{key}",
    summary="Create or replace a theme",
    responses={201: {"model": ThemeOut, "description": "The theme was created"}},
)
def put_theme(
    key: str, body: ThemeIn, bridge: BridgeDep, token: TokenDep, response: Response
) -> ThemeOut:
    """The pages of the wizard and edit links whose URL names `key` show this title, logo
    and CSS. The key `default` is used when a link names no configured theme of its own."""
    with transaction(bridge, token, master=True) as (session, principal):
        theme, created = themes.put(
            bridge,
            session,
            principal,
            key,
            title=body.title,
            logo_url=body.logo_url,
            css=body.css,
        )
        response.status_code = 201 if created else 200
        return ThemeOut.of(theme, bridge.public_url)


@router.get("", summary="List themes")
def list_themes(bridge: BridgeDep, token: TokenDep) -> list[ThemeOut]:
    with transaction(bridge, token, master=True) as (session, principal):
        listed = themes.list_themes(session, principal)
        return [ThemeOut.of(theme, bridge.public_url) for theme in listed]


@router.get("/{key}", summary="Read a theme")
def get_theme(key: str, bridge: BridgeDep, token: TokenDep) -> ThemeOut:
    with transaction(bridge, token, master=True) as (session, principal):
        return ThemeOut.of(themes.get(session, principal, key), bridge.public_url)


@router.delete("/{key}", status_code=204, summary="Delete a theme")
def delete_theme(key: str, bridge: BridgeDep, token: TokenDep) -> Response:
    with transaction(bridge, token, master=True) as (session, principal):
        themes.delete(session, principal, key)
    return Response(status_code=204)
