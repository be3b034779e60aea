"""A pyramid_debugtoolbar panel: what a request did to each database.

Found by itself: ``config.include('pyramid_zeostore')`` includes this
module, whose deferred action (run when the configuration is committed,
whichever of the two was included first) adds the ``zodb`` panel to the
toolbar and subscribes the panel's collectors to the connection events
(:mod:`.collect`) if, and only if, pyramid_debugtoolbar is included and
enabled. An app without the toolbar imports nothing of it and sends no
extra event; with the toolbar, a request the toolbar does not watch
costs two dictionary look-ups.

To turn the panel off, list the panels you want in ``debugtoolbar.panels``
(the toolbar then shows those only; leaving out ``zodb`` also leaves the
connection events unsubscribed); ``debugtoolbar.enabled = false`` turns
the whole toolbar off. Name it (``zodb``) in ``debugtoolbar.panels`` or
``debugtoolbar.active_panels`` like any other panel.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pyramid.config import Configurator

from ..events import ZODBConnectionOpened, ZODBConnectionWillClose
from . import collect

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyramid.registry import Registry

#: The panel, by dotted name: importing it imports pyramid_debugtoolbar.
PANEL = 'pyramid_zeostore.debugtoolbar.panel.ZODBDebugPanel'
#: How ``debugtoolbar.panels`` may name it.
NAMES = ('zodb', PANEL)


def toolbar_registry(registry: Registry) -> Any:
    """The registry of pyramid_debugtoolbar's own app if the toolbar is
    included in ``registry``'s configuration and enabled, else None.

    Looked up without importing pyramid_debugtoolbar: an app that
    includes it has imported it.
    """
    toolbar = sys.modules.get('pyramid_debugtoolbar.toolbar')
    if toolbar is None:
        return None
    if registry.settings.get('debugtoolbar.enabled') is False:
        return None
    app = registry.queryUtility(toolbar.IToolbarWSGIApp)
    return None if app is None else app.registry


def wanted(settings: Any) -> bool:
    """Does the toolbar show the panel: no ``debugtoolbar.panels`` list
    (all panels), or one that names it (or ``extra_panels`` does)?"""
    panels = list(settings.get('debugtoolbar.panels') or ())
    if not panels:
        return True
    panels += list(settings.get('debugtoolbar.extra_panels') or ())
    return any(panel in NAMES for panel in panels)


def register(config: Configurator) -> None:
    """Add the panel and its subscribers if the toolbar is there."""
    registry = toolbar_registry(config.registry)
    if registry is None:
        return
    # The toolbar's own directive, on its own app's registry (what its
    # ``debugtoolbar.includes`` do); read by its tween when the app is
    # made, after this commit.
    Configurator(registry=registry).add_debugtoolbar_panel(PANEL)
    if wanted(config.registry.settings):
        config.add_subscriber(collect.opened, ZODBConnectionOpened)
        config.add_subscriber(collect.will_close, ZODBConnectionWillClose)


def includeme(config: Configurator) -> None:
    """Defer :func:`register` to the commit: by then the application has
    included pyramid_debugtoolbar or not, in either order."""
    config.action(None, register, args=(config,))
