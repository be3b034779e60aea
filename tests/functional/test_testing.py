"""The pytest plugin (:mod:`pyramid_zeostore.testing`) on a real server,
used as a user's tests use it: on the ready app, and on an app of an ini.

This module runs on the plugin's own session-wide ``zeo_server`` (a
``runzeo`` on a Unix socket, the assignment below), not on this suite's
per-test one from tests/conftest.py: ``zodb_uri`` is a DemoStorage over
it, what a test commits stays in that test, ``testapp`` requests are
real transactions the test sees (and the other way round), a failing
request leaves nothing behind, ``dummy_request`` shares the database,
and an ini's app runs on the test's database. ``running_zeo_server`` and
:class:`ZEOProcess` start and stop real ``runzeo`` processes (one that
does not answer in time, one that outlives SIGTERM). What needs no
server is in tests/unit/test_testing.py; tests/functional/test_plugin.py
runs the plugin in pytest sessions of their own (the ``zeostore_ini``
option, the server's life).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import transaction
from persistent.mapping import PersistentMapping
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.threadlocal import get_current_registry, get_current_request
from webtest import TestApp

import pyramid_zeostore
from pyramid_zeostore import Folder, get_connection, testing
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.interfaces import IDatabases
from tests.unit.test_testing import INI

#: The plugin's session-wide server for this module (overriding
#: tests/conftest.py's per-test one).
zeo_server = testing.zeo_server
#: The ready app's writes go as ``app``'s user (Basic, JSON bodies).
CSRF: dict = {}


@pytest.fixture
def app(testapp, zodb_db):
    """``testapp`` as a user of the ready app who may write."""
    add_user(zodb_db, 'editor', 'pw-1234', 'editor')
    testapp.authorization = ('Basic', ('editor', 'pw-1234'))
    return testapp


# -- the server and the database ----------------------------------------------


def test_zeo_server_runs(zeo_server):
    assert isinstance(zeo_server, testing.ZEOProcess)
    assert zeo_server.proc.poll() is None
    assert len(zeo_server.sock) < 100  # room under the AF_UNIX limit
    assert os.path.basename(zeo_server.dir).startswith('pytest-zeo-')


def test_zodb_uri_is_a_demo_storage_over_the_server(zodb_uri, zeo_server):
    assert zodb_uri == (
        f'demo:(zeo://{zeo_server.sock}?read_only=1)/(memory://)'
    )


def test_commits_stay_in_the_test(zodb_root, zodb_conn, zeo_server):
    zodb_root['mine'] = 1
    zodb_conn.transaction_manager.commit()
    # The server's own database never saw it.
    import ZODB

    from pyramid_zeostore.settings import resolve

    factory, _ = resolve('zodb_uri', zeo_server.uri())
    db = ZODB.DB(factory())
    try:
        conn = db.open()
        assert 'mine' not in conn.root()
        conn.close()
    finally:
        db.close()


def test_zodb_fixtures_fit_together(zodb_databases, zodb_db, zodb_conn,
                                    zodb_root):
    assert zodb_databases.get('') is zodb_db
    assert zodb_conn.db() is zodb_db
    assert isinstance(zodb_root, PersistentMapping)
    assert zodb_root._p_jar is zodb_conn
    tm = zodb_conn.transaction_manager
    assert tm is not transaction.manager and not tm.explicit


def test_app_settings_without_an_ini(app_settings, zodb_uri, tmp_path):
    assert app_settings == {
        'pyramid.includes': f'{__name__}.failing_views',  # this module's
        'zodb_uri': zodb_uri,
        'zeostore.autostart': 'false',
        'zeostore.check_on_startup': 'false',
        'zeostore.lock_file': str(tmp_path / 'zeostore.lock'),
    }


# -- testapp ------------------------------------------------------------------


def test_the_root_exists_before_the_first_request(testapp, zodb_root):
    assert isinstance(zodb_root['app_root'], Folder)


def test_what_a_request_commits_the_test_sees(app, zodb_root):
    res = app.post_json(
        '/', {'name': 'doc', 'attributes': {'n': 1}}, headers=CSRF,
        status=201,
    )
    assert res.json['path'] == '/doc'
    assert zodb_root['app_root']['doc'].n == 1
    app.patch_json('/doc', {'n': 2}, headers=CSRF, status=200)
    assert zodb_root['app_root']['doc'].n == 2  # the same object, synced


def test_what_the_test_commits_a_request_sees(app, zodb_root, zodb_conn):
    zodb_root['app_root']['prepared'] = Folder()
    zodb_conn.transaction_manager.commit()
    assert app.get('/?format=json').json['items'] == [
        {'name': 'prepared', 'type': 'folder', 'path': '/prepared'}
    ]


def test_a_change_not_committed_is_refused_before_a_request(app, zodb_root):
    zodb_root['app_root'].title = 'not committed'
    with pytest.raises(AssertionError, match='changed object.*not committed'):
        app.get('/')


def failing_views(config):
    """``pyramid.includes``: views that write, then fail."""

    def write_then_400(context, request):
        context.touched = True
        context.add('orphan', Folder())
        raise HTTPBadRequest('refused after writing')

    def write_then_crash(context, request):
        context.touched = True
        raise RuntimeError('crashed after writing')

    config.add_view(write_then_400, name='fail', request_method='POST',
                    permission=NO_PERMISSION_REQUIRED)
    config.add_view(write_then_crash, name='crash', request_method='POST',
                    permission=NO_PERMISSION_REQUIRED)


@pytest.fixture
def app_settings(app_settings):
    """This module's apps include the failing views."""
    app_settings['pyramid.includes'] = f'{__name__}.failing_views'
    return app_settings


def test_a_failing_request_leaves_nothing_behind(app, zodb_root):
    app.post_json('/@@fail', {}, status=400)
    root = zodb_root['app_root']
    assert not hasattr(root, 'touched') and 'orphan' not in root

    with pytest.raises(RuntimeError, match='crashed after writing'):
        app.post_json('/@@crash', {})
    assert not hasattr(zodb_root['app_root'], 'touched')
    app.get('/', status=200)  # and the app goes on


def test_each_test_starts_afresh(zodb_root):
    # The tests above committed 'doc', 'prepared': not here.
    assert 'app_root' not in zodb_root


def test_wsgi_app_uses_the_test_databases(wsgi_app, zodb_databases):
    assert wsgi_app.registry.getUtility(IDatabases) is zodb_databases
    assert zodb_databases.bootstrapped


class TestAnotherApp:
    """``app_factory`` overridden, as a user's conftest.py does."""

    @pytest.fixture
    def app_factory(self):
        def main(global_config, **settings):
            with Configurator(settings=settings) as config:
                config.include('pyramid_zeostore')
                config.set_zodb_appmaker(self.appmaker)
                config.add_view(
                    lambda context, request: {'keys': sorted(context)},
                    renderer='json',
                )
            return config.make_wsgi_app()

        return main

    @staticmethod
    def appmaker(zodb_root):
        return zodb_root.setdefault('custom', PersistentMapping(a=1))

    def test_its_appmaker_made_the_root(self, testapp, zodb_root):
        assert testapp.get('/').json == {'keys': ['a']}
        assert zodb_root['custom'] == {'a': 1}


class TestNotARouter:
    @pytest.fixture
    def app_factory(self):
        def main(global_config, **settings):
            return lambda environ, start_response: []

        return main

    def test_wsgi_app_needs_a_router(self, request):
        with pytest.raises(TypeError, match='not a Pyramid router'):
            request.getfixturevalue('wsgi_app')


class TestWithoutAnAppmaker:
    @pytest.fixture
    def app_factory(self):
        def main(global_config, **settings):
            config = Configurator(settings=settings)
            config.add_view(lambda request: 'plain', renderer='string')
            return config.make_wsgi_app()

        return main

    def test_no_root_is_made(self, testapp, zodb_root, zodb_databases):
        assert testapp.get('/').text == 'plain'
        assert not zodb_databases.bootstrapped
        assert 'app_root' not in zodb_root


# -- dummy_request ------------------------------------------------------------


def test_dummy_request(dummy_request, wsgi_app, zodb_conn, zodb_root):
    assert dummy_request.registry is wsgi_app.registry
    assert dummy_request.tm is zodb_conn.transaction_manager
    assert get_connection(dummy_request) is zodb_conn
    assert dummy_request.zodb_conn is zodb_conn
    assert dummy_request.root is zodb_root['app_root']
    assert dummy_request.context is dummy_request.root
    assert get_current_request() is dummy_request
    assert get_current_registry() is wsgi_app.registry


def test_what_a_view_does_is_committed_by_request_tm(dummy_request, zodb_db):
    dummy_request.root.add('new', Folder())
    dummy_request.tm.commit()
    conn = zodb_db.open()
    try:
        assert 'new' in conn.root()['app_root']
    finally:
        conn.transaction_manager.abort()
        conn.close()


def test_dummy_request_and_testapp_share_the_database(dummy_request,
                                                      testapp):
    dummy_request.root.add('shared', Folder())
    dummy_request.tm.commit()
    testapp.get('/shared', status=200)


# -- ini ----------------------------------------------------------------------


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / 'app.ini'
    path.write_text(INI)
    return path


class TestIni:
    """The ``zeostore_ini`` app, as tests/functional/test_plugin.py
    configures it for real."""

    @pytest.fixture
    def _zeostore_ini(self, ini):
        return testing.load_ini_app(ini.name, str(ini.parent))

    def test_settings_are_the_ini_app_s_on_the_test_database(
        self, app_settings, zodb_uri, ini
    ):
        here = str(ini.parent)
        assert app_settings['zodb_uri'] == zodb_uri
        assert app_settings['zodb_uri.other'] == 'memory://'
        assert app_settings['zodb_uri.third'] == 'memory://'
        assert 'zodbconn.uri.third' not in app_settings
        assert app_settings['zeostore.autostart'] == 'false'
        assert app_settings['zeostore.check_on_startup'] == 'false'
        assert app_settings['zeostore.zeo_conf'] == f'{here}/zeo.conf'
        assert app_settings['zeostore.health_path'] == '/@@ini-health'
        assert app_settings['pyramid.includes'].endswith('.failing_views')
        assert not os.path.exists(ini.parent / 'var')

    def test_app_of_the_ini(self, app_factory, testapp, zodb_conn):
        assert app_factory is pyramid_zeostore.main
        health = testapp.get('/@@ini-health').json
        assert [db['name'] for db in health['databases']] == [
            '', 'other', 'third',
        ]
        assert zodb_conn.get_connection('other').root() == {}


# -- helpers ------------------------------------------------------------------


def test_running_zeo_server_stops_it(tmp_path):
    with testing.running_zeo_server(tmp_path / 'z') as server:
        assert server.proc.poll() is None
        proc = server.proc
    assert server.proc is None and proc.poll() is not None


def test_sync_ends_a_clean_transaction(zodb_db):
    tm = transaction.TransactionManager()
    conn = zodb_db.open(transaction_manager=tm)
    other = zodb_db.open()
    try:
        root = conn.root()
        other.root()['seen'] = True
        other.transaction_manager.commit()
        assert 'seen' not in root  # its snapshot predates the commit
        testing.sync(conn)
        assert root['seen'] is True
    finally:
        other.close()
        tm.abort()
        conn.close()


def test_webtest_is_what_testapp_is(testapp):
    assert isinstance(testapp, TestApp)


def test_zeo_process_that_does_not_answer_in_time(tmp_path):
    server = testing.ZEOProcess(tmp_path / 'z')
    with pytest.raises(RuntimeError, match='runzeo did not start'):
        server.start(timeout=0)
    assert server.proc is None  # stopped


def test_zeo_process_killed_when_it_outlives_the_wait(tmp_path):
    server = testing.ZEOProcess(tmp_path / 'z')
    server.start()
    proc = server.proc
    real_wait = proc.wait
    waits = []

    def wait(timeout=None):
        waits.append(timeout)
        if len(waits) == 1:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        return real_wait(timeout)

    proc.wait = wait
    server.stop(signal.SIGSTOP)  # paused, not ended: only SIGKILL ends it
    assert waits == [15, 5]
    assert proc.returncode == -signal.SIGKILL
    assert server.proc is None


def test_testapp_without_webtest(request, monkeypatch):
    monkeypatch.setitem(sys.modules, 'webtest', None)
    with pytest.raises(pytest.fail.Exception, match='pip install WebTest'):
        request.getfixturevalue('testapp')
