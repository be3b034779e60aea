"""Start, stop and probe a ZEO server described by a ``zeo.conf``.

Used by ``zeostore.autostart`` in development and by the test suite.
The server always runs as ZEO's own ``runzeo -C zeo.conf`` in a process
of its own (its own session, so it outlives the app that started it);
nothing here serves ZEO inside the web process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator, Union

import ZConfig
import ZConfig.datatypes
import ZConfig.loader
import ZEO
from ZODB.config import BlobStorage, FileStorage

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
    """
    path = os.path.abspath(path)
    config, _ = ZConfig.loadConfig(_schema(), path)
    here = os.path.dirname(path)
    # ZConfig gives a SocketBindingAddress: .address is a path or a tuple.
    address = getattr(config.zeo.address, 'address', config.zeo.address)
    if isinstance(address, str):
        address = os.path.normpath(os.path.join(here, address))
    else:
        host, port = address
        if not port:
            raise ValueError(
                f'{path}: address {host!r} has no port; use HOST:PORT, or '
                'a socket path with a "/" in it (e.g. ./var/zeo.sock)'
            )
        if host in ('', None, '0.0.0.0'):
            host = '127.0.0.1'
        elif host == '::':
            host = '::1'
        address = (host, port)
    pid_file = config.zeo.pid_filename
    if pid_file:
        pid_file = os.path.normpath(os.path.join(here, pid_file))
    return ZEOConf(
        path, address, pid_file, _file_storages(config.storages, here)
    )


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
    already running (its socket is left as it is). Raises
    ``RuntimeError`` naming the log file if the new server does not
    answer within ``timeout`` seconds, or its socket cannot be given
    that mode and group (the server is stopped then).
    """
    if is_listening(conf.address):
        return None
    unix = isinstance(conf.address, str)
    _make_var_dir(conf.var_dir, socket_group if unix else None)
    with _start_lock(conf.lock_file):
        if is_listening(conf.address):
            return None  # another process started it while we waited
        log_fd = os.open(
            conf.log_file,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
            0o600,
        )
        try:
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
        problem = f'did not answer at {conf.address} within {timeout:g}s'
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
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
            time.sleep(POLL)
        stop_process(proc, 5)
        _started.pop(proc.pid, None)
        raise RuntimeError(
            f'runzeo -C {conf.path} {problem} '
            f'(exit status {proc.returncode}); see {conf.log_file}'
        )


def _make_var_dir(path: str, gid: int | None) -> None:
    """Create the server's folder: 0700, or 0750 of group ``gid``.

    An existing folder is left as it is; if ``gid`` cannot enter it,
    a warning says so (its users could not reach the socket).
    """
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mkdir(path, 0o700)  # never more than 0700, whatever the umask
    except FileExistsError:
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
