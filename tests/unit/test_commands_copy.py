"""``pzeo copy``, run in-process on FileStorage and MappingStorage.

Every transaction, record and blob copied (checked against the source,
transaction by transaction), the progress line, ``--incremental``
resuming, the sources and destinations it refuses (empty, missing, not
empty, another database's copy, no blob directory), bad URIs and
options, TLS files it cannot use, a destination that cannot be opened,
a failure while copying and passwords hidden in the summary; no
process, no socket. A ZEO address where no server answers, and the
real ZEO, RelStorage and PostgreSQL runs, are in
tests/functional/test_pzeo_copy.py and test_backends.py."""

from __future__ import annotations

import io
import os
import re

import pytest
import transaction

from pyramid_zeostore import Folder, cli
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.settings import resolve

COPIED = re.compile(
    r'^copied (\d+) transactions \((\d+) object records, (\d+) blobs\)',
    re.M,
)


def file_uri(directory, name='Data.fs', blobs=True) -> str:
    path = os.path.join(str(directory), name)
    if not blobs:
        return f'file://{path}'
    return f'file://{path}?blobstorage_dir={path}.blobs'


def build(uri: str, transactions: int = 5, blobs: int = 2,
          items: int = 3, start: int = 0) -> None:
    """Commit ``transactions`` transactions of ``items`` new Items each
    (the first also makes the app root), then ``blobs`` revisions of one
    blob, into the database at ``uri``."""
    import ZODB
    from ZODB.blob import Blob

    factory, _ = resolve('uri', uri)
    db = ZODB.DB(factory())
    try:
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        root = conn.root()
        with tm:
            app = root.setdefault('app_root', Folder())
        for t in range(start, start + transactions):
            with tm as txn:
                txn.note(f'batch {t}')
                txn.setUser('builder')
                for i in range(items):
                    app.add(f'item-{t}-{i}', Item(n=i))
        for b in range(blobs):
            with tm:
                if 'blob' not in root:
                    root['blob'] = Blob()
                with root['blob'].open('w') as f:
                    f.write(f'blob revision {b}'.encode())
        conn.close()
    finally:
        db.close()


def dump(uri: str) -> list:
    """Every transaction of ``uri``: its metadata and records, blobs read
    back (the copy must reproduce this exactly)."""
    from ZODB.blob import is_blob_record

    factory, _ = resolve('uri', uri)
    storage = factory()
    try:
        found = []
        for txn in storage.iterator():
            records = []
            for r in txn:
                blob = None
                if is_blob_record(r.data):
                    with open(storage.loadBlob(r.oid, r.tid), 'rb') as f:
                        blob = f.read()
                records.append((r.oid, r.tid, r.data, blob))
            # Records in oid order, each once: storages differ there (a
            # ZEO server writes a blob's record twice in its transaction).
            found.append(
                (txn.tid, txn.status, txn.user, txn.description,
                 txn.extension, sorted(set(records)))
            )
        return found
    finally:
        storage.close()


def counts(uri: str) -> tuple[int, int, int]:
    """Transactions, records and blob records of ``uri``, as its
    storage's iterator gives them: what ``pzeo copy`` reports."""
    from ZODB.blob import is_blob_record

    factory, _ = resolve('uri', uri)
    storage = factory()
    try:
        found = [0, 0, 0]
        for txn in storage.iterator():
            found[0] += 1
            for r in txn:
                found[1] += 1
                found[2] += is_blob_record(r.data)
        return tuple(found)
    finally:
        storage.close()


def copy(capsys, *args) -> tuple[int, str, str]:
    status = cli.main(['copy', *args])
    out, err = capsys.readouterr()
    return status, out, err


def copied(out: str) -> tuple[int, int, int]:
    match = COPIED.search(out)
    assert match, out
    return tuple(int(n) for n in match.groups())


def test_copies_every_transaction_record_and_blob(
    tmp_path, capsys, monkeypatch
):
    src = file_uri(tmp_path / 'src')
    dst = file_uri(tmp_path / 'dst')
    os.makedirs(tmp_path / 'src')
    os.makedirs(tmp_path / 'dst')
    build(src)
    monkeypatch.setenv('PZEO_PROGRESS_INTERVAL', '0')  # a line a step
    status, out, err = copy(capsys, src, dst)
    assert status == 0, err
    expected = dump(src)
    # The root, the app root, 5 batches, 2 blob revisions.
    assert copied(out) == counts(src)
    assert copied(out)[0] == 9 and copied(out)[2] == 2
    assert dump(dst) == expected  # tids, metadata, records, blobs
    # A line per transaction on a stderr that is not a terminal (the
    # interval is 0), and one at the end.
    # The bytes copied, out of the source's size.
    lines = [x for x in err.splitlines() if x.startswith('copy: ')]
    assert len(lines) == 9 + 1
    first = re.match(r'copy: ([\d,]+)/([\d,]+) bytes \(\d+%\), ', lines[0])
    assert first and first.group(1) < first.group(2), lines[0]
    assert 'bytes/s' in lines[0]
    last = re.match(r'copy: ([\d,]+)/\1 bytes \(100%\), ', lines[-1])
    assert last and ', done in ' in lines[-1], lines[-1]
    # The estimate was close: FileStorage's size, less its 4-byte magic.
    size = os.path.getsize(str(tmp_path / 'src' / 'Data.fs'))
    assert int(last.group(1).replace(',', '')) in range(
        size - 4 - 8 * 9, size
    )


def test_progress_on_a_terminal_is_one_line(tmp_path, capsys, monkeypatch):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=3, blobs=0)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stderr = Terminal()
    monkeypatch.setattr('sys.stderr', stderr)
    status, out, _ = copy(capsys, src, file_uri(tmp_path, 'dst.fs'))
    assert status == 0
    text = stderr.getvalue()
    # tqdm's bar: redrawn in place, left on its line at the end.
    assert '\r' in text and text.endswith('\n')
    assert text.count('\n') == 1
    last = text.rstrip('\n').rsplit('\r', 1)[-1]
    assert last.startswith('copy: 100%|') and 'B/s]' in last
    assert copied(out)[0] == 5


def test_no_progress_when_quiet(tmp_path, capsys, monkeypatch):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=2, blobs=0)
    monkeypatch.setenv('PZEO_PROGRESS_INTERVAL', '0')
    status, out, err = copy(
        capsys, src, file_uri(tmp_path, 'dst.fs'), '--quiet'
    )
    assert status == 0 and err == ''
    assert copied(out) == counts(src)
    assert copied(out)[0] == 4


def test_a_database_that_is_not_empty_is_refused(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    dst = file_uri(tmp_path, 'dst.fs')
    build(src, transactions=2, blobs=0)
    build(dst, transactions=1, blobs=0)
    before = dump(dst)
    status, out, err = copy(capsys, src, dst)
    assert status == 1 and out == ''
    assert 'pzeo copy: the destination file://' in err
    assert 'is not empty' in err and '--incremental' in err
    assert dump(dst) == before


def test_incremental_resumes_after_the_last_copied(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    dst = file_uri(tmp_path, 'dst.fs')
    build(src, transactions=2, blobs=1)
    assert copy(capsys, src, dst)[0] == 0
    first = counts(src)
    build(src, transactions=3, blobs=1, start=2)
    status, out, err = copy(capsys, src, dst, '--incremental')
    assert status == 0, err
    assert 'resuming after 0x' in err
    # 3 batches and one blob revision more.
    assert copied(out) == tuple(
        n - m for n, m in zip(counts(src), first, strict=True)
    )
    assert copied(out)[0] == 4 and copied(out)[2] == 1
    assert dump(dst) == dump(src)
    # Up to date: nothing more to copy, and that is fine.
    status, out, _ = copy(capsys, src, dst, '--incremental')
    assert status == 0 and copied(out) == (0, 0, 0)


def test_incremental_into_an_empty_database_copies_all(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=1, blobs=0)
    status, out, _ = copy(
        capsys, src, file_uri(tmp_path, 'dst.fs'), '--incremental'
    )
    assert status == 0 and copied(out) == counts(src)


def test_incremental_refuses_a_copy_of_another_database(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    dst = file_uri(tmp_path, 'dst.fs')
    build(src, transactions=1, blobs=0)
    build(dst, transactions=1, blobs=0)
    status, _, err = copy(capsys, src, dst, '--incremental')
    assert status == 1
    assert 'is not in the source' in err


def test_an_empty_source_is_refused(tmp_path, capsys):
    status, _, err = copy(capsys, 'memory://', file_uri(tmp_path))
    assert status == 1
    assert 'holds no transaction' in err
    assert 'new, empty database in every process' in err


def test_an_empty_file_source_is_refused(tmp_path, capsys):
    from ZODB.FileStorage import FileStorage

    FileStorage(str(tmp_path / 'empty.fs')).close()
    status, _, err = copy(
        capsys, file_uri(tmp_path, 'empty.fs', blobs=False),
        file_uri(tmp_path, 'dst.fs'),
    )
    assert status == 1
    assert 'holds no transaction: nothing to copy' in err
    assert 'memory://' not in err


def test_a_missing_source_file_is_a_usage_error(tmp_path, capsys):
    status, _, err = copy(
        capsys, file_uri(tmp_path, 'typo.fs'), file_uri(tmp_path, 'd.fs')
    )
    assert status == 2
    assert f'the source {tmp_path}/typo.fs does not exist' in err
    assert not os.path.exists(tmp_path / 'typo.fs')  # not created


def test_a_destination_without_restore_is_refused(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=1, blobs=0)
    status, _, err = copy(capsys, src, 'memory://')
    assert status == 2
    assert 'MappingStorage has no restore()' in err


def test_blobs_need_a_blob_directory_then_resume(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=2, blobs=2)
    no_blobs = file_uri(tmp_path, 'dst.fs', blobs=False)
    status, out, err = copy(capsys, src, no_blobs)
    assert status == 1 and out == ''
    assert 'is a blob, and the destination' in err
    assert 'cannot store blobs: add blobstorage_dir=' in err
    # All but the 2 transactions of blobs were copied, and are there.
    done = dump(src)[:-2]
    tx, records = len(done), sum(len(t[5]) for t in done)
    assert f'({tx} transactions ({records} object records, 0 blobs) were ' \
        'copied)' in err
    assert dump(no_blobs) == done
    # The failed transaction was aborted; the rest resumes with blobs.
    with_blobs = file_uri(tmp_path, 'dst.fs')
    status, out, _ = copy(capsys, src, with_blobs, '--incremental')
    assert status == 0 and copied(out) == (2, 3, 2)
    assert dump(with_blobs) == dump(src)


def test_a_source_that_cannot_read_its_blobs(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=1, blobs=1)
    status, _, err = copy(
        capsys, file_uri(tmp_path, 'src.fs', blobs=False),
        file_uri(tmp_path, 'dst.fs'),
    )
    assert status == 1
    assert 'is a blob the source cannot read' in err
    assert 'blobstorage_dir=' in err


@pytest.mark.parametrize(
    'src, dst, words',
    [
        ('nope://x', 'memory://', 'SRC_URI: expected a URI scheme'),
        ('memory://', 'nope://x', 'DST_URI: expected a URI scheme'),
        (
            'memory://',
            'postgresql://u:pw@127.0.0.1/db',
            "DST_URI: expected postgres://user:password@host:port/dbname: "
            "RelStorage's scheme for PostgreSQL is postgres://",
        ),
    ],
)
def test_bad_uris_are_configuration_errors(capsys, src, dst, words):
    status, _, err = copy(capsys, src, dst)
    assert status == 2
    assert 'pzeo copy: configuration error: ' in err
    assert words in err
    assert ':pw@' not in err


@pytest.mark.parametrize(
    'option, words',
    [
        (['--timeout', '0'], '--timeout: expected a number of seconds > 0'),
    ],
)
def test_bad_options(capsys, option, words):
    status, _, err = copy(capsys, 'memory://', 'memory://', *option)
    assert status == 2 and words in err


def test_unusable_tls_files(tmp_path, capsys):
    status, _, err = copy(
        capsys, f'zeo://127.0.0.1:1?ssl_cafile={tmp_path}/none.pem',
        'memory://',
    )
    assert status == 2
    assert 'pzeo copy: the source: ' in err and 'none.pem' in err


def test_a_destination_that_cannot_be_opened(tmp_path, capsys):
    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=1, blobs=0)
    status, _, err = copy(
        capsys, src, f'file://{tmp_path}/no/such/dir/Data.fs'
    )
    assert status == 2
    assert (f'the destination file://{tmp_path}/no/such/dir/Data.fs: no '
            f'such folder {tmp_path}/no/such/dir (make it first)') in err
    from ZODB.FileStorage import FileStorage

    holder = FileStorage(str(tmp_path / 'held.fs'))  # locked: in use
    try:
        status, _, err = copy(capsys, src, file_uri(tmp_path, 'held.fs'))
    finally:
        holder.close()
    assert status == 1
    assert 'cannot open the destination file://' in err
    assert 'LockError' in err


def test_a_failure_while_copying_is_reported(tmp_path, capsys):
    from ZODB.FileStorage import FileStorage

    src = file_uri(tmp_path, 'src.fs')
    build(src, transactions=1, blobs=0)
    FileStorage(str(tmp_path / 'ro.fs')).close()
    status, out, err = copy(
        capsys, src, f'file://{tmp_path}/ro.fs?read_only=1'
    )
    assert status == 1 and out == ''
    assert 'copy failed after 0 transactions (0 object records, 0 blobs)' \
        in err
    assert 'ReadOnlyError' in err and '--incremental resumes' in err


def test_the_summary_hides_passwords():
    from pyramid_zeostore.commands import copy as command

    assert command.display('postgres://u:pw@h:5432/db?x=1') == (
        'postgres://u:***@h:5432/db?x=1'
    )
    assert command.display('file:///a/b.fs') == 'file:///a/b.fs'
