"""The tweens (fast reads, the sync cookie) and the request class, over a
real FileStorage (WebTest)."""

from __future__ import annotations

import io
import logging
import threading

import pytest
import transaction
from pyramid.config import Configurator
from pyramid.interfaces import IRequestExtensions, IRequestFactory
from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED
from webtest import TestApp
from ZODB.POSException import ConflictError

from pyramid_zeostore import compat, get_connection, get_databases
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.connection import ReadSlots
from pyramid_zeostore.databases import close_all
from pyramid_zeostore.environ import FAST
from pyramid_zeostore.request import ZeostoreRequest

#: The test views below write without the ready app's checks (they test
#: the tweens); the ready app's own views get a user's Basic credentials.
OPEN = {'permission': NO_PERMISSION_REQUIRED, 'cross_site': False}
POST: dict = {}


def seen(context, request):
    """What the view saw: its connection, manager and the counter."""
    conn = get_connection(request)
    return {
        'conn': id(conn),
        'tm': id(request.tm),
        'fast': FAST in request.environ,
        'hits': getattr(context, 'hits', 0),
        'joined': int(compat.has_joined(request.tm.get())),
    }


def hit(context, request):
    context.hits = getattr(context, 'hits', 0) + 1
    return {'hits': context.hits, 'attempt': request.environ['retry.attempt']}


def fail(context, request):
    get_connection(request)
    raise LookupError('read failed')


def sub(context, request):
    inner = Request.blank('/@@seen')
    inner.registry = request.registry
    tweens = request.params.get('tweens') == 'yes'
    response = request.invoke_subrequest(inner, use_tweens=tweens)
    return {'inner': response.json, 'outer': seen(context, request)}


def slots_of(app):
    """The read slots of ``app``'s read tween (the outermost)."""
    return app.app.handle_request.slots


def file_settings(tmp_path, **settings):
    """An app's settings over a FileStorage in ``tmp_path``."""
    return {
        'zodb_uri': f'file://{tmp_path}/Data.fs',
        'zeostore.check_on_startup': 'false',
        **settings,
    }


def make_app(tmp_path, factory=None, **settings):
    settings = file_settings(tmp_path, **settings)
    config = Configurator(settings=settings)
    if factory is not None:
        config.set_request_factory(factory)
    config.include('pyramid_zeostore')
    config.include('pyramid_zeostore.app')
    config.add_view(seen, name='seen', renderer='json')
    config.add_view(hit, name='hit', renderer='json', **OPEN)
    config.add_view(fail, name='fail', **OPEN)
    config.add_view(sub, name='sub', renderer='json')
    app = TestApp(config.make_wsgi_app())
    add_user(get_databases(config.registry).get(''), 't', 'secret')
    app.authorization = ('Basic', ('t', 'secret'))
    return app, config.registry


@pytest.fixture(autouse=True)
def closed():
    yield
    close_all()


def test_reads_reuse_the_threads_connection_and_never_commit(tmp_path):
    app, registry = make_app(tmp_path)
    first = app.get('/@@seen').json
    second = app.get('/@@seen').json
    assert first['fast'] and second['fast']
    assert first['conn'] == second['conn'] and first['tm'] == second['tm']
    assert second['joined'] == 0
    db = get_databases(registry).get()
    # the read connection stays out of the pool, which grew to match
    assert len(db.pool.all) - len(db.pool.available) == 1
    assert db.getPoolSize() == 7 + 1
    # a write takes a pooled connection and its own manager
    app.post('/@@hit', **POST)
    assert len(db.pool.all) - len(db.pool.available) == 1
    # and the next read (on the kept connection) sees it
    assert app.get('/@@seen').json['hits'] == 1


def test_each_thread_has_its_own(tmp_path):
    app, registry = make_app(tmp_path)
    found = []

    def read():
        found.append(app.get('/@@seen').json['conn'])

    read()
    thread = threading.Thread(target=read)
    thread.start()
    thread.join(30)
    assert len(set(found)) == 2


def test_a_read_that_writes_is_run_again_and_committed(tmp_path, caplog):
    app, registry = make_app(tmp_path)
    with caplog.at_level(logging.WARNING, 'pyramid_zeostore.tweens'):
        res = app.get('/@@hit')
        app.get('/@@hit')
    # first attempt on the read path (aborted), then the committing one
    assert res.json == {'hits': 1, 'attempt': 1}
    assert app.get('/@@seen').json['hits'] == 2
    warnings = [r.message for r in caplog.records]
    assert len(warnings) == 1  # once per view and process
    assert 'GET /@@hit' in warnings[0] and "view 'hit'" in warnings[0]
    assert 'zeostore.fast_reads' in warnings[0]


def test_with_one_attempt_a_read_that_writes_commits_at_once(
    tmp_path, caplog
):
    app, registry = make_app(tmp_path, **{'retry.attempts': 1})
    with caplog.at_level(logging.WARNING, 'pyramid_zeostore.tweens'):
        assert app.get('/@@hit').json == {'hits': 1, 'attempt': 0}
    assert app.get('/@@seen').json['hits'] == 1
    assert 'committed' in caplog.text


def test_a_failing_read_frees_the_slot(tmp_path):
    app, registry = make_app(tmp_path)
    with pytest.raises(LookupError):
        app.get('/@@fail')
    slot = slots_of(app).get()
    assert not slot.busy
    assert app.get('/@@seen').json['fast']


def test_a_subrequest_of_a_read_goes_the_full_way(tmp_path):
    app, registry = make_app(tmp_path)
    res = app.get('/@@sub?tweens=yes').json
    assert res['outer']['fast'] and not res['inner']['fast']
    assert res['inner']['conn'] != res['outer']['conn']
    # without tweens it is not routed: it has request.tm (as Pyramid's
    # request extensions would give it), the thread's manager, as outside
    # the router, and a pooled connection of its own
    res = app.get('/@@sub?tweens=no').json
    assert res['inner']['tm'] == id(transaction.manager)
    assert not res['inner']['fast']
    assert res['inner']['conn'] != res['outer']['conn']
    assert compat.current_transaction(transaction.manager) is None  # ended


def test_fast_reads_can_be_turned_off(tmp_path):
    app, registry = make_app(tmp_path, **{'zeostore.fast_reads': 'false'})
    first = app.get('/@@seen').json
    assert not first['fast']
    db = get_databases(registry).get()
    assert len(db.pool.all) == len(db.pool.available)  # returned
    assert app.get('/@@hit').json == {'hits': 1, 'attempt': 0}


def test_an_apps_own_manager_hook_turns_fast_reads_off(tmp_path):
    app, registry = make_app(
        tmp_path, **{'tm.manager_hook': 'pyramid_tm.explicit_manager'}
    )
    assert app.get('/@@seen').json['fast']  # the same as ours
    get_databases(registry).close()
    app, registry = make_app(
        tmp_path, **{'tm.manager_hook': 'tests.unit.test_tweens.own_hook'}
    )
    assert not app.get('/@@seen').json['fast']


def own_hook(request):
    return transaction.TransactionManager(explicit=True)


def test_slots_after_a_fork_and_a_reopen(tmp_path, monkeypatch):
    app, registry = make_app(tmp_path)
    databases = get_databases(registry)
    conn = app.get('/@@seen').json['conn']
    slots: ReadSlots = slots_of(app)
    slot = slots.get()
    assert slots.get() is slot
    monkeypatch.setattr('os.getpid', lambda: slot.pid + 1)
    assert slots.get() is not slot  # a forked child starts afresh
    monkeypatch.undo()
    slots.slot = slot
    databases.close()  # reopened on the next request: a new connection
    assert app.get('/@@seen').json['conn'] != conn


def test_request_attributes_live_on_the_class(tmp_path):
    app, registry = make_app(tmp_path)
    factory = registry.getUtility(IRequestFactory)
    assert issubclass(factory, ZeostoreRequest)
    assert 'tm' in vars(factory) and 'zodb_conn' in vars(factory)
    # Nothing left for the router to apply to each request: none at all.
    assert registry.queryUtility(IRequestExtensions) is None
    request = factory.blank('/')
    request.registry = registry
    assert request.tm is request.tm  # reified under its own name


class AppRequest(Request):
    def greet(self):
        return 'hi'


def test_an_apps_request_class_is_extended(tmp_path):
    app, registry = make_app(tmp_path, factory=AppRequest)
    factory = registry.getUtility(IRequestFactory)
    assert issubclass(factory, AppRequest) and 'tm' in vars(factory)
    assert app.get('/@@seen').json['fast']


def test_a_factory_function_keeps_the_extensions(tmp_path):
    app, registry = make_app(tmp_path, factory=lambda environ: Request(
        environ
    ))
    extensions = registry.getUtility(IRequestExtensions)
    assert 'tm' in extensions.descriptors
    assert app.get('/@@seen').status_int == 200


def test_an_apps_own_tm_method_is_left_alone(tmp_path):
    def my_tm(request):
        return transaction.TransactionManager(explicit=True)

    with Configurator(settings=file_settings(tmp_path)) as config:
        config.include('pyramid_zeostore')
        config.add_request_method(my_tm, 'tm', reify=True)
    extensions = config.registry.getUtility(IRequestExtensions)
    assert 'tm' in extensions.descriptors  # the app's, kept
    assert 'zodb_conn' not in extensions.descriptors


def test_an_apps_own_request_method_keeps_the_extensions(tmp_path):
    with Configurator(settings=file_settings(tmp_path)) as config:
        config.include('pyramid_zeostore')
        config.add_request_method(lambda request: 'hello', 'hello')
        config.add_view(lambda request: {'said': request.hello()},
                        name='hello', renderer='json')
    extensions = config.registry.getUtility(IRequestExtensions)
    assert 'hello' in extensions.methods
    assert 'tm' not in extensions.descriptors
    app = TestApp(config.make_wsgi_app())
    assert app.get('/@@hello').json == {'said': 'hello'}


def test_items_written_are_read_back(tmp_path):
    app, registry = make_app(tmp_path)
    for n in range(3):
        app.post_json('/', {'name': f'i{n}', 'type': 'item',
                            'attributes': {'n': n}}, **POST)
    res = app.get('/', headers={'Accept': 'application/json'})
    assert [i['name'] for i in res.json['items']] == ['i0', 'i1', 'i2']
    assert isinstance(Item(), Item)


def test_a_write_marks_the_client_and_its_next_reads_sync(
    tmp_path, monkeypatch
):
    app, registry = make_app(tmp_path)
    databases = get_databases(registry)
    synced = []
    monkeypatch.setattr(databases, 'sync', synced.append)
    app.get('/@@seen')
    assert synced == []  # no write yet: no round trip
    res = app.post('/@@hit', **POST)
    cookie = res.headers['Set-Cookie']
    assert cookie.startswith('zeostore_sync=1;')
    assert 'Max-Age=10' in cookie and 'HttpOnly' in cookie
    assert 'Path=/;' in cookie and 'SameSite=Lax' in cookie
    app.get('/@@seen')
    assert synced == ['']  # the cookie came back: synced first
    app.reset()
    app.get('/@@seen')
    assert synced == ['']
    # a failed write marks nothing
    res = app.post('/@@nosuchview', status=404, **POST)
    assert 'zeostore_sync' not in res.headers.get('Set-Cookie', '')


def test_read_your_writes_can_be_turned_off(tmp_path):
    app, registry = make_app(
        tmp_path, **{'zeostore.read_your_writes': 'false'}
    )
    res = app.post('/@@hit', **POST)
    assert 'zeostore_sync' not in res.headers.get('Set-Cookie', '')


def test_a_route_view_that_writes_is_named_by_its_route(tmp_path, caplog):
    with Configurator(settings=file_settings(tmp_path)) as config:
        config.include('pyramid_zeostore')
        config.add_route('bump', '/bump')
        config.add_view(bump, route_name='bump', renderer='json')
    app = TestApp(config.make_wsgi_app())
    with caplog.at_level(logging.WARNING, 'pyramid_zeostore.tweens'):
        assert app.get('/bump').json == 1
    assert "GET /bump, route 'bump'" in caplog.text


def bump(request):
    root = get_connection(request).root()
    root['bumps'] = root.get('bumps', 0) + 1
    return root['bumps']


def test_an_app_that_brings_both_attributes_keeps_its_factory(tmp_path):
    with Configurator(settings=file_settings(tmp_path)) as config:
        config.include('pyramid_zeostore')
        config.add_request_method(own_hook, 'tm', reify=True)
        config.add_request_method(own_hook, 'zodb_conn', reify=True)
    assert config.registry.queryUtility(IRequestFactory) is None


# -- bodies: what pyramid_retry's make_body_seekable costs ------------------


class Unreadable(io.RawIOBase):
    """A server's input that must not be read."""

    def readinto(self, buffer):
        raise AssertionError('the input was read')


def _environ(**extra):
    environ = Request.blank('/').environ
    environ.pop('CONTENT_LENGTH', None)
    environ.update({'wsgi.input_terminated': True, **extra})
    return environ


def test_a_request_without_a_body_is_made_seekable_without_reading():
    request = ZeostoreRequest(_environ(**{'wsgi.input': Unreadable()}))
    request.make_body_seekable()
    assert request.body == b'' and request.content_length == 0
    assert request.is_body_seekable
    request.make_body_seekable()  # the next attempt: rewound
    assert request.body == b''


@pytest.mark.parametrize('headers', [
    {'CONTENT_LENGTH': '5'},
    {'HTTP_TRANSFER_ENCODING': 'chunked'},
])
def test_a_request_with_a_body_is_copied_as_webob_does(headers):
    environ = _environ(**{'wsgi.input': io.BytesIO(b'hello'), **headers})
    request = ZeostoreRequest(environ)
    request.make_body_seekable()
    assert request.body == b'hello'
    request.make_body_seekable()
    assert request.body_file.read() == b'hello'


def test_an_apps_request_class_skips_the_read_too(tmp_path):
    app, registry = make_app(tmp_path, factory=AppRequest)
    factory = registry.getUtility(IRequestFactory)
    request = factory(_environ(**{'wsgi.input': Unreadable()}))
    request.make_body_seekable()
    assert request.body == b'' and request.greet() == 'hi'


def test_a_retried_write_reads_its_body_again(tmp_path):
    app, registry = make_app(tmp_path)
    config = Configurator(registry=registry)
    seen = []

    def echo(request):
        seen.append(request.json_body)
        if len(seen) == 1:
            raise ConflictError()
        return {'ok': True}

    config.add_view(echo, name='echo', request_method='POST',
                    renderer='json', **OPEN)
    config.commit()
    app = TestApp(config.make_wsgi_app())
    assert app.post_json('/@@echo', {'n': 1}, **POST).json == {'ok': True}
    assert seen == [{'n': 1}, {'n': 1}]
