"""The health check and the storage probe: WebTest over real in-process
storages."""

from __future__ import annotations

import pytest
import transaction
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from pyramid_zeostore import get_databases, parse_settings
from pyramid_zeostore.databases import close_all
from pyramid_zeostore.display import address_json
from pyramid_zeostore.probe import check, last_transaction


def make_app(**settings):
    settings = {
        'zodb_uri': 'memory://',
        'zeostore.check_on_startup': 'false',
        **settings,
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_zeostore')
        config.include('pyramid_zeostore.app')
    return TestApp(config.make_wsgi_app()), config.registry


@pytest.fixture(autouse=True)
def closed():
    yield
    close_all()


def test_all_up(tmp_path):
    app, registry = make_app(
        zodb_uri=f'file://{tmp_path}/Data.fs',
        **{'zodb_uri.cat': 'memory://cat'},
    )
    res = app.get('/@@health')
    assert res.status_int == 200
    assert res.headers['Cache-Control'] == 'no-store'
    body = res.json
    assert body['status'] == 'ok' and body['down'] == []
    primary, cat = body['databases']
    assert (primary['name'], primary['key']) == ('', 'zodb_uri')
    assert primary['connected'] and primary['error'] is None
    assert primary['ping_ms'] is None  # not a ZEO client: no round trip
    # the root was written when the database was made
    assert primary['last_transaction'].endswith('+00:00')
    assert primary['address'] == f'file://{tmp_path}/Data.fs'
    assert (cat['name'], cat['key']) == ('cat', 'zodb_uri.cat')
    assert app.head('/@@health').status_int == 200


def test_the_health_route_never_writes(tmp_path):
    app, registry = make_app(zodb_uri=f'file://{tmp_path}/Data.fs')
    first = app.get('/@@health').json['databases'][0]['last_transaction']
    # the app root is bootstrapped by the first traversal, not by health
    db = get_databases(registry).get('')
    assert 'app_root' not in db.open().root()
    assert app.get('/@@health').json['databases'][0][
        'last_transaction'
    ] == first
    app.get('/', headers={'Accept': 'application/json'})
    assert app.get('/@@health').json['databases'][0][
        'last_transaction'
    ] > first
    transaction.abort()


def test_a_database_that_fails_is_named(monkeypatch):
    app, registry = make_app(**{'zodb_uri.cat': 'memory://cat'})
    databases = get_databases(registry)
    real = databases.wait_connected
    monkeypatch.setattr(
        databases, 'wait_connected',
        lambda name, deadline: name != 'cat' and real(name, deadline),
    )
    res = app.get('/@@health', status=503)
    assert res.headers['Retry-After'] == '5'
    assert res.json['status'] == 'unavailable'
    assert res.json['down'] == ['cat']
    cat = res.json['databases'][1]
    assert not cat['connected']
    assert "database 'cat' is unavailable" in cat['error']


def test_an_unexpected_error_is_reported_not_raised(monkeypatch):
    app, registry = make_app()
    db = get_databases(registry).get('')
    monkeypatch.setattr(
        db, 'lastTransaction', lambda: (_ for _ in ()).throw(OSError('x'))
    )
    res = app.get('/@@health', status=503)
    assert res.json['databases'][0]['error'] == 'OSError: x'


def test_path_setting():
    app, _ = make_app(**{'zeostore.health_path': '/_status'})
    assert app.get('/_status').json['status'] == 'ok'
    app.get('/@@health', status=404)
    for off in ('off', '', 'false'):
        app, _ = make_app(**{'zeostore.health_path': off})
        app.get('/@@health', status=404)
    for bad in ('health', '/a b'):
        with pytest.raises(ConfigurationError, match='health_path'):
            parse_settings({'zodb_uri': 'memory://',
                            'zeostore.health_path': bad})


def test_the_check_is_no_route_and_answers_only_reads():
    # A route would make a traversal app match every request against it.
    from pyramid.interfaces import IRoutesMapper

    app, registry = make_app()
    mapper = registry.queryUtility(IRoutesMapper)
    assert mapper is None or not mapper.get_routes()
    # other methods go the normal way: the ready app has no such view
    app.post('/@@health', status=404)
    app.get('/@@health/x', status=404)


def test_the_path_is_compared_as_the_server_gives_it():
    app, _ = make_app(**{'zeostore.health_path': '/santé'})
    assert app.get('/sant%C3%A9').json['status'] == 'ok'


def test_addresses_in_json():
    assert address_json('/var/zeo.sock') == '/var/zeo.sock'
    assert address_json(('127.0.0.1', 8100)) == '127.0.0.1:8100'
    assert address_json([('a', 1), '/s']) == ['a:1', '/s']
    assert address_json('postgres://u:secret@db:5432/zodb?x=1') == (
        'postgres://u:***@db:5432/zodb?x=1'
    )
    assert address_json(('::1', 8100)) == '[::1]:8100'


def test_check_is_bounded_for_a_registry_that_fails_to_open(monkeypatch):
    from pyramid_zeostore import Databases, DatabaseUnavailable

    databases = Databases(parse_settings({'zodb_uri': 'memory://'}).databases)

    def fail(name=''):
        raise DatabaseUnavailable(name, 'nowhere', 0.1)

    monkeypatch.setattr(databases, 'get', fail)
    (health,) = check(databases, 0.1)
    assert not health.connected and 'nowhere' in health.error


def test_an_empty_storage_has_nolast_transaction():
    from ZODB.utils import z64

    class DB:
        storage = object()

        @staticmethod
        def lastTransaction():
            return z64

    assert last_transaction(DB()) is None


def test_a_sql_server_that_does_not_answer_is_down_within_the_bound():
    """RelStorage (an IMVCCStorage) asks its server for the last
    transaction; one that does not answer is reported down, not waited
    for (the query ends in its own thread when it answers)."""
    import threading

    from ZODB.interfaces import IMVCCStorage
    from zope.interface import directlyProvides

    from pyramid_zeostore import Databases

    answer = threading.Event()
    asked = []

    class Instance:
        def lastTransaction(self):
            asked.append(1)
            answer.wait(30)
            return b'\0' * 8

        def release(self):
            pass

    class Storage:
        def new_instance(self):
            return Instance()

    storage = Storage()
    directlyProvides(storage, IMVCCStorage)
    db = type('DB', (), {'storage': storage})()
    databases = Databases(parse_settings({'zodb_uri': 'memory://'}).databases)
    databases.get = lambda name='': db
    databases.wait_connected = lambda name, deadline: True
    try:
        (health,) = check(databases, 0.05)
    finally:
        answer.set()
    assert asked == [1]
    assert not health.connected
    assert health.error.startswith(
        'TimeoutError: the database server did not answer within 0.0'
    )


def test_a_probe_within_its_bound_gives_the_answer_or_the_error():
    from pyramid_zeostore.probe import within

    assert within(lambda: 42, 5.0) == 42
    with pytest.raises(KeyError):
        within(lambda: {}['x'], 5.0)
