"""pyramid_zeostore.zeoserver without a process or a socket.

What ``zeostore.autostart`` and ``pzeo start``/``stop`` build on, as far
as it needs neither: reading a zeo.conf (socket, pid file, log, lock and
the FileStorages it serves, for Unix and TCP addresses), the ``runzeo``
command line, ``ensure_server`` when another process won the start lock,
``server_pid``/``stop_server`` without a pid file, the /proc helpers
without /proc, the var folder's group and what autostart passes on;
``load_zeo_conf``: errors naming the setting, and a zeo.conf whose
server ``zodb_uri`` does not name refused (paths resolved, TCP hosts
compared loosely); the error line quoted from runzeo's log. The
real sockets and ``runzeo`` processes (probing, start, stop, the
socket's mode and group) are in tests/functional/test_zeoserver.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from pyramid_zeostore import zeoserver
from pyramid_zeostore.zeoserver import ZEOConf

CONF = """\
<zeo>
  address {address}
{extra}</zeo>
<filestorage>
  path {storage}
</filestorage>
"""


def write_conf(directory, address, storage='Data.fs', extra='') -> str:
    path = os.path.join(str(directory), 'zeo.conf')
    with open(path, 'w') as f:
        f.write(CONF.format(address=address, storage=storage, extra=extra))
    return path


# -- ZEOConf and read_zeo_conf ------------------------------------------------


def test_read_zeo_conf_absolute_socket_and_pid_file(tmp_path):
    sock = str(tmp_path / 'var' / 'zeo.sock')
    path = write_conf(
        tmp_path, sock, extra=f'  pid-filename {tmp_path}/var/zeo.pid\n'
    )
    conf = zeoserver.read_zeo_conf(path)
    assert conf == ZEOConf(path, sock, str(tmp_path / 'var' / 'zeo.pid'))
    assert conf.var_dir == str(tmp_path / 'var')
    assert conf.log_file == str(tmp_path / 'var' / 'zeo.log')
    assert conf.lock_file == str(tmp_path / 'var' / 'zeo.start.lock')


def test_read_zeo_conf_relative_paths_start_at_the_conf(tmp_path, monkeypatch):
    write_conf(
        tmp_path, './var/zeo.sock', extra='  pid-filename var/zeo.pid\n'
    )
    monkeypatch.chdir(tmp_path.parent)  # a relative conf path, elsewhere
    conf = zeoserver.read_zeo_conf(os.path.join(tmp_path.name, 'zeo.conf'))
    assert conf.path == str(tmp_path / 'zeo.conf')
    assert conf.address == str(tmp_path / 'var' / 'zeo.sock')
    assert conf.pid_file == str(tmp_path / 'var' / 'zeo.pid')


def test_read_zeo_conf_repository_zeo_conf():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    conf = zeoserver.read_zeo_conf(os.path.join(repo, 'zeo.conf'))
    assert conf.address == os.path.join(repo, 'var', 'zeo.sock')
    assert conf.pid_file == os.path.join(repo, 'var', 'zeo.pid')
    assert conf.log_file == os.path.join(repo, 'var', 'zeo.log')


@pytest.mark.parametrize(
    'text, address',
    [
        ('127.0.0.1:8100', ('127.0.0.1', 8100)),
        ('localhost:8100', ('localhost', 8100)),
        ('8100', ('127.0.0.1', 8100)),  # every interface: probe loopback
        (':8100', ('127.0.0.1', 8100)),
        ('0.0.0.0:8100', ('127.0.0.1', 8100)),
        ('[::1]:8100', ('::1', 8100)),
        ('[::]:8100', ('::1', 8100)),
    ],
)
def test_read_zeo_conf_tcp(tmp_path, text, address):
    path = write_conf(tmp_path, text)
    conf = zeoserver.read_zeo_conf(path)
    assert conf.address == address
    assert conf.pid_file is None
    # A TCP server keeps its log and lock beside the zeo.conf.
    assert conf.var_dir == str(tmp_path)
    assert conf.log_file == str(tmp_path / 'zeo.log')


def test_read_zeo_conf_address_without_port(tmp_path):
    # "zeo.sock" has no "/": ZConfig takes it for a host name.
    path = write_conf(tmp_path, 'zeo.sock')
    with pytest.raises(ValueError, match='has no port') as e:
        zeoserver.read_zeo_conf(path)
    assert path in str(e.value)


def test_read_zeo_conf_storages_of_the_repository_zeo_conf():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    conf = zeoserver.read_zeo_conf(os.path.join(repo, 'zeo.conf'))
    assert conf.storages == (
        zeoserver.FileStorageConf(
            '1',
            os.path.join(repo, 'var', 'Data.fs'),
            os.path.join(repo, 'var', 'blobs'),
        ),
    )


def test_read_zeo_conf_storages_bare_named_and_skipped(tmp_path):
    # A bare <filestorage> (relative path, from the conf's folder), one
    # with its own blob-dir, and a storage that is no file: left out.
    path = os.path.join(str(tmp_path), 'zeo.conf')
    with open(path, 'w') as f:
        f.write(
            '<zeo>\n  address 8100\n</zeo>\n'
            '<filestorage>\n  path var/Data.fs\n</filestorage>\n'
            '<filestorage other>\n  path /srv/o.fs\n'
            '  blob-dir o-blobs\n</filestorage>\n'
            '<mappingstorage mem>\n</mappingstorage>\n'
        )
    conf = zeoserver.read_zeo_conf(path)
    assert conf.storages == (
        zeoserver.FileStorageConf('1', str(tmp_path / 'var' / 'Data.fs')),
        zeoserver.FileStorageConf(
            'other', '/srv/o.fs', str(tmp_path / 'o-blobs')
        ),
    )
    # Derived from the same file: not part of equality.
    assert conf == ZEOConf(path, ('127.0.0.1', 8100), None)


# -- ensure_server / server_pid / stop_server ---------------------------------


def test_runzeo_command():
    assert zeoserver.runzeo_command('/x/zeo.conf') == [
        sys.executable, '-m', 'ZEO.runzeo', '-C', '/x/zeo.conf'
    ]


def test_ensure_server_another_process_won_the_lock(
    zeo_conf, monkeypatch
):
    # Not listening before the lock, listening once we hold it.
    answers = iter([False, True])
    monkeypatch.setattr(
        zeoserver, 'is_listening', lambda address: next(answers)
    )
    monkeypatch.setattr(subprocess, 'Popen', None)  # must not start one
    assert zeoserver.ensure_server(zeo_conf, 30) is None


def test_server_pid_without_pid_file(tmp_path):
    conf = ZEOConf(str(tmp_path / 'zeo.conf'), str(tmp_path / 's'), None)
    assert zeoserver.server_pid(conf) is None
    assert not zeoserver.stop_server(conf)


def test_proc_helpers_without_proc(monkeypatch):
    real_open = open

    def no_proc(path, *args, **kw):
        if str(path).startswith('/proc/'):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kw)

    monkeypatch.setattr('builtins.open', no_proc)
    assert zeoserver._proc_state(os.getpid()) is None
    assert zeoserver._is_runzeo(os.getpid())  # cannot tell: trust the file


# -- who may use the socket: the var folder, the settings --------------------


def other_gid() -> int:
    """A group other than ours that this user may give files to."""
    import grp

    mine = os.getegid()
    if os.geteuid() == 0:
        candidates = [g.gr_gid for g in grp.getgrall()] + [mine + 1]
    else:  # pragma: no cover - depends on the user running the tests
        candidates = os.getgroups()
    for gid in candidates:
        if gid != mine:
            return gid
    pytest.skip('no second group to give the socket to')  # pragma: no cover


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_existing_var_dir_is_left_alone_with_a_warning(tmp_path, caplog):
    gid = other_gid()
    var = tmp_path / 'var'
    var.mkdir()
    os.chmod(var, 0o700)
    with caplog.at_level('WARNING', logger='pyramid_zeostore.zeoserver'):
        zeoserver._make_var_dir(str(var), gid)
    assert _mode(var) == 0o700  # not changed
    assert f'group {gid} cannot enter {var}' in caplog.text
    caplog.clear()
    for mode, group in [(0o701, os.getegid()), (0o710, gid)]:
        os.chown(var, -1, group)
        os.chmod(var, mode)
        with caplog.at_level('WARNING', logger='pyramid_zeostore.zeoserver'):
            zeoserver._make_var_dir(str(var), gid)
            zeoserver._make_var_dir(str(var), None)
        assert caplog.text == ''


def test_autostart_passes_the_socket_settings(tmp_path, monkeypatch):
    import pyramid_zeostore
    from pyramid_zeostore.settings import parse_settings

    conf_path = tmp_path / 'zeo.conf'
    conf_path.write_text('')
    parsed = parse_settings({
        'zodb_uri': 'memory://',
        'zeostore.autostart': 'true',
        'zeostore.zeo_conf': str(conf_path),
        'zeostore.socket_group': str(os.getegid()),
    })
    calls = []
    monkeypatch.setattr(zeoserver, 'read_zeo_conf', lambda path: path)
    monkeypatch.setattr(
        zeoserver, 'ensure_server', lambda *args: calls.append(args)
    )
    pyramid_zeostore._autostart(parsed)
    assert calls == [(str(conf_path), 30.0, 0o660, os.getegid())]


# -- the zeo.conf of the server zodb_uri names: load_zeo_conf ---------------


def specs(*uris: str):
    """The DatabaseSpecs of ``zodb_uri`` (the first) and named ones."""
    from pyramid_zeostore.settings import parse_settings

    settings = {'zodb_uri': uris[0]}
    settings.update({f'zodb_uri.db{i}': u for i, u in enumerate(uris[1:])})
    return parse_settings(settings).databases


@pytest.mark.parametrize(
    'ours, uri, same',
    [
        ('{tmp}/var/zeo.sock', 'zeo://{tmp}/var/zeo.sock', True),
        ('./var/zeo.sock', 'zeo://{tmp}/var/../var/zeo.sock', True),
        ('{tmp}/var/zeo.sock', 'zeo://{tmp}/link/zeo.sock', True),
        ('{tmp}/other.sock', 'zeo://{tmp}/var/zeo.sock', False),
        ('{tmp}/var/zeo.sock', 'zeo://localhost:8100', False),
        ('localhost:8100', 'zeo://127.0.0.1:8100', True),
        ('127.0.0.1:8100', 'zeo://localhost:8100', True),
        ('[::1]:8100', 'zeo://localhost:8100', True),
        ('127.0.0.1:8100', 'zeo://127.0.0.1:8101', False),
        ('127.0.0.1:8100', 'zeo://10.0.0.5:8100', False),
        ('10.0.0.5:8100', 'zeo://10.0.0.5:8100', True),
        ('10.0.0.5:8100', 'zeo://ZEO.Example.com:8100', True),  # no DNS
        ('8100', 'zeo://10.0.0.5:8100', True),  # every interface
        ('0.0.0.0:8100', 'zeo://10.0.0.5:8101', False),
        ('[::]:8100', 'zeo://10.0.0.5:8100', True),
    ],
)
def test_same_address(tmp_path, ours, uri, same):
    (tmp_path / 'var').mkdir()
    (tmp_path / 'link').symlink_to(tmp_path / 'var')
    conf = zeoserver.read_zeo_conf(
        write_conf(tmp_path, ours.format(tmp=tmp_path))
    )
    (spec,) = specs(uri.format(tmp=tmp_path))
    assert zeoserver.same_address(conf, spec.zeo.address) is same


def test_load_zeo_conf_refuses_a_server_zodb_uri_does_not_name(tmp_path):
    from pyramid_zeostore import ZeostoreConfigurationError

    path = write_conf(tmp_path, f'{tmp_path}/other.sock')
    wanted = f'{tmp_path}/var/zeo.sock'
    with pytest.raises(ZeostoreConfigurationError) as e:
        zeoserver.load_zeo_conf(path, specs(f'zeo://{wanted}'))
    assert e.value.key == 'zeostore.zeo_conf'
    message = str(e.value)
    assert f'{tmp_path}/other.sock' in message and wanted in message
    assert 'zodb_uri must name the server the zeo.conf starts' in message
    with pytest.raises(ZeostoreConfigurationError, match='^--zeo-conf: '):
        zeoserver.load_zeo_conf(
            path, specs(f'zeo://{wanted}', 'zeo://localhost:8100'),
            '--zeo-conf',
        )


def test_load_zeo_conf_takes_any_address_of_any_zeo_database(tmp_path):
    path = write_conf(tmp_path, f'{tmp_path}/var/zeo.sock')
    sock = f'{tmp_path}/var/zeo.sock'
    (tmp_path / 'db.conf').write_text(
        f'<zodb>\n  <zeoclient>\n    server {sock}\n  </zeoclient>\n'
        '</zodb>\n'
    )
    for databases in [
        specs(f'zeo://{sock}'),
        specs(f'zeo://{tmp_path}/a.sock?addresses={sock}'),
        specs('zeo://localhost:8100', f'zeo://{sock}?storage=2'),
        specs('memory://', f'demo:(zeo://{sock})/(memory://)'),
        specs('file:///x/Data.fs'),  # no ZEO database: nothing to compare
        specs('memory://'),
        # A zconfig:// file may name a ZEO client: not known here.
        specs('zeo://localhost:8100', f'zconfig://{tmp_path}/db.conf'),
    ]:
        assert zeoserver.load_zeo_conf(path, databases).address == sock


def test_load_zeo_conf_unknown_key_names_the_setting_and_line(tmp_path):
    from pyramid_zeostore import ZeostoreConfigurationError

    path = write_conf(
        tmp_path, f'{tmp_path}/zeo.sock', extra='  bogus-key 1\n'
    )
    with pytest.raises(ZeostoreConfigurationError) as e:
        zeoserver.load_zeo_conf(path)
    assert e.value.key == 'zeostore.zeo_conf' and e.value.value == path
    assert "'bogus-key' is not a known key name (line 3)" in str(e.value)
    with pytest.raises(ZeostoreConfigurationError, match='no port'):
        zeoserver.load_zeo_conf(write_conf(tmp_path, 'zeo.sock'))
    with pytest.raises(ZeostoreConfigurationError, match='No such file'):
        zeoserver.load_zeo_conf(str(tmp_path / 'missing.conf'))


def test_autostart_refuses_a_server_zodb_uri_does_not_name(
    tmp_path, monkeypatch
):
    import pyramid_zeostore
    from pyramid_zeostore import ZeostoreConfigurationError
    from pyramid_zeostore.settings import parse_settings

    path = write_conf(tmp_path, f'{tmp_path}/other.sock')
    parsed = parse_settings({
        'zodb_uri': f'zeo://{tmp_path}/var/zeo.sock',
        'zeostore.autostart': 'true',
        'zeostore.zeo_conf': path,
    })
    monkeypatch.setattr(zeoserver, 'ensure_server', None)  # not reached
    with pytest.raises(ZeostoreConfigurationError) as e:
        pyramid_zeostore._autostart(parsed)
    assert e.value.key == 'zeostore.zeo_conf'
    assert 'other.sock' in str(e.value)


# -- why runzeo stopped: _log_error -------------------------------------------


def test_log_error_quotes_the_last_error_line_it_wrote(tmp_path):
    log = tmp_path / 'zeo.log'
    log.write_text('KeyError: an older run\n')
    start = log.stat().st_size
    with open(log, 'a') as f:
        f.write(
            '------\n2026-01-01T00:00:00 INFO ZEO.runzeo opening\n'
            'Traceback (most recent call last):\n'
            '  File "x.py", line 1, in <module>\n'
            '    raise ZConfig.ConfigurationError(\n'
            "IsADirectoryError: [Errno 21] Is a directory: '/x'"
        )
    assert zeoserver._log_error(str(log), start) == (
        "IsADirectoryError: [Errno 21] Is a directory: '/x'"
    )
    with open(log, 'a') as f:
        f.write('\nError: The directory named as part of the path /y\n'
                'For help, use runzeo.py -h\n')
    assert zeoserver._log_error(str(log), start).startswith('Error: The ')
    log.write_text('')
    assert zeoserver._log_error(str(log), 0) is None
    log.write_text(''.join(f'line {i}\n' for i in range(20)) + 'x' * 9999)
    tail = zeoserver._log_error(str(log), 0)
    assert tail == ' | '.join(
        [f'line {i}' for i in range(16, 20)] + ['x' * 500]
    )
    assert zeoserver._log_error(str(tmp_path / 'none.log'), 0) is None
