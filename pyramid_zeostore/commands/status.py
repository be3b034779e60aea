"""``pzeo status INI``: is each database up, and what is in it."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ..databases import Databases
from ..display import address_json
from ..probe import check
from . import add_ini, human, load_settings

ORDER = 10


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'status',
        help='reachability, size and activity of each configured database',
        description='For each database of the ini: reachable or not, '
        'server address, ping, storage size, object count, last '
        'transaction, ZEO client connections. Exit status 1 if a '
        'database is down.',
    )
    add_ini(parser)
    parser.add_argument(
        '--timeout', type=float, default=None, metavar='SECONDS',
        help='wait for each server at most this long in all (default: '
        'zeostore.connect_timeout)',
    )
    parser.add_argument('--json', action='store_true', help='print JSON')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    timeout = (
        settings.connect_timeout if args.timeout is None else args.timeout
    )
    # A server that connects but does not answer is down too.
    databases = Databases(settings.databases, timeout, max(timeout, 0.05))
    # The reason a server is down is printed below (pzeo keeps the
    # databases' log of it quiet: cli.main).
    try:
        found = check(databases, timeout)
        rows = []
        for health in found:
            row = dict(asdict(health), address=address_json(health.address))
            if health.connected:
                db = databases.get(health.name)
                row['size_bytes'] = db.getSize()
                row['objects'] = db.objectCount()
            rows.append(row)
    finally:
        databases.close()
    down = [row['name'] for row in rows if not row['connected']]
    if args.json:
        print(json.dumps({'down': down, 'databases': rows}, indent=2))
    else:
        for row in rows:
            print(_describe(row))
    return 1 if down else 0


def _describe(row: dict) -> str:
    label = row['key']
    if not row['connected']:
        return f'{label}: DOWN ({row["error"]})'
    parts = [f'{label}: up at {row["address"]}']
    if row['ping_ms'] is not None:
        parts.append(f'ping {row["ping_ms"]:.2f} ms')
    parts.append(f'{row["objects"]} objects')
    parts.append(f'{human(row["size_bytes"])}')
    parts.append(f'last transaction {row["last_transaction"] or "none"}')
    if row['connections'] is not None:
        parts.append(f'{row["connections"]} client connections')
    return ', '.join(parts)
