"""``pzeo pack``, ``backup``, ``restore`` and ``verify`` in-process, with
no child process and no socket.

Real FileStorage files in temp dirs (damage is made with the storage
API or by changing bytes of a copy): help and usage errors, packing a
file (and one in use), choosing the storage of a zeo.conf, blob
snapshots, repozo's file names and stamps, and every kind of damage
``verify`` finds. Where ZODB's repozo (a child process) or a ZEO client
is needed, the in-process runs are in
tests/functional/test_commands_ops.py, and the end-to-end runs of the
``pzeo`` program in tests/functional/test_pzeo_ops.py.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import sys
import types

import pytest
import transaction
import zodbpickle.pickle
from persistent.mapping import PersistentMapping
from persistent.wref import WeakRef
from ZODB import DB
from ZODB.blob import Blob
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.utils import load_current, oid_repr, p64, z64

from pyramid_zeostore import Folder, cli, open_root
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.commands import CommandError, backup, pack, verify

# -- helpers ------------------------------------------------------------------


def write_ini(tmp_path, uri=None, zeo_conf=None, extra=()) -> str:
    path = tmp_path / 'app.ini'
    lines = [
        '[app:main]',
        'use = egg:pyramid_zeostore',
        f'zodb_uri = {uri or f"file://{tmp_path}/var/Data.fs"}',
        'zeostore.connect_timeout = 0.5',
        *extra,
    ]
    if zeo_conf:
        lines.append(f'zeostore.zeo_conf = {zeo_conf}')
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def write_zeo_conf(tmp_path, storages: str) -> str:
    path = tmp_path / 'zeo.conf'
    path.write_text(
        f'<zeo>\n  address {tmp_path}/var/zeo.sock\n</zeo>\n' + storages
    )
    return str(path)


def blob_conf(tmp_path) -> str:
    return write_zeo_conf(
        tmp_path,
        '<blobstorage 1>\n  <filestorage>\n'
        f'    path {tmp_path}/var/Data.fs\n  </filestorage>\n'
        f'  blob-dir {tmp_path}/var/blobs\n</blobstorage>\n',
    )


def plain_conf(tmp_path) -> str:
    return write_zeo_conf(
        tmp_path,
        f'<filestorage>\n  path {tmp_path}/var/Data.fs\n</filestorage>\n',
    )


def project(tmp_path, blobs=False):
    """An ini (file:// URI) and a zeo.conf naming the same Data.fs."""
    os.makedirs(tmp_path / 'var', exist_ok=True)
    conf = blob_conf(tmp_path) if blobs else plain_conf(tmp_path)
    uri = f'file://{tmp_path}/var/Data.fs'
    if blobs:
        uri += f'?blobstorage_dir={tmp_path}/var/blobs'
    return write_ini(tmp_path, uri, conf), uri


def open_file(path, blob_dir=None, read_only=False):
    """A DB on ``path``: (db, conn, zodb root), on their own tm."""
    db = DB(FileStorage(str(path), blob_dir=blob_dir, read_only=read_only))
    conn = db.open(transaction_manager=transaction.TransactionManager())
    return db, conn, conn.root()


def record(meta, state, refs: dict | None = None) -> bytes:
    """A hand-made object record: two pickles. Objects in ``refs``
    ({id(obj): reference}) are written as those persistent references."""
    f = io.BytesIO()
    pickler = zodbpickle.pickle.Pickler(f, 3)
    if refs:
        pickler.persistent_id = lambda obj: refs.get(id(obj))
    pickler.dump(meta)
    pickler.dump(state)
    return f.getvalue()


def store(path, records: dict) -> None:
    """Write ``records`` ({oid: data}) in one transaction, bypassing
    ZODB's pickling: how damage is made."""
    storage = FileStorage(str(path))
    try:
        txn = TransactionMetaData()
        storage.tpc_begin(txn)
        for oid, data in records.items():
            try:
                serial = load_current(storage, oid)[1]
            except POSKeyError:
                serial = z64
            storage.store(oid, serial, data, '', txn)
        storage.tpc_vote(txn)
        storage.tpc_finish(txn)
    finally:
        storage.close()


@pytest.fixture
def gone_module():
    """Classes of a module that is importable while the data is written
    and gone when it is checked."""
    module = types.ModuleType('pzeo_gone_module')

    class Thing(Item):
        pass

    class Plain:
        pass

    for cls in (Thing, Plain):
        cls.__module__ = module.__name__
        setattr(module, cls.__name__, cls)
    sys.modules[module.__name__] = module
    yield module
    sys.modules.pop(module.__name__, None)


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``pzeo argv``."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# -- help and arguments -------------------------------------------------------


@pytest.mark.parametrize('command', ['pack', 'backup', 'restore', 'verify'])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, '--help'])
    assert e.value.code == 0
    assert command in capsys.readouterr().out


def test_top_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(['--help'])
    out = capsys.readouterr().out
    for command in ('pack', 'backup', 'restore', 'verify'):
        assert command in out


@pytest.mark.parametrize(
    'argv',
    [
        ['pack', 'x.ini', '--days', '-1'],
        ['pack', 'x.ini', '--days', 'nan'],
        ['pack', 'x.ini', '--days', 'soon'],
        ['restore', 'x.ini', '--from', 'd', '--to', 'f', '--date', 'May'],
        ['restore', 'x.ini', '--from', 'd', '--to', 'f',
         '--date', '2024-02-30'],
        ['verify', 'x.ini', '--file', 'f', '--via-zeo'],
        ['backup', 'x.ini'],  # --to is required
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2


def test_human_sizes():
    assert pack.human(10) == '10 bytes'
    assert pack.human(1536) == '1.5 KiB'
    assert pack.human(2048) == '2.0 KiB'
    assert pack.human(3 * 1024**2) == '3.0 MiB'
    assert pack.human(5 * 1024**4) == '5120.0 GiB'


# -- pack ---------------------------------------------------------------------


def revisions(uri, count=60):
    for i in range(count):
        with open_root(uri) as root:
            if 'counter' not in root:
                root.add('counter', Item(n=0))
            root['counter'].n = i
            root['counter'].payload = 'x' * 2000


def test_pack_a_file_storage(tmp_path, capsys):
    ini, uri = project(tmp_path)
    revisions(uri)
    fs = str(tmp_path / 'var' / 'Data.fs')
    before = os.path.getsize(fs)
    status, out, _ = run(capsys, 'pack', ini, '--json')
    assert status == 0
    row, = json.loads(out)['databases']
    assert row['size_before'] == before
    assert row['size_after'] == os.path.getsize(fs) < before / 10
    assert row['objects_before'] == row['objects_after']
    assert row['error'] is None
    with open_root(uri) as root:
        assert root['counter'].n == 59
    status, out, _ = run(capsys, 'pack', ini, '--days', '1')
    assert status == 0
    assert out.startswith('packing zodb_uri (file://')
    assert 'done in' in out


def test_pack_selects_a_database_and_warns_of_cross_references(
    tmp_path, capsys
):
    os.makedirs(tmp_path / 'var')
    ini = write_ini(tmp_path, extra=[
        f'zodb_uri.other = file://{tmp_path}/var/other.fs'
    ])
    status, out, _ = run(capsys, 'pack', ini, '--db', 'zodb_uri.other')
    assert status == 0
    assert 'garbage collection does not follow references' in out
    assert 'packing zodb_uri.other' in out
    assert 'packing zodb_uri ' not in out
    status, out, _ = run(capsys, 'pack', ini, '--db', 'other', '--json')
    assert json.loads(out)['databases'][0]['key'] == 'zodb_uri.other'
    status, _, err = run(capsys, 'pack', ini, '--db', 'nope')
    assert status == 2
    assert "no database 'nope' in the ini" in err
    assert "'other' (zodb_uri.other)" in err


def test_pack_a_file_in_use(tmp_path, capsys):
    ini, uri = project(tmp_path)
    revisions(uri, 1)
    holder = FileStorage(str(tmp_path / 'var' / 'Data.fs'))  # locks it
    try:
        status, out, _ = run(capsys, 'pack', ini)
    finally:
        holder.close()
    assert status == 1
    assert 'expected a file no other process has open' in out
    assert 'use zeo:// to share it' in out


# -- the zeo.conf's storages --------------------------------------------------


def test_storage_selection_errors(tmp_path, capsys):
    os.makedirs(tmp_path / 'var')
    ini = write_ini(tmp_path)
    status, _, err = run(capsys, 'backup', ini, '--to', tmp_path / 'b')
    assert status == 2 and 'no zeo.conf' in err
    bad = tmp_path / 'bad.conf'
    bad.write_text('<zeo>\n  address\n')
    status, _, err = run(capsys, 'verify', ini, '--zeo-conf', bad)
    assert status == 2 and str(bad) in err
    mapping = write_zeo_conf(
        tmp_path, '<mappingstorage 1>\n</mappingstorage>\n'
    )
    status, _, err = run(capsys, 'verify', ini, '--zeo-conf', mapping)
    assert status == 2 and 'serves no FileStorage' in err
    two = write_zeo_conf(
        tmp_path,
        f'<filestorage a>\n  path {tmp_path}/var/a.fs\n</filestorage>\n'
        f'<filestorage b>\n  path {tmp_path}/var/b.fs\n</filestorage>\n',
    )
    status, _, err = run(
        capsys, 'backup', ini, '--zeo-conf', two, '--to', tmp_path / 'b'
    )
    assert status == 2 and 'several FileStorages (a, b)' in err
    status, _, err = run(
        capsys, 'verify', ini, '--zeo-conf', two, '--storage', 'c'
    )
    assert status == 2 and "no FileStorage named 'c' (it has: a, b)" in err
    status, _, err = run(
        capsys, 'backup', ini, '--zeo-conf', two, '--storage', 'b',
        '--to', tmp_path / 'b',
    )
    assert status == 2 and f'no such file: {tmp_path}/var/b.fs' in err
    status, _, err = run(
        capsys, 'verify', ini, '--zeo-conf', two, '--storage', 'a'
    )
    assert status == 2 and f'no such file: {tmp_path}/var/a.fs' in err


# -- backup and restore: what needs no repozo ---------------------------------


def add_child(uri, name, blob: bytes | None = None):
    with open_root(uri) as root:
        if blob is None:
            root.add(name, Item(title=name))
        else:
            root.add(name, Blob(blob))


def children(path, blob_dir=None, read_only=False) -> dict:
    """{name: title or blob bytes} of the app root in a FileStorage."""
    db, conn, root = open_file(path, blob_dir, read_only)
    try:
        found = {}
        for name, obj in root['app_root'].items():
            if isinstance(obj, Blob):
                with obj.open() as f:
                    found[name] = f.read()
            else:
                found[name] = obj.title
        return found
    finally:
        conn.close()
        db.close()


def test_repozo_failure_without_a_message(monkeypatch):
    import subprocess

    monkeypatch.setattr(
        subprocess, 'run',
        lambda *a, **k: subprocess.CompletedProcess(a, 3, '', ''),
    )
    with pytest.raises(CommandError, match=r'status 3\): no message'):
        backup.repozo('-B')


def test_snapshot_blobs_links_copies_and_gives_up(tmp_path, monkeypatch):
    from ZODB.blob import FilesystemHelper

    src = tmp_path / 'blobs'
    helper = FilesystemHelper(str(src))
    helper.create()
    paths = {}
    for oid, tid in ((1, 5), (2, 6), (3, 9)):
        helper.createPathForOID(p64(oid))
        paths[oid] = helper.getBlobFilename(p64(oid), p64(tid))
        with open(paths[oid], 'wb') as f:
            f.write(b'%d' % oid)
    os.makedirs(src / 'tmp', exist_ok=True)
    (src / 'tmp' / 'upload.tmp').write_bytes(b'uncommitted')
    (src / 'notes.txt').write_text('not a blob: left out')
    repo = str(tmp_path / 'repo')
    os.makedirs(os.path.join(repo, 'blobs', 'S1.part'))  # interrupted
    assert backup.snapshot_blobs(str(src), repo, 'S1', p64(6), None) == (
        2, 0
    )  # the blob of tid 9 is not in that backup
    assert backup.snapshot_blobs(str(src), repo, 'S2', None, None) == (0, 0)
    previous = os.path.join(repo, 'blobs', 'S1')
    monkeypatch.setattr(
        os, 'link', lambda *a: (_ for _ in ()).throw(OSError('no links'))
    )
    assert backup.snapshot_blobs(
        str(src), repo, 'S3', p64(9), previous
    ) == (3, 0)
    for left_out in ('tmp', 'notes.txt'):
        assert not os.path.exists(os.path.join(repo, 'blobs', 'S3', left_out))
    assert os.path.isfile(os.path.join(repo, 'blobs', 'S3', '.layout'))
    real_copy = shutil.copy2

    def vanishing(source, target):
        if source.endswith('.blob'):
            raise FileNotFoundError(source)
        return real_copy(source, target)

    monkeypatch.setattr(shutil, 'copy2', vanishing)
    with pytest.raises(CommandError, match='2 blob files were removed'):
        backup.snapshot_blobs(str(src), repo, 'S4', p64(6), None)
    assert sorted(os.listdir(os.path.join(repo, 'blobs'))) == [
        'S1', 'S2', 'S3'
    ]


def test_last_tid(tmp_path):
    full = tmp_path / '2024-01-01-00-00-00.fs'
    full.write_bytes(b'FS21')
    assert backup.last_tid(str(full)) is None
    delta = tmp_path / '2024-01-01-00-00-01.deltafs'
    delta.write_bytes(b'')
    assert backup.last_tid(str(delta)) is None
    delta.write_bytes(b'short')
    with pytest.raises(CommandError, match='cannot find its last'):
        backup.last_tid(str(delta))
    delta.write_bytes(b'garbage!' * 4)
    with pytest.raises(CommandError, match='cannot find its last'):
        backup.last_tid(str(delta))
    delta.write_bytes(b'\0' * 16 + p64(1))  # a length, and no header
    with pytest.raises(CommandError):
        backup.last_tid(str(delta))


def test_next_second_waits_past_the_newest_backup():
    newest = backup.now_stamp()
    backup._next_second([newest], limit=30)
    assert backup.now_stamp() > newest
    backup._next_second(['9999-01-01-00-00-00'], limit=0.1)  # bounded


@pytest.mark.parametrize(
    'text, stamp',
    [
        ('2024-05-01', '2024-05-01-00-00-00'),
        ('2024-05-01-10', '2024-05-01-10-00-00'),
        ('2024-05-01-10-20-30', '2024-05-01-10-20-30'),
        ('2024-05-01T10:20:30Z', '2024-05-01-10-20-30'),
        (' 2024-05-01 10:20 ', '2024-05-01-10-20-00'),
    ],
)
def test_utc_stamp(text, stamp):
    assert backup.utc_stamp(text) == stamp


def test_utc_stamp_refuses():
    for text in ('2024-5-1', '2024-13-01', 'yesterday'):
        with pytest.raises(argparse.ArgumentTypeError):
            backup.utc_stamp(text)


# -- verify -------------------------------------------------------------------


def content(uri):
    """app_root/docs/{a, b, holder} and a weak reference in the root."""
    with open_root(uri) as root:
        root.add('docs', Folder())
        docs = root['docs']
        for name in ('a', 'b', 'holder'):
            docs.add(name, Item(title=name))
        root.weak = WeakRef(docs['a'])


def oid_of(uri, *names):
    with open_root(uri) as obj:
        for name in names:
            obj = obj[name]
        return obj._p_oid


def test_verify_a_sound_database(tmp_path, capsys):
    ini, uri = project(tmp_path)
    content(uri)
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 0
    assert f'verifying storage 1: {tmp_path}/var/Data.fs' in out
    assert 'records in' in out and ': OK' in out
    status, out, _ = run(
        capsys, 'verify', ini, '--file', tmp_path / 'var' / 'Data.fs'
    )
    assert status == 0 and 'verifying file:' in out


def test_verify_names_each_kind_of_damage(tmp_path, capsys, gone_module):
    ini, uri = project(tmp_path)
    content(uri)
    with open_root(uri) as root:
        root['docs'].add('thing', gone_module.Thing())
        root['docs']['b'].plain = gone_module.Plain()
        root['docs'].add('nested', Folder())
        root['docs']['nested'].add('deep', Item())
    a, b, holder, thing = (
        oid_of(uri, 'docs', name) for name in ('a', 'b', 'holder', 'thing')
    )
    deep = oid_of(uri, 'docs', 'nested', 'deep')
    missing, stray, odd = p64(0xDEAD), p64(0xBEEF), p64(0xBEE0)
    ref = object()
    store(tmp_path / 'var' / 'Data.fs', {
        # a garbled state
        a: record(Item, None)[:-3] + b'\xff\xff\xff',
        # an attribute that references an object that is not there
        holder: record(
            Item, {'title': 'holder', 'other': ref}, {id(ref): (missing, Item)}
        ),
        # old-style references: an oid as a str, and a malformed one
        deep: record(Item, {'x': ref, 'y': 1}, {id(ref): 'abcdefgh'}),
        odd: record(Item, {'x': ref}, {id(ref): b'short'}),
        # unreadable, and reachable from nowhere
        stray: b'garbage',
    })
    sys.modules.pop(gone_module.__name__)
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 1
    lines = {
        line.split()[0]: line.strip()
        for line in out.splitlines() if line.startswith('  0x')
    }
    item = 'pyramid_zeostore.app.content.Item'
    assert lines[oid_repr(a)].startswith(
        f'{oid_repr(a)} {item} at /app_root/docs/a: its state cannot be '
        'unpickled: '
    )
    assert lines[oid_repr(missing)] == (
        f'{oid_repr(missing)} at /app_root/docs/holder.other: it is '
        f'missing, but {oid_repr(holder)} references it'
    )
    assert lines[oid_repr(thing)] == (
        f'{oid_repr(thing)} pzeo_gone_module.Thing at /app_root/docs/thing: '
        'its class pzeo_gone_module.Thing cannot be imported (it loads as '
        'a Broken object)'
    )
    assert lines[oid_repr(b)] == (
        f'{oid_repr(b)} {item} at /app_root/docs/b: its state uses classes '
        'that cannot be imported: pzeo_gone_module.Plain'
    )
    # A valid old-style reference to an object that is not there (ZODB
    # cannot load the referrer then: the path ends at it).
    assert lines[oid_repr(b'abcdefgh')] == (
        f'{oid_repr(b"abcdefgh")} at /app_root/docs/nested/deep: it is '
        f'missing, but {oid_repr(deep)} references it'
    )
    assert lines[oid_repr(odd)] == (
        f'{oid_repr(odd)} {item} (not reachable from the root): it holds '
        "a malformed reference b'short'"
    )
    assert lines[oid_repr(stray)].startswith(
        f'{oid_repr(stray)} (not reachable from the root): its class '
        'cannot be read: '
    )
    assert len(lines) == 7
    assert out.rstrip().endswith(': 7 problem(s)')


def test_verify_accepts_old_style_records(tmp_path, capsys):
    # Classes as (module, name) in the class metadata and in references,
    # as ZODB 3 wrote them: ZODB still loads those.
    ini, uri = project(tmp_path)
    content(uri)
    a, b = oid_of(uri, 'docs', 'a'), oid_of(uri, 'docs', 'b')
    item = ('pyramid_zeostore.app.content', 'Item')
    ref = object()
    store(tmp_path / 'var' / 'Data.fs', {
        b: record((item, None), {'title': 'b', 'peer': ref},
                  {id(ref): (a, item)}),
    })
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 0, out
    with open_root(uri) as root:
        assert root['docs']['b'].peer is root['docs']['a']


def test_verify_root_missing_and_empty_storages(tmp_path, capsys):
    os.makedirs(tmp_path / 'var')
    ini = write_ini(tmp_path, zeo_conf=plain_conf(tmp_path))
    FileStorage(str(tmp_path / 'var' / 'Data.fs')).close()  # empty
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 0 and '0 records in' in out
    store(tmp_path / 'var' / 'Data.fs', {p64(1): record(Item, {})})
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 1
    assert '0x00 ' not in out
    assert f'{oid_repr(z64)}: the root object is missing' in out


def test_verify_a_damaged_file(tmp_path, capsys):
    ini, uri = project(tmp_path)
    content(uri)
    fs = tmp_path / 'var' / 'Data.fs'
    data = bytearray(fs.read_bytes())
    length = int.from_bytes(data[12:20], 'big')  # of the 1st transaction
    data[4 + length:4 + length + 8] = b'\0' * 8  # its redundant copy
    fs.write_bytes(bytes(data))
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 1
    assert f'error: {fs} cannot be read:' in out
    assert 'redundant transaction length check failed' in out


def test_verify_reports_what_filestorage_logs(tmp_path, capsys, monkeypatch):
    ini, uri = project(tmp_path)
    content(uri)
    real = verify.open_scanning

    def logging_too(path):
        storage, logged = real(path)
        for level, text in ((logging.ERROR, 'bad pointer at 42'),
                            (logging.WARNING, 'time-stamp reduction')):
            logged.append(logging.LogRecord(
                'ZODB.FileStorage', level, __file__, 1, text, (), None
            ))
        return storage, logged

    monkeypatch.setattr(verify, 'open_scanning', logging_too)
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 1
    assert 'error: bad pointer at 42' in out
    assert 'note: time-stamp reduction' in out


def test_verify_blob_files(tmp_path, capsys):
    ini, uri = project(tmp_path, blobs=True)
    add_child(uri, 'picture', b'PNG' * 10)
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 0 and ', 1 blob files in' in out
    fs = tmp_path / 'var' / 'Data.fs'
    status, out, _ = run(capsys, 'verify', ini, '--file', fs)
    assert status == 0
    assert '1 blob files not checked (no blob folder here)' in out
    status, out, _ = run(
        capsys, 'verify', ini, '--file', fs, '--blob-dir', tmp_path / 'x'
    )
    assert status == 1 and f'error: no blob folder {tmp_path}/x' in out
    for here, _, files in os.walk(tmp_path / 'var' / 'blobs'):
        for name in files:
            if name.endswith('.blob'):
                os.remove(os.path.join(here, name))
    status, out, _ = run(capsys, 'verify', ini)
    assert status == 1
    assert 'ZODB.blob.Blob at /app_root/picture: its blob file is ' \
        f'missing: {tmp_path}/var/blobs/' in out


def test_verify_argument_errors(tmp_path, capsys):
    ini, _ = project(tmp_path)
    status, _, err = run(capsys, 'verify', ini, '--blob-dir', tmp_path)
    assert status == 2 and '--blob-dir goes with --file' in err
    status, _, err = run(capsys, 'verify', ini, '--db', 'x')
    assert status == 2 and '--db goes with --via-zeo' in err
    status, _, err = run(capsys, 'verify', ini, '--file', tmp_path / 'no')
    assert status == 2 and 'no such file' in err
    ini = write_ini(tmp_path, 'memory://')
    status, _, err = run(capsys, 'verify', ini, '--via-zeo')
    assert status == 2
    assert 'zodb_uri: its storage (MappingStorage) cannot list' in err


class StubStorage:
    """record_iternext over a dict, failing as told."""

    def __init__(self, records, failures):
        self.records = dict(sorted(records.items()))
        self.failures = failures

    def record_iternext(self, after=None):
        oids = [o for o in self.records if after is None or o >= after]
        if not oids:
            raise ValueError('empty tree')
        oid = oids[0]
        if oid in self.failures:
            raise self.failures[oid]
        rest = oids[1:]
        return oid, p64(1), self.records[oid], rest[0] if rest else None


def test_check_storage_goes_on_past_unloadable_records():
    good = record(PersistentMapping, {'data': {}})
    storage = StubStorage(
        {z64: good, p64(1): good, p64(2): good, p64(3): good},
        {p64(1): POSKeyError(p64(1)), p64(3): POSKeyError(p64(3))},
    )
    report = verify.check_storage(storage)
    assert report.records == 2
    assert sorted(report.problems) == [p64(1), p64(3)]
    assert 'its record cannot be loaded: POSKeyError' in \
        report.problems[p64(1)].messages[0]
    storage = StubStorage({z64: good, p64(1): good}, {p64(1): OSError()})
    report = verify.check_storage(storage)
    assert report.errors == ["cannot read past b'\\x00\\x00\\x00\\x00"
                             "\\x00\\x00\\x00\\x01': OSError()"]




# -- what the progress of backup, copy and pack measures ---------------------


def test_backed_up_reads_the_newest_dat_file(tmp_path):
    assert backup.backed_up(str(tmp_path)) == 0  # no backup yet
    (tmp_path / '2024-01-01-00-00-00.dat').write_text(
        '/r/2024-01-01-00-00-00.fs 0 1000 abc\n'
    )
    (tmp_path / '2024-01-02-00-00-00.dat').write_text(
        '/r/2024-01-02-00-00-00.fs 0 1200 abc\n'
        '/r/2024-01-02-10-00-00.deltafs 1200 1750 def\n\n'
    )
    assert backup.backed_up(str(tmp_path)) == 1750
    (tmp_path / '2024-01-03-00-00-00.dat').write_text('not repozo\n')
    assert backup.backed_up(str(tmp_path)) == 0


def test_backup_written_is_the_temporary_file_then_the_new_one(tmp_path):
    repo = str(tmp_path)
    (tmp_path / '2024-01-01-00-00-00.fs').write_bytes(b'x' * 10)
    before = backup.data_files(repo)
    assert backup._backup_written(repo, before) is None  # not begun
    (tmp_path / 'tmp.tmp').write_bytes(b'y' * 7)
    assert backup._backup_written(repo, before) == 7
    os.rename(tmp_path / 'tmp.tmp', tmp_path / '2024-01-02-00-00-00.fs')
    assert backup._backup_written(repo, before) == 7


def test_copy_size_of_a_storage_that_cannot_tell():
    from pyramid_zeostore.commands import copy

    class Silent:
        def getSize(self):
            raise NotImplementedError

    class Empty:
        def getSize(self):
            return 0

    assert copy._size(Silent()) is None and copy._size(Empty()) is None


def test_pack_finds_the_served_file_only_when_it_is_this_servers(tmp_path):
    from pyramid_zeostore.commands.pack import data_file
    from pyramid_zeostore.settings import parse_settings

    sock = tmp_path / 'zeo.sock'
    conf = tmp_path / 'zeo.conf'
    conf.write_text(
        f'<zeo>\n  address {sock}\n</zeo>\n'
        f'<filestorage main>\n  path {tmp_path}/Data.fs\n</filestorage>\n'
    )

    def spec(uri):
        return parse_settings({'zodb_uri': uri}).databases[0]

    assert data_file(spec(f'file://{tmp_path}/F%20S.fs'), None) == (
        f'{tmp_path}/F S.fs'
    )
    assert data_file(spec('memory://'), str(conf)) is None
    served = spec(f'zeo://{sock}?storage=main')
    assert data_file(served, str(conf)) == f'{tmp_path}/Data.fs'
    assert data_file(served, None) is None  # no zeo.conf in the ini
    assert data_file(served, str(tmp_path / 'nope.conf')) is None
    # Another server, or another storage of this one: not known here.
    assert data_file(spec(f'zeo://{tmp_path}/other.sock?storage=main'),
                     str(conf)) is None
    assert data_file(spec(f'zeo://{sock}'), str(conf)) is None



# -- pzeo start: a zeo.conf it cannot use is one line ------------------------
# (before any socket is probed; the rest in tests/functional/test_autostart)


def zeo_conf_text(tmp_path, name, address, storage, extra='') -> str:
    path = tmp_path / name
    path.write_text(
        f'<zeo>\n  address {address}\n{extra}</zeo>\n'
        f'<filestorage>\n  path {storage}\n</filestorage>\n'
    )
    return str(path)


def test_start_refuses_a_zeo_conf_of_another_server(tmp_path, capsys):
    from pyramid_zeostore import zeoserver

    sock = f'{tmp_path}/var/zeo.sock'
    conf = zeo_conf_text(
        tmp_path, 'zeo.conf', f'{tmp_path}/other.sock', f'{tmp_path}/D.fs'
    )
    ini = write_ini(tmp_path, f'zeo://{sock}', conf)
    for argv in (['start', ini], ['start', ini, '--zeo-conf', conf]):
        status, out, err = run(capsys, *argv)
        assert (status, out) == (2, '')
        assert err.count('\n') == 1, err
        key = '--zeo-conf' if len(argv) > 2 else 'zeostore.zeo_conf'
        assert err.startswith(f'pzeo start: configuration error: {key}: ')
        assert f'starts a server at {tmp_path}/other.sock' in err
        assert f'zodb_uri connects to {sock}' in err
        assert 'zodb_uri must name the server the zeo.conf starts' in err
    assert not zeoserver._started
    assert not os.path.exists(tmp_path / 'zeo.log')  # nothing started


def test_start_and_stop_zeo_conf_unknown_key_is_one_line(tmp_path, capsys):
    sock = f'{tmp_path}/var/zeo.sock'
    bogus = zeo_conf_text(
        tmp_path, 'bogus.conf', sock, f'{tmp_path}/D.fs', '  bogus-key 1\n'
    )
    ini = write_ini(tmp_path, f'zeo://{sock}', bogus)
    for argv in (['start', ini], ['stop', ini],
                 ['start', ini, '--zeo-conf', bogus]):
        status, out, err = run(capsys, *argv)
        assert (status, out, err.count('\n')) == (2, '', 1), err
        key = '--zeo-conf' if len(argv) > 2 else 'zeostore.zeo_conf'
        assert err.startswith(
            f'pzeo {argv[0]}: configuration error: {key}: expected a '
            "zeo.conf that runzeo reads ('bogus-key' is not a known key "
            'name (line 3)), got '
        )
