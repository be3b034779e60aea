"""The ready app: ``use = egg:pyramid_zeostore`` in an ini.

A traversal app over the folder root, with pages and a JSON API for every
object (:mod:`.views`) and :class:`~.content.Item` for leaf content. It is
an application *of* the add-on, built only on its public parts, kept apart
so that what ``config.include('pyramid_zeostore')`` gives an app is
visibly all an app gets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.config import Configurator
from pyramid.csrf import CookieCSRFStoragePolicy

from ..folder import Folder
from ..interfaces import IZeostoreSettings
from ..root import check_databases
from .content import Item
from .views import create, delete, increment, show, update

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyramid.router import Router

__all__ = ['Item', 'includeme', 'main']


def main(global_config: dict, **settings: Any) -> Router:
    """The ready app: a traversal app on the folder root (``egg:`` entry).

    Unless ``zeostore.check_on_startup`` is false, it opens the databases
    once, bootstraps the root and closes them again, so that a wrong URI
    or an absent server fails at startup, within the bound, naming the
    address; workers then open their own on first use.
    """
    with Configurator(settings=settings) as config:
        config.include('pyramid_zeostore')
        config.include('pyramid_zeostore.app')
    if config.registry.getUtility(IZeostoreSettings).check_on_startup:
        check_databases(config.registry)
    return config.make_wsgi_app()


def includeme(config: Configurator) -> None:
    """Register the ready app's views, with CSRF checks on writes."""
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True)
    config.add_view(show, request_method=('GET', 'HEAD'))
    config.add_view(create, context=Folder, request_method='POST')
    config.add_view(update, request_method='PATCH')
    config.add_view(delete, request_method='DELETE')
    config.add_view(increment, name='increment', request_method='POST')
