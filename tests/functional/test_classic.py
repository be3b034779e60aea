"""Code written for the classic stack, unchanged but for the include.

The shapes that scripts, pshell setups and the Pyramid cookiecutter's test
fixtures take with pyramid_tm + pyramid_zodbconn, run against
:mod:`.classicapp` on a FileStorage and over a real ZEO server:
``pyramid.scripting.prepare`` / ``pyramid.paster.bootstrap`` then the
root, writes committed by ``transaction.commit()`` or
``request.tm.commit()``, a nested ``prepare``, the closer, and the
cookiecutter's ``testapp`` (``tm.active`` + a doomed
``transaction.manager``), ``app_request`` and ``dummy_request``. Outside
the router ``request.tm`` is the thread's ``transaction.manager``
(:func:`pyramid_zeostore.request.manager_hook`).
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import transaction
import webtest
from pyramid.paster import bootstrap, get_app
from pyramid.scripting import prepare
from pyramid.testing import DummyRequest

from pyramid_zeostore import compat, get_connection, get_databases
from pyramid_zeostore.databases import close_all

from . import classicapp
from . import conftest as fconf

INI = """\
[app:main]
use = call:tests.functional.classicapp:main
zodb_uri = {uri}
{extra}
[pshell]
setup = tests.functional.classicapp.pshell_setup
"""


@pytest.fixture(params=['file', 'zeo'])
def uri(request, tmp_path):
    if request.param == 'file':
        return f'file://{tmp_path}/Data.fs'
    return request.getfixturevalue('zeo_server').uri()


@pytest.fixture
def ini(tmp_path, uri):
    path = tmp_path / 'app.ini'
    path.write_text(INI.format(uri=uri, extra=''))
    return str(path)


@pytest.fixture
def app(ini):
    app = get_app(ini)
    yield app
    get_databases(app.registry).close()


@pytest.fixture(autouse=True)
def clean_thread_manager():
    yield
    transaction.manager.abort()
    close_all()


def saved_names(app) -> list:
    """What a new request reads (a connection of its own)."""
    return webtest.TestApp(app).get('/').json['names']


def test_prepare_reads_the_root_it_made_on_an_empty_database(app):
    env = prepare(registry=app.registry)
    try:
        # the root factory ran before any transaction was begun
        root = env['root']
        assert isinstance(root, classicapp.MyModel)
        assert env['request'].tm is transaction.manager
        assert get_connection(env['request']).root()['app_root'] is root
    finally:
        env['closer']()


def test_a_change_committed_by_transaction_commit_is_saved(app):
    env = prepare(registry=app.registry)
    env['root']['global'] = 1
    transaction.commit()
    env['root']['dropped'] = 2  # never committed: the closer aborts it
    env['closer']()
    assert saved_names(app) == ['global']


def test_a_change_committed_by_request_tm_commit_is_saved(app):
    env = prepare(registry=app.registry)
    env['root']['request'] = 1
    env['request'].tm.commit()
    env['closer']()
    assert saved_names(app) == ['request']


def test_with_bootstrap_as_a_context_manager(ini):
    with bootstrap(ini) as env:
        env['root']['script'] = 'ran'
        transaction.commit()
    # a FileStorage is opened by one app at a time (its lock file)
    get_databases(env['registry']).close()
    with bootstrap(ini) as env:  # a second app: the same database
        assert env['root']['script'] == 'ran'
    get_databases(env['registry']).close()


def test_a_nested_prepare(app):
    outer = prepare(registry=app.registry)
    inner = prepare(registry=app.registry)
    try:
        assert inner['request'] is not outer['request']
        # one thread's manager, one connection: the same objects
        assert inner['root'] is outer['root']
        inner['root']['inner'] = 1
        outer['root']['outer'] = 2
    finally:
        inner['closer']()  # neither aborts nor closes the outer's
    transaction.commit()
    outer['root']['late'] = 3
    conn = outer['root']._p_jar
    outer['closer']()  # aborts what was not committed, closes
    assert conn.opened is None
    assert saved_names(app) == ['inner', 'outer']


def test_the_closer_and_exit_close_cleanly(ini, caplog):
    app = get_app(ini)
    with caplog.at_level(logging.WARNING):
        env = prepare(registry=app.registry)
        env['root']['x'] = 1
        env['closer']()
        get_databases(app.registry).close()
    assert caplog.records == []


def test_a_classic_script_in_its_own_process(ini):
    script = (
        'import sys, transaction\n'
        'from pyramid.paster import bootstrap\n'
        'env = bootstrap(sys.argv[1])\n'
        'env["root"]["from_script"] = 42\n'
        'transaction.commit()\n'
        'env["closer"]()\n'
    )
    done = subprocess.run(
        [sys.executable, '-c', script, ini], env=fconf.child_env(),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in done.stderr, done.stderr
    app = get_app(ini)
    try:
        assert saved_names(app) == ['from_script']
    finally:
        get_databases(app.registry).close()


def run_pshell(ini, shell) -> dict:
    """pshell itself on ``ini`` with its [pshell] setup (the classic
    one: ``request.tm.begin()``), ``shell(env)`` as the shell."""
    from pyramid.scripts.pshell import PShellCommand

    seen = {}

    def runner(env, help):
        seen['registry'] = env['registry']
        shell(env)

    command = PShellCommand(['pshell', ini], quiet=True)
    try:
        assert command.run(shell=runner) is None
    finally:
        get_databases(seen['registry']).close()
    return seen


def test_the_classic_pshell_setup(ini):
    seen: dict = {}
    run_pshell(ini, lambda env: seen.update(root=env['root'], tm=env['tm']))
    # on an empty database (pshell runs the root factory before the
    # setup): it starts, on the thread's manager
    assert isinstance(seen['root'], classicapp.MyModel)
    assert seen['tm'] is transaction.manager
    app = get_app(ini)
    webtest.TestApp(app).post('/add', {'name': 'web'}, status=303)
    get_databases(app.registry).close()

    def shell(env):
        env['root']['from_pshell'] = 1
        env['tm'].commit()
    run_pshell(ini, shell)
    app = get_app(ini)
    try:
        assert saved_names(app) == ['from_pshell', 'web']
    finally:
        get_databases(app.registry).close()


def test_pshell_on_an_empty_database_and_the_one_line_fix(tmp_path, uri):
    # The classic root factory creates the root without committing; the
    # classic setup's request.tm.begin() then drops it (as on
    # pyramid_zodbconn): what pshell writes into it is not reachable.
    ini = tmp_path / 'classic.ini'
    ini.write_text(INI.format(uri=uri, extra=''))

    def shell(env):
        env['root']['from_pshell'] = 1
        env['tm'].commit()

    run_pshell(str(ini), shell)
    app = get_app(str(ini))
    try:
        assert saved_names(app) == []
    finally:
        get_databases(app.registry).close()
    # config.set_zodb_appmaker(appmaker) instead: bootstrapped first
    fixed = tmp_path / 'fixed.ini'
    fixed.write_text(INI.format(uri=uri, extra='').replace(
        'classicapp:main', 'classicapp:main_with_appmaker'))
    run_pshell(str(fixed), shell)
    app = get_app(str(fixed))
    try:
        assert saved_names(app) == ['from_pshell']
    finally:
        get_databases(app.registry).close()


# -- the cookiecutter's test fixtures --------------------------------------


@pytest.fixture
def tm():
    tm = transaction.manager
    tm.begin()
    tm.doom()
    yield tm
    tm.abort()


@pytest.fixture
def testapp(app, tm):
    return webtest.TestApp(app, extra_environ={
        'HTTP_HOST': 'example.com',
        'tm.active': True,
        'tm.manager': tm,
    })


def test_testapp_on_a_doomed_manager_commits_nothing(testapp, app):
    assert testapp.get('/').json == {'names': []}
    testapp.post('/add', {'name': 'doc'}, status=303)
    assert testapp.get('/@@visit').json == {'visits': 1}
    assert saved_names(app) == []  # another connection: nothing saved


def test_app_request_from_prepare(app, tm):
    env = prepare(registry=app.registry)
    request = env['request']
    request.host = 'example.com'
    request.tm = tm
    try:
        root = classicapp.root_factory(request)
        root['seen'] = True
        assert get_connection(request).root()['app_root'] is root
    finally:
        env['closer']()
    assert saved_names(app) == []


def test_dummy_request(app, tm):
    request = DummyRequest()
    request.registry = app.registry
    request.host = 'example.com'
    request.tm = tm
    root = classicapp.root_factory(request)
    assert classicapp.home(root, request) == {'names': []}
    root['draft'] = 1
    assert compat.current_transaction(tm).isDoomed()
    conn = get_connection(request)
    tm.abort()
    conn.close()  # a DummyRequest runs no finished callbacks
    assert saved_names(app) == []


# -- pyramid_debugtoolbar ---------------------------------------------------


def test_a_read_that_writes_is_no_uncaught_error_under_the_toolbar(
    tmp_path, caplog
):
    # The toolbar's tween sits above the package's: a retry it saw raised
    # was logged "Uncaught ..." at ERROR, with a traceback.
    path = tmp_path / 'toolbar.ini'
    path.write_text(INI.format(
        uri=f'file://{tmp_path}/Data.fs',
        extra='pyramid.includes = pyramid_debugtoolbar\n',
    ))
    app = get_app(str(path))
    try:
        client = webtest.TestApp(
            app, extra_environ={'REMOTE_ADDR': '127.0.0.1'}
        )
        with caplog.at_level(logging.INFO):
            assert client.get('/@@visit').json == {'visits': 1}
            assert client.get('/@@visit').json == {'visits': 2}
    finally:
        get_databases(app.registry).close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert 'SafeMethodWrote' not in caplog.text
    # the package's own note, once per view
    warned = [r for r in caplog.records
              if r.name == 'pyramid_zeostore.tweens']
    assert len(warned) == 1


def test_a_dummy_request_on_an_explicit_manager_nobody_began(app):
    # An app's own explicit manager (pyramid_tm.explicit_manager), outside
    # the router: the connection begins it instead of failing its first
    # load (a bare AssertionError in ZODB's mvccadapter before).
    tm = transaction.TransactionManager(explicit=True)
    request = DummyRequest()
    request.registry = app.registry
    request.tm = tm
    root = classicapp.root_factory(request)
    assert compat.current_transaction(tm) is not None
    root['explicit'] = 1
    tm.commit()
    get_connection(request).close()
    assert saved_names(app) == ['explicit']
