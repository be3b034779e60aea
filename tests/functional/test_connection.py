"""The per-request connection over real ZEO: 1,000 requests, no leaks."""

from __future__ import annotations

import pytest
import transaction
from pyramid.config import Configurator
from pyramid.security import NO_PERMISSION_REQUIRED
from webtest import TestApp
from ZODB.POSException import ConflictError

from pyramid_zeostore import (
    ZODBConnectionClosed,
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
    get_connection,
    get_databases,
)


def boom(context, request):
    request.zodb_conn.root()  # the connection is open, then we fail
    raise ValueError('boom')


def write(context, request):
    context.hits = getattr(context, 'hits', 0) + 1
    return {'hits': context.hits}


def write_then_fail(context, request):
    context.lost = True
    raise ValueError('after write')


def conflict(context, request):
    # Fails the first attempt of every request with a real ConflictError.
    attempt = request.environ['retry.attempt']
    context.tries = getattr(context, 'tries', 0) + 1
    if attempt == 0:
        raise ConflictError('simulated')
    return {'attempt': attempt}


def other_db(context, request):
    conn = get_connection(request, 'catalog')
    conn.root()['seen'] = conn.root().get('seen', 0) + 1
    return {'seen': conn.root()['seen']}


#: These views test the add-on: none of the ready app's checks.
OPEN = {'permission': NO_PERMISSION_REQUIRED, 'cross_site': False}


def make_app(zeo_server, tmp_path, **settings):
    settings = {
        'zodb_uri': zeo_server.uri() + '?connection_pool_size=3',
        'zodb_uri.catalog': f'file://{tmp_path}/catalog.fs',
        **settings,
    }
    config = Configurator(settings=settings)
    config.include('pyramid_zeostore')
    config.include('pyramid_zeostore.app')
    config.add_view(boom, name='boom', **OPEN)
    config.add_view(write, name='write', renderer='json', **OPEN)
    config.add_view(write_then_fail, name='write_then_fail', **OPEN)
    config.add_view(conflict, name='conflict', renderer='json', **OPEN)
    config.add_view(other_db, name='other', renderer='json', **OPEN)
    events = []
    for kind in (
        ZODBConnectionOpened,
        ZODBConnectionWillClose,
        ZODBConnectionClosed,
    ):
        config.add_subscriber(
            lambda e, kind=kind: events.append((kind.__name__, e.conn)), kind
        )
    app = config.make_wsgi_app()
    return app, config.registry, events


def pool_state(db):
    pool = db.pool
    return len(pool.all), len(pool.available), pool.size


def test_a_thousand_requests_leave_no_connection_open(zeo_server, tmp_path):
    app, registry, events = make_app(zeo_server, tmp_path)
    testapp = TestApp(app)
    post: dict = {}
    db = get_databases(registry).get()
    outcomes = {'ok': 0, 'raised': 0}
    for i in range(1000):
        if i % 10 == 3:
            with pytest.raises(ValueError):
                testapp.get('/boom')  # a read, on the thread's connection
            outcomes['raised'] += 1
        elif i % 10 == 7:
            testapp.post('/conflict', **post)  # retried once
            outcomes['ok'] += 1
        elif i % 10 == 9:
            with pytest.raises(ValueError):
                testapp.post('/write_then_fail', **post)
            outcomes['raised'] += 1
        else:
            testapp.post('/write', **post)
            outcomes['ok'] += 1
        total, available, size = pool_state(db)
        assert total <= size, f'pool grew to {total} at request {i}'
        # Only this thread's read connection stays out of the pool.
        reading = 1 if i >= 3 else 0
        assert available == total - reading, (
            f'a connection was left open at {i}'
        )
    assert outcomes == {'ok': 800, 'raised': 200}
    opened = [c for kind, c in events if kind == 'ZODBConnectionOpened']
    closed = [c for kind, c in events if kind == 'ZODBConnectionClosed']
    # one connection per attempt: 1000 requests + 100 retried attempts
    assert len(opened) == len(closed) == 1100
    # what the failing views wrote was aborted; the others committed
    root = testapp.get('/', headers={'Accept': 'application/json'})
    assert len(events) == 3 * 1101
    assert root.json['attributes']['hits'] == 700
    assert 'lost' not in root.json['attributes']
    assert root.json['attributes']['tries'] == 100  # retries commit once
    get_databases(registry).close()


def test_events_come_in_order_with_the_request(zeo_server, tmp_path):
    app, registry, events = make_app(zeo_server, tmp_path)
    testapp = TestApp(app)
    testapp.post('/write')
    assert [kind for kind, _ in events] == [
        'ZODBConnectionOpened',
        'ZODBConnectionWillClose',
        'ZODBConnectionClosed',
    ]
    assert len({id(conn) for _, conn in events}) == 1
    get_databases(registry).close()


def test_named_database_shares_the_transaction(zeo_server, tmp_path):
    app, registry, events = make_app(zeo_server, tmp_path)
    testapp = TestApp(app)
    assert testapp.get('/other').json == {'seen': 1}
    assert testapp.get('/other').json == {'seen': 2}
    databases = get_databases(registry)
    catalog = databases.get('catalog')
    assert catalog.database_name == 'catalog'
    assert databases.get('').databases is catalog.databases
    databases.close()


def test_cross_database_reference(zeo_server, tmp_path):
    from persistent.mapping import PersistentMapping

    app, registry, events = make_app(zeo_server, tmp_path)
    databases = get_databases(registry)
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = databases.get().open(transaction_manager=tm)
    other = conn.get_connection('catalog')
    thing = PersistentMapping(x=1)
    other.add(thing)
    conn.root()['ref'] = thing  # stored in ZEO, lives in catalog.fs
    tm.commit()
    conn.close()
    tm.begin()
    conn = databases.get().open(transaction_manager=tm)
    assert conn.root()['ref']['x'] == 1
    assert conn.root()['ref']._p_jar.db().database_name == 'catalog'
    tm.abort()
    conn.close()
    databases.close()
