"""No write from another site: the ready app's cross-site checks.

Every unsafe request (not GET, HEAD, OPTIONS or TRACE) passes
:func:`check_cross_site` before its view runs, over http and https:

- *authenticated by HTTP Basic*: what curl and API clients send. A page
  of another site can make a browser send Basic credentials it
  remembered, but only with a form or ``text/plain`` body unless the
  server allows it by CORS (which this app never does). So: an ``Origin``
  that is not this site is refused, and a POST must carry a JSON body.
- *anything else* (a session cookie, or nothing): the ``Origin`` (else
  the ``Referer``) must be this site or one of ``zeostore.trusted_origins``,
  and the request must carry the CSRF token of its session (form field
  ``csrf_token`` or header ``X-CSRF-Token``), which Pyramid's session
  CSRF storage keeps inside the signed cookie: a sibling site that can
  plant cookies cannot make one.
"""

from __future__ import annotations

from typing import Any, Callable

from pyramid.csrf import check_csrf_token
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden
from pyramid.interfaces import ISessionFactory

from ..environ import SAFE_METHODS
from ..interfaces import IZeostoreAppSettings
from .security import basic_credentials
from .settings import origin_of


class CrossSiteRefused(HTTPForbidden):
    """403: a write that may come from another site."""


class BadForm(HTTPBadRequest):
    """400: a form body that cannot be read."""


def form_fields(request: Any) -> Any:
    """``request.POST``, or :class:`BadForm` for what webob cannot read
    (a multipart body without a usable boundary, a charset other than
    UTF-8, which webob raises as a ``DeprecationWarning``)."""
    try:
        return request.POST
    except (ValueError, LookupError, DeprecationWarning) as e:
        raise BadForm(
            f'The form cannot be read ({e}): send UTF-8 fields as '
            'application/x-www-form-urlencoded. Nothing was done.'
        ) from None


class NoSessions(BadCSRFToken):
    """No token can be checked: sessions are off (no secret)."""


def own_origin(request: Any) -> str | None:
    return origin_of(f'{request.scheme}://{request.host}')


def request_origin(request: Any) -> str | None:
    """The origin a browser says the request comes from: ``Origin``, else
    ``Referer``; ``'null'`` for an opaque origin; None if neither."""
    origin = request.headers.get('Origin')
    if origin is not None:
        origin = origin.strip().split(' ')[-1]
        return 'null' if origin == 'null' else (origin_of(origin) or 'null')
    referer = request.headers.get('Referer')
    if referer:
        return origin_of(referer) or 'null'
    return None


def trusted(request: Any, origin: str) -> bool:
    settings = request.registry.getUtility(IZeostoreAppSettings)
    return origin == own_origin(request) or origin in settings.trusted_origins


def check_cross_site(request: Any) -> None:
    """Refuse an unsafe request another site could have made (see the
    module).

    :raises CrossSiteRefused: a foreign or missing origin, or a Basic
        request without a JSON body.
    :raises pyramid.exceptions.BadCSRFToken: no or a wrong token.
    """
    origin = request_origin(request)
    if basic_credentials(request) is not None:
        if request.headers.get('Origin') is not None and not trusted(
            request, origin
        ):
            raise CrossSiteRefused(
                f'Refused: this request comes from {origin}, another '
                'site. Nothing was done.'
            )
        if request.method == 'POST' and request.content_type != (
            'application/json'
        ):
            raise CrossSiteRefused(
                'Refused: a POST authenticated with HTTP Basic must send '
                'a JSON body (Content-Type: application/json), since a '
                'page of another site can make a browser send forms with '
                'the credentials it remembered. Nothing was done.'
            )
        return
    if origin is None:
        raise CrossSiteRefused(
            'Refused: a write from a browser must say where it comes from '
            '(Origin or Referer header); API clients use HTTP Basic with a '
            'JSON body. Nothing was done.'
        )
    if not trusted(request, origin):
        raise CrossSiteRefused(
            f'Refused: this request comes from {origin}, which is neither '
            'this site nor in zeostore.trusted_origins. Nothing was done.'
        )
    if request.registry.queryUtility(ISessionFactory) is None:
        raise NoSessions(
            'Sign-in by form is off (no zeostore.secret), so no CSRF token '
            'can be checked: use HTTP Basic with a JSON body.'
        )
    form_fields(request)  # what check_csrf_token reads, checked first
    check_csrf_token(request, raises=True)


def cross_site_view(view: Callable, info: Any) -> Callable:
    """View deriver: :func:`check_cross_site` before every unsafe request's
    view (not before exception views, nor views added with
    ``cross_site=False``: the 405 answers, which write nothing)."""
    if info.exception_only or not info.options.get('cross_site', True):
        return view

    def checked(context: Any, request: Any) -> Any:
        if request.method not in SAFE_METHODS:
            check_cross_site(request)
        return view(context, request)

    return checked


cross_site_view.options = ('cross_site',)
