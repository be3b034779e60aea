"""Start, stop and probe a ZEO server described by a ``zeo.conf``.

Used by ``zeostore.autostart`` in development and by the test suite.
The server always runs as ZEO's own ``runzeo -C zeo.conf`` in a process
of its own (its own session, so it outlives the app that started it);
nothing here serves ZEO inside the web process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Iterator, Union

Address = Union[str, tuple]

POLL = 0.05


@dataclass(frozen=True)
class ZEOConf:
    """What a ``zeo.conf`` says about where its server listens."""

    path: str
    address: Address
    pid_file: str | None

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
    """Parse ``path`` with ZEO's own schema; opens no storage."""
    import ZConfig
    import ZEO

    schema = ZConfig.loadSchema(
        os.path.join(os.path.dirname(ZEO.__file__), 'schema.xml')
    )
    config, _ = ZConfig.loadConfig(schema, os.path.abspath(path))
    here = os.path.dirname(os.path.abspath(path))
    address = config.zeo.address
    if isinstance(address, tuple) and address[0] in ('', None):
        address = ('127.0.0.1', address[1])
    elif isinstance(address, str):
        # runzeo runs in the zeo.conf's folder: relative paths start there
        address = os.path.join(here, address)
    pid_file = config.zeo.pid_filename
    if pid_file:
        pid_file = os.path.join(here, pid_file)
    return ZEOConf(os.path.abspath(path), address, pid_file)


def is_listening(address: Address, timeout: float = 0.5) -> bool:
    """True when something accepts connections at ``address``."""
    if isinstance(address, str):
        family = socket.AF_UNIX
    else:
        family = socket.AF_INET6 if ':' in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
        except OSError:
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def runzeo_command(zeo_conf: str) -> list[str]:
    """The command that serves ``zeo_conf``: ZEO's runzeo, this Python."""
    return [sys.executable, '-m', 'ZEO.runzeo', '-C', zeo_conf]


def ensure_server(conf: ZEOConf, timeout: float) -> int | None:
    """Start ``runzeo -C conf.path`` unless a server already answers.

    Returns the pid of the server started, or ``None`` if one was already
    running. Raises ``RuntimeError`` naming the log file if the new server
    does not answer within ``timeout`` seconds.
    """
    if is_listening(conf.address):
        return None
    with _start_lock(conf.lock_file):
        if is_listening(conf.address):
            return None
        os.makedirs(conf.var_dir, exist_ok=True)
        with open(conf.log_file, 'ab') as log:
            proc = subprocess.Popen(
                runzeo_command(conf.path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=os.path.dirname(conf.path),
                start_new_session=True,
                close_fds=True,
                umask=0o077,  # the socket is for this user only
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if is_listening(conf.address):
                return proc.pid
            time.sleep(POLL)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
        raise RuntimeError(
            f'runzeo -C {conf.path} did not answer at {conf.address} '
            f'within {timeout:g}s; see {conf.log_file}'
        )


def server_pid(conf: ZEOConf) -> int | None:
    """The pid in the server's pid file, if that process is alive."""
    if not conf.pid_file:
        return None
    try:
        with open(conf.pid_file) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop_server(conf: ZEOConf, timeout: float = 10.0) -> bool:
    """Stop the server named by the pid file; True if one was stopped."""
    pid = server_pid(conf)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(POLL)
    os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        # Reap it if it is our own child, or it lingers as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
