"""``pzeo pack``, ``backup``, ``restore`` and ``verify`` in-process
(``cli.main``), where they need another process or a socket.

A pack through a real ZEO server (the ``zeo_server`` fixture) and one
whose server is down (a ZEO client trying an absent socket); backups
and restores, with and without blobs, made by ZODB's real repozo (a
child process that reads the FileStorage: no server), incrementals, a
restore at a date, the refusals and a repozo failure; ``verify
--via-zeo`` finding damage through a real ``runzeo`` started on a
damaged copy, and reporting a server that is down. Every server is
stopped by its pid. The helpers are those of
tests/unit/test_commands_ops.py, which holds what needs neither a
process nor a server; tests/functional/test_pzeo_ops.py runs the
``pzeo`` program itself.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

from ZODB.utils import oid_repr

from pyramid_zeostore.commands import backup
from tests.conftest import ZEOProcess
from tests.unit.test_commands_ops import (
    add_child,
    children,
    content,
    oid_of,
    project,
    revisions,
    run,
    store,
    write_ini,
)

# -- pack ---------------------------------------------------------------------


def test_pack_through_zeo(zeo_server, tmp_path, capsys):
    ini = write_ini(tmp_path, zeo_server.uri())
    revisions(zeo_server.uri(), 30)
    status, out, _ = run(capsys, 'pack', ini, '--json')
    assert status == 0
    row, = json.loads(out)['databases']
    # The client's figure is the server's file, after the pack.
    assert row['size_after'] == os.path.getsize(
        os.path.join(zeo_server.dir, 'Data.fs')
    ) < row['size_before']


def test_pack_a_server_that_is_down(tmp_path, capsys):
    ini = write_ini(tmp_path, f'zeo://{tmp_path}/nothing.sock')
    status, out, _ = run(capsys, 'pack', ini, '--timeout', '0.2')
    assert status == 1
    assert 'FAILED:' in out


# -- backup and restore (no server: repozo reads the file) --------------------


def test_backup_and_restore_without_blobs(tmp_path, capsys):
    ini, uri = project(tmp_path)
    repo = tmp_path / 'backups'
    add_child(uri, 'a')
    status, out, _ = run(capsys, 'backup', ini, '--to', repo)
    assert status == 0
    assert 'full backup' in out and 'blobs' not in out
    add_child(uri, 'b')
    status, out, _ = run(capsys, 'backup', ini, '--to', repo, '--quick')
    assert status == 0 and 'incremental backup' in out
    status, out, _ = run(capsys, 'backup', ini, '--to', repo)
    assert status == 0 and 'no change since the last backup' in out
    add_child(uri, 'c')
    new = tmp_path / 'restored' / 'Data.fs'
    status, out, _ = run(capsys, 'restore', ini, '--from', repo, '--to', new)
    assert status == 0
    assert '+ 1 incremental(s)' in out and 'blobs' not in out
    assert children(new) == {'a': 'a', 'b': 'b'}
    first = backup.data_files(str(repo))[0].split('.')[0]
    status, out, _ = run(
        capsys, 'restore', ini, '--from', repo, '--to', tmp_path / 'a.fs',
        '--date', first, '-v',
    )
    assert status == 0
    assert children(tmp_path / 'a.fs') == {'a': 'a'}
    # The repository stays a plain repozo one.
    assert {n.rsplit('.', 1)[1] for n in os.listdir(repo)} == {
        'fs', 'dat', 'index', 'deltafs'
    }


def test_backups_are_this_users_whatever_the_umask(tmp_path, capsys):
    # They hold every record, the ready app's password hashes too.
    ini, uri = project(tmp_path)
    add_child(uri, 'a')
    repo = tmp_path / 'backups'
    new = tmp_path / 'restored' / 'Data.fs'
    old_umask = os.umask(0o022)
    try:
        assert run(capsys, 'backup', ini, '--to', repo)[0] == 0
        assert run(capsys, 'restore', ini, '--from', repo, '--to', new
                   )[0] == 0
    finally:
        os.umask(old_umask)
    made = [repo, *repo.iterdir(), new.parent, new]
    modes = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in made}
    assert all(int(m, 8) & 0o077 == 0 for m in modes.values()), modes


def test_restore_refusals(tmp_path, capsys):
    ini, uri = project(tmp_path)
    repo = tmp_path / 'backups'
    status, _, err = run(
        capsys, 'restore', tmp_path / 'no.ini', '--from', repo, '--to', 'x'
    )
    assert status == 2 and 'no such ini file' in err
    status, _, err = run(capsys, 'restore', ini, '--from', repo, '--to', 'x')
    assert status == 2 and 'no such backup folder' in err
    os.makedirs(repo)
    status, _, err = run(capsys, 'restore', ini, '--from', repo, '--to', 'x')
    assert status == 2 and 'holds no repozo backup' in err
    add_child(uri, 'a')
    assert run(capsys, 'backup', ini, '--to', repo)[0] == 0
    for existing in ('exists.fs', 'indexed.fs.index'):
        (tmp_path / existing).write_text('mine')
    for target in ('exists.fs', 'indexed.fs'):
        status, _, err = run(
            capsys, 'restore', ini, '--from', repo, '--to', tmp_path / target
        )
        assert status == 2 and 'restore writes a new file only' in err
    assert (tmp_path / 'exists.fs').read_text() == 'mine'
    status, _, err = run(
        capsys, 'restore', ini, '--from', repo, '--to', tmp_path / 'n.fs',
        '--date', '2001-01-01',
    )
    assert status == 1
    assert 'no backup in' in err and 'at or before 2001-01-01-00-00-00' in err


def test_repozo_failure(tmp_path, capsys):
    ini, _ = project(tmp_path)
    (tmp_path / 'var' / 'Data.fs').write_bytes(b'not a FileStorage')
    status, _, err = run(capsys, 'backup', ini, '--to', tmp_path / 'b')
    assert status == 1
    assert 'repozo failed (exit status 1)' in err


def test_backup_and_restore_blobs(tmp_path, capsys):
    ini, uri = project(tmp_path, blobs=True)
    repo = tmp_path / 'backups'
    add_child(uri, 'a', b'A' * 100)
    status, out, _ = run(capsys, 'backup', ini, '--to', repo, '--full')
    assert status == 0
    assert 'blobs: 1 files (1 copied, 0 hard-linked' in out
    add_child(uri, 'b', b'B' * 100)
    status, out, _ = run(capsys, 'backup', ini, '--to', repo)
    assert status == 0
    assert 'blobs: 2 files (1 copied, 1 hard-linked' in out
    first, second = backup._snapshots(str(repo))
    # A snapshot lost after its Data.fs backup (interrupted) is made
    # again by the next backup, even with no change to copy.
    shutil.rmtree(repo / 'blobs' / second)
    status, out, _ = run(capsys, 'backup', ini, '--to', repo)
    assert 'no change since the last backup' in out
    assert 'blobs: 2 files (1 copied, 1 hard-linked' in out
    add_child(uri, 'c', b'C' * 100)
    new = tmp_path / 'restored' / 'Data.fs'
    status, out, _ = run(capsys, 'restore', ini, '--from', repo, '--to', new)
    assert status == 0
    assert f'blobs: 2 files to {tmp_path}/restored/blobs' in out
    assert children(new, tmp_path / 'restored' / 'blobs') == {
        'a': b'A' * 100, 'b': b'B' * 100
    }
    # The default blob folder now exists: another restore beside it
    # must name one.
    status, _, err = run(
        capsys, 'restore', ini, '--from', repo, '--to',
        tmp_path / 'restored' / 'again.fs', '--date', first,
    )
    assert status == 2 and 'restore writes a new blob folder only' in err
    status, _, _ = run(
        capsys, 'restore', ini, '--from', repo, '--to',
        tmp_path / 'restored' / 'again.fs', '--date', first,
        '--blob-dir', tmp_path / 'first-blobs',
    )
    assert status == 0
    assert children(
        tmp_path / 'restored' / 'again.fs', tmp_path / 'first-blobs'
    ) == {'a': b'A' * 100}
    # A backup made by plain repozo has no blob folder: refused.
    backup._next_second(  # repozo names its files by the second
        [n.split('.')[0] for n in backup.data_files(str(repo))]
    )
    backup.repozo('-B', '-r', str(repo), '-f', str(tmp_path / 'var/Data.fs'))
    status, _, err = run(
        capsys, 'restore', ini, '--from', repo, '--to', tmp_path / 'x.fs'
    )
    assert status == 1 and 'has no blob folder for the backup' in err


# -- verify -------------------------------------------------------------------


def test_verify_via_zeo(tmp_path, capsys):
    # A server on a copy that lost an object: found through ZEO too.
    uri = f'file://{tmp_path}/prep/Data.fs'
    os.makedirs(tmp_path / 'prep')
    content(uri)
    a = oid_of(uri, 'docs', 'a')
    store(tmp_path / 'prep' / 'Data.fs', {a: b'garbage'})
    server = ZEOProcess(tmp_path / 'zeo')
    os.replace(tmp_path / 'prep' / 'Data.fs', tmp_path / 'zeo' / 'Data.fs')
    server.start()
    try:
        ini = write_ini(tmp_path, server.uri(), extra=[
            f'zodb_uri.down = zeo://{tmp_path}/nothing.sock'
        ])
        status, out, _ = run(
            capsys, 'verify', ini, '--via-zeo', '--db', '', '--timeout', '5'
        )
        assert status == 1
        assert f'verifying zodb_uri ({server.sock}) ...' in out
        assert f'{oid_repr(a)} at /app_root/docs/a: its class cannot be ' \
            'read' in out
        status, out, _ = run(
            capsys, 'verify', ini, '--via-zeo', '--db', 'down',
            '--timeout', '0.2',
        )
        assert status == 1 and 'error: cannot open it:' in out
    finally:
        server.stop()
