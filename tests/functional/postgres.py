"""A throw-away PostgreSQL server for the functional suite.

Debian's ``postgresql`` package (``.ci/install-postgres``) provides the
binaries in ``/usr/lib/postgresql/VERSION/bin``; this harness makes a
cluster of its own with ``initdb`` in a fresh temp dir and runs it with
``pg_ctl``, listening on 127.0.0.1 at a free port and on a Unix socket in
that dir, and stops it with ``pg_ctl stop -m fast``. PostgreSQL refuses to
run as root: as root, the cluster belongs to the ``postgres`` system user
the package creates, and every server command runs as that user (the temp
dir is made its own, mode 0700). Local (socket) connections are trusted;
TCP connections, which RelStorage's ``postgres://`` URIs make, need a
password (scram-sha-256).

Outside CI a missing PostgreSQL skips the tests that need it; with
``CI=true`` it fails them, so CI cannot go green without running them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager

import pytest

from tests.functional.conftest import free_port

RUN_AS = 'postgres'
PASSWORD = 'zodb-secret'
START_ATTEMPTS = 3


def bin_dir() -> str | None:
    """The newest installed ``/usr/lib/postgresql/*/bin`` with pg_ctl."""
    found = glob.glob('/usr/lib/postgresql/*/bin/pg_ctl')
    if not found:
        return None
    found.sort(key=lambda p: int(p.split('/')[-3].split('.')[0]))
    return os.path.dirname(found[-1])


def missing(what: str, how: str = 'bash .ci/install-postgres') -> None:
    """Skip, or fail under CI, for want of ``what``."""
    message = f'{what} (install: {how})'
    if os.environ.get('CI') == 'true':
        pytest.fail(f'CI needs {message}', pytrace=False)
    pytest.skip(f'no {message}')


def require_relstorage() -> None:
    """RelStorage importable, or skip/fail."""
    try:
        import relstorage  # noqa: F401
    except ImportError as e:
        missing(f'RelStorage ({e})', "pip install -e '.[relstorage]'")


def require_postgres() -> str:
    """The bin dir of PostgreSQL and a usable RelStorage driver, or
    skip/fail."""
    path = bin_dir()
    if path is None:
        missing('PostgreSQL server binaries in /usr/lib/postgresql')
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            missing(f'the {RUN_AS} system user')
    require_relstorage()
    try:
        import psycopg2  # noqa: F401
    except ImportError as e:
        missing(f'a PostgreSQL driver ({e})', "pip install -e '.[relstorage]'")
    return path


class PostgresServer:
    """One cluster, one server process (the postmaster), one temp dir."""

    def __init__(self, bindir: str, **config: str) -> None:
        self.bindir = bindir
        # Throw-away data: no need to wait for the disk.
        self.config = {
            'fsync': 'off',
            'synchronous_commit': 'off',
            'full_page_writes': 'off',
            'shared_buffers': '32MB',
            'max_connections': '40',
            **config,
        }
        self.dir = tempfile.mkdtemp(prefix='pzeo-pg-')
        self.data = os.path.join(self.dir, 'data')
        self.socket_dir = self.dir
        self.log_path = os.path.join(self.dir, 'postgres.log')
        self.port = 0
        self.pid: int | None = None
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.dir, 0o700)

    # -- running commands as the cluster's owner -------------------------

    def _run(self, *args: str, timeout: float = 120.0, input=None):
        kw = {}
        if self.user is not None:
            kw = dict(
                user=self.user.pw_uid,
                group=self.user.pw_gid,
                extra_groups=[],
            )
        env = {
            'PATH': f'{self.bindir}:/usr/bin:/bin',
            'HOME': self.dir,
            'LC_ALL': 'C.UTF-8',
            'LANG': 'C.UTF-8',
        }
        return subprocess.run(
            [os.path.join(self.bindir, args[0]), *args[1:]],
            cwd=self.dir,
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,
        )

    def _check(self, *args: str, **kw) -> str:
        result = self._run(*args, **kw)
        if result.returncode:
            raise RuntimeError(
                f'{" ".join(args)} failed ({result.returncode}):\n'
                f'{result.stdout}{result.stderr}\n{self.log()}'
            )
        return result.stdout

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        pwfile = os.path.join(self.dir, 'pw')
        with open(pwfile, 'w') as f:
            f.write(PASSWORD + '\n')
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._check(
            'initdb', '-D', self.data, '-U', 'postgres', '-E', 'UTF8',
            '--no-instructions', '--auth-local=trust',
            '--auth-host=scram-sha-256', f'--pwfile={pwfile}',
        )
        os.remove(pwfile)
        for attempt in range(START_ATTEMPTS):
            self.port = free_port()
            options = ' '.join(
                [
                    "-c listen_addresses='127.0.0.1'",
                    f'-p {self.port}',
                    f'-k {self.socket_dir}',
                ]
                + [f'-c {k}={v}' for k, v in self.config.items()]
            )
            result = self._run(
                'pg_ctl', '-D', self.data, '-l', self.log_path,
                '-o', options, '-w', '-t', '60', 'start',
            )
            if result.returncode == 0:
                break
            if attempt == START_ATTEMPTS - 1:  # the port was taken?
                raise RuntimeError(
                    f'pg_ctl start failed:\n{result.stdout}'
                    f'{result.stderr}\n{self.log()}'
                )
        self.pid = self.postmaster_pid()

    def postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.data, 'postmaster.pid')) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def psql(self, sql: str, database: str = 'postgres') -> str:
        return self._check(
            'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h',
            self.socket_dir, '-p', str(self.port), '-U', 'postgres',
            '-d', database, '-At', '-c', sql,
        )

    def create_database(self, name: str) -> str:
        """A new database and its owner ``name``; its ``postgres://``
        URI (TCP, with the owner's password)."""
        self.psql(
            f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'"
        )
        self.psql(f'CREATE DATABASE {name} OWNER {name}')
        return self.uri(name)

    def uri(self, name: str, **params) -> str:
        query = '&'.join(f'{k}={v}' for k, v in params.items())
        return (
            f'postgres://{name}:{PASSWORD}@127.0.0.1:{self.port}/{name}'
            + (f'?{query}' if query else '')
        )

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; then no process of this cluster may
        remain (checked; killed by pid if one did)."""
        if self.pid is None:
            return
        before = self.processes()
        result = self._run(
            'pg_ctl', '-D', self.data, '-m', 'fast', '-w', '-t', '60',
            'stop',
        )
        leftover = wait_gone(before, 30.0)
        for pid in leftover:  # only if pg_ctl failed
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.pid = None
        if result.returncode or leftover:
            raise RuntimeError(
                f'pg_ctl stop failed ({result.returncode}), left '
                f'{leftover}:\n{result.stdout}{result.stderr}'
            )

    def processes(self) -> list[int]:
        """Live processes of this cluster: the postmaster and its
        children (found in /proc by parent pid)."""
        if self.pid is None:
            return []
        pids = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if fields[0] == 'Z':
                continue
            if int(entry) == self.pid or int(fields[1]) == self.pid:
                pids.append(int(entry))
        return pids

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return '(no log)'


def wait_gone(pids, limit: float = 30.0) -> list[int]:
    """The pids of ``pids`` still alive after at most ``limit`` s."""
    deadline = time.monotonic() + limit
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if os.path.exists(f'/proc/{p}')]
        if alive:
            time.sleep(0.05)
    return alive


@contextmanager
def running_postgres(**config: str):
    """A started :class:`PostgresServer`, stopped (and checked gone) and
    its temp dir removed at exit. Skips, or fails under CI, without
    PostgreSQL."""
    server = PostgresServer(require_postgres(), **config)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.cleanup()
