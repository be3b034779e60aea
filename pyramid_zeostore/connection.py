"""A request's ZODB connection: opened lazily, closed when done.

Writes (and every request when fast reads are off) get a pooled
connection opened on ``request.tm`` the first time the request asks for
it; a finished callback aborts whatever is left and returns it to the
pool, whether the request succeeded, raised or is being retried.

A fast read (see :mod:`pyramid_zeostore.tweens`) gets its thread's
:class:`ReadSlot` instead: a connection kept open on the thread's own
transaction manager, which only catches up with what others committed.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

import transaction
from pyramid.exceptions import ConfigurationError
from transaction.interfaces import NoTransaction
from zope.interface import implementedBy, implementer

from . import compat
from .environ import (
    DEADLINE,
    EXCLUSIVE,
    FAST,
    OPEN_FAILED,
    ROUTED,
    SYNC_COOKIE,
    UNAVAILABLE,
)
from .events import (
    CONNECTION_EVENTS,
    ZODBConnectionClosed,
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
)
from .exceptions import DatabaseUnavailable
from .interfaces import IConnectionListeners, IDatabases, IRequestProperties

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyramid.request import Request
    from ZODB.Connection import Connection

#: Where a request keeps its primary connection (``request.__dict__``).
CONN = '_zeostore_conn'
#: ... and, outside the router, the key of the connection it shares.
SHARED = '_zeostore_shared'


class SharedConnections(threading.local):
    """Connections of requests made outside the router (``prepare``,
    ``bootstrap``, pshell, test fixtures), per thread: key -> [connection,
    users]. Such requests share one transaction manager per thread (the
    thread's ``transaction.manager``); a nested one shares its connection
    too, so that it sees the same objects, its closer does not abort the
    outer one's changes, and one commit does not meet two connections of
    one storage (a FileStorage would wait for its own commit lock)."""

    def __init__(self) -> None:
        self.conns: dict[tuple[int, int], list] = {}


_shared = SharedConnections()


@implementer(IConnectionListeners)
class ConnectionListeners:
    """Which connection events have subscribers, looked up once: most apps
    listen to none, and then no event is made. Registered by
    ``includeme``; the read tween looks them up when the app is made
    (:meth:`find`), else the first request does."""

    opened = will_close = closed = False

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.found = False

    def find(self) -> ConnectionListeners:
        """Look the subscribers up now; return self."""
        adapters = self.registry.adapters
        self.opened, self.will_close, self.closed = (
            bool(adapters.subscriptions([implementedBy(kind)], None))
            for kind in CONNECTION_EVENTS
        )
        self.found = True
        return self

    def listening(self, event_class: type) -> bool:
        if not self.found:
            self.find()
        return {
            ZODBConnectionOpened: self.opened,
            ZODBConnectionWillClose: self.will_close,
            ZODBConnectionClosed: self.closed,
        }[event_class]

    def notify(self, event_class: type, conn: Any, request: Any,
               kept: bool = False) -> None:
        """Send a connection event, if anything subscribed to its kind."""
        if self.listening(event_class):
            self.registry.notify(event_class(conn, request, kept))


def get_databases(registry: Any) -> Any:
    """The :class:`~pyramid_zeostore.interfaces.IDatabases` utility.

    :raises ConfigurationError: pyramid_zeostore was not included or no
        ``zodb_uri`` is set.
    """
    databases = registry.queryUtility(IDatabases)
    if databases is None:
        raise ConfigurationError(
            'No ZODB database is configured: include pyramid_zeostore '
            '(config.include("pyramid_zeostore")) and set zodb_uri'
        )
    return databases


def wait_available(
    request: Request, name: str = '', databases: Any = None
) -> None:
    """Wait, within ``zeostore.connect_timeout``, for database ``name``.

    One bounded wait per request, shared by its retry attempts (the
    deadline lives in the environ, which pyramid_retry keeps); after an
    attempt failed for want of a server, later attempts do not wait again.

    :raises DatabaseUnavailable: the server did not answer in time.
    """
    if databases is None:
        databases = get_databases(request.registry)
    environ = request.environ
    if environ.get(OPEN_FAILED):
        # Opening them already took this request's one wait.
        raise databases.unavailable(name)
    # Opens this process's databases on first use (waiting for the
    # server within the bound); connected: no waiting.
    try:
        if databases.wait_connected(name, 0.0):
            return
    except DatabaseUnavailable:
        environ[OPEN_FAILED] = True
        raise
    deadline = environ.setdefault(
        DEADLINE, time.monotonic() + databases.connect_timeout
    )
    if environ.get(UNAVAILABLE):
        deadline = 0.0
    if not databases.wait_connected(name, deadline):
        raise databases.unavailable(name)


def ensure_request(registry: Any, request: Any) -> None:
    """Give ``request`` ``tm`` and ``zodb_conn`` if its class lacks them
    (a subrequest made with ``Request.blank()``)."""
    ensure = registry.queryUtility(IRequestProperties)
    if ensure is not None:
        ensure(request)


# -- fast reads: one connection per thread -----------------------------------


class ReadSlot:
    """One thread's read transaction manager and connection, and the
    app's connection listeners (looked up once)."""

    def __init__(self, listeners: ConnectionListeners) -> None:
        self.listeners = listeners
        self.pid = os.getpid()
        # Not explicit: DB.close() aborts the managers of open connections.
        self.tm = transaction.TransactionManager()
        self.db: Any = None
        self.conn: Any = None
        self.busy = False  # serving; a nested request goes the full way


class ReadSlots(threading.local):
    """The read slots of one app, per thread (owned by its read tween)."""

    slot: ReadSlot | None = None

    def __init__(self, listeners: ConnectionListeners) -> None:
        self.listeners = listeners

    def get(self) -> ReadSlot:
        slot = self.slot
        if slot is None or slot.pid != os.getpid():
            # New thread, or inherited from the parent across a fork: its
            # connection belongs to the parent's ZEO client; drop it.
            slot = self.slot = ReadSlot(self.listeners)
        return slot


def read_connection(request: Any, slot: ReadSlot, databases: Any) -> Any:
    """The slot's connection to the primary database, opened on first use
    (and again after the databases were reopened), caught up with what
    others committed."""
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
    # What a transaction's begin() would do (the read tween begins none):
    # see what others have committed since (with server_sync, a round
    # trip to ZEO). Also just after open(), which polls without that
    # round trip: a thread's first read must not miss a commit made a
    # moment before in another process.
    conn.newTransaction(None)
    return conn


# -- the request's connection -------------------------------------------------


def _primary(request: Request) -> Connection:
    conn = request.__dict__.get(CONN)
    if conn is not None:
        return conn
    registry = request.registry
    databases = get_databases(registry)
    wait_available(request, '', databases)
    slot = request.environ.get(FAST)
    if slot is not None:
        # A fast read: the thread's connection, kept open.
        conn = request.__dict__[CONN] = read_connection(
            request, slot, databases
        )
        listeners = slot.listeners
        if listeners.opened:
            registry.notify(ZODBConnectionOpened(conn, request, kept=True))
        if listeners.will_close or listeners.closed:
            request.add_finished_callback(_done)
        return conn
    listeners = registry.getUtility(IConnectionListeners)
    db = databases.get('')
    ensure_request(registry, request)  # a Request.blank() subrequest
    if request.environ.get(EXCLUSIVE):
        # An escalated attempt reads the latest state of every database:
        # a pooled connection reopens its secondary connections with it.
        for name in databases.names:
            if name:  # the primary's wait is behind us
                wait_available(request, name, databases)
        databases.sync_all()
    tm = request.tm
    environ = request.environ
    key = None
    if ROUTED not in environ:
        key = (id(tm), id(db))
        entry = _shared.conns.get(key)
        if (
            entry is not None
            and entry[0].opened
            and entry[0].transaction_manager is tm
        ):
            # A request made while another, outside the router too, is
            # open in this thread (a nested prepare()): the same one.
            entry[1] += 1
            request.__dict__[SHARED] = key
            request.add_finished_callback(_close)
            conn = request.__dict__[CONN] = entry[0]
            return conn
    if (
        getattr(tm, 'explicit', False)
        and 'tm.active' not in environ
        and compat.current_transaction(tm) is None
    ):
        # Outside pyramid_tm (a script's or test's request) on an explicit
        # manager nobody began: begin it, or the first load fails.
        tm.begin()
    conn = request.__dict__[CONN] = db.open(transaction_manager=tm)
    if key is not None:
        _shared.conns[key] = [conn, 1]
        request.__dict__[SHARED] = key
    listeners.notify(ZODBConnectionOpened, conn, request)
    request.add_finished_callback(_close)
    return conn


def _close(request: Request) -> None:
    conn = request.__dict__.pop(CONN)
    key = request.__dict__.pop(SHARED, None)
    if key is not None:
        entry = _shared.conns.get(key)
        if entry is not None and entry[0] is conn:
            entry[1] -= 1
            if entry[1]:
                return  # another request of this thread still uses it
            del _shared.conns[key]
    listeners = request.registry.getUtility(IConnectionListeners)
    listeners.notify(ZODBConnectionWillClose, conn, request)
    try:
        # Leftovers of a failed or read-only request; pyramid_tm has
        # already committed or aborted a request it managed.
        conn.transaction_manager.abort()
    except NoTransaction:
        pass
    finally:
        conn.close()  # also closes the secondary connections
    listeners.notify(ZODBConnectionClosed, conn, request)


def _done(request: Request) -> None:
    # The read tween has aborted; the connection stays with its thread.
    conn = request.__dict__.pop(CONN)
    listeners = request.registry.getUtility(IConnectionListeners)
    listeners.notify(ZODBConnectionWillClose, conn, request, kept=True)
    listeners.notify(ZODBConnectionClosed, conn, request, kept=True)


def attach_connection(request: Any, conn: Connection) -> None:
    """Make ``conn`` the connection ``get_connection(request)`` returns
    (a test's own, for a ``DummyRequest``); nobody closes it for you."""
    request.__dict__[CONN] = conn


def get_connection(request: Request, dbname: str | None = None) -> Connection:
    """The request's connection to database ``dbname`` (primary if None).

    Same signature as pyramid_zodbconn's. The connection is opened on
    ``request.tm`` on first call; later calls return the same one. Named
    databases come from the primary connection (one multi-database), so
    cross-database references work.

    :raises DatabaseUnavailable: the ZEO server did not answer within
        ``zeostore.connect_timeout`` (rendered as HTTP 503).
    :raises ConfigurationError: no such database is configured.
    """
    conn = _primary(request)
    if not dbname:
        return conn
    databases = get_databases(request.registry)
    if dbname not in databases.names:
        raise ConfigurationError(
            f'No database named {dbname!r}: set zodb_uri.{dbname} '
            f'(configured: {", ".join(n for n in databases.names if n)})'
        )
    wait_available(request, dbname)
    return conn.get_connection(dbname)


def zodb_conn(request: Request) -> Connection:
    """``request.zodb_conn``: the request's primary connection."""
    return get_connection(request)
