"""The ZODB debug toolbar panel, in this process: how it is found (and
not), what it collects from connections on in-memory storages, and the
compat helpers it reads ZODB's private attributes through (canaries)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import transaction
from persistent import Persistent
from persistent.mapping import PersistentMapping
from pyramid.config import Configurator
from pyramid.testing import DummyRequest
from ZODB import DB
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import ConflictError
from zope.interface import implementedBy

from pyramid_zeostore import compat, get_databases
from pyramid_zeostore.debugtoolbar import (
    NAMES,
    PANEL,
    collect,
    toolbar_registry,
    wanted,
)
from pyramid_zeostore.events import (
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
)
from tests.functional import toolbarapp

LOCAL = {'REMOTE_ADDR': '127.0.0.1'}


def subscribed(registry) -> bool:
    return any(
        registry.adapters.subscriptions([implementedBy(kind)], None)
        for kind in (ZODBConnectionOpened, ZODBConnectionWillClose)
    )


def panel_map(registry) -> dict:
    from pyramid_debugtoolbar.toolbar import IPanelMap, IToolbarWSGIApp

    app = registry.getUtility(IToolbarWSGIApp)
    return app.registry.getUtility(IPanelMap)


def configure(settings: dict, *includes: str):
    config = Configurator(settings={'zodb_uri': 'memory://', **settings})
    for name in includes:
        config.include(name)
    config.commit()
    return config.registry


# -- found, or not -----------------------------------------------------------


@pytest.mark.parametrize('first', [False, True])
def test_the_panel_is_found_whichever_is_included_first(first):
    app = toolbarapp.make_app({'zodb_uri': 'memory://'}, toolbar_first=first)
    try:
        panel = panel_map(app.registry)[('zodb', False)]
        assert f'{panel.__module__}.{panel.__name__}' == PANEL
        assert subscribed(app.registry)
    finally:
        get_databases(app.registry).close()


def test_without_the_toolbar_nothing_is_added():
    registry = configure({}, 'pyramid_zeostore')
    assert toolbar_registry(registry) is None
    assert not subscribed(registry)


def test_a_toolbar_never_imported_is_not_there(monkeypatch):
    registry = configure({}, 'pyramid_debugtoolbar')
    assert toolbar_registry(registry) is not None
    monkeypatch.delitem(sys.modules, 'pyramid_debugtoolbar.toolbar')
    assert toolbar_registry(registry) is None


def test_a_disabled_toolbar_gets_nothing():
    registry = configure(
        {'debugtoolbar.enabled': 'false'},
        'pyramid_debugtoolbar', 'pyramid_zeostore',
    )
    assert toolbar_registry(registry) is None
    assert not subscribed(registry)
    assert ('zodb', False) not in panel_map(registry)


@pytest.mark.parametrize('panels, extra, shown', [
    ((), (), True),
    (['headers'], (), False),
    (['headers', 'zodb'], (), True),
    (['headers'], [PANEL], True),
])
def test_a_list_of_panels_without_it_turns_it_off(panels, extra, shown):
    settings = {'debugtoolbar.panels': panels,
                'debugtoolbar.extra_panels': extra}
    assert wanted(settings) is shown
    registry = configure(
        {'debugtoolbar.panels': ' '.join(panels),
         'debugtoolbar.extra_panels': ' '.join(extra)},
        'pyramid_debugtoolbar', 'pyramid_zeostore',
    )
    assert subscribed(registry) is shown
    assert NAMES == ('zodb', PANEL)


# -- the collector, on connections of its own -------------------------------


class Node(Persistent):
    def __init__(self, parent=None, name=None):
        self.__parent__ = parent
        self.__name__ = name


@pytest.fixture
def dbs():
    """A multi-database: '' and 'other' on MappingStorages."""
    databases: dict = {}
    main = DB(MappingStorage(), databases=databases, database_name='')
    other = DB(MappingStorage(), databases=databases,
               database_name='other')
    conn = main.open()
    root = conn.root()
    root['top'] = top = Node()
    top.child = Node(top, 'child')
    top.child.leaf = Node(top.child, 'leaf')
    conn.get_connection('other').root()['x'] = PersistentMapping()
    transaction.commit()
    conn.close()
    yield main
    main.close()
    other.close()


def watched(cookie: str = '') -> DummyRequest:
    request = DummyRequest(environ={'HTTP_COOKIE': cookie})
    collect.start(request)
    return request


def event(request, conn, kept=False):
    return SimpleNamespace(request=request, conn=conn, kept=kept)


def test_loads_stores_and_commit_of_a_request(dbs):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = dbs.open(transaction_manager=tm)
    conn.cacheMinimize()
    request = watched()
    attempt = request.__dict__[collect.ATTEMPT]
    collect.opened(event(request, conn))
    top = conn.root()['top']
    top.child.leaf.value = 1  # loads root, top, child, leaf
    top.child.new = Node(top.child, 'new')
    conn.get_connection('other').root()['x']['y'] = 1
    tm.get().note('a note')
    tm.get().user = 'me'
    tm.commit()
    collect.will_close(event(request, conn))
    assert not set(collect.WRAPPED) & set(vars(conn))
    main, other = attempt.databases[''], attempt.databases['other']
    assert [(r.class_name.rsplit('.', 1)[-1], r.path)
            for r in main.loaded] == [
        ('PersistentMapping', ''), ('Node', '/'), ('Node', '/child'),
        ('Node', '/child/leaf'),
    ]
    assert main.loads == 4 and main.load_seconds > 0
    assert sorted(r.path for r in main.stored) == [
        '/child', '/child/leaf', '/child/new'
    ]
    assert main.committed is True and main.commit_seconds > 0
    assert other.loads == 2 and other.stores == 1  # root, x; x
    assert other.committed is True
    assert attempt.note == 'a note' and attempt.user == 'me'
    assert attempt.loads == 6 and attempt.stores == 4
    assert main.cache_after[0] >= main.cache_before[0]
    assert main.cache_target == dbs.getCacheSize()
    conn.close()


def test_a_conflict_is_recorded_and_the_connection_restored(dbs):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = dbs.open(transaction_manager=tm)
    mine = conn.setstate
    conn.setstate = mine  # someone else's instance attribute: put back
    request = watched()
    attempt = request.__dict__[collect.ATTEMPT]
    collect.opened(event(request, conn))
    collect.opened(event(request, conn))  # twice: instrumented once
    conn.root()['top'].child.leaf.value = 2
    other_tm = transaction.TransactionManager(explicit=True)
    other_tm.begin()
    other = dbs.open(transaction_manager=other_tm)
    other.root()['top'].child.leaf.value = 3
    other_tm.commit()
    other.close()
    with pytest.raises(ConflictError) as info:
        tm.commit()
    tm.abort()
    collect.ended(request, info.value)
    collect.will_close(event(request, conn))
    collect.will_close(event(request, conn))  # nothing left to do
    assert vars(conn)['setstate'] is mine
    del vars(conn)['setstate']
    main = attempt.databases['']
    assert main.stores == 1 and main.committed is False
    assert attempt.conflict and attempt.ended
    assert attempt.error.startswith('ConflictError')
    assert not attempt.retried  # a DummyRequest: the last attempt
    conn.close()


def test_a_fast_read_with_the_cookie_synced(dbs):
    conn = dbs.open()
    request = watched(cookie='a=1; zeostore_sync=1')
    collect.opened(event(request, conn, kept=True))
    attempt = request.__dict__[collect.ATTEMPT]
    assert attempt.fast and attempt.synced
    collect.will_close(event(request, conn, kept=True))
    conn.close()


def test_rows_are_bounded(dbs, monkeypatch):
    monkeypatch.setattr(collect, 'MAX_ROWS', 2)
    conn = dbs.open()
    conn.cacheMinimize()
    request = watched()
    collect.opened(event(request, conn))
    assert conn.root()['top'].child.leaf.__parent__ is not None
    collect.will_close(event(request, conn))
    main = request.__dict__[collect.ATTEMPT].databases['']
    assert len(main.loaded) == 2 and main.loads_not_shown == 2
    assert main.stores_not_shown == 0
    conn.close()


def test_a_stored_object_gone_from_the_cache_has_no_class(dbs, monkeypatch):
    monkeypatch.setattr(compat, 'cached_object', lambda conn, oid: None)
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = dbs.open(transaction_manager=tm)
    request = watched()
    collect.opened(event(request, conn))
    conn.root()['n'] = 1
    tm.commit()
    collect.will_close(event(request, conn))
    stored = request.__dict__[collect.ATTEMPT].databases[''].stored
    assert [(r.class_name, r.oid) for r in stored] == [('?', f'{0:016x}')]
    conn.close()


def test_unwatched_requests_and_stray_calls_do_nothing(dbs):
    request = DummyRequest()
    collect.opened(event(request, object()))
    collect.will_close(event(request, object()))
    collect.ended(request, ValueError('x'))
    record = collect.DatabaseActivity('')
    collect._tpc_ended(record, False)  # no tpc_begin: nothing to time
    assert record.committed is None


def test_the_response_says_whether_it_sets_the_sync_cookie():
    request = watched()
    response = SimpleNamespace(
        status_int=200,
        headers=SimpleNamespace(getall=lambda name: ['zeostore_sync=1']),
    )
    request.response_callbacks[0](request, response)
    attempt = request.__dict__[collect.ATTEMPT]
    assert attempt.sets_cookie and attempt.status == 200


def test_the_winner_is_the_last_attempt_not_retried():
    activity = collect.Activity([
        collect.Attempt(0, 'POST', '/', ended=True, retried=True,
                        conflict=True),
        collect.Attempt(1, 'POST', '/', ended=True),
    ])
    assert activity.winner is activity.attempts[1]
    assert activity.conflicts == 1
    assert collect.Activity([collect.Attempt(0, 'GET', '/')]).winner is None


class Raising:
    _p_changed = False

    @property
    def __parent__(self):
        raise RuntimeError('app code')


class Ghostly(Node):
    pass


@pytest.mark.parametrize('make, path', [
    (lambda: Node(), '/'),
    (lambda: Node(Node(), 'a'), '/a'),
    (lambda: Node(Node(Node(), 'a b'), 'c'), '/a%20b/c'),
    (lambda: PersistentMapping(), ''),  # no __parent__: not a resource
    (lambda: Raising(), ''),
])
def test_path_of(make, path):
    assert collect.path_of(make()) == path


def test_path_of_stops_at_a_ghost_and_a_cycle(dbs):
    conn = dbs.open()
    child = conn.root()['top'].child
    child.__parent__._p_deactivate()  # top is a ghost again
    assert child.__parent__._p_changed is None
    assert collect.path_of(child) == ''
    assert child.__parent__._p_changed is None  # and was not loaded
    conn.close()
    a = Node()
    a.__parent__ = a
    assert collect.path_of(a) == ''
    assert collect.oid_hex(a) == ''


# -- compat canaries (ZODB 6.4, persistent 6.9) ------------------------------


def test_stored_oids_are_read_between_commit_and_tpc_finish(dbs):
    tm = transaction.TransactionManager(explicit=True)
    txn = tm.begin()
    conn = dbs.open(transaction_manager=tm)
    root = conn.root()
    root['top'].child.value = 5
    root['top'].child.more = Node()
    conn.tpc_begin(txn)  # resets what the last commit left
    assert compat.stored_oids(conn) == []
    conn.commit(txn)
    oids = compat.stored_oids(conn)
    assert oids[0] == root['top'].child._p_oid
    assert root['top'].child.more._p_oid in oids and len(oids) == 2
    conn.tpc_vote(txn)
    conn.tpc_finish(txn)
    tm.abort()
    conn.close()


def test_the_cache_is_read_without_loading(dbs):
    conn = dbs.open()
    conn.cacheMinimize()
    top = conn.root()['top']
    objects, non_ghosts = compat.cache_counts(conn)
    assert objects >= 2 and non_ghosts >= 1
    assert compat.cached_object(conn, top._p_oid) is top
    assert top._p_changed is None  # still a ghost
    assert compat.cached_object(conn, b'\0' * 7 + b'\x99') is None
    assert compat.cached_object(SimpleNamespace(), top._p_oid) is None
    conn.close()
