"""Logging in and out, and what a refused request is told.

``GET @@login`` shows the form, ``POST @@login`` checks the name and
password (counted by the policy's throttle) and starts a signed session;
``POST @@logout`` ends it. The exception views answer 401, 403 and 429
with a message that says what to do, as JSON to JSON clients.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from pyramid.csrf import new_csrf_token
from pyramid.httpexceptions import (
    HTTPForbidden,
    HTTPSeeOther,
    HTTPTooManyRequests,
    HTTPUnauthorized,
)
from pyramid.interfaces import ISecurityPolicy
from pyramid.response import Response
from pyramid.security import forget, remember

from ..errorviews import json_client, respond
from .csrf import CrossSiteRefused, NoSessions, form_fields
from .html import csrf_field, identity_of, page
from .security import AUTH_FAILURE, NO_USERS, ReadOnly

REALM = 'Basic realm="pyramid_zeostore", charset="UTF-8"'
SESSIONS_OFF = (
    'Logging in with this form is off: the ini sets no zeostore.secret '
    '(or zeostore.secret_file). API clients log in with HTTP Basic '
    '(curl -u NAME ...).'
)


def _policy(request: Any) -> Any:
    return request.registry.getUtility(ISecurityPolicy)


def safe_came_from(request: Any, value: Any) -> str:
    """A path of this site to go back to (never another site's URL)."""
    if (
        not isinstance(value, str)
        or not value.startswith('/')
        or value.startswith('//')
        or '\\' in value
        or any(ord(c) < 32 for c in value)
    ):
        return '/'
    return value


def _form(request: Any, message: str = '') -> str:
    came_from = safe_came_from(request, request.params.get('came_from'))
    note = f'<p role="alert">{escape(message)}</p>' if message else ''
    return page(request, 'Log in', (
        f'{note}<form method="post" action="{escape(request.script_name)}'
        '/@@login">'
        '<p><label for="name">Name</label> '
        '<input id="name" name="name" autocomplete="username" required>'
        '</p><p><label for="password">Password</label> '
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required></p>'
        f'<input type="hidden" name="came_from" value="{escape(came_from)}">'
        f'{csrf_field(request)}<p><button>Log in</button></p></form>'
    ))


def _unavailable(request: Any) -> str | None:
    policy = _policy(request)
    if policy.secret is None:
        return SESSIONS_OFF
    if not policy.users(request):
        return NO_USERS.format(ini=policy.ini)
    return None


def login_form(context: Any, request: Any) -> Any:
    """GET @@login: the form (or why there is none)."""
    reason = _unavailable(request)
    if reason is not None:
        return Response(
            page(request, 'Log in', f'<p>{escape(reason)}</p>'),
            content_type='text/html',
        )
    return Response(_form(request), content_type='text/html')


def login(context: Any, request: Any) -> Any:
    """POST @@login: check the name and password; start a session."""
    reason = _unavailable(request)
    if reason is not None:
        return respond(request, HTTPForbidden, reason)
    form = form_fields(request)
    name, password = form.get('name'), form.get('password')
    user = None
    if isinstance(name, str) and isinstance(password, str):
        user = _policy(request).check_password(request, name, password)
    if user is None:
        failure = request.environ.get(AUTH_FAILURE)
        if failure and failure[0] == 'throttled':
            return throttled(request, failure[1])
        message = 'Wrong name or password.'
        if json_client(request):
            return respond(request, HTTPForbidden, message)
        response = Response(_form(request, message), content_type='text/html')
        response.status = 403
        return response
    request.session.invalidate()
    remember(request, user.name)
    new_csrf_token(request)
    came_from = safe_came_from(request, form.get('came_from'))
    return HTTPSeeOther(location=request.application_url + came_from)


def logout_form(context: Any, request: Any) -> Any:
    """GET @@logout: a button (logging out is a POST)."""
    if identity_of(request) is None or _policy(request).secret is None:
        return HTTPSeeOther(location=request.application_url + '/')
    return Response(page(request, 'Log out', (
        f'<form method="post">{csrf_field(request)}'
        '<button>Log out</button></form>'
    )), content_type='text/html')


def logout(context: Any, request: Any) -> Any:
    """POST @@logout: end the session."""
    forget(request)
    if json_client(request):
        return Response(json_body={'logged_out': True})
    return HTTPSeeOther(location=request.application_url + '/')


def throttled(request: Any, seconds: float) -> Any:
    response = respond(
        request, HTTPTooManyRequests,
        'Too many failed logins: wait '
        f'{math.ceil(seconds)} s before trying again.',
    )
    response.headers['Retry-After'] = str(math.ceil(seconds))
    return response


def forbidden_view(exc: Any, request: Any) -> Any:
    """401, 403 or 429: why, and how to get in."""
    if isinstance(exc, CrossSiteRefused):
        return respond(request, HTTPForbidden, exc.detail)
    failure = request.environ.get(AUTH_FAILURE)
    if failure and failure[0] == 'throttled':
        return throttled(request, failure[1])
    if failure:
        response = respond(
            request, HTTPUnauthorized,
            'Wrong name or password.' if failure[0] == 'bad'
            else 'The Authorization header is not valid HTTP Basic.',
        )
        response.headers['WWW-Authenticate'] = REALM
        return response
    result = getattr(exc, 'result', None)
    message = str(result) if result is not None else (
        exc.detail or 'You may not do that here.'
    )
    if identity_of(request) is None and json_client(request) and (
        not isinstance(result, ReadOnly)
    ):
        response = respond(request, HTTPUnauthorized, message)
        response.headers['WWW-Authenticate'] = REALM
        return response
    return respond(request, HTTPForbidden, message)


def bad_token_view(exc: Any, request: Any) -> Any:
    """403: the form's CSRF token is missing or not this session's."""
    detail = exc.detail
    if not isinstance(exc, NoSessions):
        detail = (
            'The CSRF token is missing or not this session\'s (it ends '
            'when you log in or out): reload the page and try again. '
            'Nothing was done.'
        )
    return respond(request, HTTPForbidden, detail)
