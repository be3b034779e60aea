"""The per-request ZODB connection: opened lazily, closed when done.

The connection is opened on ``request.tm`` the first time a request asks
for it, and a finished callback aborts whatever is left and returns it to
the pool, whether the request succeeded, raised or is being retried.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pyramid.exceptions import ConfigurationError
from transaction.interfaces import NoTransaction
from zope.interface import implementedBy, implementer

from . import reads
from .interfaces import IConnectionEvent, IDatabases
from .reads import FAST
from .request import ensure_request

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyramid.request import Request
    from ZODB.Connection import Connection

#: environ keys shared by every attempt of one request (pyramid_retry
#: reuses the environ): the deadline of the bounded wait for ZEO, and the
#: flag set after an attempt failed for want of a server.
DEADLINE = 'zeostore.deadline'
UNAVAILABLE = 'zeostore.unavailable'
#: set by the retry handler: this attempt runs alone on this host and
#: syncs with the server before it reads (see ``contention.py``).
EXCLUSIVE = 'zeostore.exclusive'


@implementer(IConnectionEvent)
class ConnectionEvent:
    """Base of the connection events: ``conn`` and ``request``."""

    def __init__(self, conn: Connection, request: Request) -> None:
        self.conn = conn
        self.request = request


class ZODBConnectionOpened(ConnectionEvent):
    """Sent when a request's ZODB connection has been opened."""


class ZODBConnectionWillClose(ConnectionEvent):
    """Sent before a request's ZODB connection is aborted and closed."""


class ZODBConnectionClosed(ConnectionEvent):
    """Sent after a request's ZODB connection went back to the pool."""


def _listening(registry: Any) -> dict:
    """Which connection events have subscribers (kept per registry: most
    apps listen to none of them)."""
    listening = registry.__dict__.get('_zeostore_listening')
    if listening is None:
        listening = registry.__dict__['_zeostore_listening'] = {
            kind: bool(
                registry.adapters.subscriptions([implementedBy(kind)], None)
            )
            for kind in (
                ZODBConnectionOpened,
                ZODBConnectionWillClose,
                ZODBConnectionClosed,
            )
        }
    return listening


def _notify(registry: Any, event: type, conn: Any, request: Any) -> None:
    """Send a connection event, if anything subscribed to its kind."""
    if _listening(registry)[event]:
        registry.notify(event(conn, request))


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
    # Opens this process's databases on first use; connected: no waiting.
    if databases.wait_connected(name, 0.0):
        return
    environ = request.environ
    deadline = environ.setdefault(
        DEADLINE, time.monotonic() + databases.connect_timeout
    )
    if environ.get(UNAVAILABLE):
        deadline = 0.0
    if not databases.wait_connected(name, deadline):
        raise databases.unavailable(name)


def _primary(request: Request) -> Connection:
    conn = request.__dict__.get('_zeostore_conn')
    if conn is not None:
        return conn
    registry = request.registry
    databases = get_databases(registry)
    wait_available(request, '', databases)
    slot = request.environ.get(FAST)
    if slot is not None:
        # A fast read: the thread's connection, kept open (reads.py).
        conn = reads.connection(request, slot, databases)
        request.__dict__['_zeostore_conn'] = conn
        listening = _listening(registry)
        if listening[ZODBConnectionOpened]:
            registry.notify(ZODBConnectionOpened(conn, request))
        if listening[ZODBConnectionWillClose] or listening[
            ZODBConnectionClosed
        ]:
            request.add_finished_callback(_done)
        return conn
    db = databases.get('')
    ensure_request(registry, request)  # a Request.blank() subrequest
    if request.environ.get(EXCLUSIVE):
        # An escalated attempt reads the latest state of every database:
        # a pooled connection reopens its secondary connections with it.
        for name in databases.names:
            if name:  # the primary's wait is behind us
                wait_available(request, name, databases)
        databases.sync_all()
    conn = db.open(transaction_manager=request.tm)
    request.__dict__['_zeostore_conn'] = conn
    _notify(registry, ZODBConnectionOpened, conn, request)
    request.add_finished_callback(_close)
    return conn


def _close(request: Request) -> None:
    conn = request.__dict__.pop('_zeostore_conn')
    registry = request.registry
    _notify(registry, ZODBConnectionWillClose, conn, request)
    try:
        # Leftovers of a failed or read-only request; pyramid_tm has
        # already committed or aborted a request it managed.
        conn.transaction_manager.abort()
    except NoTransaction:
        pass
    finally:
        conn.close()  # also closes the secondary connections
    _notify(registry, ZODBConnectionClosed, conn, request)


def _done(request: Request) -> None:
    # The read tween has aborted; the connection stays with its thread.
    conn = request.__dict__.pop('_zeostore_conn')
    registry = request.registry
    _notify(registry, ZODBConnectionWillClose, conn, request)
    _notify(registry, ZODBConnectionClosed, conn, request)


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
