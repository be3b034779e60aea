"""The peer of the contention benchmark: pyramid_zodbconn + tm + retry.

The same tiny app as ``egg:pyramid_zeostore`` (the same ``Folder`` and
``Item`` classes and the same view callables, so the same objects are
written per request), wired the classic way: ``pyramid_zodbconn`` opens
the connection on ``request.tm``, ``pyramid_tm`` commits, ``pyramid_retry``
retries a ``ConflictError`` ``retry.attempts`` times. No backoff, no lock,
no 409 view: a request that spends every attempt is a 500.

Serve it with ``gunicorn --pythonpath benchmarks --paste peer.ini`` where
the ini says::

    [app:main]
    paste.app_factory = peer_app:main
    zodbconn.uri = zeo:///path/to/zeo.sock
    retry.attempts = 3

(``benchmarks/contention.py`` writes that ini itself.)

``benchmarks/bench.py`` serves it the same way as its ``peer`` app, with
``zodbconn.uri = zconfig://...`` naming a ZEO ``<clientstorage>`` with
``server-sync`` and a 20,000-object connection cache (zodburi's
``zeo://`` cannot say ``server_sync``), over a database seeded with
``app_root`` already made.
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid_zodbconn import get_connection

from pyramid_zeostore.app.security import SecurityPolicy
from pyramid_zeostore.app.settings import parse_app_settings
from pyramid_zeostore.app.users import find_users


class PeerSecurity(SecurityPolicy):
    """The ready app's policy, its users read through pyramid_zodbconn's
    connection: the peer checks the same credentials the same way."""

    def users(self, request: Any) -> Any:
        return find_users(get_connection(request).root())

APP_ROOT = 'app_root'


def root_factory(request: Any) -> Any:
    from pyramid_zeostore.folder import Folder

    zodb_root = get_connection(request).root()
    try:
        return zodb_root[APP_ROOT]
    except KeyError:  # the first write makes it (a conflict is retried)
        app_root = zodb_root[APP_ROOT] = Folder()
        return app_root


def count_retries(registry: Any, path: str | None) -> None:
    """Append one byte to ``path`` per ``pyramid_retry`` retry.

    The benchmark's only probe: retries are invisible to clients. One
    ``O_APPEND`` write per retry (atomic across processes), none on a
    request that commits first time; the byte is the attempt that failed
    (``b'0'`` for a first attempt).
    """
    if not path:
        return
    from pyramid_retry import IBeforeRetry

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(event: Any) -> None:
        attempt = event.environ.get('retry.attempt', 0)
        os.write(fd, str(min(attempt, 9)).encode())

    registry.registerHandler(note, (IBeforeRetry,))


def zeostore_main(global_config: dict, **settings: Any) -> Any:
    """``egg:pyramid_zeostore``'s ``main`` plus the retry probe."""
    import pyramid_zeostore

    path = settings.pop('bench.retry_log', None)
    app = pyramid_zeostore.main(global_config, **settings)
    count_retries(app.registry, path)
    return app


def main(global_config: dict, **settings: Any) -> Any:
    path = settings.pop('bench.retry_log', None)
    with Configurator(settings=settings) as config:
        config.include('pyramid_tm')
        config.include('pyramid_retry')
        config.include('pyramid_zodbconn')
        config.set_root_factory(root_factory)
        # The default app's view callables, cross-site checks included,
        # and its security policy over this connection.
        config.include('pyramid_zeostore.app')
        config.set_security_policy(
            PeerSecurity(parse_app_settings(settings), None)
        )
    app = config.make_wsgi_app()
    count_retries(app.registry, path)
    return app

