"""``pzeo`` status, start, stop, shell and run: the console script as a
user runs it, against a real runzeo and beside a running pserve.

Each ``pzeo`` is a child process with a time limit, in a copy of this
repository's development.ini and zeo.conf (autostart, the socket in
var/): start, status and stop of the server, stale pid files, a server it
did not start left alone, ``shell`` and ``run`` on the live database and
the usage errors. ``pzeo start`` failing, or finding the server started
by another process meanwhile, runs in-process (``cli.main``, with
``ensure_server`` replaced) and probes the real, absent, socket.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest

from pyramid_zeostore import cli, zeoserver
from tests.functional import conftest as fconf
from tests.unit.test_cli import write_project

REPO = fconf.REPO


def pzeo(*args, input=None, cwd=None):
    return subprocess.run(
        [os.path.join(fconf.BIN, 'pzeo'), *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=fconf.child_env(),
        timeout=120,
    )


@pytest.fixture
def project(tmp_path):
    """A copy of this repo's development.ini and zeo.conf (autostart, a
    socket in var/, server_sync), on a free port; its server stopped at
    the end."""
    for name in ('development.ini', 'zeo.conf'):
        shutil.copy(os.path.join(REPO, name), tmp_path)
    ini = tmp_path / 'development.ini'
    port = fconf.free_port()
    ini.write_text(
        ini.read_text().replace(
            'listen = 127.0.0.1:6543 [::1]:6543', f'listen = 127.0.0.1:{port}'
        )
    )
    yield tmp_path
    pzeo('stop', 'development.ini', cwd=tmp_path)


def test_start_status_stop(project):
    pid_file = project / 'var' / 'zeo.pid'
    res = pzeo('stop', 'development.ini', cwd=project)
    assert res.returncode == 0 and 'not running' in res.stdout

    res = pzeo('status', 'development.ini', '--timeout', '0.5', cwd=project)
    assert res.returncode == 1
    assert 'zodb_uri: DOWN' in res.stdout and 'zeo.sock' in res.stdout
    assert res.stderr == ''  # the reason is printed once, not logged too

    res = pzeo('start', 'development.ini', cwd=project)
    assert res.returncode == 0, res.stderr
    assert 'started runzeo' in res.stdout
    pid = int(pid_file.read_text())
    res = pzeo('start', 'development.ini', cwd=project)
    assert res.returncode == 0
    assert f'already running at {project}/var/zeo.sock (pid {pid})' in (
        res.stdout
    )

    res = pzeo('status', 'development.ini', '--json', cwd=project)
    assert res.returncode == 0, res.stderr
    (db,) = json.loads(res.stdout)['databases']
    assert db['connected'] and db['address'] == f'{project}/var/zeo.sock'
    assert db['objects'] >= 1 and db['size_bytes'] > 0
    assert db['connections'] == 1  # this status command's own client
    res = pzeo('status', 'development.ini', cwd=project)
    assert 'zodb_uri: up at' in res.stdout and 'ping' in res.stdout

    res = pzeo('stop', 'development.ini', cwd=project)
    assert res.returncode == 0 and f'stopped runzeo (pid {pid})' in (
        res.stdout
    )
    assert not zeoserver._alive(pid)  # gone (or a zombie nobody reaps)
    assert not pid_file.exists()


def test_stale_pid_files_are_cleaned(project):
    var = project / 'var'
    var.mkdir(mode=0o700)
    pid_file = var / 'zeo.pid'
    pid_file.write_text('999999\n')  # no such process
    res = pzeo('stop', 'development.ini', cwd=project)
    assert res.returncode == 0
    assert 'removed stale pid file' in res.stdout
    assert not pid_file.exists()
    pid_file.write_text(f'{os.getpid()}\n')  # alive, but not a runzeo
    res = pzeo('start', 'development.ini', cwd=project)
    assert res.returncode == 0, res.stderr
    assert 'removed stale pid file' in res.stdout
    assert 'started runzeo' in res.stdout


def test_stop_leaves_a_server_it_did_not_start_alone(project, zeo_server):
    ini = project / 'development.ini'
    ini.write_text(
        ini.read_text().replace(
            'zeo://%(here)s/var/zeo.sock', f'zeo://{zeo_server.sock}'
        )
    )
    conf = project / 'other.conf'
    conf.write_text(
        '<zeo>\n'
        f'  address {zeo_server.sock}\n'
        f'  pid-filename {project}/nowhere.pid\n'
        '</zeo>\n<mappingstorage 1>\n</mappingstorage>\n'
    )
    res = pzeo('stop', 'development.ini', '--zeo-conf', str(conf),
               cwd=project)
    assert res.returncode == 1
    assert 'names no runzeo: not stopping it' in res.stderr
    assert zeo_server.proc.poll() is None


def test_shell_and_run_beside_a_running_server(project, servers):
    app = servers(fconf.pserve(str(project / 'development.ini')))  # ZEO too
    res = pzeo(
        'shell', 'development.ini', '-c',
        'from pyramid_zeostore.app.content import Item\n'
        "root.add('from_shell', Item(n=1)); commit()\n"
        "root.add('not_committed', Item())\n"
        'print(sorted(root))',
        cwd=project,
    )
    assert res.returncode == 0, res.stderr
    assert "['from_shell', 'not_committed']" in res.stdout
    # As pshell, only commit() saves: the rest is dropped, and said.
    assert 'changed objects were not committed, and are dropped' in (
        res.stderr
    )
    status, _, body = app.request('/?format=json')
    names = [item['name'] for item in json.loads(body)['items']]
    assert names == ['from_shell']  # seen at once: server_sync

    # statements from stdin; the failing one sets the exit status
    res = pzeo('shell', 'development.ini', cwd=project,
               input="print(len(root))\nroot['nope']\nprint('after')\n")
    assert res.returncode == 1
    assert res.stdout.strip() == '1'
    assert "FolderKeyError: 'nope'" in res.stderr

    script = project / 'job.py'
    script.write_text(
        'import sys\n'
        'from pyramid_zeostore.app.content import Item\n'
        'for name in sys.argv[1:]:\n'
        '    root.add(name, Item())\n'
        'commit()\n'
        'sys.exit(len(root))\n'
    )
    res = pzeo('run', 'development.ini', 'job.py', 'a', 'b', cwd=project)
    assert res.returncode == 3, res.stderr  # the script's own status
    assert 'not committed' not in res.stderr
    status, _, body = app.request('/?format=json')
    names = [item['name'] for item in json.loads(body)['items']]
    assert names == ['a', 'b', 'from_shell']

    script.write_text('raise RuntimeError("job failed")\n')
    res = pzeo('run', 'development.ini', 'job.py', cwd=project)
    assert res.returncode == 1
    assert 'RuntimeError: job failed' in res.stderr


def test_usage_errors_exit_2(project, tmp_path):
    res = pzeo('status', 'missing.ini', cwd=project)
    assert res.returncode == 2 and 'no such ini file' in res.stderr
    res = pzeo('run', 'development.ini', 'missing.py', cwd=project)
    assert res.returncode == 2 and 'cannot read missing.py' in res.stderr
    res = pzeo('status', 'development.ini#other', cwd=project)
    assert res.returncode == 2 and 'other' in res.stderr
    bad = project / 'bad.ini'
    bad.write_text('[app:main]\nuse = egg:pyramid_zeostore\n')
    res = pzeo('status', 'bad.ini', cwd=project)
    assert res.returncode == 2
    assert 'configuration error' in res.stderr and 'zodb_uri' in res.stderr
    res = pzeo('start', 'bad.ini', cwd=project)
    assert res.returncode == 2
    res = pzeo()
    assert res.returncode == 2 and 'COMMAND' in res.stderr
    for command in ('status', 'start', 'stop', 'shell', 'run'):
        res = pzeo(command, '--help')
        assert res.returncode == 0 and 'INI' in res.stdout


def test_start_failures(tmp_path, monkeypatch, capsys):
    from pyramid_zeostore import zeoserver

    conf = tmp_path / 'zeo.conf'
    conf.write_text(
        f'<zeo>\n  address {tmp_path}/zeo.sock\n</zeo>\n'
        '<mappingstorage 1>\n</mappingstorage>\n'
    )
    ini = write_project(tmp_path, zeo_conf=conf)

    def broken(*args, **kw):
        raise RuntimeError('runzeo did not answer; see zeo.log')

    monkeypatch.setattr(zeoserver, 'ensure_server', broken)
    assert cli.main(['start', ini, '--timeout', '1']) == 1
    assert 'see zeo.log' in capsys.readouterr().err
    # another process started it between the check and the start
    monkeypatch.setattr(zeoserver, 'ensure_server', lambda *a, **k: None)
    assert cli.main(['start', ini]) == 0
    assert 'already running' in capsys.readouterr().out


def _without_autostart(project):
    ini = project / 'development.ini'
    text = ini.read_text().replace(
        'zeostore.autostart = true', 'zeostore.autostart = false'
    ).replace(
        'zeostore.connect_timeout = 2',
        'zeostore.connect_timeout = 0.5\nzeostore.reply_timeout = 1',
    )
    assert 'autostart = false' in text and 'reply_timeout' in text
    ini.write_text(text)
    (project / 'script.py').write_text('print(len(root))\n')


#: Every command that opens the app's database, and its stdin.
OPENERS = [
    (('users',), None), (('adduser', 'ann'), 'a-long-password\n'),
    (('deluser', 'ann'), None), (('evolve',), None),
    (('evolve', '--run'), None), (('shell', '-c', 'print(root)'), None),
    (('run', 'script.py'), None),
]


@pytest.mark.parametrize('state', ['down', 'hung'])
def test_a_database_down_or_hung_is_one_line_and_exit_1(project, state):
    # Status 1 (the thing checked is not right), the reason in one line:
    # no traceback, no web server's startup banner.
    _without_autostart(project)
    if state == 'hung':
        res = pzeo('start', 'development.ini', cwd=project)
        assert res.returncode == 0, res.stderr
        pid = int((project / 'var' / 'zeo.pid').read_text())
        os.kill(pid, signal.SIGSTOP)
    try:
        for args, stdin in OPENERS:
            res = pzeo(*args[:1], 'development.ini', *args[1:], input=stdin,
                       cwd=project)
            said = f'{args}: {res.returncode} {res.stdout!r} {res.stderr!r}'
            assert res.returncode == 1, said
            assert 'Traceback' not in res.stderr, said
            assert '***' not in res.stderr, said  # pserve's banner
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1, said
            assert lines[0].startswith(f'pzeo {args[0]}: '), said
            assert 'zeo.sock' in lines[0], said
    finally:
        if state == 'hung':
            os.kill(pid, signal.SIGCONT)


def test_a_storage_the_server_lacks_is_one_line_and_exit_2(project):
    # ZEO's client logs the refusal with a traceback, the databases log
    # it for a server's log: pzeo says it once.
    _without_autostart(project)
    res = pzeo('start', 'development.ini', cwd=project)
    assert res.returncode == 0, res.stderr
    ini = project / 'development.ini'
    ini.write_text(ini.read_text().replace(
        'zeo.sock?server_sync=true', 'zeo.sock?storage=2&server_sync=true'
    ))
    for args in (('users',), ('shell', '-c', 'print(root)')):
        res = pzeo(*args[:1], 'development.ini', *args[1:], cwd=project)
        said = f'{args}: {res.returncode} {res.stderr!r}'
        assert res.returncode == 2, said
        assert res.stderr.count('\n') == 1, said
        assert "it has none named '2'" in res.stderr, said
