"""``pzeo pack INI``: pack each database, through its ZEO server.

For a ``zeo://`` URI the client asks the server to pack (ZEO's
``ClientStorage.pack``, waiting until it is done): the server does the
work on its own files, nothing is copied here. A ``file://`` URI packs
the FileStorage itself, which must not be in use by another process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from urllib.parse import unquote, urlsplit

import ZConfig

from ..databases import Databases
from ..zeoserver import read_zeo_conf
from . import (
    add_ini,
    add_quiet,
    human,
    load_settings,
    progress,
    select,
)

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
    add_quiet(parser)
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
    rows = [
        _pack_one(spec, timeout, args.days, say, args, settings.zeo_conf)
        for spec in specs
    ]
    if args.json:
        print(json.dumps({'databases': rows}, indent=2))
    return 1 if any(row['error'] for row in rows) else 0


def data_file(spec, zeo_conf: str | None) -> str | None:
    """The Data.fs that a pack of ``spec`` rewrites, if it is on this
    host: a ``file://`` URI's, or the FileStorage that the ini's
    zeo.conf serves at the URI's address under its storage name."""
    if spec.zeo is None:
        parts = urlsplit(spec.uri)
        return unquote(parts.path) if parts.scheme == 'file' else None
    if not zeo_conf:
        return None
    try:
        conf = read_zeo_conf(zeo_conf)
    except (OSError, ValueError, ZConfig.ConfigurationError):
        return None
    if spec.zeo.address != conf.address:
        return None
    name = str(spec.zeo.kw.get('storage', '1'))
    for storage in conf.storages:
        if storage.name == name:
            return storage.path
    return None


def _written(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return None


def _pack_one(
    spec, timeout: float, days: float, say,
    args: argparse.Namespace | None = None, zeo_conf: str | None = None,
) -> dict:
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
        db = databases.get(spec.name)
        databases.sync(spec.name)
        row['size_before'] = db.getSize()
        row['objects_before'] = db.objectCount()
        started = time.monotonic()
        # FileStorage packs into Data.fs.pack, then renames it: its size
        # out of the file's, when the file is here; else the time only.
        path = data_file(spec, zeo_conf)
        shown = progress(
            args, f'pack {spec.key}',
            row['size_before'] if path else None, 'bytes',
        ) if args is not None and not args.json else None
        with contextlib.ExitStack() as stack:
            if shown is not None:
                if shown.mode == 'bar':
                    say()  # the bar on a line of its own (shown later)
                stack.enter_context(shown)
                stack.enter_context(shown.poll(
                    (lambda: _written(path + '.pack')) if path
                    else (lambda: 0), every=0.5,
                ))
            db.pack(days=days)
            if shown is not None and path:
                # Renamed over the Data.fs: what the pack wrote in all.
                shown.set_total(_written(path))
                shown.moveto(_written(path) or 0)
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
    # A file in use is a ConfigurationError of Databases that says so.
    return str(e) or type(e).__name__
