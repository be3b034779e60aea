"""The ready app: ``use = egg:pyramid_zeostore`` in an ini.

A traversal app over the folder root, with pages and a JSON API for every
object (:mod:`.views`) and :class:`~.content.Item` for leaf content. It is
an application *of* the add-on, built only on its public parts, kept apart
so that what ``config.include('pyramid_zeostore')`` gives an app is
visibly all an app gets. Safe to expose: anyone may read (unless
``zeostore.anonymous = none``), only its users may write (:mod:`.users`,
:mod:`.security`), no other site can make it write (:mod:`.csrf`), and
its :class:`~.guards.Guard` limits what a request may send.
"""

from __future__ import annotations

import logging
from typing import Any

import transaction
from pyramid.config import Configurator
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.exceptions import (
    BadCSRFToken,
    ConfigurationError,
    ConfigurationExecutionError,
)
from pyramid.httpexceptions import HTTPForbidden
from pyramid.interfaces import ISecurityPolicy
from pyramid.security import NO_PERMISSION_REQUIRED
from ZEO.Exceptions import ClientDisconnected

from ..connection import get_databases
from ..exceptions import (
    DatabaseUnavailable,
    ZeostoreConfigurationError,
    unwrap,
)
from ..folder import Folder
from ..interfaces import (
    IAppmaker,
    IEvolutionSteps,
    IZeostoreAppSettings,
    IZeostoreSettings,
)
from ..root import bootstrap_once
from . import login as login_views
from .content import Item
from .csrf import cross_site_view
from .guards import Guard
from .security import SecurityPolicy
from .session import load_secret, session_factory
from .settings import READERS as APP_READERS
from .settings import parse_app_settings
from .traversal import Traverser
from .users import find_users
from .views import create, delete, increment, not_allowed, show, update

__all__ = ['Item', 'includeme', 'main']

log = logging.getLogger(__name__)


def main(global_config: dict, **settings: Any) -> Guard:
    """The ready app: a traversal app on the folder root (``egg:`` entry).

    Unless ``zeostore.check_on_startup`` is false, it opens the databases
    once, bootstraps the root, counts the users and closes the databases
    again, so that a wrong setting fails at startup, naming its key;
    workers then open their own on first use. A server that does not
    answer within the bound is a prominent warning, and the app starts
    and answers 503 until it does (a gunicorn or mod_wsgi worker that
    restarts during an outage must come up); ``strict`` makes it fail
    startup instead. Served behind its :class:`~.guards.Guard`.
    """
    try:
        with Configurator(settings=settings) as config:
            config.include('pyramid_zeostore')
            config.include('pyramid_zeostore.app')
    except ConfigurationExecutionError as e:
        # A setting refused by an action (an unknown key, the zeo.conf of
        # autostart): its own error, not Pyramid's "in: Line 0" wrapper.
        found = unwrap(e, (ConfigurationError,))
        if found is e:
            raise  # anything else: Pyramid's, with the traceback it chains
        raise found from None
    registry = config.registry
    policy = registry.getUtility(ISecurityPolicy)
    policy.ini = global_config.get('__file__') or policy.ini
    zeostore = registry.getUtility(IZeostoreSettings)
    if zeostore.check_on_startup:
        try:
            check_startup(registry, policy)
        except DatabaseUnavailable as e:
            if zeostore.startup_strict:
                raise
            log.warning(UNREACHABLE_AT_STARTUP, e)
    return Guard(
        config.make_wsgi_app(),
        registry.getUtility(IZeostoreAppSettings),
        (zeostore.health_path, zeostore.prometheus_path),
    )


UNREACHABLE_AT_STARTUP = (
    '\n*** The database did not answer at startup: %s\n'
    '*** The app starts anyway and answers 503 (Retry-After) until it '
    'does, then serves without a restart. Start the server (pzeo start '
    'INI, or runzeo -C zeo.conf), or set zeostore.check_on_startup = '
    'strict to refuse to start without it.'
)


def count_users(registry: Any) -> int:
    """Bootstrap the root and count the users, then close the databases.

    :raises DatabaseUnavailable: a ZEO server did not answer in time, or
        went away during the check (a worker booting as ZEO stops).
    """
    databases = get_databases(registry)
    try:
        db = bootstrap_once(
            databases, registry.getUtility(IAppmaker),
            registry.queryUtility(IEvolutionSteps),
        )
        tm = transaction.TransactionManager(explicit=True)
        tm.begin()
        conn = db.open(transaction_manager=tm)
        try:
            return len(find_users(conn.root()) or ())
        finally:
            tm.abort()
            conn.close()
    except (ClientDisconnected, *databases.disconnected_exceptions()):
        raise databases.unavailable('') from None
    finally:
        databases.close()


def check_startup(registry: Any, policy: SecurityPolicy) -> None:
    """The ready app's startup check: the databases answer, and users
    who could log in by form have a secret to sign their sessions."""
    users = count_users(registry)
    if users and policy.secret is None:
        raise ZeostoreConfigurationError(
            'zeostore.secret', None,
            f'expected a secret to sign sessions now that the database has '
            f'{users} user(s): set zeostore.secret to at least 32 random '
            "characters (python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))') or zeostore.secret_file "
            'to a file of them',
        )
    if not users:
        log.warning(
            'The app is read-only: no users yet. Add one with: '
            'pzeo adduser %s NAME', policy.ini,
        )


def includeme(config: Configurator) -> None:
    """Register the ready app's security, views and error views."""
    # pyramid_tm would ask who the user is before the transaction begins
    # (to annotate it), opening the connection early: identity is found
    # inside the transaction instead, by the view's permission check.
    config.registry.settings.setdefault('tm.annotate_user', 'false')
    settings = parse_app_settings(config.registry.settings)
    config.registry.registerUtility(settings, IZeostoreAppSettings)
    known = getattr(config.registry, 'zeostore_keys', None)
    if known is not None:  # pyramid_zeostore's key check: ours are known
        known.update(key for key, _, _ in APP_READERS)
    secret = load_secret(settings)
    config.set_security_policy(SecurityPolicy(settings, secret))
    if secret is not None:
        config.set_session_factory(session_factory(settings, secret))
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_permission('view')
    config.add_traverser(Traverser)  # 404 below a plain value, not 500
    config.add_view_deriver(cross_site_view)
    config.add_view(show, request_method=('GET', 'HEAD'))
    config.add_view(create, context=Folder, request_method='POST',
                    permission='edit')
    config.add_view(update, request_method='PATCH', permission='edit')
    config.add_view(delete, request_method='DELETE', permission='edit')
    config.add_view(increment, name='increment', request_method='POST',
                    permission='edit')
    anyone = {'permission': NO_PERMISSION_REQUIRED}
    config.add_view(login_views.login_form, name='login',
                    request_method=('GET', 'HEAD'), **anyone)
    config.add_view(login_views.login, name='login', request_method='POST',
                    **anyone)
    config.add_view(login_views.logout_form, name='logout',
                    request_method=('GET', 'HEAD'), **anyone)
    config.add_view(login_views.logout, name='logout',
                    request_method='POST', **anyone)
    for name in ('', 'increment', 'login', 'logout'):
        config.add_view(not_allowed, name=name, cross_site=False,
                        **anyone)
    config.include('pyramid_zeostore.manage')  # the object browser
    config.add_exception_view(login_views.forbidden_view,
                              context=HTTPForbidden)
    config.add_exception_view(login_views.bad_token_view,
                              context=BadCSRFToken)
