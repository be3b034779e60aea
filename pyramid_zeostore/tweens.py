"""The package's tweens: what every request passes before pyramid_tm.

``read_tween`` (outermost) answers the health check before traversal,
serves safe methods as *fast reads* on this thread's kept connection
(the tween owns the threads' read slots) instead of a pooled connection
and a transaction, marks the answer to a write with the read-your-writes
cookie, and prepares the next attempt of a request pyramid_retry will
retry (:func:`~pyramid_zeostore.contention.before_retry`): here rather
than in an ``IBeforeRetry`` subscriber, because any subscriber makes
Pyramid send four events on every request. ``contention_tween`` holds the
host lock around each write attempt. How a fast read that writes is
still saved, and how a client reads its own writes, is told in
:func:`read_tween_factory`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from pyramid.interfaces import IRequestFactory
from pyramid_retry import is_error_retryable, is_last_attempt
from pyramid_tm import explicit_manager

from . import compat
from .connection import ReadSlots, ensure_request
from .contention import HostLock, HotSpots, before_retry
from .environ import (
    ESCALATED,
    EXCLUSIVE,
    FAST,
    HEALTH_METHODS,
    HOT,
    ROUTED,
    SAFE_METHODS,
    SYNC_COOKIE,
    SYNC_SECONDS,
    WROTE,
)
from .exceptions import SafeMethodWrote
from .interfaces import (
    IConnectionListeners,
    IDatabases,
    IHealthView,
    IZeostoreSettings,
)
from .request import manager_hook

log = logging.getLogger(__name__)

#: The read-your-writes header, made once (webob's ``set_cookie`` costs
#: ~10 us a write); Max-Age without Expires: a client that ignores it
#: keeps the cookie for its session, which only costs it a sync per read.
SYNC_SET_COOKIE = (
    f'{SYNC_COOKIE}=1; Max-Age={SYNC_SECONDS}; Path=/; HttpOnly; '
    'SameSite=Lax'
)

#: ``tm.manager_hook`` values that let fast reads run: an explicit manager
#: per routed request (includeme's default, or pyramid_tm's own). An
#: application's own hook turns them off.
FAST_READ_HOOKS = (
    manager_hook, 'pyramid_zeostore.request.manager_hook',
    explicit_manager, 'pyramid_tm.explicit_manager',
)

_warned: set = set()


def _view_label(request: Any) -> str:
    route = getattr(request, 'matched_route', None)
    context = getattr(request, 'context', None)
    name = getattr(request, 'view_name', '') or ''
    parts = [f'{request.method} {request.path_info}']
    if route is not None:
        parts.append(f'route {route.name!r}')
    if context is not None:
        parts.append(f'view {name!r} of {type(context).__name__}')
    return ', '.join(parts)


def health_raw_path(settings: Any) -> str | None:
    """``zeostore.health_path`` as ``PATH_INFO`` carries it (UTF-8 bytes
    as latin-1), for the read tween to compare; None if the check is off."""
    path = settings.health_path
    return path.encode('utf-8').decode('latin-1') if path else None


def read_tween_factory(
    handler: Callable[[Any], Any], registry: Any
) -> Callable[[Any], Any]:
    """The package's outermost tween (see the module).

    **A fast read that writes is not lost.** A safe request that changes
    persistent objects (or joins any other data manager to the
    transaction) is aborted, logged once per view and process, and its
    response replaced by a retry: :class:`~pyramid_zeostore.exceptions.
    SafeMethodWrote` as ``request.exception``, which pyramid_retry retries
    on the full, committing path; on the last attempt it commits at once.
    Apps that write on GET as a rule set ``zeostore.fast_reads = false``.

    **Read your writes** without a round trip on every read: the answer
    to a write (2xx/3xx) sets ``zeostore_sync`` for 10 s, and a fast read
    that carries it syncs with the ZEO servers first, whichever process
    serves it (``zeostore.read_your_writes = false`` sets no cookie).
    """
    settings = registry.getUtility(IZeostoreSettings)
    fast = settings.fast_reads and (
        registry.settings.get('tm.manager_hook') in FAST_READ_HOOKS
    )
    databases = registry.queryUtility(IDatabases)
    fast = fast and databases is not None
    mark_writes = fast and settings.read_your_writes
    cls = registry.queryUtility(IRequestFactory)
    health_path = health_raw_path(settings)
    health_view = registry.getUtility(IHealthView)
    slots = ReadSlots(registry.getUtility(IConnectionListeners).find())

    def read_tween(request: Any) -> Any:
        environ = request.environ
        environ[ROUTED] = True  # request.tm: an explicit manager
        if (
            environ.get('PATH_INFO') == health_path
            and environ['REQUEST_METHOD'] in HEALTH_METHODS
        ):
            return health_view(request)
        try:
            response = serve(request)
        except Exception as exc:
            if is_error_retryable(request, exc):
                before_retry(request, exc)
            raise
        exc = request.exception  # an exception view answered
        if exc is not None and is_error_retryable(request, exc):
            before_retry(request, exc)
        return response

    read_tween.slots = slots  # type: ignore[attr-defined]  # for tests

    def serve(request: Any) -> Any:
        if type(request) is not cls:  # a subrequest from Request.blank()
            ensure_request(registry, request)
        environ = request.environ
        if request.method not in SAFE_METHODS:
            response = handler(request)
            if mark_writes and response.status_int < 400:
                # Committed (or nothing to commit): this client's next
                # reads, in whichever process, sync first.
                response.headerlist.append(('Set-Cookie', SYNC_SET_COOKIE))
            return response
        if not fast or WROTE in environ or 'tm.active' in environ:
            return handler(request)
        slot = slots.get()
        if slot.busy:  # a subrequest of a fast read
            return handler(request)
        slot.busy = True
        environ[FAST] = slot
        tm = slot.tm
        # pyramid_tm stands aside for a managed transaction.
        environ['tm.active'] = True
        environ['tm.manager'] = tm
        # No transaction is begun: the connection syncs when the request
        # first asks for it (connection.read_connection). One is made only
        # if something asks for it (request.tm.get()) or joins it.
        try:
            response = handler(request)
            txn = compat.current_transaction(tm)
            if txn is not None and compat.has_joined(txn):  # a write
                label = _view_label(request)
                if is_last_attempt(request):
                    log.warning('%s changed persistent objects: committed',
                                label)
                    tm.commit()
                    return response
                if label not in _warned:
                    _warned.add(label)
                    log.warning(
                        '%s changed persistent objects on a safe method: '
                        'run again in a committing transaction (set '
                        'zeostore.fast_reads = false if the app writes '
                        'on GET as a rule)', label,
                    )
                environ[WROTE] = True
                # Not raised: a tween above (pyramid_debugtoolbar's) would
                # log an expected retry as an uncaught error. pyramid_retry
                # retries a request whose exception an exception view
                # "squashed" (request.exception) and drops the response.
                request.exception = SafeMethodWrote(label)
            return response
        finally:
            if compat.current_transaction(tm) is not None:
                tm.abort()
            del environ[FAST], environ['tm.active'], environ['tm.manager']
            slot.busy = False

    return read_tween


def contention_tween_factory(
    handler: Callable[[Any], Any], registry: Any
) -> Callable[[Any], Any]:
    """A tween over pyramid_tm that holds the host lock around writes:
    shared, queued for a hot key, or exclusive for an attempt the retry
    handler escalated."""
    settings = registry.getUtility(IZeostoreSettings)
    if not settings.conflict_lock:
        return handler
    lock = HostLock(settings.lock_file)
    hotspots = HotSpots(lock)

    def contention_tween(request: Any) -> Any:
        if request.method in SAFE_METHODS:
            return handler(request)
        if lock.held:  # a subrequest: runs within its parent's hold
            return handler(request)
        environ = request.environ
        if not environ.get('retry.attempt'):  # the first attempt
            # The raw path: one that is not UTF-8 is a 400 further in.
            key = (request.method, environ.get('PATH_INFO', ''))
            queue = hotspots.started(key)
            if queue is not None:
                environ[HOT] = queue
                # Sync like an exclusive attempt, to read what the one
                # before in the queue committed. (A retry runs exclusive.)
                environ[EXCLUSIVE] = True
            else:
                environ[ESCALATED] = lambda: hotspots.escalated(key)
        if HOT in environ and not environ.get('retry.attempt'):
            held = lock.queued(environ[HOT])
        elif environ.get(EXCLUSIVE):
            held = lock.exclusive()
        else:
            held = lock.shared()
        with held:
            return handler(request)

    return contention_tween
