"""Who may use an autostarted ZEO server: its socket, folder and files.

Real processes: ``pserve`` autostarts ``runzeo`` from a zeo.conf whose
var folder does not exist yet, with a lax umask (0) that nothing may
inherit. Then the modes on disk are checked: the socket is the owner's
only by default (0600), or 0660 of ``zeostore.socket_group``; the var
folder 0700 (0750 with a group); data, blobs, pid file and logs never
readable by the group nor anyone else, and nothing open to the world.
As root, processes of other users try the socket: ``www-data`` gets in
through the group, ``nobody`` not.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from pyramid_zeostore import zeoserver
from tests import conftest as rconf
from tests.functional import conftest as fconf

pytestmark = pytest.mark.deploy

GROUP = 'www-data'  # the web server's group on Debian and Ubuntu

CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
    print('connected', len(s.recv(16)) > 0)
except OSError as e:
    print('errno', e.errno)
"""


@pytest.fixture
def base():
    """A folder others may enter (0711, so that the users of the root-only
    test can reach the socket in it), removed at the end."""
    path = tempfile.mkdtemp(prefix='zeostore-perm-')
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def autostart(base, autostarted, servers, **settings):
    """pserve with autostart of base/zeo.conf (var: base/var, not there
    yet), started under umask 0; the ZEOConf and the app, which has
    committed one item."""
    conf_path = os.path.join(base, 'zeo.conf')
    with open(conf_path, 'w') as f:
        f.write(rconf.ZEO_CONF.format(var=os.path.join(base, 'var')))
    conf = zeoserver.read_zeo_conf(conf_path)
    autostarted.append(conf)
    assert not os.path.exists(conf.var_dir)
    app_dir = os.path.join(base, 'app')
    os.mkdir(app_dir)
    ini = fconf.write_ini(
        app_dir,
        f'zeo://{conf.address}',
        **{
            'zeostore.autostart': 'true',
            'zeostore.zeo_conf': conf.path,
            **settings,
        },
    )
    old_umask = os.umask(0)  # pserve inherits it: runzeo and ours must not
    try:
        app = servers(fconf.pserve(ini))
    finally:
        os.umask(old_umask)
    body = json.dumps({'name': 'x', 'type': 'item'}).encode()
    status, _, _ = app.request(
        '/', method='POST', data=body, headers=fconf.JSON_HEADERS
    )
    assert status == 201, app.log()
    assert len(fconf.runzeo_pids(conf.path)) == 1
    return conf, app


def modes(var_dir):
    """{relative path: (mode, gid)} of everything under var_dir."""
    found = {}
    for top, dirs, files in os.walk(var_dir):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            found[os.path.relpath(path, var_dir)] = (
                stat.S_IMODE(st.st_mode), st.st_gid
            )
    return found


#: what runzeo and autostart write: for the owner only
PRIVATE = ('Data.fs', 'zeo.log', 'zeo.pid', 'blobs', 'zeo.start.lock')


def assert_private_files(conf):
    """Data, blobs, logs: the owner's only. Nothing but the socket (and
    the folder) open to anybody else; the app's lock files
    (``zeo.sock.lock*``) may be the group's, never the world's."""
    found = modes(conf.var_dir)
    for expected in PRIVATE + ('zeo.sock.lock',):
        assert expected in found, sorted(found)
    for name, (mode, _) in found.items():
        assert mode & 0o007 == 0, (name, oct(mode))
        if name.split(os.sep)[0] in PRIVATE:
            assert mode & 0o077 == 0, (name, oct(mode))


def connect_as(user: str, path: str) -> str:
    """Connect to the socket at ``path`` as ``user`` (root only)."""
    python = shutil.which('python3', path='/usr/bin:/bin')
    if python is None:  # pragma: no cover - environment
        pytest.skip('no system python3 that other users can run')
    proc = subprocess.run(
        [python, '-c', CONNECT, path],
        user=user, group=grp.getgrgid(_pw(user).pw_gid).gr_name,
        extra_groups=[], env={'PATH': '/usr/bin:/bin'}, cwd='/',
        capture_output=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


def _pw(user):
    import pwd

    return pwd.getpwnam(user)


def test_default_socket_is_the_owners_only(base, autostarted, servers):
    conf, app = autostart(base, autostarted, servers)
    st = os.stat(conf.address)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    var = os.stat(conf.var_dir)
    assert stat.S_IMODE(var.st_mode) == 0o700, oct(var.st_mode)
    assert_private_files(conf)
    if os.geteuid() == 0:
        assert connect_as('www-data', conf.address) == 'errno 13'
        assert connect_as('nobody', conf.address) == 'errno 13'


@pytest.mark.skipif(not hasattr(grp, 'getgrnam'), reason='no groups')
def test_socket_group_lets_that_group_in(base, autostarted, servers):
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:  # pragma: no cover - environment
        pytest.skip(f'no group {GROUP}')
    if os.geteuid() != 0 and gid not in os.getgroups():
        pytest.skip(f'this user is not in {GROUP}')
    conf, app = autostart(
        base, autostarted, servers, **{'zeostore.socket_group': GROUP}
    )
    st = os.stat(conf.address)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == gid
    var = os.stat(conf.var_dir)
    assert stat.S_IMODE(var.st_mode) == 0o750, oct(var.st_mode)
    assert var.st_gid == gid
    assert_private_files(conf)
    if os.geteuid() == 0:
        assert connect_as('www-data', conf.address) == 'connected True'
        assert connect_as('nobody', conf.address) == 'errno 13'
    # The app itself still works.
    assert app.request('/?format=json')[0] == 200


def test_socket_mode_setting(base, autostarted, servers):
    conf, app = autostart(
        base, autostarted, servers, **{'zeostore.socket_mode': '0660'}
    )
    st = os.stat(conf.address)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == os.getegid()  # the owner's group
    assert stat.S_IMODE(os.stat(conf.var_dir).st_mode) == 0o700
    assert_private_files(conf)


def test_bad_socket_settings_stop_pserve_naming_the_key(base):
    conf_path = os.path.join(base, 'zeo.conf')
    with open(conf_path, 'w') as f:
        f.write(rconf.ZEO_CONF.format(var=os.path.join(base, 'var')))
    for key, value, words in [
        ('zeostore.socket_mode', '0666', 'nothing for others'),
        ('zeostore.socket_group', 'no-such-group-zs', 'existing group'),
    ]:
        ini = fconf.write_ini(
            base,
            f'zeo://{base}/var/zeo.sock',
            **{
                'zeostore.autostart': 'true',
                'zeostore.zeo_conf': conf_path,
                key: value,
            },
        )
        proc = subprocess.run(
            [os.path.join(fconf.BIN, 'pserve'), ini],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=base, env=fconf.child_env(),
            timeout=120,
        )
        output = proc.stdout.decode(errors='replace')
        assert proc.returncode != 0
        assert f'{key}: expected' in output and words in output, output
    assert not os.path.exists(os.path.join(base, 'var'))  # nothing started
