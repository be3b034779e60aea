"""pytest plugin: a real ZEO server, a database and the app for your tests.

So that a project's tests run its own app, with its own settings, on a
real ZEO server whose database every test starts from afresh and leaves
as it found it (a DemoStorage over it), with no setup of their own.
Installed with pyramid_zeostore (the ``pytest11`` entry point
``pyramid_zeostore``: ``-p no:pyramid_zeostore`` turns it off); set
``zeostore_ini = development.ini`` in ``[tool.pytest.ini_options]`` to
test that ini's app. The fixtures (``zeo_server``, ``zodb_uri``,
``app_settings``, ``zodb_databases``, ``zodb_db``, ``zodb_conn``,
``zodb_root``, ``app_factory``, ``wsgi_app``, ``testapp``,
``dummy_request``) say what they give in their docstrings; the README's
"Testing your app" has them in a table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any, Iterator

import pytest
import transaction
from paste.deploy.loadwsgi import APP, loadcontext
from pyramid import testing
from pyramid.scripting import prepare

from . import compat, zeoserver
from .app import main
from .connection import attach_connection, ensure_request, get_databases
from .databases import Databases
from .interfaces import IAppmaker, IDatabases, IEvolutionSteps
from .root import bootstrap_once

ZEO_CONF = """\
%define VAR {var}
<zeo>
  address $VAR/zeo.sock
  read-only false
  invalidation-queue-size 100
  pid-filename $VAR/zeo.pid
</zeo>
<blobstorage 1>
  <filestorage>
    path $VAR/Data.fs
  </filestorage>
  blob-dir $VAR/blobs
</blobstorage>
<eventlog>
  level INFO
  <logfile>
    path $VAR/zeo.log
  </logfile>
</eventlog>
"""

#: Database keys of the app's settings: the test gives its own.
DATABASE_KEYS = ('zodb_uri', 'zodbconn.uri')
INI_OPTION = 'zeostore_ini'


def write_zeo_conf(directory) -> str:
    """Write a recipe-shaped zeo.conf whose files live in ``directory``."""
    var = str(directory)
    os.makedirs(var, exist_ok=True)
    path = os.path.join(var, 'zeo.conf')
    with open(path, 'w') as f:
        f.write(ZEO_CONF.format(var=var))
    return path


class ZEOProcess:
    """A real ``runzeo`` on a Unix socket in a temp dir, stopped by pid."""

    def __init__(self, directory) -> None:
        self.dir = str(directory)
        self.conf_path = write_zeo_conf(self.dir)
        self.sock = os.path.join(self.dir, 'zeo.sock')
        self.proc: subprocess.Popen | None = None

    def uri(self, **params) -> str:
        query = '&'.join(f'{k}={v}' for k, v in params.items())
        return f'zeo://{self.sock}' + (f'?{query}' if query else '')

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def popen_options(self) -> dict:
        """More ``subprocess.Popen`` arguments for runzeo (a subclass may
        set its folder, group, umask, ...)."""
        return {}

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            zeoserver.runzeo_command(self.conf_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self.popen_options(),
        )
        if not zeoserver.wait_listening(self.sock, timeout):
            self.stop()
            raise RuntimeError('runzeo did not start:\n' + self.log())

    #: seconds to wait after ``sig``, then after SIGKILL
    stop_wait, kill_wait = 15, 5

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        zeoserver.stop_process(
            self.proc, self.stop_wait, sig, self.kill_wait
        )
        self.proc = None

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, 'zeo.log')) as f:
                return f.read()[-4000:]
        except OSError:
            return '(no log)'


@contextlib.contextmanager
def running_zeo_server(directory) -> Iterator[ZEOProcess]:
    """A started :class:`ZEOProcess` in ``directory``, stopped at exit."""
    server = ZEOProcess(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the plugin --------------------------------------------------------------


def pytest_addoption(parser) -> None:
    parser.addini(
        INI_OPTION,
        'pyramid_zeostore: the app\'s ini (e.g. development.ini, relative '
        'to the rootdir; INI#name for [app:name]) whose app and settings '
        'the app_settings, app_factory and testapp fixtures use',
        default='',
    )


@pytest.fixture(scope='session')
def zeo_server() -> Iterator[ZEOProcess]:
    """A ZEO server (``runzeo`` subprocess) for the whole test session.

    Its folder is a short temp dir (a Unix socket path has ~100 bytes),
    removed at the end.
    """
    directory = tempfile.mkdtemp(prefix='pytest-zeo-')
    try:
        with running_zeo_server(directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def zodb_uri(zeo_server: ZEOProcess) -> str:
    """The test's database: a DemoStorage over the ZEO server's.

    Reads fall through to the server (read-only), commits stay in the
    DemoStorage's memory: every test starts from the same database and
    leaves nothing behind, at the cost of one ZEO connection.
    """
    return f'demo:({zeo_server.uri(read_only=1)})/(memory://)'


@pytest.fixture(scope='session')
def _zeostore_ini(pytestconfig) -> tuple[Any, dict, dict] | None:
    """(app factory, global_conf, settings) of the ``zeostore_ini`` app."""
    value = pytestconfig.getini(INI_OPTION)
    if not value:
        return None
    return load_ini_app(value, str(pytestconfig.rootpath))


def load_ini_app(value: str, root: str) -> tuple[Any, dict, dict]:
    """The app factory, global_conf and settings of ``path[#name]``.

    ``path`` is taken from ``root`` unless absolute. Only an app section
    (``use = egg:...`` or ``call:...``) can be split into its factory and
    its settings.
    """
    path, _, name = value.partition('#')
    path = os.path.join(root, path)
    if not os.path.isfile(path):
        raise pytest.UsageError(f'{INI_OPTION}: no such file: {path}')
    context = loadcontext(APP, 'config:' + path, name=name or 'main')
    if context.object_type is not APP:
        raise pytest.UsageError(
            f'{INI_OPTION}: [{name or "main"}] of {path} is a '
            f'{context.object_type.name}, not an app: name an [app:NAME] '
            'section (INI#NAME), or override the app_factory and '
            'app_settings fixtures'
        )
    return context.object, dict(context.global_conf), dict(context.local_conf)


@pytest.fixture
def app_settings(_zeostore_ini, zodb_uri: str, tmp_path) -> dict[str, Any]:
    """The settings ``app_factory`` gets: a fresh dict for each test.

    The ini's app settings (``zeostore_ini``), if any, with the database
    keys replaced: ``zodb_uri`` is the test's (``zodb_uri`` fixture), each
    named database ``zodb_uri.NAME`` a fresh ``memory://`` one; no
    autostart and no startup check; the conflict lock file in the test's
    tmp_path. Override it in a conftest.py to add or change keys::

        @pytest.fixture
        def app_settings(app_settings):
            app_settings['myapp.feature'] = 'on'
            return app_settings
    """
    settings = dict(_zeostore_ini[2]) if _zeostore_ini else {}
    named = set()
    for key in list(settings):
        for base in DATABASE_KEYS:
            if key == base:
                del settings[key]
            elif key.startswith(base + '.'):
                del settings[key]
                named.add(key[len(base) + 1:])
    settings['zodb_uri'] = zodb_uri
    for name in sorted(named):
        settings[f'zodb_uri.{name}'] = 'memory://'
    settings['zeostore.autostart'] = 'false'
    settings['zeostore.check_on_startup'] = 'false'
    settings['zeostore.lock_file'] = str(tmp_path / 'zeostore.lock')
    return settings


@pytest.fixture
def zodb_databases(app_settings: dict) -> Iterator[Any]:
    """The databases of ``app_settings``, opened on first use, closed
    after the test; the app of ``wsgi_app`` uses these very ones."""
    databases = Databases.from_settings(app_settings)
    yield databases
    databases.close()


@pytest.fixture
def zodb_db(zodb_databases) -> Any:
    """The test's primary ``ZODB.DB``."""
    return zodb_databases.get('')


@pytest.fixture
def zodb_conn(zodb_db) -> Iterator[Any]:
    """A connection of the test's own, on its own transaction manager.

    Commit what a test prepares with ``zodb_conn.transaction_manager
    .commit()`` before a ``testapp`` request (an uncommitted change is an
    error there: the app could not see it). After each request the
    connection's transaction is ended, so it sees what the request
    committed.
    """
    tm = transaction.TransactionManager()
    conn = zodb_db.open(transaction_manager=tm)
    yield conn
    tm.abort()
    conn.close()


@pytest.fixture
def zodb_root(zodb_conn) -> Any:
    """The ZODB root mapping (the appmaker's ``zodb_root``)."""
    return zodb_conn.root()


def sync(conn: Any) -> None:
    """Let ``conn`` see the latest commits: end its transaction.

    :raises AssertionError: it has changes not committed (which would be
        lost, and which no request could see).
    """
    changed = compat.changed_objects(conn)
    if changed:
        raise AssertionError(
            f'zodb_root has {len(changed)} changed object(s) not '
            'committed: the app cannot see them. Commit them first: '
            'zodb_conn.transaction_manager.commit()'
        )
    conn.transaction_manager.abort()


@pytest.fixture
def app_factory(_zeostore_ini) -> Any:
    """``main(global_config, **settings)`` of the app under test: the
    ``zeostore_ini`` app's, else the ready app ``pyramid_zeostore.main``.
    Override it to test another app::

        @pytest.fixture
        def app_factory():
            from myapp import main
            return main
    """
    if _zeostore_ini:
        return _zeostore_ini[0]
    return main


@pytest.fixture
def wsgi_app(
    app_factory, app_settings: dict, zodb_databases, zodb_conn,
    _zeostore_ini,
) -> Any:
    """The app: ``app_factory(global_config, **app_settings)``, its
    databases replaced by ``zodb_databases`` (so the test sees what the
    app commits, and the other way round) and its root made by its
    appmaker, as ``pyramid_zeostore.main`` does at startup."""
    global_config = dict(_zeostore_ini[1]) if _zeostore_ini else {}
    app = app_factory(global_config, **app_settings)
    registry = getattr(app, 'registry', None)
    if registry is None:
        raise TypeError(
            f'app_factory returned {app!r}, not a Pyramid router (no '
            '.registry): override the wsgi_app fixture'
        )
    registry.registerUtility(zodb_databases, IDatabases)
    appmaker = registry.queryUtility(IAppmaker)
    if appmaker is not None and not zodb_databases.bootstrapped:
        bootstrap_once(
            get_databases(registry), appmaker,
            registry.queryUtility(IEvolutionSteps),
        )
        sync(zodb_conn)
    return app


@pytest.fixture
def testapp(wsgi_app, zodb_conn) -> Any:
    """A ``webtest.TestApp`` over ``wsgi_app`` (``pip install WebTest``).

    Each request runs the whole app, pyramid_tm's transaction and
    retries included. Before a request, ``zodb_conn`` must have nothing
    left to commit; after it, it sees what the request committed (and a
    failed request, nothing).
    """
    try:
        import webtest
    except ImportError:
        pytest.fail('the testapp fixture needs WebTest: pip install WebTest')

    class TestApp(webtest.TestApp):
        def do_request(self, req, status=None, expect_errors=None):
            sync(zodb_conn)
            try:
                return super().do_request(req, status, expect_errors)
            finally:
                sync(zodb_conn)

    return TestApp(wsgi_app)


@pytest.fixture
def dummy_request(wsgi_app, zodb_conn) -> Iterator[Any]:
    """A ``pyramid.testing.DummyRequest`` to call views with directly.

    It has the app's registry (and is the current request and registry
    while the test runs), ``request.tm`` (``zodb_conn``'s transaction
    manager: ``dummy_request.tm.commit()`` saves what a view did),
    ``request.zodb_conn`` / ``get_connection(request)`` (``zodb_conn``)
    and ``request.root`` and ``request.context``: the app root on that
    connection.
    """
    registry = wsgi_app.registry
    tm = zodb_conn.transaction_manager
    request = testing.DummyRequest()
    request.registry = registry
    request.environ['tm.manager'] = tm  # what pyramid_tm's request.tm reads
    # ``tm`` and ``zodb_conn`` live on the app's request class (see
    # request.py): give them to this request as Pyramid would.
    ensure_request(registry, request)
    request.tm = tm
    # get_connection() and request.zodb_conn return the test's.
    attach_connection(request, zodb_conn)
    # The current request and registry, the root from the root factory.
    env = prepare(request=request, registry=registry)
    try:
        request.root = env['root']
        yield request
    finally:
        env['closer']()
