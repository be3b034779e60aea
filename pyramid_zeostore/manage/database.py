"""The database page: each database's figures, and packing.

``@@manage-database`` shows, for the primary database and each named
one, what the health check and ``pzeo status`` find (the storage probe,
:func:`pyramid_zeostore.probe.check`: up or down, ZEO address, one
round trip, the server's client count, the last transaction) and what
only this process knows: its connection pool and object caches.
``@@manage-pack`` (POST ``days``, ``db``) packs one database, keeping
the history of the last ``days``, synchronously: the request waits for
the pack, which holds a worker that long (``zeopack`` or ``pzeo pack``
from cron does not). Over ZEO it waits at most 90% of
``zeostore.reply_timeout``, which bounds every call to the server: then
it stops waiting without dropping the connection, the server packs on
alone, and the page says so.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import time
from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from ZODB.POSException import POSError

from .. import compat
from ..commands import human
from ..connection import get_databases
from ..display import format_address
from ..interfaces import IZeostoreSettings
from ..probe import check, client_storage
from . import render, views

log = logging.getLogger(__name__)

MANAGE = {'permission': 'manage'}
READ = ('GET', 'HEAD')
#: The most days of history a pack may keep (ten years).
MAX_DAYS = 3650


def _last(db: Any, fallback: str | None) -> dict | None:
    """The last transaction: time, user and note from the undo log,
    else the probe's time alone."""
    entries = views.undo_log(db, 0, 1)
    if entries:
        entry = entries[0]
        return {
            'time': views._when(entry.get('time')),
            'user': entry.get('user_name', ''),
            'note': entry.get('description', ''),
        }
    if not fallback:  # a database without a transaction (none known)
        return None
    # probe.last_transaction's isoformat()
    seconds = datetime.datetime.fromisoformat(fallback).timestamp()
    return {'time': views._when(seconds), 'user': '', 'note': ''}


def figures(db: Any, health: Any) -> dict:
    """What the page shows of one database."""
    row: dict[str, Any] = {
        'name': health.name, 'key': health.key,
        'address': format_address(health.address),
        'connected': health.connected, 'error': health.error,
        'ping_ms': health.ping_ms, 'clients': health.connections,
        'storage': render.type_name(db.storage),
        'zeo': client_storage(db.storage) is not None,
    }
    debug = db.connectionDebugInfo()
    details = db.cacheDetailSize()
    row.update(
        pool_size=db.getPoolSize(),
        connections=len(debug),
        open=sum(1 for info in debug if info.get('opened')),
        cache_target=db.getCacheSize(),
        cache_bytes_target=db.getCacheSizeBytes(),
        cached=sum(d.get('ngsize', 0) for d in details),
        cached_all=sum(d.get('size', 0) for d in details),
    )
    if health.connected:
        try:
            size = db.getSize()
            row.update(size=size, size_text=human(size),
                       objects=db.objectCount(),
                       last=_last(db, health.last_transaction))
        except Exception as e:  # noqa: BLE001 - went away meanwhile
            row['error'] = f'{type(e).__name__}: {e}'
    return row


def _seconds(request: Any, name: str) -> float | None:
    """``?packed=`` or ``?packing=``: seconds, if a number."""
    try:
        seconds = float(request.GET.get(name) or 'nan')
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def database_page(request: Any, status: int = 200,
                  errors: dict | None = None, form: dict | None = None,
                  failed: str | None = None) -> Any:
    """The page: a section per database, each with a pack form."""
    registry = request.registry
    settings = registry.getUtility(IZeostoreSettings)
    databases = get_databases(registry)
    found = check(databases, settings.connect_timeout)
    rows = [figures(databases.get(h.name), h) for h in found]
    packed_db = request.GET.get('db', '')
    return views.page(
        request, 'database.jinja2', status=status, crumbs=[], rows=rows,
        errors=errors or {}, form=form or {}, failed=failed,
        packed=_seconds(request, 'packed'),
        packing=_seconds(request, 'packing'), packed_db=packed_db,
        pack_url=views.manage_url(request, request.root, 'manage-pack'),
        transactions_url=lambda name: views.manage_url(
            request, request.root, 'manage-transactions', db=name or None),
        max_days=MAX_DAYS,
    )


def database_view(context: Any, request: Any) -> Any:
    """``@@manage-database``."""
    return database_page(request)


def parse_days(text: str) -> float:
    """``days`` of the pack form: a number from 0 to :data:`MAX_DAYS`."""
    try:
        days = float(text.strip())
    except ValueError:
        raise ValueError(f'{text[:40]!r} is not a number') from None
    if not math.isfinite(days) or not 0 <= days <= MAX_DAYS:
        raise ValueError(f'expected a number of days from 0 to {MAX_DAYS}')
    return days


def pack(context: Any, request: Any) -> Any:
    """``@@manage-pack``: pack one database, then back to the page with
    how long it took (``?packed=SECONDS``)."""
    name = views._field(request, 'db', required=False)
    databases = get_databases(request.registry)
    if name not in databases.names:
        raise HTTPNotFound(f'no database named {name!r}')
    text = views._field(request, 'days', required=False)
    try:
        days = parse_days(text)
    except ValueError as e:
        return database_page(request, status=400, errors={name: str(e)},
                             form={name: text})
    db = databases.get(name)
    limit = databases.reply_timeout
    bounded = (compat.replies_within(limit * 0.9) if limit and
               client_storage(db.storage) is not None
               else contextlib.nullcontext())
    started = time.monotonic()
    try:
        with bounded:
            db.pack(days=days)
    except compat.ReplyTimeout:
        seconds = time.monotonic() - started
        log.warning('%s started packing database %r keeping %s days: not '
                    'done after %.3f s', request.authenticated_userid,
                    name, days, seconds)
        return HTTPSeeOther(views.manage_url(
            request, request.root, 'manage-database',
            packing=f'{seconds:.3f}', db=name or None))
    except (POSError, NotImplementedError, ValueError) as e:
        # ValueError: MappingStorage's "Already packed to a later time"
        return database_page(
            request, status=409, failed=f'Packing {name or "main"} '
            f'failed: {type(e).__name__}: {e}'[:500])
    seconds = time.monotonic() - started
    log.info('%s packed database %r keeping %s days in %.3f s',
             request.authenticated_userid, name, days, seconds)
    return HTTPSeeOther(views.manage_url(
        request, request.root, 'manage-database', packed=f'{seconds:.3f}',
        db=name or None))


def includeme(config: Any) -> None:
    """Register this module's pages."""
    config.add_view(database_view, name='manage-database',
                    request_method=READ, **MANAGE)
    config.add_view(pack, name='manage-pack', request_method='POST',
                    **MANAGE)
