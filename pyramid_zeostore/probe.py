"""The storage probe: is each database's server there, and how is it.

The health check (``/@@health``) and ``pzeo status`` ask the same
questions of the same storages, so they share these functions: find the
ZEO client under a storage, make one round trip, read the last committed
transaction. Nothing here knows of requests or views.
"""

from __future__ import annotations

import datetime
import functools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ZODB.interfaces import IMVCCStorage
from ZODB.TimeStamp import TimeStamp
from ZODB.utils import z64

from .compat import replies_within
from .exceptions import DatabaseUnavailable
from .resolvers import PROBE_TIMEOUT


def client_storage(storage: Any) -> Any:
    """The ZEO ``ClientStorage`` under ``storage``, or None.

    A BlobStorage proxy passes attributes through; a DemoStorage keeps
    the ClientStorage as its ``base`` (the pytest plugin's
    ``demo:(zeo://...)/(memory://)``).
    """
    while storage is not None and not hasattr(storage, 'is_connected'):
        storage = getattr(storage, 'base', None)
    return storage


@dataclass(frozen=True)
class DatabaseHealth:
    """What one database looked like to this process just now."""

    name: str  # '' for the primary
    key: str  # its setting: zodb_uri, zodb_uri.NAME
    address: Any
    connected: bool
    ping_ms: float | None = None  # one round trip; None: not a ZEO client
    last_transaction: str | None = None  # ISO 8601, UTC; None: empty
    connections: int | None = None  # clients of this storage, per server
    error: str | None = None


def last_transaction(db: Any) -> str | None:
    """When ``db``'s last transaction was committed (ISO 8601, UTC), or
    None for an empty database."""
    storage = db.storage
    if IMVCCStorage.providedBy(storage):
        # RelStorage: the DB's own instance only sees what it polled;
        # a new instance asks the database server (a round trip, which
        # fails when the server is down).
        instance = storage.new_instance()
        try:
            tid = instance.lastTransaction()
        finally:
            instance.release()
    else:
        tid = db.lastTransaction()
    if not tid or tid == z64:
        return None
    seconds = TimeStamp(tid).timeTime()
    return datetime.datetime.fromtimestamp(
        seconds, datetime.timezone.utc
    ).isoformat()


def within(call: Callable[[], Any], seconds: float) -> Any:
    """``call()``'s result, if it comes within ``seconds``; else
    TimeoutError. The call goes on in a daemon thread of its own (a query
    cannot be interrupted) and ends when its server answers."""
    box: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            box['value'] = call()
        except BaseException as e:  # handed to the caller
            box['error'] = e
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name='zeostore-probe').start()
    if not done.wait(seconds):
        raise TimeoutError(
            f'the database server did not answer within {seconds:.3g}s'
        )
    if 'error' in box:
        raise box['error']
    return box['value']


def check(databases: Any, timeout: float) -> list[DatabaseHealth]:
    """The health of every database of ``databases`` (an
    :class:`~pyramid_zeostore.interfaces.IDatabases`), within ``timeout``
    seconds in all (less when all answer)."""
    deadline = time.monotonic() + timeout
    # Kept for finding out why a server does not answer.
    reserve = min(PROBE_TIMEOUT, timeout / 4)
    found = []
    for spec in databases.specs:
        report = {'name': spec.name, 'key': spec.key, 'address': spec.address}
        try:
            db = databases.get(spec.name)  # opens them all on first use
            if not databases.wait_connected(spec.name, deadline - reserve):
                raise databases.unavailable(
                    spec.name, max(deadline - time.monotonic(), 0.0)
                )
            client = client_storage(db.storage)
            if client is not None:
                started = time.monotonic()
                left = max(deadline - started, 0.001)
                with replies_within(left):  # the answer too, not just
                    status = client.server_status(timeout=left)  # a link
                report['ping_ms'] = round(
                    (time.monotonic() - started) * 1000, 3
                )
                report['connections'] = status.get('connections')
            if client is None and IMVCCStorage.providedBy(db.storage):
                # RelStorage asks its SQL server, which libpq does not
                # bound: a stopped server would hold the check for good.
                report['last_transaction'] = within(
                    functools.partial(last_transaction, db),
                    max(deadline - time.monotonic(), 0.001),
                )
            else:
                report['last_transaction'] = last_transaction(db)
            found.append(DatabaseHealth(connected=True, **report))
        except Exception as e:  # down, or broke while asked
            if isinstance(e, DatabaseUnavailable):
                error = str(e)
            else:
                error = f'{type(e).__name__}: {e}'
            found.append(
                DatabaseHealth(connected=False, error=error, **report)
            )
    return found
