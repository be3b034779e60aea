"""Fast reads: safe methods on a per-thread connection, begun and aborted.

A GET, HEAD or OPTIONS request changes nothing, so it needs neither a
commit nor a connection of its own from the pool. The read tween (over
pyramid_tm) gives it this thread's transaction manager and a connection
kept open on it: ``begin()`` (which brings in what others committed,
through the connection's synchronizer), the view, ``abort()``. pyramid_tm
sees the transaction already managed and stands aside. Writes (POST, PUT,
PATCH, DELETE, ...) keep the full pyramid_tm + pyramid_retry path with a
pooled connection per attempt.

**A safe request that changes persistent objects** (or joins any other
data manager to the transaction) is not lost: the read tween finds the
transaction joined, aborts it, logs a warning naming the view once per
process, and raises :class:`SafeMethodWrote`, which pyramid_retry retries;
the next attempt runs on the full path and commits (retried on conflicts
like any write). On the last attempt (``retry.attempts = 1``) it commits
at once. Apps that write on GET as a rule set ``zeostore.fast_reads =
false``: then every request takes the full path.

**Read your writes** without a round trip on every read: the answer to a
write (2xx/3xx) sets a short-lived cookie (``zeostore_sync``, 10 s); a read
that carries it syncs with the ZEO server(s) first, so it sees the write
even when another process serves it. Reads of other clients skip the round
trip (ZEO's ``server_sync=true`` makes every transaction pay it).
``zeostore.read_your_writes = false`` sets no cookie.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable

import transaction
from pyramid_retry import IRetryableError, is_error_retryable, is_last_attempt
from pyramid_tm import explicit_manager
from zope.interface import implementer

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({'GET', 'HEAD', 'OPTIONS'})
#: the health check (``zeostore.health_path``) answers these
HEALTH_METHODS = frozenset({'GET', 'HEAD'})

#: environ: this attempt runs on the thread's read transaction manager
FAST = 'zeostore.fast_read'
#: environ: an earlier attempt of this safe request wrote: go the full way
WROTE = 'zeostore.safe_method_wrote'
#: set on the answer to a write; a fast read that carries it syncs first
SYNC_COOKIE = 'zeostore_sync'
SYNC_SECONDS = 10
#: the header, made once (webob's ``set_cookie`` costs ~10 us a write);
#: Max-Age without Expires: a client that ignores it keeps the cookie for
#: its session, which only costs it a sync per read.
SYNC_SET_COOKIE = (
    f'{SYNC_COOKIE}=1; Max-Age={SYNC_SECONDS}; Path=/; HttpOnly; '
    'SameSite=Lax'
)


@implementer(IRetryableError)
class SafeMethodWrote(Exception):
    """A safe-method request changed persistent objects; pyramid_retry
    runs it again on the full, committing path."""


class ReadSlot:
    """One thread's read transaction manager and connection."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # Not explicit: DB.close() aborts the managers of open connections.
        self.tm = transaction.TransactionManager()
        self.db: Any = None
        self.conn: Any = None
        self.busy = False  # serving; a nested request goes the full way


class ReadSlots(threading.local):
    """The read slots of one :class:`~.databases.Databases`, per thread."""

    slot: ReadSlot | None = None

    def get(self) -> ReadSlot:
        slot = self.slot
        if slot is None or slot.pid != os.getpid():
            # New thread, or inherited from the parent across a fork: its
            # connection belongs to the parent's ZEO client; drop it.
            slot = self.slot = ReadSlot()
        return slot


def request_manager(request: Any) -> transaction.TransactionManager:
    """``tm.manager_hook``: a new explicit manager per request, as
    ``pyramid_tm.explicit_manager``. (A fast read never asks: the read
    tween puts the thread's manager in ``environ['tm.manager']``, which
    pyramid_tm's ``request.tm`` returns first.) Fast reads need this hook,
    or pyramid_tm's: an application's own hook turns them off."""
    return transaction.TransactionManager(explicit=True)


def connection(request: Any, slot: ReadSlot, databases: Any) -> Any:
    """The slot's connection to the primary database, opened on first use
    (and again after the databases were reopened)."""
    db = databases.get('')
    # The header, not request.cookies: no cookie parsing on every read
    # (a longer name ending in it would only cost a needless sync).
    if SYNC_COOKIE + '=' in request.environ.get('HTTP_COOKIE', ''):
        # This client wrote a moment ago, maybe through another process:
        # one round trip per server, and its invalidations are all in.
        databases.sync_all()
    conn = slot.conn
    if conn is None or slot.db is not db:
        conn = slot.conn = db.open(transaction_manager=slot.tm)
        slot.db = db
        # Kept open for good: make room in the pool for the requests.
        db.setPoolSize(db.getPoolSize() + 1)
    else:
        # What a transaction's begin() would do (the read tween begins
        # none): see what others have committed since (with server_sync,
        # a round trip to ZEO). Nothing was read through it yet.
        conn.newTransaction(None)
    return conn


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


def read_tween_factory(
    handler: Callable[[Any], Any], registry: Any
) -> Callable[[Any], Any]:
    """The package's outermost tween: safe methods on the thread's read
    slot (see the module), the read-your-writes cookie on writes, the
    health check (``zeostore.health_path``), and, when an attempt ends in
    an error pyramid_retry will retry, the backoff and escalation of
    :func:`pyramid_zeostore.contention.before_retry`."""
    from pyramid.interfaces import IRequestFactory

    from .contention import before_retry
    from .health import health_view, raw_path
    from .interfaces import IDatabases, IZeostoreSettings
    from .request import ensure_request

    settings = registry.getUtility(IZeostoreSettings)
    hook = registry.settings.get('tm.manager_hook')
    fast = settings.fast_reads and hook in (
        request_manager, 'pyramid_zeostore.reads.request_manager',
        explicit_manager, 'pyramid_tm.explicit_manager',
    )
    databases = registry.queryUtility(IDatabases)
    fast = fast and databases is not None
    mark_writes = fast and settings.read_your_writes
    cls = registry.queryUtility(IRequestFactory)
    health_path = raw_path(registry)

    def read_tween(request: Any) -> Any:
        environ = request.environ
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
        slot = databases.read_slots.get()
        if slot.busy:  # a subrequest of a fast read
            return handler(request)
        slot.busy = True
        environ[FAST] = slot
        tm = slot.tm
        # pyramid_tm stands aside for a managed transaction.
        environ['tm.active'] = True
        environ['tm.manager'] = tm
        # No transaction is begun: the connection syncs when the request
        # first asks for it (connection() below). One is made only if
        # something asks for it (request.tm.get()) or joins it (a write).
        try:
            response = handler(request)
            txn = _current(tm)
            if txn is not None and txn._resources:  # joined: a write
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
                raise SafeMethodWrote(label)
            return response
        finally:
            if _current(tm) is not None:
                tm.abort()
            del environ[FAST], environ['tm.active'], environ['tm.manager']
            slot.busy = False

    return read_tween


def _current(tm: transaction.TransactionManager) -> Any:
    """The manager's transaction if one is under way (without making
    one, as ``get()`` does for a non-explicit manager)."""
    return tm._txn
