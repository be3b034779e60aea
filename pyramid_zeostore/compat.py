"""Every reach into another library's private attributes, in one place.

No public API does these jobs. Each function names what it relies on and
the version of the library it was checked against (:data:`CHECKED`);
``tests/unit/test_compat.py`` has a canary for each that fails loudly
when the library changes shape, so that an upgrade cannot turn one of
them off in silence. Two of them guard correctness, not speed: without
:func:`forget_prefetched_oids` acknowledged writes can be lost after a
ZEO server crash, and without :func:`disconnected_exceptions` a
RelStorage outage answers 500 instead of 503.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from importlib.metadata import version
from typing import Any, Callable, Iterator

from pyramid.interfaces import IRequestExtensions
from ZEO.Exceptions import ClientDisconnected
from zodburi.resolvers import ClientStorageURIResolver

log = logging.getLogger(__name__)

#: The versions each reach was last checked against.
CHECKED = {
    'ZEO': '6.2',
    'RelStorage': '4.3.0',
    'transaction': '5.1',
    'ZODB': '6.4',
    'pyramid': '2.1',
    'zodburi': '3.0.0',
}

# -- ZEO ---------------------------------------------------------------------


def forget_prefetched_oids(client: Any) -> bool:
    """Make a ZEO ``ClientStorage`` drop its pre-fetched oids whenever it
    (re)connects. Returns False (and logs an error) if ``client`` does
    not have the shape this was written for.

    ZEO 6.2: ``ClientStorage._oids`` is the list of oids fetched 100 at a
    time by ``new_oid()``; ``notify_connected(conn, info)`` is called on
    every connection. A server that was killed (SIGKILL, a crash) starts
    again from the highest oid *committed* and hands the unused ones out
    again: two clients then create different objects under one oid, the
    loser's abort detaches its object, and later changes to it are
    silently not saved.
    """
    oids = getattr(client, '_oids', None)
    notify = getattr(client, 'notify_connected', None)
    if not isinstance(oids, list) or not callable(notify):
        log.error(
            'ZEO %s: ClientStorage has no _oids list / notify_connected; '
            'pre-fetched oids are kept across reconnections, so writes '
            'may be lost after a ZEO server crash (checked with ZEO %s)',
            version('ZEO'), CHECKED['ZEO'],
        )
        return False

    def notify_connected(conn: Any, info: Any) -> Any:
        del oids[:]  # ClientStorage only ever mutates this list
        return notify(conn, info)

    client.notify_connected = notify_connected
    return True


class ReplyTimeout(ClientDisconnected):
    """A ZEO server took longer than ``zeostore.reply_timeout`` to answer
    a call; the connection was dropped (a ``ClientDisconnected``, so a
    request that had not begun its commit is retried)."""


#: Per thread: a shorter bound for the calls made meanwhile (see
#: :func:`replies_within`).
_bound = threading.local()


@contextlib.contextmanager
def replies_within(seconds: float) -> Iterator[None]:
    """Bound each ZEO call this thread makes meanwhile to ``seconds``
    (the health check's own budget), if that is less than the client's
    reply timeout."""
    before = getattr(_bound, 'seconds', None)
    _bound.seconds = seconds if before is None else min(seconds, before)
    try:
        yield
    finally:
        _bound.seconds = before


#: What a ZEO future's ``result(timeout)`` raises when time is up: ZEO's
#: own futures raise asyncio's TimeoutError, the standard ones that of
#: concurrent.futures (the same class from Python 3.11 on).
TIMEOUTS = (concurrent.futures.TimeoutError, asyncio.TimeoutError)


#: Seconds a call that timed out waits for ZEO's IO thread to drop the
#: connection.
DROP_WAIT = 1.0


def _retrieve(future: Any) -> None:
    future.exception()


def bound_replies(client: Any, timeout: float) -> bool:
    """Make every synchronous call of ZEO ``ClientStorage`` ``client``
    wait at most ``timeout`` seconds for the server's answer, then drop
    the connection (ZEO reconnects by itself) and raise
    :class:`ReplyTimeout`. Returns False (and logs an error) if ZEO
    changed shape.

    ZEO 6.2 bounds only the wait for a connection: a server that is
    connected but does not answer (stopped, swapping, a hung disk) holds
    the calling thread for good. ``ClientStorage._server`` is the
    ``ClientRunner``; its ``io_call(coro, wait=True)`` runs every
    synchronous call (``call``, ``load_before``, ``tpc_finish``) in the IO
    thread and waits on a ``concurrent.futures.Future``; its ``client``
    (``ClientIO``) has the ``protocol`` to close and ``disconnected()``
    to call, as ZEO's own ``tpc_finish_co`` does on an error. A call
    made while disconnected first waits for the connection (the
    client's ``wait_timeout``), then for the answer.
    """
    runner = getattr(client, '_server', None)
    original = getattr(runner, 'io_call', None)
    io = getattr(runner, 'client', None)
    loop = getattr(runner, 'loop', None)
    if not callable(original) or loop is None or not all(
        hasattr(io, name) for name in ('protocol', 'disconnected')
    ):
        log.error(
            'ZEO %s: ClientStorage._server has no io_call / client / loop; '
            'a ZEO server that stops answering holds requests for good '
            '(checked with ZEO %s)', version('ZEO'), CHECKED['ZEO'],
        )
        return False
    connect = float(getattr(runner, 'timeout', 0) or 0)

    def abandon(future: Any, dropping: bool, done: Any) -> None:
        # In the IO thread. Nobody waits on its outcome now: take it, or
        # ZEO logs "exception was never retrieved" with a traceback for
        # every call cut off.
        try:
            future.add_done_callback(_retrieve)
            protocol = io.protocol
            if dropping and protocol is not None:
                protocol.close()
                io.disconnected(protocol)
        finally:
            done.set()

    def io_call(coro: Any, wait: bool = True) -> Any:
        future = original(coro, wait=False)
        if not wait:
            return future
        bound = timeout if io.protocol is not None and getattr(
            io, 'operational', True) else connect + timeout
        shorter = getattr(_bound, 'seconds', None)
        dropping = shorter is None or shorter >= bound
        if not dropping:
            bound = shorter
        try:
            return future.result(bound)
        except TIMEOUTS:
            if future.done():
                return future.result()  # answered just now
            # Not cancelled: ZEO shares a load's future between threads.
            # Dropping the connection fails every call still waiting on
            # it; a shorter bound (the health check's) only stops waiting.
            if not loop.is_closed():
                done = threading.Event()
                loop.call_soon_threadsafe(abandon, future, dropping, done)
                # Disconnected before this raises: the abort that follows
                # then knows not to wait for the server.
                done.wait(DROP_WAIT)
            raise ReplyTimeout(
                f'the ZEO server did not answer within {bound:g}s'
                + (' (zeostore.reply_timeout): connection dropped'
                   if dropping else '')
            ) from None
        finally:
            del future  # as ZEO does: no reference cycle via the traceback

    runner.io_call = io_call
    return True


#: (storage name, address) -> the last exception a ZEO server answered
#: to this process's ``register`` (a wrong storage name, a read-only
#: server), kept by :func:`record_registration_failures`.
REGISTRATION_FAILURES: dict = {}


def record_registration_failures() -> bool:
    """Keep the reason a ZEO server refused to register a client.

    ZEO 6.2: ``ZEO.asyncio.client.ClientIO.register_failed(protocol,
    exc)`` logs the refusal and tries again in 9 s, so the client only
    ever says "timed out waiting for connection"; its ``addrs`` and
    ``storage_key`` say which server and storage. Wrapped once per
    process; returns False (and logs an error) if ZEO changed shape.
    """
    from ZEO.asyncio import client as zeo_client

    cls = getattr(zeo_client, 'ClientIO', None)
    original = getattr(cls, 'register_failed', None)
    if original is None:
        log.error(
            'ZEO %s: no ClientIO.register_failed; a ZEO server that '
            'refuses the storage name is reported as unreachable '
            '(checked with ZEO %s)', version('ZEO'), CHECKED['ZEO'],
        )
        return False
    if getattr(original, 'zeostore', False):
        return True

    def register_failed(self: Any, protocol: Any, exc: Any) -> Any:
        for address in getattr(self, 'addrs', None) or ():
            key = (getattr(self, 'storage_key', None), address)
            REGISTRATION_FAILURES[key] = exc
        return original(self, protocol, exc)

    register_failed.zeostore = True  # type: ignore[attr-defined]
    cls.register_failed = register_failed
    return True


def registration_failure(storage: str, addresses: Any) -> Any:
    """The exception a server at one of ``addresses`` last answered to
    ``register(storage)``, taken out (None if none)."""
    for address in addresses:
        exc = REGISTRATION_FAILURES.pop((storage, address), None)
        if exc is not None:
            return exc
    return None


def server_exception(exc: BaseException) -> tuple[str, str] | None:
    """``(class name, message)`` of an error raised on a ZEO server and
    sent as ``ServerException(('builtins.ValueError', ('text',)))``."""
    args = getattr(exc, 'args', ())
    if type(exc).__name__ != 'ServerException' or len(args) != 2:
        return None
    name, values = args
    text = ' '.join(str(v) for v in values) if isinstance(
        values, tuple) else str(values)
    return str(name).rsplit('.', 1)[-1], text


# -- RelStorage --------------------------------------------------------------


def server_errno(exc: BaseException) -> int | None:
    """The ``errno`` of an ``OSError`` behind ``exc``: raised here, or on
    the ZEO server, whose ``ServerException`` carries it as
    ``('builtins.OSError', (errno, strerror))`` (ZEO's private way of
    sending an error it cannot pickle across); None if there is none."""
    if isinstance(exc, OSError):
        return exc.errno
    args = getattr(exc, 'args', ())
    if (
        type(exc).__name__ == 'ServerException'
        and len(args) == 2
        and args[0] in ('builtins.OSError', 'exceptions.OSError')
        and isinstance(args[1], tuple) and args[1]
        and isinstance(args[1][0], int)
    ):
        return args[1][0]
    return None


def disconnected_exceptions(storage: Any) -> tuple:
    """The exceptions a RelStorage storage's driver raises when its SQL
    server went away; ``()`` for any other storage.

    RelStorage 4.3: ``storage._adapter.driver.disconnected_exceptions``.
    """
    adapter = getattr(storage, '_adapter', None)
    driver = getattr(adapter, 'driver', None)
    return tuple(getattr(driver, 'disconnected_exceptions', ()))


# -- transaction --------------------------------------------------------------


def current_transaction(tm: Any) -> Any:
    """``tm``'s transaction if one is under way, else None, without
    making one (``get()`` makes one on a non-explicit manager).

    transaction 5.1: ``TransactionManager._txn``; the thread's manager
    (``transaction.manager``) keeps its own as ``.manager``.
    """
    try:
        return tm._txn
    except AttributeError:  # a ThreadTransactionManager
        return tm.manager._txn


def has_joined(txn: Any) -> bool:
    """Has any data manager joined ``txn`` (a change to commit)?

    transaction 5.1: ``Transaction._resources``.
    """
    return bool(txn._resources)


# -- ZODB ---------------------------------------------------------------------


def changed_objects(conn: Any) -> list:
    """The objects changed through ``conn`` in its current transaction.

    ZODB 6.4: ``Connection._registered_objects``.
    """
    return list(getattr(conn, '_registered_objects', ()))


# -- pyramid ------------------------------------------------------------------


def request_property(registry: Any, name: str) -> Callable | None:
    """The function behind request property ``name`` (added with
    ``config.add_request_method(fn, name, reify=True)``), or None.

    Pyramid 2.1: ``IRequestExtensions.descriptors`` maps the name to the
    descriptor ``InstancePropertyHelper.make_property`` built: a reify
    (``.wrapped``) of ``lambda this: fn(this)`` (a closure over ``fn``).
    """
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is None or name not in extensions.descriptors:
        return None
    descriptor = extensions.descriptors[name]
    wrapped = getattr(descriptor, 'wrapped', descriptor)
    for cell in getattr(wrapped, '__closure__', None) or ():
        if callable(cell.cell_contents):
            return cell.cell_contents
    return wrapped


def remove_request_properties(registry: Any, names: Any) -> None:
    """Take request properties ``names`` out of the request extensions,
    and the extensions out of the registry once they are empty (the
    router then applies none per request: Pyramid builds a class per
    request to apply them).

    Pyramid 2.1: the ``IRequestExtensions`` utility's ``descriptors`` and
    ``methods`` dicts.
    """
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is None:
        return
    for name in names:
        extensions.descriptors.pop(name, None)
    if not (extensions.methods or extensions.descriptors):
        registry.unregisterUtility(extensions, IRequestExtensions)


# -- zodburi ------------------------------------------------------------------

#: zodburi 3.0: the ``zeo://`` parameters its resolver declares, by the
#: converter that reads them (the ``Resolver`` subclass extension point).
ZODBURI_ZEO_INT_ARGS: tuple = ClientStorageURIResolver._int_args
ZODBURI_ZEO_STRING_ARGS: tuple = ClientStorageURIResolver._string_args


# -- ZODB, for the debug toolbar panel ----------------------------------------


def stored_oids(conn: Any) -> list:
    """The oids ``conn`` stored in the commit under way, in order, once:
    read after its ``commit()``, before its ``tpc_finish()``.

    ZODB 6.4: ``Connection._modified`` (a list: objects changed, and every
    object a savepoint held) and ``Connection._creating`` (a dict: the new
    ones), both reset by ``tpc_begin()`` and filled by ``commit()``;
    ``tpc_finish()`` and ``tpc_abort()`` empty ``_creating`` only.
    """
    found = dict.fromkeys(getattr(conn, '_modified', None) or ())
    found.update(dict.fromkeys(getattr(conn, '_creating', None) or ()))
    return list(found)


def cached_object(conn: Any, oid: bytes) -> Any:
    """The object ``oid`` in ``conn``'s cache (a ghost maybe), or None:
    never loads.

    ZODB 6.4: ``Connection._cache`` (persistent's ``PickleCache``).
    """
    cache = getattr(conn, '_cache', None)
    return None if cache is None else cache.get(oid)


def cache_counts(conn: Any) -> tuple[int, int]:
    """``(objects, non-ghost objects)`` in ``conn``'s cache.

    ZODB 6.4 / persistent 6.9: ``Connection._cache``, ``len()`` of it and
    its ``cache_non_ghost_count``.
    """
    cache = conn._cache
    return len(cache), cache.cache_non_ghost_count
