"""A health check for load balancers and probes: ``GET /@@health``.

It reads, never writes: for each configured database it waits (within
``zeostore.connect_timeout`` in all) for the server, makes one round trip
and reports its latency and the last committed transaction. 200 when all
answer, 503 with ``Retry-After`` naming the ones that do not.

The package's outermost tween (the read tween) answers ``GET``/``HEAD`` of
``zeostore.health_path`` (default ``/@@health``; ``off`` disables it)
before traversal, URL dispatch and views, so it works beside any root and
never opens a request connection. It is not a route: a route would make
Pyramid match every request of a traversal app against it (~2 us each).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ZODB.interfaces import IMVCCStorage
from ZODB.TimeStamp import TimeStamp
from ZODB.utils import z64

from .databases import Databases, _client_storage
from .exceptions import DatabaseUnavailable
from .interfaces import IDatabases, IZeostoreSettings


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


def _last_transaction(db: Any) -> str | None:
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


def check(databases: Databases, timeout: float) -> list[DatabaseHealth]:
    """The health of every database of ``databases``, within ``timeout``
    seconds in all (less when all answer)."""
    deadline = time.monotonic() + timeout
    found = []
    for spec in databases.specs:
        report = {'name': spec.name, 'key': spec.key, 'address': spec.address}
        try:
            db = databases.get(spec.name)  # opens them all on first use
            if not databases.wait_connected(spec.name, deadline):
                raise databases.unavailable(spec.name)
            client = _client_storage(db.storage)
            if client is not None:
                started = time.monotonic()
                status = client.server_status(
                    timeout=max(deadline - started, 0.001)
                )
                report['ping_ms'] = round(
                    (time.monotonic() - started) * 1000, 3
                )
                report['connections'] = status.get('connections')
            report['last_transaction'] = _last_transaction(db)
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


def health_view(request: Any) -> Any:
    """JSON per database; 503 and ``Retry-After`` if any is down."""
    registry = request.registry
    settings = registry.getUtility(IZeostoreSettings)
    databases = registry.getUtility(IDatabases)
    found = check(databases, settings.connect_timeout)
    down = [h.name for h in found if not h.connected]
    response = request.response
    response.content_type = 'application/json'
    response.headers['Cache-Control'] = 'no-store'
    if down:
        response.status = 503
        response.headers['Retry-After'] = str(settings.retry_after)
    response.json_body = {
        'status': 'unavailable' if down else 'ok',
        'down': down,
        'databases': [
            dict(asdict(h), address=_address(h.address)) for h in found
        ],
    }
    return response


def _address(address: Any) -> Any:
    """JSON for an address: a socket path, ``host:port``, a list of them;
    a URI without its user and password."""
    if isinstance(address, list):
        return [_address(a) for a in address]
    if isinstance(address, tuple):
        return f'{address[0]}:{address[1]}'
    parts = urlsplit(str(address))
    if parts.password or parts.username:
        host = parts.netloc.rsplit('@', 1)[1]
        return urlunsplit(parts._replace(netloc=host, query=''))
    return str(address)


def raw_path(registry: Any) -> str | None:
    """``zeostore.health_path`` as ``PATH_INFO`` carries it (UTF-8 bytes
    as latin-1), for the read tween to compare; None if the check is off."""
    path = registry.getUtility(IZeostoreSettings).health_path
    return path.encode('utf-8').decode('latin-1') if path else None
