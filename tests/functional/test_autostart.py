"""``zeostore.autostart``: one detached ``runzeo`` per zeo.conf, on demand.

Real processes: ``pserve`` and ``python -c`` children start the server
through the package; the tests then check the process table (``/proc``),
the pid file, the log and the socket's mode, and stop the server by the
pid in its pid file (also when a test fails). The shipped ini files, a
server that cannot start, and several processes (``ensure_server`` or
the app factory) starting one server at the same moment: they are let
go together from a ``StartingLine`` once each has said it is ready, so
the race is real and no sleep guesses when they are. A zeo.conf of
another server than ``zodb_uri``'s, or whose socket folder is a file, is
refused before anything starts, by pserve and by ``pzeo start`` (one
line, exit 2); a runzeo that exits at once is said so, with its error.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from pyramid_zeostore import zeoserver
from pyramid_zeostore.settings import parse_settings
from tests import conftest as rconf
from tests.functional import conftest as fconf

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))





def write_autostart_ini(tmp_path, autostarted, uri=None):
    """A zeo.conf in tmp/var and an autostart ini for ``uri`` (default:
    the zeo.conf's server) pointing to it; (conf, ini)."""
    conf = zeoserver.read_zeo_conf(rconf.write_zeo_conf(tmp_path / 'var'))
    autostarted.append(conf)
    ini = fconf.write_ini(
        tmp_path,
        uri or f'zeo://{conf.address}',
        **{
            'zeostore.autostart': 'true',
            'zeostore.zeo_conf': conf.path,
            'zeostore.autostart_timeout': '30',
        },
    )
    return conf, ini


@pytest.fixture
def autostart_ini(tmp_path, autostarted):
    """A zeo.conf in tmp/var and an autostart ini pointing to it."""
    conf, ini = write_autostart_ini(tmp_path, autostarted)
    assert not zeoserver.is_listening(conf.address)
    return conf, ini


# -- the shipped ini files ----------------------------------------------------


def test_production_ini_never_autostarts():
    from pyramid.paster import get_appsettings

    settings = get_appsettings(os.path.join(REPO, 'production.ini'))
    parsed = parse_settings(settings)
    assert parsed.autostart is False
    assert parsed.primary.is_zeo


def test_development_ini_autostarts_the_repository_zeo_conf():
    from pyramid.paster import get_appsettings

    settings = get_appsettings(os.path.join(REPO, 'development.ini'))
    parsed = parse_settings(settings)
    assert parsed.autostart is True
    conf = zeoserver.read_zeo_conf(parsed.zeo_conf)
    assert conf.path == os.path.join(REPO, 'zeo.conf')
    # The app connects where the autostarted server listens.
    assert parsed.primary.address == conf.address
    assert conf.log_file == os.path.join(REPO, 'var', 'zeo.log')


# -- pserve -------------------------------------------------------------------


def test_pserve_autostarts_a_detached_server(autostart_ini, servers):
    conf, ini = autostart_ini
    old_umask = os.umask(0)  # pserve inherits a lax umask: runzeo must not
    try:
        first = servers(fconf.pserve(ini))
    finally:
        os.umask(old_umask)
    status, _, body = first.request('/?format=json')
    assert status == 200, first.log()
    pids = fconf.runzeo_pids(conf.path)
    assert len(pids) == 1, pids
    pid = pids[0]
    assert zeoserver.server_pid(conf) == pid  # its pid file, in var/
    assert os.path.dirname(conf.pid_file) == conf.var_dir
    assert os.getsid(pid) == pid  # a session of its own
    assert os.getsid(pid) != os.getsid(first.proc.pid)
    assert os.path.getsize(conf.log_file) > 0  # var/zeo.log
    mode = stat.S_IMODE(os.stat(conf.address).st_mode)
    assert mode & 0o002 == 0, oct(mode)  # not world-writable
    assert mode & 0o077 == 0, oct(mode)  # this user's only (umask 077)
    body = json.dumps({'name': 'kept', 'type': 'item'}).encode()
    assert first.request(
        '/', method='POST', data=body, headers=fconf.JSON_HEADERS
    )[0] == 201

    first.stop()  # the whole pserve session: runzeo is not in it
    assert fconf.runzeo_pids(conf.path) == [pid]
    assert zeoserver.is_listening(conf.address)

    second = servers(fconf.pserve(ini))  # finds it running: connects only
    status, _, body = second.request('/?format=json')
    assert status == 200, second.log()
    assert [i['name'] for i in json.loads(body)['items']] == ['kept']
    assert fconf.runzeo_pids(conf.path) == [pid]
    assert zeoserver.server_pid(conf) == pid

    assert zeoserver.stop_server(conf)
    assert fconf.runzeo_pids(conf.path) == []
    assert not zeoserver.is_listening(conf.address)


def test_pserve_autostart_failure_names_the_log(tmp_path, autostarted):
    var = tmp_path / 'var'
    conf_path = rconf.write_zeo_conf(var)
    with open(conf_path) as f:
        text = f.read()
    with open(conf_path, 'w') as f:  # a storage folder that is not there
        f.write(text.replace('$VAR/Data.fs', f'{tmp_path}/missing/Data.fs'))
    conf = zeoserver.read_zeo_conf(conf_path)
    autostarted.append(conf)
    ini = fconf.write_ini(
        tmp_path, f'zeo://{conf.address}',
        **{'zeostore.autostart': 'true', 'zeostore.zeo_conf': conf_path},
    )
    proc = subprocess.run(
        [os.path.join(fconf.BIN, 'pserve'), ini],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=str(tmp_path), env=fconf.child_env(),
        timeout=60,
    )
    output = proc.stdout.decode(errors='replace')
    assert proc.returncode != 0
    assert 'RuntimeError' in output and conf.log_file in output, output
    # runzeo exited at once: said so, with the error line of its log.
    assert 'exited (exit status 2)' in output and 'within' not in output
    assert f'path {tmp_path}/missing/Data.fs does not exist' in output
    assert fconf.runzeo_pids(conf.path) == []


def run_pserve(tmp_path, ini: str) -> tuple[int, str]:
    """(exit status, output) of a pserve that is to fail at startup."""
    proc = subprocess.run(
        [os.path.join(fconf.BIN, 'pserve'), ini],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=str(tmp_path), env=fconf.child_env(),
        timeout=60,
    )
    return proc.returncode, proc.stdout.decode(errors='replace')


def zeo_conf_at(tmp_path, address, storage, pid_file=None) -> str:
    """A zeo.conf in tmp_path serving ``storage`` at ``address``."""
    path = tmp_path / 'zeo.conf'
    pid = f'  pid-filename {pid_file}\n' if pid_file else ''
    path.write_text(
        f'<zeo>\n  address {address}\n{pid}</zeo>\n'
        f'<filestorage>\n  path {storage}\n</filestorage>\n'
    )
    return str(path)


def refused_by_pserve(tmp_path, autostarted, conf_path, uri) -> str:
    """pserve of an autostart ini for ``uri`` and ``conf_path`` fails
    with a ConfigurationError naming zeostore.zeo_conf: its output."""
    conf = zeoserver.read_zeo_conf(conf_path)
    autostarted.append(conf)
    ini = fconf.write_ini(
        tmp_path, uri,
        **{'zeostore.autostart': 'true', 'zeostore.zeo_conf': conf_path},
    )
    status, output = run_pserve(tmp_path, ini)
    assert status != 0
    assert 'ZeostoreConfigurationError: zeostore.zeo_conf: ' in output
    assert fconf.runzeo_pids(conf.path) == []  # nothing started
    return output


def test_pserve_refuses_a_zeo_conf_of_another_server(tmp_path, autostarted):
    # The zeo.conf serves other.sock; zodb_uri names var/zeo.sock.
    conf_path = rconf.write_zeo_conf(tmp_path / 'var')
    with open(conf_path) as f:
        text = f.read()
    with open(conf_path, 'w') as f:
        f.write(text.replace('$VAR/zeo.sock', f'{tmp_path}/other.sock'))
    conf = zeoserver.read_zeo_conf(conf_path)
    output = refused_by_pserve(tmp_path, autostarted, conf_path,
                               f'zeo://{tmp_path}/var/zeo.sock')
    assert f'starts a server at {tmp_path}/other.sock' in output, output
    assert f'zodb_uri connects to {tmp_path}/var/zeo.sock' in output
    assert 'zodb_uri must name the server the zeo.conf starts' in output
    # Refused before anything started.
    assert not os.path.exists(conf.log_file)  # tmp/zeo.log, of other.sock
    assert not os.path.exists(conf.address)


def test_pserve_socket_folder_under_a_file(tmp_path, autostarted):
    (tmp_path / 'afile').write_text('a file, not a folder\n')
    sock = f'{tmp_path}/afile/zeo.sock'
    conf_path = zeo_conf_at(tmp_path, sock, f'{tmp_path}/Data.fs')
    output = refused_by_pserve(tmp_path, autostarted, conf_path,
                               f'zeo://{sock}')
    assert f"File exists: '{tmp_path}/afile'" in output, output
    assert 'FileExistsError' not in output


# -- several processes at once ------------------------------------------------

ENSURE = """
import json, os, sys
from pyramid_zeostore import zeoserver
conf_path = sys.argv[1]
ready, go = map(int, sys.argv[-2:])  # a StartingLine
conf = zeoserver.read_zeo_conf(conf_path)
os.write(ready, b'.')
os.read(go, 1)  # returns when the test lets all go
print(json.dumps({'pid': zeoserver.ensure_server(conf, 30)}))
"""

APP = """
import os, sys
from pyramid.paster import get_app
ini = sys.argv[1]
ready, go = map(int, sys.argv[-2:])  # a StartingLine
os.write(ready, b'.')
os.read(go, 1)  # returns when the test lets all go
get_app(ini)  # runs main(): autostart, then the startup check
print('ok')
"""


def run_together(tmp_path, code: str, arg: str, n: int) -> list[str]:
    """``n`` processes run ``code`` at the same moment; their stdout.

    Each says on a :class:`~tests.functional.conftest.StartingLine` that
    it has started Python and imported what it needs; once all ``n``
    have, all are let go at once."""
    line = fconf.StartingLine()
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', code, arg, *line.args()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=fconf.child_env(), cwd=str(tmp_path),
            pass_fds=line.pass_fds,
        )
        for _ in range(n)
    ]
    try:
        line.wait_ready(n)  # all have started Python and wait for "go"
        line.go()
        outs = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode(errors='replace')
            outs.append(out.decode().strip())
        return outs
    finally:
        line.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_concurrent_ensure_server_starts_one(autostart_ini, tmp_path):
    conf, _ = autostart_ini
    outs = run_together(tmp_path, ENSURE, conf.path, 4)
    started = [json.loads(o)['pid'] for o in outs]
    winners = [pid for pid in started if pid is not None]
    assert len(winners) == 1, started  # the others found it running
    assert fconf.runzeo_pids(conf.path) == winners
    assert zeoserver.server_pid(conf) == winners[0]
    assert zeoserver.stop_server(conf)
    assert fconf.runzeo_pids(conf.path) == []


def test_concurrent_app_factories_start_one(autostart_ini, tmp_path):
    conf, ini = autostart_ini
    outs = run_together(tmp_path, APP, ini, 3)
    assert outs == ['ok'] * 3
    pids = fconf.runzeo_pids(conf.path)
    assert len(pids) == 1, pids
    assert zeoserver.server_pid(conf) == pids[0]
    assert zeoserver.stop_server(conf)
    assert fconf.runzeo_pids(conf.path) == []


def test_the_one_line_move_to_file_leaves_autostart_alone(
    tmp_path, autostarted, servers
):
    # development.ini with zodb_uri changed to file:// and autostart
    # still true: pserve serves the file, and no runzeo takes its lock.
    conf, ini = write_autostart_ini(
        tmp_path, autostarted, f'file://{tmp_path}/var/Data.fs'
    )
    server = servers(fconf.pserve(ini))
    status, _, body = server.request('/?format=json')
    assert status == 200, server.log()
    assert fconf.runzeo_pids(conf.path) == []
    assert 'zeostore.autostart is ignored' in server.log()


# -- pzeo start: what it cannot start is one line -----------------------------


def pzeo(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.path.join(fconf.BIN, 'pzeo'), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        cwd=str(tmp_path), env=fconf.child_env(), timeout=120,
    )


def test_pzeo_start_refuses_a_zeo_conf_of_another_server(
    tmp_path, autostarted
):
    conf_path = zeo_conf_at(tmp_path, f'{tmp_path}/other.sock',
                            f'{tmp_path}/Data.fs', f'{tmp_path}/zeo.pid')
    conf = zeoserver.read_zeo_conf(conf_path)
    autostarted.append(conf)
    ini = fconf.write_ini(
        tmp_path, f'zeo://{tmp_path}/var/zeo.sock',
        **{'zeostore.zeo_conf': conf_path},
    )
    res = pzeo(tmp_path, 'start', ini)
    assert (res.returncode, res.stdout) == (2, ''), res.stderr
    assert res.stderr.count('\n') == 1, res.stderr
    assert 'configuration error: zeostore.zeo_conf: ' in res.stderr
    assert f'{tmp_path}/other.sock' in res.stderr
    assert f'{tmp_path}/var/zeo.sock' in res.stderr
    assert fconf.runzeo_pids(conf.path) == []
    # The same server by another path (a symlink), or over loopback TCP
    # by another name of it, is the one zodb_uri names: started.
    os.symlink(tmp_path, tmp_path / 'link')
    ini = fconf.write_ini(
        tmp_path, f'zeo://{tmp_path}/link/other.sock',
        **{'zeostore.zeo_conf': conf_path},
    )
    res = pzeo(tmp_path, 'start', ini)
    assert res.returncode == 0 and 'started runzeo' in res.stdout, res
    assert len(fconf.runzeo_pids(conf.path)) == 1
    assert zeoserver.stop_server(conf)
    port = fconf.free_port()
    zeo_conf_at(tmp_path, f'localhost:{port}', f'{tmp_path}/Data.fs',
                f'{tmp_path}/zeo.pid')
    autostarted.append(zeoserver.read_zeo_conf(conf_path))
    ini = fconf.write_ini(
        tmp_path, f'zeo://127.0.0.1:{port}',
        **{'zeostore.zeo_conf': conf_path},
    )
    res = pzeo(tmp_path, 'start', ini)
    assert res.returncode == 0 and 'started runzeo' in res.stdout, res
    assert res.stdout.endswith(f'at localhost:{port}; log: '
                               f'{tmp_path}/zeo.log\n')


def test_pzeo_start_folder_under_a_file_and_exit_at_once(
    tmp_path, autostarted
):
    (tmp_path / 'afile').write_text('a file, not a folder\n')
    sock = f'{tmp_path}/afile/zeo.sock'
    conf_path = zeo_conf_at(tmp_path, sock, f'{tmp_path}/Data.fs')
    autostarted.append(zeoserver.read_zeo_conf(conf_path))
    ini = fconf.write_ini(
        tmp_path, f'zeo://{sock}', **{'zeostore.zeo_conf': conf_path}
    )
    res = pzeo(tmp_path, 'start', ini)
    assert (res.returncode, res.stdout) == (2, ''), res.stderr
    assert res.stderr.count('\n') == 1, res.stderr
    assert res.stderr.startswith(
        'pzeo start: configuration error: zeostore.zeo_conf: '
    )
    assert f"File exists: '{tmp_path}/afile'" in res.stderr

    # The socket's folder is fine, the storage's is a file: runzeo exits.
    sock = f'{tmp_path}/var/zeo.sock'
    zeo_conf_at(tmp_path, sock, f'{tmp_path}/afile/Data.fs')
    ini = fconf.write_ini(
        tmp_path, f'zeo://{sock}', **{'zeostore.zeo_conf': conf_path}
    )
    res = pzeo(tmp_path, 'start', ini)
    assert (res.returncode, res.stdout) == (1, ''), res.stderr
    assert res.stderr.count('\n') == 1, res.stderr
    assert res.stderr.startswith(
        f'pzeo start: runzeo -C {conf_path} exited (exit status 2) after '
    )
    assert (
        f'before it answered at {sock}: Error: The directory named as part '
        f'of the path {tmp_path}/afile/Data.fs does not exist'
    ) in res.stderr
    assert res.stderr.endswith(f'; see {tmp_path}/var/zeo.log\n')
    assert 'within' not in res.stderr
    assert fconf.runzeo_pids(str(conf_path)) == []
