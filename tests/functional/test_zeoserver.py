"""pyramid_zeostore.zeoserver for real: probing sockets, starting and
stopping ``runzeo``.

``is_listening`` and ``wait_listening`` against real Unix and loopback TCP
listeners (absent, stale, refused, late); ``ensure_server`` starting a
detached ``runzeo`` in a temp dir, finding it running, restarting it
after a SIGKILL on its stale socket, naming the log of a server that
exits at once and quoting its error, a socket folder it cannot make (a
configuration error naming the setting), and ending one that outlives
its timeout (SIGTERM, then SIGKILL); ``server_pid``, ``stop_server``
and ``_alive`` on real child processes (stale, foreign, orphaned
zombie); and who may use the socket it serves (mode and group, the var
folder, ``set_socket_access``). Every process started here is stopped
by its pid, also when a test fails. The parts that need no process or
socket are in tests/unit/test_zeoserver.py.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from pyramid_zeostore import zeoserver
from pyramid_zeostore.zeoserver import ZEOConf
from tests.functional import conftest as fconf
from tests.unit.test_zeoserver import _mode, other_gid, write_conf


@pytest.fixture
def children():
    """Processes a test starts; killed (by pid) and reaped at the end."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture
def cleanup_servers():
    """ZEOConfs whose server must be stopped at the end, even on failure."""
    confs: list[ZEOConf] = []
    yield confs
    for conf in confs:
        zeoserver.stop_server(conf, timeout=5)
    for pid, proc in list(zeoserver._started.items()):
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        zeoserver._started.pop(pid, None)


# -- is_listening / wait_listening --------------------------------------------


def unix_listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(5)
    return s


def test_is_listening_unix(tmp_path):
    path = str(tmp_path / 's.sock')
    assert not zeoserver.is_listening(path)  # absent
    with unix_listener(path):
        assert zeoserver.is_listening(path)
    assert not zeoserver.is_listening(path)  # stale socket file
    assert os.path.exists(path)


def test_is_listening_tcp():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(5)
        address = s.getsockname()
        assert zeoserver.is_listening(address)
    assert not zeoserver.is_listening(address)


def test_is_listening_ipv6_loopback():
    # Refused, or no IPv6 on this host at all: False either way, no raise.
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]  # bound, not listening
    assert not zeoserver.is_listening(('::1', port))


def test_wait_listening(tmp_path):
    path = str(tmp_path / 's.sock')
    start = time.monotonic()
    assert not zeoserver.wait_listening(path, 0.2)
    assert time.monotonic() - start >= 0.2
    holder = []
    timer = threading.Timer(0.2, lambda: holder.append(unix_listener(path)))
    timer.start()
    try:
        assert zeoserver.wait_listening(path, 10)
    finally:
        timer.join()
        for s in holder:
            s.close()
    path2 = str(tmp_path / 's2.sock')
    with unix_listener(path2):
        assert zeoserver.wait_listening(path2, 0)  # answers at once


# -- ensure_server / server_pid / stop_server ---------------------------------


def test_ensure_server_starts_detached_then_finds_it(
    zeo_conf, cleanup_servers
):
    cleanup_servers.append(zeo_conf)
    old_umask = os.umask(0)  # the socket must not inherit a lax umask
    try:
        pid = zeoserver.ensure_server(zeo_conf, 30)
    finally:
        os.umask(old_umask)
    assert pid is not None
    assert zeoserver.is_listening(zeo_conf.address)
    assert os.getsid(pid) == pid  # a session of its own
    assert os.getpgid(pid) == pid
    mode = stat.S_IMODE(os.stat(zeo_conf.address).st_mode)
    assert mode & 0o077 == 0, oct(mode)  # this user's only
    assert os.path.exists(zeo_conf.log_file)
    # runzeo writes its pid file once it serves.
    deadline = time.monotonic() + 10
    while zeoserver.server_pid(zeo_conf) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert zeoserver.server_pid(zeo_conf) == pid
    # Running already: nothing started.
    assert zeoserver.ensure_server(zeo_conf, 30) is None
    assert zeoserver.stop_server(zeo_conf)
    assert not zeoserver.is_listening(zeo_conf.address)
    assert zeoserver.server_pid(zeo_conf) is None
    assert pid not in zeoserver._started  # reaped
    assert not zeoserver.stop_server(zeo_conf)  # nothing left to stop


def test_ensure_server_after_a_kill_restarts_on_the_stale_socket(
    zeo_conf, cleanup_servers
):
    cleanup_servers.append(zeo_conf)
    pid = zeoserver.ensure_server(zeo_conf, 30)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while zeoserver._alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert os.path.exists(zeo_conf.address)  # left behind
    assert zeoserver.server_pid(zeo_conf) is None  # stale pid file
    assert open(zeo_conf.pid_file).read().strip() == str(pid)
    pid2 = zeoserver.ensure_server(zeo_conf, 30)
    assert pid2 not in (None, pid)
    assert zeoserver.is_listening(zeo_conf.address)
    assert zeoserver.stop_server(zeo_conf)


def test_ensure_server_bad_config_names_the_log(tmp_path, cleanup_servers):
    # Valid for the schema, but the storage cannot be opened: runzeo
    # exits at once.
    var = tmp_path / 'var'
    path = write_conf(
        tmp_path, f'{var}/zeo.sock', storage=f'{tmp_path}/missing/Data.fs'
    )
    conf = zeoserver.read_zeo_conf(path)
    os.makedirs(var)
    with open(conf.log_file, 'w') as f:
        f.write('Error: an older run, not this one\n')
    start = time.monotonic()
    with pytest.raises(RuntimeError) as e:
        zeoserver.ensure_server(conf, 30)
    assert time.monotonic() - start < 25  # did not wait for the timeout
    message = str(e.value)
    assert conf.log_file in message and 'exit status 2' in message
    # It says that runzeo exited, and why (its log's error line).
    assert 'exited' in message and 'within' not in message, message
    assert 'Error: The directory named as part of the path' in message
    assert f'{tmp_path}/missing/Data.fs does not exist' in message
    assert 'older run' not in message
    with open(conf.log_file) as f:
        assert 'missing' in f.read()  # the log says why
    assert not zeoserver._started


def test_ensure_server_exit_quotes_the_exception_it_logged(
    tmp_path, cleanup_servers
):
    # runzeo's traceback (the storage is a folder): its last line.
    (tmp_path / 'Data.fs').mkdir()
    conf = zeoserver.read_zeo_conf(write_conf(
        tmp_path, f'{tmp_path}/var/zeo.sock', storage=f'{tmp_path}/Data.fs'
    ))
    with pytest.raises(RuntimeError) as e:
        zeoserver.ensure_server(conf, 30)
    message = str(e.value)
    assert 'exit status 1' in message and 'within' not in message
    assert message.count('Error') == 1, message  # one line, not the trace
    assert f"IsADirectoryError: [Errno 21] Is a directory: '{tmp_path}/" \
        "Data.fs'; see " in message


@pytest.mark.parametrize('address', ['afile/zeo.sock', 'afile/var/zeo.sock'])
def test_ensure_server_socket_folder_under_a_file(
    tmp_path, address, cleanup_servers
):
    from pyramid_zeostore import ZeostoreConfigurationError

    (tmp_path / 'afile').write_text('a file, not a folder\n')
    conf = zeoserver.read_zeo_conf(
        write_conf(tmp_path, f'{tmp_path}/{address}')
    )
    with pytest.raises(ZeostoreConfigurationError) as e:
        zeoserver.ensure_server(conf, 30, key='--zeo-conf')
    assert e.value.key == '--zeo-conf' and e.value.value == conf.path
    assert f'{tmp_path}/afile' in str(e.value)
    assert not zeoserver._started  # nothing was started
    assert (tmp_path / 'afile').read_text() == 'a file, not a folder\n'


def test_ensure_server_log_that_cannot_be_written(tmp_path, cleanup_servers):
    from pyramid_zeostore import ZeostoreConfigurationError

    conf = zeoserver.read_zeo_conf(
        write_conf(tmp_path, f'{tmp_path}/var/zeo.sock')
    )
    os.makedirs(conf.log_file)  # var/zeo.log is a folder
    with pytest.raises(ZeostoreConfigurationError) as e:
        zeoserver.ensure_server(conf, 30)
    assert e.value.key == 'zeostore.zeo_conf'
    assert 'Is a directory' in str(e.value) and 'zeo.log' in str(e.value)
    assert not zeoserver._started


def test_ensure_server_timeout_terminates_the_server(
    zeo_conf, cleanup_servers
):
    cleanup_servers.append(zeo_conf)
    with pytest.raises(RuntimeError, match='within 0s') as e:
        zeoserver.ensure_server(zeo_conf, 0)
    assert zeo_conf.log_file in str(e.value)
    assert not zeoserver._started
    assert not zeoserver.is_listening(zeo_conf.address)


def test_ensure_server_timeout_kills_a_server_ignoring_sigterm(
    zeo_conf, monkeypatch, cleanup_servers
):
    # A shell ignores SIGTERM at once (an interpreter might not yet have
    # installed its handler when terminate() comes); sleep inherits that.
    monkeypatch.setattr(
        zeoserver, 'runzeo_command',
        lambda conf: ['sh', '-c', 'trap "" TERM; exec sleep 30'],
    )
    real_popen = subprocess.Popen

    class SlowTerminate(real_popen):
        def wait(self, timeout=None):
            if timeout == 5:
                timeout = 0.5  # keep the test short
            return super().wait(timeout)

    monkeypatch.setattr(subprocess, 'Popen', SlowTerminate)
    with pytest.raises(RuntimeError, match='exit status -9'):
        zeoserver.ensure_server(zeo_conf, 0.5)
    assert not zeoserver._started


def write_pid(conf, pid):
    os.makedirs(os.path.dirname(conf.pid_file), exist_ok=True)
    with open(conf.pid_file, 'w') as f:
        f.write(f'{pid}\n')


def test_server_pid_missing_garbage_stale_and_foreign(zeo_conf, children):
    assert zeoserver.server_pid(zeo_conf) is None  # no pid file yet
    write_pid(zeo_conf, 'not a number')
    assert zeoserver.server_pid(zeo_conf) is None
    write_pid(zeo_conf, 0)
    assert zeoserver.server_pid(zeo_conf) is None
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait(10)
    write_pid(zeo_conf, dead.pid)  # stale: that process is gone
    assert zeoserver.server_pid(zeo_conf) is None
    other = subprocess.Popen(
        [sys.executable, '-c', 'import time; time.sleep(30)']
    )
    children.append(other)
    write_pid(zeo_conf, other.pid)  # alive, but not a runzeo: pid reused
    assert zeoserver.server_pid(zeo_conf) is None
    assert not zeoserver.stop_server(zeo_conf)
    assert other.poll() is None  # left alone


def fake_runzeo(children, code):
    # A process whose command line says runzeo, as server_pid checks.
    proc = subprocess.Popen(
        [sys.executable, '-c', code, 'runzeo'],
        stdout=subprocess.PIPE,
    )
    children.append(proc)
    assert proc.stdout.readline() == b'up\n'
    return proc


def test_stop_server_sigterm(zeo_conf, children):
    proc = fake_runzeo(
        children, 'import time; print("up", flush=True); time.sleep(60)'
    )
    write_pid(zeo_conf, proc.pid)
    assert zeoserver.server_pid(zeo_conf) == proc.pid
    start = time.monotonic()
    assert zeoserver.stop_server(zeo_conf, timeout=10)
    assert time.monotonic() - start < 5  # SIGTERM was enough
    # stop_server reaped our child itself: Popen cannot see the status.
    assert proc.wait(5) is not None
    assert not zeoserver._alive(proc.pid)
    assert zeoserver.server_pid(zeo_conf) is None


def test_stop_server_sigkill_after_timeout(zeo_conf, children):
    proc = fake_runzeo(
        children,
        'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)'
        '; print("up", flush=True); time.sleep(60)',
    )
    write_pid(zeo_conf, proc.pid)
    start = time.monotonic()
    assert zeoserver.stop_server(zeo_conf, timeout=0.3)
    assert time.monotonic() - start < 5
    assert proc.wait(5) is not None  # only SIGKILL could end it
    assert not zeoserver._alive(proc.pid)


def test_stop_server_of_an_orphan_zombie(zeo_conf):
    # The server's parent exited; a PID 1 that does not reap leaves a
    # zombie, which must count as stopped (not wait for the timeout).
    code = (
        'import subprocess, sys; p = subprocess.Popen([sys.executable, '
        '"-c", "import time; time.sleep(60)", "runzeo"], '
        'start_new_session=True, stdout=subprocess.DEVNULL, '
        'stderr=subprocess.DEVNULL); print(p.pid)'
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, timeout=30,
        check=True,
    )
    pid = int(out.stdout)
    try:
        write_pid(zeo_conf, pid)
        assert zeoserver.server_pid(zeo_conf) == pid
        start = time.monotonic()
        assert zeoserver.stop_server(zeo_conf, timeout=10)
        assert time.monotonic() - start < 5
        assert zeoserver.server_pid(zeo_conf) is None
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_alive_own_child_and_other_process(children):
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait(10)
    assert not zeoserver._alive(proc.pid)  # gone (reaped by Popen)
    child = subprocess.Popen(
        [sys.executable, '-c', 'import time; time.sleep(30)']
    )
    children.append(child)
    assert zeoserver._alive(child.pid)
    child.kill()
    deadline = time.monotonic() + 10
    # Not in _started: reaped through os.waitpid.
    while zeoserver._alive(child.pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert zeoserver._alive(os.getppid())  # someone else's, alive


# -- who may use the socket: socket_mode, socket_group ------------------------


@pytest.fixture
def fresh_conf(tmp_path):
    """A zeo.conf whose var folder (socket, data, log) is not there yet."""
    var = tmp_path / 'var'
    return zeoserver.read_zeo_conf(
        write_conf(
            tmp_path,
            f'{var}/zeo.sock',
            storage=f'{var}/Data.fs',
            extra=f'  pid-filename {var}/zeo.pid\n',
        )
    )


def test_ensure_server_default_is_owner_only_whatever_the_umask(
    fresh_conf, cleanup_servers
):
    cleanup_servers.append(fresh_conf)
    old_umask = os.umask(0)
    try:
        assert zeoserver.ensure_server(fresh_conf, 30) is not None
    finally:
        os.umask(old_umask)
    assert _mode(fresh_conf.address) == 0o600
    assert _mode(fresh_conf.var_dir) == 0o700
    assert _mode(fresh_conf.log_file) == 0o600
    assert _mode(fresh_conf.lock_file) == 0o600
    deadline = time.monotonic() + 10
    while not os.path.exists(fresh_conf.pid_file):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _mode(fresh_conf.pid_file) == 0o600  # runzeo's umask 077
    assert _mode(os.path.join(fresh_conf.var_dir, 'Data.fs')) == 0o600
    assert zeoserver.stop_server(fresh_conf)


def test_ensure_server_gives_the_socket_to_a_group(
    fresh_conf, cleanup_servers
):
    cleanup_servers.append(fresh_conf)
    gid = other_gid()
    assert zeoserver.ensure_server(fresh_conf, 30, 0o660, gid) is not None
    st = os.stat(fresh_conf.address)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)
    st = os.stat(fresh_conf.var_dir)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o750, gid)
    assert _mode(fresh_conf.log_file) == 0o600
    # A server already running is left as it is.
    os.chmod(fresh_conf.address, 0o600)
    assert zeoserver.ensure_server(fresh_conf, 30, 0o660, gid) is None
    assert _mode(fresh_conf.address) == 0o600
    assert zeoserver.stop_server(fresh_conf)


def test_ensure_server_stops_a_server_whose_socket_it_cannot_share(
    fresh_conf, cleanup_servers, monkeypatch
):
    cleanup_servers.append(fresh_conf)

    def refuse(path, mode, gid):
        raise PermissionError(1, 'Operation not permitted', path)

    monkeypatch.setattr(zeoserver, 'set_socket_access', refuse)
    with pytest.raises(RuntimeError) as info:
        zeoserver.ensure_server(fresh_conf, 30, 0o660, 12345)
    message = str(info.value)
    assert 'cannot share' in message and 'Operation not permitted' in message
    assert fresh_conf.log_file in message
    assert not zeoserver._started
    assert not zeoserver.is_listening(fresh_conf.address)


def test_ensure_server_tcp_has_no_socket_file(tmp_path, cleanup_servers):
    port = fconf.free_port()
    conf = zeoserver.read_zeo_conf(
        write_conf(tmp_path, f'127.0.0.1:{port}', storage='Data.fs',
                   extra=f'  pid-filename {tmp_path}/zeo.pid\n')
    )
    cleanup_servers.append(conf)
    assert zeoserver.ensure_server(conf, 30, 0o660, other_gid())
    assert zeoserver.is_listening(conf.address)
    assert zeoserver.stop_server(conf)


def test_set_socket_access(tmp_path):
    path = str(tmp_path / 's.sock')
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)
        gid = os.stat(path).st_gid
        zeoserver.set_socket_access(path, 0o640, gid)  # same group: chmod
        assert _mode(path) == 0o640
        zeoserver.set_socket_access(path, 0o600, None)
        assert _mode(path) == 0o600
    link = str(tmp_path / 'link.sock')
    os.symlink(path, link)
    plain = tmp_path / 'plain'
    plain.write_text('')
    for not_a_socket in (link, str(plain)):
        with pytest.raises(OSError) as info:
            zeoserver.set_socket_access(not_a_socket, 0o666, None)
        assert 'not a socket' in str(info.value)
    assert _mode(path) == 0o600  # the link was not followed
