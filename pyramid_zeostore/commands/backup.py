"""``pzeo backup`` and ``pzeo restore``: ZODB's repozo, plus the blobs.

repozo backs the Data.fs up while ZEO serves it, full or incremental, but
leaves the blobs out; this keeps a blob folder per backup beside its files
(hard-linked where unchanged), so that a restore gets exactly the blobs of
the Data.fs it restores. The layout is told in :func:`run_backup`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import ZConfig
from ZODB.blob import BLOB_SUFFIX, LAYOUT_MARKER
from ZODB.utils import repr_to_oid, u64

from ..progress import Progress, null
from ..zeoserver import read_zeo_conf
from . import (
    CommandError,
    add_ini,
    add_quiet,
    add_zeo_conf,
    human,
    load_settings,
    progress,
    split_config_uri,
    zeo_conf_path,
)

ORDER = 45

#: The names of repozo's data files (gzipped ones are not made here).
DATA_FILE = re.compile(r'^(\d{4}(?:-\d\d){5})\.(fs|deltafs)$')
BLOBS = 'blobs'
STAMP = '%04d-%02d-%02d-%02d-%02d-%02d'


def register(subparsers) -> None:
    backup = subparsers.add_parser(
        'backup',
        help='back up the FileStorage and blobs of the zeo.conf (repozo)',
        description='Back up the Data.fs of the zeo.conf with ZODB\'s '
        'repozo into DIR (a repozo repository): incremental when an '
        'earlier full backup is there and the file was not packed since, '
        'else full. The blob folder is copied into DIR/blobs/<backup>, '
        'hard-linking the files that the previous backup already has. '
        'Safe while the ZEO server runs; do not pack during a backup. '
        'Exit status 1 if repozo fails.',
    )
    add_ini(backup)
    add_zeo_conf(backup)
    add_storage(backup)
    backup.add_argument(
        '--to', dest='repository', required=True, metavar='DIR',
        help='the backup folder (created if missing)',
    )
    backup.add_argument(
        '--full', action='store_true', help='force a full backup (repozo -F)'
    )
    backup.add_argument(
        '--quick', action='store_true',
        help='check only the last backup\'s checksum to decide between '
        'incremental and full (repozo -Q): much less reading',
    )
    backup.add_argument(
        '-v', '--verbose', action='store_true',
        help='show repozo\'s own messages',
    )
    add_quiet(backup)
    backup.set_defaults(func=run_backup)

    restore = subparsers.add_parser(
        'restore',
        help='restore a backup to a new FileStorage file (and blobs)',
        description='Rebuild a Data.fs from the backups in DIR with '
        'repozo (checking their checksums), as of the last backup or '
        'the last one at or before --date; its blobs go to a new blob '
        'folder. Never overwrites: the file, its index and the blob '
        'folder must not exist. Exit status 1 if repozo fails or DIR '
        'has no backup at that date.',
    )
    add_ini(restore)
    restore.add_argument(
        '--from', dest='repository', required=True, metavar='DIR',
        help='the backup folder of "pzeo backup"',
    )
    restore.add_argument(
        '--to', dest='output', required=True, metavar='NEW_FILE',
        help='the Data.fs to write; must not exist',
    )
    restore.add_argument(
        '--date', type=utc_stamp, default=None, metavar='UTC',
        help='restore the state of the last backup at or before this UTC '
        'time: YYYY-MM-DD[-hh[-mm[-ss]]] (repozo\'s form) or '
        'YYYY-MM-DDThh:mm:ss (default: the last backup)',
    )
    restore.add_argument(
        '--blob-dir', metavar='DIR', default=None,
        help='where to put the blobs; must not exist (default: "blobs" '
        'beside NEW_FILE)',
    )
    restore.add_argument(
        '-v', '--verbose', action='store_true',
        help='show repozo\'s own messages',
    )
    add_quiet(restore)
    restore.set_defaults(func=run_restore)


def add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--storage', metavar='NAME', default=None,
        help='the zeo.conf\'s storage (its section name; "1" when '
        'unnamed); needed when it serves several FileStorages',
    )


def zeo_storages(args: argparse.Namespace) -> tuple:
    """The FileStorages of the zeo.conf (``--storage``: that one)."""
    path = zeo_conf_path(args, load_settings(args))
    try:
        conf = read_zeo_conf(path)
    except (ValueError, ZConfig.ConfigurationError) as e:
        raise CommandError(f'{path}: {e}', 2) from None
    storages = conf.storages
    if not storages:
        raise CommandError(f'{path} serves no FileStorage', 2)
    if args.storage is not None:
        storages = tuple(s for s in storages if s.name == args.storage)
        if not storages:
            names = ', '.join(s.name for s in conf.storages)
            raise CommandError(
                f'{path} has no FileStorage named {args.storage!r} '
                f'(it has: {names})', 2,
            )
    return storages


def repozo(*argv: str, verbose: bool = False) -> None:
    """Run ZODB's repozo with ``argv``; raise ``CommandError`` if it
    fails (its message included)."""
    command = [sys.executable, '-m', 'ZODB.scripts.repozo', *argv]
    if verbose:
        command.append('-v')
    # What it writes holds every record (password hashes too): this
    # user's only, whatever the umask, as the server's own var/ files.
    proc = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        umask=0o077,
    )
    if verbose:
        sys.stderr.write(proc.stderr)
    if proc.returncode:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise CommandError(
            f'repozo failed (exit status {proc.returncode}): '
            + (message[-1] if message else 'no message')
        )


def data_files(repository: str) -> list[str]:
    """repozo's data files in ``repository``, oldest first."""
    return sorted(n for n in os.listdir(repository) if DATA_FILE.match(n))


def now_stamp() -> str:
    return STAMP % time.gmtime()[:6]


def utc_stamp(text: str) -> str:
    """``--date``: a UTC time as repozo's ``YYYY-MM-DD-hh-mm-ss``.

    Missing parts are 0: ``2024-05-01`` is the start of that day, so a
    backup made at exactly that second counts as "at or before" it.
    """
    match = re.fullmatch(
        r'(\d{4})-(\d\d)-(\d\d)'
        r'(?:[-T ](\d\d)(?:[-:](\d\d)(?:[-:](\d\d))?)?)?Z?',
        text.strip(),
    )
    try:
        if not match:
            raise ValueError(text)
        parts = [int(g or 0) for g in match.groups()]
        datetime.datetime(*parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a UTC time as YYYY-MM-DD[-hh[-mm[-ss]]] or '
            f'YYYY-MM-DDThh:mm:ss, got {text!r}'
        ) from None
    return STAMP % tuple(parts)


def _next_second(stamps: list[str], limit: float = 2.5) -> None:
    # repozo names its files by the second: a backup in the same second
    # as the previous one would collide with it (or sort before it).
    newest = max(stamps, default='')
    deadline = time.monotonic() + limit
    while now_stamp() <= newest and time.monotonic() < deadline:
        time.sleep(0.05)


def last_tid(path: str) -> bytes | None:
    """The id of the last transaction in a repozo data file, read from
    its end (FileStorage's redundant transaction length); None if the
    file holds no transaction."""
    with open(path, 'rb') as f:
        end = f.seek(0, os.SEEK_END)
        if end <= (4 if path.endswith('.fs') else 0):  # just the magic
            return None
        f.seek(max(end - 8, 0))
        length = u64(f.read(8).rjust(8, b'\xff'))  # too short: no start
        start = end - 8 - length
        if start >= 0:
            f.seek(start)
            header = f.read(16)
            if len(header) == 16 and u64(header[8:]) == length:
                return header[:8]
    raise CommandError(f'{path}: cannot find its last transaction', 1)


def snapshot_blobs(
    blob_dir: str, repository: str, stamp: str, tid: bytes | None,
    previous: str | None, progress: Progress | None = None,
) -> tuple[int, int]:
    """Copy the blob files of transactions up to ``tid`` into
    ``repository/blobs/stamp``; a file that ``previous`` (an earlier
    snapshot) has is hard-linked from there instead. Returns (copied,
    linked); ``progress`` counts the files."""
    with progress or null() as progress:
        return _snapshot_blobs(
            blob_dir, repository, stamp, tid, previous, progress
        )


def _snapshot_blobs(
    blob_dir: str, repository: str, stamp: str, tid: bytes | None,
    previous: str | None, progress: Progress,
) -> tuple[int, int]:
    final = os.path.join(repository, BLOBS, stamp)
    part = final + '.part'
    if os.path.isdir(part):  # left by a backup that was interrupted
        shutil.rmtree(part)
    os.makedirs(part, 0o700)
    copied = linked = vanished = 0
    for here, dirs, files in os.walk(blob_dir):
        rel = os.path.relpath(here, blob_dir)
        if rel == '.':
            dirs[:] = [d for d in dirs if d != 'tmp']  # uncommitted
        for name in files:
            if name.endswith(BLOB_SUFFIX):
                if tid is None or repr_to_oid(name[:-len(BLOB_SUFFIX)]) > tid:
                    continue  # committed after the backed-up file's end
            elif name != LAYOUT_MARKER:
                continue
            target_dir = os.path.normpath(os.path.join(part, rel))
            os.makedirs(target_dir, 0o700, exist_ok=True)
            target = os.path.join(target_dir, name)
            if name == LAYOUT_MARKER:
                shutil.copy2(os.path.join(here, name), target)
                continue
            progress.update()
            if previous:
                try:
                    os.link(os.path.join(previous, rel, name), target)
                    linked += 1
                    continue
                except OSError:  # not there, or no hard links here
                    pass
            try:
                shutil.copy2(os.path.join(here, name), target)
            except FileNotFoundError:
                vanished += 1  # removed by a pack meanwhile
                continue
            copied += 1
    if vanished:
        shutil.rmtree(part)
        raise CommandError(
            f'{vanished} blob files were removed while they were copied '
            '(a pack running?): back up again once it is done (that '
            'backup will be full)'
        )
    os.rename(part, final)
    return copied, linked


def backed_up(repository: str) -> int:
    """How much of the Data.fs the repository holds: the end of the
    last backup, from repozo's newest ``.dat`` file (0 if none)."""
    dats = sorted(n for n in os.listdir(repository) if n.endswith('.dat'))
    if not dats:
        return 0
    try:
        with open(os.path.join(repository, dats[-1])) as f:
            last = f.read().split('\n')
        return int([x for x in last if x.strip()][-1].split()[2])
    except (OSError, IndexError, ValueError):  # not repozo's format
        return 0


def written(path: str) -> int | None:
    """The size of ``path`` if it exists yet."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return None


def _backup_written(repository: str, before: list[str]) -> int | None:
    """What repozo has written of this backup: its temporary file, or
    the data file it became."""
    size = written(os.path.join(repository, 'tmp.tmp'))
    if size is not None:
        return size
    made = set(data_files(repository)) - set(before)
    return sum(
        os.path.getsize(os.path.join(repository, n)) for n in made
    ) if made else None


def _snapshots(repository: str) -> list[str]:
    folder = os.path.join(repository, BLOBS)
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if DATA_FILE.match(n + '.fs'))


def run_backup(args: argparse.Namespace) -> int:
    """Back up the zeo.conf's Data.fs with repozo, and its blobs.

    The Data.fs named by the zeo.conf is backed up by ZODB's own ``repozo``
    (``python -m ZODB.scripts.repozo``, run as a child process: its exit
    status and messages are its contract, and its module globals stay out of
    this process). repozo may read the file while ZEO serves it: it opens it
    read-only (no lock) and copies up to the end of the last committed
    transaction, which is where the file's read-only scan stops.

    The backup folder is a plain repozo repository (``repozo -R -r DIR``
    works on it as well), plus one folder per backup for the blobs, which
    repozo leaves out::

        DIR/2024-05-01-10-00-00.fs       repozo: a full backup (+ .dat, .index)
        DIR/2024-05-01-11-00-00.deltafs  repozo: an incremental (+ .index)
        DIR/blobs/2024-05-01-10-00-00/   the blob folder as of that backup
        DIR/blobs/2024-05-01-11-00-00/   the same, files unchanged since the
                                         previous one hard-linked to it

    Each blob folder holds the blob files of the transactions in its backup
    (the ``.blob`` files named by a transaction id up to the last one in the
    backup's file; blobs of transactions committed during the copy are left
    out), so a restore gets exactly the blobs of the Data.fs it restores.
    Blob files never change once written (a new revision is a new file), so
    a file of the same name in the previous folder is the same file.
    """
    storages = zeo_storages(args)
    if len(storages) > 1:
        names = ', '.join(s.name for s in storages)
        raise CommandError(
            f'the zeo.conf serves several FileStorages ({names}): name one '
            'with --storage (one backup folder each)', 2,
        )
    storage = storages[0]
    if not os.path.isfile(storage.path):
        raise CommandError(
            f'no such file: {storage.path} (storage {storage.name}; has '
            'the server run yet?)', 2,
        )
    repository = os.path.abspath(args.repository)
    os.makedirs(repository, 0o700, exist_ok=True)
    before = data_files(repository)
    _next_second([DATA_FILE.match(n).group(1) for n in before])
    print(f'backing up storage {storage.name}: {storage.path} '
          f'({human(os.path.getsize(storage.path))}) to {repository}')
    started = time.monotonic()
    size = os.path.getsize(storage.path)
    # repozo writes tmp.tmp, then renames it: the bytes written so far,
    # out of the file (full) or of what it gained since (incremental).
    done = 0 if args.full or not before else backed_up(repository)
    total = size - done if 0 < done <= size else size
    with progress(args, 'backup', total, 'bytes') as shown, shown.poll(
        lambda: _backup_written(repository, before)
    ):
        repozo(
            '-B', '-r', repository, '-f', storage.path,
            *(['-F'] if args.full else []), *(['-Q'] if args.quick else []),
            verbose=args.verbose,
        )
    made = sorted(set(data_files(repository)) - set(before))
    if made:
        name = made[-1]
        kind = 'full' if name.endswith('.fs') else 'incremental'
        print(f'{kind} backup {name}: '
              f'{human(os.path.getsize(os.path.join(repository, name)))} '
              f'in {time.monotonic() - started:.1f}s')
    else:
        name = before[-1]
        print(f'no change since the last backup ({name}): nothing to copy')
    stamp = DATA_FILE.match(name).group(1)
    if storage.blob_dir and stamp not in _snapshots(repository):
        started = time.monotonic()
        earlier = [s for s in _snapshots(repository) if s < stamp]
        previous = (
            os.path.join(repository, BLOBS, earlier[-1])
            if earlier and name.endswith('.deltafs') else None
        )
        copied, linked = snapshot_blobs(
            storage.blob_dir, repository, stamp,
            last_tid(os.path.join(repository, name)), previous,
            progress(args, 'backup blobs', unit='files'),
        )
        print(f'blobs: {copied + linked} files ({copied} copied, {linked} '
              f'hard-linked to the previous backup\'s) in {BLOBS}/{stamp} '
              f'in {time.monotonic() - started:.1f}s')
    return 0


def run_restore(args: argparse.Namespace) -> int:
    split_config_uri(args)  # the ini must exist; nothing is read from it
    repository = os.path.abspath(args.repository)
    if not os.path.isdir(repository):
        raise CommandError(f'no such backup folder: {repository}', 2)
    output = os.path.abspath(args.output)
    for path in (output, output + '.index'):
        if os.path.lexists(path):
            raise CommandError(
                f'{path} exists: restore writes a new file only', 2
            )
    when = args.date or now_stamp()
    names = data_files(repository)
    if not names:
        raise CommandError(f'{repository} holds no repozo backup', 2)
    chosen = [n for n in names if n.split('.')[0] <= when]
    if not chosen:
        raise CommandError(
            f'no backup in {repository} at or before {when} (the first '
            f'is {names[0]})'
        )
    full = max(
        (i for i, n in enumerate(chosen) if n.endswith('.fs')), default=0
    )
    stamp = chosen[-1].split('.')[0]
    blob_src = os.path.join(repository, BLOBS, stamp)
    blob_dir = None
    if os.path.isdir(blob_src):
        blob_dir = os.path.abspath(
            args.blob_dir or os.path.join(os.path.dirname(output), BLOBS)
        )
        if os.path.lexists(blob_dir):
            raise CommandError(
                f'{blob_dir} exists: restore writes a new blob folder only '
                '(name another with --blob-dir)', 2,
            )
    elif _snapshots(repository):
        raise CommandError(
            f'{repository} has no blob folder for the backup {chosen[-1]} '
            '(not made by pzeo backup?): its blobs would be missing'
        )
    os.makedirs(os.path.dirname(output), 0o700, exist_ok=True)
    print(f'restoring {repository} as of {stamp}: {chosen[full]} + '
          f'{len(chosen) - full - 1} incremental(s)')
    started = time.monotonic()
    # The restored file is the backups' files end to end; repozo writes
    # it as OUTPUT.part, then renames it.
    total = sum(
        os.path.getsize(os.path.join(repository, n)) for n in chosen[full:]
    )
    with progress(args, 'restore', total, 'bytes') as shown, shown.poll(
        lambda: written(output + '.part') or written(output)
    ):
        repozo('-R', '-w', '-r', repository, '-D', when, '-o', output,
               verbose=args.verbose)
    print(f'restored {output} ({human(os.path.getsize(output))}), checked '
          f'against the backup\'s checksums, in '
          f'{time.monotonic() - started:.1f}s')
    if blob_dir:
        started = time.monotonic()
        os.makedirs(os.path.dirname(blob_dir), 0o700, exist_ok=True)
        part = tempfile.mkdtemp(
            prefix='.restoring-', dir=os.path.dirname(blob_dir)
        )
        files = sum(len(f) for _, _, f in os.walk(blob_src))
        with progress(args, 'restore blobs', files, 'files') as shown:

            def copy(src: str, dst: str) -> None:
                shutil.copy2(src, dst)
                shown.update()

            shutil.copytree(
                blob_src, part, dirs_exist_ok=True, copy_function=copy
            )
        os.rename(part, blob_dir)
        count = sum(
            n.endswith('.blob')
            for _, _, files in os.walk(blob_dir) for n in files
        )
        print(f'blobs: {count} files to {blob_dir} in '
              f'{time.monotonic() - started:.1f}s')
    return 0
