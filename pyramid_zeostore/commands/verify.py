"""``pzeo verify INI``: read every object record, check every reference.

Damage (a record whose class or state cannot be loaded, a reference to a
missing record, a missing blob file) is found before a user's request
meets it, and reported by oid, class and path from the root, from the
served files without stopping the server; what is checked, and what not,
is told in :func:`run`.
"""

from __future__ import annotations

import argparse
import collections
import io
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import transaction
import zodbpickle.pickle
from ZODB import DB
from ZODB.blob import Blob, FilesystemHelper
from ZODB.broken import find_global
from ZODB.FileStorage import FileStorage
from ZODB.fsIndex import fsIndex
from ZODB.POSException import POSError
from ZODB.serialize import referencesf
from ZODB.utils import load_current, oid_repr, p64, u64

from ..databases import Databases
from ..progress import Progress, null
from . import (
    CommandError,
    add_ini,
    add_quiet,
    add_zeo_conf,
    load_settings,
    progress,
    quiet_logger,
    select,
)
from .backup import add_storage, zeo_storages

ORDER = 60

Z64 = b'\0' * 8


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'verify',
        help='check that every object loads and every reference resolves',
        description='Read every current object record of the zeo.conf\'s '
        'FileStorages (read-only: the server may run), or of --file, or '
        'through the ini\'s databases (--via-zeo): unpickle its class and '
        'state, check that each object it references exists and that '
        'each blob has its file. Problems are listed by oid, class and '
        'path from the root. Exit status 1 if any is found.',
    )
    add_ini(parser)
    add_zeo_conf(parser)
    add_storage(parser)
    add_quiet(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        '--file', metavar='PATH',
        help='check this Data.fs instead (e.g. a copy or a restored '
        'backup); read-only',
    )
    source.add_argument(
        '--via-zeo', action='store_true',
        help='read through the ini\'s zodb_uri (every database, or --db) '
        'rather than the files; blob files are not checked then',
    )
    parser.add_argument(
        '--blob-dir', metavar='DIR',
        help='with --file: its blob folder, whose files are checked',
    )
    parser.add_argument(
        '--db', metavar='NAME', default=None,
        help='with --via-zeo: only this database (name or key)',
    )
    parser.add_argument(
        '--timeout', type=float, default=None, metavar='SECONDS',
        help='with --via-zeo: wait for each server at most this long '
        '(default: zeostore.connect_timeout)',
    )
    parser.set_defaults(func=run)


@dataclass
class Problem:
    """What is wrong with one oid."""

    oid: bytes
    klass: str | None = None
    messages: list[str] = field(default_factory=list)
    path: str | None = None

    def describe(self) -> str:
        where = f' at {self.path}' if self.path else (
            '' if self.path is None else ' (not reachable from the root)'
        )
        klass = f' {self.klass}' if self.klass else ''
        return f'{oid_repr(self.oid)}{klass}{where}: ' + '; '.join(
            self.messages
        )


@dataclass
class Report:
    """The outcome of checking one storage."""

    records: int = 0
    blobs: int = 0
    unchecked_blobs: int = 0
    problems: dict[bytes, Problem] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # not of one oid
    notes: list[str] = field(default_factory=list)

    def problem(self, oid: bytes, message: str, klass=None) -> Problem:
        found = self.problems.get(oid)
        if found is None:
            found = self.problems[oid] = Problem(oid, klass)
        found.klass = found.klass or klass
        found.messages.append(message)
        return found

    @property
    def ok(self) -> bool:
        return not (self.problems or self.errors)


class _Unpickler(zodbpickle.pickle.Unpickler):
    """Unpickles a record as ZODB would, noting what it cannot import
    (ZODB loads those as ``Broken``) and the references it finds."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.refs: list = []
        self.missing: set[str] = set()

    def find_class(self, module: str, name: str):
        try:
            return super().find_class(module, name)
        except Exception:
            self.missing.add(f'{module}.{name}')
            return find_global(module, name)

    def persistent_load(self, ref):
        self.refs.append(ref)
        # The class in a reference is the referenced object's own: its
        # record reports it if it cannot be imported.
        if isinstance(ref, tuple) and len(ref) == 2:
            self.missing.discard(_name(ref[1]))
        return ref


def _name(klass: Any) -> str:
    if isinstance(klass, tuple):  # an old (module, name) reference
        return '.'.join(map(str, klass))
    return f'{getattr(klass, "__module__", "?")}.' \
        f'{getattr(klass, "__name__", repr(klass))}'


def check_record(
    report: Report, oid: bytes, tid: bytes, data: bytes, fshelper
) -> list[bytes]:
    """Check one record; return the oids it references (same
    database, not weak)."""
    reader = _Unpickler(data)
    try:
        meta = reader.load()
        klass = meta[0] if isinstance(meta, tuple) else meta
        if isinstance(klass, tuple):  # (module, name)
            klass = reader.find_class(*klass)
        name = _name(klass)
    except Exception as e:
        report.problem(oid, f'its class cannot be read: {e!r}')
        return []
    if reader.missing:
        report.problem(
            oid, f'its class {name} cannot be imported (it loads as a '
            'Broken object)', name,
        )
    reader.missing.clear()
    try:
        reader.load()
    except Exception as e:
        report.problem(oid, f'its state cannot be unpickled: {e!r}', name)
        return []
    if reader.missing:
        report.problem(
            oid, 'its state uses classes that cannot be imported: '
            + ', '.join(sorted(reader.missing)), name,
        )
    if isinstance(klass, type) and issubclass(klass, Blob):
        if fshelper is None:
            report.unchecked_blobs += 1
        else:
            report.blobs += 1
            path = fshelper.getBlobFilename(oid, tid)
            if not os.path.isfile(path):
                report.problem(oid, f'its blob file is missing: {path}', name)
    refs = []
    for ref in reader.refs:
        if isinstance(ref, tuple):
            ref = ref[0]
        elif isinstance(ref, list):
            continue  # weak, or to another database
        if isinstance(ref, str):
            ref = ref.encode('latin-1')
        if not (isinstance(ref, bytes) and len(ref) == 8):
            report.problem(oid, f'it holds a malformed reference {ref!r}',
                           name)
            continue
        refs.append(ref)
    return refs


def _length(storage) -> int | None:
    """The storage's object count, if it tells (FileStorage from its
    index; a ZEO client as the server said when it connected)."""
    try:
        return len(storage) or None
    except Exception:  # no __len__, or a server gone
        return None


def _oid_of(e: Exception) -> bytes | None:
    # POSKeyError(oid), CorruptedDataError(oid, ...), ...
    arg = e.args[0] if e.args else None
    return arg if isinstance(arg, bytes) and len(arg) == 8 else None


#: records between two updates of the progress
PROGRESS_STEP = 256


def check_storage(
    storage, fshelper=None, progress: Progress | None = None
) -> Report:
    """Check every current record of ``storage``; the paths of the
    problems are found afterwards by :func:`name_problems`. ``progress``
    counts the records read (out of ``len(storage)``, its objects)."""
    progress = progress or null()
    progress.set_total(_length(storage))
    report = Report()
    seen = fsIndex()  # the oids read: a set, 16 bytes or so each
    pending: dict[bytes, bytes] = {}  # referenced, not yet read: referrer
    after = None  # record_iternext's "next"
    resumed = True  # the next ValueError is "no more records"
    while True:
        try:
            oid, tid, data, after = storage.record_iternext(after)
        except Exception as e:
            if resumed and isinstance(e, ValueError):
                break  # minKey() of an empty range: no more records
            oid = _oid_of(e)
            if oid is None:
                report.errors.append(f'cannot read past {after!r}: {e!r}')
                break
            seen[oid] = 0
            pending.pop(oid, None)
            report.problem(oid, f'its record cannot be loaded: {e!r}')
            after, resumed = p64(u64(oid) + 1), True
            continue
        resumed = False
        report.records += 1
        if not report.records % PROGRESS_STEP:
            progress.moveto(report.records)
        seen[oid] = 0
        pending.pop(oid, None)
        for ref in check_record(report, oid, tid, data, fshelper):
            if ref not in seen:
                pending.setdefault(ref, oid)
        if after is None:
            break

    progress.moveto(report.records)
    progress.close()
    for oid, referrer in sorted(pending.items()):
        report.problem(
            oid, f'it is missing, but {oid_repr(referrer)} references it'
        )
    if report.records and Z64 not in seen and Z64 not in report.problems:
        report.problem(Z64, 'the root object is missing')
    return report


def find_parents(storage, targets) -> dict[bytes, bytes | None]:
    """A breadth-first walk of the references from the root: for each
    object reached, the object it was first reached from."""
    parents: dict[bytes, bytes | None] = {Z64: None}
    queue = collections.deque([Z64])
    left = set(targets) - {Z64}
    while queue and left:
        oid = queue.popleft()
        try:
            refs = referencesf(load_current(storage, oid)[0])
        except Exception:  # a broken record: its children stay unknown
            continue
        for ref in refs:
            if ref not in parents:
                parents[ref] = oid
                left.discard(ref)
                queue.append(ref)
    return parents


def name_problems(report: Report, db) -> None:
    """Set the path from the root of each problem that has one."""
    parents = find_parents(db.storage, report.problems)
    conn = db.open(transaction_manager=transaction.TransactionManager())
    children: dict[bytes, dict] = {}
    # Loading the damaged objects makes ZODB log errors: already told.
    try:
        with quiet_logger('ZODB', logging.CRITICAL + 1):
            for oid, problem in report.problems.items():
                if oid not in parents:
                    problem.path = ''  # not reachable
                    continue
                chain = [oid]
                while parents[chain[-1]] is not None:
                    chain.append(parents[chain[-1]])
                problem.path = _path(conn, chain[::-1], children)
    finally:
        conn.close()


def _path(conn, chain: list[bytes], children: dict) -> str:
    labels = []
    i = 0
    while i < len(chain) - 1:
        here = chain[i]
        if here not in children:
            children[here] = _children(conn, here)
        index = children[here]
        found = [j for j in range(i + 1, len(chain)) if chain[j] in index]
        if found:  # the furthest: a child below internal nodes (BTrees)
            labels.append(index[chain[found[-1]]])
            i = found[-1]
        else:  # a BTree node, a list, ...: no name
            i += 1
    return ''.join(labels) or '/'


def _children(conn, oid: bytes) -> dict:
    """{oid: label} of the persistent objects that ``oid`` holds: by
    key (``/key``) if it is a container, else by attribute
    (``.name``); {} if it cannot be read."""
    found: dict = {}
    try:
        obj = conn.get(oid)
        items = getattr(obj, 'items', None)
        if callable(items):
            pairs = [('/' + str(k), v) for k, v in items()]
        else:
            pairs = [('.' + k, v) for k, v in vars(obj).items()]
    except Exception:  # broken, or neither (a BTree bucket has no dict)
        return found
    for label, value in pairs:
        child = getattr(value, '_p_oid', None)
        if child is not None:
            found.setdefault(child, label)
    return found


def open_scanning(path: str) -> tuple[Any, list[logging.LogRecord]]:
    """``path`` opened read-only, its index rebuilt by a full scan
    (which checks every transaction and data record header), and what
    FileStorage logged meanwhile (warnings and worse)."""
    class Scanning(FileStorage):
        def _restore_index(self):
            return None  # no Data.fs.index: scan the whole file

    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = logged.append
    logger = logging.getLogger('ZODB.FileStorage')
    logger.addHandler(handler)
    try:
        return Scanning(path, read_only=True), logged
    finally:
        logger.removeHandler(handler)


def _verify_file(
    path: str, blob_dir: str | None, label: str, args: argparse.Namespace
) -> Report:
    print(f'verifying {label}: {path} ...', flush=True)
    if not os.path.isfile(path):
        raise CommandError(f'no such file: {path}', 2)
    try:
        storage, logged = open_scanning(path)
    except (POSError, OSError) as e:  # a damaged header, unreadable
        return Report(errors=[
            f'{path} cannot be read: {e} (python -m ZODB.scripts.fstest '
            'shows where; fsrecover cuts damage out of a copy)'
        ])
    try:
        fshelper = None
        if blob_dir and os.path.isdir(blob_dir):
            fshelper = FilesystemHelper(blob_dir)
        report = check_storage(
            storage, fshelper, progress(args, f'verify {label}')
        )
        for record in logged:
            text = record.getMessage()
            if record.levelno >= logging.ERROR:
                report.errors.append(text)
            else:
                report.notes.append(text)
        if blob_dir and fshelper is None and report.unchecked_blobs:
            report.errors.append(f'no blob folder {blob_dir}')
        if report.problems and Z64 not in report.problems:
            db = DB(storage)
            try:
                name_problems(report, db)
            finally:
                db.close()
    finally:
        storage.close()  # the DB's too: closing twice does no harm
    return report


def _verify_spec(
    spec, timeout: float, args: argparse.Namespace
) -> Report:
    print(f'verifying {spec.key} ({spec.display_address}) ...', flush=True)
    databases = Databases([spec], timeout)
    try:
        try:
            db = databases.get(spec.name)
        except Exception as e:  # down, refused, locked, ...
            return Report(errors=[f'cannot open it: {e}'])
        if not hasattr(db.storage, 'record_iternext'):
            raise CommandError(
                f'{spec.key}: its storage ({type(db.storage).__name__}) '
                'cannot list its records', 2,
            )
        report = check_storage(
            db.storage, None, progress(args, f'verify {spec.key}')
        )
        if report.problems and Z64 not in report.problems:
            name_problems(report, db)
        return report
    finally:
        databases.close()


def _print(report: Report, seconds: float) -> None:
    for problem in report.problems.values():
        print(f'  {problem.describe()}')
    for text in report.errors:
        print(f'  error: {text}')
    for text in report.notes:
        print(f'  note: {text}')
    blobs = f', {report.blobs} blob files' if report.blobs else ''
    count = len(report.problems) + len(report.errors)
    outcome = 'OK' if report.ok else f'{count} problem(s)'
    print(f'  {report.records} records{blobs} in {seconds:.1f}s: {outcome}')
    if report.unchecked_blobs:
        print(f'  {report.unchecked_blobs} blob files not checked (no blob '
              'folder here)')


def run(args: argparse.Namespace) -> int:
    """Check every current record of each database; exit 1 on damage.

    For each current object record (``record_iternext``, the storage API
    that zodbverify uses) the check unpickles its class and its state,
    imports the classes they name, and collects its references; afterwards
    every reference must name a record of the storage. A blob's file must
    be in the blob folder. Each problem is reported by oid, class and,
    where the object can be reached from the root, by a path of names: the
    keys of the containers (anything with ``items()``: folders, mappings,
    BTrees) on the way.

    By default the FileStorage files of the zeo.conf are read directly,
    read-only (FileStorage takes no lock then, like repozo: the server may
    keep running; what is committed after the file was opened is not seen).
    The file is scanned from its start, not from its index, so every
    transaction and data record header is checked on the way. ``--file``
    checks another file (a copy, a restored backup); ``--via-zeo`` reads
    through the ini's ``zodb_uri`` instead (one round trip per record).

    Not checked: references to other databases of a multi-database and
    weak references (both may dangle legitimately), old revisions.
    """
    if args.blob_dir and not args.file:
        raise CommandError('--blob-dir goes with --file', 2)
    if args.db is not None and not args.via_zeo:
        raise CommandError('--db goes with --via-zeo', 2)
    if args.via_zeo:
        settings = load_settings(args)
        timeout = (
            settings.connect_timeout if args.timeout is None
            else args.timeout
        )
        jobs = [
            (lambda spec=spec: _verify_spec(spec, timeout, args))
            for spec in select(settings.databases, args.db)
        ]
    elif args.file:
        jobs = [lambda: _verify_file(
            os.path.abspath(args.file), args.blob_dir, 'file', args
        )]
    else:
        jobs = [
            (lambda s=s: _verify_file(
                s.path, s.blob_dir, f'storage {s.name}', args
            ))
            for s in zeo_storages(args)
        ]
    ok = True
    for job in jobs:
        started = time.monotonic()
        report = job()
        _print(report, time.monotonic() - started)
        ok = ok and report.ok
    return 0 if ok else 1
