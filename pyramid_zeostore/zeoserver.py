"""Start, stop and probe a ZEO server described by a ``zeo.conf``.

Used by ``zeostore.autostart`` in development, ``pzeo start``/``stop``
and the test suite; :func:`load_zeo_conf` also checks that the zeo.conf
starts the server that the app's ``zodb_uri`` names.
The server always runs as ZEO's own ``runzeo -C zeo.conf`` in a process
of its own (its own session, so it outlives the app that started it);
nothing here serves ZEO inside the web process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator, Union

import ZConfig
import ZConfig.datatypes
import ZConfig.loader
import ZEO
from ZODB.config import BlobStorage, FileStorage

from .display import format_address
from .exceptions import ZeostoreConfigurationError

if TYPE_CHECKING:
    from .settings import DatabaseSpec

Address = Union[str, tuple]

log = logging.getLogger(__name__)

POLL = 0.05

#: Servers this process started, kept so that they are reaped (and
#: Python does not warn about a child "still running" at exit).
_started: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class FileStorageConf:
    """A FileStorage that a ``zeo.conf`` serves.

    ``name`` is its ZEO storage name (``'1'`` when the section has
    none), ``path`` its ``Data.fs`` and ``blob_dir`` its blob folder
    (of an enclosing ``<blobstorage>`` or its own ``blob-dir``), both
    absolute.
    """

    name: str
    path: str
    blob_dir: str | None = None


@dataclass(frozen=True)
class ZEOConf:
    """What a ``zeo.conf`` says about where its server listens, and the
    FileStorages it serves (other storage types are left out)."""

    path: str
    address: Address
    pid_file: str | None
    # Read from the same file as the rest: not part of equality.
    storages: tuple[FileStorageConf, ...] = field(
        default=(), compare=False
    )
    #: A TCP server bound to every interface (``8100``, ``0.0.0.0:8100``,
    #: ``[::]:8100``): ``address`` is then its loopback.
    everywhere: bool = field(default=False, compare=False)

    @property
    def var_dir(self) -> str:
        """Where the autostarted server keeps its log and lock file."""
        if isinstance(self.address, str):
            return os.path.dirname(self.address)
        return os.path.dirname(self.path)

    @property
    def log_file(self) -> str:
        return os.path.join(self.var_dir, 'zeo.log')

    @property
    def lock_file(self) -> str:
        return os.path.join(self.var_dir, 'zeo.start.lock')


def read_zeo_conf(path: str) -> ZEOConf:
    """Parse ``path`` with ZEO's own schema; opens no storage.

    Relative paths (socket, pid file) are taken from the zeo.conf's
    folder, where :func:`ensure_server` runs ``runzeo``; a TCP address
    that binds every interface (``8100``, ``:8100``) is probed on the
    loopback.

    :raises ValueError: the address has no port to connect to.
    :raises ZConfig.ConfigurationError: ZEO's schema refuses the file.
    """
    path = os.path.abspath(path)
    config, _ = ZConfig.loadConfig(_schema(), path)
    here = os.path.dirname(path)
    # ZConfig gives a SocketBindingAddress: .address is a path or a tuple.
    address = getattr(config.zeo.address, 'address', config.zeo.address)
    everywhere = False
    if isinstance(address, str):
        address = os.path.normpath(os.path.join(here, address))
    else:
        host, port = address
        if not port:
            raise ValueError(
                f'{path}: address {host!r} has no port; use HOST:PORT, or '
                'a socket path with a "/" in it (e.g. ./var/zeo.sock)'
            )
        everywhere = host in ('', None, '0.0.0.0', '::')
        if host in ('', None, '0.0.0.0'):
            host = '127.0.0.1'
        elif host == '::':
            host = '::1'
        address = (host, port)
    pid_file = config.zeo.pid_filename
    if pid_file:
        pid_file = os.path.normpath(os.path.join(here, pid_file))
    return ZEOConf(
        path, address, pid_file, _file_storages(config.storages, here),
        everywhere,
    )


def load_zeo_conf(
    path: str,
    databases: Iterable[DatabaseSpec] = (),
    key: str = 'zeostore.zeo_conf',
) -> ZEOConf:
    """:func:`read_zeo_conf` for autostart and ``pzeo start``: the zeo.conf
    of the server that ``databases`` connect to (see :func:`check_address`).

    :raises ZeostoreConfigurationError: naming ``key``: the file cannot be
        read, ZEO's schema refuses it, or its server is none of theirs.
    """
    try:
        conf = read_zeo_conf(path)
    except (ZConfig.ConfigurationError, ValueError, OSError) as e:
        where = getattr(e, 'lineno', None)
        reason = getattr(e, 'message', None) or str(e)
        if where:
            reason += f' (line {where})'
        raise ZeostoreConfigurationError(
            key, path, f'expected a zeo.conf that runzeo reads ({reason})'
        ) from None
    check_address(conf, databases, key)
    return conf


def check_address(
    conf: ZEOConf,
    databases: Iterable[DatabaseSpec],
    key: str = 'zeostore.zeo_conf',
) -> None:
    """Refuse a zeo.conf whose server no ZEO database of ``databases``
    connects to: started, it would serve no one (and the app 503s).

    One address of one ZEO database must be the conf's (see
    :func:`same_address`). Nothing is checked when no database has a
    ZEO address, or one is a ``zconfig://`` file (its client is not
    known here).

    :raises ZeostoreConfigurationError: naming ``key`` and both sides.
    """
    databases = tuple(databases)
    zeo = [spec for spec in databases if spec.is_zeo]
    if not zeo or any(s.uri.startswith('zconfig:') for s in databases):
        return
    for spec in zeo:
        if any(same_address(conf, a) for a in spec.zeo.addresses):
            return
    clients = ', '.join(
        f'{spec.key} connects to {spec.display_address}' for spec in zeo
    )
    raise ZeostoreConfigurationError(
        key, conf.path,
        f'expected the zeo.conf of the server that zodb_uri names: it '
        f'starts a server at {format_address(conf.address)}, but '
        f'{clients} (zodb_uri must name the server the zeo.conf starts)',
    )


def same_address(conf: ZEOConf, address: Address) -> bool:
    """Whether a client of ``address`` reaches the server of ``conf``.

    Socket paths are compared resolved (symlinks, relative to the
    working folder). TCP: the same port, and a host that may be the
    conf's: the same, both loopback (``localhost``, ``127.0.0.1``,
    ``::1``), a host name (not resolved here), or any host when the
    server binds every interface.
    """
    ours = conf.address
    if isinstance(ours, str) or isinstance(address, str):
        return (
            isinstance(ours, str)
            and isinstance(address, str)
            and os.path.realpath(ours) == os.path.realpath(address)
        )
    (host, port), (other, other_port) = ours, address
    if port != other_port:
        return False
    if conf.everywhere:
        return True
    kinds = {_host_kind(host), _host_kind(other)}
    return (
        host.lower() == other.lower()
        or kinds == {'loopback'}
        or 'name' in kinds
    )


def _host_kind(host: str) -> str:
    """``'loopback'``, ``'ip'`` (another address) or ``'name'``."""
    host = host.strip('[]').lower()
    if host in ('', 'localhost'):
        return 'loopback'
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return 'name'
    return 'loopback' if ip.is_loopback else 'ip'


def _file_storages(openers, here: str) -> tuple[FileStorageConf, ...]:
    """The ``<filestorage>`` sections, bare or in a ``<blobstorage>``."""
    found = []
    for opener in openers:
        inner, blob_dir = opener, None
        if isinstance(opener, BlobStorage):
            inner, blob_dir = opener.config.base, opener.config.blob_dir
        if not isinstance(inner, FileStorage):
            continue  # a mapping, demo, or a storage of another package
        blob_dir = blob_dir or inner.config.blob_dir
        found.append(FileStorageConf(
            opener.name or '1',  # runzeo's name for an unnamed storage
            os.path.normpath(os.path.join(here, inner.config.path)),
            os.path.normpath(os.path.join(here, blob_dir))
            if blob_dir else None,
        ))
    return tuple(found)


def _schema():
    # ZEO's schema, except that the folders of paths (storage, pid file,
    # log) need not exist yet, nor be relative to *our* working folder:
    # runzeo checks them in its own, once ensure_server created var_dir.

    stock = dict(ZConfig.datatypes.stock_datatypes)
    stock['existing-dirpath'] = os.path.expanduser
    loader = ZConfig.loader.SchemaLoader(ZConfig.datatypes.Registry(stock))
    return loader.loadURL(
        os.path.join(os.path.dirname(ZEO.__file__), 'schema.xml')
    )


def is_listening(address: Address, timeout: float = 0.5) -> bool:
    """True when something accepts connections at ``address``."""
    try:
        if isinstance(address, str):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(address)
        else:
            socket.create_connection(address, timeout).close()
    except OSError:  # refused, absent, timed out, no such family
        return False
    return True


def wait_listening(address: Address, timeout: float) -> bool:
    """Poll ``address`` until it answers or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if is_listening(address):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


@contextlib.contextmanager
def _start_lock(path: str) -> Iterator[None]:
    # Serialises autostart among the processes of this host, so that two
    # workers starting at once start one server, not two.
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def stop_process(
    proc: subprocess.Popen,
    timeout: float = 15.0,
    sig: int = signal.SIGTERM,
    kill_wait: float = 5.0,
) -> None:
    """Stop a child this process started: ``sig``, then SIGKILL if it is
    still there after ``timeout`` seconds; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(kill_wait)


def runzeo_command(zeo_conf: str) -> list[str]:
    """The command that serves ``zeo_conf``: ZEO's runzeo, this Python."""
    return [sys.executable, '-m', 'ZEO.runzeo', '-C', zeo_conf]


def ensure_server(
    conf: ZEOConf,
    timeout: float,
    socket_mode: int = 0o600,
    socket_group: int | None = None,
    *,
    key: str = 'zeostore.zeo_conf',
) -> int | None:
    """Start ``runzeo -C conf.path`` unless a server already answers.

    The server runs detached (its own session), with umask 077 (its
    data, blobs, pid file and log are for this user only), its output
    appended to ``conf.log_file``. Once it answers, its Unix socket gets
    ``socket_mode`` (owner only by default) and, if given, the group
    ``socket_group`` (a gid): that group's users may then connect. A
    var folder created here is the owner's only (0700), or also
    enterable by that group (0750).

    Returns the pid of the server started, or ``None`` if one was
    already running (its socket is left as it is).

    :raises ZeostoreConfigurationError: naming ``key`` (the setting
        that named the zeo.conf): its var folder, start lock or log
        cannot be made; nothing was started.
    :raises RuntimeError: naming the log file: the new server exited
        (quoting the error it logged), did not answer within
        ``timeout`` seconds, or its socket cannot be given that mode
        and group (the server is stopped then).
    """
    if is_listening(conf.address):
        return None
    unix = isinstance(conf.address, str)
    with contextlib.ExitStack() as held:
        try:
            _make_var_dir(conf.var_dir, socket_group if unix else None)
            held.enter_context(_start_lock(conf.lock_file))
        except OSError as e:
            raise _folder_error(conf, key, e) from None
        if is_listening(conf.address):
            return None  # another process started it while we waited
        try:
            log_fd = os.open(
                conf.log_file,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                0o600,
            )
        except OSError as e:
            raise _folder_error(conf, key, e) from None
        try:
            log_start = os.fstat(log_fd).st_size
            began = time.monotonic()
            proc = subprocess.Popen(
                runzeo_command(conf.path),
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                cwd=os.path.dirname(conf.path),
                start_new_session=True,
                close_fds=True,
                umask=0o077,  # files for this user only; socket: below
            )
        finally:
            os.close(log_fd)
        _started[proc.pid] = proc
        problem = None
        deadline = began + timeout
        while proc.poll() is None:
            if is_listening(conf.address):
                try:
                    if unix:
                        set_socket_access(
                            conf.address, socket_mode, socket_group
                        )
                    return proc.pid
                except OSError as e:
                    problem = f'serves a socket it cannot share: {e}'
                    break
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        exited = proc.poll() is not None and problem is None
        elapsed = time.monotonic() - began
        stop_process(proc, 5)
        _started.pop(proc.pid, None)
        where = format_address(conf.address)
        if exited:
            why = _log_error(conf.log_file, log_start)
            raise RuntimeError(
                f'runzeo -C {conf.path} exited (exit status '
                f'{proc.returncode}) after {elapsed:.1f}s, before it '
                f'answered at {where}' + (f': {why}' if why else '')
                + f'; see {conf.log_file}'
            )
        if problem is None:
            problem = f'did not answer at {where} within {timeout:g}s'
        raise RuntimeError(
            f'runzeo -C {conf.path} {problem} '
            f'(exit status {proc.returncode}); see {conf.log_file}'
        )


def _folder_error(
    conf: ZEOConf, key: str, error: OSError
) -> ZeostoreConfigurationError:
    """The var folder (socket, log, start lock) cannot be made or used."""
    return ZeostoreConfigurationError(
        key, conf.path,
        f'expected a zeo.conf whose server can keep its socket, log and '
        f'start lock in {conf.var_dir} (cannot: {error})',
    )


#: A log line that says why runzeo stopped: a Python exception, runzeo's
#: own "Error: ..." (a usage or configuration error), a logged ERROR.
ERROR_LINE = re.compile(
    r'^(?:Error: |[A-Za-z_][\w.]*(?:Error|Exception)\b'
    r'|\S+ (?:ERROR|CRITICAL) )'
)
#: How much of the end of the log :func:`_log_error` reads, and quotes.
LOG_TAIL = 64 * 1024
LOG_LINES = 5
LOG_LINE_CHARS = 500


def _log_error(path: str, start: int) -> str | None:
    """What runzeo wrote to ``path`` from offset ``start`` on, to say why
    it stopped: the last error line, else its last (at most
    :data:`LOG_LINES`) lines; bounded. ``None`` if it wrote nothing."""
    try:
        with open(path, 'rb') as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(start, end - LOG_TAIL))
            text = f.read(LOG_TAIL).decode(errors='replace')
    except OSError:
        return None
    lines = [
        line.strip()[:LOG_LINE_CHARS] for line in text.splitlines()
        if line.strip() and line.strip('-')
    ]
    for line in reversed(lines):
        if ERROR_LINE.match(line):
            return line
    return ' | '.join(lines[-LOG_LINES:]) or None


def _make_var_dir(path: str, gid: int | None) -> None:
    """Create the server's folder: 0700, or 0750 of group ``gid``.

    An existing folder is left as it is; if ``gid`` cannot enter it,
    a warning says so (its users could not reach the socket).

    :raises OSError: it cannot be made (a file is in the way, ...).
    """
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mkdir(path, 0o700)  # never more than 0700, whatever the umask
    except FileExistsError:
        if not os.path.isdir(path):
            raise  # a file, or a file instead of a folder above it
        if gid is not None and not _group_can_enter(path, gid):
            log.warning(
                'group %s cannot enter %s (mode %s): its users cannot '
                'reach the ZEO socket; chgrp the folder to it and chmod '
                'g+x', gid, path, oct(stat.S_IMODE(os.stat(path).st_mode)),
            )
        return
    if gid is not None:
        os.chown(path, -1, gid)
        os.chmod(path, 0o750)


def _group_can_enter(path: str, gid: int) -> bool:
    st = os.stat(path)
    return bool(st.st_mode & 0o001) or (
        st.st_gid == gid and bool(st.st_mode & 0o010)
    )


def set_socket_access(path: str, mode: int, gid: int | None) -> None:
    """Give the Unix socket at ``path`` ``mode`` and group ``gid``.

    Connecting to a Unix socket takes write permission on it: ``0660``
    with a group lets that group's users in, ``0600`` only the owner.

    :raises OSError: ``path`` is not a socket (e.g. a symlink), or
        it cannot be changed.
    """
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.ENOTSOCK, 'not a socket', path)
    if gid is not None and st.st_gid != gid:
        os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, mode)


def server_pid(conf: ZEOConf) -> int | None:
    """The pid in the server's pid file, if that process is a live runzeo.

    A stale pid file (the server was killed) names a dead process or,
    after the pid was reused, some other program: both give ``None``.
    """
    if not conf.pid_file:
        return None
    try:
        with open(conf.pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or not _alive(pid) or not _is_runzeo(pid):
        return None
    return pid


def stop_server(conf: ZEOConf, timeout: float = 10.0) -> bool:
    """Stop the server named by the pid file; True if one was stopped.

    Sends SIGTERM (runzeo closes its storages and removes its socket and
    pid file), then SIGKILL if it is still alive after ``timeout``.
    """
    pid = server_pid(conf)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def _alive(pid: int) -> bool:
    proc = _started.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return True
        del _started[pid]  # reaped: it was our own child
        return False
    with contextlib.suppress(ChildProcessError):
        # Reap it if it is our own child, or it lingers as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # An orphan nobody reaps (PID 1 of many containers) stays a zombie:
    # it is dead all the same.
    return _proc_state(pid) != 'Z'


def _proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (None without /proc)."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(b')', 1)[1].split()[0].decode()


def _is_runzeo(pid: int) -> bool:
    """Whether ``pid`` runs runzeo (True when /proc cannot tell)."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            cmdline = f.read()
    except OSError:
        return True
    return b'runzeo' in cmdline
