"""What one request did to each database, gathered for the panel.

Imports nothing of pyramid_debugtoolbar: the panel (:mod:`.panel`)
calls :func:`start` for each request the toolbar watches, and only such
a request is instrumented. The subscribers :func:`opened` and
:func:`will_close` (registered only when the toolbar is included) return
at once for any other request. For a watched one, each of its
connections (the primary and every secondary of the multi-database, also
those opened later) gets instance attributes wrapping ``setstate``
(loads), ``get_connection`` (secondaries opened on the way),
``tpc_begin``/``commit``/``tpc_finish``/``tpc_abort`` (stores and time in
two-phase commit) until the request lets the connection go; then exactly
what was there before is restored (the connection is pooled, or kept by
its thread for fast reads, and serves other requests next).

A request's attempts (pyramid_retry replays it on the same environ) share
one :class:`Activity` in the environ, so the panel of the attempt that
won also shows the attempts that conflicted before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pyramid.traversal import resource_path
from pyramid_retry import is_error_retryable, is_last_attempt
from ZODB.POSException import ConflictError
from ZODB.utils import u64

from .. import compat
from ..environ import SYNC_COOKIE

#: ``request.environ`` key: the request's :class:`Activity` (all attempts)
KEY = 'zeostore.debugtoolbar'
#: ``request.__dict__`` keys: this attempt, and its :class:`Watch`
ATTEMPT = '_zeostore_debugtoolbar'
WATCH = '_zeostore_debugtoolbar_watch'
#: Rows kept per table (loads, stores) per database; the rest are counted.
MAX_ROWS = 500
#: The longest ``__parent__`` chain followed for a path.
MAX_DEPTH = 64
#: The connection methods a watched request wraps.
WRAPPED = (
    'setstate', 'get_connection', 'tpc_begin', 'commit', 'tpc_finish',
    'tpc_abort',
)


@dataclass
class ObjectRow:
    """One loaded or stored object: class, oid (16 hex digits), path
    ('' where unknown) and, for a load, its milliseconds."""

    class_name: str
    oid: str
    path: str
    ms: float | None = None


@dataclass
class DatabaseActivity:
    """One attempt's work on one database."""

    name: str
    loads: int = 0
    load_seconds: float = 0.0
    loaded: list[ObjectRow] = field(default_factory=list)
    stores: int = 0
    stored: list[ObjectRow] = field(default_factory=list)
    #: (objects, non-ghosts) in the connection's cache when the request
    #: took it and when it let it go; the cache's target size
    cache_before: tuple[int, int] | None = None
    cache_after: tuple[int, int] | None = None
    cache_target: int | None = None
    commit_seconds: float = 0.0  # tpc_begin to tpc_finish / tpc_abort
    committed: bool | None = None  # None: no two-phase commit
    tpc_started: float | None = field(default=None, repr=False)

    @property
    def loads_not_shown(self) -> int:
        return self.loads - len(self.loaded)

    @property
    def stores_not_shown(self) -> int:
        return self.stores - len(self.stored)


@dataclass
class Attempt:
    """One attempt of a request (pyramid_retry's ``retry.attempt``)."""

    number: int
    method: str
    path: str
    fast: bool | None = None  # a fast read; None: no connection opened
    synced: bool = False  # the sync cookie made the fast read sync first
    sets_cookie: bool = False  # the answer sets the sync cookie
    status: int | None = None
    note: str | None = None  # the transaction's description and user
    user: str | None = None
    error: str = ''  # what ended the attempt, if an exception did
    conflict: bool = False
    retried: bool = False  # pyramid_retry ran another attempt after it
    ended: bool = False
    databases: dict[str, DatabaseActivity] = field(default_factory=dict)

    def database(self, name: str) -> DatabaseActivity:
        """The record of database ``name`` (made on first use)."""
        found = self.databases.get(name)
        if found is None:
            found = self.databases[name] = DatabaseActivity(name)
        return found

    @property
    def loads(self) -> int:
        return sum(d.loads for d in self.databases.values())

    @property
    def stores(self) -> int:
        return sum(d.stores for d in self.databases.values())


@dataclass
class Activity:
    """A request's attempts, shared through its environ."""

    attempts: list[Attempt] = field(default_factory=list)

    @property
    def winner(self) -> Attempt | None:
        """The attempt that answered: the last one that ended without
        being retried (None while the request runs)."""
        for attempt in reversed(self.attempts):
            if attempt.ended and not attempt.retried:
                return attempt
        return None

    @property
    def conflicts(self) -> int:
        return sum(a.conflict for a in self.attempts)


def start(request: Any) -> Attempt:
    """Watch ``request``: a new :class:`Attempt` in its environ's
    :class:`Activity`; the connections it opens are instrumented."""
    environ = request.environ
    activity = environ.get(KEY)
    if activity is None:
        activity = environ[KEY] = Activity()
    # Leniently decoded: a path that is not UTF-8 is the app's 400.
    path = environ.get('PATH_INFO', '').encode('latin-1')
    attempt = Attempt(
        environ.get('retry.attempt') or 0, request.method,
        path.decode('utf-8', 'replace'),
    )
    activity.attempts.append(attempt)
    request.__dict__[ATTEMPT] = attempt
    # Response callbacks run after every tween: they see the sync cookie.
    request.add_response_callback(_responded)
    return attempt


def _responded(request: Any, response: Any) -> None:
    attempt = request.__dict__[ATTEMPT]
    attempt.status = response.status_int
    attempt.sets_cookie = any(
        value.startswith(SYNC_COOKIE + '=')
        for value in response.headers.getall('Set-Cookie')
    )


def ended(request: Any, exc: BaseException | None) -> None:
    """Record how the attempt ended: ``exc`` raised or answered by an
    exception view (None if neither), retried or not."""
    attempt = request.__dict__.get(ATTEMPT)
    if attempt is None:
        return
    attempt.ended = True
    if exc is None:
        return
    attempt.error = f'{type(exc).__name__}: {exc}'[:300]
    attempt.conflict = isinstance(exc, ConflictError)
    attempt.retried = (
        not is_last_attempt(request) and is_error_retryable(request, exc)
    )


def opened(event: Any) -> None:
    """``ZODBConnectionOpened`` subscriber: instrument a watched
    request's connections."""
    request = event.request
    attempt = request.__dict__.get(ATTEMPT)
    if attempt is None:
        return
    attempt.fast = bool(event.kept)
    if event.kept:
        # connection.read_connection syncs on the same test.
        attempt.synced = (
            SYNC_COOKIE + '=' in request.environ.get('HTTP_COOKIE', '')
        )
    watch = request.__dict__.get(WATCH)
    if watch is None:
        watch = request.__dict__[WATCH] = Watch(attempt)
    watch.add(event.conn)


def will_close(event: Any) -> None:
    """``ZODBConnectionWillClose`` subscriber: put the connections back
    as they were."""
    watch = event.request.__dict__.pop(WATCH, None)
    if watch is not None:
        watch.finish()


def oid_hex(obj: Any) -> str:
    """The object's oid as 16 hex digits ('' if it has none)."""
    oid = getattr(obj, '_p_oid', None)
    return '' if oid is None else f'{u64(oid):016x}'


def class_name(obj: Any) -> str:
    cls = type(obj)
    return f'{cls.__module__}.{cls.__qualname__}'


def path_of(obj: Any) -> str:
    """``resource_path(obj)`` if ``obj`` is a resource whose whole
    ``__parent__`` chain up to a root is in memory, else ''. Reads no
    ghost (that would load it)."""
    try:
        node = obj
        for _ in range(MAX_DEPTH):
            if getattr(node, '_p_changed', False) is None:  # a ghost
                return ''
            parent = getattr(node, '__parent__', _MISSING)
            if parent is _MISSING:
                return ''
            if parent is None:
                return resource_path(obj)
            node = parent
    except Exception:  # noqa: BLE001 - an attribute of the app's raised
        return ''
    return ''  # a chain longer than MAX_DEPTH: a cycle, likely


_MISSING = object()


def row(obj: Any, ms: float | None = None) -> ObjectRow:
    return ObjectRow(class_name(obj), oid_hex(obj), path_of(obj), ms)


class Watch:
    """The instrumented connections of one attempt (see the module)."""

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        #: id -> (connection, its instance attributes we replaced)
        self.conns: dict[int, tuple[Any, dict]] = {}

    def add(self, conn: Any) -> None:
        """Instrument ``conn`` and the connections of its
        multi-database, those not yet instrumented."""
        for each in list(conn.connections.values()):
            if id(each) not in self.conns:
                self._instrument(each)

    def finish(self) -> None:
        """Restore every connection; note its cache's size."""
        for conn, saved in self.conns.values():
            attributes = vars(conn)
            for name in WRAPPED:
                if name in saved:
                    attributes[name] = saved[name]
                else:
                    attributes.pop(name, None)
            record = self.attempt.database(conn.db().database_name)
            record.cache_after = compat.cache_counts(conn)
        self.conns.clear()

    def _instrument(self, conn: Any) -> None:
        db = conn.db()
        record = self.attempt.database(db.database_name)
        if record.cache_before is None:
            record.cache_before = compat.cache_counts(conn)
            record.cache_target = db.getCacheSize()
        attributes = vars(conn)
        saved = {n: attributes[n] for n in WRAPPED if n in attributes}
        self.conns[id(conn)] = (conn, saved)
        for name in WRAPPED:
            wrapper = getattr(self, f'_{name}')
            setattr(conn, name, wrapper(conn, getattr(conn, name), record))

    def _setstate(self, conn: Any, original: Callable,
                  record: DatabaseActivity) -> Callable:
        def setstate(obj: Any) -> Any:
            began = time.perf_counter()
            result = original(obj)
            seconds = time.perf_counter() - began
            record.loads += 1
            record.load_seconds += seconds
            if len(record.loaded) < MAX_ROWS:
                record.loaded.append(row(obj, seconds * 1000))
            return result

        return setstate

    def _get_connection(self, conn: Any, original: Callable,
                        record: DatabaseActivity) -> Callable:
        def get_connection(database_name: str) -> Any:
            found = original(database_name)
            self.add(conn)  # one opened now joined conn.connections
            return found

        return get_connection

    def _tpc_begin(self, conn: Any, original: Callable,
                   record: DatabaseActivity) -> Callable:
        attempt = self.attempt

        def tpc_begin(transaction: Any) -> Any:
            record.tpc_started = time.perf_counter()
            if attempt.note is None:
                attempt.note = transaction.description
                attempt.user = transaction.user
            return original(transaction)

        return tpc_begin

    def _commit(self, conn: Any, original: Callable,
                record: DatabaseActivity) -> Callable:
        def commit(transaction: Any) -> Any:
            try:
                return original(transaction)
            finally:  # a storage may raise its conflict at once
                oids = compat.stored_oids(conn)
                record.stores += len(oids)
                for oid in oids[: max(0, MAX_ROWS - len(record.stored))]:
                    obj = compat.cached_object(conn, oid)
                    record.stored.append(
                        ObjectRow('?', f'{u64(oid):016x}', '')
                        if obj is None else row(obj)
                    )

        return commit

    def _tpc_finish(self, conn: Any, original: Callable,
                    record: DatabaseActivity) -> Callable:
        def tpc_finish(transaction: Any) -> Any:
            result = original(transaction)
            _tpc_ended(record, True)
            return result

        return tpc_finish

    def _tpc_abort(self, conn: Any, original: Callable,
                   record: DatabaseActivity) -> Callable:
        def tpc_abort(transaction: Any) -> Any:
            try:
                return original(transaction)
            finally:
                _tpc_ended(record, False)

        return tpc_abort


def _tpc_ended(record: DatabaseActivity, committed: bool) -> None:
    if record.tpc_started is not None:
        record.commit_seconds += time.perf_counter() - record.tpc_started
        record.tpc_started = None
        record.committed = committed
