"""Run the ready app under real Apache + mod_wsgi (``mod_wsgi-express``).

The deployment test needs three things the rest of the suite does not:

* **A Python that www-data can load.** Apache refuses to run as root, so
  its mod_wsgi daemon processes run as ``www-data``, and cannot read a
  Python under a 0700 home (pyenv in /root). :func:`ensure_venv` builds a
  venv from Debian's ``/usr/bin/python3`` under ``/var/tmp`` (world
  readable, not writable) with mod_wsgi, compiled against Debian's
  ``apache2-dev``, and this project's dependencies from pyproject.toml.
  It is keyed by a hash of pyproject.toml and reused between runs.
* **This checkout's code, readable by www-data.** A CI clone may live in
  a 0700 temp dir, so :func:`install_app` copies the package sources into
  the test's own dir and installs them there with ``pip --target`` (code
  and entry points: ``egg:pyramid_zeostore`` resolves), together with
  ``tests.functional.workerpid``. The shared venv is never modified.
* **A ZEO socket that www-data can reach and others cannot.**
  :class:`WebZEO` runs ``runzeo -C`` with this repo's ``deploy/zeo.conf``
  (its VAR moved to a temp dir) the way ``deploy/runzeo.service`` does:
  group www-data, umask 0007, in a ``var/`` dir of mode 2770.

:class:`ModWSGIServer` starts ``mod_wsgi-express start-server`` in the
foreground (its own session), stops it with the generated ``apachectl
stop`` and waits until every process of that Apache is gone.

Anything missing (Apache, apxs, Debian's python3, the mod_wsgi build)
raises :class:`Unavailable`; the test turns that into a skip, or into a
failure when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import datetime
import grp
import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence

from pyramid_zeostore import zeoserver
from pyramid_zeostore.testing import ZEOProcess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(REPO, 'deploy')

#: Debian's Python: its prefix (/usr) is readable by every user.
SYSTEM_PYTHON = os.environ.get('ZEOSTORE_MODWSGI_PYTHON', '/usr/bin/python3')
#: Where the reusable venvs live; /var/tmp survives reboots, unlike /tmp.
STATE_DIR = os.environ.get(
    'ZEOSTORE_MODWSGI_DIR', '/var/tmp/pyramid_zeostore-modwsgi'
)
WEB_USER = WEB_GROUP = 'www-data'
#: Bumped when what goes into the venv changes beyond pyproject.toml.
VENV_LAYOUT = '1'
VENV_BUILD_TIMEOUT = 900.0
INSTALL_TIMEOUT = 300.0
#: A venv of another key unused this long is removed when a new one is
#: built.
STALE_VENV_SECONDS = 24 * 3600
PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class Unavailable(RuntimeError):
    """Apache, mod_wsgi or the Python for www-data cannot be had here."""


def _run(args, timeout, what, **kw) -> str:
    """Run ``args``; its output, or :class:`Unavailable` with its tail."""
    try:
        proc = subprocess.run(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=timeout, umask=0o022, **kw,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.output or b'').decode(errors='replace')
        raise Unavailable(
            f'{what}: timed out after {timeout:g}s:\n{out[-4000:]}'
        ) from None
    except OSError as e:
        raise Unavailable(f'{what}: {e}') from None
    out = proc.stdout.decode(errors='replace')
    if proc.returncode:
        raise Unavailable(
            f'{what}: exit status {proc.returncode}:\n{out[-4000:]}'
        )
    return out


# -- prerequisites ---------------------------------------------------------

def check_prerequisites() -> None:
    """Raise :class:`Unavailable` naming what this machine lacks."""
    missing = []
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        missing.append(f'{SYSTEM_PYTHON} (Debian python3, python3-venv)')
    if not (shutil.which('apxs') or shutil.which('apxs2')):
        missing.append('apxs (Debian apache2-dev)')
    if not any(
        os.access(p, os.X_OK)
        for p in ('/usr/sbin/apache2', '/usr/sbin/httpd')
    ):
        missing.append('/usr/sbin/apache2 (Debian apache2)')
    try:
        pwd.getpwnam(WEB_USER)
        grp.getgrnam(WEB_GROUP)
    except KeyError:
        missing.append(f'user and group {WEB_USER}')
    if missing:
        raise Unavailable(
            'missing: ' + ', '.join(missing)
            + ' (bash .ci/install-deploy installs Apache)'
        )
    if os.geteuid() != 0:
        raise Unavailable(
            'must run as root: Apache switches to www-data, and the test '
            'gives files to that group'
        )


# -- the venv ---------------------------------------------------------------

def _pyproject() -> dict:
    import tomllib

    with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
        return tomllib.load(f)


def requirements() -> list[str]:
    """What the venv holds: mod_wsgi, the build backend, the deps."""
    data = _pyproject()
    return (
        ['mod_wsgi']
        + list(data['build-system']['requires'])
        + list(data['project']['dependencies'])
    )


def venv_key() -> str:
    h = hashlib.sha256()
    with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
        h.update(f.read())
    h.update(VENV_LAYOUT.encode())
    h.update(os.path.realpath(SYSTEM_PYTHON).encode())
    return h.hexdigest()[:16]


def ensure_venv(log=print) -> str:
    """The venv for mod_wsgi, built on first use; its path.

    Built under a lock (two test runs do not build it twice), marked
    complete only when every install succeeded, and readable, not
    writable, by others.
    """
    check_prerequisites()
    os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
    os.chmod(STATE_DIR, 0o755)
    venv = os.path.join(STATE_DIR, f'venv-{venv_key()}')
    marker = os.path.join(venv, '.complete')
    # One builder at a time: the flock that serialises ZEO autostart.
    with zeoserver._start_lock(os.path.join(STATE_DIR, '.lock')):
        if os.path.exists(marker):
            os.utime(marker)  # in use: not stale
            return venv
        _prune_stale(venv)
        shutil.rmtree(venv, ignore_errors=True)
        start = time.monotonic()
        log(f'building {venv} from {SYSTEM_PYTHON} ...')
        _run([SYSTEM_PYTHON, '-m', 'venv', venv], 120, 'python3 -m venv')
        pip = [os.path.join(venv, 'bin', 'python'), '-m', 'pip']
        env = dict(
            PATH=PATH, HOME=STATE_DIR, LANG='C.UTF-8',
            PIP_DISABLE_PIP_VERSION_CHECK='1',
        )
        _run(
            pip + ['install', '--no-cache-dir', '--quiet', *requirements()],
            VENV_BUILD_TIMEOUT,
            'pip install mod_wsgi and the dependencies into ' + venv,
            env=env,
        )
        with open(marker, 'w') as f:
            f.write('\n'.join(requirements()) + '\n')
        log(f'built {venv} in {time.monotonic() - start:.1f}s')
    return venv


def _prune_stale(keep: str) -> None:
    now = time.time()
    for name in os.listdir(STATE_DIR):
        path = os.path.join(STATE_DIR, name)
        if not name.startswith('venv-') or path == keep:
            continue
        try:
            used = os.stat(os.path.join(path, '.complete')).st_mtime
        except OSError:
            used = os.stat(path).st_mtime
        if now - used > STALE_VENV_SECONDS:
            shutil.rmtree(path, ignore_errors=True)


def install_app(venv: str, dest: str) -> str:
    """Install this checkout into ``dest``/lib for www-data; that path.

    Sources are copied first, so that the build writes nothing into the
    checkout; ``--no-build-isolation`` uses the venv's setuptools, offline.
    """
    src = os.path.join(dest, 'src')
    lib = os.path.join(dest, 'lib')
    os.makedirs(src)
    for name in ('pyproject.toml', 'setup.py', 'README.md'):
        shutil.copy(os.path.join(REPO, name), src)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    shutil.copytree(
        os.path.join(REPO, 'pyramid_zeostore'),
        os.path.join(src, 'pyramid_zeostore'),
        ignore=ignore,
    )
    _run(
        [
            os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'install',
            '--quiet', '--no-deps', '--no-build-isolation', '--no-cache-dir',
            '--no-index', '--target', lib, src,
        ],
        INSTALL_TIMEOUT,
        'pip install --target (this checkout)',
        env=dict(PATH=PATH, HOME=dest, LANG='C.UTF-8',
                 PIP_DISABLE_PIP_VERSION_CHECK='1'),
        cwd=dest,
    )
    # The pid-reporting filter, under its dotted name.
    pkg = os.path.join(lib, 'tests', 'functional')
    os.makedirs(pkg)
    for init in (os.path.join(lib, 'tests'), pkg):
        open(os.path.join(init, '__init__.py'), 'w').close()
    shutil.copy(os.path.join(HERE, 'workerpid.py'), pkg)
    shutil.rmtree(src)
    return lib


def make_web_dir() -> str:
    """A temp dir that www-data may traverse and read (not write)."""
    path = tempfile.mkdtemp(prefix='zeostore-modwsgi-')
    os.chmod(path, 0o755)
    return path


def runs_as(uid: int, gid: int, path: str, mode: int = os.R_OK) -> bool:
    """Whether a process of ``uid``/``gid`` may access ``path``."""
    proc = subprocess.run(
        [SYSTEM_PYTHON, '-c',
         f'import os, sys; sys.exit(not os.access({path!r}, {mode}))'],
        user=uid, group=gid, extra_groups=[], timeout=30,
        stdin=subprocess.DEVNULL, capture_output=True,
    )
    return proc.returncode == 0


# -- ZEO for www-data -----------------------------------------------------

class WebZEO(ZEOProcess):
    """``runzeo -C deploy/zeo.conf`` as runzeo.service runs it.

    Group www-data, umask 0007: the socket and files are 0770/0660 (root
    here stands in for the zeo user), in ``var/`` (2770 root:www-data,
    where the app also creates its lock file) and ``var/data`` (0700).
    """

    stop_wait, kill_wait = 30, 10

    def __init__(self, directory: str) -> None:
        # Not ZEOProcess's own zeo.conf: deploy/'s, its VAR moved here.
        self.var = self.dir = os.path.join(directory, 'var')
        self.sock = os.path.join(self.var, 'zeo.sock')
        self.conf_path = os.path.join(directory, 'zeo.conf')
        self.proc: subprocess.Popen | None = None
        self.gid = grp.getgrnam(WEB_GROUP).gr_gid
        with open(os.path.join(DEPLOY, 'zeo.conf')) as f:
            conf = f.read()
        production = '%define VAR /srv/myapp/var'
        assert production in conf, 'deploy/zeo.conf: no VAR to move'
        with open(self.conf_path, 'w') as f:
            f.write(conf.replace(production, f'%define VAR {self.var}'))
        os.mkdir(self.var)
        os.chown(self.var, 0, self.gid)
        os.chmod(self.var, 0o2770)
        os.mkdir(os.path.join(self.var, 'data'), 0o700)

    def popen_options(self) -> dict:
        # As runzeo.service runs it: group www-data, umask 007.
        return {
            'cwd': self.var,
            'group': self.gid,
            'extra_groups': [],
            'umask': 0o007,
            'start_new_session': True,
        }

    def world_accessible(self) -> list[str]:
        """Paths under var/ that others may write (or, for the socket and
        data, read): must be none."""
        bad = []
        for dirpath, dirnames, filenames in os.walk(self.var):
            for name in [''] + dirnames + filenames:
                path = os.path.join(dirpath, name) if name else dirpath
                mode = os.lstat(path).st_mode
                if mode & stat.S_IWOTH or (
                    (stat.S_ISSOCK(mode) or 'data' in path)
                    and mode & stat.S_IRWXO
                ):
                    bad.append(f'{path} {stat.filemode(mode)}')
        return bad

    def server_status(self) -> dict:
        """ZEO's status of storage '1', asked by a client of our own (so
        ``connections`` counts it too)."""
        from ZEO.ClientStorage import ClientStorage

        storage = ClientStorage(
            self.sock, wait_timeout=30, read_only=True
        )
        try:
            return storage.server_status()
        finally:
            storage.close()


# -- Apache + mod_wsgi -----------------------------------------------------

def _children(pid: int) -> set[int]:
    """Descendants of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                stat_line = f.read()
        except OSError:
            continue
        fields = stat_line.rsplit(b')', 1)[1].split()
        parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier}
        frontier -= found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            state = f.read().rsplit(b')', 1)[1].split()[0]
    except OSError:
        return False
    return state != b'Z'


def proc_uid(pid: int) -> int | None:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('Uid:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class ModWSGIServer:
    """``mod_wsgi-express start-server SCRIPT`` on 127.0.0.1:``port``."""

    def __init__(self, venv: str, directory: str, script: str, port: int,
                 python_path: str, env: dict, processes: int = 3,
                 threads: int = 2, args: Sequence[str] = ()) -> None:
        self.venv = venv
        self.directory = directory
        self.server_root = os.path.join(directory, 'apache')
        self.script = script
        self.port = port
        self.url = f'http://127.0.0.1:{port}'
        self.python_path = python_path
        self.env = env
        self.processes = processes
        self.threads = threads
        #: more ``start-server`` options, e.g. ``--maximum-requests 20``
        self.args = list(args)
        self.output = os.path.join(directory, 'mod_wsgi-express.out')
        self.error_log_path = os.path.join(self.server_root, 'error_log')
        self.proc: subprocess.Popen | None = None
        #: Every process of this Apache seen while it ran (stop waits for
        #: all of them).
        self.pids: set[int] = set()

    def command(self) -> list[str]:
        return [
            os.path.join(self.venv, 'bin', 'mod_wsgi-express'),
            'start-server', self.script,
            '--server-root', self.server_root,
            '--host', '127.0.0.1',
            '--port', str(self.port),
            '--processes', str(self.processes),
            '--threads', str(self.threads),
            '--user', WEB_USER,
            '--group', WEB_GROUP,
            '--python-path', self.python_path,
            '--working-directory', self.directory,
            '--locale', 'C.UTF-8',
            '--log-level', 'info',
            *self.args,
        ]

    def stop_command(self) -> list[str]:
        # Written by mod_wsgi-express into the server root.
        return [os.path.join(self.server_root, 'apachectl'), 'stop']

    def start(self, timeout: float = 60.0) -> None:
        with open(self.output, 'wb') as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self.env,
                start_new_session=True,
            )
        self.pids.add(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f'mod_wsgi-express exited ({self.proc.returncode}):\n'
                    + self.logs()
                )
            try:
                with socket.create_connection(
                    ('127.0.0.1', self.port), 1
                ):
                    self.note_processes()
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError('Apache did not listen:\n' + self.logs())

    @property
    def master_pid(self) -> int | None:
        try:
            with open(os.path.join(self.server_root, 'httpd.pid')) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return self.proc.pid if self.proc else None

    def note_processes(self) -> set[int]:
        """Record (and return) the live processes of this Apache."""
        live = set()
        for root in {self.master_pid, self.proc and self.proc.pid}:
            if root:
                live |= {root} | _children(root)
        live = {p for p in live if _alive(p)}
        self.pids |= live
        return live

    def daemons(self) -> set[int]:
        """Live mod_wsgi daemon processes of this Apache: children of the
        master running as www-data, named ``(wsgi:HOST:PORT:UID)``."""
        uid = pwd.getpwnam(WEB_USER).pw_uid
        master = self.master_pid
        found = set()
        for pid in _children(master) if master else ():
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    cmdline = f.read()
            except OSError:
                continue
            if cmdline.startswith(b'(wsgi:') and proc_uid(pid) == uid:
                found.add(pid)
        return found

    def stop(self, timeout: float = 30.0) -> list[int]:
        """``apachectl stop``; wait for every process of it to end.

        Processes still alive after ``timeout`` are killed by pid and
        returned (an empty list: a clean stop).
        """
        if self.proc is None:
            return []
        self.note_processes()
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    self.stop_command(), env=self.env, timeout=timeout,
                    stdin=subprocess.DEVNULL, capture_output=True,
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            if not any(_alive(p) for p in self.pids):
                break
            time.sleep(0.1)
        left = sorted(p for p in self.pids if _alive(p))
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        return left

    def error_log(self, limit: int | None = 12000) -> str:
        """The tail of Apache's error log (``limit=None``: all of it)."""
        try:
            with open(self.error_log_path, errors='replace') as f:
                text = f.read()
        except OSError:
            return '(no error_log)'
        return text[-limit:] if limit else text

    def logs(self) -> str:
        try:
            with open(self.output, errors='replace') as f:
                out = f.read()[-4000:]
        except OSError:
            out = ''
        return (
            f'--- mod_wsgi-express output ---\n{out}\n'
            f'--- {self.error_log_path} ---\n{self.error_log()}'
        )


class DaemonWatch:
    """Which daemon processes of a :class:`ModWSGIServer` were alive, and
    when: polls ``server.daemons()`` every ``interval`` seconds in a thread
    until :meth:`stop` (or ``limit`` seconds), and records each pid's first
    and last sighting (``time.monotonic()``), and the Apache master pids
    seen."""

    def __init__(self, server: ModWSGIServer, interval: float = 0.05,
                 limit: float = 600.0) -> None:
        self.server = server
        self.interval = interval
        self.limit = limit
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.masters: set[int | None] = set()
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> set[int]:
        """Look now; the live daemon pids."""
        live = self.server.daemons()
        master = self.server.master_pid
        now = time.monotonic()
        with self._lock:
            self.masters.add(master if master and _alive(master) else None)
            for pid in live:
                self.first.setdefault(pid, now)
                self.last[pid] = now
        return live

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self._halt.is_set() and time.monotonic() < end:
            self.poll()
            self._halt.wait(self.interval)

    def start(self) -> DaemonWatch:
        self.poll()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(self.interval + 30)

    def seen(self) -> set[int]:
        """Every daemon pid seen so far."""
        with self._lock:
            return set(self.first)

    def born_after(self, when: float) -> set[int]:
        """Daemons first seen after ``when``."""
        with self._lock:
            return {p for p, t in self.first.items() if t > when}


def log_pids(log: str, marker: str) -> set[int]:
    """The pids of the Apache error-log lines containing ``marker``
    (``[pid 123:tid 456]``: the process that wrote the line)."""
    found = set()
    for line in log.splitlines():
        if marker not in line or '[pid ' not in line:
            continue
        digits = line.split('[pid ', 1)[1].split(':', 1)[0]
        if digits.isdigit():
            found.add(int(digits))
    return found


#: the error-log lines of a daemon process's life, as mod_wsgi (4.9 to
#: 6.x) writes them at ``--log-level info``
LIFE_EVENTS = {
    'start': 'Starting daemon process',
    # the first request handed to the daemon (its script was preloaded)
    'first_request': 'Application startup timer started',
    # its first request past ``maximum-requests`` (graceful or not)
    'count': 'Maximum requests reached',
    'shutdown': 'Shutdown requested for daemon process',
    'exit': 'Exiting daemon process',
}


def _log_time(line: str) -> float | None:
    """The epoch seconds of an error-log line ``[Fri Dec 04 08:00:03.27
    2026] ...``."""
    if not line.startswith('['):
        return None
    try:
        stamp = datetime.datetime.strptime(
            line[1:line.index(']')], '%a %b %d %H:%M:%S.%f %Y'
        )
    except ValueError:
        return None
    return stamp.timestamp()


def daemon_lives(log: str) -> dict[int, dict[str, float]]:
    """{daemon pid: {event: epoch seconds of its first line}} from Apache's
    error log: the events of :data:`LIFE_EVENTS`, and ``died`` (the
    master noticed the exit and starts a replacement)."""
    lives: dict[int, dict[str, float]] = {}
    for line in log.splitlines():
        if '(pid=' in line and ') has died' in line:
            digits = line.split('(pid=', 1)[1].split(')', 1)[0]
            event = 'died'
        else:
            event = next(
                (e for e, m in LIFE_EVENTS.items() if m in line), None
            )
            if event is None or '[pid ' not in line:
                continue
            digits = line.split('[pid ', 1)[1].split(':', 1)[0]
        when = _log_time(line)
        if digits.isdigit() and when is not None:
            lives.setdefault(int(digits), {}).setdefault(event, when)
    return lives


def web_env(directory: str, **extra) -> dict:
    """A clean environment for Apache and its daemons: nothing of root's
    pyenv or coverage, a home www-data can read, a UTF-8 locale."""
    env = dict(
        PATH=PATH,
        HOME=directory,
        LANG='C.UTF-8',
        LC_ALL='C.UTF-8',
    )
    env.update(extra)
    return env


APACHE_CONF = """\
# The minimal server around deploy/apache-myapp.conf (Debian's modules).
ServerRoot "{root}"
ServerName localhost
Define APACHE_LOG_DIR {root}/logs
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
{module_config}
PidFile {root}/httpd.pid
ErrorLog {root}/logs/error_log
LogLevel info
LogFormat "%h %l %u %t \\"%r\\" %>s %O" combined
DefaultRuntimeDir {root}/run
Mutex file:{root}/run default
WSGISocketPrefix {root}/run/wsgi
User {user}
Group {group}
Listen 127.0.0.1:{port}
Include {root}/myapp.conf
"""


class ApacheConfServer(ModWSGIServer):
    """Debian's ``apache2 -DFOREGROUND`` serving deploy/apache-myapp.conf.

    The conf is used as shipped but for its paths: the venv, the folder of
    app.wsgi, the address (``*:80`` -> 127.0.0.1:``port``), and a
    ``python-path`` for the app installed by :func:`install_app`.
    """

    def __init__(self, venv: str, directory: str, deploy_dir: str,
                 port: int, python_path: str, env: dict) -> None:
        super().__init__(venv, directory, '', port, python_path, env)
        root = self.server_root
        for sub in ('', 'logs', 'run'):
            os.makedirs(os.path.join(root, sub), mode=0o755, exist_ok=True)
        self.conf = os.path.join(root, 'httpd.conf')
        self.error_log_path = os.path.join(root, 'logs', 'error_log')
        with open(os.path.join(DEPLOY, 'apache-myapp.conf')) as f:
            site = f.read()
        for old, new in (
            ('python-home=/srv/myapp/venv',
             f'python-home={venv} python-path={python_path}'),
            ('/srv/myapp/deploy', deploy_dir),
            ('<VirtualHost *:80>', f'<VirtualHost 127.0.0.1:{port}>'),
        ):
            assert old in site, f'apache-myapp.conf: no {old!r}'
            site = site.replace(old, new)
        with open(os.path.join(root, 'myapp.conf'), 'w') as f:
            f.write(site)
        module_config = _run(
            [os.path.join(venv, 'bin', 'mod_wsgi-express'),
             'module-config'],
            60, 'mod_wsgi-express module-config',
        )
        with open(self.conf, 'w') as f:
            f.write(APACHE_CONF.format(
                root=root, module_config=module_config, user=WEB_USER,
                group=WEB_GROUP, port=port,
            ))

    def command(self) -> list[str]:
        return [_apache_binary(), '-f', self.conf, '-DFOREGROUND']

    def stop_command(self) -> list[str]:
        return [_apache_binary(), '-f', self.conf, '-k', 'stop']

    def check_syntax(self) -> str:
        return _run(
            [_apache_binary(), '-f', self.conf, '-t'], 60,
            'apache2 -t (deploy/apache-myapp.conf)', env=self.env,
        )


def _apache_binary() -> str:
    for path in ('/usr/sbin/apache2', '/usr/sbin/httpd'):
        if os.access(path, os.X_OK):
            return path
    raise Unavailable('no apache2 binary')
