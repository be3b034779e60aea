"""The frame of the ready app's HTML pages: head, who is logged in, body.

Every value put into a page goes through :func:`html.escape`; pages have
no script and no inline style, so the Content-Security-Policy the app
sends can forbid both.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from pyramid.csrf import get_csrf_token


def identity_of(request: Any) -> Any:
    """The request's identity, or None (also when the database cannot
    say, on an error page)."""
    try:
        return request.identity
    except Exception:  # noqa: BLE001 - an error page must still render
        return None


def csrf_field(request: Any) -> str:
    token = escape(get_csrf_token(request))
    return f'<input type="hidden" name="csrf_token" value="{token}">'


def user_bar(request: Any) -> str:
    """Who is logged in and a logout button, or a login link."""
    identity = identity_of(request)
    if identity is None:
        if getattr(request, 'view_name', '') in ('login', 'logout'):
            return ''  # the login form is this page, or one link away
        came_from = quote(request.path_info or '/')
        return (
            f'<nav><a href="{escape(request.script_name)}/@@login?came_from='
            f'{escape(came_from)}">Log in</a></nav>'
        )
    if identity.via != 'session':
        return f'<nav>{escape(identity.name)} (HTTP Basic)</nav>'
    return (
        f'<nav>{escape(identity.name)} ({escape(identity.role)}) '
        f'<form method="post" action="{escape(request.script_name)}'
        f'/@@logout">{csrf_field(request)}<button>Log out</button>'
        '</form></nav>'
    )


def page(request: Any, title: str, body: str) -> str:
    """A whole document: ``title`` (text) and ``body`` (HTML, escaped by
    the caller)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{escape(title)}</title></head><body>{user_bar(request)}'
        f'<h1>{escape(title)}</h1>{body}</body></html>'
    )
