"""What users see when the database cannot serve: 409 and 503, not 500.

Registered by ``includeme``; an application's own exception views for the
same contexts override these (Pyramid resolves the conflict in favour of
the including configuration).
"""

from __future__ import annotations

import errno
import logging
from typing import Any
from urllib.parse import unquote_to_bytes

from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPConflict,
    HTTPServiceUnavailable,
)

from .compat import server_errno
from .environ import SAFE_METHODS, UNAVAILABLE
from .exceptions import DatabaseUnavailable
from .interfaces import IDatabases, IZeostoreSettings

log = logging.getLogger(__name__)


def json_client(request: Any) -> bool:
    """Does the client want JSON: ``?format=json``, an ``Accept`` that
    prefers JSON to HTML, or (when ``Accept`` does not choose, as with
    ``*/*`` or none) a JSON body?"""
    try:
        format = request.GET.get('format')
    except UnicodeDecodeError:  # a query string that is not UTF-8
        format = None
    if format == 'json':
        return True
    offers = dict(request.accept.acceptable_offers(
        ['text/html', 'application/json']
    ))
    html, json = offers.get('text/html', 0), offers.get('application/json', 0)
    if html != json:
        return json > html
    return request.content_type == 'application/json'


def respond(request: Any, http_exc: Any, message: str) -> Any:
    """``http_exc`` saying ``message``: as JSON (``error``, ``message``)
    to a :func:`json_client`, else Pyramid's HTML page."""
    response = http_exc(detail=message)
    if json_client(request):
        response.content_type = 'application/json'
        response.json_body = {'error': response.title, 'message': message}
    return response


def conflict_view(exc: Exception, request: Any) -> Any:
    """409: every retry attempt met a write conflict."""
    attempts = request.environ.get('retry.attempts', 1)
    return respond(
        request,
        HTTPConflict,
        f'The object was changed by another request {attempts} time(s) '
        'while this one ran; nothing was saved. Please try again.',
    )


def unavailable_view(exc: Exception, request: Any) -> Any:
    """503 with ``Retry-After``: the ZEO server did not answer in time."""
    settings = request.registry.getUtility(IZeostoreSettings)
    if request.method in SAFE_METHODS or not (
        request.environ.get(UNAVAILABLE)
        or not isinstance(exc, DatabaseUnavailable)  # lost mid-request
        or exc.may_have_saved  # a commit that did not come back
    ):
        outcome = 'nothing was saved'
    else:
        # The server went away while this write ran (in this attempt or
        # an earlier one): a commit in flight may have reached it before
        # the connection dropped.
        outcome = 'your change may or may not have been saved'
    response = respond(
        request,
        HTTPServiceUnavailable,
        f'The database is not reachable right now; {outcome}. '
        'Please check and try again shortly.',
    )
    response.headers['Retry-After'] = str(settings.retry_after)
    return response


def disk_full_view(exc: Exception, request: Any) -> Any:
    """503 with ``Retry-After``: the database server's disk is full (the
    commit failed in its vote: nothing was saved)."""
    log.error('a commit failed: the database server is out of disk space')
    settings = request.registry.getUtility(IZeostoreSettings)
    response = respond(
        request, HTTPServiceUnavailable,
        'The database server is out of disk space; nothing was saved. '
        'Please try again later.',
    )
    response.headers['Retry-After'] = str(settings.retry_after)
    return response


class FlagPredicate:
    """A view predicate that takes True or False, named :attr:`name`."""

    name = ''

    def __init__(self, value: bool, config: Any) -> None:
        self.value = bool(value)

    def text(self) -> str:
        return f'{self.name} = {self.value}'

    phash = text


class DisconnectedPredicate(FlagPredicate):
    """View predicate ``zeostore_disconnected=True``: the exception is one
    the app's storages raise when their server went away (a RelStorage
    driver's ``disconnected_exceptions``)."""

    name = 'zeostore_disconnected'

    def __call__(self, context: Any, request: Any) -> bool:
        databases = request.registry.queryUtility(IDatabases)
        kinds = databases.disconnected_exceptions() if databases else ()
        return bool(kinds) and isinstance(context, kinds) == self.value


class DiskFullPredicate(FlagPredicate):
    """View predicate ``zeostore_disk_full=True``: the exception is "no
    space left on device", here or on the ZEO server."""

    name = 'zeostore_disk_full'

    def __call__(self, context: Any, request: Any) -> bool:
        return (server_errno(context) == errno.ENOSPC) == self.value


def undecodable(environ: Any) -> str | None:
    """Which part of the request's URL is not UTF-8 (``'path'``,
    ``'query string'``), or None."""
    for part, raw in (
        ('path', environ.get('PATH_INFO', '')),
        ('query string', environ.get('QUERY_STRING', '')),
    ):
        try:
            data = raw.encode('latin-1')
            if part == 'query string':
                data = unquote_to_bytes(data.replace(b'+', b' '))
            data.decode('utf-8')
        except UnicodeError:
            return part
    return None


class BadEncodingPredicate(FlagPredicate):
    """View predicate ``zeostore_bad_encoding=True``: the exception is a
    ``UnicodeDecodeError`` because the request's own URL is not UTF-8 (so
    a decoding bug of the server's own data stays a 500)."""

    name = 'zeostore_bad_encoding'

    def __call__(self, context: Any, request: Any) -> bool:
        bad = isinstance(context, UnicodeDecodeError) and (
            undecodable(request.environ) is not None
        )
        return bad == self.value


def bad_encoding_view(exc: Exception, request: Any) -> Any:
    """400: the path or query string is not valid UTF-8."""
    part = undecodable(request.environ)
    return respond(
        request, HTTPBadRequest,
        f'The {part} of the URL is not valid UTF-8; nothing was done.',
    )
