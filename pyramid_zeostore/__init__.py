"""pyramid_zeostore: a persistent, folderish ZODB root over ZEO for Pyramid.

``config.include('pyramid_zeostore')`` is the public entry; ``main`` is the
ready app behind ``use = egg:pyramid_zeostore`` (:mod:`.app`). This module
is the whole public surface: every name below is re-exported from the
module that holds it. Nothing in the package imports this module, so it
may import from every layer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from pyramid.config import PHASE1_CONFIG, PHASE2_CONFIG, PHASE3_CONFIG
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError

from . import errorviews, evolve, metrics, request, root, zeoserver
from .app import main
from .connection import (
    ConnectionListeners,
    attach_connection,
    get_connection,
    get_databases,
    zodb_conn,
)
from .databases import Databases, db_from_uri
from .events import (
    ZODBConnectionClosed,
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
    ZODBRequestMetrics,
)
from .evolve import Evolution
from .exceptions import (
    DatabaseUnavailable,
    EvolveError,
    FolderKeyError,
    ZeostoreConfigurationError,
    ZeostoreError,
)
from .folder import Folder
from .health import health_view
from .interfaces import (
    IAppmaker,
    IConnectionListeners,
    IDatabases,
    IHealthView,
    IZeostoreSettings,
)
from .metrics import RequestMetrics
from .root import (
    PersistentApplicationFinder,
    bootstrap,
    check_databases,
    default_appmaker,
)
from .scripting import open_db, open_root, retrying
from .settings import (
    ZeostoreSettings,
    check_dotted,
    check_keys,
    known_keys,
    parse_settings,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyramid.config import Configurator

__all__ = [
    'Databases',  #: the databases of one configuration, per process
    'DatabaseUnavailable',  #: a server did not answer in time (503)
    'Evolution',  #: what an evolve step gets (roots, batches, progress)
    'EvolveError',  #: evolve steps could not run (another's claim)
    'Folder',  #: the persistent, BTree-backed folder
    'FolderKeyError',  #: a name not in a Folder
    'IDatabases',  #: the interface of Databases
    'PersistentApplicationFinder',  #: the repoze.zodbconn-style finder
    'RequestMetrics',  #: one request's ZODB activity
    'ZODBConnectionClosed',  #: event: a request's connection closed
    'ZODBConnectionOpened',  #: event: a request's connection opened
    'ZODBConnectionWillClose',  #: event: it is about to close
    'ZODBRequestMetrics',  #: event: a request's metrics are complete
    'ZeostoreConfigurationError',  #: a setting is wrong; names its key
    'ZeostoreError',  #: base of every error of the package
    'ZeostoreSettings',  #: the parsed settings
    'attach_connection',  #: give a DummyRequest a test's connection
    'bootstrap',  #: run an appmaker once in its own transaction
    'check_databases',  #: open, bootstrap and close (startup check)
    'db_from_uri',  #: pyramid_zodbconn's: a named DB of a multi-database
    'default_appmaker',  #: zodb_root['app_root'], a Folder
    'get_connection',  #: the request's connection (pyramid_zodbconn's)
    'get_databases',  #: the registry's Databases
    'includeme',  #: config.include('pyramid_zeostore')
    'main',  #: the ready app (egg:pyramid_zeostore)
    'open_db',  #: a script's ZODB.DB, closed at exit
    'open_root',  #: a script's app root, committed at exit
    'parse_settings',  #: settings -> ZeostoreSettings
    'retrying',  #: a script's attempts, retried on conflicts
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
    factory, the health check and the 400/409/503 error views. Opens no
    database: each process opens its own on first use.
    """
    settings = config.get_settings()
    parsed = parse_settings(settings)
    if not parsed.databases:
        # Before anything runs (autostart, a request that would answer
        # 500): the one setting nothing works without.
        raise ZeostoreConfigurationError(
            'zodb_uri', None,
            'expected a database URI in the [app:main] section, such as '
            'zodb_uri = zeo://%(here)s/var/zeo.sock or file://%(here)s/'
            'var/Data.fs',
        )
    check_dotted(settings, config.package)
    # Coerced values go back for pyramid_retry / pyramid_tm to read.
    settings['retry.attempts'] = parsed.retry_attempts
    # An explicit manager per routed request (fast reads use their
    # thread's); the thread's transaction.manager outside the router.
    settings.setdefault('tm.manager_hook',
                        'pyramid_zeostore.request.manager_hook')
    config.include('pyramid_tm')
    config.include('pyramid_retry')

    registry = config.registry
    registry.registerUtility(parsed, IZeostoreSettings)
    # Once every include has named its keys (the ready app adds its own
    # to registry.zeostore_keys), before autostart (PHASE2) runs runzeo.
    registry.zeostore_keys = known_keys()
    config.action(
        'zeostore.check_keys', check_keys,
        args=(settings, registry.zeostore_keys), order=PHASE1_CONFIG,
    )
    registry.registerUtility(
        Databases(parsed.databases, parsed.connect_timeout,
                  parsed.reply_timeout),
        IDatabases,
    )
    registry.registerUtility(
        ConnectionListeners(registry), IConnectionListeners
    )
    registry.registerUtility(health_view, IHealthView)
    config.add_request_method(zodb_conn, 'zodb_conn', reify=True)
    # After the application's own set_request_factory (default order).
    config.action(
        None, request.install, args=(registry,), order=PHASE3_CONFIG + 20
    )
    config.add_directive('set_zodb_appmaker', set_zodb_appmaker)
    config.set_zodb_appmaker(parsed.appmaker)
    config.set_root_factory(root.root_factory)
    config.include(metrics)
    config.include('pyramid_zeostore.debugtoolbar')  # toolbar panel
    # add_evolution_step; zeostore.autoevolve's run at startup.
    config.include(evolve)
    # No subscribers here: any makes Pyramid send four events per request.
    # The read tween, outermost, also prepares retries (tweens.py).
    config.add_tween(
        'pyramid_zeostore.tweens.contention_tween_factory',
        over='pyramid_tm.tm_tween_factory',
    )
    config.add_tween(
        'pyramid_zeostore.tweens.read_tween_factory',
        over='pyramid_zeostore.tweens.contention_tween_factory',
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
    # A path or query string that is not UTF-8: the client's error.
    # The ZEO server's disk (or a file storage's) is full: 503.
    config.add_view_predicate(
        'zeostore_disk_full', errorviews.DiskFullPredicate
    )
    config.add_exception_view(
        errorviews.disk_full_view, context=Exception,
        zeostore_disk_full=True,
    )
    config.add_view_predicate(
        'zeostore_bad_encoding', errorviews.BadEncodingPredicate
    )
    config.add_exception_view(
        errorviews.bad_encoding_view, context=UnicodeDecodeError,
        zeostore_bad_encoding=True,
    )
    if parsed.autostart and not may_use_zeo(parsed):
        # file:// or memory:// in place of zeo:// ("one line"): a server
        # started now would hold the very file the app is to open.
        log.warning(
            'zeostore.autostart is ignored: no database is served by ZEO '
            '(zodb_uri = %s)', parsed.databases[0].display_address,
        )
    elif parsed.autostart:
        # Before the other actions: a server the app may talk to at once.
        config.action(
            'zeostore.autostart', _autostart, args=(parsed,),
            order=PHASE2_CONFIG,
        )


def may_use_zeo(parsed: ZeostoreSettings) -> bool:
    """Could a database of these settings be a ZEO client: a zeo:// URI
    (also inside demo:), or a zconfig:// file, which may name one."""
    return any(
        spec.is_zeo or spec.uri.startswith('zconfig:')
        for spec in parsed.databases
    )


def _autostart(parsed: ZeostoreSettings) -> None:
    """Start the zeo.conf's server unless it answers (see
    :func:`.zeoserver.ensure_server`); first refuse a zeo.conf that
    runzeo cannot read, or whose server zodb_uri does not name."""
    conf = zeoserver.load_zeo_conf(parsed.zeo_conf, parsed.databases)
    pid = zeoserver.ensure_server(
        conf, parsed.autostart_timeout, parsed.socket_mode, parsed.socket_group
    )
    if pid is not None:
        log.info('started runzeo -C %s (pid %s)', conf.path, pid)
