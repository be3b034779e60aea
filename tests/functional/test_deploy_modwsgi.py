"""deploy/ for real: Apache + mod_wsgi, 3 daemon processes, one ZEO.

``mod_wsgi-express start-server deploy/app.wsgi --processes 3 --threads
2`` as www-data, in front of ``runzeo -C deploy/zeo.conf`` run the way
deploy/runzeo.service runs it (group www-data, umask 0007), all on
loopback. The app is the ready app behind the ``workerpid`` filter, so
each answer names the daemon process that gave it.

Checked: items created and a counter incremented through the daemons
read back the same from any of them; under 6 concurrent clients for
``ZEOSTORE_MODWSGI_SECONDS`` (default 10) seconds of mixed reads, adds
and increments there is no 5xx, every acknowledged add is there, the
counter equals the acknowledged increments, all 3 daemons answered, and
ZEO counts each of them as a client of its own.

Needs Debian's apache2 + apache2-dev (``bash .ci/install-deploy``) and
root; the mod_wsgi venv is built once under /var/tmp (see modwsgi.py).
Missing pieces skip the test, but fail it when ``CI=true``.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import random
import shutil
import stat
import subprocess
import sys
import threading
import time

import pytest

from tests import tlscerts

from . import appmaker, modwsgi
from .conftest import JSON_HEADERS, add_test_user, free_port

pytestmark = pytest.mark.deploy

PROCESSES = 3
THREADS = 2
CLIENTS = 6
DURATION = float(os.environ.get('ZEOSTORE_MODWSGI_SECONDS', '10'))
#: Extra time the load may take to be answered by every daemon.
ALL_PIDS_GRACE = 20.0
TIMEOUT = 60.0  # per request: far above any lock wait or backoff
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')

INI = """\
[pipeline:main]
pipeline = workerpid zeostore

[filter:workerpid]
use = call:tests.functional.workerpid:filter_factory

[app:zeostore]
use = egg:pyramid_zeostore
zodb_uri = {zodb_uri}
zeostore.autostart = false
zeostore.connect_timeout = 10
retry.attempts = 3
zeostore.secret = {secret}

[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(levelname)s [%(process)d %(name)s] %(message)s
"""


def unavailable(reason: str):
    """Skip, except in CI, where a deployment that cannot be tested is a
    failure."""
    if IN_CI:
        pytest.fail(f'mod_wsgi deployment test cannot run in CI: {reason}')
    pytest.skip(reason)


@pytest.fixture(scope='module')
def venv():
    start = time.monotonic()
    try:
        path = modwsgi.ensure_venv(log=print)
    except modwsgi.Unavailable as e:
        unavailable(str(e))
    print(f'mod_wsgi venv ready in {time.monotonic() - start:.1f}s: {path}')
    return path


class Deployment:
    def __init__(self, zeo: modwsgi.WebZEO, server: modwsgi.ModWSGIServer,
                 directory: str, lib: str) -> None:
        self.zeo = zeo
        self.server = server
        self.port = server.port
        self.directory = directory
        self.lib = lib

    def request(self, method, path, body=None, headers=None):
        """(status, headers, parsed JSON or raw bytes) over a fresh
        connection."""
        conn = http.client.HTTPConnection(
            '127.0.0.1', self.port, timeout=TIMEOUT
        )
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, data, headers or JSON_HEADERS)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return resp.status, resp.headers, parsed

    def names(self, path='/') -> set[str]:
        """Every child name of a folder, page by page."""
        names: set[str] = set()
        start = 0
        for _ in range(10_000):
            status, _, data = self.request(
                'GET', f'{path}?format=json&start={start}&size=1000'
            )
            assert status == 200, data
            names |= {item['name'] for item in data['items']}
            if not data['next']:
                return names
            start += 1000
        raise AssertionError('listing never ended')

    def logs(self) -> str:
        return self.server.logs() + '\n--- zeo.log ---\n' + self.zeo.log()


@pytest.fixture(scope='module')
def deployment(venv):
    directory = modwsgi.make_web_dir()
    zeo = server = None
    try:
        zeo = modwsgi.WebZEO(directory)
        zeo.start()
        add_test_user(zeo.uri())
        lib = modwsgi.install_app(venv, os.path.join(directory, 'app'))
        # deploy/app.wsgi, copied where www-data can read it; the ini is
        # named by PYRAMID_ZEOSTORE_INI (app.wsgi's documented override).
        site = os.path.join(directory, 'site')
        os.mkdir(site, 0o755)
        script = shutil.copy(
            os.path.join(modwsgi.DEPLOY, 'app.wsgi'), site
        )
        ini = os.path.join(site, 'test.ini')
        with open(ini, 'w') as f:
            f.write(INI.format(zodb_uri=zeo.uri(server_sync='true'),
                               secret=appmaker.SECRET))
        port = free_port()
        server = modwsgi.ModWSGIServer(
            venv, directory, script, port, lib,
            modwsgi.web_env(directory, PYRAMID_ZEOSTORE_INI=ini),
            processes=PROCESSES, threads=THREADS,
        )
        start = time.monotonic()
        server.start()
        print(f'Apache listening after {time.monotonic() - start:.1f}s')
        dep = Deployment(zeo, server, directory, lib)
        yield dep
    finally:
        left = []
        if server is not None:
            left = server.stop()
            if left:
                print(server.logs())
        if zeo is not None:
            zeo.stop()
        shutil.rmtree(directory, ignore_errors=True)
        assert not left, f'Apache processes left after apachectl stop: {left}'


@pytest.fixture
def dump_logs_on_failure(request, deployment):
    """Print Apache's error_log and ZEO's log if the test failed."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        print(deployment.logs())


def test_socket_and_files_are_for_www_data_only(deployment):
    zeo = deployment.zeo
    mode = os.stat(zeo.sock).st_mode
    assert stat.S_ISSOCK(mode)
    assert os.stat(zeo.sock).st_gid == zeo.gid
    assert mode & 0o060 == 0o060, stat.filemode(mode)  # group rw
    assert mode & 0o007 == 0, stat.filemode(mode)  # not for others
    assert zeo.world_accessible() == []
    nobody = 65534
    assert not modwsgi.runs_as(nobody, nobody, zeo.sock, os.W_OK)
    www = pwd.getpwnam(modwsgi.WEB_USER)
    assert modwsgi.runs_as(www.pw_uid, www.pw_gid, zeo.sock, os.W_OK)


def test_create_increment_read_back(deployment, dump_logs_on_failure):
    dep = deployment
    status, headers, data = dep.request('GET', '/?format=json')
    assert status == 200, (data, dep.logs())
    assert headers['X-Worker-Pid'], 'workerpid filter missing'

    status, _, data = dep.request(
        'POST', '/', {'name': 'docs', 'type': 'folder'}
    )
    assert status == 201, data
    for name in ('a', 'b', 'c'):
        status, headers, data = dep.request(
            'POST', '/docs',
            {'name': name, 'type': 'item', 'attributes': {'title': name}},
        )
        assert status == 201, data
        assert headers['Location'].rstrip('/').endswith(f'/docs/{name}')
    status, _, data = dep.request(
        'POST', '/', {'name': 'seq', 'attributes': {'counter': 0}}
    )
    assert status == 201, data
    for expected in range(1, 6):
        status, _, data = dep.request(
            'POST', '/seq/@@increment', {'attribute': 'counter', 'by': 1}
        )
        assert status == 200, data
        assert data == {'attribute': 'counter', 'value': expected}

    # Read back many times: whichever daemon answers sees the same.
    pids = set()
    for _ in range(12):
        status, headers, data = dep.request('GET', '/seq?format=json')
        assert status == 200, data
        assert data['attributes'] == {'counter': 5}
        pids.add(int(headers['X-Worker-Pid']))
        assert dep.names('/docs') == {'a', 'b', 'c'}
        assert {'docs', 'seq'} <= dep.names('/')
    status, _, data = dep.request('GET', '/docs/b?format=json')
    assert status == 200 and data['attributes'] == {'title': 'b'}, data
    assert pids <= dep.server.daemons(), (pids, dep.server.daemons())


class Load:
    """``CLIENTS`` threads of mixed reads, adds and increments."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self.requests = 0
        self.errors: list[str] = []
        self.added: set[str] = set()
        self.increments_ok = 0
        self.pids: set[int] = set()
        self.server_errors: list[str] = []

    def client(self, number: int, deadline: float, more) -> None:
        rnd = random.Random(number)
        conn = http.client.HTTPConnection(
            '127.0.0.1', self.dep.port, timeout=TIMEOUT
        )
        i = 0
        try:
            while time.monotonic() < deadline or more():
                i += 1
                roll = rnd.random()
                if roll < 0.4:
                    kind, method, path, body = (
                        'get', 'GET', '/load?format=json&size=20', None
                    )
                elif roll < 0.7:
                    name = f'c{number}-{i}'
                    kind, method, path, body = 'add', 'POST', '/load', {
                        'name': name, 'type': 'item',
                        'attributes': {'n': i},
                    }
                else:
                    kind, method, path, body = (
                        'inc', 'POST', '/hot/@@increment',
                        {'attribute': 'counter', 'by': 1},
                    )
                try:
                    conn.request(
                        method, path,
                        json.dumps(body).encode() if body else None,
                        JSON_HEADERS,
                    )
                    resp = conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.errors.append(f'{kind}: {e!r}')
                    conn.close()
                    continue
                if resp.will_close:
                    conn.close()
                with self.lock:
                    self.requests += 1
                    self.statuses[resp.status] = (
                        self.statuses.get(resp.status, 0) + 1
                    )
                    pid = resp.headers.get('X-Worker-Pid')
                    if pid:
                        self.pids.add(int(pid))
                    if resp.status >= 500:
                        self.server_errors.append(
                            f'{kind} {resp.status}: {raw[:300]!r}'
                        )
                    elif 200 <= resp.status < 300:
                        if kind == 'add':
                            self.added.add(name)
                        elif kind == 'inc':
                            self.increments_ok += 1
        finally:
            conn.close()

    def run(self, duration: float, grace: float, want_pids: int) -> float:
        start = time.monotonic()
        deadline = start + duration
        hard_deadline = deadline + grace

        def more() -> bool:
            # Past the deadline, go on (bounded) only until every daemon
            # has answered at least once.
            with self.lock:
                missing = len(self.pids) < want_pids
            return missing and time.monotonic() < hard_deadline

        threads = [
            threading.Thread(
                target=self.client, args=(n, deadline, more), daemon=True
            )
            for n in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + grace + TIMEOUT + 10)
        assert not any(t.is_alive() for t in threads), 'a client hung'
        return time.monotonic() - start

    def count(self, pred) -> int:
        return sum(n for s, n in self.statuses.items() if pred(s))


def test_concurrent_load_three_daemons_one_zeo(
    deployment, dump_logs_on_failure
):
    dep = deployment
    for body in ({'name': 'load', 'type': 'folder'},
                 {'name': 'hot', 'attributes': {'counter': 0}}):
        status, _, data = dep.request('POST', '/', body)
        assert status == 201, data

    load = Load(dep)
    elapsed = load.run(DURATION, ALL_PIDS_GRACE, PROCESSES)

    names = dep.names('/load')
    status, _, data = dep.request('GET', '/hot?format=json')
    assert status == 200, data
    counter = data['attributes']['counter']
    daemons = dep.server.daemons()
    zeo_status = dep.zeo.server_status()
    ok = load.count(lambda s: 200 <= s < 300)
    five = load.count(lambda s: s >= 500)
    print(
        f'\nmod_wsgi load: {elapsed:.1f}s, {load.requests} requests, '
        f'statuses {dict(sorted(load.statuses.items()))}, '
        f'2xx {ok}, 5xx {five}, transport errors {len(load.errors)}, '
        f'adds ok {len(load.added)}, increments ok {load.increments_ok}, '
        f'counter {counter}, daemon pids {sorted(load.pids)}, '
        f'mod_wsgi daemons of Apache {sorted(daemons)}, '
        f'ZEO connections {zeo_status["connections"]} '
        '(incl. this probe)'
    )

    assert five == 0, load.server_errors[:5]
    assert load.errors == [], load.errors[:5]
    assert load.added, 'no add succeeded'
    assert load.added <= names, sorted(load.added - names)[:10]
    assert counter == load.increments_ok
    # The three daemon processes of this Apache (www-data) all answered,
    assert len(daemons) == PROCESSES, daemons
    assert load.pids == daemons, (load.pids, daemons)
    # ...and each is a ZEO client of its own (the probe is one more).
    assert zeo_status['connections'] - 1 >= PROCESSES, zeo_status
    # Nothing the daemons created (lock files) opened var/ to others.
    assert dep.zeo.world_accessible() == []



def test_apache_myapp_conf_serves_production_ini(venv, deployment):
    """deploy/apache-myapp.conf as shipped (paths aside) in Debian's
    apache2, and app.wsgi falling back to the production.ini beside it
    (its zodb_uri pointed at the test's ZEO)."""
    dep = deployment
    directory = os.path.join(dep.directory, 'conf-run')
    site = os.path.join(directory, 'deploy')
    os.makedirs(site, 0o755)
    for path in (directory, site):
        os.chmod(path, 0o755)
    shutil.copy(os.path.join(modwsgi.DEPLOY, 'app.wsgi'), site)
    with open(os.path.join(modwsgi.DEPLOY, 'production.ini')) as f:
        ini = f.read()
    production_sock = 'zeo:///srv/myapp/var/zeo.sock'
    assert production_sock in ini
    # its paths and host name moved to the test's
    for old, new in [
        (production_sock, f'zeo://{dep.zeo.sock}'),
        ('trusted_hosts = myapp.example.com', 'trusted_hosts = 127.0.0.1'),
        ('secret_file = /srv/myapp/secret',
         f'secret = {appmaker.SECRET}'),
    ]:
        assert old in ini
        ini = ini.replace(old, new)
    with open(os.path.join(site, 'production.ini'), 'w') as f:
        f.write(ini)
    server = modwsgi.ApacheConfServer(
        venv, directory, site, free_port(), dep.lib,
        modwsgi.web_env(directory),
    )
    syntax = server.check_syntax()
    assert 'Syntax OK' in syntax, syntax
    conn_dep = Deployment(dep.zeo, server, directory, dep.lib)
    left = []
    try:
        server.start()
        status, _, data = conn_dep.request('GET', '/?format=json')
        assert status == 200, (data, server.logs())
        status, _, data = conn_dep.request(
            'POST', '/', {'name': 'via-apache-conf', 'type': 'item',
                          'attributes': {'counter': 41}},
        )
        assert status == 201, (data, server.logs())
        status, _, data = conn_dep.request(
            'POST', '/via-apache-conf/@@increment', {'by': 1}
        )
        assert status == 200 and data['value'] == 42, data
        # The mod_wsgi-express deployment, another Apache, sees it too.
        status, _, data = dep.request('GET', '/via-apache-conf?format=json')
        assert status == 200, data
        assert data['attributes'] == {'counter': 42}
        daemons = server.daemons()
        print(f'apache-myapp.conf: daemons {sorted(daemons)}')
        assert len(daemons) == 4, (daemons, server.logs())
    except BaseException:
        print(server.logs())
        raise
    finally:
        left = server.stop()
    assert left == [], left


# -- the other files of deploy/, without Apache --------------------------

def _commented_uri(path: str, marker: str) -> str:
    """The ``#   zodb_uri = ...`` example line of ``path`` containing
    ``marker``."""
    with open(path) as f:
        for line in f:
            text = line.lstrip('#').strip()
            if text.startswith('zodb_uri = ') and marker in text:
                return text.split('=', 1)[1].strip()
    raise AssertionError(f'{path}: no commented zodb_uri with {marker!r}')


def test_production_ini_settings():
    from plaster import get_settings

    from pyramid_zeostore import parse_settings
    from pyramid_zeostore.resolvers import zeo_resolver

    path = os.path.join(modwsgi.DEPLOY, 'production.ini')
    settings = parse_settings(get_settings(path, 'app:main'))
    spec = settings.primary
    assert spec.address == '/srv/myapp/var/zeo.sock'
    # reads sync only for a client that just wrote (the cookie)
    assert 'server_sync' not in spec.factory.kw
    assert settings.read_your_writes and settings.fast_reads
    assert settings.autostart is False
    assert settings.lock_file == '/srv/myapp/var/zeo.sock.lock'
    # The commented alternatives resolve too: TCP, and TLS (the same line
    # as in zeo-tls.conf).
    factory, _ = zeo_resolver(_commented_uri(path, '10.0.0.5:8100'))
    assert factory.addresses == (('10.0.0.5', 8100),)
    tls_uri = _commented_uri(path, 'ssl_certfile')
    tls_conf = os.path.join(modwsgi.DEPLOY, 'zeo-tls.conf')
    assert _commented_uri(tls_conf, 'ssl_certfile') == tls_uri
    factory, _ = zeo_resolver(tls_uri)
    assert factory.tls.server_hostname == 'zeo.example.com'
    assert factory.tls.cafile == '/srv/myapp/tls/ca.pem'


def test_app_wsgi_finds_its_ini(tmp_path):
    """app.wsgi loads $PYRAMID_ZEOSTORE_INI, else production.ini beside
    it (here: deploy/production.ini, whose ZEO is absent: the start-up
    check warns naming its socket, and the daemon process comes up)."""
    script = os.path.join(modwsgi.DEPLOY, 'app.wsgi')
    code = (
        'import runpy, sys; ns = runpy.run_path(sys.argv[1]); '
        'print(type(ns["application"]).__name__)'
    )
    env = dict(os.environ)
    env.pop('PYRAMID_ZEOSTORE_INI', None)
    proc = subprocess.run(
        [sys.executable, '-c', code, script], env=env, timeout=120,
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == 'Guard'
    assert 'did not answer at startup' in proc.stderr, proc.stderr[-3000:]
    assert '/srv/myapp/var/zeo.sock' in proc.stderr, proc.stderr[-3000:]

    ini = tmp_path / 'other.ini'
    ini.write_text(
        '[app:main]\nuse = egg:pyramid_zeostore\nzodb_uri = memory://\n'
    )
    env['PYRAMID_ZEOSTORE_INI'] = str(ini)
    proc = subprocess.run(
        [sys.executable, '-c', code, script], env=env, timeout=120,
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == 'Guard'  # the ready app's, round it


def test_zeo_tls_conf_serves_the_commented_client_uri(tmp_path):
    """deploy/zeo-tls.conf, moved to loopback and temp paths, serves the
    client line of production.ini (its paths moved the same way)."""
    from pyramid_zeostore import Databases, parse_settings, zeoserver

    if shutil.which('openssl') is None:
        unavailable('no openssl binary')
    tls = tmp_path / 'tls'
    tls.mkdir()
    tlscerts.make_ca(tls, 'ca', key=tlscerts.EC)
    for name in ('server', 'client'):
        tlscerts.make_cert(
            tls, 'ca', name, host='zeo.example.com',
            san='DNS:zeo.example.com', key=tlscerts.EC,
        )
    var = tmp_path / 'var'
    (var / 'data').mkdir(parents=True)
    port = free_port()
    with open(os.path.join(modwsgi.DEPLOY, 'zeo-tls.conf')) as f:
        conf = f.read()
    for old, new in (
        ('%define VAR /srv/myapp/var', f'%define VAR {var}'),
        ('%define TLS /srv/myapp/tls', f'%define TLS {tls}'),
        ('address 10.0.0.5:8100', f'address 127.0.0.1:{port}'),
    ):
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / 'zeo.conf').write_text(conf)
    uri = _commented_uri(
        os.path.join(modwsgi.DEPLOY, 'production.ini'), 'ssl_certfile'
    )
    uri = uri.replace('/srv/myapp/tls', str(tls)).replace(
        'zeo.example.com:8100', f'127.0.0.1:{port}'
    )
    proc = subprocess.Popen(
        zeoserver.runzeo_command(str(tmp_path / 'zeo.conf')),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    databases = None
    try:
        assert zeoserver.wait_listening(('127.0.0.1', port), 30), (
            (var / 'zeo.log').read_text()
            if (var / 'zeo.log').exists() else 'no zeo.log'
        )
        settings = parse_settings({'zodb_uri': uri})
        databases = Databases(settings.databases, 10)
        conn = databases.get('').open()
        try:
            assert conn.root() is not None
        finally:
            conn.close()
    finally:
        if databases is not None:
            databases.close()
        zeoserver.stop_process(proc)


def test_gunicorn_conf_py():
    ns: dict = {}
    path = os.path.join(modwsgi.DEPLOY, 'gunicorn.conf.py')
    with open(path) as f:
        exec(compile(f.read(), path, 'exec'), ns)
    assert ns['workers'] == 4 and ns['preload_app'] is True
    assert ns['bind'] == ['127.0.0.1:8000']
