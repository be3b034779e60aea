"""``pzeo pack INI``: pack each database, through its ZEO server.

For a ``zeo://`` URI the client asks the server to pack (ZEO's
``ClientStorage.pack``, waiting until it is done): the server does the
work on its own files, nothing is copied here. A ``file://`` URI packs
the FileStorage itself, which must not be in use by another process.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from zc.lockfile import LockError

from ..databases import Databases
from . import add_ini, human, load_settings, quiet_logger, select

ORDER = 40


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'pack',
        help='remove old revisions and unreachable objects (pack)',
        description='Pack every database of the ini, or the one named by '
        '--db: through its ZEO server for a zeo:// URI, the FileStorage '
        'itself for file://. Revisions older than --days days that are '
        'no longer current, and objects no longer reachable from the '
        'root, are removed; undo cannot go back past that time. Prints '
        'the size before and after. Note: the garbage collection of a '
        'pack does not follow references from other databases of a '
        'multi-database. Exit status 1 if a database is down or its '
        'pack fails.',
    )
    add_ini(parser)
    parser.add_argument(
        '--days', type=_days, default=0.0, metavar='N',
        help='keep the history of the last N days (default 0: keep only '
        'the current revisions)',
    )
    parser.add_argument(
        '--db', metavar='NAME', default=None,
        help='only this database: its name or its key (zodb_uri.NAME); '
        '"" or zodb_uri for the primary',
    )
    parser.add_argument(
        '--timeout', type=float, default=None, metavar='SECONDS',
        help='wait for each server at most this long (default: '
        'zeostore.connect_timeout)',
    )
    parser.add_argument('--json', action='store_true', help='print JSON')
    parser.set_defaults(func=run)


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not (math.isfinite(days) and days >= 0):
        raise argparse.ArgumentTypeError(
            f'expected a number of days >= 0, got {text!r}'
        )
    return days


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    specs = select(settings.databases, args.db)
    timeout = (
        settings.connect_timeout if args.timeout is None else args.timeout
    )
    say = (lambda *a, **k: None) if args.json else print
    if len(settings.databases) > 1:
        say('note: garbage collection does not follow references from '
            'the other databases of the ini: an object reachable only '
            'from another database is removed')
    rows = [_pack_one(spec, timeout, args.days, say) for spec in specs]
    if args.json:
        print(json.dumps({'databases': rows}, indent=2))
    return 1 if any(row['error'] for row in rows) else 0


def _pack_one(spec, timeout: float, days: float, say) -> dict:
    row = {
        'name': spec.name, 'key': spec.key, 'address': spec.display_address,
        'size_before': None, 'size_after': None,
        'objects_before': None, 'objects_after': None,
        'seconds': None, 'error': None,
    }
    say(
        f'packing {spec.key} ({spec.display_address}) ...',
        end=' ', flush=True,
    )
    databases = Databases([spec], timeout)
    try:
        with quiet_logger():
            db = databases.get(spec.name)
        databases.sync(spec.name)
        row['size_before'] = db.getSize()
        row['objects_before'] = db.objectCount()
        started = time.monotonic()
        db.pack(days=days)
        row['seconds'] = round(time.monotonic() - started, 3)
        # The server sends its new size before it answers the pack; a
        # round trip makes sure that message was handled.
        databases.sync(spec.name)
        row['size_after'] = db.getSize()
        row['objects_after'] = db.objectCount()
    except Exception as e:  # down, locked, "already packing", ...
        row['error'] = _reason(e)
        say(f'FAILED: {row["error"]}')
        return row
    finally:
        databases.close()
    say(
        f'done in {row["seconds"]:.1f}s: '
        f'{human(row["size_before"])} -> {human(row["size_after"])}, '
        f'{row["objects_before"]} -> {row["objects_after"]} objects'
    )
    return row


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, LockError):
        text += (' (in use by another process: pack a served file through '
                 'its ZEO server, with a zeo:// URI)')
    return text
