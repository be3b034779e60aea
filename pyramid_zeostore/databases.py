"""The per-process registry of ``ZODB.DB`` objects.

Nothing is opened at import or configuration time. Each process opens its
databases on first use and checks ``os.getpid()`` on every access: a forked
child (gunicorn ``--preload``, mod_wsgi daemons, ``multiprocessing``) opens
its own, so no two processes ever share a ZEO client. Databases are closed
at interpreter exit, which saves FileStorage indexes and ZEO client caches.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any, Iterable, Mapping

from zc.lockfile import LockError
from ZEO.Exceptions import ClientDisconnected
from ZODB import DB
from ZODB.POSException import ConflictError
from zope.interface import implementer

from . import compat
from .backoff import pause
from .display import mask_password
from .exceptions import (
    CommitOutcomeUnknown,
    DatabaseUnavailable,
    TLSFileError,
    ZeostoreConfigurationError,
)
from .interfaces import IDatabases
from .probe import client_storage
from .resolvers import PROBE_TIMEOUT
from .settings import DatabaseSpec, parse_settings, resolve

log = logging.getLogger(__name__)

POLL = 0.02
ROOT_ATTEMPTS = 10

_UNKNOWN = object()

#: DB-API exception class names that mean "the SQL server is not there"
#: (RelStorage treats them as disconnections too).
DBAPI_UNAVAILABLE = frozenset({'OperationalError', 'InterfaceError'})


@implementer(IDatabases)
class Databases:
    """The databases of one configuration, opened lazily per process.

    Registered as the :class:`~pyramid_zeostore.interfaces.IDatabases`
    utility by ``includeme``; scripts build one with :meth:`from_uri` or
    :meth:`from_settings`.
    """

    @classmethod
    def from_settings(
        cls,
        settings: Mapping[str, Any],
        connect_timeout: float | None = None,
    ) -> Databases:
        """The databases of app ``settings`` (``zodb_uri``,
        ``zodb_uri.NAME``, ...); ``connect_timeout`` overrides
        ``zeostore.connect_timeout``. Opens nothing.

        :raises ConfigurationError: a setting is wrong or no URI is set.
        """
        parsed = parse_settings(settings)
        if connect_timeout is None:
            connect_timeout = parsed.connect_timeout
        return cls(parsed.databases, connect_timeout, parsed.reply_timeout)

    @classmethod
    def from_uri(
        cls, uri: str, connect_timeout: float | None = None
    ) -> Databases:
        """The one database of ``uri``, as ``zodb_uri = uri`` would give."""
        return cls.from_settings({'zodb_uri': uri}, connect_timeout)

    def __init__(
        self,
        specs: Iterable[DatabaseSpec],
        connect_timeout: float = 2.0,
        reply_timeout: float | None = None,
    ) -> None:
        """``reply_timeout``: seconds a ZEO server may take to answer one
        call (``zeostore.reply_timeout``); None waits as long as it takes
        (a pack)."""
        self.specs = tuple(specs)
        if not self.specs:
            raise ZeostoreConfigurationError(
                'zodb_uri',
                None,
                'expected a database URI such as '
                'zeo://%(here)s/var/zeo.sock',
            )
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._dbs: dict = {}
        self._clients: dict = {}  # name -> its ZEO ClientStorage, or None
        self._disconnected: tuple | None = None
        # name -> (monotonic time, reason) of the last diagnosis.
        self._reasons: dict = {}
        self.bootstrapped = False
        # (pid, monotonic time, DatabaseUnavailable) of the last failed
        # open: threads that queued behind it fail at once.
        self._failed: tuple | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    def spec(self, name: str = '') -> DatabaseSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def get(self, name: str = ''):
        """This process's ``ZODB.DB`` for ``name`` (``''``: the primary).

        :raises DatabaseUnavailable: a ZEO server did not answer within
            ``connect_timeout``.
        :raises KeyError: no database has that name.
        """
        if self._pid != os.getpid():
            self._open()
        return self._dbs[name]

    @property
    def is_open(self) -> bool:
        return self._pid == os.getpid()

    def _open(self) -> None:
        queued = time.monotonic()
        with self._lock:
            pid = os.getpid()
            if self._pid == pid:
                return
            failed = self._failed
            if failed and failed[0] == pid and failed[1] >= queued:
                # Another thread waited the full bound while this one
                # queued for the lock: waiting again would add up the
                # bounds of every request that arrived meanwhile.
                raise failed[2].again()
            if self._pid is not None:
                # Inherited from the parent: its ZEO client threads did not
                # survive the fork, and closing would talk over the
                # parent's sockets. Drop the references, open our own.
                log.debug('pid changed (%s -> %s): reopening', self._pid, pid)
            self._dbs = {}
            self.bootstrapped = False
            dbs: dict = {}
            try:
                for spec in self.specs:
                    dbs[spec.name] = self._open_one(spec, dbs)
            except BaseException as e:
                for db in dbs.values():
                    db.close()
                if isinstance(e, DatabaseUnavailable):
                    self._failed = (pid, time.monotonic(), e)
                raise
            self._dbs = dbs
            self._clients = {}
            self._disconnected = None
            self._pid = pid
            _open_registries.add(self)  # kept until closed, even unreferenced

    def _open_one(self, spec: DatabaseSpec, dbs: dict):
        try:
            if spec.is_zeo:
                compat.record_registration_failures()
                storage = spec.factory(wait_timeout=self.connect_timeout)
            else:
                storage = spec.factory()
        except ClientDisconnected:
            refused = refused_registration(spec)
            if refused is not None:
                raise refused from None
            raise self.unavailable(spec.name) from None
        except (FileNotFoundError, NotADirectoryError, PermissionError,
                IsADirectoryError) as e:
            # file://, blob_dir, zconfig://: a path that is not there or
            # not this user's to write.
            raise ZeostoreConfigurationError(
                spec.key, spec.uri,
                'expected paths that exist and that this user may write '
                f'({e.strerror or e}: {e.filename})',
            ) from None
        except TLSFileError as e:
            raise ZeostoreConfigurationError(
                spec.key, spec.uri, f'expected usable TLS files ({e})'
            ) from None
        except LockError as e:
            # file://: a FileStorage is one process's at a time.
            raise ZeostoreConfigurationError(
                spec.key, spec.uri,
                f'expected a file no other process has open ({e}): a ZEO '
                'server (runzeo, pzeo start, zeostore.autostart) or another '
                'process holds it; stop it, or serve the file with ZEO and '
                'use zeo:// to share it',
            ) from None
        except TypeError as e:
            # zodburi passes options that this ZEO/ZODB may not take.
            raise ZeostoreConfigurationError(
                spec.key,
                spec.uri,
                f'expected parameters this storage accepts ({e})',
            ) from None
        except Exception as e:
            # A SQL server (RelStorage) that does not answer: the DB-API's
            # OperationalError / InterfaceError, whatever the driver.
            if type(e).__name__ not in DBAPI_UNAVAILABLE:
                raise
            exc = DatabaseUnavailable(
                spec.name, spec.display_address, self.connect_timeout,
                f'{type(e).__name__}: {e}'.strip(), zeo=False,
            )
            log.warning('%s', exc)
            raise exc from None
        client = client_storage(storage)
        if client is not None:
            compat.forget_prefetched_oids(client)
            if self.reply_timeout is not None:
                compat.bound_replies(client, self.reply_timeout)
            guard_commit(client, spec, self.reply_timeout)
        # Several processes opening an empty database at once all try to
        # create its root object; the losers retry and find the winner's.
        for attempt in range(1, ROOT_ATTEMPTS):
            try:
                return _new_db(storage, dbs, spec, close_on_error=False)
            except ConflictError:
                pause(attempt, POLL, 10 * POLL)
        return _new_db(storage, dbs, spec, close_on_error=True)

    def unavailable(
        self, name: str = '', probe_timeout: float = PROBE_TIMEOUT
    ) -> DatabaseUnavailable:
        """The error for ``name``'s server not answering in time.

        ZEO's client retries silently, so its addresses are probed once
        more to find out why (refused, permission denied, a TLS
        certificate refused), within ``probe_timeout`` seconds; the reason
        goes into the message, which is logged as a warning.
        """
        spec = self.spec(name)
        zeo = spec.zeo
        now = time.monotonic()
        last = self._reasons.get(name)
        if last is not None and now - last[0] < DIAGNOSIS_TTL:
            # Every request of an outage asks: one probe answers them all
            # for a while (a stopped server's backlog is not filled).
            reason = last[1]
        elif zeo is not None and probe_timeout > 0:
            reason = zeo.diagnose(probe_timeout)
            self._reasons[name] = (now, reason)
        else:
            reason = None
        exc = DatabaseUnavailable(
            name, spec.display_address, self.connect_timeout, reason,
            zeo=zeo is not None,
        )
        log.warning('%s', exc)
        return exc

    def disconnected_exceptions(self) -> tuple:
        """The exceptions that this process's storages raise when their
        server went away (RelStorage drivers list theirs); ``()`` before
        the databases are open."""
        if self._pid != os.getpid():
            return ()
        found = self._disconnected
        if found is None:
            found = ()
            for db in self._dbs.values():
                found += compat.disconnected_exceptions(db.storage)
            self._disconnected = found
        return found

    def wait_connected(self, name: str, deadline: float) -> bool:
        """Wait until ``name``'s ZEO client is connected, or ``deadline``.

        ``deadline`` is a ``time.monotonic()`` value. Storages that are not
        ZEO clients are always connected.
        """
        db = self.get(name)
        client = self._clients.get(name, _UNKNOWN)
        if client is _UNKNOWN:
            client = self._clients[name] = client_storage(db.storage)
        if client is None:
            return True
        while not client.is_connected():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        if self._reasons:
            self._reasons.pop(name, None)  # back: diagnose afresh next time
        return True

    def sync(self, name: str = '') -> None:
        """Make a round trip to the ZEO server of ``name``.

        Afterwards every invalidation the server sent before has been
        seen, so a transaction begun next reads the latest committed state.
        """
        client = client_storage(self.get(name).storage)
        if client is not None:
            client.ping()

    def sync_all(self) -> None:
        """:meth:`sync` with every configured database, in turn."""
        for name in self.names:
            self.sync(name)

    def close(self) -> None:
        """Close this process's databases (not ones inherited by fork)."""
        with self._lock:
            if self._pid == os.getpid():
                for db in self._dbs.values():
                    _close_db(db)
            self._dbs = {}
            self._pid = None
            self.bootstrapped = False
            _open_registries.discard(self)


#: Seconds one diagnosis of a server that does not answer stands for
#: (see :meth:`Databases.unavailable`).
DIAGNOSIS_TTL = 5.0

#: Seconds an abort waits for a ZEO connection that is down (ZEO's own
#: default is its whole ``wait_timeout``).
ABORT_WAIT = 0.01


def db_from_uri(
    uri: str, dbname: str, dbmap: dict, resolve_uri: Any = None
) -> DB:
    """pyramid_zodbconn's ``db_from_uri``: a ``ZODB.DB`` named ``dbname``
    on ``uri``, joined to the multi-database ``dbmap``.

    Resolved as ``zodb_uri`` is (``zeo://`` with this package's
    parameters; any other scheme by zodburi), unless ``resolve_uri``
    (``uri -> (storage_factory, dbkw)``) is given. The caller closes it.
    """
    if resolve_uri is None:
        factory, dbkw = resolve('zodb_uri', uri)
    else:
        factory, dbkw = resolve_uri(uri)
    dbkw = {**dbkw, 'database_name': dbname}
    return DB(factory(), databases=dbmap, **dbkw)


def guard_commit(
    client: Any, spec: DatabaseSpec, timeout: float | None
) -> None:
    """Turn a ZEO commit that did not come back into
    :class:`~pyramid_zeostore.exceptions.CommitOutcomeUnknown`, which is
    never retried: a vote that timed out, or a finish that timed out or
    lost its connection (the server may have committed; a retry could
    apply the change twice). A vote that lost its connection stays a
    retried ``ClientDisconnected``: the server aborts a transaction
    whose client went away before the finish. An abort while
    disconnected does not wait for the server to come back."""
    vote, finish, abort = (
        client.tpc_vote, client.tpc_finish, client.tpc_abort
    )

    def uncertain(exc: Exception) -> CommitOutcomeUnknown:
        exc = CommitOutcomeUnknown(
            spec.name, spec.display_address, timeout or 0.0,
            str(exc) or type(exc).__name__,
        )
        log.error('%s', exc)
        return exc

    def tpc_vote(txn: Any) -> Any:
        try:
            return vote(txn)
        except compat.ReplyTimeout as e:
            raise uncertain(e) from None

    def tpc_finish(txn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return finish(txn, *args, **kw)
        except ClientDisconnected as e:
            raise uncertain(e) from None

    def tpc_abort(txn: Any, timeout: float | None = None) -> Any:
        if timeout is None and not client.is_connected():
            # The server dropped the transaction with the connection:
            # no need to wait for a new one to say so.
            timeout = ABORT_WAIT
        return abort(txn, timeout=timeout)

    client.tpc_vote, client.tpc_finish, client.tpc_abort = (
        tpc_vote, tpc_finish, tpc_abort
    )


def refused_registration(spec: DatabaseSpec) -> Exception | None:
    """The configuration error behind a ZEO server that answered but
    refused this client's ``register`` (see
    :func:`~pyramid_zeostore.compat.record_registration_failures`)."""
    zeo = spec.zeo
    storage = str(zeo.kw.get('storage', '1'))
    exc = compat.registration_failure(storage, zeo.addresses)
    if exc is None:
        return None
    found = compat.server_exception(exc)
    name, text = found if found else (type(exc).__name__, str(exc))
    if name == 'ValueError' and text.startswith('unknown storage'):
        expected = (
            f'a storage the server at {spec.display_address} has: it has '
            f'none named {storage!r} (set storage=NAME in the URI to the '
            'name of a storage section of its zeo.conf, e.g. '
            '<filestorage 1>)'
        )
    elif name == 'ReadOnlyError':
        expected = (
            f'read_only=true: the server at {spec.display_address} serves '
            f'storage {storage!r} read-only'
        )
    else:
        expected = (
            f'a storage the server at {spec.display_address} lets this '
            f'client use (it refused: {name}: {text})'
        )
    exc = ZeostoreConfigurationError(spec.key, mask_password(spec.uri),
                                     f'expected {expected}')
    log.error('%s', exc)
    return exc


def _new_db(storage, dbs: dict, spec: DatabaseSpec, close_on_error: bool):
    try:
        return DB(storage, databases=dbs, **spec.dbkw)
    except BaseException as e:
        dbs.pop(spec.name, None)  # DB registers itself before it fails
        if close_on_error or not isinstance(e, ConflictError):
            storage.close()
        raise


def _close_db(db) -> None:
    try:
        db.close()
    except Exception:
        # ZODB aborts each open connection's transaction first, which
        # raises NoTransaction on an explicit manager with none begun and
        # leaves the storage open: close the storage itself, so a
        # FileStorage still saves its index and a ZEO client its cache.
        log.warning('closing database %r failed', db.database_name,
                    exc_info=True)
        try:
            db.storage.close()
        except Exception:  # keep closing the others
            log.exception('closing storage failed')


_open_registries: set[Databases] = set()


@atexit.register
def close_all() -> None:
    """Close every database this process opened (runs at exit)."""
    for databases in list(_open_registries):
        databases.close()
