"""What users see when the database cannot serve: 409 and 503, not 500.

Registered by ``includeme``; an application's own exception views for the
same contexts override these (Pyramid resolves the conflict in favour of
the including configuration).
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPConflict, HTTPServiceUnavailable

from .environ import SAFE_METHODS, UNAVAILABLE
from .exceptions import DatabaseUnavailable
from .interfaces import IDatabases, IZeostoreSettings


def _respond(request: Any, http_exc: Any, message: str) -> Any:
    response = http_exc(detail=message)
    if request.params.get('format') == 'json' or (
        request.accept.acceptable_offers(['application/json'])
        and not request.accept.acceptable_offers(['text/html'])
    ):
        response.content_type = 'application/json'
        response.json_body = {'error': response.title, 'message': message}
    return response


def conflict_view(exc: Exception, request: Any) -> Any:
    """409: every retry attempt met a write conflict."""
    attempts = request.environ.get('retry.attempts', 1)
    return _respond(
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
    ):
        outcome = 'nothing was saved'
    else:
        # The server went away while this write ran (in this attempt or
        # an earlier one): a commit in flight may have reached it before
        # the connection dropped.
        outcome = 'your change may or may not have been saved'
    response = _respond(
        request,
        HTTPServiceUnavailable,
        f'The database is not reachable right now; {outcome}. '
        'Please check and try again shortly.',
    )
    response.headers['Retry-After'] = str(settings.retry_after)
    return response


class DisconnectedPredicate:
    """View predicate ``zeostore_disconnected=True``: the exception is one
    the app's storages raise when their server went away (a RelStorage
    driver's ``disconnected_exceptions``)."""

    def __init__(self, value: bool, config: Any) -> None:
        self.value = bool(value)

    def text(self) -> str:
        return f'zeostore_disconnected = {self.value}'

    phash = text

    def __call__(self, context: Any, request: Any) -> bool:
        databases = request.registry.queryUtility(IDatabases)
        kinds = databases.disconnected_exceptions() if databases else ()
        return bool(kinds) and isinstance(context, kinds) == self.value
