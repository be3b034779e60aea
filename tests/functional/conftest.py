"""Real processes for the functional suite: pserve, gunicorn, pshell.

Helpers and fixtures for the tests that run servers and children: an
ini for the ready app on a free loopback port, :class:`ServerProcess`
(started, polled until it listens, stopped by its process group),
``pserve`` and ``gunicorn`` commands, the children of a process and the
``runzeo`` processes of a zeo.conf from /proc, :class:`StartingLine` (a
barrier for child processes made of two pipes) and the ``autostarted``
and ``servers`` fixtures, which stop what a test started even when it
fails, and ``certs``: a CA and certificates for the TLS tests.
"""

from __future__ import annotations

import base64
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from pyramid_zeostore import zeoserver
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.databases import Databases
from tests import tlscerts
from tests.functional import appmaker

BIN = os.path.dirname(sys.executable)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def child_env() -> dict:
    """Children import this checkout, however the venv was installed."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (os.path.abspath(REPO), env.get('PYTHONPATH')) if p
    )
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_ini(
    directory,
    zodb_uri: str,
    port: int = 0,
    *,
    worker_pid: bool = False,
    threads: int | None = None,
    **settings,
) -> str:
    """An ini for the ready app (egg:pyramid_zeostore) on 127.0.0.1.

    ``worker_pid``: serve it through the ``tests.functional.workerpid``
    filter (``X-Worker-Pid`` on every response); ``threads``: waitress'.
    """
    lines = []
    if worker_pid:
        lines += [
            '[pipeline:main]',
            'pipeline = workerpid zeostore',
            '',
            '[filter:workerpid]',
            'use = call:tests.functional.workerpid:filter_factory',
            '',
            '[app:zeostore]',
        ]
    else:
        lines += ['[app:main]']
    lines += [
        'use = egg:pyramid_zeostore',
        f'zodb_uri = {zodb_uri}',
    ]
    if 'zeostore.appmaker' not in settings:
        lines += [
            'zeostore.appmaker = tests.functional.appmaker.with_user'
        ]
    if 'zeostore.secret' not in settings:
        lines += [f'zeostore.secret = {appmaker.SECRET}']
    lines += [f'{k} = {v}' for k, v in settings.items()]
    lines += [
        '',
        '[pshell]',
        'setup = pyramid_zeostore.pshell.setup',
        '',
        '[server:main]',
        'use = egg:waitress#main',
        f'listen = 127.0.0.1:{port or free_port()}',
    ]
    if threads is not None:
        lines += [f'threads = {threads}']
    lines += [
        '',
        '[loggers]',
        'keys = root',
        '[handlers]',
        'keys = console',
        '[formatters]',
        'keys = generic',
        '[logger_root]',
        'level = WARN',
        'handlers = console',
        '[handler_console]',
        'class = StreamHandler',
        'args = (sys.stderr,)',
        'level = NOTSET',
        'formatter = generic',
        '[formatter_generic]',
        'format = %(levelname)s [%(name)s] %(message)s',
    ]
    path = os.path.join(str(directory), 'app.ini')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def ini_port(ini: str) -> int:
    for line in open(ini):
        if line.startswith('listen = '):
            return int(line.rsplit(':', 1)[1])
    raise ValueError('no listen line')


class ServerProcess:
    """A server process hit over loopback; stopped by pid; output kept."""

    def __init__(self, args, port: int, cwd=None, env=None) -> None:
        self.args = list(args)
        self.port = port
        self.url = f'http://127.0.0.1:{port}'
        self.cwd = cwd
        self.env = env
        self.output = tempfile.TemporaryFile()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'server exited:\n{self.log()}')
            try:
                with socket.create_connection(('127.0.0.1', self.port), 1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f'server did not listen:\n{self.log()}')

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # The whole session: gunicorn and pserve may have children.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def log(self, limit: int | None = 6000) -> str:
        """The server's output: its last ``limit`` characters (None: all)."""
        self.output.seek(0)
        text = self.output.read().decode(errors='replace')
        return text[-limit:] if limit else text

    def request(self, path: str, method='GET', data=None, headers=None,
                timeout=30.0):
        """(status, headers, body bytes) of one request; never raises on
        an HTTP error status."""
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()


def pserve(ini: str) -> ServerProcess:
    return ServerProcess(
        [os.path.join(BIN, 'pserve'), ini],
        ini_port(ini),
        cwd=os.path.dirname(ini),
        env=child_env(),
    )


def gunicorn(ini: str, workers: int = 4, *args: str) -> ServerProcess:
    """``gunicorn --paste ini -w workers`` on the ini's port."""
    port = ini_port(ini)
    return ServerProcess(
        [
            os.path.join(BIN, 'gunicorn'),
            '--paste', ini,
            '-w', str(workers),
            '-b', f'127.0.0.1:{port}',
            '--no-control-socket',  # not ~/.gunicorn: others run too
            *args,
        ],
        port,
        cwd=os.path.dirname(ini),
        env=child_env(),
    )


def child_pids(pid: int) -> set[int]:
    """The pids of the live children of process ``pid`` (from /proc)."""
    children = set()
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(')', 1)[1].split()
        if int(fields[1]) == pid and fields[0] != 'Z':
            children.add(int(entry))
    return children


def wait_children(pid: int, count: int, limit: float = 60.0,
                  without=()) -> set[int]:
    """The children of ``pid`` once there are ``count`` of them, none in
    ``without`` (e.g. gunicorn's workers after it replaced one); bounded."""
    deadline = time.monotonic() + limit
    while True:
        children = child_pids(pid)
        if len(children) == count and not children & set(without):
            return children
        if time.monotonic() > deadline:
            raise AssertionError(
                f'{pid} has children {children} after {limit}s, expected '
                f'{count} (none of {set(without)})'
            )
        time.sleep(0.1)


def runzeo_pids(conf_path: str) -> list[int]:
    """Live (not zombie) runzeo processes serving ``conf_path``."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                args = f.read().split(b'\0')
            with open(f'/proc/{entry}/stat', 'rb') as f:
                state = f.read().rsplit(b')', 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != b'Z'
            and b'ZEO.runzeo' in args
            and conf_path.encode() in args
        ):
            pids.append(int(entry))
    return sorted(pids)


class StartingLine:
    """Child processes let go at one moment, once every one is ready.

    Give each ``Popen`` ``pass_fds=line.pass_fds`` and ``*line.args()`` on
    its command line: the child writes a byte to the first fd once it is
    ready, then reads the second, which returns only when the test calls
    :meth:`go` (its write end closed: every child at once)::

        ready, go = map(int, sys.argv[-2:])
        os.write(ready, b'.')
        os.read(go, 1)

    :meth:`wait_ready` reads those bytes without sleeping, bounded, and
    fails at once if every child exited first.
    """

    def __init__(self) -> None:
        self._ready_r, self._ready_w = os.pipe()
        self._go_r, self._go_w = os.pipe()
        self.pass_fds = (self._ready_w, self._go_r)
        self._open = {self._ready_r, self._ready_w, self._go_r, self._go_w}

    def args(self) -> list[str]:
        return [str(self._ready_w), str(self._go_r)]

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def wait_ready(self, count: int, timeout: float = 60.0) -> None:
        """Once ``count`` children have said they are ready."""
        for fd in self.pass_fds:  # the children hold their own copies
            self._close(fd)
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < count:
            left = deadline - time.monotonic()
            readable = left > 0 and select.select(
                [self._ready_r], [], [], left
            )[0]
            if not readable:
                raise AssertionError(
                    f'{ready} of {count} children ready after {timeout}s'
                )
            said = os.read(self._ready_r, count - ready)
            if not said:  # every write end closed: they all exited
                raise AssertionError(
                    f'{ready} of {count} children ready; the others exited'
                )
            ready += len(said)

    def go(self) -> None:
        """Let every waiting child go."""
        self._close(self._go_w)

    def close(self) -> None:
        for fd in list(self._open):
            self._close(fd)

    def __enter__(self) -> StartingLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def autostarted():
    """ZEOConfs whose server is stopped at the end, even on failure."""
    confs: list = []
    yield confs
    for conf in confs:
        zeoserver.stop_server(conf, timeout=10)
        for pid in runzeo_pids(conf.path):  # no pid file: by /proc
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def servers():
    """Start ServerProcess objects through this; all stopped at the end."""
    started: list[ServerProcess] = []

    def start(server: ServerProcess, timeout: float = 30.0):
        started.append(server)
        server.start(timeout)
        return server

    yield start
    for server in started:
        server.stop()


def basic_auth(name: str = appmaker.USER,
               password: str = appmaker.PASSWORD) -> str:
    token = base64.b64encode(f'{name}:{password}'.encode()).decode()
    return f'Basic {token}'


#: A JSON API client's headers, with the test user's Basic credentials
#: (the user :mod:`tests.functional.appmaker` adds).
JSON_HEADERS = {
    'Content-Type': 'application/json',
    'Accept': 'application/json',
    'Authorization': basic_auth(),
}


def add_test_user(zodb_uri: str) -> None:
    """Give the database at ``zodb_uri`` the test user (for apps whose
    ini :func:`write_ini` did not write)."""
    databases = Databases.from_uri(zodb_uri, 10.0)
    try:
        add_user(databases.get(''), appmaker.USER, appmaker.PASSWORD,
                 'editor')
    finally:
        databases.close()


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    """A CA, server and client certificates (tests/tlscerts.py), made once
    per test module."""
    return tlscerts.make_certs(tmp_path_factory.mktemp('certs'))
