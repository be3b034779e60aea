"""The same live root from scripts and cron jobs: open_root, open_db.

A script names the ini of the application (``production.ini#myapp``),
which is loaded as ``pserve`` loads it, so that the script gets the very
databases and appmaker the application configured; or a bare database
URI, with :func:`~.root.default_appmaker`. Each use opens the databases
in this process, works on a transaction manager of its own (never the
global one), retries conflicts if asked, and closes them at the end: see
:func:`open_root`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from types import TracebackType
from typing import Any, Callable, Iterator

import transaction
from pyramid.config import global_registries
from pyramid.paster import get_app, setup_logging
from transaction.interfaces import TransientError

from .backoff import pause
from .databases import Databases
from .exceptions import ZeostoreConfigurationError
from .interfaces import IAppmaker, IDatabases
from .root import bootstrap_once, default_appmaker

__all__ = ['Attempt', 'RootOpener', 'open_db', 'open_root', 'retrying']

log = logging.getLogger(__name__)

Appmaker = Callable[[Any], Any]

#: Seconds of the first retry's backoff (doubled per retry, capped).
BACKOFF = 0.01
BACKOFF_MAX = 0.5


def is_ini(target: str) -> bool:
    """Does ``target`` name an ini file (``path.ini`` or ``path#name``)
    rather than a database URI?"""
    path = target.split('#', 1)[0]
    return '://' not in path and (
        path.endswith('.ini') or os.path.isfile(path)
    )


def _load(
    target: str, name: str | None, appmaker: Appmaker | None
) -> tuple[Databases, Appmaker]:
    """The databases and appmaker ``target`` configures (not opened)."""
    if is_ini(target):
        path, _, section = target.partition('#')
        section = name or section or 'main'
        setup_logging(path)
        app = get_app(path, section)
        # A Router has its registry; a pipeline hides it, but making the
        # Router registered it globally.
        registry = getattr(app, 'registry', None) or global_registries.last
        databases = registry.queryUtility(IDatabases)
        if databases is None:
            raise ZeostoreConfigurationError(
                'zodb_uri', None,
                f'a database URI in [app:{section}] of {path} (the app '
                f'must include pyramid_zeostore)',
            )
        return databases, appmaker or registry.getUtility(IAppmaker)
    return Databases.from_uri(target), appmaker or default_appmaker


@contextlib.contextmanager
def open_db(
    target: str, name: str | None = None, *, dbname: str = ''
) -> Iterator[Any]:
    """Yield this process's ``ZODB.DB`` for ``target`` (an ini or a URI);
    closed at exit. ``dbname`` picks a named database of the ini
    (``zodb_uri.NAME``); ``name`` the ini's app section (``main``)."""
    databases, _ = _load(target, name, None)
    try:
        yield databases.get(dbname)
    finally:
        databases.close()


class Attempt:
    """One try of a block on the app root: a context manager.

    Entering begins a transaction and yields the root; leaving commits,
    or aborts if the block raised. A conflict (any ``TransientError``)
    on an attempt that is not the last is swallowed, and the loop of
    :class:`RootOpener` runs the block again.
    """

    def __init__(self, opener: RootOpener, number: int, last: bool) -> None:
        self.opener = opener
        self.number = number  # 1 for the first
        self.last = last
        self.failed: BaseException | None = None
        self._conn: Any = None

    def __enter__(self) -> Any:
        opener = self.opener
        tm = opener.tm
        tm.begin()
        self._conn = opener.db.open(transaction_manager=tm)
        try:
            return opener.appmaker(self._conn.root())
        except BaseException:
            self._close(abort=True)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        tm = self.opener.tm
        try:
            if exc is None:
                try:
                    tm.commit()
                except BaseException as e:
                    exc = e
                    tm.abort()
                    if self.last or not isinstance(e, TransientError):
                        raise
            else:
                tm.abort()
        finally:
            self._close(abort=False)
        if exc is not None and not self.last and isinstance(
            exc, TransientError
        ):
            self.failed = exc
            log.info('attempt %d conflicted, retrying: %s', self.number, exc)
            return True  # swallowed: the loop tries again
        return False

    def _close(self, abort: bool) -> None:
        if abort:
            self.opener.tm.abort()
        self._conn.close()
        self._conn = None


class RootOpener:
    """What :func:`open_root` returns: use it in a ``with`` (one attempt)
    or iterate over it for retried attempts."""

    def __init__(
        self,
        target: str,
        name: str | None = None,
        *,
        attempts: int = 3,
        appmaker: Appmaker | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f'attempts must be 1 or more, not {attempts}')
        self.target = target
        self.name = name
        self.attempts = attempts
        self._appmaker = appmaker
        self.tm = transaction.TransactionManager(explicit=True)
        self.databases: Databases | None = None
        self.appmaker: Appmaker = appmaker or default_appmaker
        self.db: Any = None
        self._single: Attempt | None = None

    def _open(self) -> None:
        self.databases, self.appmaker = _load(
            self.target, self.name, self._appmaker
        )
        try:
            self.db = bootstrap_once(self.databases, self.appmaker)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self.databases is not None:
            self.databases.close()
        self.databases = self.db = None

    # ``with open_root(...) as root``: one attempt, conflicts raise.
    def __enter__(self) -> Any:
        self._open()
        self._single = Attempt(self, 1, last=True)
        try:
            return self._single.__enter__()
        except BaseException:
            self._close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        single, self._single = self._single, None
        try:
            return single.__exit__(exc_type, exc, tb)
        finally:
            self._close()

    # ``for attempt in open_root(...): with attempt as root``: retried.
    def __iter__(self) -> Iterator[Attempt]:
        self._open()
        try:
            for number in range(1, self.attempts + 1):
                attempt = Attempt(self, number, number == self.attempts)
                yield attempt
                if attempt.failed is None:
                    return
                pause(number, BACKOFF, BACKOFF_MAX)
        finally:
            self._close()


def open_root(
    target: str,
    name: str | None = None,
    *,
    attempts: int = 3,
    appmaker: Appmaker | None = None,
) -> RootOpener:
    """The app root of ``target`` for a script: an ini or a database URI::

        with open_root('development.ini') as root:      # one attempt
            root['news'] = Folder()                      # committed at exit

        for attempt in open_root('development.ini', attempts=5):
            with attempt as root:                        # retried on conflict
                root['counter'].value += 1

    ``with open_root(target) as root:`` runs one attempt: commits when
    the block ends, aborts if it raises. ``for attempt in
    open_root(target, attempts=N): with attempt as root: ...`` runs the
    block again (up to ``attempts`` times in all, with a short jittered
    backoff) when it or its commit hits a ``ConflictError``.

    ``name`` is the ini's app section (default ``main``, or the
    ``#name`` of ``target``); ``appmaker`` overrides the configured one.
    The root is bootstrapped first (see :func:`~.root.bootstrap`), so a
    script may be the first to touch a new database.
    """
    return RootOpener(target, name, attempts=attempts, appmaker=appmaker)


def retrying(
    target: str,
    name: str | None = None,
    *,
    attempts: int = 3,
    appmaker: Appmaker | None = None,
) -> Iterator[Attempt]:
    """``for attempt in retrying(target): with attempt as root: ...``:
    the same as iterating over :func:`open_root`."""
    return iter(open_root(target, name, attempts=attempts, appmaker=appmaker))
