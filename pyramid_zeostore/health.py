"""A health check for load balancers and probes: ``GET /@@health``.

It reads, never writes: for each configured database it waits (within
``zeostore.connect_timeout`` in all) for the server, makes one round trip
and reports its latency and the last committed transaction (the storage
probe, :mod:`pyramid_zeostore.probe`). 200 when all answer, 503 with
``Retry-After`` naming the ones that do not. ``includeme`` registers the
view as the ``IHealthView`` utility and the read tween answers
``zeostore.health_path`` with it before traversal, so it works beside any
root; it is not a route, which would make Pyramid match every request of
a traversal app against it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .display import address_json
from .interfaces import IDatabases, IZeostoreSettings
from .probe import check


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
            dict(asdict(h), address=address_json(h.address)) for h in found
        ],
    }
    return response
