"""Data for ``benchmarks/bench.py``: the seeded root, checks, the ceiling.

Both database apps of the benchmark (and the raw commit ceiling) start
from the same data, written straight through ZEO with pyramid_zeostore's
own classes: ``zodb_root['app_root']`` is a :class:`Folder` holding
``ITEMS`` items ``item-0`` .. ``item-999`` (two attributes each) and a
``counter`` item (``counter = 0``). The bare app builds the same folder
in memory (:func:`build_root`).

Run as a script it is the **raw commit ceiling**: one process of the
ceiling loop (``bench.py`` starts 1 or 2 of them, pinned like the
gunicorn workers)::

    python benchmarks/seed.py ceiling SOCK --kind add --seconds 10 [--sync]

It opens one ZEO client and connection, loads the folder, prints
``ready``, waits for a line on stdin (so that several processes start
together), then commits the same change as the app's write views in a
loop for ``--seconds``: ``add`` a new ``Item`` named ``new-<uuid4>`` to the
root folder, or ``counter`` += 1 on the counter item. A
``ConflictError`` aborts and the loop goes on (counted). It prints one
JSON line: ``{"commits": N, "conflicts": N, "seconds": S}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

APP_ROOT = 'app_root'
ITEMS = 1000
COUNTER = 'counter'
#: Names of added children start with this (after every ``item-N``, so
#: the first page of the folder stays the same as adds pile up).
ADD_PREFIX = 'new-'


def build_root(items: int = ITEMS) -> Any:
    """The seeded app root: a Folder of ``items`` items and a counter."""
    from pyramid_zeostore.app.content import Item
    from pyramid_zeostore.folder import Folder

    root = Folder()
    for i in range(items):
        root.add(
            f'item-{i}', Item(title=f'Item {i}', number=i),
            send_events=False,
        )
    root.add(COUNTER, Item(counter=0), send_events=False)
    return root


def open_db(sock: str, sync: bool = True, cache_size: int = 20000) -> Any:
    """A ``ZODB.DB`` over a ZEO client of ``sock`` (closed by the caller)."""
    import ZEO
    import ZODB

    storage = ZEO.client(sock, server_sync=sync, wait_timeout=30)
    try:
        return ZODB.DB(storage, cache_size=cache_size)
    except Exception:
        storage.close()
        raise


def seed(sock: str, items: int = ITEMS) -> None:
    """Write the seeded root, and the user the writes authenticate as,
    into the (new) database behind ``sock``."""
    import transaction
    from common import BENCH_PASSWORD, BENCH_USER

    from pyramid_zeostore.app.users import users_for_change

    db = open_db(sock)
    try:
        tm = transaction.TransactionManager(explicit=True)
        conn = db.open(transaction_manager=tm)
        try:
            tm.begin()
            conn.root()[APP_ROOT] = build_root(items)
            users_for_change(conn.root()).add(
                BENCH_USER, BENCH_PASSWORD, 'editor'
            )
            tm.commit()
        finally:
            conn.close()
    finally:
        db.close()


class State:
    """What the database behind ``sock`` holds now: for the checks."""

    def __init__(self, sock: str) -> None:
        self.sock = sock

    def snapshot(self, names: list[str] | None = None) -> dict:
        """``{'length', 'counter', 'missing'}``: the root folder's length,
        the counter's value, and which of ``names`` it does not hold.

        A client of its own, opened and closed here (server_sync: it
        sees every commit made before), so no extra ZEO client receives
        invalidations while the load runs.
        """
        import transaction

        db = open_db(self.sock, sync=True, cache_size=400)
        try:
            tm = transaction.TransactionManager(explicit=True)
            conn = db.open(transaction_manager=tm)
            try:
                tm.begin()
                folder = conn.root()[APP_ROOT]
                missing = [n for n in names or () if n not in folder]
                result = {
                    'length': len(folder),
                    'counter': getattr(folder[COUNTER], 'counter', 0),
                    'missing': missing,
                }
                tm.abort()
                return result
            finally:
                conn.close()
        finally:
            db.close()


def ceiling(sock: str, kind: str, seconds: float, sync: bool) -> dict:
    """One process of the raw commit ceiling (see the module docstring)."""
    import transaction
    import transaction.interfaces
    from ZODB.POSException import ConflictError

    from pyramid_zeostore.app.content import Item

    db = open_db(sock, sync=sync)
    tm = transaction.TransactionManager(explicit=True)
    conn = db.open(transaction_manager=tm)
    try:
        tm.begin()
        folder = conn.root()[APP_ROOT]
        len(folder), folder[COUNTER].counter  # load them once
        tm.abort()
        print('ready', flush=True)
        if not sys.stdin.readline():  # the start line (EOF: give up)
            return {'commits': 0, 'conflicts': 0, 'seconds': 0.0}
        commits = conflicts = 0
        t0 = time.monotonic()
        deadline = t0 + seconds
        while time.monotonic() < deadline:
            tm.begin()
            try:
                folder = conn.root()[APP_ROOT]
                if kind == 'add':
                    folder.add(f'{ADD_PREFIX}{uuid.uuid4()}', Item())
                else:
                    counter = folder[COUNTER]
                    counter.counter = counter.counter + 1
                tm.commit()
                commits += 1
            except ConflictError:
                tm.abort()
                conflicts += 1
        return {
            'commits': commits,
            'conflicts': conflicts,
            'seconds': time.monotonic() - t0,
        }
    finally:
        try:
            tm.abort()
        except transaction.interfaces.NoTransaction:
            pass
        conn.close()
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    c = sub.add_parser('ceiling', help='one process of the ceiling loop')
    c.add_argument('sock')
    c.add_argument('--kind', choices=('add', 'counter'), default='add')
    c.add_argument('--seconds', type=float, default=10.0)
    c.add_argument('--sync', action='store_true',
                   help='server_sync=true, like the apps')
    s = sub.add_parser('seed', help='seed a new database')
    s.add_argument('sock')
    s.add_argument('--items', type=int, default=ITEMS)
    args = parser.parse_args(argv)
    if args.command == 'seed':
        seed(args.sock, args.items)
        return 0
    print(json.dumps(ceiling(args.sock, args.kind, args.seconds, args.sync)),
          flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
