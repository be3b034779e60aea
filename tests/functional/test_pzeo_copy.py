"""``pzeo copy`` as a user runs it: the console script, between real
storages: FileStorage, a real runzeo, RelStorage on SQLite (PostgreSQL:
tests/functional/test_backends.py). Counts and contents are checked
against the source, transaction by transaction, blobs included. A copy
to a ZEO address where no server answers runs in-process (``cli.main``)
and fails within its ``--timeout``, naming the address; the in-process
runs that need no socket are in tests/unit/test_commands_copy.py."""

from __future__ import annotations

import os
import re
import subprocess

from tests.functional.conftest import BIN, child_env
from tests.functional.postgres import require_relstorage
from tests.unit.test_commands_copy import (
    build,
    copied,
    copy,
    counts,
    dump,
    file_uri,
)


def pzeo_copy(*args, timeout=300, env=None):
    return subprocess.run(
        [os.path.join(BIN, 'pzeo'), 'copy', *args],
        capture_output=True, text=True, env=env or child_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def fs(directory, name='Data.fs') -> str:
    path = os.path.join(str(directory), name)
    return f'file://{path}?blobstorage_dir={path}.blobs'


def test_file_to_file(tmp_path):
    src, dst = fs(tmp_path, 'src.fs'), fs(tmp_path, 'dst.fs')
    build(src, transactions=6, blobs=2)
    # A line per transaction in a pipe (interval 0), one at the end.
    env = dict(child_env(), PZEO_PROGRESS_INTERVAL='0')
    result = pzeo_copy(src, dst, env=env)
    assert result.returncode == 0, result.stderr
    expected = dump(src)
    assert copied(result.stdout) == counts(src)
    assert copied(result.stdout)[0] == 10
    assert copied(result.stdout)[2] == 2
    assert dump(dst) == expected
    progress = [
        line for line in result.stderr.splitlines()
        if line.startswith('copy: ')
    ]
    assert len(progress) == 10 + 1
    assert re.match(r'copy: ([\d,]+)/\1 bytes \(100%\)', progress[-1])
    # Again: refused, the destination is not empty.
    again = pzeo_copy(src, dst)
    assert again.returncode == 1 and again.stdout == ''
    assert 'is not empty' in again.stderr
    assert '--incremental' in again.stderr


def test_file_to_zeo_and_back(tmp_path, zeo_server):
    src = fs(tmp_path, 'src.fs')
    build(src, transactions=4, blobs=2)
    to_zeo = zeo_server.uri(blob_dir=tmp_path / 'zeo-cache')
    result = pzeo_copy(src, to_zeo)
    assert result.returncode == 0, result.stderr
    expected = dump(src)
    assert copied(result.stdout) == counts(src)
    assert dump(zeo_server.uri(blob_dir=tmp_path / 'check-cache')) == (
        expected
    )
    # More in the source, then an incremental copy into ZEO: only the
    # new transactions, the blob stored again over ZEO.
    build(src, transactions=2, blobs=1, start=4)
    result = pzeo_copy(src, to_zeo, '--incremental')
    assert result.returncode == 0, result.stderr
    assert copied(result.stdout)[0] == 3
    assert copied(result.stdout)[2] == 1
    expected = dump(src)
    assert dump(zeo_server.uri(blob_dir=tmp_path / 'check-2')) == expected
    # ZEO as the source: everything comes back, blobs too.
    back = fs(tmp_path, 'back.fs')
    from_zeo = zeo_server.uri(blob_dir=tmp_path / 'c3')
    result = pzeo_copy(from_zeo, back)
    assert result.returncode == 0, result.stderr
    # A ZEO server writes each blob record twice (ZEO's storeBlob is a
    # store plus a blob store): copied as they are.
    assert copied(result.stdout) == counts(from_zeo)
    assert counts(from_zeo)[1] == counts(src)[1] + counts(src)[2]
    assert dump(back) == expected


def test_zeo_without_a_blob_cache_cannot_take_blobs(tmp_path, zeo_server):
    src = fs(tmp_path, 'src.fs')
    build(src, transactions=1, blobs=1)
    result = pzeo_copy(src, zeo_server.uri())
    assert result.returncode == 1
    assert 'cannot store blobs' in result.stderr
    assert 'blob_dir=... (zeo://' in result.stderr


def test_file_to_sqlite_relstorage(tmp_path):
    require_relstorage()
    src = fs(tmp_path, 'src.fs')
    build(src, transactions=3, blobs=2)
    dst = (
        f'sqlite://?data_dir={tmp_path}/sqlite'
        f'&blob_dir={tmp_path}/sqlite-blobs'
    )
    result = pzeo_copy(src, dst)
    assert result.returncode == 0, result.stderr
    assert copied(result.stdout) == counts(src)
    assert dump(dst) == dump(src)


def test_an_absent_zeo_server(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=1, blobs=0)
    sock = tmp_path / 'zeo.sock'
    status, _, err = copy(
        capsys, src, f'zeo://{sock}', '--timeout', '0.3'
    )
    assert status == 1
    assert f'the destination: no ZEO server answered at zeo://{sock}' in err
    assert 'within 0.3s' in err
