"""From a ZODB root to the application root: appmakers, bootstrap, finders.

An *appmaker* is ``appmaker(zodb_root) -> app_root``: it returns the app
root, creating it if the database is new. :func:`bootstrap` runs it once
per process in a transaction of its own, retried on conflicts, so that
several processes starting at once against an empty database end with
exactly one app root. After that the appmaker only ever reads.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import transaction
from pyramid.threadlocal import get_current_request
from ZODB.POSException import ConflictError

from .backoff import pause
from .connection import get_connection, get_databases, wait_available
from .databases import Databases
from .environ import CLOSER, CONNECTION
from .folder import Folder
from .interfaces import IAppmaker, IEvolutionSteps

Appmaker = Callable[[Any], Any]

APP_ROOT = 'app_root'
BOOTSTRAP_ATTEMPTS = 20


def default_appmaker(zodb_root: Any) -> Folder:
    """Return ``zodb_root['app_root']``, a :class:`Folder` made if absent."""
    try:
        return zodb_root[APP_ROOT]
    except KeyError:
        app_root = zodb_root[APP_ROOT] = Folder()
        return app_root


def bootstrap(db: Any, appmaker: Appmaker, steps: Any = None) -> None:
    """Run ``appmaker`` on ``db`` in its own transaction and commit it.

    Conflicts (another process bootstrapping at the same moment) are
    retried with a short random pause; the loser then finds the winner's
    root. Uses a private transaction manager, never the global one. On a
    new database (an empty ZODB root) the evolve ``steps``
    (``IEvolutionSteps``) are recorded as finished in the same
    transaction: the appmaker made the root in its current shape.
    """
    tm = transaction.TransactionManager(explicit=True)
    for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
        tm.begin()
        conn = db.open(transaction_manager=tm)
        try:
            zodb_root = conn.root()
            new = not len(zodb_root)
            appmaker(zodb_root)
            if new and steps is not None and len(steps):
                steps.mark_new(zodb_root)
            tm.commit()
            return
        except ConflictError:
            tm.abort()
            if attempt == BOOTSTRAP_ATTEMPTS:
                raise
            pause(attempt, 0.01, 0.32)
        except BaseException:
            tm.abort()
            raise
        finally:
            conn.close()


def bootstrap_once(
    databases: Databases, appmaker: Appmaker, steps: Any = None
) -> Any:
    """:func:`bootstrap` the primary database of ``databases`` unless this
    process did already (since they were last opened); return its DB.

    :raises DatabaseUnavailable: a ZEO server did not answer in time.
    """
    db = databases.get('')
    if not databases.bootstrapped:
        bootstrap(db, appmaker, steps)
        databases.bootstrapped = True
    return db


def root_factory(request: Any) -> Any:
    """Pyramid root factory: the configured appmaker's app root.

    The first call in each process bootstraps the root (see
    :func:`bootstrap`); every call then runs the appmaker on the
    request's connection, within ``request.tm``.
    """
    registry = request.registry
    databases = get_databases(registry)
    appmaker = registry.getUtility(IAppmaker)
    if not databases.bootstrapped:
        # Before the request's connection opens, so that its snapshot
        # already holds the root the bootstrap committed.
        wait_available(request)
        bootstrap_once(
            databases, appmaker, registry.queryUtility(IEvolutionSteps)
        )
    return appmaker(get_connection(request).root())


def check_databases(registry: Any) -> None:
    """Open, bootstrap and close this registry's databases: the ready
    app's startup check.

    :raises DatabaseUnavailable: a ZEO server did not answer in time.
    """
    databases = get_databases(registry)
    try:
        bootstrap_once(
            databases, registry.getUtility(IAppmaker),
            registry.queryUtility(IEvolutionSteps),
        )
    finally:
        databases.close()


class PersistentApplicationFinder:
    """The classic ``finder(environ) -> app_root`` over one database URI.

    Kept from the ``repoze.zodbconn`` recipe::

        finder = PersistentApplicationFinder(zodb_uri, appmaker)
        app_root = finder(request.environ)

    The connection opens on ``environ['tm.manager']`` (pyramid_tm's, when
    it manages the request) or a new explicit transaction manager, and is
    closed by ``environ['zeostore.closer']()`` or when the request's
    finished callbacks run. Databases open lazily and per process.
    """

    def __init__(
        self,
        uri: str,
        appmaker: Appmaker = default_appmaker,
        connect_timeout: float = 2.0,
    ) -> None:
        self.uri = uri
        self.appmaker = appmaker
        self.databases = Databases.from_uri(uri, connect_timeout)

    def __call__(self, environ: Mapping[str, Any]) -> Any:
        db = bootstrap_once(self.databases, self.appmaker)
        tm = environ.get('tm.manager')
        if tm is None:
            tm = transaction.TransactionManager(explicit=True)
            tm.begin()
        conn = db.open(transaction_manager=tm)

        def closer() -> None:
            try:
                tm.abort()
            except Exception:  # nothing to abort
                pass
            conn.close()

        environ[CLOSER] = closer
        environ[CONNECTION] = conn
        request = get_current_request()
        if request is not None and request.environ is environ:
            request.add_finished_callback(lambda request: closer())
        return self.appmaker(conn.root())

    def close(self) -> None:
        """Close the finder's databases in this process."""
        self.databases.close()
