"""pyramid_zeostore: a persistent, folderish ZODB root over ZEO for Pyramid.

``config.include('pyramid_zeostore')`` is the public entry; ``main`` is the
ready app behind ``use = egg:pyramid_zeostore``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from .connection import (
    ZODBConnectionClosed,
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
    get_connection,
    get_databases,
)
from .databases import Databases
from .exceptions import (
    DatabaseUnavailable,
    FolderKeyError,
    ZeostoreConfigurationError,
    ZeostoreError,
)
from .finder import PersistentApplicationFinder, bootstrap, default_appmaker
from .folder import Folder
from .interfaces import IAppmaker, IDatabases, IZeostoreSettings
from .metrics import RequestMetrics, ZODBRequestMetrics
from .scripts import open_db, open_root, retrying
from .settings import ZeostoreSettings, parse_settings

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyramid.config import Configurator
    from pyramid.router import Router

__all__ = [
    'Databases',
    'DatabaseUnavailable',
    'Folder',
    'FolderKeyError',
    'IDatabases',
    'PersistentApplicationFinder',
    'RequestMetrics',
    'ZODBConnectionClosed',
    'ZODBConnectionOpened',
    'ZODBConnectionWillClose',
    'ZODBRequestMetrics',
    'ZeostoreConfigurationError',
    'ZeostoreError',
    'ZeostoreSettings',
    'bootstrap',
    'default_appmaker',
    'get_connection',
    'get_databases',
    'includeme',
    'main',
    'open_db',
    'open_root',
    'parse_settings',
    'retrying',
]

log = logging.getLogger(__name__)


def set_zodb_appmaker(
    config: Configurator, appmaker: str | Callable[[Any], Any]
) -> None:
    """Directive: use ``appmaker(zodb_root) -> app_root`` for the root.

    Takes a callable or a dotted name (resolved at commit). Registering
    twice in one configuration is a conflict; an application's call
    overrides the ``zeostore.appmaker`` setting.
    """

    def register() -> None:
        maker = config.maybe_dotted(appmaker)
        if not callable(maker):
            raise ZeostoreConfigurationError(
                'zeostore.appmaker',
                appmaker,
                'expected a callable appmaker(zodb_root) -> app_root',
            )
        config.registry.registerUtility(maker, IAppmaker)
        intr['appmaker'] = maker

    intr = config.introspectable(
        'zodb appmakers', None, config.object_description(appmaker),
        'zodb appmaker',
    )
    config.action('zeostore.appmaker', register, introspectables=(intr,))


def includeme(config: Configurator) -> None:
    """Set up pyramid_zeostore: databases, connection, root, tm and retry.

    Parses and validates the settings (a ``ConfigurationError`` names any
    bad key), includes ``pyramid_tm`` and ``pyramid_retry``, adds
    ``request.zodb_conn``, the ``set_zodb_appmaker`` directive, the root
    factory and the 409/503 error views. Opens no database: each process
    opens its own on first use.
    """
    from ZEO.Exceptions import ClientDisconnected
    from ZODB.POSException import ConflictError

    from . import errorviews, finder, request
    from .connection import zodb_conn

    settings = config.get_settings()
    parsed = parse_settings(settings)
    # Coerced values go back for pyramid_retry / pyramid_tm to read.
    settings['retry.attempts'] = parsed.retry_attempts
    # Per request an explicit manager, but for fast reads the thread's.
    settings.setdefault(
        'tm.manager_hook', 'pyramid_zeostore.reads.request_manager'
    )
    config.include('pyramid_tm')
    config.include('pyramid_retry')

    registry = config.registry
    registry.registerUtility(parsed, IZeostoreSettings)
    if parsed.databases:
        registry.registerUtility(
            Databases(parsed.databases, parsed.connect_timeout), IDatabases
        )
    config.add_request_method(zodb_conn, 'zodb_conn', reify=True)
    config.action(None, request.install, args=(registry,), order=20)
    config.add_directive('set_zodb_appmaker', set_zodb_appmaker)
    config.set_zodb_appmaker(parsed.appmaker)
    config.set_root_factory(finder.root_factory)
    config.include('pyramid_zeostore.metrics')
    # No subscribers here: any makes Pyramid send four events per request.
    # The read tween, outermost, also prepares retries (contention.py).
    config.add_tween(
        'pyramid_zeostore.contention.contention_tween_factory',
        over='pyramid_tm.tm_tween_factory',
    )
    config.add_tween(
        'pyramid_zeostore.reads.read_tween_factory',
        over='pyramid_zeostore.contention.contention_tween_factory',
    )
    config.add_exception_view(
        errorviews.conflict_view, context=ConflictError,
        last_retry_attempt=True,
    )
    # DatabaseUnavailable is never retried, so its view must not wait for
    # the last attempt; ClientDisconnected is retried (a TransientError)
    # and the retry fails fast with DatabaseUnavailable.
    config.add_exception_view(
        errorviews.unavailable_view, context=DatabaseUnavailable
    )
    # A SQL storage's server gone (RelStorage): its driver's exceptions.
    config.add_view_predicate(
        'zeostore_disconnected', errorviews.DisconnectedPredicate
    )
    config.add_exception_view(
        errorviews.unavailable_view, context=Exception,
        zeostore_disconnected=True,
    )
    config.add_exception_view(
        errorviews.unavailable_view, context=ClientDisconnected,
        last_retry_attempt=True,
    )
    if parsed.autostart:
        config.action(
            'zeostore.autostart', _autostart, args=(parsed,), order=-10
        )


def _autostart(parsed: ZeostoreSettings) -> None:
    from . import zeoserver

    conf = zeoserver.read_zeo_conf(parsed.zeo_conf)
    pid = zeoserver.ensure_server(
        conf, parsed.autostart_timeout, parsed.socket_mode, parsed.socket_group
    )
    if pid is not None:
        log.info('started runzeo -C %s (pid %s)', conf.path, pid)


def main(global_config: dict, **settings: Any) -> Router:
    """The ready app: a traversal app on the folder root (``egg:`` entry).

    Unless ``zeostore.check_on_startup`` is false, it opens the databases
    once, bootstraps the root and closes them again, so that a wrong URI
    or an absent server fails at startup, within the bound, naming the
    address; workers then open their own on first use.
    """
    from pyramid.config import Configurator

    with Configurator(settings=settings) as config:
        config.include('pyramid_zeostore')
        config.include('pyramid_zeostore.views')
    if config.registry.getUtility(IZeostoreSettings).check_on_startup:
        check_databases(config.registry)
    return config.make_wsgi_app()


def check_databases(registry: Any) -> None:
    """Open, bootstrap and close this registry's databases.

    :raises DatabaseUnavailable: a ZEO server did not answer in time.
    """
    databases = get_databases(registry)
    try:
        bootstrap(databases.get(''), registry.getUtility(IAppmaker))
    finally:
        databases.close()
