"""``pzeo copy SRC_URI DST_URI``: copy a database, transaction by
transaction, from any storage a URI names to any other.

It moves an app from an embedded file to a ZEO server or to RelStorage
(and back) with its history, transaction ids and blobs, as RelStorage's
``zodbconvert`` does for SQL destinations only; how, and the exit
statuses, are told in :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ZEO.ClientStorage import ClientStorage
from ZEO.Exceptions import ClientDisconnected
from ZODB.blob import is_blob_record
from ZODB.interfaces import IBlobStorageRestoreable
from ZODB.POSException import POSKeyError
from ZODB.TimeStamp import TimeStamp
from ZODB.utils import oid_repr, p64, u64, z64

from ..display import mask_password as display
from ..progress import Progress
from ..resolvers import TLSFileError
from ..settings import DatabaseSpec, resolve
from . import CommandError, add_quiet, progress

ORDER = 50
#: a FileStorage's transaction and data record headers, in bytes
TXN_HEADER = 23
DATA_HEADER = 42


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'copy',
        help='copy every transaction of one database into another (any '
        'two URIs: file://, zeo://, postgres://, sqlite://, ...)',
        description='Copy all transactions, with their ids and blobs, '
        'from SRC_URI into DST_URI, which must be empty unless '
        '--incremental is given. Both are database URIs as in zodb_uri. '
        'Stop every app using a file:// database first (it is locked). '
        'Prints the number of transactions, object records and blobs '
        'copied; exit status 1 if refused or failed.',
    )
    parser.add_argument('source', metavar='SRC_URI',
                        help='the database to copy from')
    parser.add_argument('destination', metavar='DST_URI',
                        help='the (empty) database to copy into')
    parser.add_argument(
        '--incremental', action='store_true',
        help='the destination holds the start of a copy of this source '
        '(an interrupted copy, or an earlier one): copy only the '
        'transactions after its last one',
    )
    add_quiet(parser)
    parser.add_argument(
        '--timeout', type=float, default=10.0, metavar='SECONDS',
        help='wait this long for each ZEO server (default 10)',
    )
    parser.set_defaults(func=run)


@dataclass
class Counts:
    transactions: int = 0
    records: int = 0
    blobs: int = 0

    def __str__(self) -> str:
        return (
            f'{self.transactions} transactions ({self.records} object '
            f'records, {self.blobs} blobs)'
        )


def _spec(label: str, uri: str):
    factory, dbkw = resolve(label, uri)
    return DatabaseSpec('', label, uri.strip(), factory, dbkw)


def _check_source_file(uri: str) -> None:
    """file:// creates a missing file: a typo would copy nothing."""
    if not uri.startswith('file://'):
        return
    path = os.path.normpath(uri[len('file://'):].split('?', 1)[0])
    if not os.path.isfile(path):
        raise CommandError(f'the source {path} does not exist', 2)


def open_storage(role: str, spec, timeout: float) -> Any:
    """The storage of ``spec``; a ZEO client waits ``timeout`` seconds."""
    try:
        if spec.is_zeo:
            return spec.factory(wait_timeout=timeout)
        return spec.factory()
    except ClientDisconnected:
        reason = spec.factory.diagnose()
        raise CommandError(
            f'the {role}: no ZEO server answered at {display(spec.uri)} '
            f'within {timeout:g}s' + (f': {reason}' if reason else ''),
        ) from None
    except TLSFileError as e:
        raise CommandError(f'the {role}: {e}', 2) from None
    except (FileNotFoundError, NotADirectoryError) as e:
        folder = os.path.dirname(e.filename or '') or e.filename
        raise CommandError(
            f'the {role} {display(spec.uri)}: no such folder {folder} '
            '(make it first)', 2,
        ) from None
    except Exception as e:
        raise CommandError(
            f'cannot open the {role} {display(spec.uri)}: '
            f'{type(e).__name__}: {e}',
        ) from None


def _first_tid(storage: Any, start: bytes | None = None,
               stop: bytes | None = None) -> bytes | None:
    """The id of the first transaction of ``storage.iterator(start,
    stop)``, None if there is none."""
    it = storage.iterator(start, stop)
    try:
        for txn in it:
            return txn.tid
        return None
    finally:
        close = getattr(it, 'close', None)
        if close is not None:
            close()


def tid_repr(tid: bytes) -> str:
    return f'0x{tid.hex()} ({TimeStamp(tid)} UTC)'


def _start(source: Any, destination: Any, args: argparse.Namespace,
           src: str, dst: str) -> bytes | None:
    """Where to start in the source; refuses what must not be copied."""
    last = destination.lastTransaction() or z64
    if last == z64:
        if _first_tid(source) is None:
            hint = (
                ' (memory:// is a new, empty database in every process)'
                if src.startswith('memory:') else ''
            )
            raise CommandError(
                f'the source {src} holds no transaction: nothing to copy'
                f'{hint}'
            )
        return None
    if not args.incremental:
        raise CommandError(
            f'the destination {dst} is not empty (its last transaction '
            f'is {tid_repr(last)}): copy into an empty database, or pass '
            '--incremental to resume a copy of this same source'
        )
    if _first_tid(source, last, last) != last:
        raise CommandError(
            f'--incremental: the destination\'s last transaction '
            f'{tid_repr(last)} is not in the source {src}, so the '
            'destination does not hold a copy of it (or the source was '
            'packed since): copy into an empty database instead'
        )
    print(
        f'pzeo copy: resuming after {tid_repr(last)}, the destination\'s '
        'last transaction', file=sys.stderr,
    )
    return p64(u64(last) + 1)


def _size(storage: Any) -> int | None:
    try:
        return int(storage.getSize()) or None
    except Exception:  # a storage that cannot tell
        return None


class Copier:
    """Replays the source's transactions on the destination."""

    def __init__(self, source: Any, destination: Any, dst: str) -> None:
        self.source = source
        self.destination = destination
        self.dst = dst
        self.counts = Counts()
        if IBlobStorageRestoreable.providedBy(destination):
            self.store_blob = self._restore_blob
        elif isinstance(destination, ClientStorage) and (
            getattr(destination, 'fshelper', None) is not None
        ):
            self.store_blob = self._store_blob_over_zeo
        else:
            self.store_blob = None

    def copy(self, start: bytes | None, progress: Progress) -> Counts:
        """Copy the source's transactions from ``start``; ``progress``
        counts the bytes copied as a FileStorage lays them out (records
        and headers), out of the source's size (less the destination's
        when resuming)."""
        total = _size(self.source)
        if total and start is not None:
            total = max(total - (_size(self.destination) or 0), 0) or None
        progress.set_total(total)
        it = self.source.iterator(start, None)
        try:
            for txn in it:
                progress.update(self._transaction(txn))
            progress.set_total(progress.done)  # the estimate, made exact
        finally:
            progress.close()
            close = getattr(it, 'close', None)
            if close is not None:
                close()
        return self.counts

    def _transaction(self, txn: Any) -> int:
        """Copy one transaction; its size in a FileStorage (about)."""
        destination = self.destination
        records = blobs = 0
        size = TXN_HEADER + len(txn.user) + len(txn.description)
        destination.tpc_begin(txn, txn.tid, txn.status)
        try:
            for record in txn:
                if is_blob_record(record.data):
                    self._blob(txn, record)
                    blobs += 1
                else:
                    destination.restore(
                        record.oid, record.tid, record.data, '',
                        record.data_txn, txn,
                    )
                records += 1
                size += DATA_HEADER + len(record.data or b'')
            destination.tpc_vote(txn)
            destination.tpc_finish(txn)
        except BaseException:
            with contextlib.suppress(Exception):
                destination.tpc_abort(txn)
            raise
        self.counts.transactions += 1
        self.counts.records += records
        self.counts.blobs += blobs
        return size

    def _blob(self, txn: Any, record: Any) -> None:
        where = f'object {oid_repr(record.oid)} of {tid_repr(txn.tid)}'
        if self.store_blob is None:
            raise CommandError(
                f'{where} is a blob, and the destination {self.dst} '
                'cannot store blobs: add blobstorage_dir=... (file://) or '
                'blob_dir=... (zeo://, RelStorage) to DST_URI and run '
                f'again with --incremental ({self.counts} were copied)'
            )
        try:
            committed = self.source.loadBlob(record.oid, record.tid)
        except Exception as e:
            raise CommandError(
                f'{where} is a blob the source cannot read ({type(e).__name__}'
                f': {e}): does SRC_URI name its blob directory '
                '(blobstorage_dir=... for file://, blob_dir=... for zeo:// '
                'and RelStorage)?'
            ) from None
        # restoreBlob/storeBlob take the file over: give them a copy.
        fd, name = tempfile.mkstemp(
            suffix='.tmp', dir=self.destination.temporaryDirectory()
        )
        os.close(fd)
        try:
            shutil.copyfile(committed, name)
            self.store_blob(txn, record, name)
        finally:
            if os.path.exists(name):
                os.remove(name)

    def _restore_blob(self, txn: Any, record: Any, name: str) -> None:
        self.destination.restoreBlob(
            record.oid, record.tid, record.data, name, record.data_txn, txn
        )

    def _store_blob_over_zeo(self, txn: Any, record: Any, name: str) -> None:
        # ZEO has no restoreBlob: store it, against the revision the
        # destination holds now, in the transaction begun with the
        # source's tid (so the tid is kept all the same).

        try:
            serial = self.destination.load(record.oid)[1]
        except POSKeyError:
            serial = z64
        self.destination.storeBlob(
            record.oid, serial, record.data, name, '', txn
        )


def run(args: argparse.Namespace) -> int:
    """Copy every transaction of the source to the destination.

    Both URIs are resolved like ``zodb_uri`` (zodburi, our ``zeo://``,
    RelStorage's ``postgres://``, ``mysql://``, ``sqlite://``, ...). The copy
    is what RelStorage's ``zodbconvert`` does in its history-preserving mode,
    done here for every destination: each source transaction is replayed with
    ``tpc_begin(txn, tid)``, ``restore()`` (``restoreBlob()`` for blobs) and
    ``tpc_vote``/``tpc_finish``, so transaction ids, users, descriptions and
    history are kept. A ZEO client has no ``restoreBlob``: a blob record goes
    to it with ``storeBlob`` inside the same transaction (same tid).

    The destination must be empty (no transaction at all); ``--incremental``
    resumes an interrupted copy of the same source: it copies the source's
    transactions after the destination's last one, which must be a
    transaction of the source.

    Exit status: 0 copied (0 transactions with ``--incremental`` when the
    destination was up to date), 1 refused or failed (destination not empty,
    source empty, a server down, a blob the destination cannot store), 2 a
    usage or configuration error (a URI that cannot be resolved, a source file
    that does not exist).
    """
    if args.timeout <= 0:
        raise CommandError('--timeout: expected a number of seconds > 0', 2)
    src_spec = _spec('SRC_URI', args.source)
    dst_spec = _spec('DST_URI', args.destination)
    src, dst = display(src_spec.uri), display(dst_spec.uri)
    _check_source_file(src_spec.uri)
    started = time.monotonic()
    source = open_storage('source', src_spec, args.timeout)
    try:
        destination = open_storage('destination', dst_spec, args.timeout)
        try:
            if not hasattr(destination, 'restore'):
                raise CommandError(
                    f'the destination {dst} cannot take copied '
                    f'transactions (a {type(destination).__name__} has no '
                    'restore()): copy into file://, zeo:// or RelStorage',
                    2,
                )
            start = _start(source, destination, args, src, dst)
            copier = Copier(source, destination, dst)
            try:
                counts = copier.copy(start, progress(args, 'copy', None,
                                                     'bytes'))
            except CommandError:
                raise
            except Exception as e:
                raise CommandError(
                    f'copy failed after {copier.counts}: '
                    f'{type(e).__name__}: {e} (what was copied stays; '
                    '--incremental resumes)'
                ) from None
        finally:
            destination.close()
    finally:
        source.close()
    elapsed = time.monotonic() - started
    print(f'copied {counts} from {src} to {dst} in {elapsed:.1f}s')
    return 0
