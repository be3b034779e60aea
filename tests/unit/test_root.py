"""Finder, bootstrap, databases and connection helpers, in one process.

The classic ``PersistentApplicationFinder`` API and its connection on
pyramid_tm, bootstrap retrying conflicts, ``Databases`` on memory://
(lookup, sync, threads queued on the open, the client storage under
wrappers, options a storage rejects, constructor and close failures),
``get_connection`` errors, exclusive attempts syncing every database,
and SQL storages that are not there; no process, no socket. An open that
fails on an absent ZEO socket is in tests/functional/test_databases.py.
"""

from __future__ import annotations

import logging

import pytest
import transaction
from pyramid import testing
from pyramid.exceptions import ConfigurationError
from ZODB.POSException import ConflictError

from pyramid_zeostore import (
    Databases,
    DatabaseUnavailable,
    Folder,
    PersistentApplicationFinder,
    bootstrap,
    check_databases,
    get_connection,
    get_databases,
    parse_settings,
)
from pyramid_zeostore.connection import wait_available
from pyramid_zeostore.databases import close_all
from pyramid_zeostore.environ import OPEN_FAILED
from pyramid_zeostore.probe import client_storage as _client_storage


def specs(**settings):
    return parse_settings({'zodb_uri': 'memory://', **settings}).databases


def test_finder_keeps_the_classic_api():
    finder = PersistentApplicationFinder('memory://')
    environ = {}
    root = finder(environ)
    assert isinstance(root, Folder)
    assert environ['zeostore.connection'].root()['app_root'] is root
    environ['zeostore.closer']()
    assert environ['zeostore.connection'].opened is None
    finder.close()


def test_finder_joins_pyramid_tm_and_closes_with_the_request():
    finder = PersistentApplicationFinder('memory://')
    tm = transaction.TransactionManager(explicit=True)
    request = testing.DummyRequest()
    request.environ['tm.manager'] = tm
    tm.begin()
    with testing.testConfig(request=request):
        root = finder(request.environ)
        root.title = 'x'
        tm.commit()
    conn = request.environ['zeostore.connection']
    assert conn.opened is not None
    for callback in request.finished_callbacks:
        callback(request)
    assert conn.opened is None
    assert finder(environ := {}).title == 'x'
    environ['zeostore.closer']()
    finder.close()


def test_bootstrap_retries_conflicts_then_gives_up(monkeypatch):
    databases = Databases(specs())
    db = databases.get()
    calls = []

    def flaky(zodb_root):
        calls.append(1)
        if len(calls) < 3:
            raise ConflictError('busy')
        zodb_root['app_root'] = Folder()

    monkeypatch.setattr('pyramid_zeostore.backoff.time.sleep', lambda s: None)
    bootstrap(db, flaky)
    assert len(calls) == 3

    def always(zodb_root):
        raise ConflictError('always')

    with pytest.raises(ConflictError):
        bootstrap(db, always)

    def broken(zodb_root):
        raise RuntimeError('bug')

    with pytest.raises(RuntimeError):
        bootstrap(db, broken)
    databases.close()


def test_databases_need_a_uri():
    with pytest.raises(ConfigurationError, match='zodb_uri'):
        Databases(())


def test_databases_lookup_and_sync_without_zeo():
    databases = Databases(specs(**{'zodb_uri.other': 'memory://o'}))
    assert databases.names == ('', 'other')
    assert databases.spec('other').key == 'zodb_uri.other'
    with pytest.raises(KeyError):
        databases.spec('nope')
    databases.sync()  # nothing to sync with: no error
    assert databases.wait_connected('other', 0)
    assert databases.get('other').databases is databases.get('').databases
    close_all()
    assert not databases.is_open


def test_threads_queued_on_the_open_find_it_done():
    # Two threads both see an unopened registry; the one that gets the
    # lock second must use what the first opened, not open again.
    databases = Databases(specs())
    db = databases.get()
    databases._open()  # as the second thread does, after the first
    assert databases.get() is db
    close_all()


def test_client_storage_is_found_under_wrappers():
    class Client:
        def is_connected(self):
            return True

    class Demo:
        base = Client()

    assert isinstance(_client_storage(Demo()), Client)
    assert _client_storage(object()) is None


def test_storage_that_rejects_options_names_the_key(monkeypatch):
    spec = specs()[0]

    def factory():
        raise TypeError("unexpected keyword argument 'debug'")

    object.__setattr__(spec, 'factory', factory)
    with pytest.raises(ConfigurationError) as info:
        Databases([spec]).get()
    assert info.value.key == 'zodb_uri'
    assert 'debug' in str(info.value)


def test_db_constructor_failure_closes_the_storage(monkeypatch):
    closed = []

    class Storage:
        # not a storage at all: ZODB.DB fails on it
        def close(self):
            closed.append(True)

    spec = specs()[0]
    object.__setattr__(spec, 'factory', Storage)
    with pytest.raises(AttributeError):
        Databases([spec]).get()
    assert closed == [True]


def test_close_falls_back_to_the_storage_and_goes_on(caplog):
    databases = Databases(specs(**{'zodb_uri.b': 'memory://b'}))
    db = databases.get()
    other = databases.get('b')
    closed = []

    def bad_close():
        raise OSError('disk gone')

    def bad_storage_close():
        raise OSError('really gone')

    db.close = bad_close
    db.storage.close = lambda: closed.append(True)
    other.close = bad_close
    other.storage.close = bad_storage_close
    with caplog.at_level(logging.WARNING):
        databases.close()
    assert "closing database ''" in caplog.text
    assert 'closing storage failed' in caplog.text
    assert closed == [True]
    assert not databases.is_open


def test_get_connection_errors():
    with testing.testConfig() as config:
        request = testing.DummyRequest()
        with pytest.raises(ConfigurationError, match='include'):
            get_connection(request)
    config = testing.setUp(settings={'zodb_uri': 'memory://'})
    try:
        config.include('pyramid_zeostore')
        config.commit()
        request = testing.DummyRequest()
        request.registry = config.registry
        request.tm = transaction.TransactionManager(explicit=True)
        request.tm.begin()
        conn = get_connection(request)
        assert get_connection(request) is conn
        with pytest.raises(ConfigurationError, match='zodb_uri.catalog'):
            get_connection(request, 'catalog')
        request.tm.abort()
        for callback in request.finished_callbacks:
            callback(request)
        assert conn.opened is None
    finally:
        testing.tearDown()


def test_exclusive_attempts_sync_every_database_they_open(monkeypatch):
    from pyramid_zeostore.connection import EXCLUSIVE, get_databases

    config = testing.setUp(
        settings={'zodb_uri': 'memory://', 'zodb_uri.catalog': 'memory://c'}
    )
    try:
        config.include('pyramid_zeostore')
        config.commit()
        databases = get_databases(config.registry)
        synced = []
        monkeypatch.setattr(databases, 'sync', synced.append)
        for exclusive, expected in (
            (False, []), (True, ['', 'catalog']), (True, ['', 'catalog'])
        ):
            synced.clear()
            request = testing.DummyRequest()
            request.registry = config.registry
            request.environ[EXCLUSIVE] = exclusive
            request.tm = transaction.TransactionManager(explicit=True)
            request.tm.begin()
            get_connection(request, 'catalog')
            get_connection(request, 'catalog')  # opened: no second sync
            assert synced == expected  # also with a pooled connection
            request.tm.abort()
            for callback in request.finished_callbacks:
                callback(request)
    finally:
        testing.tearDown()
        close_all()


def test_root_creation_conflicts_are_retried(monkeypatch):
    import ZODB

    real = ZODB.DB
    calls = []

    def racing_db(*args, **kw):
        calls.append(1)
        if len(calls) < 3:
            kw['databases'][kw['database_name']] = 'half-made'
            raise ConflictError('root made by another process')
        return real(*args, **kw)

    monkeypatch.setattr('pyramid_zeostore.databases.DB', racing_db)
    monkeypatch.setattr('pyramid_zeostore.databases.POLL', 0)
    databases = Databases(specs())
    assert databases.get().database_name == ''
    assert len(calls) == 3
    databases.close()

    def always(*args, **kw):
        raise ConflictError('never settles')

    monkeypatch.setattr('pyramid_zeostore.databases.DB', always)
    with pytest.raises(ConflictError):
        Databases(specs()).get()


def test_a_sql_server_that_is_not_there_is_unavailable(monkeypatch):
    class OperationalError(Exception):
        pass

    spec = specs()[0]

    def refused(**kw):
        raise OperationalError('connection to server failed: refused')

    import dataclasses

    spec = dataclasses.replace(
        spec, uri='postgres://zodb:secret@127.0.0.1:1/zodb', factory=refused
    )
    databases = Databases((spec,), 0.1)
    with pytest.raises(DatabaseUnavailable) as info:
        databases.get()
    message = str(info.value)
    assert 'OperationalError: connection to server failed' in message
    assert 'secret' not in message and 'zodb:***@' in message

    def bug(**kw):
        raise KeyError('not a connection problem')

    spec = dataclasses.replace(spec, factory=bug)
    with pytest.raises(KeyError):
        Databases((spec,), 0.1).get()


@pytest.fixture
def registry():
    """A registry with pyramid_zeostore on memory://, nothing opened."""
    config = testing.setUp(settings={'zodb_uri': 'memory://'})
    config.include('pyramid_zeostore')
    config.commit()
    yield config.registry
    testing.tearDown()


def test_check_databases_bootstraps_and_closes(registry):
    databases = get_databases(registry)
    check_databases(registry)
    assert not databases.is_open  # closed again
    assert databases.bootstrapped is False  # reopened: bootstrap again


def test_a_request_whose_open_failed_does_not_wait_again(registry):
    request = testing.DummyRequest()
    request.registry = registry
    request.environ[OPEN_FAILED] = True
    with pytest.raises(DatabaseUnavailable):
        wait_available(request)
    assert not get_databases(registry).is_open  # none tried
