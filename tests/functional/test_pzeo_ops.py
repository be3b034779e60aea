"""``pzeo pack``, ``backup``/``restore`` and ``verify``: the real program
against a real ZEO server (``runzeo`` on a Unix socket in a temp dir).

Every ``pzeo`` runs as a child process with a time limit; the server is
stopped by its pid by the ``zeo_server`` fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import transaction
from ZODB import DB
from ZODB.blob import Blob
from ZODB.FileStorage import FileStorage
from ZODB.utils import oid_repr, p64

from pyramid_zeostore import Folder, open_root
from pyramid_zeostore.app.content import Item
from tests.unit.test_commands_ops import children

from .conftest import BIN, child_env, write_ini

PZEO = os.path.join(BIN, 'pzeo')


def pzeo(*args, limit: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PZEO, *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=limit,
    )


def project(tmp_path, zeo_server) -> tuple[str, str]:
    """An ini for the server (client blob cache in tmp_path) naming its
    zeo.conf; and its URI."""
    uri = zeo_server.uri(blob_dir=tmp_path / 'blob-cache')
    ini = write_ini(
        tmp_path, uri, **{'zeostore.zeo_conf': zeo_server.conf_path}
    )
    return ini, uri


def read_file(path, blob_dir=None) -> dict:
    """{name: title or blob bytes} of the app root, the file read-only."""
    return children(path, blob_dir, read_only=True)


def test_pack_shrinks_the_file_and_keeps_the_data(zeo_server, tmp_path):
    ini, uri = project(tmp_path, zeo_server)
    fs = os.path.join(zeo_server.dir, 'Data.fs')
    for i in range(150):  # many revisions of one object
        with open_root(uri) as root:
            if 'counter' not in root:
                root.add('counter', Item(title='counter'))
            root['counter'].n = i
            root['counter'].payload = f'{i:04d}' * 500
    written = os.path.getsize(fs)

    # Nothing is older than a day: nothing goes.
    proc = pzeo('pack', ini, '--days', '1', '--json')
    assert proc.returncode == 0, proc.stderr
    row, = json.loads(proc.stdout)['databases']
    assert row['size_before'] == row['size_after'] == written
    assert row['error'] is None

    proc = pzeo('pack', ini, '--days', '0')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        f'packing zodb_uri ({zeo_server.sock}) ... done in '
    )
    assert ' -> ' in proc.stdout
    assert os.path.getsize(fs) < written / 20
    # The size the client reports is the server's, after the pack.
    proc = pzeo('pack', ini, '--json')
    row, = json.loads(proc.stdout)['databases']
    assert row['size_before'] == row['size_after'] == os.path.getsize(fs)

    with open_root(uri) as root:
        assert root['counter'].n == 149
        assert root['counter'].payload == '0149' * 500


def test_backup_and_restore_with_blobs_while_the_server_runs(
    zeo_server, tmp_path
):
    ini, uri = project(tmp_path, zeo_server)
    repo = tmp_path / 'backups'

    def write(name):
        with open_root(uri) as root:
            root.add(name, Item(title=name))
            root.add(f'{name}.bin', Blob(name.encode() * 1000))

    write('A')
    proc = pzeo('backup', ini, '--to', repo, '--full')
    assert proc.returncode == 0, proc.stderr
    assert 'full backup' in proc.stdout
    assert 'blobs: 1 files (1 copied, 0 hard-linked' in proc.stdout
    write('B')
    proc = pzeo('backup', ini, '--to', repo)
    assert proc.returncode == 0, proc.stderr
    assert 'incremental backup' in proc.stdout
    assert 'blobs: 2 files (1 copied, 1 hard-linked' in proc.stdout
    write('C')  # after the last backup: not restored

    new = tmp_path / 'restored' / 'Data.fs'
    proc = pzeo('restore', ini, '--from', repo, '--to', new)
    assert proc.returncode == 0, proc.stderr
    blobs = tmp_path / 'restored' / 'blobs'
    assert f'blobs: 2 files to {blobs}' in proc.stdout
    assert read_file(new, str(blobs)) == {
        'A': 'A', 'A.bin': b'A' * 1000, 'B': 'B', 'B.bin': b'B' * 1000,
    }
    proc = pzeo('verify', ini, '--file', new, '--blob-dir', blobs)
    assert proc.returncode == 0, proc.stdout
    assert ', 2 blob files in' in proc.stdout

    # Each backup's blob folder is whole; A's file is shared by both.
    first, second = sorted(os.listdir(repo / 'blobs'))

    def blob_files(snapshot):
        return {
            name: os.stat(os.path.join(here, name)).st_ino
            for here, _, names in os.walk(repo / 'blobs' / snapshot)
            for name in names if name.endswith('.blob')
        }

    in_first, in_second = blob_files(first), blob_files(second)
    assert len(in_first) == 1 and len(in_second) == 2
    shared, = in_first
    assert in_first[shared] == in_second[shared]

    # As of the full backup: A only.
    older = tmp_path / 'older' / 'Data.fs'
    proc = pzeo('restore', ini, '--from', repo, '--to', older,
                '--date', first)
    assert proc.returncode == 0, proc.stderr
    assert read_file(older, str(tmp_path / 'older' / 'blobs')) == {
        'A': 'A', 'A.bin': b'A' * 1000,
    }
    # Never over an existing file.
    proc = pzeo('restore', ini, '--from', repo, '--to', new)
    assert proc.returncode == 2
    assert 'restore writes a new file only' in proc.stderr

    assert zeo_server.proc.poll() is None  # served all along
    with open_root(uri) as root:
        assert {'A', 'B', 'C'} <= set(root)


def test_verify_finds_damage_in_a_copy(zeo_server, tmp_path):
    ini, uri = project(tmp_path, zeo_server)
    with open_root(uri) as root:
        root.add('docs', Folder())
        for name in ('report', 'keep', 'holder'):
            root['docs'].add(name, Item(title=name))
        root['docs']['report'].marker = 'CORRUPT-ME-PLEASE'
        report, holder = root['docs']['report'], root['docs']['holder']
    report, holder = report._p_oid, holder._p_oid

    # The live file, read while the server serves it; and through ZEO.
    for extra in ((), ('--via-zeo',)):
        proc = pzeo('verify', ini, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.rstrip().endswith(': OK')

    copy = tmp_path / 'copy' / 'Data.fs'
    os.makedirs(copy.parent)
    shutil.copyfile(os.path.join(zeo_server.dir, 'Data.fs'), copy)
    # Garble one record: the opcode of the marker string (BINUNICODE,
    # then a 4-byte length) becomes an invalid one.
    data = bytearray(copy.read_bytes())
    at = data.index(b'CORRUPT-ME-PLEASE') - 5
    assert data[at:at + 1] == b'X'
    data[at] = 0xFF
    copy.write_bytes(bytes(data))
    # A reference to an object that does not exist: a hand-made ghost.
    missing = p64(0xDEAD)
    db = DB(FileStorage(str(copy)))
    try:
        tm = transaction.TransactionManager()
        conn = db.open(transaction_manager=tm)
        ghost = Item()
        ghost._p_oid, ghost._p_jar = missing, conn
        conn.root()['app_root']['docs']['holder'].other = ghost
        tm.commit()
        conn.close()
    finally:
        db.close()

    proc = pzeo('verify', ini, '--file', copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert (
        f'{oid_repr(report)} pyramid_zeostore.app.content.Item at '
        '/app_root/docs/report: its state cannot be unpickled'
    ) in out
    assert (
        f'{oid_repr(missing)} at /app_root/docs/holder.other: it is '
        f'missing, but {oid_repr(holder)} references it'
    ) in out
    assert out.rstrip().endswith(': 2 problem(s)')
    assert proc.stderr == ''  # ZODB's own complaints are not repeated

    # The damage is the copy's only.
    assert pzeo('verify', ini).returncode == 0
